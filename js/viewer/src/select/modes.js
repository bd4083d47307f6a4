// Which selection mode a pointer gesture means, from its modifier keys. Pure module.
//
//   lasso, proximity   Shift: add · Alt or Ctrl/Cmd: subtract · Shift+Alt or Shift+Ctrl: intersect
//   click              Shift: add · Ctrl/Cmd: subtract · Shift+Ctrl: intersect; Alt picks the
//                      clicked cell's category (with the same Shift/Ctrl modes)
// Without a modifier a gesture uses the panel's mode (`fallback`, "replace" by default).

/**
 * @param {{shiftKey?: boolean, altKey?: boolean, ctrlKey?: boolean, metaKey?: boolean}} ev
 * @param {string} [fallback]
 * @returns {"replace"|"add"|"subtract"|"intersect"|string}
 */
export function modeFor(ev, fallback = "replace") {
  const minus = Boolean(ev.altKey || ev.ctrlKey || ev.metaKey);
  if (ev.shiftKey) return minus ? "intersect" : "add";
  return minus ? "subtract" : fallback;
}

/** The mode of a click (Alt is not a mode there: it picks the category). */
export function clickModeFor(ev, fallback = "replace") {
  return modeFor({ shiftKey: ev.shiftKey, ctrlKey: ev.ctrlKey, metaKey: ev.metaKey }, fallback);
}
