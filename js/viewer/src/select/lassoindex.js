// Lasso through a spatial index: the cells of an embedding kept in the tree order of its level-of-
// detail quadtree / octree (render/lodorder.js), so a lasso tests only the cells near the
// polygon's boundary instead of projecting every cell. Pure module (the LOD worker, node).
//
// The index (`treeIndex`) is built from the LOD build's Morton keys and sorted cell list: every
// node of the tree, at every depth, is one contiguous run of the tree order, so it keeps
//   ids        the cells in tree order (the LOD build's sorted list; 4 bytes a cell)
//   positions  their coordinates in that order (a reordered copy; 4·size bytes a cell), so the
//              cells of a node are read sequentially
//   offsets    where each node of a fixed depth starts in the tree order (2^8 × 2^8 nodes in 2D,
//              2^6 per axis in 3D: 256 KB / 1 MB), and the grid's bounds, so each node's box in
//              data space is known.
//
// A lasso (`lassoIndexed`) walks the tree from the root: a node whose box projects outside the
// polygon (or behind the camera / beyond the depth range) is skipped; a node whose box lies in
// front of the camera within the depth range and projects to a screen rectangle inside the
// polygon (no edge meets the rectangle, slightly enlarged for float error, and its centre is
// inside) has all its cells accepted without projecting them; the others are split, and at the
// finest depth (or when they hold few cells) their cells are tested one by one with exactly the
// arithmetic of select/lasso.js (projectToScreen to float32, then the half-open even-odd test).
// The result is the same ascending Uint32Array as select/regionjob.js lassoCells (brute force):
// the accepted runs and the hits are marked in a bitset by cell index (one bit a cell), and one
// scan of it (with the visibility mask) lists them in order, without a sort. On request the
// selected cells' coordinates come too, in tree order (whole runs copied), for the page's
// selection rings.
//
// Cost: the nodes the polygon's edge crosses, their cells (projected and tested), and one bit
// write and one output write per selected cell. Memory of a lasso: the bitset (n / 8 bytes) and
// the result.

import { insidePolygon, preparePolygon, bandOf } from "./lasso.js";
import { gridCoordinate } from "../render/lodorder.js";
import { CellBuffer } from "./sets.js";

/** Depth (bits per axis) of the node offsets: 2^16 nodes in 2D, 2^18 in 3D. */
const DEPTH = { 2: 8, 3: 6 };
/** Nodes with at most this many cells are tested cell by cell instead of classified. */
const SMALL_NODE = { 2: 32, 3: 16 };

/**
 * The lasso index of an embedding from its LOD build (render/lodorder.js mortonKeys and
 * sortByKey). Copies the positions into tree order; keeps `sorted` (do not modify it after).
 *
 * @param {Float32Array} positions row-major (n, size)
 * @param {2|3} size
 * @param {{keys: Uint32Array, per: number, lo: Float64Array, hi: Float64Array, scale: number[]}} morton
 * @param {Uint32Array} sorted cells by key (sortByKey)
 * @returns {{n: number, size: number, per: number, depth: number, lo: Float64Array, hi: Float64Array,
 *   scale: Float64Array, ids: Uint32Array, positions: Float32Array, offsets: Uint32Array,
 *   allFinite: boolean, bytes: number}}
 */
export function treeIndex(positions, size, morton, sorted) {
  const { keys, per, lo, hi, scale } = morton;
  const n = sorted.length;
  if (keys.length !== n || Math.floor(positions.length / size) !== n) throw new Error(`tree index: ${n} sorted cells, ${keys.length} keys, ${Math.floor(positions.length / size)} positions`);
  const depth = Math.min(DEPTH[size], per);
  const shift = size * (per - depth);
  const leaves = 1 << (size * depth);
  const offsets = new Uint32Array(leaves + 1);
  for (let i = 0; i < n; i++) offsets[(keys[i] >>> shift) + 1]++;
  for (let k = 0; k < leaves; k++) offsets[k + 1] += offsets[k];
  const pos = new Float32Array(n * size);
  let allFinite = true;
  if (size === 2) {
    for (let r = 0; r < n; r++) {
      const i = sorted[r] * 2;
      const x = positions[i];
      const y = positions[i + 1];
      pos[2 * r] = x;
      pos[2 * r + 1] = y;
      if (x - x !== 0 || y - y !== 0) allFinite = false;
    }
  } else {
    for (let r = 0; r < n; r++) {
      const i = sorted[r] * 3;
      const x = positions[i];
      const y = positions[i + 1];
      const z = positions[i + 2];
      pos[3 * r] = x;
      pos[3 * r + 1] = y;
      pos[3 * r + 2] = z;
      if (x - x !== 0 || y - y !== 0 || z - z !== 0) allFinite = false;
    }
  }
  const bytes = sorted.byteLength + pos.byteLength + offsets.byteLength;
  return { n, size, per, depth, lo: Float64Array.from(lo), hi: Float64Array.from(hi), scale: Float64Array.from(scale), ids: sorted, positions: pos, offsets, allFinite, bytes };
}

