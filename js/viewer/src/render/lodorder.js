// Level-of-detail order of the cells: one permutation (Uint32Array n) in which every prefix is
// a spatially stratified sample of the embedding, so level k of the level of detail is simply
// the first ceil(n / 2^k) cells of the order. Pure module (the LOD worker, the page and node).
//
// The spatial index is a linear quadtree (2D; the 1D layout is drawn in 2D) or octree (3D):
// each cell's position is quantised to a grid of 2^13 x 2^13 (2D) or 2^9 x 2^9 x 2^9 (3D) and
// its Morton code (the bits of its grid coordinates interleaved) is its path from the root of
// the tree; sorting by it lists the cells in the tree's depth-first order, so every tree node,
// at every depth, holds one contiguous run of the sorted list. Taking the sorted list's ranks in
// bit-reversed order (0, n/2, n/4, 3n/4, ...) then makes any prefix of length m an evenly
// spaced sample of that list: a node holding c of the n cells gets c·m/n of the m (±1) at
// every depth where c·m/n ≥ 1. Dense regions keep their density, sparse ones their few cells.
//
// Memory: keys, one scratch index array and the order (3 × 4 bytes a cell), no per-cell objects;
// the LOD worker returns only the order (4 bytes a cell).

const BITS_2D = 13; // per axis: 26-bit keys
const BITS_3D = 9; // per axis: 27-bit keys

/** Spread the low 16 bits of v to the even bits (x → x0 0 x1 0 ...). */
function spread2(v) {
  v &= 0xffff;
  v = (v | (v << 8)) & 0x00ff00ff;
  v = (v | (v << 4)) & 0x0f0f0f0f;
  v = (v | (v << 2)) & 0x33333333;
  v = (v | (v << 1)) & 0x55555555;
  return v >>> 0;
}

/** Spread the low 10 bits of v to every third bit. */
function spread3(v) {
  v &= 0x3ff;
  v = (v | (v << 16)) & 0x030000ff;
  v = (v | (v << 8)) & 0x0300f00f;
  v = (v | (v << 4)) & 0x030c30c3;
  v = (v | (v << 2)) & 0x09249249;
  return v >>> 0;
}

/** Per-axis [min, max] of the finite coordinates (0, 0 for an axis with none). */
export function bounds(positions, size) {
  const lo = new Float64Array(size).fill(Infinity);
  const hi = new Float64Array(size).fill(-Infinity);
  const n = Math.floor(positions.length / size);
  for (let i = 0, p = 0; i < n; i++, p += size) {
    for (let a = 0; a < size; a++) {
      const v = positions[p + a];
      if (v - v !== 0) continue; // NaN and ±Infinity: not a bound (an infinite range quantises nothing)
      if (v < lo[a]) lo[a] = v;
      if (v > hi[a]) hi[a] = v;
    }
  }
  for (let a = 0; a < size; a++) if (!(lo[a] <= hi[a])) lo[a] = hi[a] = 0;
  return { lo, hi };
}

/**
 * Morton codes of the cells (the quadtree / octree path of each cell's grid square / cube).
 * The grid spans the finite coordinates' bounds (`lo`, `hi` per axis): grid coordinate
 * q = floor((v - lo) · (2^per - 1) / (hi - lo)), clamped to [0, 2^per - 1]. NaN counts as the
 * lower bound of its axis, ±Infinity as the bound on its side.
 *
 * @param {Float32Array|Float64Array} positions row-major (n, size)
 * @param {2|3} size
 * @returns {{keys: Uint32Array, bits: number, per: number, lo: Float64Array, hi: Float64Array, scale: number[]}}
 *   bits = total key bits, per = bits per axis, scale = (2^per - 1) / (hi - lo) per axis (0
 *   without range): `gridCoordinate` gives a cell's grid coordinate again from them
 */
export function mortonKeys(positions, size) {
  if (size !== 2 && size !== 3) throw new Error(`the LOD index needs 2D or 3D positions, got size ${size}`);
  const n = Math.floor(positions.length / size);
  const per = size === 2 ? BITS_2D : BITS_3D;
  const top = (1 << per) - 1;
  const { lo, hi } = bounds(positions, size);
  const scale = Array.from(lo, (l, a) => (hi[a] > l ? top / (hi[a] - l) : 0));
  const keys = new Uint32Array(n);
  const q = (v, a) => gridCoordinate(v, lo[a], scale[a], top);
  if (size === 2) {
    for (let i = 0, p = 0; i < n; i++, p += 2) keys[i] = (spread2(q(positions[p], 0)) | (spread2(q(positions[p + 1], 1)) << 1)) >>> 0;
  } else {
    for (let i = 0, p = 0; i < n; i++, p += 3) keys[i] = (spread3(q(positions[p], 0)) | (spread3(q(positions[p + 1], 1)) << 1) | (spread3(q(positions[p + 2], 2)) << 2)) >>> 0;
  }
  return { keys, bits: per * size, per, lo, hi, scale };
}

/** Grid coordinate of value v on an axis (mortonKeys): floor((v - lo) · scale) in [0, top]; NaN → 0. */
export function gridCoordinate(v, lo, scale, top) {
  const t = (v - lo) * scale;
  return t > 0 ? (t < top ? t | 0 : top) : 0;
}

/**
 * Cell indices sorted by key (stable: equal keys keep index order). LSD radix sort in two
 * passes of ≤ 14-bit digits. `scratch` (length n) is used and returned as the result's partner.
 *
 * @param {Uint32Array} keys
 * @param {number} bits key width (≤ 28)
 * @param {Uint32Array} [out] length n
 * @returns {Uint32Array}
 */
