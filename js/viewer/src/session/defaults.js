// Which session opens with the dataset (python/cellucid/server/PROTOCOL.md "Default session"):
//   1. `?session=<url>` on the page (relative to the page, or absolute);
//   2. with a cellucid server: GET _cellucid/default_session?dataset=<id> (200: the bundle, 204:
//      none). The export server answers from <dataset>/default.cellucid-session (the web app's
//      convention) or the sibling <dataset folder>.cellucid-session that prepare() writes; the
//      AnnData server from the AnnData's scanpy colours and its `session=` file;
//   3. on a static host: the same two files by URL (404: none).
// Pure of the DOM; `fetchImpl` is a parameter.

export const DEFAULT_SESSION_NAME = "default.cellucid-session";
export const SESSION_SUFFIX = ".cellucid-session";

/**
 * The URLs a static host is asked for, in order: inside the dataset folder, then its sibling.
 *
 * @param {URL|string} datasetBase the dataset directory URL (ends with "/")
 * @returns {URL[]}
 */
export function staticCandidates(datasetBase) {
  const base = new URL(String(datasetBase));
  const out = [new URL(DEFAULT_SESSION_NAME, base)];
  const segments = base.pathname.split("/").filter(Boolean);
  const dir = segments.length ? decodeURIComponent(segments[segments.length - 1]) : "";
  if (dir) out.push(new URL(`../${encodeURIComponent(dir)}${SESSION_SUFFIX}`, base));
  return out;
}

async function bytesOf(response, what) {
  if (!response.ok) throw new Error(`${what}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/**
 * Find the session to open with the dataset.
 *
 * @param {{sessionParam?: string|null, pageHref: string, mode: "server"|"static", pageBase: URL,
 *   datasetId: string, datasetBase: URL, fetchImpl?: typeof fetch}} opts
 * @returns {Promise<{bytes: Uint8Array, from: string, explicit: boolean}|null>} null: none
 * @throws {Error} (rejects) when a session exists but cannot be fetched
 */
export async function findDefaultSession({ sessionParam = null, pageHref, mode, pageBase, datasetId, datasetBase, fetchImpl = globalThis.fetch }) {
  if (sessionParam) {
    const url = new URL(sessionParam, pageHref);
    return { bytes: await bytesOf(await fetchImpl(url, { cache: "no-cache" }), `?session=${sessionParam}`), from: sessionParam, explicit: true };
  }
  if (mode === "server") {
    const url = new URL(`_cellucid/default_session?dataset=${encodeURIComponent(datasetId)}`, pageBase);
    const r = await fetchImpl(url, { cache: "no-store" });
    if (r.status === 204 || r.status === 404) return null; // none (404: a server without the route)
    return { bytes: await bytesOf(r, "the server's default session"), from: "the server's default session", explicit: false };
  }
  for (const url of staticCandidates(datasetBase)) {
    let r;
    try {
      r = await fetchImpl(url, { cache: "no-cache" });
    } catch {
      continue; // a static host that refuses the request has no session for us
    }
    if (r.status === 404 || r.status === 403) continue;
    const name = decodeURIComponent(url.pathname.split("/").pop());
    return { bytes: await bytesOf(r, name), from: name, explicit: false };
  }
  return null;
}
