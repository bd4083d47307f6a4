// Split view, the viewer's side: two to four panels of the same dataset, each with its own
// colouring, dimension and embedding; one selection, one set of highlight groups and one
// visibility mask (filters) for all. Panel 0 is the viewer's own state (viewer.field, .dim,
// .embedding, driven by the side panel); the extra panels keep their field data, positions
// (the dataset's or the embedding catalog's arrays: shared, never copied) and colour buffer
// here, and render/views.js draws them in one Deck.
//
// Room for later per-panel work (e.g. level of detail): each extra panel is one record in
// `this.data` keyed by its id, and Scene.setPanels takes plain records.

import { MAX_PANELS, PanelModel, parsePanelSpec } from "./panelmodel.js";
import { loadPositions, resolveEmbedding } from "./embeddings.js";
import { colorUniform, MISSING_RGBA } from "../render/colorize.js";
import { categoricalPalette } from "../color/palettes.js";
import { colorCategorical, colorContinuous, getColormap, valueStats } from "../color/colormaps.js";
import { centroidLabels } from "../render/labels.js";

/**
 * RGBA bytes (a new Uint8Array n·4) of `field` as the viewer colours it: its palette for a
 * category (made the first time), its range (else the field's default range) and the colormap
 * for continuous values; `null` → the uniform default colour.
 */
export function fieldColors(viewer, field, defaultRange = null) {
  if (!field) return colorUniform(viewer.nCells);
  const opts = { missing: MISSING_RGBA };
  if (field.kind === "category") {
    if (!viewer.palettes.has(field.key)) viewer.palettes.set(field.key, categoricalPalette(field.categories.length));
    return colorCategorical(field.codes, field.missing, viewer.palettes.get(field.key), undefined, opts);
  }
  if (!viewer.ranges.has(field.key) && defaultRange) viewer.ranges.set(field.key, defaultRange(field));
  const [lo, hi] = viewer.ranges.get(field.key);
  return colorContinuous(field.values, lo, hi, getColormap(viewer.colormap), undefined, opts);
}

export class Panels {
  /** @param {import("./viewer.js").Viewer} viewer */
  constructor(viewer) {
    this.viewer = viewer;
    this.model = new PanelModel();
    this.data = new Map(); // extra panel id → {field (data or null), positions, colors, labels}
    this.busy = Promise.resolve();
    this.colormap = viewer.colormap; // the colormap the panels were coloured with
    viewer.on("field", () => this.recolorShared());
    viewer.on("style", (style) => style === null && this.recolorShared());
  }

  get split() {
    return this.model.split;
  }

  get linked() {
    return this.model.linked;
  }

  /** [{id, field, dim, embedding}] of every panel, panel 0 (the viewer's own) first. */
  describe() {
    const v = this.viewer;
    return this.model.panels.map((p) => (p.id === 0 ? { id: 0, field: v.field ? v.field.key : null, dim: v.dim, embedding: v.embedding } : { ...p }));
  }

  /** Field data of an obs key, a user-defined field or a gene (rejects for an unknown key). */
  fieldData(key) {
    const v = this.viewer;
    const user = v.userFields.get(key);
    return user ? Promise.resolve(user) : v.fieldData(key);
  }

  /**
   * Load what a panel spec needs: {field, dim, embedding, data, positions}. A spec's missing
   * parts come from `base` ({field, dim, embedding}).
   */
  async prepare(spec, base, i = 0) {
    const v = this.viewer;
    const s = parsePanelSpec(spec, i);
    const field = s.field === undefined ? base.field : s.field;
    const embedding = s.embedding === undefined ? base.embedding : s.embedding;
    const target = resolveEmbedding(v.embeddings, v.dataset, embedding, s.dim ?? (s.embedding === undefined ? base.dim : null), v.dim);
    const [data, positions] = await Promise.all([field ? this.fieldData(field) : null, loadPositions(v, target.key, target.dim)]);
    return { field, dim: target.dim, embedding: target.key, data, positions };
  }

  /** Commit a prepared panel; returns its id. */
  commit(prepared, viewState = null) {
    const p = this.model.add({ field: prepared.field, dim: prepared.dim, embedding: prepared.embedding });
    this.data.set(p.id, { field: prepared.data, positions: prepared.positions, colors: null, labels: null, viewState });
    this.recolor(p.id);
    this.labelsOf(p.id);
    return p.id;
  }

  /** One change at a time, in order (the bridge and the UI may both ask). */
  queue(fn) {
    const run = this.busy.then(fn);
    this.busy = run.catch(() => {});
    return run;
  }

  /**
   * A new panel: `spec` (a field name or {field, dimension, embedding}), or a copy of panel 0's
   * current view (colouring, dimension, embedding and, when moved, camera). Resolves to its id.
   */
  add(spec = null) {
    return this.queue(async () => {
      if (this.model.count >= MAX_PANELS) throw new Error(`at most ${MAX_PANELS} panels`);
      const main = this.describe()[0];
      const prepared = await this.prepare(spec ?? {}, main);
      const scene = this.viewer.scene;
      const copyCamera = spec === null && scene.userMoved && prepared.dim === main.dim ? { ...scene.viewState } : null;
      const id = this.commit(prepared, copyCamera);
      this.sync();
      return id;
    });
  }

