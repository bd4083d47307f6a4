// Set operations on cell sets: sorted, unique Uint32Array cell indices. Pure module (browser,
// workers and node); every function returns a new array and leaves its inputs alone.
//
// `mask` arguments are per-cell Uint8Arrays (1 = the cell may be selected: it is drawn), the
// viewer's selectable mask (app/viewer.js selectableMask); null means every cell.

/**
 * Sorted unique copy of cell indices (input order and duplicates do not matter).
 *
 * @param {Uint32Array|ArrayLike<number>} cells
 * @returns {Uint32Array}
 */
export function sortedUnique(cells) {
  const a = Uint32Array.from(cells);
  let sorted = true;
  for (let i = 1; i < a.length; i++) {
    if (a[i] <= a[i - 1]) {
      sorted = false;
      break;
    }
  }
  if (sorted) return a;
  a.sort();
  let m = 0;
  for (let i = 0; i < a.length; i++) if (i === 0 || a[i] !== a[m - 1]) a[m++] = a[i];
  return a.slice(0, m);
}

/** Combine modes of a selection step. */
export const MODES = Object.freeze(["replace", "add", "subtract", "intersect"]);

/**
 * a ∪ b.
 *
 * @param {Uint32Array} a sorted unique
 * @param {Uint32Array} b sorted unique
 * @returns {Uint32Array}
 */
export function union(a, b) {
  if (!a.length) return b.slice();
  if (!b.length) return a.slice();
  const out = new Uint32Array(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) {
    const x = a[i];
    const y = b[j];
    if (x < y) out[k++] = a[i++];
    else if (x > y) out[k++] = b[j++];
    else {
      out[k++] = x;
      i++;
      j++;
    }
  }
  while (i < a.length) out[k++] = a[i++];
  while (j < b.length) out[k++] = b[j++];
  return out.slice(0, k);
}

// a ∖ b (keep = false) or a ∩ b (keep = true): one merge walk over a.
function filterBy(a, b, keep) {
  const out = new Uint32Array(keep ? Math.min(a.length, b.length) : a.length);
  let j = 0;
  let k = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    while (j < b.length && b[j] < x) j++;
    if ((j < b.length && b[j] === x) === keep) out[k++] = x;
  }
  return out.slice(0, k);
}

/**
 * a ∖ b.
 *
 * @param {Uint32Array} a sorted unique
 * @param {Uint32Array} b sorted unique
 * @returns {Uint32Array}
 */
export function difference(a, b) {
  return b.length ? filterBy(a, b, false) : a.slice();
}

/**
 * a ∩ b.
 *
 * @param {Uint32Array} a sorted unique
 * @param {Uint32Array} b sorted unique
 * @returns {Uint32Array}
 */
export function intersection(a, b) {
  return a.length && b.length ? filterBy(a, b, true) : new Uint32Array(0);
}

/**
 * The cells of 0 … n − 1 that are not in `cells` (and are in `mask`, when given).
 *
 * @param {Uint32Array} cells sorted unique, each < n
 * @param {number} n
 * @param {Uint8Array|null} [mask]
 * @returns {Uint32Array}
 */
export function complement(cells, n, mask = null) {
  const out = new Uint32Array(n - cells.length);
  let j = 0;
  let k = 0;
  for (let i = 0; i < n; i++) {
    if (j < cells.length && cells[j] === i) j++;
    else if (!mask || mask[i]) out[k++] = i;
  }
  return k === out.length ? out : out.slice(0, k);
}

/**
 * Cells whose mask entry is set, ascending.
 *
 * @param {Uint8Array} mask
 * @returns {Uint32Array}
 */
export function fromMask(mask) {
  let count = 0;
  for (let i = 0; i < mask.length; i++) count += mask[i] ? 1 : 0;
  const out = new Uint32Array(count);
  let k = 0;
  for (let i = 0; i < mask.length && k < count; i++) if (mask[i]) out[k++] = i;
  return out;
}

/**
 * Cells whose categorical code is `code` (and are in `mask`, when given), ascending.
 *
 * @param {Uint8Array|Uint16Array} codes
 * @param {number} code
 * @param {Uint8Array|null} [mask]
 * @returns {Uint32Array}
 */
export function cellsWithCode(codes, code, mask = null) {
  let count = 0;
  for (let i = 0; i < codes.length; i++) if (codes[i] === code && (!mask || mask[i])) count++;
  const out = new Uint32Array(count);
  let k = 0;
  for (let i = 0; i < codes.length && k < count; i++) if (codes[i] === code && (!mask || mask[i])) out[k++] = i;
  return out;
}

/**
 * One selection step: `replace` keeps `incoming`, `add` the union, `subtract` `current` without
 * `incoming`, `intersect` the cells in both. Inputs need not be sorted or unique.
 *
 * @param {Uint32Array} current
 * @param {Uint32Array} incoming
 * @param {"replace"|"add"|"subtract"|"intersect"} mode
 * @returns {Uint32Array} sorted unique, a new array
 */
export function combine(current, incoming, mode) {
  if (!MODES.includes(mode)) throw new Error(`mode must be one of ${MODES.map((m) => JSON.stringify(m)).join(", ")}, got ${JSON.stringify(mode)}`);
  const b = sortedUnique(incoming);
  if (mode === "replace") return b;
  const a = sortedUnique(current);
  if (mode === "add") return union(a, b);
  if (mode === "subtract") return difference(a, b);
  return intersection(a, b);
}

/** A growing list of cell indices (typed storage, doubling), for scans that collect hits. */
export class CellBuffer {
  /** @param {number} max the most cells it can hold (the scan's length) */
  constructor(max, initial = 4096) {
    this.max = max;
    this.data = new Uint32Array(Math.min(max, initial));
    this.length = 0;
  }

  push(cell) {
    if (this.length === this.data.length) {
      const grown = new Uint32Array(Math.min(this.max, Math.max(16, this.data.length * 2)));
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = cell;
  }

  /** The cells pushed so far (a new array). */
  result() {
    return this.data.slice(0, this.length);
  }
}
