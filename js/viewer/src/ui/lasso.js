// Lasso drawing over the canvas (an SVG polygon); the selection itself is Viewer.lasso().

import { modeFor } from "../select/modes.js";

const SVGNS = (() => {
  const d = document.createElement("div");
  d.innerHTML = "<svg></svg>";
  return d.firstChild.namespaceURI;
})();

export { modeFor };

/**
 * Lasso drawing on `layer`; `onDone(polygon, mode)` when the pointer is released. The mode comes
 * from the modifier keys (select/modes.js), else from `defaultMode()` (the panel's mode).
 */
export function installLasso(layer, onDone, { defaultMode = () => "replace" } = {}) {
  const poly = document.createElementNS(SVGNS, "polygon");
  poly.setAttribute("class", "lasso-poly");
  layer.append(poly);
  let pts = null;
  let mode = "replace";
  const rel = (e) => {
    const r = layer.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  };
  const draw = () => poly.setAttribute("points", pts ? pts.map((p) => p.join(",")).join(" ") : "");
  layer.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    layer.setPointerCapture(e.pointerId);
    pts = [rel(e)];
    mode = modeFor(e, defaultMode());
    layer.dataset.mode = mode;
    draw();
  });
  layer.addEventListener("pointermove", (e) => {
    if (!pts) return;
    const p = rel(e);
    const q = pts[pts.length - 1];
    if ((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 >= 9) {
      pts.push(p);
      draw();
    }
  });
  const end = (e) => {
    if (!pts) return;
    const done = pts;
    pts = null;
    draw();
    if (done.length >= 3) onDone(done, e.shiftKey || e.altKey || e.ctrlKey || e.metaKey ? modeFor(e) : mode);
  };
  layer.addEventListener("pointerup", end);
  layer.addEventListener("pointercancel", () => ((pts = null), draw()));
  return { svgns: SVGNS };
}

export { SVGNS };
