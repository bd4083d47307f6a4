// The column cache's progress (PROTOCOL.md "Server start and the column cache"): in AnnData
// mode the server builds a gene-major copy of a cell-major X in the background and reports it
// in GET _cellucid/info as column_cache {state, progress, error}. A small line in the stage
// says "gene cache 42%" while it builds and goes away once it is ready. `info` is polled only
// while the cache is pending or building, less often the longer it takes (1 s up to 10 s).

import { h } from "./dom.js";

export const FIRST_POLL_MS = 1000;
export const MAX_POLL_MS = 10_000;

/** The line to show for a column_cache status, or null (nothing to say). */
export function cacheStatusText(cc) {
  if (!cc || typeof cc !== "object") return null;
  if (cc.state === "pending") return "gene cache: waiting for the file";
  if (cc.state === "building") return `gene cache ${Math.floor(Math.max(0, Math.min(1, cc.progress || 0)) * 100)}%`;
  if (cc.state === "error") return `gene cache failed (genes are read from the file): ${cc.error || "unknown error"}`;
  return null; // ready, idle, none
}

/** Does the status still change (keep polling)? */
export function cacheBuilding(cc) {
  return !!cc && (cc.state === "pending" || cc.state === "building");
}

/** The next poll delay after `ms`: ×1.5, at most MAX_POLL_MS. */
export function nextPollMs(ms) {
  return Math.min(MAX_POLL_MS, Math.round(ms * 1.5));
}

/**
 * Show the cache's progress in `el` (hidden when there is nothing to say).
 *
 * @param {HTMLElement} el
 * @param {() => Promise<object>} fetchInfo resolves to the /_cellucid/info body
 * @param {{initial?: object, timers?: {setTimeout, clearTimeout}}} [opts] `initial`: an info body
 *   already at hand (no first request)
 * @returns {{stop: () => void, polls: () => number}}
 */
export function watchCacheStatus(el, fetchInfo, { initial = null, timers = globalThis } = {}) {
  let timer = null;
  let stopped = false;
  let polls = 0;
  let delay = FIRST_POLL_MS;
  const show = (cc) => {
    const text = cacheStatusText(cc);
    el.hidden = text === null;
    el.textContent = text || "";
    el.dataset.state = cc ? String(cc.state) : "";
  };
  const tick = async () => {
    timer = null;
    if (stopped) return;
    let cc = null;
    try {
      polls++;
      cc = (await fetchInfo()).column_cache || null;
    } catch {
      cc = undefined; // the server is busy or gone: the health poll says so; try again later
    }
    if (stopped) return;
    if (cc !== undefined) show(cc);
    if (cc === undefined || cacheBuilding(cc)) {
      timer = timers.setTimeout(tick, delay);
      delay = nextPollMs(delay);
    }
  };
  if (initial) {
    show(initial.column_cache || null);
    if (cacheBuilding(initial.column_cache)) timer = timers.setTimeout(tick, delay);
  } else tick();
  return {
    stop() {
      stopped = true;
      if (timer !== null) timers.clearTimeout(timer);
    },
    polls: () => polls,
  };
}

/** The status line element for the stage. */
export function cacheStatusElement() {
  return h("div.cache-status", { role: "status", "aria-live": "polite", hidden: true });
}
