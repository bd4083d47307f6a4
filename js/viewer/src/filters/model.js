// The filter model: categorical include-sets on obs fields and numeric ranges on obs fields
// and genes, and FilterSet, which keeps one Uint8Array mask per filter and combines them (with
// the bridge's setVisibility layer) into the viewer's visibility mask. Pure module.
//
// A filter is a small plain object (no per-cell data):
//   {id: "obs:<key>", kind: "category", source: "obs", key, categories: string[],
//    include: Uint8Array(k) (1 = kept), includeMissing: boolean}
//   {id: "<obs|var>:<key>", kind: "range", source: "obs" | "var", key, lo, hi}
// A cell passes a range filter when lo ≤ value ≤ hi (NaN never passes); it passes a category
// filter when its category is included (cells without a category follow includeMissing).
// One filter per field: setting a filter with the same id replaces it.

import { categoryMask, combineMasks, rangeMask } from "./mask.js";

/** Filter id of a field: obs fields and genes are separate namespaces. */
export const filterId = (source, key) => `${source === "var" ? "var" : "obs"}:${key}`;

/**
 * A categorical filter.
 *
 * @param {string} key obs key
 * @param {string[]} categories
 * @param {ArrayLike<number>} include length k, non-zero = kept
 * @param {boolean} [includeMissing] cells without a category (default kept)
 */
export function categoryFilter(key, categories, include, includeMissing = true) {
  const k = categories.length;
  if (include.length !== k) throw new Error(`include has ${include.length} entries for ${k} categories`);
  const inc = new Uint8Array(k);
  for (let c = 0; c < k; c++) inc[c] = include[c] ? 1 : 0;
  return { id: filterId("obs", key), kind: "category", source: "obs", key: String(key), categories, include: inc, includeMissing: !!includeMissing };
}

/** "Only these": keep exactly the named categories (cells without a category are hidden). */
export function onlyCategories(key, categories, names) {
  const wanted = new Set(Array.from(names, String));
  return categoryFilter(key, categories, categories.map((c) => (wanted.has(c) ? 1 : 0)), false);
}

/**
 * A legend click on a category of `key`: the filter after hiding/showing category `which`
 * (an index), "all" or "none"; `solo` keeps only `which`. `current` is the field's filter or null;
 * its rule for cells without a category is kept, except by "all", which shows every cell.
 */
export function toggleCategory(current, key, categories, which, solo = false) {
  const k = categories.length;
  const inc = current ? Uint8Array.from(current.include) : new Uint8Array(k).fill(1);
  if (which === "all") return categoryFilter(key, categories, inc.fill(1), true); // "show all": no filter
  if (which === "none") inc.fill(0);
  else if (solo) {
    inc.fill(0);
    inc[which] = 1;
  } else inc[which] = inc[which] ? 0 : 1;
  return categoryFilter(key, categories, inc, current ? current.includeMissing : true);
}

/**
 * A range filter lo ≤ v ≤ hi; NaN ends mean unbounded, reversed ends are swapped.
 *
 * @param {string} key obs key or gene id
 * @param {"obs"|"var"} source
 * @param {number} lo
 * @param {number} hi
 */
export function rangeFilter(key, source, lo, hi) {
  let a = Number.isNaN(lo) || lo === null || lo === undefined ? -Infinity : Number(lo);
  let b = Number.isNaN(hi) || hi === null || hi === undefined ? Infinity : Number(hi);
  if (a > b) [a, b] = [b, a];
  const src = source === "var" ? "var" : "obs";
  return { id: filterId(src, key), kind: "range", source: src, key: String(key), lo: a, hi: b };
}

/** A filter that keeps every cell it could (removed rather than stored). */
export function isNoop(f) {
  if (f.kind === "range") return f.lo === -Infinity && f.hi === Infinity;
  return f.includeMissing && f.include.every((v) => v === 1);
}

const num = (v) => {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2);
  return String(Number(v.toPrecision(4)));
};

