// Requests over the notebook comm: the widget's "comm" transport.
//
// When the browser cannot reach the data server at all (VS Code over SSH, locked-down
// hubs), the notebook widget loads this page from a blob and carries its requests to
// Python over the Jupyter comm. `installCommFetch` replaces `fetch` for every URL under
// `base` (a placeholder origin that no network request ever goes to): the request is
// posted to the parent window as
//     {type: "cellucid:fetch", id, path, method, headers, body}
// (`path` is relative to `base`, query included; `body` an ArrayBuffer or null) and the
// parent answers with
//     {type: "cellucid:fetch-reply", id, status, headers, body}
// (`body` an ArrayBuffer, transferred). Other URLs go to the real fetch. The rest of the
// viewer does not know: it sees ordinary Response objects.
//
// No DOM beyond postMessage/addEventListener: node tests pass a fake window.

import { abortError } from "./http.js";

/** The placeholder base URL of a page loaded over the comm. */
export const COMM_BASE = "https://comm.cellucid.invalid/";

export const FETCH_TYPE = "cellucid:fetch";
export const REPLY_TYPE = "cellucid:fetch-reply";

async function bodyBytes(body) {
  if (body === undefined || body === null) return null;
  if (typeof body === "string") return new TextEncoder().encode(body).buffer;
  if (body instanceof ArrayBuffer) return body.slice(0);
  if (ArrayBuffer.isView(body)) return body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength);
  if (typeof body.arrayBuffer === "function") return body.arrayBuffer(); // Blob
  throw new TypeError(`comm fetch cannot send a body of type ${Object.prototype.toString.call(body)}`);
}

function plainHeaders(headers) {
  if (!headers) return {};
  if (typeof headers.forEach === "function" && !Array.isArray(headers)) {
    const out = {};
    headers.forEach((value, key) => (out[key.toLowerCase()] = value));
    return out;
  }
  const entries = Array.isArray(headers) ? headers : Object.entries(headers);
  return Object.fromEntries(entries.map(([k, v]) => [String(k).toLowerCase(), String(v)]));
}

/**
 * Route `fetch` for URLs under `base` through the parent window.
 *
 * Options: win (the window), base (COMM_BASE), parentOrigin (target origin of the posts:
 * the notebook page's origin), realFetch (for other URLs), makeResponse (tests).
 * Returns {fetch, pending(), dispose()}; also installs itself as `win.fetch` unless
 * `install: false`.
 */
export function installCommFetch(options = {}) {
  const win = options.win ?? globalThis.window;
  const base = String(options.base ?? COMM_BASE);
  const parentOrigin = options.parentOrigin ?? win.location.origin;
  const realFetch = options.realFetch ?? win.fetch?.bind(win);
  const makeResponse = options.makeResponse ?? ((body, init) => new Response(body, init));
  const waiting = new Map(); // id -> {resolve, reject}
  let nextId = 0;

  function onMessage(event) {
    if (event.source !== win.parent) return;
    const data = event.data;
    if (!data || data.type !== REPLY_TYPE || !waiting.has(data.id)) return;
    const { resolve } = waiting.get(data.id);
    waiting.delete(data.id);
    const status = Number.isInteger(data.status) ? data.status : 502;
    const nullBody = status === 204 || status === 304;
    resolve(makeResponse(nullBody ? null : data.body ?? new ArrayBuffer(0), { status, headers: data.headers || {} }));
  }
  win.addEventListener("message", onMessage);

  async function commFetch(input, init = {}) {
    const href = typeof input === "string" || input instanceof URL ? String(input) : input.url;
    const url = new URL(href, base);
    if (!url.href.startsWith(base)) return realFetch(input, init);
    const signal = init.signal;
    if (signal && signal.aborted) throw abortError();
    const id = ++nextId;
    const message = {
      type: FETCH_TYPE,
      id,
      path: url.href.slice(base.length),
      method: String(init.method || "GET").toUpperCase(),
      headers: plainHeaders(init.headers),
      body: await bodyBytes(init.body),
    };
    return new Promise((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      if (signal) {
        signal.addEventListener("abort", () => {
          if (waiting.delete(id)) reject(abortError());
        });
      }
      win.parent.postMessage(message, parentOrigin, message.body ? [message.body] : []);
    });
  }

  const handle = {
    fetch: commFetch,
    pending: () => waiting.size,
    dispose() {
      win.removeEventListener("message", onMessage);
      for (const { reject } of waiting.values()) reject(new Error("comm transport closed"));
      waiting.clear();
    },
  };
  if (options.install !== false) win.fetch = commFetch;
  return handle;
}
