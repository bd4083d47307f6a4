// The scene's overlays as SVG for the figure export, exactly as drawn: KNN edges (only those
// with both ends visible, under the points), highlight marks and selection rings of visible
// cells, vector arrows and category labels (over the points). Styles come from
// render/overlaystyle.js, positions from the scene's current projection.

import { overlayStyle, svgPaint } from "./overlaystyle.js";

const f1 = (v) => v.toFixed(1);

/** Is a point (CSS px) within the figure, with a margin? NaN (behind the camera) is not. */
const onCanvas = (x, y, w, h, m) => x >= -m && y >= -m && x <= w + m && y <= h + m;

/** One <path> of segments (screen x0,y0 → x1,y1 pairs); segments with no end on canvas are left out. */
function segmentsPath(cls, a, b, w, h, paint, width) {
  const d = [];
  for (let j = 0; j < a.length; j += 2) {
    const [x0, y0, x1, y1] = [a[j], a[j + 1], b[j], b[j + 1]];
    if (!(x0 === x0 && x1 === x1)) continue;
    if (!onCanvas(x0, y0, w, h, 0) && !onCanvas(x1, y1, w, h, 0)) continue;
    d.push(`M${f1(x0)} ${f1(y0)}L${f1(x1)} ${f1(y1)}`);
  }
  if (!d.length) return "";
  const p = svgPaint(paint);
  return `<path class="${cls}" fill="none" stroke="${p.rgb}" stroke-opacity="${p.opacity}" stroke-width="${width}" d="${d.join("")}"/>`;
}

/** World segment buffers (stride 3) → screen, keeping segment j only when keep(j). */
function projectSegments(scene, src, dst, length, keep) {
  let m = 0;
  for (let j = 0; j < length; j++) if (!keep || keep[j]) m++;
  const a = new Float32Array(m * 3);
  const b = new Float32Array(m * 3);
  for (let j = 0, k = 0; j < length; j++) {
    if (keep && !keep[j]) continue;
    a.set(src.subarray(j * 3, j * 3 + 3), k * 3);
    b.set(dst.subarray(j * 3, j * 3 + 3), k * 3);
    k++;
  }
  return [scene.project(a, 3), scene.project(b, 3)];
}

function circles(xy, r, w, h) {
  const out = [];
  for (let j = 0; j < xy.length; j += 2) {
    const x = xy[j];
    const y = xy[j + 1];
    if (onCanvas(x, y, w, h, r)) out.push(`<circle cx="${f1(x)}" cy="${f1(y)}" r="${r}"/>`);
  }
  return out.join("");
}

const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/**
 * @param {import("./scene.js").Scene} scene
 * @param {{width: number, height: number}} size the plot area (CSS px)
 * @returns {{under: string, over: string}} SVG fragments drawn before / after the points
 */
export function overlaySvg(scene, { width: w, height: h }) {
  const st = overlayStyle(scene);
  let under = "";
  const over = [];
  if (scene.showEdges && scene.edges && scene.edges.shown) {
    const e = scene.edges;
    const [a, b] = projectSegments(scene, e.src, e.dst, e.length, e.widths);
    under = segmentsPath("knn-edges", a, b, w, h, st.edge.color, st.edge.width);
  }
  for (const g of scene.highlights) {
    if (!g.positions || !g.shown || !g.shown.length) continue;
    const fill = svgPaint([...g.rgb, st.highlight.alpha]);
    const stroke = svgPaint(st.highlight.stroke);
    const marks = circles(scene.project(g.positions, scene.size), st.highlight.radius, w, h);
    if (marks) over.push(`<g class="highlight" data-group="${esc(g.id)}" fill="${fill.rgb}" fill-opacity="${fill.opacity}" stroke="${stroke.rgb}" stroke-opacity="${stroke.opacity}" stroke-width="${st.highlight.strokeWidth}">${marks}</g>`);
  }
  if (scene.selectionPositions) {
    const stroke = svgPaint(st.selection.stroke);
    const rings = circles(scene.project(scene.selectionPositions, scene.size), st.selection.radius, w, h);
    if (rings) over.push(`<g class="selection" fill="none" stroke="${stroke.rgb}" stroke-opacity="${stroke.opacity}" stroke-width="${st.selection.strokeWidth}">${rings}</g>`);
  }
  if (scene.showVectors && scene.vectors && scene.vectors.length) {
    const v = scene.vectors;
    const [a, b] = projectSegments(scene, v.src, v.dst, v.length, null);
    over.push(segmentsPath("vectors", a, b, w, h, st.vector.color, st.vector.width));
  }
  if (scene.labels) {
    const l = st.label;
    const xy = scene.project(Float32Array.from(scene.labels.flatMap((d) => d.position)), 3);
    const fill = svgPaint(l.color);
    const halo = svgPaint(l.halo);
    const texts = [];
    scene.labels.forEach((d, j) => {
      const x = xy[2 * j];
      const y = xy[2 * j + 1];
      if (onCanvas(x, y, w, h, 0)) texts.push(`<text x="${f1(x)}" y="${f1(y)}">${esc(d.text)}</text>`);
    });
    if (texts.length) {
      over.push(
        `<g class="labels" font-family="${esc(l.font)}" font-size="${l.size}" font-weight="${l.weight}" text-anchor="middle" dominant-baseline="central" fill="${fill.rgb}" fill-opacity="${fill.opacity}" stroke="${halo.rgb}" stroke-opacity="${halo.opacity}" stroke-width="${l.haloWidth}" stroke-linejoin="round" paint-order="stroke">${texts.join("")}</g>`,
      );
    }
  }
  // wrapped, so the figure's top level keeps one group of cell marks (<g class="cells">)
  return { under: under && `<g class="underlays">${under}</g>`, over: over.length ? `<g class="overlays">${over.join("")}</g>` : "" };
}
