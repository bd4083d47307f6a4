// Finding the cellucid server that served this page.
//
// The server is the page's own directory: `_cellucid/health` is resolved relative to
// it, never to the host root, so the page keeps working behind a notebook proxy that
// mounts it under a prefix such as /user/me/proxy/8765/.

export const HEALTH_PATH = "_cellucid/health";

/** The directory of the page URL (query and hash dropped), as a URL. */
export function pageBase(href) {
  return new URL("./", href);
}

/** The health URL for a page URL. */
export function healthUrl(href) {
  return new URL(HEALTH_PATH, pageBase(href));
}

/**
 * Probe the health endpoint once.
 *
 * Resolves to one of
 *   {kind: "ok", health}       a cellucid server answered (health is its JSON body)
 *   {kind: "static", health}   a static host that announces itself as such
 *   {kind: "none", detail}     nothing that looks like a cellucid server (404, not JSON, offline)
 *   {kind: "error", detail}    a cellucid server that reports a problem
 * and never rejects.
 */
export async function probeHealth(url, { timeoutMs = 5000, fetchImpl = fetch } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const response = await fetchImpl(url, {
      cache: "no-store",
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      signal: controller.signal,
    });
    if (response.status === 404) {
      return { kind: "none", detail: `${url} answered 404 Not Found` };
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      return { kind: "none", detail: `${url} did not answer with JSON (HTTP ${response.status})` };
    }
    if (!response.ok) {
      const message = body && typeof body.message === "string" ? body.message : "";
      return { kind: "error", detail: `HTTP ${response.status}${message ? `: ${message}` : ""}` };
    }
    if (!body || typeof body !== "object" || Array.isArray(body)) {
      return { kind: "none", detail: `${url} answered JSON that is not an object` };
    }
    if (body.status === "ok") return { kind: "ok", health: body };
    if (body.status === "static") return { kind: "static", health: body };
    return { kind: "error", detail: `unexpected health status ${JSON.stringify(body.status)}` };
  } catch (err) {
    const detail = err && err.name === "AbortError" ? `no answer within ${timeoutMs / 1000} s` : String((err && err.message) || err);
    return { kind: "none", detail };
  } finally {
    clearTimeout(timer);
  }
}

/** Label/value rows describing a health payload, for display. */
export function describeHealth(health) {
  const rows = [];
  const add = (label, value) => {
    if (value !== undefined && value !== null && value !== "") rows.push([label, String(value)]);
  };
  add("Server version", health.version);
  if (health.type === "anndata") {
    add("Mode", "AnnData (live)");
    add("Format", health.format);
    if (typeof health.is_backed === "boolean") add("Backed", health.is_backed ? "yes" : "no");
    if (Number.isFinite(health.n_cells)) add("Cells", health.n_cells.toLocaleString("en-US"));
    if (Number.isFinite(health.n_genes)) add("Genes", health.n_genes.toLocaleString("en-US"));
  } else if (health.type === "exported") {
    add("Mode", "exported dataset folder");
  } else {
    add("Mode", health.type);
  }
  return rows;
}