  remove(id) {
    return this.queue(async () => {
      this.model.remove(id);
      this.data.delete(id);
      this.sync();
    });
  }

  /**
   * `viewer.split([...])` from Python: panel 0 takes the first spec (colour, dimension,
   * embedding), extra panels the others; `null` (or one spec) goes back to a single view.
   * Every spec is checked and loaded before anything changes.
   */
  split(specs) {
    return this.queue(async () => {
      if (specs === null) return this.unsplit();
      if (!Array.isArray(specs) || specs.length < 1 || specs.length > MAX_PANELS) throw new Error(`split takes 1 to ${MAX_PANELS} panels or null, not ${JSON.stringify(specs)}`);
      const main = this.describe()[0];
      const first = parsePanelSpec(specs[0], 0);
      const mainTarget = { field: first.field ?? main.field, embedding: first.embedding === undefined ? main.embedding : first.embedding, dim: first.dim };
      // check and load everything first (an error leaves the view as it was)
      const prepared = await Promise.all(specs.slice(1).map((s, i) => this.prepare(s, { ...main, ...mainTarget, dim: mainTarget.dim ?? main.dim }, i + 1)));
      if (first.field) await this.fieldData(first.field);
      const v = this.viewer;
      if (first.embedding !== undefined || first.dim !== undefined) await v.setEmbedding(mainTarget.embedding, first.dim ?? null);
      if (first.field && (!v.field || v.field.key !== first.field)) await v.setColorBy(first.field);
      this.model.clear();
      this.data.clear();
      for (const p of prepared) this.commit(p);
      this.sync();
      return this.describe();
    });
  }

  unsplit() {
    this.model.clear();
    this.data.clear();
    this.sync();
    return this.describe();
  }

  /** Change an extra panel: {field?, dimension?, embedding?}; panel 0 goes through the viewer. */
  update(id, changes) {
    if (id === 0) return this.updateMain(changes);
    return this.queue(async () => {
      const cur = this.model.get(id);
      const prepared = await this.prepare(changes, cur);
      const d = this.data.get(id);
      const fieldChanged = prepared.field !== cur.field;
      this.model.update(id, { field: prepared.field, dim: prepared.dim, embedding: prepared.embedding });
      Object.assign(d, { field: prepared.data, positions: prepared.positions });
      if (fieldChanged || !d.colors) this.recolor(id);
      this.labelsOf(id);
      this.sync();
    });
  }

  async updateMain({ field, dimension, embedding }) {
    const v = this.viewer;
    if (embedding !== undefined) await v.setEmbedding(embedding, dimension ?? null);
    else if (dimension !== undefined) await v.setDimension(dimension);
    if (field) await v.setColorBy(field);
  }

  setLinked(on) {
    this.model.linked = !!on;
    if (this.viewer.scene.split) this.viewer.scene.split.linked = this.model.linked;
    this.viewer.emit("panels", this.describe());
  }

  recolor(id) {
    const d = this.data.get(id);
    d.colors = fieldColors(this.viewer, d.field, (f) => {
      const s = valueStats(f.values, f.source === "var");
      return s[s.defaultRange];
    });
  }

  /** A palette, range or colormap changed (always through panel 0's controls): recolour the panels it touches. */
  recolorShared() {
    if (!this.split) return;
    const key = this.viewer.field ? this.viewer.field.key : null;
    const colormapChanged = this.colormap !== this.viewer.colormap;
    this.colormap = this.viewer.colormap;
    let changed = false;
    for (const p of this.model.panels.slice(1)) {
      const d = this.data.get(p.id);
      if (d.field && (d.field.key === key || (colormapChanged && d.field.kind === "continuous"))) {
        this.recolor(p.id);
        changed = true;
      }
    }
    if (changed) this.sync(false);
  }

  /** Category labels of an extra panel at its own embedding's centroids. */
  labelsOf(id) {
    const v = this.viewer;
    const p = this.model.get(id);
    const d = this.data.get(id);
    const f = d.field;
    if (!v.labelsOn || !f || f.kind !== "category") d.labels = null;
    else d.labels = centroidLabels(p.embedding === null ? f : { ...f, centroids: null }, p.dim, d.positions, v.visibility.mask);
  }

  /** Labels after a visibility or labels toggle (viewer.updateLabels). */
  refreshLabels() {
    if (!this.split) return;
    for (const p of this.model.panels.slice(1)) {
      this.labelsOf(p.id);
      this.viewer.scene.setPanelLabels(p.id, this.data.get(p.id).labels);
    }
  }

  /** Hand the scene the extra panels; `announce`: emit "panels" for the UI. */
  sync(announce = true) {
    const extra = this.model.panels.slice(1).map((p) => {
      const d = this.data.get(p.id);
      return { id: p.id, dim: p.dim, positions: d.positions, colors: d.colors, labels: d.labels, viewState: d.viewState };
    });
    for (const d of this.data.values()) d.viewState = null; // a copied camera is used once
    this.viewer.scene.setPanels(extra.length ? extra : null, { linked: this.model.linked });
    if (announce) this.viewer.emit("panels", this.describe());
  }
}
