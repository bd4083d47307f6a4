// Proximity drawing over the canvas: press at the centre, drag out the radius (an SVG circle);
// on release `onDone(start, end, mode)` with canvas pixels. The selection itself is
// app/selecttools.js (a disc in 2D, a ball in 3D, in embedding coordinates).

import { modeFor, SVGNS } from "./lasso.js";

/**
 * @param {SVGSVGElement} layer an SVG element over the canvas (hidden unless the tool is on)
 * @param {(start: number[], end: number[], mode: string) => void} onDone
 * @param {{defaultMode?: () => string}} [opts]
 */
export function installProximity(layer, onDone, { defaultMode = () => "replace" } = {}) {
  const disc = document.createElementNS(SVGNS, "circle");
  disc.setAttribute("class", "proximity-disc");
  disc.setAttribute("r", "0");
  layer.append(disc);
  let start = null;
  let mode = "replace";
  const rel = (e) => {
    const r = layer.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  };
  const draw = (end) => {
    if (!start) return disc.setAttribute("r", "0");
    disc.setAttribute("cx", String(start[0]));
    disc.setAttribute("cy", String(start[1]));
    disc.setAttribute("r", String(Math.hypot(end[0] - start[0], end[1] - start[1])));
  };
  layer.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    layer.setPointerCapture(e.pointerId);
    start = rel(e);
    mode = modeFor(e, defaultMode());
    layer.dataset.mode = mode;
    draw(start);
  });
  layer.addEventListener("pointermove", (e) => start && draw(rel(e)));
  layer.addEventListener("pointerup", (e) => {
    if (!start) return;
    const from = start;
    const to = rel(e);
    start = null;
    draw(to);
    if (Math.hypot(to[0] - from[0], to[1] - from[1]) >= 2) onDone(from, to, e.shiftKey || e.altKey || e.ctrlKey || e.metaKey ? modeFor(e) : mode);
  });
  layer.addEventListener("pointercancel", () => ((start = null), draw(null)));
}
