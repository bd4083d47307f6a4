// Which URL the widget's iframe loads (SPEC §6.8), as pure functions (node-tested).
//
// `direct` is Python's viewer URL (http://127.0.0.1:<port>/?jupyter=true&…, or the base
// from CELLUCID_CLIENT_SERVER_URL / Colab's port proxy). `proxy` is the same page through
// jupyter-server-proxy: <page origin><base_url>proxy/<port>/?<query of direct>. The proxy
// is tried first unless the page is a file: page; a loopback `direct` is only used when
// the notebook page itself is on a loopback http origin.

/** Is `url` an http://127.0.0.1 or http://localhost URL? */
export function isLoopbackUrl(url) {
  return /^http:\/\/(127\.0\.0\.1|localhost)[:/]/.test(String(url));
}

function isLoopbackHost(hostname) {
  return ["localhost", "127.0.0.1", "[::1]", "::1"].includes(String(hostname).toLowerCase());
}

/** The jupyter-server-proxy URL of `direct` for a page at `location` under `baseUrl`. */
export function proxyUrl(direct, { location, baseUrl = "/", port }) {
  let base = String(baseUrl || "/");
  if (!base.startsWith("/")) base = `/${base}`;
  if (!base.endsWith("/")) base = `${base}/`;
  return `${location.origin}${base}proxy/${port}/${new URL(direct).search}`;
}

/** A loopback `direct` on a page that is https or not itself on a loopback host. */
export function preferProxy(direct, location) {
  return isLoopbackUrl(direct) && (location.protocol === "https:" || !isLoopbackHost(location.hostname));
}

/** `_cellucid/health` in the directory of a viewer page URL. */
export function healthOf(pageUrl) {
  return new URL("_cellucid/health", new URL("./", pageUrl)).href;
}

/**
 * Decide the iframe URL.
 *
 * `probe(url)` resolves to true when a cellucid server answers `url` (a health URL).
 * `fixed` (the URL came from CELLUCID_CLIENT_SERVER_URL or Colab) skips the proxy.
 * Resolves to {url, via: "proxy" | "direct"} or {url: null, reason}.
 */
export async function chooseUrl({ direct, port, location, baseUrl, probe, fixed = false }) {
  if (!direct) return { url: null, reason: "Python has not given the viewer URL yet" };
  if (fixed) return { url: direct, via: "direct" };
  const prefer = preferProxy(direct, location);
  if (location.protocol !== "file:" || prefer) {
    const proxy = proxyUrl(direct, { location, baseUrl, port });
    if (await probe(healthOf(proxy))) return { url: proxy, via: "proxy" };
  }
  if (prefer) {
    return {
      url: null,
      reason:
        "This notebook is served from another machine or over https, so the browser cannot open " +
        `the cellucid server at ${new URL(direct).origin} directly, and ${proxyUrl(direct, { location, baseUrl, port }).split("?")[0]} ` +
        "did not answer. Install or enable jupyter-server-proxy in the Jupyter server's environment, " +
        "set CELLUCID_CLIENT_SERVER_URL to a URL the browser can reach, or use transport='comm'. " +
        "Run viewer.debug_connection() for details.",
    };
  }
  return { url: direct, via: "direct" };
}

/** The notebook's base URL: JupyterLab's page config, classic data-base-url, else "/". */
export function jupyterBaseUrl(doc = globalThis.document) {
  try {
    const config = doc.getElementById("jupyter-config-data");
    if (config) {
      const parsed = JSON.parse(config.textContent || "{}");
      if (typeof parsed.baseUrl === "string" && parsed.baseUrl) return parsed.baseUrl;
    }
    const attr = doc.body && doc.body.getAttribute("data-base-url");
    if (attr) return attr;
  } catch {
    // fall through
  }
  return "/";
}
