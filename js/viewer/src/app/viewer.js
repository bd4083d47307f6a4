// The Viewer: state of one loaded dataset, the methods the bridge calls (ARCHITECTURE.md),
// and the glue between data, scene and panel. Per-cell state lives in typed arrays.

import { Scene } from "../render/scene.js";
import { isPointsLayer } from "../render/views.js";
import { colorUniform } from "../render/colorize.js";
import { defaultOpacity, defaultPointSize } from "../render/pointsize.js";
import { centroidLabels } from "../render/labels.js";
import { Visibility } from "../filters/visibility.js";
import { describeFilter, filterId, isNoop, onlyCategories, rangeFilter, toggleCategory } from "../filters/model.js";
import { keepVisible } from "../filters/mask.js";
import { FilterJobs } from "../filters/client.js";
import { categoricalPalette, hexToRgb } from "../color/palettes.js";
import { getColormap, valueStats } from "../color/colormaps.js";
import { combineSelection } from "../select/lasso.js";
import { SelectionHistory } from "../select/history.js";
import { clickModeFor } from "../select/modes.js";
import { saveSessionBundle } from "../session/save.js";
import { restoreSession } from "../session/restore.js";
import { LoadError } from "../data/http.js";
import { comparisonsForSession, runComparison } from "./compare.js";
import { addGroup, annotate, drawGroups, groupFromCategory, groupsChanged, updateGroup } from "./groups.js";
import { growSelection, invertSelection, lassoSelect, pickCategory, selectWithin, stepHistory } from "./selecttools.js";
import { UserFields } from "./userfields.js";
import { currentPoints, loadPositions, switchEmbedding } from "./embeddings.js";
import { fieldColors, Panels } from "./panels.js";

/** From this many cells on, filter masks are made in the filters worker (Viewer.setFilter). */
export const FILTER_WORKER_MIN = 2_000_000;

/** Sorted unique Uint32Array of valid cell indices. */
function normCells(cells, n) {
  const a = Uint32Array.from(cells).sort();
  let k = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] >= n) throw new RangeError(`cell index ${a[i]} is out of range (n = ${n})`);
    if (k === 0 || a[i] !== a[k - 1]) a[k++] = a[i];
  }
  return a.slice(0, k);
}

export class Viewer {
  constructor({ dataset, stage, scene = null }) {
    this.dataset = dataset;
    this.stage = stage;
    this.nCells = dataset.n;
    this.dimensions = dataset.dimensions.slice();
    this.dim = dataset.defaultDimension;
    this.listeners = new Map();
    this.visibility = new Visibility(this.nCells); // setVisibility layer AND filters (filters/)
    this.visible = this.visibility.base; // the setVisibility layer
    this.labelsOn = false; // category labels at the centroids
    this.filterJobs = new FilterJobs(); // histograms, large masks; main.js gives it the bundled worker
    this.pendingFilters = new Map(); // filter id -> {filter} whose mask is being made in the worker
    this._selection = new Uint32Array(0);
    this.history = new SelectionHistory(this.nCells); // undo / redo of selection steps
    this.selectMode = "replace"; // the panel's mode for gestures without modifier keys
    this.knnGraph = null; // Promise<KnnGraph> (app/knngraph.js), loaded on the first kNN grow
    this.createSelectWorker = null; // () => Worker for kNN grow; set by main.js (else on the page)
    this.selectJobs = null; // select/client.js SelectJobs: lasso and category pick in a worker (main.js)
    this.lastLasso = null; // {route: index | worker | page, panel, cells, ms} of the last lasso (selecttools.js)
    this.highlights = []; // groups: {id, label (name), color, rgb, cells, visible}
    this.userFields = new UserFields(this); // fields made in the viewer or sent from Python
    this.highlightPageId = "page-1";
    this.nextGroup = 1;
    this.field = null; // active field data
    this.hiddenCats = null; // Uint8Array k for the active categorical field
    this.palettes = new Map(); // key -> Uint8Array k*3
    this.colormap = "viridis";
    this.ranges = new Map(); // key -> [lo, hi]
    this.stats = null;
    this.pointSize = defaultPointSize(this.nCells);
    this.opacity = defaultOpacity(this.nCells);
    this.dark = false;
    this.frozen = false;
    this.hoverCell = null;
    this.loadingField = null;
    this.comparer = null; // analysis/compare.js Comparer, set by main.js when the dataset has genes
    this.comparisons = []; // finished comparisons (kept in the session bundle)
    this.activeComparison = null; // the one the compare panel shows (and figure export draws)
    this.compareRun = null; // {cmp, controller} while one runs
    this.obsNames = null; // data/obsnames.js ObsNameLoader, set by main.js (server mode)
    this.embeddings = null; // app/embeddings.js EmbeddingCatalog (AnnData mode), set by main.js
    this.embedding = null; // obsm key shown (null: the dataset's own points_{d}d.bin)
    this.scene =
      scene ||
      new Scene(stage.canvasHost, {
        onHover: (info) => this.handleHover(info),
        onClick: (info, ev) => this.handleClick(info, ev),
        onContextLost: () => this.handleContextLost(),
        onFrame: () => this.emit("frame", null),
        onError: (err) => console.error("cellucid render error", err),
      });
    this.scene.setStyle({ pointSize: this.pointSize, opacity: this.opacity, dark: this.dark });
    this.panels = new Panels(this); // split view (app/panels.js); panel 0 is this viewer's own state
  }