/** One line for the Active filters list, e.g. "n_genes ≥ 500", "cluster: B cells, NK". */
export function describeFilter(f) {
  if (f.kind === "range") {
    if (f.lo === -Infinity) return `${f.key} ≤ ${num(f.hi)}`;
    if (f.hi === Infinity) return `${f.key} ≥ ${num(f.lo)}`;
    return `${num(f.lo)} ≤ ${f.key} ≤ ${num(f.hi)}`;
  }
  const k = f.categories.length;
  const kept = [];
  const dropped = [];
  for (let c = 0; c < k; c++) (f.include[c] ? kept : dropped).push(f.categories[c]);
  const list = (names) => (names.length <= 3 ? names.join(", ") : null);
  if (!kept.length) return `${f.key}: none`;
  if (list(kept) && kept.length <= dropped.length) return `${f.key}: ${list(kept)}`;
  if (list(dropped)) return `${f.key}: not ${list(dropped)}`;
  return `${f.key}: ${kept.length.toLocaleString("en-US")} of ${k.toLocaleString("en-US")} categories`;
}

/** Indices of the categories whose label contains `query` (case-insensitive); all for "". */
export function matchCategories(categories, query) {
  const q = String(query || "").trim().toLowerCase();
  const out = [];
  for (let c = 0; c < categories.length; c++) if (!q || categories[c].toLowerCase().includes(q)) out.push(c);
  return Uint32Array.from(out);
}

/**
 * The active filters of one dataset of n cells, each with its data (codes or values) and its
 * own mask. Changing one filter recomputes only that filter's mask; `apply` ANDs them all.
 */
export class FilterSet {
  constructor(n) {
    this.n = n;
    this.entries = new Map(); // id -> {filter, data, mask}
    this.version = 0;
  }

  get size() {
    return this.entries.size;
  }

  /** The filters, in the order they were first added. */
  list() {
    return [...this.entries.values()].map((e) => e.filter);
  }

  get(id) {
    const e = this.entries.get(id);
    return e ? e.filter : null;
  }

  /**
   * Add or replace a filter. `data`: the field's codes (category) or values (range), length n.
   * A no-op filter (every category kept, or an unbounded range) removes the field's filter.
   * Returns true when the set changed.
   */
  set(filter, data) {
    if (isNoop(filter)) return this.remove(filter.id);
    this.check(filter, data);
    const old = this.entries.get(filter.id);
    const mask = old && old.mask.length === this.n ? old.mask : new Uint8Array(this.n);
    return this.setMask(filter, data, filterMask(filter, data, mask));
  }

  /** Throws unless `data` fits the filter and this set's n. */
  check(filter, data) {
    const expected = filter.kind === "category" ? "codes" : "values";
    if (!data || data.length !== this.n) throw new Error(`filter ${filter.id}: ${expected} of ${this.n} cells needed`);
  }

  /** Add or replace a filter whose mask was computed elsewhere (the filters worker). */
  setMask(filter, data, mask) {
    if (isNoop(filter)) return this.remove(filter.id);
    if (mask.length !== this.n) throw new Error(`filter ${filter.id}: a mask of ${this.n} cells needed`);
    this.entries.set(filter.id, { filter, data, mask });
    this.version++;
    return true;
  }

  remove(id) {
    if (!this.entries.delete(id)) return false;
    this.version++;
    return true;
  }

  clear() {
    if (!this.entries.size) return false;
    this.entries.clear();
    this.version++;
    return true;
  }

  /**
   * Combine the base layer (null = all visible) and every filter into `out`.
   * Returns the number of visible cells.
   */
  apply(base, out) {
    return combineMasks(this.n, base, [...this.entries.values()].map((e) => e.mask), out);
  }
}

/**
 * The mask of one filter over its field's data (codes for a category filter, values for a range
 * filter), into `out` when given.
 */
export function filterMask(filter, data, out) {
  if (filter.kind === "category") return categoryMask(data, filter.include, filter.includeMissing, out);
  if (filter.kind === "range") return rangeMask(data, filter.lo, filter.hi, out);
  throw new Error(`unknown filter kind ${JSON.stringify(filter.kind)}`);
}
