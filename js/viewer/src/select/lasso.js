// Lasso selection on typed arrays: project points to the screen, test them against a polygon,
// combine the result with the current selection. Pure module (browser and node).
//
// Screen coordinates are CSS pixels with the origin at the top-left corner of the canvas and y
// pointing down, the coordinates of pointer events relative to the canvas.

import { combine, sortedUnique } from "./sets.js";

export { sortedUnique };

/**
 * Project points to screen pixels with a column-major 4×4 view-projection matrix (the layout of
 * deck.gl's `viewport.viewProjectionMatrix` and gl-matrix). The matrix must map the coordinates
 * stored in `positions` to clip space. Points are padded with zeros to 3D and w = 1.
 *
 * A point whose clip w ≤ 0 (behind the camera) or whose depth lies outside the clip volume
 * (|z| > w: before the near or beyond the far plane) gets NaN, NaN, so it is never inside a
 * polygon. Points left or right of the viewport keep their (off-screen) coordinates.
 *
 * @param {Float32Array} positions row-major (n, dim)
 * @param {1|2|3} dim
 * @param {Float32Array|Float64Array|number[]} viewProjMatrix 16 numbers, column-major
 * @param {number} width viewport width in pixels
 * @param {number} height viewport height in pixels
 * @param {Float32Array} [out] length ≥ 2n; allocated when omitted
 * @returns {Float32Array} x0, y0, x1, y1, …
 */
export function projectToScreen(positions, dim, viewProjMatrix, width, height, out) {
  if (dim !== 1 && dim !== 2 && dim !== 3) throw new Error(`dim must be 1, 2 or 3, got ${dim}`);
  if (positions.length % dim !== 0) throw new Error(`positions length ${positions.length} is not a multiple of dim ${dim}`);
  const n = positions.length / dim;
  const xy = out ?? new Float32Array(2 * n);
  if (xy.length < 2 * n) throw new Error(`output holds ${xy.length} values, needs ${2 * n}`);
  const m = viewProjMatrix;
  const [m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14, m15] = Array.from(m);
  const hw = width / 2;
  const hh = height / 2;
  for (let i = 0; i < n; i++) {
    const p = i * dim;
    const x = positions[p];
    const y = dim > 1 ? positions[p + 1] : 0;
    const z = dim > 2 ? positions[p + 2] : 0;
    const cw = m3 * x + m7 * y + m11 * z + m15;
    const cz = m2 * x + m6 * y + m10 * z + m14;
    if (!(cw > 0) || cz > cw || cz < -cw) {
      xy[2 * i] = NaN;
      xy[2 * i + 1] = NaN;
      continue;
    }
    const cx = m0 * x + m4 * y + m8 * z + m12;
    const cy = m1 * x + m5 * y + m9 * z + m13;
    xy[2 * i] = (cx / cw + 1) * hw;
    xy[2 * i + 1] = (1 - cy / cw) * hh;
  }
  return xy;
}

/**
 * Indices of the points inside a polygon, ascending.
 *
 * Even-odd rule (a point inside a self-intersection's doubly covered area is outside; concave
 * shapes work). The polygon closes itself from the last vertex back to the first. Points on the
 * boundary follow the half-open crossing test (W. R. Franklin's PNPOLY): a point on an edge is
 * inside when the polygon's interior lies on its right or below it (in screen coordinates, y
 * down), so for an axis-aligned rectangle [x0, x1] × [y0, y1] the left and top edges are inside,
 * the right and bottom edges outside, and two polygons sharing an edge never both contain a
 * point on it. NaN coordinates are never inside.
 *
 * Fast path: a bounding-box prefilter, then only the edges that span the point's horizontal
 * band (edges are bucketed into up to 1,024 bands), so cost grows with the number of points in
 * the box times the edges per band, not times all edges.
 *
 * @param {Float32Array|Float64Array} screenXY x0, y0, x1, y1, … from `projectToScreen`
 * @param {Float32Array|Float64Array|number[]} polygon x0, y0, x1, y1, … (at least 3 vertices
 *   for a non-empty result)
 * @param {{visible?: Uint8Array|null}} [opts] `visible[i] === 0` excludes point i
 * @returns {Uint32Array}
 */
export function pointsInPolygon(screenXY, polygon, opts = {}) {
  const visible = opts.visible ?? null;
  const poly = preparePolygon(polygon);
  if (!poly) return new Uint32Array(0);
  const { minX, maxX, minY, maxY } = poly;
  const n = screenXY.length >> 1;
  let result = new Uint32Array(Math.min(n, 1024));
  let count = 0;
  for (let i = 0; i < n; i++) {
    const x = screenXY[2 * i];
    const y = screenXY[2 * i + 1];
    if (!(x >= minX && x <= maxX && y >= minY && y <= maxY)) continue;
    if (visible && visible[i] === 0) continue;
    if (!insidePolygon(poly, x, y)) continue;
    if (count === result.length) {
      const grown = new Uint32Array(Math.min(n, result.length * 2));
      grown.set(result);
      result = grown;
    }
    result[count++] = i;
  }
  return result.slice(0, count);
}

