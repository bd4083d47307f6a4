// Per-cell visibility masks on typed arrays: one Uint8Array (1 = visible, 0 = hidden) per
// filter, combined with the bridge's setVisibility layer into the one mask that drives
// drawing, picking, lasso, highlights, KNN edges and figure export. Pure module (browser and
// node); no per-cell objects, no allocation inside the loops.
//
// Speed (node 20, 1,000,000 cells, js/tools/bench_filters.mjs): a categorical or a range mask
// ~2-4 ms, combining masks under 1 ms each (four cells per 32-bit word).

function outMask(out, n) {
  const mask = out ?? new Uint8Array(n);
  if (mask.length !== n) throw new Error(`mask holds ${mask.length} cells, needs ${n}`);
  return mask;
}

/**
 * Mask of a categorical filter: cell i is kept when its category is included. Codes equal to
 * the missing sentinel, or ≥ k (the number of categories), follow `includeMissing`.
 *
 * @param {Uint8Array|Uint16Array} codes
 * @param {Uint8Array|ArrayLike<number>} include length k; non-zero = category kept
 * @param {boolean} includeMissing
 * @param {Uint8Array} [out] length n
 * @returns {Uint8Array}
 */
export function categoryMask(codes, include, includeMissing, out) {
  const n = codes.length;
  const mask = outMask(out, n);
  const span = codes instanceof Uint8Array ? 256 : 65536;
  const table = new Uint8Array(span).fill(includeMissing ? 1 : 0);
  const k = Math.min(include.length, span);
  for (let c = 0; c < k; c++) table[c] = include[c] ? 1 : 0;
  for (let i = 0; i < n; i++) mask[i] = table[codes[i]];
  return mask;
}

/**
 * Mask of a numeric range filter: lo ≤ v ≤ hi (either end may be ±Infinity). NaN is never
 * in a range, so cells with a missing value are hidden by any range filter.
 *
 * @param {Float32Array|Float64Array} values
 * @param {number} lo
 * @param {number} hi
 * @param {Uint8Array} [out]
 * @returns {Uint8Array}
 */
export function rangeMask(values, lo, hi, out) {
  const n = values.length;
  const mask = outMask(out, n);
  // branch-free (booleans ANDed as numbers): on unordered values a branch mispredicts half
  // the time, and this loop is the one a brush repeats (3-5x faster at 1M cells)
  for (let i = 0; i < n; i++) {
    const v = values[i];
    mask[i] = (v >= lo) & (v <= hi);
  }
  return mask;
}

const words = (a) => (a.byteOffset % 4 === 0 ? new Uint32Array(a.buffer, a.byteOffset, a.length >> 2) : null);

/** Sum of the four 0/1 bytes of a 32-bit word. */
function wordOnes(w) {
  w = (w & 0x00ff00ff) + ((w >>> 8) & 0x00ff00ff);
  return (w & 0xffff) + (w >>> 16);
}

/**
 * AND of a base mask (or all-visible when null) and any number of filter masks, into `out`.
 * Every mask holds only 0 and 1. Returns the number of visible cells.
 *
 * @param {number} n
 * @param {Uint8Array|null} base
 * @param {Uint8Array[]} masks
 * @param {Uint8Array} out length n (may be `base` itself)
 * @returns {number} visible cells
 */
export function combineMasks(n, base, masks, out) {
  const mask = outMask(out, n);
  if (base) {
    if (base.length !== n) throw new Error(`base mask holds ${base.length} cells, needs ${n}`);
    if (base !== mask) mask.set(base);
  } else mask.fill(1);
  for (const m of masks) {
    if (m.length !== n) throw new Error(`filter mask holds ${m.length} cells, needs ${n}`);
    andInto(mask, m);
  }
  return countVisible(mask);
}

/** mask &= m, four cells per 32-bit word when both are aligned. */
function andInto(mask, m) {
  const w = words(mask);
  const v = w && words(m);
  let start = 0;
  if (v) {
    for (let j = 0; j < w.length; j++) w[j] &= v[j];
    start = w.length * 4;
  }
  for (let i = start; i < mask.length; i++) mask[i] &= m[i];
}

/** Number of non-zero bytes of a 0/1 mask. */
export function countVisible(mask) {
  const w = words(mask);
  let count = 0;
  let start = 0;
  if (w) {
    for (let j = 0; j < w.length; j++) count += wordOnes(w[j]);
    start = w.length * 4;
  }
  for (let i = start; i < mask.length; i++) count += mask[i] ? 1 : 0;
  return count;
}

/** Radius factors for the points layer: 1 for visible cells, 0 hides (and unpicks) a cell. */
export function radiiFromMask(mask, out) {
  const n = mask.length;
  const radii = out ?? new Float32Array(n);
  for (let i = 0; i < n; i++) radii[i] = mask[i];
  return radii;
}

/**
 * The cells of a sorted (or any) Uint32Array that the mask shows, in the same order.
 * Returns the input itself when every cell is visible (no copy).
 *
 * @param {Uint32Array} cells
 * @param {Uint8Array|null} mask null = everything visible
 * @returns {Uint32Array}
 */
export function keepVisible(cells, mask) {
  if (!mask) return cells;
  let k = 0;
  for (let j = 0; j < cells.length; j++) k += mask[cells[j]];
  if (k === cells.length) return cells;
  const out = new Uint32Array(k);
  k = 0;
  for (let j = 0; j < cells.length; j++) if (mask[cells[j]]) out[k++] = cells[j];
  return out;
}

/**
 * Visible cells per category: Uint32Array(k + 1), the last entry counts missing codes.
 *
 * @param {Uint8Array|Uint16Array} codes
 * @param {number} k
 * @param {Uint8Array|null} mask
 */
export function categoryCounts(codes, k, mask) {
  const counts = new Uint32Array(k + 1);
  const n = codes.length;
  for (let i = 0; i < n; i++) {
    if (mask && !mask[i]) continue;
    const c = codes[i];
    counts[c < k ? c : k]++;
  }
  return counts;
}

/**
 * Per-edge visibility for a LineLayer width attribute: 1 when both ends are visible, else 0.
 * The drawn edges are every `stride`-th edge of the graph (edge j is graph edge j · stride).
 *
 * @param {ArrayLike<number>} src source cell of every graph edge
 * @param {ArrayLike<number>} dst
 * @param {Uint8Array|null} mask null = everything visible
 * @param {number} [stride] default 1
 * @returns {{widths: Float32Array, count: number}} count = drawn edges with both ends visible
 */
export function edgeVisibility(src, dst, mask, stride = 1) {
  const m = Math.ceil(src.length / stride);
  const widths = new Float32Array(m);
  if (!mask) {
    widths.fill(1);
    return { widths, count: m };
  }
  let count = 0;
  for (let j = 0, e = 0; j < m; j++, e += stride) {
    const on = mask[src[e]] & mask[dst[e]];
    widths[j] = on;
    count += on;
  }
  return { widths, count };
}
