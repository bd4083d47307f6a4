// Compare groups in the Viewer: resolve what the user (or a test, or the bridge) names as group A
// and group B into cell lists, run the comparison through the page's Comparer (server or
// browser worker, analysis/compare.js), keep finished comparisons for the session bundle, and
// tell the UI through Viewer events ("comparison": the Comparison, after each step).

import { Comparison } from "../analysis/compare.js";
import { cellsOfCategories, checkGroups, sortedCells } from "../analysis/groups.js";
import { METHODS } from "../analysis/stats.js";

const count = (k) => `${k.toLocaleString("en-US")} cells`;

/**
 * A group spec → {label, cells (sorted unique Uint32Array)}. Specs:
 *   "selection"                                the current selection
 *   Uint32Array | number[]                     these cells
 *   {cells, label?}                            these cells, named
 *   {highlight: id or label}                   a highlight group
 *   {field: key, categories: [name, …]}        cells of categories of a categorical obs or user field
 */
export async function resolveGroup(viewer, spec, which) {
  const n = viewer.nCells;
  if (spec === "selection") {
    const cells = viewer.selection.slice();
    return { label: `Selection (${count(cells.length)})`, cells };
  }
  if (ArrayBuffer.isView(spec) || Array.isArray(spec)) {
    const cells = sortedCells(spec, n);
    return { label: count(cells.length), cells };
  }
  if (spec && typeof spec === "object") {
    if (spec.cells) {
      const cells = sortedCells(spec.cells, n);
      return { label: String(spec.label || count(cells.length)), cells };
    }
    if (spec.highlight !== undefined) {
      const g = viewer.highlights.find((h) => h.id === spec.highlight) || viewer.highlights.find((h) => h.label === spec.highlight);
      if (!g) throw new Error(`group ${which}: no highlight group ${JSON.stringify(spec.highlight)}`);
      return { label: g.label, cells: g.cells.slice() };
    }
    if (spec.field !== undefined) {
      const f = await viewer.loadField(String(spec.field));
      if (f.kind !== "category") throw new Error(`group ${which}: ${JSON.stringify(spec.field)} is not a categorical field`);
      const names = (spec.categories || []).map(String);
      if (!names.length) throw new Error(`group ${which}: pick at least one category of ${spec.field}`);
      const indices = names.map((name) => {
        const i = f.categories.indexOf(name);
        if (i < 0) throw new Error(`group ${which}: ${spec.field} has no category ${JSON.stringify(name)}`);
        return i;
      });
      return { label: `${spec.field}: ${names.join(", ")}`, cells: cellsOfCategories(f.codes, indices) };
    }
  }
  throw new TypeError(`group ${which} must be "selection", cell indices, {cells}, {highlight} or {field, categories}`);
}

/**
 * Run a comparison; resolves to the finished Comparison, rejects on an error or a cancel
 * (AbortError). A new comparison cancels the one still running.
 *
 * @param {import("./viewer.js").Viewer} viewer
 * @param {{group?: object|string, reference?: object|string, method?: string, tieCorrect?: boolean,
 *   nGenes?: number|null, name?: string}} spec group defaults to the selection, reference to "rest"
 */
export async function runComparison(viewer, spec = {}) {
  if (!viewer.comparer) throw new Error("comparisons are not available in this viewer");
  const { group = "selection", reference = "rest", method = "wilcoxon", tieCorrect = false, nGenes = null, name } = spec;
  if (!METHODS.includes(method)) throw new Error(`method must be one of ${METHODS.join(", ")}, got ${JSON.stringify(method)}`);
  const a = await resolveGroup(viewer, group, "A");
  const b = reference === "rest" ? "rest" : await resolveGroup(viewer, reference, "B");
  checkGroups(a, b, viewer.nCells);
  viewer.cancelCompare();
  const cmp = new Comparison({ method, tieCorrect, nGenes, group: a, reference: b, name });
  const controller = new AbortController();
  viewer.compareRun = { cmp, controller };
  viewer.activeComparison = cmp;
  viewer.emit("comparison", cmp);
  try {
    await viewer.comparer.run(cmp, controller.signal, () => viewer.emit("comparison", cmp));
    cmp.status = "done";
    viewer.comparisons.push(cmp);
    return cmp;
  } catch (err) {
    cmp.status = err && err.name === "AbortError" ? "cancelled" : "error";
    cmp.error = String((err && err.message) || err);
    throw err;
  } finally {
    if (viewer.compareRun && viewer.compareRun.cmp === cmp) viewer.compareRun = null;
    viewer.emit("comparison", cmp);
  }
}

/** The session-bundle form of the finished comparisons (session/bundle.js). */
export function comparisonsForSession(comparisons) {
  return comparisons.map((c) => ({
    id: c.id,
    name: c.name,
    createdAt: c.createdAt,
    method: c.method,
    tieCorrect: c.tieCorrect,
    statistic: c.statistic,
    group: { label: c.group.label, cells: c.group.cells },
    reference: c.reference === "rest" ? "rest" : { label: c.reference.label, cells: c.reference.cells },
    result: c.result.toSession(),
  }));
}
