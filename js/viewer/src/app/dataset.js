// One dataset over the SPEC §2 contract: discovery, manifests, lazy payloads.
// Per-cell data stays in typed arrays; decoded payloads are validated (length, codes)
// and any contract breach is a LoadError naming the file and the key.

import { fetchBytes, fetchJson, LoadError, Progress, resolveUrl } from "../data/http.js";
import { HEALTH_PATH, probeHealth } from "../health.js";
import { decodeArray, decodeCategorical, decodeContinuous, decodePoints } from "../data/decode.js";
import { fillPattern } from "../data/names.js";
import { checkDataset } from "../data/contract.js";

/**
 * Run a pure decoder on one payload; its Error (length, codes, tuple) becomes a LoadError
 * naming the file, so the error screen says which file broke the contract.
 */
function decoded(rel, key, decode) {
  try {
    return decode();
  } catch (err) {
    const message = String((err && err.message) || err);
    throw new LoadError(rel, key, message.startsWith(rel) ? message : `${rel}: ${message}`);
  }
}

/** Small LRU map. */
export class Lru {
  constructor(limit) {
    this.limit = limit;
    this.map = new Map();
  }
  get(k) {
    if (!this.map.has(k)) return undefined;
    const v = this.map.get(k);
    this.map.delete(k);
    this.map.set(k, v);
    return v;
  }
  set(k, v) {
    this.map.delete(k);
    this.map.set(k, v);
    while (this.map.size > this.limit) this.map.delete(this.map.keys().next().value);
  }
  has(k) {
    return this.map.has(k);
  }
}

/**
 * Health → catalog. Resolves {mode: "server"|"static", health, datasets, defaultId}.
 * The health answer is read by health.js probeHealth (the same reading as the connection
 * poll). Anything but a cellucid server (404, not JSON, a static host) means static mode: the
 * catalog is datasets.json; when that is missing too, no server was found.
 * `healthTimeoutMs`: how long the first health answer may take (over the notebook comm a
 * running cell holds every answer back until it ends).
 */
export async function discover(pageBase, progress, onHealth = () => {}, { healthTimeoutMs = 5000 } = {}) {
  const probe = await probeHealth(resolveUrl(pageBase, HEALTH_PATH), { timeoutMs: healthTimeoutMs });
  if (probe.kind === "error") throw new LoadError(HEALTH_PATH, "(http)", `The cellucid server reported a problem: ${probe.detail}`);
  const health = probe.health ?? null;
  if (probe.kind === "ok") {
    onHealth("server", health);
    const cat = await fetchJson(pageBase, "_cellucid/datasets", { progress });
    if (!cat || !Array.isArray(cat.datasets) || !cat.datasets.length) throw new LoadError("_cellucid/datasets", "datasets", "expected a non-empty list");
    return { mode: "server", health, datasets: cat.datasets, defaultId: cat.datasets[0].id };
  }
  onHealth("static", health);
  let cat;
  try {
    cat = await fetchJson(pageBase, "datasets.json", { progress });
  } catch (err) {
    if (probe.kind === "none" && err.key === "(http)") throw new LoadError(HEALTH_PATH, "(http)", `No cellucid server found: ${probe.detail}`);
    throw err;
  }
  if (!cat || !Array.isArray(cat.datasets) || !cat.datasets.length) throw new LoadError("datasets.json", "datasets", "expected a non-empty list");
  return { mode: "static", health, datasets: cat.datasets, defaultId: cat.default || cat.datasets[0].id };
}

