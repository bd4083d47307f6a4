// Open a `.cellucid-session` in a running Viewer: colouring, camera, dimension, filters, highlight
// groups, user-defined fields (categorical of SPEC §5.2 and our numeric ones), category colours and
// comparisons. The bundle must fit the dataset (fingerprint): otherwise nothing changes and the
// error says why. Per-cell data stays in typed arrays (delta-varint cell lists, codes, float32
// chunks), so a 1M-cell session opens in well under a second.

import { Comparison } from "../analysis/compare.js";
import { getColormap } from "../color/colormaps.js";
import { addGroup } from "../app/groups.js";
import { categoryFilter } from "../filters/model.js";
import { readSessionBundle } from "./bundle.js";
import { decodeFilters, filterFromSpec, FILTERS_CHUNK } from "./filterschunk.js";
import { checkPalette, paletteFor, PALETTES_CHUNK } from "./palettes.js";
import { readContinuousFields } from "./userfloats.js";

/** The bundle belongs to another dataset (nothing was changed). */
export class SessionMismatchError extends Error {
  constructor(reasons) {
    super(`This session belongs to another dataset (${reasons.join("; ")}); nothing was changed. Open it with the dataset it was saved from.`);
    this.name = "SessionMismatchError";
    this.reasons = reasons;
  }
}

/**
 * Why a session's datasetFingerprint does not fit the dataset (empty: it fits). A missing
 * fingerprint or entry is not a mismatch (SPEC §5.5 checks the entries that are there).
 *
 * @param {object|null} fp the manifest's datasetFingerprint
 * @param {{id: string, nCells: number, nGenes: number}} dataset
 * @returns {string[]}
 */
export function fingerprintProblems(fp, { id, nCells, nGenes }) {
  if (!fp || typeof fp !== "object") return [];
  const out = [];
  if (Number.isInteger(fp.cellCount) && fp.cellCount !== nCells) out.push(`saved with ${fp.cellCount.toLocaleString("en-US")} cells, this dataset has ${nCells.toLocaleString("en-US")}`);
  if (Number.isInteger(fp.varCount) && fp.varCount !== nGenes) out.push(`saved with ${fp.varCount.toLocaleString("en-US")} genes, this dataset has ${nGenes.toLocaleString("en-US")}`);
  if (typeof fp.datasetId === "string" && fp.datasetId && fp.datasetId !== id) out.push(`saved for dataset "${fp.datasetId}", this is "${id}"`);
  return out;
}

const finitePair = (r) => Array.isArray(r) && r.length === 2 && r.every(Number.isFinite) && r[1] > r[0];

function restoreUserFields(viewer, chunks, warnings) {
  const overlays = chunks.get("core/field-overlays")?.value?.userDefinedFields;
  let added = 0;
  for (const f of Array.isArray(overlays) ? overlays : []) {
    if (!f || f.kind !== "category" || f.isDeleted || (f.source ?? "obs") !== "obs") continue;
    const codes = chunks.get(`user-defined/codes/${f.id}`)?.value;
    if (!codes) continue;
    try {
      viewer.addUserField({ key: String(f.key || f.id), kind: "category", categories: (f.categories || []).map(String), codes }, "session");
      added++;
    } catch (err) {
      warnings.push(`field ${JSON.stringify(f.key || f.id)} skipped: ${err.message}`);
    }
  }
  const numeric = readContinuousFields(chunks, viewer.nCells);
  warnings.push(...numeric.warnings);
  for (const f of numeric.fields) {
    try {
      viewer.addUserField({ key: f.key, kind: "continuous", values: f.values }, "session");
      added++;
    } catch (err) {
      warnings.push(`numeric field ${JSON.stringify(f.key)} skipped: ${err.message}`);
    }
  }
  return added;
}