  // ------------------------------------------------------------------ events
  on(name, cb) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name).add(cb);
    return () => this.listeners.get(name).delete(cb);
  }

  emit(name, payload) {
    const set = this.listeners.get(name);
    if (!set) return;
    for (const cb of [...set]) {
      try {
        cb(payload);
      } catch (err) {
        console.error(`cellucid: "${name}" listener failed`, err);
      }
    }
  }

  // ------------------------------------------------------------------ startup
  async start() {
    const pts = await this.dataset.loadPoints(this.dim);
    this.scene.setPositions(this.dim, pts);
    this.scene.setColors(colorUniform(this.nCells));
    this.applyRadii();
  }

  // ------------------------------------------------------------------ colour
  fieldKeys() {
    return this.dataset.fields.map((f) => f.key);
  }

  /** Activate an obs key or a gene id. Rejects on unknown keys or load failures. */
  async setColorBy(field) {
    if (typeof field !== "string") throw new TypeError("field must be a string");
    const isObs = this.dataset.fieldByKey.has(field); // obs and user-defined fields
    const isGene = !isObs && this.dataset.geneIndex.has(field);
    if (!isObs && !isGene) throw new Error(`unknown field ${JSON.stringify(field)}: not an obs key nor a gene id`);
    const token = {};
    this.loadingField = { key: field, token };
    this.emit("loading", { key: field, loading: true });
    let data;
    try {
      data = isObs ? await this.loadField(field) : await this.dataset.loadGene(field);
    } catch (err) {
      if (this.loadingField && this.loadingField.token === token) this.loadingField = null;
      this.emit("loading", { key: field, loading: false, error: err });
      if (err instanceof LoadError) this.emit("error", { file: err.file, key: err.key, message: err.message });
      throw err;
    }
    if (!this.loadingField || this.loadingField.token !== token) return; // superseded by a newer request
    this.loadingField = null;
    this.field = data;
    if (data.kind === "category") {
      const k = data.categories.length;
      if (!this.palettes.has(field)) this.palettes.set(field, categoricalPalette(k));
      this.hiddenCats = new Uint8Array(k);
      this.syncHiddenCats(data);
      const counts = new Uint32Array(k + 1);
      for (let i = 0; i < data.codes.length; i++) {
        const c = data.codes[i];
        counts[c < k ? c : k]++;
      }
      this.counts = counts;
      this.stats = null;
    } else {
      this.hiddenCats = null;
      this.stats = valueStats(data.values, data.source === "var");
      if (!this.ranges.has(field)) this.ranges.set(field, this.stats[this.stats.defaultRange]);
    }
    this.recolor();
    this.updateLabels();
    this.emit("loading", { key: field, loading: false });
    this.emit("field", data);
  }

  /** An obs field or a user-defined field (app/userfields.js) by key. */
  async loadField(key) {
    return this.userFields.get(key) || this.dataset.loadField(key);
  }

  recolor() {
    // A new buffer each time: deck uploads an attribute when its array reference changes.
    this.scene.setColors(fieldColors(this, this.field));
  }

  setRange(range) {
    if (!this.field || this.field.kind !== "continuous") return;
    this.ranges.set(this.field.key, range);
    this.recolor();
    this.emit("style", null);
  }

  setColormap(name) {
    getColormap(name); // throws for an unknown name before anything changes
    this.colormap = name;
    this.recolor();
    this.emit("field", this.field);
  }

  /**
   * Give category `index` of the categorical field `key` another colour ("#rrggbb"; the legend's
   * swatches). The field's palette is replaced (a new array: sessions save it, figures and every
   * panel showing the field use it).
   */
  setCategoryColor(key, index, hex) {
    const rgb = hexToRgb(hex); // throws for anything but a colour, before anything changes
    const current = this.palettes.get(key);
    if (!current) throw new Error(`${JSON.stringify(key)} is not a categorical field shown with a palette`);
    if (!Number.isInteger(index) || index < 0 || 3 * index >= current.length) throw new Error(`no category ${index} in ${JSON.stringify(key)}`);
    const next = Uint8Array.from(current);
    next.set(rgb, 3 * index);
    this.palettes.set(key, next);
    if (this.field && this.field.key === key) {
      this.recolor();
      this.emit("field", this.field); // the legend and the split panels showing it
    } else {
      this.emit("style", null); // panels showing it recolour
    }
  }

  /**
   * Legend click: hide/show a category (index) of the active field, or "all" / "none"; solo =
   * show only that one. The legend edits the field's category filter (Active filters list).
   */
  toggleCategory(which, solo = false) {
    const f = this.field;
    if (!f || f.kind !== "category") return;
    const id = filterId("obs", f.key);
    const pending = this.pendingFilters.get(id); // a change still in the filters worker counts
    const current = pending ? pending.filter : this.visibility.filters.get(id);
    return this.setFilter(toggleCategory(current, f.key, f.categories, which, solo), f.codes);
  }

  /** Recompute the visibility mask and hand it to the scene (drawing, picking, overlays). */
  applyRadii() {
    this.visibility.update();
    this.radii = this.visibility.radii();
    this.scene.setVisibleMask(this.visibility.mask, this.radii, this.visibility.count);
    this.updateLabels();
    this.emit("visibility", { count: this.visibility.count, n: this.nCells });
  }

  /** The older name of isVisible. */
  isShown(i) {
    return this.isVisible(i);
  }

  // ------------------------------------------------------------------ visibility and filters
  // One mask (filters/visibility.js) drives drawing, picking, lasso, selection, highlights,
  // KNN edges, labels and figure export. Selection tools: use isVisible / visibleMask /
  // onlyVisible, and listen to "visibility".

  /** SPEC 4.2 setVisibility: the bridge's own layer; filters apply on top of it. */
  setVisibility(cells, visible) {
    this.visibility.setBase(cells === null || cells === undefined ? null : normCells(cells, this.nCells), visible);
    this.applyRadii();
  }

  /** Is cell i visible (drawn, pickable, selectable)? */
  isVisible(i) {
    return this.visibility.mask[i] === 1;
  }

  /** The visibility mask (Uint8Array n, 1 = visible); read-only, updated in place. */
  visibleMask() {
    return this.visibility.mask;
  }

  /** Number of visible cells. */
  get visibleCount() {
    return this.visibility.count;
  }

  /** The visible cells of a Uint32Array (same order; the array itself when all are visible). */
  onlyVisible(cells) {
    if (this.visibility.count === this.nCells) return cells;
    return keepVisible(cells, this.visibility.mask);
  }

  /** The active filters (filters/model.js objects), in the order they were added. */
  get filters() {
    return this.visibility.filters.list();
  }

  /**
   * Add or replace a filter; `data` = the field's codes (category) or values (range). From
   * FILTER_WORKER_MIN cells on the mask is made in the filters worker: returns a promise, and
   * the filter applies when it resolves (a newer change to the same filter wins).
   */
  setFilter(filter, data) {
    const set = this.visibility.filters;
    const min = this.filterWorkerMin ?? FILTER_WORKER_MIN;
    this.pendingFilters.delete(filter.id);
    if (this.nCells < min || !this.filterJobs.mask || isNoop(filter)) {
      set.set(filter, data);
      this.filtersChanged();
      return undefined;
    }
    set.check(filter, data);
    const token = { filter };
    this.pendingFilters.set(filter.id, token);
    return this.filterJobs.mask(filter, data).then((mask) => {
      if (this.pendingFilters.get(filter.id) !== token) return; // removed or changed meanwhile
      this.pendingFilters.delete(filter.id);
      set.setMask(filter, data, mask);
      this.filtersChanged();
    });
  }

  removeFilter(id) {
    this.pendingFilters.delete(id);
    if (this.visibility.filters.remove(id)) this.filtersChanged();
  }

  clearFilters() {
    this.pendingFilters.clear();
    if (this.visibility.filters.clear()) this.filtersChanged();
  }

  /** Range filter lo ≤ value ≤ hi on an obs field or a gene (loaded when needed). */
  async filterRange(key, lo, hi) {
    const data = await this.fieldData(key);
    if (data.kind !== "continuous") throw new Error(`${key} is categorical: filter it by categories`);
    return this.setFilter(rangeFilter(key, data.source, lo, hi), data.values);
  }

  /** "Only these": keep the cells of the named categories of an obs field. */
  async filterCategories(key, names) {
    const data = await this.fieldData(key);
    if (data.kind !== "category") throw new Error(`${key} is continuous: filter it by a range`);
    const known = new Set(data.categories);
    for (const n of names) if (!known.has(String(n))) throw new Error(`${key} has no category ${JSON.stringify(n)}`);
    return this.setFilter(onlyCategories(key, data.categories, names), data.codes);
  }

  /** An obs field's or a gene's data (obs first, as setColorBy). */
  fieldData(key) {
    if (this.dataset.fieldByKey.has(key)) return this.dataset.loadField(key);
    if (this.dataset.geneIndex.has(key)) return this.dataset.loadGene(key);
    return Promise.reject(new Error(`unknown field ${JSON.stringify(key)}: not an obs key nor a gene id`));
  }

  filtersChanged() {
    this.syncHiddenCats();
    this.applyRadii();
    this.emit("filters", this.filters);
    if (this.hiddenCats) this.emit("categories", this.hiddenCats);
  }

  /** The legend's hidden categories = the complement of the active field's category filter. */
  syncHiddenCats(field = this.field) {
    if (!field || field.kind !== "category" || !this.hiddenCats) return;
    const f = this.visibility.filters.get(filterId("obs", field.key));
    for (let c = 0; c < this.hiddenCats.length; c++) this.hiddenCats[c] = f && !f.include[c] ? 1 : 0;
  }

  // ------------------------------------------------------------------ category labels
  /** Category labels at the centroids of the active categorical field (toggle). */
  setLabels(on) {
    this.labelsOn = !!on;
    this.updateLabels();
    this.emit("labels", this.labelsOn);
  }

  updateLabels() {
    const f = this.field;
    const points = currentPoints(this);
    const show = this.labelsOn && f && f.kind === "category" && points;
    // The manifest's centroids belong to the exported embedding: another one gets its own means.
    const field = this.embedding === null ? f : { ...f, centroids: null };
    this.scene.setLabels(show ? centroidLabels(field, this.dim, points, this.visibility.mask) : null);
    this.panels.refreshLabels();
  }

  // ------------------------------------------------------------------ selection
  get selection() {
    return this._selection;
  }

  setSelection(cells, source = "python") {
    this.showSelection(normCells(cells, this.nCells), source, false);
    this.history.push(this._selection, source);
  }

  /**
   * A user selection step (any tool, app/selecttools.js): combine, record, draw and emit
   * "selection". opts.sorted: `cells` is sorted unique and the viewer may keep it (no copy);
   * opts.overlay: the cells' coordinates for the rings (Scene.setSelection), for "replace";
   * opts.bits: the same cells as a bitset (select/history.js push), for "replace".
   */
  userSelect(cells, mode, source, { sorted = false, overlay = null, bits = null } = {}) {
    const given = cells;
    if (mode !== "subtract") cells = this.onlyVisible(cells); // hidden cells are not selectable
    const next = mode === "replace" && sorted ? cells : combineSelection(this._selection, cells, mode);
    this.history.push(next, source, next === given ? bits : null);
    this.showSelection(next, source, true, mode === "replace" ? overlay : null);
  }

  /** Make `cells` (sorted unique) the selection and draw it; `user`: emit "selection" too. */
  showSelection(cells, source, user, overlay = null) {
    this._selection = cells;
    this.scene.setSelection(cells, overlay);
    this.emit("selectionchange", { cells, source });
    if (user) this.emit("selection", { cells, source });
  }

  clearSelection() {
    if (!this._selection.length) return;
    this.userSelect(new Uint32Array(0), "replace", "clear");
  }

  /**
   * Lasso polygon in canvas CSS pixels. mode: replace | add | subtract. Large datasets: in the
   * select worker (returns a promise), else at once (app/selecttools.js lassoSelect).
   */
  lasso(polygon, mode) {
    if (polygon.length < 3) return undefined;
    return lassoSelect(this, polygon, mode);
  }

  /**
   * Which cells a selection tool may select (1) or not (0): the visible ones (the one mask of
   * setVisibility and the filters, filters/visibility.js). Every tool goes through here.
   */
  selectableMask() {
    return this.visibility.mask;
  }

  // ------------------------------------------------------------------ selection tools
  // (app/selecttools.js; each is one selection step whose source names the tool)

  /** Category pick: the cells of `cell`'s category in the coloured field. */
  pickCategory(cell, mode = this.selectMode) {
    return pickCategory(this, cell, mode);
  }

  /** kNN grow: add the cells within `hops` steps of the selection on the kNN graph. */
  growSelection(hops = 1) {
    return growSelection(this, hops);
  }

  /** Proximity: the cells within `radius` of `center` (drawn embedding coordinates). */
  selectWithin(center, radius, mode = this.selectMode, panel = 0) {
    selectWithin(this, center, radius, mode, panel);
  }

  invertSelection() {
    invertSelection(this);
  }

  undoSelection() {
    return stepHistory(this, "undo");
  }

  redoSelection() {
    return stepHistory(this, "redo");
  }

  // ------------------------------------------------------------------ highlight groups (app/groups.js)
  /** A new group of `cells` in `color` ("#RRGGBB"), named `label`; returns its id. */
  highlight(cells, color, label) {
    const c = normCells(cells, this.nCells);
    return addGroup(this, c, { name: label || `Python selection (${c.length.toLocaleString("en-US")} cells)`, color }).id;
  }

  /** A new group of the selection; returns it. */
  groupFromSelection(opts = {}) {
    if (!this._selection.length) throw new Error("the selection is empty");
    return addGroup(this, this._selection.slice(), opts);
  }

  /** A new group of a category (of the coloured field, or of `fieldKey`); resolves to it. */
  groupFromCategory(category, fieldKey = null) {
    return groupFromCategory(this, category, fieldKey);
  }

  /** Rename / recolour / show or hide a group: changes {name?, color?, visible?}. */
  updateGroup(id, changes) {
    return updateGroup(this, id, changes);
  }

  removeHighlight(id) {
    this.highlights = this.highlights.filter((g) => g.id !== id);
    groupsChanged(this);
  }

  clearHighlights() {
    this.highlights = [];
    groupsChanged(this);
  }

  /** Annotate: the groups as a new categorical field, coloured at once; resolves to its name. */
  annotate(name) {
    return annotate(this, name);
  }

  // ------------------------------------------------------------------ user-defined fields (app/userfields.js)
  /**
   * Add (or replace) a user-defined field: {key, kind: "category", categories, codes} or
   * {key, kind: "continuous", values}. `palette` (k·3 bytes) colours its categories.
   */
  addUserField(spec, origin = "python", palette = null) {
    const field = this.userFields.add(spec, origin);
    if (palette) this.palettes.set(field.key, palette);
    else this.palettes.delete(field.key);
    this.ranges.delete(field.key);
    this.emit("fields", this.userFields.list());
    if (this.field && this.field.key === field.key) this.setColorBy(field.key).catch((err) => console.error(err));
    return field;
  }

  // ------------------------------------------------------------------ compare groups
  /**
   * Rank genes between two groups (app/compare.js runComparison): {group, reference, method,
   * tieCorrect, nGenes}. Resolves to the finished Comparison (`.result`, `.statistic`,
   * `.summary()`); rejects on an error or a cancel.
   */
  compare(spec) {
    return runComparison(this, spec);
  }

  /** Stop the running comparison (its promise rejects with an AbortError). */
  cancelCompare() {
    if (this.compareRun) this.compareRun.controller.abort();
  }

  /** Show a comparison (the panel's table and dot plot, figure export), or none. */
  showComparison(cmp) {
    this.activeComparison = cmp;
    this.emit("comparison", cmp);
  }

  // ------------------------------------------------------------------ camera / view
  resetCamera() {
    this.scene.resetCamera();
  }

  async setDimension(d) {
    d = Number(d);
    if (!this.dimensions.includes(d)) throw new Error(`dimension ${d} is not available (${this.dimensions.join(", ")})`);
    if (d === this.dim && this.scene.dim === d) return;
    this.emit("loading", { key: `${d}D embedding`, loading: true });
    try {
      const pts = await loadPositions(this, this.embedding, d);
      this.dim = d;
      this.scene.setPositions(d, pts);
      this.updateLabels();
      if (this.vectorField) await this.setVectorField(this.vectorField);
    } finally {
      this.emit("loading", { key: `${d}D embedding`, loading: false });
    }
    this.emit("dimension", d);
  }

  // ------------------------------------------------------------------ split view (app/panels.js)
  /**
   * Panels of the split view: [spec, ...] (a field name or {field, dimension, embedding}; the
   * first is this view's own), or null for one view. Resolves to the panels' description.
   */
  split(specs) {
    return this.panels.split(specs);
  }

  /** Show another obsm embedding (AnnData mode; null = the dataset's own), in `dim` or the current dimension. */
  setEmbedding(key, dim = null) {
    return switchEmbedding(this, key, dim);
  }

  setStyle(style) {
    if (style.pointSize !== undefined) this.pointSize = style.pointSize;
    if (style.opacity !== undefined) this.opacity = style.opacity;
    if (style.dark !== undefined) this.dark = style.dark;
    this.scene.setStyle(style);
    this.emit("style", style);
  }

  async setEdges(on) {
    if (on && !this.scene.edgeIndex) {
      const e = await this.loadEdges();
      if (e) this.scene.setEdges(e);
    }
    this.scene.setShowEdges(on);
  }

  /** The kNN graph's edges {src, dst, weights} (null without one), with a loading notice. */
  async loadEdges() {
    if (this.dataset.edges) return this.dataset.edges;
    this.emit("loading", { key: "KNN edges", loading: true });
    try {
      return await this.dataset.loadEdges();
    } finally {
      this.emit("loading", { key: "KNN edges", loading: false });
    }
  }

  /** Show a vector field by id (null = off); uses the current dimension's file. */
  async setVectorField(id) {
    this.vectorField = id;
    if (!id) return this.scene.setShowVectors(false);
    const d = this.dim;
    if (this.embedding !== null) {
      // vector fields are stored for the exported embedding only
      this.scene.setShowVectors(false);
      this.emit("notice", `Vector field ${id} belongs to the exported embedding, not ${this.embedding}`);
      return;
    }
    const f = this.dataset.vectorFields.find((v) => v.id === id);
    if (!f || !f.available_dimensions.includes(d)) {
      this.scene.setVectors(null);
      this.emit("notice", `Vector field ${id} has no ${d}D file`);
      return;
    }
    this.emit("loading", { key: `vectors ${id}`, loading: true });
    try {
      const vec = await this.dataset.loadVectors(id, d);
      this.scene.setVectors(vec, d);
      this.scene.setShowVectors(true);
    } finally {
      this.emit("loading", { key: `vectors ${id}`, loading: false });
    }
  }

  // ------------------------------------------------------------------ pointer
  handleHover(info) {
    const cell = info && info.layer && isPointsLayer(info.layer) && info.index >= 0 ? info.index : null;
    this.emit("pointer", { cell, x: info ? info.x : 0, y: info ? info.y : 0 });
    if (cell === this.hoverCell) return;
    this.hoverCell = cell;
    this.emit("hover", { cell, position: cell === null ? null : this.cellPosition(cell) });
  }

  handleClick(info, ev) {
    const cell = info && info.layer && isPointsLayer(info.layer) && info.index >= 0 ? info.index : null;
    if (cell === null) return;
    const src = (ev && ev.srcEvent) || {};
    const shift = !!src.shiftKey;
    const ctrl = !!(src.ctrlKey || src.metaKey);
    const button = typeof src.button === "number" ? src.button : 0;
    this.emit("click", { cell, button, shift, ctrl });
    if (this.tool && this.tool !== "navigate") return; // lasso / proximity draw instead
    const mode = clickModeFor(src, this.selectMode);
    if (src.altKey) this.pickCategory(cell, mode);
    else this.userSelect(Uint32Array.of(cell), mode, "click");
  }

  cellPosition(i) {
    const d = this.dim;
    const p = currentPoints(this);
    return { x: p[i * d], y: d > 1 ? p[i * d + 1] : 0, z: d > 2 ? p[i * d + 2] : 0 };
  }

  /** The obs name (barcode) of cell i when the server has names and its block is loaded, else null. */
  cellName(i) {
    return this.obsNames ? this.obsNames.get(i) : null;
  }

  /** Display value of cell i for the active field. */
  cellValue(i) {
    const f = this.field;
    if (!f) return null;
    if (f.kind === "category") {
      const c = f.codes[i];
      return c < f.categories.length ? f.categories[c] : "missing";
    }
    return f.values[i];
  }

  screenPositions() {
    return this.scene.screenPositions();
  }

  // ------------------------------------------------------------------ lifecycle
  handleContextLost() {
    this.emit("contextlost", null);
    setTimeout(() => {
      if (this.frozen) return;
      this.scene.rebuild();
      this.recolor();
      this.applyRadii();
      this.scene.setSelection(this._selection);
      drawGroups(this);
      this.emit("contextrestored", null);
    }, 250);
  }

  freeze(reason = "The viewer is frozen.") {
    if (this.frozen) return;
    this.frozen = true;
    const image = this.scene.freeze();
    this.emit("freeze", { reason, image });
  }

  snapshot() {
    const vs = this.scene.viewState || {};
    return {
      datasetId: this.dataset.id,
      nCells: this.nCells,
      dimensions: this.dimensions.slice(),
      dim: this.dim,
      embedding: this.embedding,
      panels: this.panels.describe(),
      colorBy: this.field ? { key: this.field.key, kind: this.field.kind, source: this.field.source } : null,
      range: this.field && this.field.kind === "continuous" ? this.ranges.get(this.field.key) : null,
      colormap: this.colormap,
      hiddenCategories: this.hiddenCats ? [...this.hiddenCats].flatMap((v, i) => (v ? [this.field.categories[i]] : [])) : [],
      visibleCells: this.visibility.count,
      filters: this.filters.map((f) => ({ id: f.id, kind: f.kind, key: f.key, source: f.source, text: describeFilter(f) })),
      labels: this.labelsOn,
      selectionSize: this._selection.length,
      highlights: this.highlights.map((g) => ({ id: g.id, label: g.label, color: g.color, n: g.cells.length, visible: g.visible !== false })),
      userFields: this.userFields.list(),
      selectMode: this.selectMode,
      history: this.history.depth,
      camera: { ...vs },
      pointSize: this.pointSize,
      opacity: this.opacity,
      background: this.dark ? "dark" : "light",
      edges: !!this.scene.showEdges,
      vectorField: this.vectorField || null,
      frozen: this.frozen,
      connected: this.connected !== false && !this.frozen,
      frames: this.scene.frames,
    };
  }

  /** The session in the shape of session/bundle.js writeSessionBundle (SPEC §5). */
  sessionState() {
    const { colorBy, dim, camera, pointSize, opacity, background, hiddenCategories, range, colormap } = this.snapshot();
    return {
      datasetFingerprint: { sourceType: "cellucid-export", datasetId: this.dataset.id, cellCount: this.nCells, varCount: this.dataset.identity.stats.n_genes },
      highlightPages: [
        {
          id: this.highlightPageId,
          name: "Page 1",
          groups: this.highlights.map((g) => ({ id: g.id, name: g.label, color: g.color, cells: g.cells, visible: g.visible !== false })),
        },
      ],
      coreState: { colorBy, dim, camera, pointSize, opacity, background, hiddenCategories, range, colormap },
      userDefinedFields: this.userFields.forSession(),
      comparisons: comparisonsForSession(this.comparisons),
    };
  }

  /** .cellucid-session bytes of the whole session (session/save.js: filters, palettes too). */
  sessionBundle() {
    return saveSessionBundle(this);
  }

  /** Open a .cellucid-session (session/restore.js); resolves to {warnings}. */
  openSession(bytes) {
    return restoreSession(this, bytes);
  }
}
