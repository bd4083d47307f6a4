// The `cellucid/filters` session chunk (python/cellucid/server/PROTOCOL.md "Session chunks"):
// the Active filters list, by field key and category NAME (not index), so that it survives a
// re-export that orders categories differently. Pure module.
//
//   {version: 1, filters: [
//     {kind: "category", source: "obs", key, keep: [category names], includeMissing: bool},
//     {kind: "range", source: "obs"|"var", key, lo: number|null, hi: number|null}]}
// null ends are unbounded (JSON has no Infinity).

import { categoryFilter, rangeFilter } from "../filters/model.js";

export const FILTERS_CHUNK = "cellucid/filters";
export const FILTERS_VERSION = 1;

const end = (v) => (Number.isFinite(v) ? v : null);

/**
 * The chunk document of a list of filters (filters/model.js objects), in list order.
 *
 * @param {Array<object>} filters
 * @returns {{version: number, filters: Array<object>}}
 */
export function encodeFilters(filters) {
  return {
    version: FILTERS_VERSION,
    filters: filters.map((f) => {
      if (f.kind === "range") return { kind: "range", source: f.source, key: f.key, lo: end(f.lo), hi: end(f.hi) };
      if (f.kind === "category") {
        const keep = f.categories.filter((_, c) => f.include[c]);
        return { kind: "category", source: "obs", key: f.key, keep, includeMissing: !!f.includeMissing };
      }
      throw new Error(`unknown filter kind ${JSON.stringify(f.kind)}`);
    }),
  };
}

/**
 * Check a chunk document; returns the filter specs it holds, in order, and a warning for each
 * entry that is not a valid filter (skipped).
 *
 * @param {unknown} doc
 * @returns {{specs: Array<object>, warnings: string[]}}
 */
export function decodeFilters(doc) {
  if (!doc || typeof doc !== "object" || !Array.isArray(doc.filters)) {
    return { specs: [], warnings: [`${FILTERS_CHUNK}: expected {version, filters: [...]}, ignored`] };
  }
  if (doc.version !== FILTERS_VERSION) return { specs: [], warnings: [`${FILTERS_CHUNK}: version ${JSON.stringify(doc.version)} is not ${FILTERS_VERSION}, ignored`] };
  const specs = [];
  const warnings = [];
  doc.filters.forEach((f, i) => {
    const bad = (why) => warnings.push(`filter ${i + 1} skipped: ${why}`);
    if (!f || typeof f !== "object" || typeof f.key !== "string" || !f.key) return bad("no field key");
    const num = (v) => v === null || v === undefined || (typeof v === "number" && Number.isFinite(v));
    if (f.kind === "range") {
      if (!num(f.lo) || !num(f.hi)) return bad(`${f.key}: lo and hi must be numbers or null`);
      specs.push({ kind: "range", source: f.source === "var" ? "var" : "obs", key: f.key, lo: f.lo ?? -Infinity, hi: f.hi ?? Infinity });
    } else if (f.kind === "category") {
      if (!Array.isArray(f.keep) || !f.keep.every((c) => typeof c === "string")) return bad(`${f.key}: keep must be a list of category names`);
      specs.push({ kind: "category", source: "obs", key: f.key, keep: f.keep.slice(), includeMissing: f.includeMissing !== false });
    } else bad(`${f.key}: unknown kind ${JSON.stringify(f.kind)}`);
  });
  return { specs, warnings };
}

/**
 * A filter (filters/model.js) from a spec and the field's data; category names the field does
 * not have are reported (and dropped).
 *
 * @param {object} spec from decodeFilters
 * @param {{kind: string, categories?: string[], source?: string}} field the loaded field
 * @returns {{filter: object, warning: string|null}}
 */
export function filterFromSpec(spec, field) {
  if (spec.kind === "range") {
    if (field.kind !== "continuous") throw new Error(`${spec.key} is not continuous any more: its range filter is skipped`);
    return { filter: rangeFilter(spec.key, spec.source, spec.lo, spec.hi), warning: null };
  }
  if (field.kind !== "category") throw new Error(`${spec.key} is not categorical any more: its category filter is skipped`);
  const known = new Set(field.categories);
  const unknown = spec.keep.filter((c) => !known.has(c));
  const keep = new Set(spec.keep);
  const include = field.categories.map((c) => (keep.has(c) ? 1 : 0));
  const warning = unknown.length ? `${spec.key} has no categor${unknown.length > 1 ? "ies" : "y"} ${unknown.slice(0, 3).map((c) => JSON.stringify(c)).join(", ")}` : null;
  return { filter: categoryFilter(spec.key, field.categories, include, spec.includeMissing), warning };
}
