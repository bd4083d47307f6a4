// Compare on the server (PROTOCOL.md): `POST _cellucid/compare?viewerId&viewerToken&dataset` with
// the binary body of analysis/body.js, the NDJSON answer read as it streams (over the notebook
// comm the whole answer arrives at once; it is read the same way). Page credentials come from the
// page query, or from `POST _cellucid/viewers` for a plain `cellucid serve` tab. URLs are relative
// to the page directory, like every request of the viewer; `fetch` is looked up at call time so
// the comm transport's replacement is used.
//
// No DOM: node tests pass their own fetch.

import { resolveUrl } from "../data/http.js";
import { readNdjson } from "./ndjson.js";

/** The server has no such route (an older cellucid, or not cellucid): compute in the browser. */
export const NO_ROUTE = Symbol("no compare route");

/** An error answer of a cellucid route: {status: "error", message}. */
export class RouteError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "RouteError";
    this.status = status;
  }
}

async function jsonError(res) {
  try {
    const body = await res.json();
    if (body && body.status === "error" && typeof body.message === "string") return body.message;
  } catch {
    // not JSON: not one of our routes
  }
  return null;
}

/**
 * A failed answer: NO_ROUTE when the route is missing (404/405/501 that is not a cellucid JSON
 * error), else a RouteError.
 */
async function failure(res, what) {
  const message = await jsonError(res);
  if (message === null && [404, 405, 501].includes(res.status)) return NO_ROUTE;
  return new RouteError(res.status, `${what} answered HTTP ${res.status}${message ? `: ${message}` : ""}`);
}

const fetchNow = (...args) => globalThis.fetch(...args);

/**
 * Credentials for this page from `POST _cellucid/viewers`, or NO_ROUTE.
 *
 * @param {URL|string} base the page directory
 * @returns {Promise<{viewerId: string, viewerToken: string}|typeof NO_ROUTE>}
 */
export async function requestCredentials(base, fetchImpl = fetchNow) {
  const res = await fetchImpl(resolveUrl(base, "_cellucid/viewers"), { method: "POST", cache: "no-store", credentials: "same-origin" });
  if (!res.ok) {
    const out = await failure(res, "POST _cellucid/viewers");
    if (out === NO_ROUTE) return out;
    throw out;
  }
  const body = await res.json();
  if (!body || typeof body.viewerId !== "string" || typeof body.viewerToken !== "string") throw new Error("POST _cellucid/viewers: no viewerId/viewerToken in the answer");
  return { viewerId: body.viewerId, viewerToken: body.viewerToken };
}

/**
 * Run one comparison on the server.
 *
 * @param {{base: URL|string, credentials: {viewerId: string, viewerToken: string}, datasetId?: string,
 *   body: Uint8Array, signal?: AbortSignal, onMessage: (msg: object) => void, fetchImpl?: typeof fetch}} opts
 * @returns {Promise<true|typeof NO_ROUTE>} true once the "result" line was handled
 * @throws {RouteError} for an error answer (403/404 about the credentials, 400, 409, …) or an
 *   "error" line; an AbortError when the signal aborts
 */
export async function runServerCompare({ base, credentials, datasetId, body, signal, onMessage, fetchImpl = fetchNow }) {
  const query = new URLSearchParams({ viewerId: credentials.viewerId, viewerToken: credentials.viewerToken });
  if (datasetId) query.set("dataset", datasetId);
  const res = await fetchImpl(resolveUrl(base, `_cellucid/compare?${query}`), {
    method: "POST",
    headers: { "Content-Type": "application/octet-stream" },
    body,
    signal,
    cache: "no-store",
    credentials: "same-origin",
  });
  if (!res.ok) {
    const out = await failure(res, "POST _cellucid/compare");
    if (out === NO_ROUTE) return out;
    throw out;
  }
  let finished = false;
  let failed = null;
  await readNdjson(
    res.body,
    (msg) => {
      if (finished || failed) return;
      if (msg.type === "error") failed = new RouteError(200, `the server could not compare: ${msg.message}`);
      else {
        onMessage({ ...msg, ...(msg.type === "start" ? { source: "server" } : {}) });
        if (msg.type === "result") finished = true;
      }
    },
    () => res.arrayBuffer(),
  );
  if (failed) throw failed;
  if (!finished) throw new RouteError(200, "the server's answer ended before the result");
  return true;
}
