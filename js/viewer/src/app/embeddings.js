// The embedding switch (AnnData mode, PROTOCOL.md "Embedding switch"): the server lists every
// usable obsm embedding (GET _cellucid/embeddings) and serves any of them as float32 positions
// normalised like points_{d}d.bin (GET _cellucid/embedding). Export folders (and static hosts)
// have only their own points: the catalog is then `null` and the viewer keeps its single
// embedding set.
//
// An embedding is named by its obsm key; `null` names the dataset's own points_{d}d.bin. The
// positions of every (key, dim) are loaded once and kept (a 1M-cell 2D embedding is 8 MB) so
// that panels of the split view showing the same embedding share one array (and one GPU buffer,
// render/views.js).

import { fetchBytes, fetchJson, LoadError } from "../data/http.js";
import { decodePoints } from "../data/decode.js";

/** "KEY:k" (the first k columns of a wider obsm entry) → "KEY". */
export function baseKey(name) {
  if (typeof name !== "string") return null;
  const m = /^(.*):\d+$/.exec(name);
  return m ? m[1] : name;
}

/**
 * Check a listing answer of GET _cellucid/embeddings: {embeddings: [{key, columns, dims}],
 * current: {"<d>": "KEY" | "KEY:k"}}. Returns it normalised ({entries, current: Map d → key});
 * throws an Error naming what is wrong.
 */
export function parseListing(body) {
  if (!body || !Array.isArray(body.embeddings)) throw new Error("_cellucid/embeddings: expected {embeddings: [...]}");
  const entries = body.embeddings.map((e, i) => {
    if (!e || typeof e.key !== "string" || !Array.isArray(e.dims) || !e.dims.every((d) => [1, 2, 3].includes(d))) {
      throw new Error(`_cellucid/embeddings: embeddings[${i}] needs a string key and dims within 1-3`);
    }
    return { key: e.key, columns: Number(e.columns) || e.dims.length, dims: e.dims.slice().sort() };
  });
  const current = new Map();
  for (const [d, name] of Object.entries(body.current || {})) current.set(Number(d), String(name));
  return { entries, current };
}

export class EmbeddingCatalog {
  /**
   * @param {object} opts {base (page directory URL), dataset (app/dataset.js Dataset), listing (parseListing's)}
   */
  constructor({ base, dataset, listing }) {
    this.base = base;
    this.dataset = dataset;
    this.entries = listing.entries;
    this.current = listing.current;
    this.byKey = new Map(this.entries.map((e) => [e.key, e]));
    this.points = new Map(); // "key:d" → Float32Array
    this.pending = new Map();
  }

  /** The catalog of a server on an AnnData, or null (an export folder, a static host). */
  static async load(base, dataset) {
    let body;
    try {
      body = await fetchJson(base, `_cellucid/embeddings?dataset=${encodeURIComponent(dataset.id)}`);
    } catch (err) {
      if (err instanceof LoadError && err.key === "(http)") return null; // 404: no obsm to choose from
      throw err;
    }
    return new EmbeddingCatalog({ base, dataset, listing: parseListing(body) });
  }

  keys() {
    return this.entries.map((e) => e.key);
  }

  /** The obsm key the dataset's own points of dimension d come from (null when not listed). */
  currentKey(d) {
    const name = this.current.get(d);
    return name === undefined ? null : baseKey(name);
  }

  /** Dimensions an embedding can be shown in. */
  dims(key) {
    const e = this.byKey.get(key);
    if (!e) throw new Error(`no obsm embedding ${JSON.stringify(key)}; this dataset has ${this.keys().join(", ") || "none"}`);
    return e.dims;
  }

  /** Float32Array (n·d) of `key` in `d` dimensions, fetched once. */
  async loadPoints(key, d) {
    if (!this.dims(key).includes(d)) throw new Error(`${key} cannot be shown in ${d}D (it has ${this.dims(key).map((x) => `${x}D`).join(", ")})`);
    const id = `${key}:${d}`;
    if (this.points.has(id)) return this.points.get(id);
    if (this.pending.has(id)) return this.pending.get(id);
    const rel = `_cellucid/embedding?dataset=${encodeURIComponent(this.dataset.id)}&key=${encodeURIComponent(key)}&dim=${d}`;
    const p = fetchBytes(this.base, rel, { progress: this.dataset.progress, label: `embedding ${key} (${d}D)` })
      .then((bytes) => {
        const pts = decodePoints(bytes, this.dataset.n, d, `embedding ${key} (${d}D)`);
        this.points.set(id, pts);
        return pts;
      })
      .finally(() => this.pending.delete(id));
    this.pending.set(id, p);
    return p;
  }
}