/** Category colours (after the user fields exist): each field the dataset has gets its palette. */
export function applyPalettes(viewer, doc, warnings) {
  if (!doc || typeof doc !== "object") return 0;
  let applied = 0;
  for (const [key, spec] of Object.entries(doc)) {
    const field = viewer.dataset.fieldByKey.get(key);
    if (!field || field.kind !== "category") continue; // a field this dataset does not show
    const { colors, error } = checkPalette(key, spec);
    if (error) {
      warnings.push(error);
      continue;
    }
    const { palette, matched } = paletteFor(field.categories.map(String), colors);
    if (!matched) {
      warnings.push(`colours of ${JSON.stringify(key)} ignored: none of its categories is named in the session`);
      continue;
    }
    viewer.palettes.set(key, palette);
    applied++;
  }
  return applied;
}

async function restoreFilters(viewer, chunks, core, warnings) {
  const doc = chunks.get(FILTERS_CHUNK)?.value;
  const set = viewer.visibility.filters;
  set.clear();
  if (doc === undefined) {
    // a bundle of the web app or an older viewer: the legend's hidden categories
    const key = core?.colorBy?.key;
    const hidden = Array.isArray(core?.hiddenCategories) ? new Set(core.hiddenCategories.map(String)) : null;
    if (key && hidden && hidden.size && viewer.dataset.fieldByKey.get(key)?.kind === "category") {
      const field = await viewer.loadField(key);
      set.set(categoryFilter(key, field.categories, field.categories.map((c) => (hidden.has(c) ? 0 : 1))), field.codes);
    }
    return set.size;
  }
  const { specs, warnings: bad } = decodeFilters(doc);
  warnings.push(...bad);
  for (const spec of specs) {
    try {
      const field = spec.source === "var" ? await viewer.dataset.loadGene(spec.key) : await viewer.loadField(spec.key);
      const { filter, warning } = filterFromSpec(spec, field);
      if (warning) warnings.push(warning);
      set.set(filter, filter.kind === "category" ? field.codes : field.values);
    } catch (err) {
      warnings.push(`filter on ${JSON.stringify(spec.key)} skipped: ${err.message}`);
    }
  }
  return set.size;
}