/** Directory URL of a catalog entry, relative to the page directory (never the host root). */
export function datasetBase(pageBase, entry) {
  const p = String(entry.path || "/").replace(/^\/+/, "");
  if (/^[a-z]+:|\.\.|\\|[?#]/i.test(p)) throw new LoadError("_cellucid/datasets", "path", `a relative dataset path, found ${entry.path}`);
  return new URL(p ? (p.endsWith("/") ? p : p + "/") : "./", pageBase);
}

export class Dataset {
  constructor(base, entry, identity, obs, vars, connectivity) {
    this.base = base;
    this.entry = entry;
    this.identity = identity;
    this.obs = obs;
    this.vars = vars;
    this.connectivity = connectivity;
    this.n = identity.stats.n_cells;
    this.dimensions = identity.embeddings.available_dimensions.slice();
    this.defaultDimension = identity.embeddings.default_dimension;
    this.progress = new Progress();
    this.points = new Map();
    this.fieldCache = new Lru(24);
    this.geneCache = new Lru(32);
    this.pending = new Map();
    // Field descriptors, in identity order (continuous, then categorical).
    this.fields = [];
    for (const t of obs._continuousFields || []) this.fields.push({ key: String(t[0]), kind: "continuous", tuple: t });
    for (const t of obs._categoricalFields || []) {
      this.fields.push({ key: String(t[0]), kind: "category", tuple: t, categories: t[1], codesDtype: t[2], missing: t[3], centroids: t[4] });
    }
    this.fieldByKey = new Map(this.fields.map((f) => [f.key, f]));
    this.genes = vars ? vars.fields.map((t) => String(t[0])) : [];
    this.geneIndex = new Map(this.genes.map((g, i) => [g, i]));
    const vf = identity.vector_fields;
    this.vectorFields = vf && vf.fields ? Object.entries(vf.fields).map(([id, f]) => ({ id, ...f })) : [];
  }

  get id() {
    return this.identity.id;
  }

  async loadPoints(d, progress = this.progress) {
    if (this.points.has(d)) return this.points.get(d);
    const rel = this.identity.embeddings.files[`${d}d`];
    if (!rel) throw new LoadError("dataset_identity.json", `embeddings.files.${d}d`, `dimension ${d} is not available`);
    return this.once(`points${d}`, async () => {
      const bytes = await fetchBytes(this.base, rel, { progress });
      const pts = decoded(rel, `embeddings.files.${d}d`, () => decodePoints(bytes, this.n, d, rel));
      this.points.set(d, pts);
      return pts;
    });
  }

  async once(key, fn) {
    if (this.pending.has(key)) return this.pending.get(key);
    const p = fn().finally(() => this.pending.delete(key));
    this.pending.set(key, p);
    return p;
  }

  /** An obs field → {key, kind:"continuous", values: Float32Array} | {key, kind:"category", codes, categories, missing}. */
  async loadField(key) {
    const f = this.fieldByKey.get(key);
    if (!f) throw new LoadError("obs_manifest.json", key, `no obs field ${JSON.stringify(key)}`);
    const hit = this.fieldCache.get(key);
    if (hit) return hit;
    return this.once(`obs:${key}`, async () => {
      let out;
      if (f.kind === "continuous") {
        const s = this.obs._obsSchemas.continuous;
        const rel = fillPattern(s.pathPattern, key);
        const bytes = await fetchBytes(this.base, rel, { progress: this.progress });
        out = { key, kind: "continuous", source: "obs", values: decoded(rel, key, () => decodeContinuous(bytes, s, f.tuple, this.n)) };
      } else {
        const s = this.obs._obsSchemas.categorical;
        const ext = f.codesDtype === "uint16" ? "u16" : "u8";
        const rel = fillPattern(s.codesPathPattern, key, ext);
        const bytes = await fetchBytes(this.base, rel, { progress: this.progress });
        const codes = decoded(rel, key, () => decodeCategorical(bytes, f.codesDtype, this.n, f.categories.length));
        out = { key, kind: "category", source: "obs", codes, categories: f.categories.map(String), missing: f.missing, centroids: f.centroids };
      }
      this.fieldCache.set(key, out);
      return out;
    });
  }

  /** Gene expression (LRU-cached), same shape as a continuous field. */
  async loadGene(gene) {
    const idx = this.geneIndex.get(gene);
    if (idx === undefined) throw new LoadError("var_manifest.json", gene, `no gene ${JSON.stringify(gene)}`);
    const hit = this.geneCache.get(gene);
    if (hit) return hit;
    return this.once(`var:${gene}`, async () => {
      const s = this.vars._varSchema;
      const rel = fillPattern(s.pathPattern, gene);
      const bytes = await fetchBytes(this.base, rel, { progress: this.progress });
      const values = decoded(rel, gene, () => decodeContinuous(bytes, s, this.vars.fields[idx], this.n));
      const out = { key: gene, kind: "continuous", source: "var", values };
      this.geneCache.set(gene, out);
      return out;
    });
  }

  /**
   * The stored payload of gene `index` (gunzipped, not decoded) and its manifest tuple, for the
   * compare worker; not cached (a comparison reads every gene once).
   */
  async fetchGeneBytes(index, signal) {
    const tuple = this.vars.fields[index];
    const rel = fillPattern(this.vars._varSchema.pathPattern, String(tuple[0]));
    return { bytes: await fetchBytes(this.base, rel, { signal }), tuple };
  }

  async loadEdges() {
    const c = this.connectivity;
    if (!c) return null;
    return this.once("edges", async () => {
      if (this.edges) return this.edges;
      const [s, d, w] = await Promise.all([
        fetchBytes(this.base, c.sourcesPath, { progress: this.progress }),
        fetchBytes(this.base, c.destinationsPath, { progress: this.progress }),
        fetchBytes(this.base, c.weightsPath, { progress: this.progress }),
      ]);
      const src = decoded(c.sourcesPath, "n_edges", () => decodeArray(s, c.index_dtype, c.n_edges, c.sourcesPath));
      const dst = decoded(c.destinationsPath, "n_edges", () => decodeArray(d, c.index_dtype, c.n_edges, c.destinationsPath));
      const weights = decoded(c.weightsPath, "n_edges", () => decodeArray(w, "float64", c.n_edges, c.weightsPath));
      this.edges = { src, dst, weights };
      return this.edges;
    });
  }

  async loadVectors(fieldId, d) {
    const f = this.vectorFields.find((v) => v.id === fieldId);
    const rel = f && f.files[`${d}d`];
    if (!rel) return null;
    return this.once(`vec:${fieldId}:${d}`, async () => {
      const bytes = await fetchBytes(this.base, rel, { progress: this.progress });
      return decoded(rel, `vector_fields.${fieldId}`, () => decodePoints(bytes, this.n, d, rel));
    });
  }
}

/** Identity → manifests (parallel) → cross-checks (§4.1). Points are loaded by the caller. */
export async function openDataset(pageBase, entry, progress, catalogFile = "_cellucid/datasets") {
  const base = datasetBase(pageBase, entry);
  const identity = await fetchJson(base, "dataset_identity.json", { progress });
  if (identity && entry.id !== undefined && identity.id !== entry.id) {
    throw new LoadError("dataset_identity.json", "id", `dataset_identity.json: id ${JSON.stringify(identity.id)} does not match the catalog id ${JSON.stringify(entry.id)}`);
  }
  const stats = (identity && identity.stats) || {};
  const [obs, vars, connectivity] = await Promise.all([
    fetchJson(base, "obs_manifest.json", { progress }),
    stats.n_genes > 0 ? fetchJson(base, "var_manifest.json", { progress }) : null,
    stats.has_connectivity ? fetchJson(base, "connectivity_manifest.json", { progress }) : null,
  ]);
  const violations = checkDataset({ identity, obsManifest: obs, varManifest: vars, connectivityManifest: connectivity, catalogEntry: entry, catalogFile });
  if (violations.length) {
    const v = violations[0];
    const err = new LoadError(v.file, v.key, `${v.file}: ${v.key}: expected ${fmt(v.expected)}, found ${fmt(v.found)}`);
    err.violations = violations;
    throw err;
  }
  // checkDataset also refuses keys without a safe file name and safe-name collisions (§2.4),
  // so fillPattern below always names the file the exporter wrote.
  const ds = new Dataset(base, entry, identity, obs, vars, connectivity);
  ds.progress = progress;
  return ds;
}

function fmt(v) {
  return typeof v === "string" ? v : JSON.stringify(v);
}