const OUT = 0;
const IN = 1;
const SPLIT = 2;

/**
 * The cells (ascending) inside `polygon` through the tree index: the same cells, in the same
 * order, as select/regionjob.js lassoCells(positions, size, matrix, width, height, polygon, mask).
 *
 * @param {ReturnType<typeof treeIndex>} index
 * @param {Float32Array|Float64Array|number[]} matrix column-major view-projection (16 numbers)
 * @param {number} width viewport width (pixels)
 * @param {number} height
 * @param {Float32Array|Float64Array|number[]} polygon screen x0, y0, x1, y1, ...
 * @param {Uint8Array|null} [mask] mask[i] === 0 excludes cell i
 * @param {object} [stats] filled with {nodes, accepted, tested, walkMs, cellsMs, positionsMs}:
 *   nodes classified, cells accepted without a test, cells tested one by one, and the time of
 *   the walk, of listing the cells and of copying their positions
 * @returns {Uint32Array}
 */
export function lassoIndexed(index, matrix, width, height, polygon, mask = null, stats = {}) {
  if (mask && mask.length < index.n) throw new Error(`mask has ${mask.length} entries for ${index.n} cells`);
  return lassoTree(index, { matrix, width, height, polygon, maskBits: mask ? maskBitset(mask) : null, stats }).cells;
}

/**
 * A selection mask as a bitset: bit (i & 31) of word i >>> 5 is set when mask[i] !== 0 (n / 8
 * bytes: what the LOD worker keeps of the visibility mask).
 *
 * @param {Uint8Array} mask
 * @returns {Int32Array}
 */
export function maskBitset(mask) {
  const n = mask.length;
  const bits = new Int32Array((n + 31) >>> 5);
  for (let w = 0; w < bits.length; w++) {
    let word = 0;
    for (let b = 0, i = w << 5, end = Math.min(32, n - i); b < end; b++) if (mask[i + b] !== 0) word |= 1 << b;
    bits[w] = word;
  }
  return bits;
}

/**
 * `lassoIndexed` with the mask as a bitset (`maskBitset`), also returning the selection as a
 * bitset (`bits`: the same cells, n bits in little-endian words) and, with `positions: true`,
 * the selected cells' coordinates (Float32Array, stride size) in tree order, not in the order
 * of `cells`: what the page's selection rings draw, so the page need not gather them (the
 * order of rings does not show).
 *
 * @returns {{cells: Uint32Array, bits: Int32Array, positions: Float32Array|null}}
 */
export function lassoTree(index, { matrix, width, height, polygon, maskBits = null, stats = {}, positions = false }) {
  const { n } = index;
  if (maskBits && maskBits.length < (n + 31) >>> 5) throw new Error(`the mask bitset covers ${maskBits.length * 32} cells, not ${n}`);
  Object.assign(stats, { nodes: 0, accepted: 0, tested: 0 });
  const poly = preparePolygon(polygon);
  if (!poly) return { cells: new Uint32Array(0), bits: new Int32Array((n + 31) >>> 5), positions: positions ? new Float32Array(0) : null };
  const t0 = performance.now();
  const walk = new Walk(index, Array.from(matrix), width, height, poly, stats);
  if (n > 0) walk.node(0, 0, 0, 0, 0, 0, n);
  stats.walkMs = performance.now() - t0;
  return walk.finish(maskBits, positions);
}


