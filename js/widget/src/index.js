// anywidget front end of CellucidWidget: hosts the viewer in an iframe and relays between
// the viewer (window.postMessage, SPEC §4.2/§4.3) and Python (the widget's Jupyter comm).
//
// Per view (a widget may be displayed more than once):
//   1. pick the transport: "http" loads the viewer page from the cellucid server, through
//      jupyter-server-proxy when it answers, else directly (url.js, SPEC §6.8); "comm"
//      asks Python for the page (HTML, CSS, JS) over the comm, loads it from blob URLs and
//      answers its requests (`cellucid:fetch`) over the comm; "auto" = http if the server
//      answers, else comm. The choice is reported to Python.
//   2. handshake: post an authenticated `ping` into the iframe every 300 ms until the
//      viewer answers (its bridge pins our origin on the first one); commands from Python
//      wait for that.
//   3. relay: messages whose source is our iframe and whose origin is the page's origin,
//      with this viewer's id and token, go to Python as {kind: "event", eventId, event};
//      cell sets (selection, groups) travel as bytes (parts.js), never as base64 or JSON numbers.
//
// Messages with Python (all JSON + buffers; parts.js splits big binaries):
//   Python → JS: {kind: "command", seq, command, part?, parts?, cells_bytes?, values_dtype?}
//                (+ uint32 cells bytes, or addField's values as uint8/uint16/float32 bytes)
//                {kind: "fetch_reply", id, status, headers, part, parts} (+ body bytes)
//                {kind: "page", id, sizes: {html, css, js}, part, parts} (+ bytes)
//   JS → Python: {kind: "view", view, action: "render" | "transport" | "connected" | "closed", …}
//                {kind: "event", view, eventId, event, part?, parts?, group_bytes?} (+ cells
//                bytes; a groups event: every group's, in order, group_bytes their lengths)
//                {kind: "fetch", view, id, path, method, headers, part, parts} (+ body)
//                {kind: "page_request", view, id}
//                {kind: "log", view, level, message}

import { redactToken } from "../../viewer/src/bridge/protocol.js";
import { COMM_BASE } from "../../viewer/src/data/commfetch.js";
import { eventCellBytes, PartCollector, sendInParts } from "./parts.js";
import { chooseUrl, healthOf, jupyterBaseUrl } from "./url.js";

const DEFAULT_HEIGHT = 600;
/** Typed arrays of a command's binary `values` (addField), by the dtype Python names. */
const VALUE_ARRAYS = { uint8: Uint8Array, uint16: Uint16Array, float32: Float32Array };
const HANDSHAKE_MS = 300;
const PROBE_TIMEOUT_MS = 4000;

function cssHeight(value) {
  const px = Number(value);
  return `${Number.isFinite(px) && px > 0 ? px : DEFAULT_HEIGHT}px`;
}

function randomId() {
  const bytes = new Uint8Array(6);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function fetchWithTimeout(url, init) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), PROBE_TIMEOUT_MS);
  try {
    return await fetch(url, { ...init, signal: controller.signal, cache: "no-store" });
  } finally {
    clearTimeout(timer);
  }
}

/** Does a cellucid server answer this health URL (same origin or CORS-allowed)? */
async function isCellucid(url) {
  try {
    const res = await fetchWithTimeout(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!res.ok) return false;
    const body = await res.json();
    return Boolean(body && body.status === "ok");
  } catch {
    return false;
  }
}

/** Does anything answer at this URL? (no-cors: works across origins, tells only reachability) */
async function isReachable(url) {
  try {
    await fetchWithTimeout(url, { mode: "no-cors" });
    return true;
  } catch {
    return false;
  }
}

function el(tag, props = {}, style = {}) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  Object.assign(node.style, style);
  return node;
}