/**
 * Where an embedding request lands: {key (null = the dataset's own points), dim}. `key` may be
 * null/undefined (own points), `dim` null (keep `currentDim` when the embedding has it, else its
 * largest). Throws for an unknown key or a dimension it cannot fill.
 */
export function resolveEmbedding(catalog, dataset, key, dim, currentDim) {
  const ownKey = (d) => (catalog ? catalog.currentKey(d) : null);
  let dims;
  if (key === null || key === undefined) dims = dataset.dimensions;
  else {
    if (!catalog) throw new Error("this viewer shows an export folder: only its own embedding is available (serve the AnnData to switch between obsm embeddings)");
    dims = catalog.dims(key);
  }
  let d = dim === null || dim === undefined ? (dims.includes(currentDim) ? currentDim : Math.max(...dims)) : Number(dim);
  if (!dims.includes(d)) throw new Error(`${key ?? "this embedding"} cannot be shown in ${d}D (available: ${dims.map((x) => `${x}D`).join(", ")})`);
  // The dataset's own points of that dimension are the same bytes: use them (no second copy).
  if (key !== null && key !== undefined && ownKey(d) === key && dataset.dimensions.includes(d) && catalog.current.get(d) === key) key = null;
  return { key: key ?? null, dim: d };
}

/** Positions of (key, dim): the dataset's points for key null, else the catalog's. */
export function loadPositions(viewer, key, dim) {
  return key === null ? viewer.dataset.loadPoints(dim) : viewer.embeddings.loadPoints(key, dim);
}

/** The stored (not 1D-jittered) positions the main panel shows now, or undefined before they load. */
export function currentPoints(viewer) {
  const d = viewer.dim;
  return viewer.embedding === null ? viewer.dataset.points.get(d) : viewer.embeddings.points.get(`${viewer.embedding}:${d}`);
}

/** Dimensions available for an embedding key (null = the dataset's own). */
export function dimsOf(viewer, key) {
  return key === null || !viewer.embeddings ? viewer.dataset.dimensions.slice() : viewer.embeddings.dims(key);
}

/** The name shown for an embedding (null = the dataset's own points of dimension d). */
export function embeddingLabel(viewer, key, d) {
  if (key !== null) return key;
  const own = viewer.embeddings ? viewer.embeddings.currentKey(d) : null;
  return own || "embedding";
}

/**
 * Switch the viewer's (main panel's) embedding: positions arrive as float32, the camera fits
 * the new one, labels are recomputed; fields, genes, filters, selection and groups stay.
 */
export async function switchEmbedding(viewer, key, dim = null) {
  const target = resolveEmbedding(viewer.embeddings, viewer.dataset, key, dim, viewer.dim);
  const label = `${embeddingLabel(viewer, target.key, target.dim)} (${target.dim}D)`;
  viewer.emit("loading", { key: label, loading: true });
  let pts;
  try {
    pts = await loadPositions(viewer, target.key, target.dim);
  } finally {
    viewer.emit("loading", { key: label, loading: false });
  }
  const dimChanged = target.dim !== viewer.dim;
  viewer.embedding = target.key;
  viewer.dim = target.dim;
  viewer.dimensions = dimsOf(viewer, target.key);
  viewer.scene.setPositions(target.dim, pts);
  viewer.scene.fitView();
  viewer.updateLabels();
  if (viewer.vectorField) await viewer.setVectorField(viewer.vectorField);
  if (viewer.scene.edgeIndex) viewer.scene.setEdges(viewer.scene.edgeIndex);
  viewer.emit("embedding", { key: target.key, dim: target.dim });
  if (dimChanged) viewer.emit("dimension", target.dim);
  return target;
}