export function sortByKey(keys, bits, out) {
  const n = keys.length;
  const lowBits = Math.ceil(bits / 2);
  const highBits = Math.max(0, bits - lowBits);
  const lowMask = (1 << lowBits) - 1;
  const tmp = new Uint32Array(n);
  const sorted = out ?? new Uint32Array(n);
  const count = new Uint32Array((1 << Math.max(lowBits, highBits)) + 1);
  // pass 1: by the low digit, from the identity
  for (let i = 0; i < n; i++) count[(keys[i] & lowMask) + 1]++;
  for (let d = 0; d < 1 << lowBits; d++) count[d + 1] += count[d];
  for (let i = 0; i < n; i++) tmp[count[keys[i] & lowMask]++] = i;
  // pass 2: by the high digit, stable over pass 1's order
  count.fill(0);
  for (let i = 0; i < n; i++) count[(keys[i] >>> lowBits) + 1]++;
  for (let d = 0; d < 1 << highBits; d++) count[d + 1] += count[d];
  for (let j = 0; j < n; j++) {
    const i = tmp[j];
    sorted[count[keys[i] >>> lowBits]++] = i;
  }
  return sorted;
}

/** Reverse the low `b` bits of v. */
function reverseBits(v, b) {
  v = ((v >>> 1) & 0x55555555) | ((v & 0x55555555) << 1);
  v = ((v >>> 2) & 0x33333333) | ((v & 0x33333333) << 2);
  v = ((v >>> 4) & 0x0f0f0f0f) | ((v & 0x0f0f0f0f) << 4);
  v = ((v >>> 8) & 0x00ff00ff) | ((v & 0x00ff00ff) << 8);
  v = (v >>> 16) | (v << 16);
  return b === 0 ? 0 : v >>> (32 - b);
}

/**
 * The LOD order of cells given in tree order (`sorted`, e.g. from sortByKey): rank r of the
 * tree order goes to the position of r among 0 .. 2^b - 1 read in bit-reversed order.
 *
 * @param {Uint32Array} sorted
 * @param {Uint32Array} [out] length n (not `sorted`)
 * @returns {Uint32Array}
 */
export function stratify(sorted, out) {
  const n = sorted.length;
  const order = out ?? new Uint32Array(n);
  let b = 0;
  while (1 << b < n) b++;
  const span = b === 0 ? 1 : 2 ** b;
  for (let t = 0, j = 0; t < span && j < n; t++) {
    const r = reverseBits(t, b);
    if (r < n) order[j++] = sorted[r];
  }
  return order;
}

/**
 * The LOD order of `positions`: a permutation of 0 .. n-1 whose every prefix is a spatially
 * stratified sample (quadtree in 2D, octree in 3D). Deterministic.
 *
 * @param {Float32Array|Float64Array} positions row-major (n, size); size 2 or 3
 * @param {2|3} size
 * @returns {Uint32Array}
 */
export function buildLodOrder(positions, size) {
  const { keys, bits } = mortonKeys(positions, size);
  const sorted = sortByKey(keys, bits);
  return stratify(sorted);
}

/**
 * Which level to draw: level 0 is every visible cell, level k the first ceil(visible / 2^k)
 * visible cells of the LOD order. The finest level whose count fits the budget of the camera's
 * state: `moving` → `movingBudget` (and never more than `stillBudget`), still → `stillBudget`
 * (Infinity = full detail when still).
 *
 * @param {{visible: number, moving: boolean, movingBudget: number, stillBudget?: number}} state
 * @returns {{level: number, count: number, budget: number}} count = cells to draw
 */
export function chooseLevel({ visible, moving, movingBudget, stillBudget = Infinity }) {
  const budget = Math.max(1, moving ? Math.min(movingBudget, stillBudget) : stillBudget);
  if (!(visible > budget)) return { level: 0, count: visible, budget };
  let level = 0;
  let count = visible;
  while (count > budget) count = Math.ceil(visible / 2 ** ++level);
  return { level, count, budget };
}

/**
 * The first `count` cells of `order` whose mask entry is set (all cells when mask is null),
 * into `out` (length ≥ count). Returns how many were found (< count when fewer are visible).
 *
 * @param {Uint32Array} order
 * @param {Uint8Array|null} mask
 * @param {number} count
 * @param {Uint32Array} out
 */
export function visiblePrefix(order, mask, count, out) {
  let k = 0;
  if (!mask) {
    k = Math.min(count, order.length);
    out.set(order.subarray(0, k));
    return k;
  }
  for (let j = 0; j < order.length && k < count; j++) {
    const i = order[j];
    if (mask[i]) out[k++] = i;
  }
  return k;
}

/**
 * Before the LOD order exists (it is being built): every `step`-th visible cell, about `count`
 * of them, into `out`. A plain stride, not spatially stratified, but it keeps the first frames
 * of a huge dataset within the budget. Returns how many were written.
 *
 * @param {number} n cells
 * @param {Uint8Array|null} mask
 * @param {number} visible visible cells
 * @param {number} count
 * @param {Uint32Array} out
 */
export function stridePrefix(n, mask, visible, count, out) {
  const step = Math.max(1, Math.ceil(visible / Math.max(1, count)));
  let k = 0;
  for (let i = 0, seen = 0; i < n && k < count; i++) {
    if (mask && !mask[i]) continue;
    if (seen++ % step === 0) out[k++] = i;
  }
  return k;
}
