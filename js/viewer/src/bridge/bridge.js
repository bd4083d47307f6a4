// The viewer's bridge to Python (SPEC §4): commands in by postMessage, events out.
//
// Commands: only plain objects with a string `type` are looked at. A wrong or missing
// viewerToken is ignored silently; the right token with another viewerId is rejected and
// logged; the first authenticated message pins its origin and later messages from other
// origins are rejected. Then the exact envelope keys and the fields are checked
// (protocol.js); a command that fails is answered with a `command_error` event.
//
// Events: {type, viewerId, viewerToken, ...payload} with exactly the payload keys of
// SPEC §4.3. Inside our notebook widget (jupyter=true and framed) they go to the parent
// by postMessage, targeted at the origin the parent's first authenticated command came
// from; until that pin they are queued, and if nothing pins within 5 s they go by HTTP.
// Otherwise they are POSTed (in order, one at a time) to `_cellucid/events` in the
// page's directory, with `keepalive` only below 60 KB. A page without viewerId/token
// (standalone) sends nothing.
//
// Every event gets an `eventId` (page id + sequence number): a key of the message to the
// parent and the `eventId` query parameter of the POST. With `alsoHttp` (the widget's
// HTTP transport) events to the parent are POSTed as well: the Jupyter comm only reaches
// Python between cells, the server thread at once, so a `wait_for_event()` in a running
// cell still sees them; Python records each eventId once, whichever path is first.

import { decodeCells, encodeCellsForEvent } from "../select/cellset.js";
import {
  checkCommand,
  classifyMessage,
  clickPayload,
  groupsPayload,
  HoverThrottle,
  hoverPayload,
  KEEPALIVE_MAX_BYTES,
  OriginPin,
  Outbox,
  PIN_TIMEOUT_MS,
  readyPayload,
  redactToken,
  selectionPayload,
  userFieldsPayload,
} from "./protocol.js";

/** Counters of the most recently installed bridge (also at window.__cellucidBridge.stats). */
export let __bridgeStats = null;

function newStats() {
  return {
    accepted: 0, // authenticated, valid commands run
    rejected: 0, // authenticated-looking commands refused (viewerId, origin, fields)
    ignored: 0, // not ours (no type, wrong/missing token): silent
    byType: {}, // accepted commands per type
    lastRejection: null, // {type, reason}
    eventsSent: 0, // handed to the transport
    eventsDropped: 0, // standalone page: nowhere to send
    eventsFailed: 0, // HTTP errors
    sentByType: {},
    lastEventError: null,
    transport: "none", // "none" | "pending" | "parent" | "http"
    pinnedOrigin: null,
    ready: false, // the viewer reported ready
  };
}