/**
 * A polygon ready for many point tests (`insidePolygon`): its vertices as float64, its bounding
 * box and its edges bucketed into horizontal bands. null for fewer than 3 vertices (nothing is
 * inside). Throws on a non-finite vertex.
 *
 * @param {Float32Array|Float64Array|number[]} polygon x0, y0, x1, y1, …
 * @returns {null | {px: Float64Array, py: Float64Array, minX: number, maxX: number, minY: number,
 *   maxY: number, bands: {offsets: Uint32Array, edges: Uint32Array, count: number, minY: number, height: number}}}
 */
export function preparePolygon(polygon) {
  const nv = polygon.length >> 1;
  if (nv < 3) return null;
  const px = new Float64Array(nv);
  const py = new Float64Array(nv);
  let minX = Infinity;
  let maxX = -Infinity;
  let minY = Infinity;
  let maxY = -Infinity;
  for (let i = 0; i < nv; i++) {
    px[i] = polygon[2 * i];
    py[i] = polygon[2 * i + 1];
    if (!(Number.isFinite(px[i]) && Number.isFinite(py[i]))) throw new Error(`polygon vertex ${i} is not finite`);
    minX = Math.min(minX, px[i]);
    maxX = Math.max(maxX, px[i]);
    minY = Math.min(minY, py[i]);
    maxY = Math.max(maxY, py[i]);
  }
  return { px, py, minX, maxX, minY, maxY, bands: bucketEdges(px, py, minY, maxY) };
}

/** The band (bucketEdges) of ordinate y, clamped to the first and last. */
export function bandOf(bands, y) {
  return Math.min(bands.count - 1, Math.max(0, Math.floor((y - bands.minY) / bands.height)));
}

// Edge i joins vertex i-1 (wrapping) and vertex i. Bands split [minY, maxY] evenly; each keeps
// the edges whose y range overlaps it (CSR layout: offsets, then edge ids).
function bucketEdges(px, py, minY, maxY) {
  const nv = px.length;
  const count = Math.max(1, Math.min(1024, nv));
  const bands = { offsets: new Uint32Array(count + 1), edges: null, count, minY, height: (maxY - minY) / count || 1 };
  const spans = new Int32Array(2 * nv);
  const offsets = bands.offsets;
  for (let i = 0, j = nv - 1; i < nv; j = i++) {
    const lo = bandOf(bands, Math.min(py[i], py[j]));
    const hi = bandOf(bands, Math.max(py[i], py[j]));
    spans[2 * i] = lo;
    spans[2 * i + 1] = hi;
    for (let b = lo; b <= hi; b++) offsets[b + 1]++;
  }
  for (let b = 0; b < count; b++) offsets[b + 1] += offsets[b];
  const edges = new Uint32Array(offsets[count]);
  const fill = offsets.slice(0, count);
  for (let i = 0; i < nv; i++) {
    for (let b = spans[2 * i]; b <= spans[2 * i + 1]; b++) edges[fill[b]++] = i;
  }
  bands.edges = edges;
  return bands;
}

/**
 * Even-odd test of one point against a prepared polygon (the half-open PNPOLY rule of
 * `pointsInPolygon`; the caller has checked the bounding box). NaN is never inside.
 */
export function insidePolygon(poly, x, y) {
  const { px, py, bands } = poly;
  const b = bandOf(bands, y);
  const nv = px.length;
  const offsets = bands.offsets;
  const edges = bands.edges;
  let inside = false;
  for (let k = offsets[b]; k < offsets[b + 1]; k++) {
    const i = edges[k];
    const j = i === 0 ? nv - 1 : i - 1;
    const yi = py[i];
    const yj = py[j];
    if (yi > y !== yj > y && x < ((px[j] - px[i]) * (y - yi)) / (yj - yi) + px[i]) inside = !inside;
  }
  return inside;
}

/**
 * Combine a selection with a new one (sets.js `combine`): `replace` keeps `incoming`, `add` the
 * union, `subtract` `current` without `incoming`, `intersect` the cells in both. Inputs need not
 * be sorted or unique; the result is a new sorted unique array.
 *
 * @param {Uint32Array} current
 * @param {Uint32Array} incoming
 * @param {"replace"|"add"|"subtract"|"intersect"} mode
 * @returns {Uint32Array}
 */
export function combineSelection(current, incoming, mode) {
  return combine(current, incoming, mode);
}