/** Are the coordinates of tree rank r finite? (a non-finite one projects to NaN: never inside) */
function finiteAt(pos, size, r) {
  for (let a = 0; a < size; a++) {
    const v = pos[r * size + a];
    if (v - v !== 0) return false;
  }
  return true;
}

/** Set the bits of the cells of the accepted runs (their finite ones). */
function markRuns(bits, { ids, positions: pos, size, allFinite }, runs, nRuns) {
  for (let j = 0; j < nRuns; j += 2) {
    for (let r = runs[j]; r < runs[j + 1]; r++) {
      if (!allFinite && !finiteAt(pos, size, r)) continue;
      const i = ids[r];
      bits[i >>> 5] |= 1 << (i & 31);
    }
  }
}

/** Set the bits of the cells of tree ranks ranks[0 .. count). */
function markRanks(bits, ids, ranks, count) {
  for (let j = 0; j < count; j++) {
    const i = ids[ranks[j]];
    bits[i >>> 5] |= 1 << (i & 31);
  }
}

/** Set bits of each 16-bit number (the bitset's words are counted in halves: no int32 overflow). */
const ONES16 = new Uint8Array(1 << 16);
for (let v = 1; v < 1 << 16; v++) ONES16[v] = (v & 1) + ONES16[v >>> 1];

/**
 * The cells of a bitset, ascending, after ANDing it with `maskBits` (in place; null: no mask).
 * Each word's bits are taken from the highest down and written back to front: only int32
 * arithmetic (no negation or subtraction that overflows and sends the JIT back).
 */
function listBits(bits, maskBits) {
  let count = 0;
  for (let w = 0; w < bits.length; w++) {
    if (maskBits !== null) bits[w] &= maskBits[w];
    const word = bits[w];
    count += ONES16[word & 0xffff] + ONES16[word >>> 16];
  }
  const cells = new Uint32Array(count);
  let k = 0;
  for (let w = 0; w < bits.length; w++) {
    let word = bits[w];
    if (word === 0) continue;
    const base = w << 5;
    let j = (k += ONES16[word & 0xffff] + ONES16[word >>> 16]);
    while (word !== 0) {
      const b = 31 - Math.clz32(word);
      cells[--j] = base + b;
      word ^= 1 << b;
    }
  }
  return cells;
}

/** Copy the coordinates of the selected cells of the accepted runs to `out`; returns its length. */
function copyRuns(out, bits, { ids, positions: pos, size, allFinite }, runs, nRuns, noMask) {
  let o = 0;
  for (let j = 0; j < nRuns; j += 2) {
    const r0 = runs[j];
    const r1 = runs[j + 1];
    if (allFinite && noMask) {
      out.set(pos.subarray(r0 * size, r1 * size), o); // every cell of the run is selected
      o += (r1 - r0) * size;
      continue;
    }
    for (let r = r0; r < r1; r++) {
      const i = ids[r];
      if (((bits[i >>> 5] >>> (i & 31)) & 1) === 0) continue;
      for (let a = 0; a < size; a++) out[o++] = pos[r * size + a];
    }
  }
  return o;
}

/** Copy the coordinates of the selected cells among tree ranks ranks[0 .. count) after `o`. */
function copyRanks(out, o, bits, { ids, positions: pos, size }, ranks, count) {
  for (let j = 0; j < count; j++) {
    const r = ranks[j];
    const i = ids[r];
    if (((bits[i >>> 5] >>> (i & 31)) & 1) === 0) continue;
    for (let a = 0; a < size; a++) out[o++] = pos[r * size + a];
  }
  return o;
}