/** 8 random hex characters naming this page load (event ids are `<pageId>-<seq>`). */
function randomPageId() {
  const bytes = new Uint8Array(4);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function errorText(err) {
  return String((err && err.message) || err);
}

/**
 * Connect `viewer` (the Viewer interface of ARCHITECTURE.md) to Python.
 *
 * Options: viewerId, viewerToken (from the page query; absent on standalone pages),
 * jupyter (query jupyter=true), baseUrl (the data server: the page's directory).
 * For tests: win (window), fetchImpl, now, timers, log, pinTimeoutMs.
 * Returns the bridge: {stats, notifyCustomEvent, onCommand, transport, dispose, idle}.
 */
export function installBridge(viewer, options = {}) {
  const win = options.win ?? globalThis.window;
  const {
    viewerId = null,
    viewerToken = null,
    jupyter = false,
    baseUrl = new URL(".", win.location.href),
    fetchImpl = (...args) => globalThis.fetch(...args),
    now = () => Date.now(),
    timers = globalThis,
    log = globalThis.console,
    pinTimeoutMs = PIN_TIMEOUT_MS,
    alsoHttp = false,
    pageId = randomPageId(),
  } = options;
  const base = new URL(String(baseUrl));
  const hasCredentials = typeof viewerId === "string" && viewerId !== "" && typeof viewerToken === "string" && viewerToken !== "";
  const framed = Boolean(win.parent) && win.parent !== win;
  const stats = newStats();
  const pin = new OriginPin();
  const customHandlers = new Map();
  const unsubscribers = [];
  let parentOrigin = null; // origin of the parent window, learnt from its authenticated commands
  let pending = []; // events waiting for the parent to pin its origin
  let pinTimer = null;
  let disposed = false;
  let commandChain = Promise.resolve();
  let eventSeq = 0;

  // ---- events out ----------------------------------------------------------------------

  // The credentials go in the query as well as in the body: the server checks them before
  // it reads a body (PROTOCOL.md), so strangers cannot make it hold large posts.
  function eventsUrl(eventId = null) {
    const url = new URL("_cellucid/events", base);
    const query = hasCredentials ? { viewerId, viewerToken } : {};
    if (eventId) query.eventId = eventId;
    url.search = new URLSearchParams(query).toString();
    return url;
  }

  async function postEvent(body, eventId = null, { keepalive = true } = {}) {
    const bytes = new TextEncoder().encode(JSON.stringify(body));
    const response = await fetchImpl(eventsUrl(eventId), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: bytes,
      cache: "no-store",
      credentials: "same-origin",
      keepalive: keepalive && bytes.length < KEEPALIVE_MAX_BYTES,
    });
    if (!response.ok) {
      let message = "";
      try {
        const answer = await response.json();
        if (answer && typeof answer.message === "string") message = `: ${answer.message}`;
      } catch {
        // not JSON: the status is enough
      }
      throw new Error(`POST _cellucid/events (${body.type}) answered HTTP ${response.status}${message}`);
    }
    // Read the answer even though it is only {"status":"ok",...}: Chrome returns a keepalive
    // request's share of its 64 KiB in-flight budget only once the body is consumed, and an
    // exhausted budget makes every later small event fail.
    if (typeof response.text === "function") await response.text().catch(() => "");
  }

  const outbox = new Outbox(postEvent, {
    onError(err) {
      stats.eventsFailed += 1;
      stats.lastEventError = errorText(err);
      if (stats.eventsFailed <= 5) log.warn(`cellucid bridge: ${stats.lastEventError}`);
    },
  });

  function setTransport(name) {
    stats.transport = name;
  }

  function deliver(body, eventId) {
    if (stats.transport === "parent") {
      try {
        win.parent.postMessage({ ...body, eventId }, parentOrigin);
        if (alsoHttp) outbox.push(body, eventId);
        return;
      } catch (err) {
        log.warn(`cellucid bridge: postMessage to the parent failed (${errorText(err)}); using HTTP`);
      }
    }
    outbox.push(body, eventId);
  }

  function send(type, payload) {
    if (disposed) return;
    if (stats.transport === "none") {
      stats.eventsDropped += 1;
      return;
    }
    const body = { type, viewerId, viewerToken, ...payload };
    const eventId = `${pageId}-${++eventSeq}`;
    stats.eventsSent += 1;
    stats.sentByType[type] = (stats.sentByType[type] || 0) + 1;
    if (stats.transport === "pending") {
      const last = pending[pending.length - 1];
      if (type === "hover" && last && last.body.type === "hover") pending[pending.length - 1] = { body, eventId };
      else pending.push({ body, eventId });
      return;
    }
    deliver(body, eventId);
  }

  function flushPending() {
    const queued = pending;
    pending = [];
    for (const { body, eventId } of queued) deliver(body, eventId);
  }

  if (!hasCredentials) {
    setTransport("none");
  } else if (jupyter && framed) {
    setTransport("pending");
    pinTimer = timers.setTimeout(() => {
      pinTimer = null;
      if (stats.transport !== "pending") return;
      log.warn(
        `cellucid bridge: the notebook widget did not send an authenticated command within ${pinTimeoutMs / 1000} s; sending events to ${eventsUrl().href}`,
      );
      setTransport("http");
      flushPending();
    }, pinTimeoutMs);
  } else {
    setTransport("http");
  }

  function commandError(command, reason) {
    send("command_error", { command, reason });
  }

  const hover = new HoverThrottle((payload) => send("hover", payload), { now, timers });

  function subscribe(name, handler) {
    if (typeof viewer.on !== "function") return;
    const off = viewer.on(name, (event) => {
      try {
        handler(event || {});
      } catch (err) {
        log.error(`cellucid bridge: could not forward ${name}: ${errorText(err)}`);
      }
    });
    if (typeof off === "function") unsubscribers.push(off);
  }

  subscribe("ready", (event) => {
    stats.ready = true;
    send("ready", readyPayload(event, viewer));
  });
  subscribe("selection", (event) => {
    send("selection", selectionPayload(event, viewer.nCells, encodeCellsForEvent));
  });
  subscribe("hover", (event) => hover.push(hoverPayload(event)));
  subscribe("click", (event) => {
    const payload = clickPayload(event);
    if (payload !== null) send("click", payload);
  });
  // Our `view` event: what colours the cells and the dimension shown, when either changes.
  let lastView = null;
  const sendView = () => {
    const field = viewer.field;
    const view = { color_by: field && typeof field.key === "string" ? field.key : null, dimension: viewer.dim ?? null };
    const key = JSON.stringify(view);
    if (key === lastView) return;
    lastView = key;
    send("view", view);
  };
  subscribe("field", sendView);
  subscribe("dimension", sendView);
  // ours: highlight groups and user-defined fields, after every change (user or command)
  subscribe("highlights", (groups) => send("groups", groupsPayload(groups, viewer.nCells, encodeCellsForEvent)));
  subscribe("fields", (fields) => send("user_fields", userFieldsPayload(fields)));
  subscribe("embedding", (e) => send("embedding", { key: e.key, dimension: e.dim }));
  subscribe("panels", (panels) => send("panels", { panels: panels.map((p) => ({ field: p.field, dimension: p.dim, embedding: p.embedding })), linked: viewer.panels.linked }));

  // ---- commands in ---------------------------------------------------------------------

  function reject(type, reason, { reply = false } = {}) {
    stats.rejected += 1;
    stats.lastRejection = { type, reason };
    log.warn(`cellucid bridge: rejected ${type}: ${reason}`);
    if (reply) commandError(type, reason);
  }

  function debugSnapshot(requestId) {
    let connected = null;
    try {
      const snap = typeof viewer.snapshot === "function" ? viewer.snapshot() : null;
      if (snap && typeof snap.connected === "boolean") connected = snap.connected;
    } catch {
      connected = null;
    }
    const ancestors = win.location.ancestorOrigins;
    return {
      requestId,
      ts: now(),
      locationHref: redactToken(win.location.href),
      origin: win.location.origin,
      serverUrl: base.href,
      connected,
      parentOrigin: parentOrigin ?? (framed && ancestors && ancestors.length ? ancestors[0] : null),
      userAgent: (win.navigator && win.navigator.userAgent) || "",
    };
  }

  async function uploadSessionBundle(requestId) {
    if (typeof viewer.sessionBundle !== "function") throw new Error("this viewer cannot write session bundles");
    const bytes = await viewer.sessionBundle();
    const url = new URL("_cellucid/session_bundle", base);
    url.search = new URLSearchParams({ viewerId, viewerToken, requestId }).toString();
    const response = await fetchImpl(url, {
      method: "POST",
      headers: { "Content-Type": "application/octet-stream" },
      body: bytes,
      cache: "no-store",
      credentials: "same-origin",
      // no keepalive: bundles are large (SPEC §4.3)
    });
    if (!response.ok) throw new Error(`upload answered HTTP ${response.status}`);
  }

  async function runMutation(command) {
    switch (command.type) {
      case "highlight":
        return viewer.highlight(command.cells, command.color, command.name);
      case "addField":
        return viewer.addUserField(
          command.kind === "category"
            ? { key: command.name, kind: "category", categories: command.categories, codes: command.values }
            : { key: command.name, kind: "continuous", values: command.values },
          "python",
        );
      case "clearHighlights":
        return viewer.clearHighlights();
      case "setColorBy":
        return viewer.setColorBy(command.field);
      case "setVisibility":
        return viewer.setVisibility(command.cells, command.visible);
      case "setSelection":
        return viewer.setSelection(command.cells, "python");
      case "setDimension":
        return viewer.setDimension(command.dimension);
      case "setEmbedding":
        return viewer.setEmbedding(command.key, command.dimension);
      case "split":
        if (command.linked !== undefined) viewer.panels.setLinked(command.linked);
        return viewer.split(command.panels);
      case "resetCamera":
        return viewer.resetCamera();
      case "requestSessionBundle":
        try {
          return await uploadSessionBundle(command.requestId);
        } catch (err) {
          throw new Error(`session bundle ${command.requestId}: ${errorText(err)}`);
        }
      default:
        return runCustom(command);
    }
  }

  function runCustom(command) {
    const handler = customHandlers.get(command.type);
    if (handler) return handler(command.payload);
    if (typeof viewer.handleCustomCommand === "function") {
      return viewer.handleCustomCommand(command.type, command.payload);
    }
    log.info(`cellucid bridge: no handler for the custom command ${command.type}`);
    return undefined;
  }

  function run(command) {
    stats.accepted += 1;
    stats.byType[command.type] = (stats.byType[command.type] || 0) + 1;
    // Replies and freeze happen at once; changes to the view run in arrival order, each
    // after the previous one finished (setColorBy may load a gene first).
    try {
      if (command.type === "ping") return send("pong", { requestId: command.requestId, t: now() });
      if (command.type === "debug_snapshot") return send("debug_snapshot", debugSnapshot(command.requestId));
      if (command.type === "freeze") return viewer.freeze();
    } catch (err) {
      return commandError(command.type, errorText(err));
    }
    commandChain = commandChain.then(async () => {
      try {
        await runMutation(command);
      } catch (err) {
        commandError(command.type, errorText(err));
      }
    });
    return undefined;
  }

  /** A command from postMessage (`event`: its MessageEvent) or from the command channel
   * (`event` null: the server authenticated the socket, so there is no origin to pin). */
  function receive(data, event) {
    if (disposed) return undefined;
    const { verdict, reason } = classifyMessage(data, { viewerId, viewerToken });
    if (verdict === "ignore") {
      stats.ignored += 1;
      return undefined;
    }
    if (verdict === "reject") return reject(data.type, reason);
    if (event !== null && !pinOrigin(event)) {
      return reject(data.type, `origin ${event.origin} is not the pinned origin ${pin.origin}`);
    }
    const checked = checkCommand(data, { nCells: viewer.nCells, decode: decodeCells });
    if (!checked.ok) return reject(data.type, checked.reason, { reply: true });
    run(checked.command);
    return undefined;
  }

  function pinOrigin(event) {
    if (!pin.admit(event.origin)) return false;
    stats.pinnedOrigin = pin.origin;
    if (parentOrigin === null && framed && event.source === win.parent && event.origin !== "null") {
      parentOrigin = event.origin;
      if (jupyter && stats.transport !== "parent") {
        if (pinTimer !== null) timers.clearTimeout(pinTimer);
        pinTimer = null;
        setTransport("parent");
        flushPending();
      }
    }
    return true;
  }

  function onMessage(event) {
    receive(event.data, event);
  }

  function onPageHide() {
    hover.flush();
    for (const { body, eventId } of outbox.drain()) {
      postEvent(body, eventId).catch(() => {});
    }
  }

  win.addEventListener("message", onMessage);
  win.addEventListener("pagehide", onPageHide);

  const bridge = {
    stats,
    get transport() {
      return stats.transport;
    },
    get pinnedOrigin() {
      return pin.origin;
    },
    /** Run a command that came by the command channel (channel.js): the checks of a
     * postMessage command (credentials, envelope, fields) except origin pinning. */
    command(data) {
      receive(data, null);
    },
    /** Handle a custom command type (instead of viewer.handleCustomCommand). */
    onCommand(type, handler) {
      customHandlers.set(type, handler);
    },
    /** Send a custom event; `data` must not carry type, viewerId or viewerToken. */
    notifyCustomEvent(type, data = {}) {
      if (typeof type !== "string" || !type) throw new TypeError("type must be a non-empty string");
      for (const key of ["type", "viewerId", "viewerToken"]) {
        if (data && Object.prototype.hasOwnProperty.call(data, key)) {
          throw new TypeError(`custom event data must not contain ${key}`);
        }
      }
      send(type, { ...data });
    },
    /** Resolves when queued HTTP events and pending commands are done (tests). */
    async idle() {
      await commandChain;
      await outbox.idle();
    },
    dispose() {
      disposed = true;
      hover.cancel();
      if (pinTimer !== null) timers.clearTimeout(pinTimer);
      win.removeEventListener("message", onMessage);
      win.removeEventListener("pagehide", onPageHide);
      for (const off of unsubscribers) off();
    },
  };
  __bridgeStats = stats;
  if (options.expose !== false) win.__cellucidBridge = bridge;
  return bridge;
}
