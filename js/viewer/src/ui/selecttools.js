// The Selection section of the side panel: pointer tools (pan/rotate, lasso, proximity), the
// combine mode (shown live while modifier keys are held), kNN grow, invert, undo / redo and
// clear, and their keyboard shortcuts.

import { h, fmtInt } from "./dom.js";
import { modeFor } from "../select/modes.js";

const MODES = [
  ["replace", "Replace", "New selection (no modifier key)"],
  ["add", "Add", "Add to the selection (Shift)"],
  ["subtract", "Subtract", "Remove from the selection (Alt or Ctrl)"],
  ["intersect", "Intersect", "Keep only cells in both (Shift+Alt or Shift+Ctrl)"],
];
const HINT =
  "Click a cell to pick it; Alt+click picks its category of the coloured field. Lasso (L): drag around cells. " +
  "Proximity (P): drag a disc out from a point (a ball in 3D). Shift adds, Alt or Ctrl subtracts, Shift+Alt intersects. " +
  "G grows along the kNN graph, I inverts, Ctrl+Z / Ctrl+Shift+Z undo and redo, Esc clears.";

function say(status, err) {
  status.textContent = err ? err.message || String(err) : "";
}

/**
 * @param {import("../app/viewer.js").Viewer} viewer
 * @param {{onTool: (tool: string) => void, section: Function}} opts
 * @returns {HTMLElement} the section
 */
export function selectionSection(viewer, { onTool, section }) {
  const status = h("div.small.sel-status", { "aria-live": "polite" });
  viewer.on("notice", (text) => (status.textContent = text));
  const selCount = h("span.sel-count", { text: "none" });
  const toolBtn = (tool, text, title) => h("button", { type: "button", text, "data-tool": tool, title, on: { click: () => onTool(tool) } });
  const toolBtns = h(
    "div.seg",
    { role: "group", "aria-label": "Pointer tool" },
    toolBtn("navigate", viewer.dim === 3 ? "Rotate" : "Pan", "Navigate; click a cell to pick it (N)"),
    toolBtn("lasso", "Lasso", "Lasso (L): drag around cells"),
    toolBtn("proximity", "Proximity", "Proximity (P): drag a disc out from a point (a ball in 3D)"),
  );
  viewer.on("tool", (t) => toolBtns.querySelectorAll("button").forEach((b) => b.classList.toggle("on", b.dataset.tool === t)));
  viewer.on("dimension", (d) => (toolBtns.firstChild.textContent = d === 3 ? "Rotate" : "Pan"));

  // ---- combine mode: the panel's choice, overridden (and shown) while modifier keys are held
  const modeBtns = h(
    "div.seg.sel-modes",
    { role: "group", "aria-label": "Selection mode" },
    ...MODES.map(([mode, text, title]) => h("button", { type: "button", text, title, "data-mode": mode, on: { click: () => setMode(mode) } })),
  );
  let held = null;
  const markMode = () => {
    const shown = held || viewer.selectMode;
    modeBtns.querySelectorAll("button").forEach((b) => {
      b.classList.toggle("on", b.dataset.mode === viewer.selectMode);
      b.classList.toggle("held", b.dataset.mode === held);
    });
    modeBtns.dataset.effective = shown;
  };
  function setMode(mode) {
    viewer.selectMode = mode;
    markMode();
  }
  const onKeys = (e) => {
    const mode = modeFor(e, null);
    held = mode && mode !== viewer.selectMode ? mode : null;
    markMode();
  };
  window.addEventListener("keydown", onKeys);
  window.addEventListener("keyup", onKeys);
  window.addEventListener("blur", () => ((held = null), markMode()));
  markMode();

  // ---- actions
  const action = (name, text, title, fn) =>
    h("button.btn", {
      type: "button",
      text,
      title,
      "data-action": name,
      on: { click: () => Promise.resolve().then(fn).then(() => say(status, null), (err) => say(status, err)) },
    });
  const undoBtn = action("undo", "Undo", "Undo the last selection step (Ctrl+Z)", () => viewer.undoSelection());
  const redoBtn = action("redo", "Redo", "Redo (Ctrl+Shift+Z)", () => viewer.redoSelection());
  const invertBtn = action("invert", "Invert", "Select the drawn cells that are not selected (I)", () => viewer.invertSelection());
  const clearBtn = action("clear", "Clear", "Clear the selection (Esc)", () => viewer.clearSelection());
  const hops = h("input.hops", { type: "number", min: 1, max: 20, step: 1, value: 1, "aria-label": "kNN hops" });
  const hasGraph = Boolean(viewer.dataset.connectivity);
  const growBtn = action("grow", "Grow", hasGraph ? "Add the selection's neighbours on the kNN graph (G)" : "This dataset has no kNN graph", () => viewer.growSelection(Math.max(1, parseInt(hops.value, 10) || 1)));
  growBtn.disabled = !hasGraph;
  hops.disabled = !hasGraph;
  const refresh = ({ cells }) => {
    selCount.textContent = cells.length ? `${fmtInt(cells.length)} cells` : "none";
    clearBtn.disabled = !cells.length;
    growBtn.disabled = !hasGraph || !cells.length;
    undoBtn.disabled = !viewer.history.canUndo;
    redoBtn.disabled = !viewer.history.canRedo;
  };
  viewer.on("selectionchange", refresh);
  refresh({ cells: viewer.selection });

  // ---- keys (the panel's inputs keep theirs)
  window.addEventListener("keydown", (e) => {
    if (viewer.frozen || e.target.closest("input, select, textarea")) return;
    const ctrl = e.ctrlKey || e.metaKey;
    const key = e.key.toLowerCase();
    if (ctrl && key === "z") (e.shiftKey ? redoBtn : undoBtn).click();
    else if (ctrl && key === "y") redoBtn.click();
    else if (ctrl || e.altKey) return;
    else if (key === "p") onTool(viewer.tool === "proximity" ? "navigate" : "proximity");
    else if (key === "i") invertBtn.click();
    else if (key === "g" && !growBtn.disabled) growBtn.click();
    else return;
    e.preventDefault();
  });

  return section(
    "Selection",
    h("div.row", {}, toolBtns, selCount),
    h("div.row", {}, modeBtns),
    h("div.row", {}, undoBtn, redoBtn, invertBtn, clearBtn),
    h("div.row", { title: "kNN grow: add the cells within this many steps on the kNN graph" }, growBtn, h("span", { text: "hops" }), hops),
    status,
    h("p.hint.muted.small", { text: HINT }),
  );
}