/** One lasso's walk over the tree. */
class Walk {
  constructor(index, m, width, height, poly, stats) {
    this.index = index;
    this.m = m;
    this.hw = width / 2;
    this.hh = height / 2;
    this.poly = poly;
    this.stats = stats;
    this.runs = new Uint32Array(256); // [r0, r1) pairs of the nodes accepted whole
    this.nRuns = 0;
    this.hits = new CellBuffer(index.n); // tree ranks of the cells tested inside
    this.size = index.size;
    this.small = SMALL_NODE[index.size];
    this.top = 2 ** index.per - 1;
    // data-space size of one grid step per axis, and the slack of a node's box (quantisation
    // rounds (v - lo) · scale in float64: a cell may sit a hair outside its grid square)
    this.step = Array.from(index.lo, (l, a) => (index.hi[a] - l) / this.top);
    this.slack = Array.from(index.lo, (l, a) => 1e-7 * (index.hi[a] - l) + 1e-7 * Math.max(Math.abs(l), Math.abs(index.hi[a])) + 1e-30);
    this.mmax = Math.max(...m.map(Math.abs));
    // the polygon's bounding box as four planes in clip space (x / w ≥ a and so on), widened by
    // a margin in pixels larger than float32 rounding of screen coordinates
    const margin = 1e-3 + 1e-6 * Math.max(Math.abs(poly.minX), Math.abs(poly.maxX), Math.abs(poly.minY), Math.abs(poly.maxY));
    this.ax0 = (poly.minX - margin) / this.hw - 1;
    this.ax1 = (poly.maxX + margin) / this.hw - 1;
    this.by0 = 1 - (poly.minY - margin) / this.hh; // screen y ≥ minY  ⇔  cy / w ≤ by0
    this.by1 = 1 - (poly.maxY + margin) / this.hh; // screen y ≤ maxY  ⇔  cy / w ≥ by1
    this.corner = new Float64Array(4 * 8);
  }

  /**
   * The node at `depth` with Morton prefix `k`, grid coordinates (gx, gy, gz) at that depth,
   * holding tree ranks [r0, r1).
   */
  node(depth, k, gx, gy, gz, r0, r1) {
    if (r0 === r1) return;
    if (r1 - r0 <= this.small) return this.test(r0, r1);
    const c = this.classify(depth, gx, gy, gz);
    if (c === OUT) return;
    if (c === IN) return this.accept(r0, r1);
    const index = this.index;
    if (depth === index.per) return this.test(r0, r1); // the finest grid square
    const size = this.size;
    const kids = 1 << size;
    const d = depth + 1;
    // where each child starts: the offsets table down to its depth, then binary search of the
    // run by the children's grid bit, recomputed from the positions exactly as the build did
    const b = new Uint32Array(kids + 1);
    if (d <= index.depth) {
      const shift = size * (index.depth - d);
      for (let c = 0; c < kids; c++) b[c] = index.offsets[(k * kids + c) * 2 ** shift];
      b[kids] = r1;
    } else {
      b[0] = r0;
      b[kids] = r1;
      for (let c = 1; c < kids; c++) b[c] = this.firstChild(b[c - 1], r1, index.per - d, c);
    }
    for (let c = 0; c < kids; c++) {
      this.node(d, k * kids + c, 2 * gx + (c & 1), 2 * gy + ((c >> 1) & 1), size === 3 ? 2 * gz + (c >> 2) : 0, b[c], b[c + 1]);
    }
  }