function restoreGroups(viewer, chunks, warnings) {
  viewer.highlights = [];
  const pages = chunks.get("highlights/meta")?.value?.pages;
  let n = 0;
  for (const page of Array.isArray(pages) ? pages : []) {
    if (page && typeof page.id === "string" && page.id) viewer.highlightPageId = page.id;
    for (const g of Array.isArray(page?.highlightedGroups) ? page.highlightedGroups : []) {
      if (!g || typeof g.id !== "string" || !g.id) continue;
      const cells = chunks.get(`highlights/cells/${g.id}`)?.value;
      const name = String(g.name || g.id);
      if (!cells || !cells.length) {
        warnings.push(`group ${JSON.stringify(name)} has no cells and was left out`);
        continue;
      }
      let group;
      try {
        group = addGroup(viewer, cells, { name, color: /^#[0-9a-fA-F]{6}$/.test(g.color) ? g.color : undefined });
      } catch (err) {
        warnings.push(`group ${JSON.stringify(name)} skipped: ${err.message}`);
        continue;
      }
      if (g.visible === false) group.visible = false;
      n++;
    }
  }
  return n;
}

function restoreComparisons(viewer, chunks, warnings) {
  const doc = chunks.get("analysis/comparisons")?.value;
  viewer.comparisons = [];
  if (!doc || !Array.isArray(doc.comparisons)) return 0;
  const group = (spec) => {
    const cells = chunks.get(spec?.cellsChunk)?.value;
    if (!(cells instanceof Uint32Array)) throw new Error("its cells are missing");
    return { label: String(spec.label || `${cells.length} cells`), cells };
  };
  for (const c of doc.comparisons) {
    try {
      const cmp = new Comparison({ method: c.method, tieCorrect: c.tieCorrect, group: group(c.group), reference: c.reference === "rest" ? "rest" : group(c.reference), name: c.name });
      cmp.id = String(c.id);
      cmp.createdAt = String(c.createdAt || cmp.createdAt);
      cmp.statistic = String(c.statistic || "");
      cmp.result.setResult({ ...(c.result || {}), names: (c.result?.names || []).map(String) });
      cmp.total = cmp.done = cmp.result.count;
      cmp.referenceSize = cmp.reference === "rest" ? viewer.nCells - cmp.groupSize : cmp.reference.cells.length;
      cmp.status = "done";
      cmp.source = "session";
      viewer.comparisons.push(cmp);
    } catch (err) {
      warnings.push(`comparison ${JSON.stringify(c?.name || c?.id)} skipped: ${err.message}`);
    }
  }
  return viewer.comparisons.length;
}

function restoreCamera(viewer, camera) {
  const scene = viewer.scene;
  if (!camera || typeof camera !== "object" || !scene.deck) return false;
  const view = { ...scene.homeViewState() };
  if (Array.isArray(camera.target) && camera.target.every(Number.isFinite)) view.target = camera.target.slice(0, 3);
  for (const k of ["zoom", "rotationX", "rotationOrbit"]) if (Number.isFinite(camera[k])) view[k] = camera[k];
  if (viewer.dim !== 3) {
    delete view.rotationX;
    delete view.rotationOrbit;
  }
  scene.userMoved = true;
  scene.viewState = view;
  scene.deck.setProps({ viewState: view });
  if (scene.hooks && scene.hooks.onViewState) scene.hooks.onViewState(view);
  return true;
}

/**
 * Open a session bundle in the viewer.
 *
 * @param {import("../app/viewer.js").Viewer} viewer
 * @param {ArrayBuffer|ArrayBufferView} bytes the .cellucid-session file
 * @returns {Promise<{warnings: string[], groups: number, filters: number, fields: number,
 *   comparisons: number, palettes: number}>}
 * @throws {SessionMismatchError} (rejects) when it belongs to another dataset; {Error} for a
 *   file that is not a session bundle. Nothing changes in either case.
 */
export async function restoreSession(viewer, bytes) {
  const { manifest, chunks } = await readSessionBundle(bytes);
  const problems = fingerprintProblems(manifest.datasetFingerprint, { id: viewer.dataset.id, nCells: viewer.nCells, nGenes: viewer.dataset.genes.length });
  if (problems.length) throw new SessionMismatchError(problems);
  const warnings = [];
  const core = chunks.get("core/state")?.value || {};
  const fields = restoreUserFields(viewer, chunks, warnings);
  const palettes = applyPalettes(viewer, chunks.get(PALETTES_CHUNK)?.value, warnings);
  const filters = await restoreFilters(viewer, chunks, core, warnings);
  viewer.filtersChanged();
  const groups = restoreGroups(viewer, chunks, warnings);
  const comparisons = restoreComparisons(viewer, chunks, warnings);
  viewer.emit("highlights", viewer.highlights);
  viewer.showComparison(viewer.comparisons.length ? viewer.comparisons[viewer.comparisons.length - 1] : null);
  if (Number.isInteger(core.dim) && viewer.dimensions.includes(core.dim) && core.dim !== viewer.dim) await viewer.setDimension(core.dim);
  const style = {};
  if (Number.isFinite(core.pointSize) && core.pointSize > 0) style.pointSize = core.pointSize;
  if (Number.isFinite(core.opacity) && core.opacity > 0) style.opacity = core.opacity;
  if (core.background === "dark" || core.background === "light") style.dark = core.background === "dark";
  if (Object.keys(style).length) viewer.setStyle(style);
  const key = core.colorBy && typeof core.colorBy.key === "string" ? core.colorBy.key : null;
  if (typeof core.colormap === "string") {
    try {
      getColormap(core.colormap);
      viewer.colormap = core.colormap;
    } catch {
      warnings.push(`unknown colormap ${JSON.stringify(core.colormap)}; ${viewer.colormap} kept`);
    }
  }
  if (key && (viewer.dataset.fieldByKey.has(key) || viewer.dataset.geneIndex.has(key))) {
    if (finitePair(core.range)) viewer.ranges.set(key, core.range.slice());
    await viewer.setColorBy(key);
  } else if (key) warnings.push(`coloured by ${JSON.stringify(key)}, which this dataset does not have`);
  else if (viewer.field) await viewer.setColorBy(viewer.field.key); // palettes and the legend
  restoreCamera(viewer, core.camera);
  viewer.emit("filters", viewer.filters);
  const summary = { warnings, groups, filters, fields, comparisons, palettes };
  viewer.emit("session", summary);
  return summary;
}