function render({ model, el: host }) {
  const viewerId = model.get("viewer_id");
  const token = model.get("viewer_token");
  const viewId = randomId();
  const box = el("div", { id: `cellucid-viewer-${viewerId}`, className: "cellucid-widget" }, { width: "100%", position: "relative" });
  const note = el("div", { className: "cellucid-note" }, { font: "12px sans-serif", color: "#666", margin: "0 0 4px 0" });
  const message = el("div", { className: "cellucid-message", hidden: true }, { font: "13px sans-serif", padding: "12px", border: "1px solid #d33", borderRadius: "4px", background: "#fff4f4", color: "#711" });
  const iframe = el("iframe", { id: `cellucid-iframe-${viewerId}`, title: "Cellucid viewer", src: "about:blank" }, { display: "block", width: "100%", border: "0" });
  iframe.setAttribute("allow", "clipboard-write; fullscreen");
  box.append(note, message, iframe);
  host.appendChild(box);

  let transport = null; // "http" | "comm" once chosen
  let origin = null; // expected origin of the iframe's messages (and target of ours)
  let pinned = false; // the viewer's bridge answered: commands can go in
  let disposed = false;
  let handshakeTimer = null;
  let handshakeCount = 0;
  let healthCache = null; // comm: the first health answer (busy kernels must not freeze the viewer)
  const waitingCommands = [];
  const blobUrls = [];
  const fetchIds = new Map(); // comm key -> {id, path}
  const fromPython = new PartCollector();

  const send = (content, buffers = []) => {
    if (disposed && content.kind !== "view") return;
    try {
      model.send({ ...content, view: viewId }, undefined, buffers);
    } catch (err) {
      console.warn("cellucid widget: could not reach Python", err);
    }
  };
  const log = (level, text) => {
    (level === "error" ? console.error : console.warn)(`cellucid widget: ${text}`);
    send({ kind: "log", level, message: text });
  };

  const layout = () => {
    iframe.style.height = cssHeight(model.get("height"));
    note.textContent = model.get("note") || "";
    note.hidden = !note.textContent;
  };
  layout();

  // ---- to the viewer ----------------------------------------------------------------------
  function post(command, transfer = []) {
    if (!iframe.contentWindow || origin === null) return false;
    try {
      iframe.contentWindow.postMessage({ ...command, viewerId, viewerToken: token }, origin, transfer);
      return true;
    } catch (err) {
      log("warn", `postMessage into the viewer failed: ${err}`);
      return false;
    }
  }

  function handshake() {
    if (pinned || disposed) return;
    post({ type: "ping", requestId: `handshake-${viewId}-${++handshakeCount}` });
    handshakeTimer = setTimeout(handshake, HANDSHAKE_MS);
  }

  function markPinned() {
    if (pinned) return;
    pinned = true;
    clearTimeout(handshakeTimer);
    for (const command of waitingCommands.splice(0)) post(command);
    send({ kind: "view", action: "connected" });
  }

  function command(cmd) {
    if (cmd.type === "freeze" || pinned) post(cmd);
    else waitingCommands.push(cmd);
  }

  // ---- from the viewer --------------------------------------------------------------------
  function relayEvent(data) {
    const { viewerId: _id, viewerToken: _token, eventId = null, ...event } = data;
    markPinned();
    // cell sets (selection, groups) go as bytes, small JSON lists too
    const binary = eventCellBytes(event);
    if (binary === null) return send({ kind: "event", eventId, event });
    const message = { kind: "event", eventId, event: binary.event };
    if (binary.groupBytes) message.group_bytes = binary.groupBytes;
    sendInParts(send, message, binary.bytes);
  }

  function replyFetch(id, status, headers, bytes) {
    const body = bytes.slice().buffer; // a copy: cached health answers are reused
    iframe.contentWindow?.postMessage({ type: "cellucid:fetch-reply", id, status, headers, body }, origin, [body]);
  }

  function forwardFetch(data) {
    if (data.path === "_cellucid/health" && healthCache) {
      return replyFetch(data.id, healthCache.status, healthCache.headers, healthCache.bytes);
    }
    const key = `${viewId}:${data.id}`;
    fetchIds.set(key, { id: data.id, path: data.path });
    const body = data.body ? new Uint8Array(data.body) : new Uint8Array(0);
    sendInParts(send, { kind: "fetch", id: key, path: data.path, method: data.method, headers: data.headers || {} }, body);
    return undefined;
  }

  function onWindowMessage(event) {
    if (disposed || event.source !== iframe.contentWindow || event.origin !== origin) return;
    const data = event.data;
    if (!data || typeof data !== "object" || typeof data.type !== "string") return;
    if (data.type === "cellucid:fetch") {
      if (transport === "comm") forwardFetch(data);
      return;
    }
    if (data.type === "cellucid:navigate") {
      if (transport === "comm" && typeof data.query === "string") loadComm(data.query);
      return;
    }
    if (data.viewerId !== viewerId || data.viewerToken !== token) return;
    relayEvent(data);
  }
  window.addEventListener("message", onWindowMessage);

  // ---- from Python ------------------------------------------------------------------------
  function onCustom(msg, buffers) {
    if (disposed || !msg || typeof msg !== "object") return;
    if (msg.kind === "command") {
      const done = fromPython.add(`command:${msg.seq}`, msg, buffers);
      if (!done) return;
      const cmd = { ...done.message.command };
      if (done.message.cells_bytes) cmd.cells = new Uint32Array(done.bytes.slice().buffer);
      const Values = VALUE_ARRAYS[done.message.values_dtype];
      if (Values) cmd.values = new Values(done.bytes.slice().buffer);
      command(cmd);
    } else if (msg.kind === "fetch_reply") {
      if (!String(msg.id).startsWith(`${viewId}:`)) return;
      const done = fromPython.add(`fetch:${msg.id}`, msg, buffers);
      if (!done) return;
      const request = fetchIds.get(msg.id);
      fetchIds.delete(msg.id);
      if (!request) return;
      const { status, headers } = done.message;
      if (request.path === "_cellucid/health" && status === 200) healthCache = { status, headers, bytes: done.bytes };
      replyFetch(request.id, status, headers, done.bytes);
    } else if (msg.kind === "page") {
      if (!String(msg.id).startsWith(`${viewId}:`)) return;
      const done = fromPython.add(`page:${msg.id}`, msg, buffers);
      if (done) showPage(done.message, done.bytes);
    }
  }
  model.on("msg:custom", onCustom);
  model.on("change:height", layout);
  model.on("change:note", layout);

  // ---- loading ----------------------------------------------------------------------------
  function showMessage(text) {
    message.textContent = text;
    message.hidden = false;
    iframe.hidden = true;
  }

  function resetFrame() {
    pinned = false;
    healthCache = null;
    clearTimeout(handshakeTimer);
    for (const url of blobUrls.splice(0)) URL.revokeObjectURL(url);
  }

  function loadHttp(url, via) {
    resetFrame();
    transport = "http";
    origin = new URL(url).origin;
    iframe.addEventListener("load", handshake, { once: true });
    iframe.src = url;
    handshake();
    send({ kind: "view", action: "transport", transport, via, url: redactToken(url) });
  }

  let pageQuery = "";
  function loadComm(query) {
    resetFrame();
    transport = "comm";
    origin = window.location.origin;
    pageQuery = query;
    send({ kind: "page_request", id: `${viewId}:${randomId()}` });
    send({ kind: "view", action: "transport", transport, via: "comm", url: null });
  }

  function showPage(meta, bytes) {
    const { html, css, js } = meta.sizes;
    const text = (start, length) => new TextDecoder().decode(bytes.subarray(start, start + length));
    const blobUrl = (content, type) => {
      const url = URL.createObjectURL(new Blob([content], { type }));
      blobUrls.push(url);
      return url;
    };
    const cssUrl = blobUrl(bytes.subarray(html, html + css), "text/css");
    const jsUrl = blobUrl(bytes.subarray(html + css, html + css + js), "text/javascript");
    const bootConfig = { query: pageQuery, base: COMM_BASE, transport: "comm", parentOrigin: window.location.origin };
    const boot = `<script>window.__CELLUCID_BOOT__ = ${JSON.stringify(bootConfig).replace(/</g, "\\u003c")};</script>`;
    const page = text(0, html)
      .replace("__CELLUCID_CSS_URL__", cssUrl)
      .replace("<!--__CELLUCID_BOOT__-->", boot)
      .replace("__CELLUCID_JS_URL__", jsUrl);
    iframe.addEventListener("load", handshake, { once: true });
    iframe.src = blobUrl(page, "text/html");
  }

  async function start() {
    send({ kind: "view", action: "render" });
    const mode = model.get("transport");
    const direct = model.get("viewer_url");
    if (mode !== "comm") {
      let choice = await chooseUrl({
        direct,
        port: model.get("port"),
        location: window.location,
        baseUrl: jupyterBaseUrl(document),
        probe: isCellucid,
        fixed: model.get("url_fixed"),
      });
      if (choice.url && mode === "auto" && choice.via === "direct" && !(await isReachable(healthOf(choice.url)))) {
        choice = { url: null, reason: `nothing answers at ${new URL(choice.url).origin}` };
      } else if (!choice.url && mode === "auto" && direct && (await isReachable(healthOf(direct)))) {
        // No proxy, but this browser reaches the server itself (e.g. VS Code's webviews,
        // whose page is not on a loopback origin): better than carrying it over the comm.
        choice = { url: direct, via: "direct" };
      }
      if (disposed) return;
      if (choice.url) return loadHttp(choice.url, choice.via);
      if (mode === "http") {
        showMessage(choice.reason);
        log("error", choice.reason);
        send({ kind: "view", action: "transport", transport: "none", via: null, url: null, error: choice.reason });
        return;
      }
      log("warn", `the cellucid server is not reachable from this browser (${choice.reason}); loading the viewer over the comm`);
    }
    loadComm(direct ? new URL(direct).search : "");
  }
  start().catch((err) => {
    showMessage(`cellucid: ${err && err.message ? err.message : err}`);
    log("error", String(err && err.stack ? err.stack : err));
  });

  return () => {
    disposed = true;
    clearTimeout(handshakeTimer);
    window.removeEventListener("message", onWindowMessage);
    model.off("msg:custom", onCustom);
    model.off("change:height", layout);
    model.off("change:note", layout);
    fromPython.clear();
    iframe.src = "about:blank"; // unloads the viewer page: its WebGL context goes with it
    iframe.remove();
    for (const url of blobUrls.splice(0)) URL.revokeObjectURL(url);
    send({ kind: "view", action: "closed" });
  };
}

export default { render };