  /** The first tree rank in [lo, hi) whose child (grid bits at `shift`) is ≥ c. */
  firstChild(lo, hi, shift, c) {
    const { positions: pos, lo: l, scale } = this.index;
    const size = this.size;
    const top = this.top;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const p = mid * size;
      let child = (gridCoordinate(pos[p], l[0], scale[0], top) >> shift) & 1;
      child |= ((gridCoordinate(pos[p + 1], l[1], scale[1], top) >> shift) & 1) << 1;
      if (size === 3) child |= ((gridCoordinate(pos[p + 2], l[2], scale[2], top) >> shift) & 1) << 2;
      if (child < c) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** OUT, IN or SPLIT for the box of a node. */
  classify(depth, gx, gy, gz) {
    this.stats.nodes++;
    const { index, m, step, slack } = this;
    const span = 2 ** (index.per - depth); // grid steps per node side
    const lo = index.lo;
    const box = [lo[0] + gx * span * step[0] - slack[0], lo[0] + (gx + 1) * span * step[0] + slack[0], lo[1] + gy * span * step[1] - slack[1], lo[1] + (gy + 1) * span * step[1] + slack[1], 0, 0];
    if (this.size === 3) {
      box[4] = lo[2] + gz * span * step[2] - slack[2];
      box[5] = lo[2] + (gz + 1) * span * step[2] + slack[2];
    }
    const corners = this.size === 3 ? 8 : 4;
    const cc = this.corner;
    let mag = 0;
    for (let c = 0; c < corners; c++) {
      const x = box[c & 1];
      const y = box[2 + ((c >> 1) & 1)];
      const z = box[4 + (c >> 2)];
      cc[4 * c] = m[0] * x + m[4] * y + m[8] * z + m[12];
      cc[4 * c + 1] = m[1] * x + m[5] * y + m[9] * z + m[13];
      cc[4 * c + 2] = m[2] * x + m[6] * y + m[10] * z + m[14];
      cc[4 * c + 3] = m[3] * x + m[7] * y + m[11] * z + m[15];
      mag = Math.max(mag, Math.abs(x) + Math.abs(y) + Math.abs(z) + 1);
    }
    if (!(mag < Infinity)) return SPLIT; // an unbounded grid: no box to reason about
    const tol = 1e-12 * this.mmax * mag; // float64 error of a clip coordinate, with room
    // outside: one plane (a linear function of the position) negative at every corner is
    // negative in the whole box, so each of its cells is clipped or off the polygon's box
    let behind = true; // w ≤ 0: behind the camera
    let near = true; // z < -w
    let far = true; // z > w
    let left = true;
    let right = true;
    let top = true;
    let bottom = true;
    let front = true; // every corner in front of the camera (w > 0)
    let inDepth = true; // and within the depth range
    for (let c = 0; c < corners; c++) {
      const cx = cc[4 * c];
      const cy = cc[4 * c + 1];
      const cz = cc[4 * c + 2];
      const cw = cc[4 * c + 3];
      if (!(cw < -tol)) behind = false;
      if (!(cz + cw < -tol)) near = false;
      if (!(cw - cz < -tol)) far = false;
      if (!(cx - this.ax0 * cw < -tol)) left = false;
      if (!(this.ax1 * cw - cx < -tol)) right = false;
      if (!(this.by0 * cw - cy < -tol)) top = false;
      if (!(cy - this.by1 * cw < -tol)) bottom = false;
      if (!(cw > tol)) front = false;
      if (!(cz + cw > tol && cw - cz > tol)) inDepth = false;
    }
    if (behind || near || far || left || right || top || bottom) return OUT;
    if (!front) return SPLIT;
    // the box's screen image lies in the rectangle of its projected corners (w > 0 everywhere)
    let x0 = Infinity;
    let x1 = -Infinity;
    let y0 = Infinity;
    let y1 = -Infinity;
    for (let c = 0; c < corners; c++) {
      const w = cc[4 * c + 3];
      const sx = (cc[4 * c] / w + 1) * this.hw;
      const sy = (1 - cc[4 * c + 1] / w) * this.hh;
      if (sx < x0) x0 = sx;
      if (sx > x1) x1 = sx;
      if (sy < y0) y0 = sy;
      if (sy > y1) y1 = sy;
    }
    if (!(x0 <= x1 && y0 <= y1)) return SPLIT; // NaN
    const pad = 1e-3 + 1e-6 * Math.max(Math.abs(x0), Math.abs(x1), Math.abs(y0), Math.abs(y1));
    x0 -= pad;
    x1 += pad;
    y0 -= pad;
    y1 += pad;
    if (this.edgeMeets(x0, x1, y0, y1)) return SPLIT;
    // no edge meets the rectangle: all of it is on one side of the polygon's boundary
    const p = this.poly;
    const mx = (x0 + x1) / 2;
    const my = (y0 + y1) / 2;
    const inside = mx >= p.minX && mx <= p.maxX && my >= p.minY && my <= p.maxY && insidePolygon(p, mx, my);
    if (!inside) return OUT;
    return inDepth ? IN : SPLIT;
  }

  /** Does any polygon edge meet the rectangle [x0, x1] × [y0, y1]? (separating axes) */
  edgeMeets(x0, x1, y0, y1) {
    const { px, py, bands, minY, maxY } = this.poly;
    if (y1 < minY || y0 > maxY) return false;
    const nv = px.length;
    const b0 = bandOf(bands, y0);
    const b1 = bandOf(bands, y1);
    const { offsets, edges } = bands;
    for (let k = offsets[b0]; k < offsets[b1 + 1]; k++) {
      const i = edges[k];
      const j = i === 0 ? nv - 1 : i - 1;
      const xi = px[i];
      const yi = py[i];
      const xj = px[j];
      const yj = py[j];
      if ((xi < x0 && xj < x0) || (xi > x1 && xj > x1) || (yi < y0 && yj < y0) || (yi > y1 && yj > y1)) continue;
      // the edge's line: which side is each corner of the rectangle on?
      const dx = xj - xi;
      const dy = yj - yi;
      const f00 = dx * (y0 - yi) - dy * (x0 - xi);
      const f10 = dx * (y0 - yi) - dy * (x1 - xi);
      const f01 = dx * (y1 - yi) - dy * (x0 - xi);
      const f11 = dx * (y1 - yi) - dy * (x1 - xi);
      if ((f00 > 0 && f10 > 0 && f01 > 0 && f11 > 0) || (f00 < 0 && f10 < 0 && f01 < 0 && f11 < 0)) continue;
      return true;
    }
    return false;
  }

  /** Every cell of tree ranks [r0, r1) is inside (finite ones: a non-finite cell never is). */
  accept(r0, r1) {
    this.stats.accepted += r1 - r0;
    if (this.nRuns === this.runs.length) {
      const grown = new Uint32Array(2 * this.runs.length);
      grown.set(this.runs);
      this.runs = grown;
    }
    this.runs[this.nRuns++] = r0;
    this.runs[this.nRuns++] = r1;
  }

  /**
   * The selection from the accepted runs and the tested hits: a bitset of the cells (one bit a
   * cell: 1.25 MB at 10M) ANDed with the mask's, listed in ascending order without a sort, and
   * with `wantPositions` the cells' coordinates in tree order (whole runs copied as they are).
   * Each pass is a function of its own: one hot loop each, which the JIT optimises steadily.
   */
  finish(maskBits, wantPositions) {
    const t0 = performance.now();
    const index = this.index;
    const bits = new Int32Array((index.n + 31) >>> 5);
    markRuns(bits, index, this.runs, this.nRuns);
    markRanks(bits, index.ids, this.hits.data, this.hits.length);
    const cells = listBits(bits, maskBits);
    const t1 = performance.now();
    this.stats.cellsMs = t1 - t0;
    if (!wantPositions) return { cells, bits, positions: null };
    const out = new Float32Array(cells.length * index.size);
    let o = copyRuns(out, bits, index, this.runs, this.nRuns, maskBits === null);
    o = copyRanks(out, o, bits, index, this.hits.data, this.hits.length);
    if (o !== out.length) throw new Error(`lasso: ${o / index.size} positions for ${cells.length} cells`);
    this.stats.positionsMs = performance.now() - t1;
    return { cells, bits, positions: out };
  }

  /** Test the cells of tree ranks [r0, r1) one by one (select/lasso.js arithmetic). */
  test(r0, r1) {
    const pos = this.index.positions;
    const hits = this.hits;
    const poly = this.poly;
    const { minX, maxX, minY, maxY } = poly;
    const [m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14, m15] = this.m;
    const hw = this.hw;
    const hh = this.hh;
    const size = this.size;
    this.stats.tested += r1 - r0;
    for (let r = r0; r < r1; r++) {
      const p = r * size;
      const x = pos[p];
      const y = pos[p + 1];
      const z = size > 2 ? pos[p + 2] : 0;
      const cw = m3 * x + m7 * y + m11 * z + m15;
      const cz = m2 * x + m6 * y + m10 * z + m14;
      if (!(cw > 0) || cz > cw || cz < -cw) continue;
      const cx = m0 * x + m4 * y + m8 * z + m12;
      const cy = m1 * x + m5 * y + m9 * z + m13;
      const sx = Math.fround((cx / cw + 1) * hw);
      const sy = Math.fround((1 - cy / cw) * hh);
      if (!(sx >= minX && sx <= maxX && sy >= minY && sy <= maxY)) continue;
      if (!insidePolygon(poly, sx, sy)) continue;
      hits.push(r);
    }
  }
}
