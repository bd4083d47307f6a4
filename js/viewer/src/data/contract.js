// Strict checks of one dataset's JSON documents (SPEC §2.6-§2.12), the viewer's version of
// python/cellucid/export/validate.py.
//
// `checkDataset` runs the JSON-level checks of `_DatasetCheck` in the same order with the same
// `{file, key, expected, found}` records, so that a manifest the Python validator accepts is
// accepted here and one it rejects is rejected here, naming the same file and key. Checks that
// need the payloads or a directory listing (byte lengths, codes, edges, centroid positions,
// unreferenced files) are not part of it; the loader calls `checkPayloadLength` and the payload
// checks below as it fetches.
//
// Known limits of a check that runs on `JSON.parse` output (documented, not fixable here):
//  - an integral float (`2.0`) is indistinguishable from the integer `2`, which Python rejects
//    where the SPEC wants an integer;
//  - integer-like object keys ("10", "9") are enumerated in ascending numeric order by
//    JavaScript, so the sorted-order check of `vector_fields.fields` is skipped when such ids
//    exist (they are not safe names of real fields in practice).
// `parseManifest` rejects NaN/Infinity (JSON.parse does) and duplicate keys (Python does).

import { pathProblem, hasNonSpace, hasSurroundingSpace, safeName, strictSafeName } from "./names.js";

/** The browser's edge working-set budget (SPEC §2.8): 512 MiB. */
export const BROWSER_EDGE_BUDGET = 536870912;

/** Fixed file names of the export layout (SPEC §2.1), as violations name them. */
export const IDENTITY_FILE = "dataset_identity.json";
export const OBS_MANIFEST_FILE = "obs_manifest.json";
export const VAR_MANIFEST_FILE = "var_manifest.json";
export const CONNECTIVITY_MANIFEST_FILE = "connectivity_manifest.json";

const BAD = Symbol("bad");
const CREATED_AT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$/;
const MISSING_CODE = { uint8: 255, uint16: 65535 };
const EXT_DTYPE_NAMES = { f32: "float32", u8: "uint8", u16: "uint16", u32: "uint32", f64: "float64" };
const EXT_BY_DTYPE = { float32: "f32", uint8: "u8", uint16: "u16", uint32: "u32", float64: "f64" };
const ITEM_SIZE = { float32: 4, uint8: 1, uint16: 2, uint32: 4, float64: 8 };
const VALUE_EXTS = ["f32", "u8", "u16"];

const OBS_KEYS = [
  "_format", "n_points", "centroid_outlier_quantile", "latent_key", "compression",
  "_obsSchemas", "_continuousFields", "_categoricalFields",
];
const VAR_KEYS = ["_format", "n_points", "var_gene_id_column", "compression", "quantization", "_varSchema", "fields"];
const CONNECTIVITY_KEYS = [
  "format", "n_cells", "n_edges", "max_neighbors", "index_bytes", "index_dtype", "sourcesPath",
  "destinationsPath", "weightsPath", "weight_dtype", "weight_bytes", "compression",
];
const IDENTITY_REQUIRED = ["version", "id", "name", "description", "cellucid_data_version", "stats", "embeddings", "obs_fields"];
const IDENTITY_OPTIONAL = ["created_at", "export_settings", "source", "vector_fields"];
const STATS_KEYS = ["n_cells", "n_genes", "n_obs_fields", "n_categorical_fields", "n_continuous_fields", "has_connectivity", "n_edges"];
const SETTINGS_KEYS = ["compression", "var_quantization", "obs_continuous_quantization", "obs_categorical_dtype"];

// ---- predicates (python: _is_int, _is_num, _is_text …) ------------------------------------------
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const has = (obj, key) => isObject(obj) && Object.prototype.hasOwnProperty.call(obj, key);
const get = (obj, key, fallback = BAD) => (has(obj, key) ? obj[key] : fallback);
const isInt = (v) => Number.isInteger(v);
const isNum = (v) => typeof v === "number";
const isFinite = (v) => typeof v === "number" && Number.isFinite(v);
const isLevel = (v) => v === null || (isInt(v) && v >= 1 && v <= 9);
const isBits = (v) => v === null || v === 8 || v === 16;
const isDims = (v) =>
  Array.isArray(v) && v.length > 0 && v.every((d) => d === 1 || d === 2 || d === 3) && v.every((d, i) => i === 0 || v[i - 1] < d);
const quantisedBits = (ext) => ({ u8: 8, u16: 16 })[ext] ?? null;
const isIdentityId = (v) =>
  typeof v === "string" && v !== "" && !hasSurroundingSpace(v) && ![...v].some((c) => {
    const o = c.codePointAt(0);
    return o < 32 || (o >= 127 && o < 160);
  });

function isTimestamp(v) {
  const m = typeof v === "string" ? CREATED_AT.exec(v) : null;
  if (!m) return false;
  const [year, month, day, hour, minute, second] = m.slice(1).map(Number);
  if (year < 1 || month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59) return false;
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
  return day >= 1 && day <= days;
}

function isAbsolutePath(text) {
  return text.startsWith("/") || /^[A-Za-z]:/.test(text) || text.startsWith("\\\\");
}

/**
 * A value as Python's `json.dumps` shows it in a violation (`", "`/`": "` separators), cut to
 * 100 characters like the Python validator.
 *
 * @param {unknown} value
 * @returns {string}
 */
export function show(value) {
  const text = pyJson(value);
  return text.length <= 100 ? text : `${text.slice(0, 97)}...`;
}

function pyJson(value) {
  if (Array.isArray(value)) return `[${value.map(pyJson).join(", ")}]`;
  if (isObject(value)) {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${pyJson(v)}`).join(", ")}}`;
  }
  if (value === undefined) return "undefined";
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  return JSON.stringify(value);
}

const join = (prefix, key) => (typeof key === "number" ? `${prefix}[${key}]` : prefix ? `${prefix}.${key}` : key);

function deepEqual(a, b) {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  }
  if (!isObject(a) || !isObject(b)) return false;
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => has(b, k) && deepEqual(a[k], b[k]));
}

/**
 * Groups of keys whose safe names collide, and keys without a safe name (python
 * `find_collisions`). Every occurrence counts, so an exact duplicate is a collision too.
 *
 * @param {Iterable<string>} keys
 * @returns {{collisions: Map<string, string[]>, unnamed: string[]}}
 */
export function findCollisions(keys) {
  const bySafe = new Map();
  const unnamed = [];
  for (const key of keys) {
    const text = String(key);
    const safe = strictSafeName(text);
    if (safe === null) {
      unnamed.push(text);
      continue;
    }
    if (!bySafe.has(safe)) bySafe.set(safe, []);
    bySafe.get(safe).push(text);
  }
  const collisions = new Map([...bySafe].filter(([, ks]) => ks.length > 1));
  return { collisions, unnamed };
}

// ---- the checker ------------------------------------------------------------------------------
class Checker {
  constructor(docs) {
    this.out = [];
    this.identity = isObject(docs.identity) ? docs.identity : null;
    this.obs = isObject(docs.obsManifest) ? docs.obsManifest : null;
    this.var = isObject(docs.varManifest) ? docs.varManifest : null;
    this.conn = isObject(docs.connectivityManifest) ? docs.connectivityManifest : null;
    this.hasVar = docs.varManifest !== null && docs.varManifest !== undefined;
    this.hasConn = docs.connectivityManifest !== null && docs.connectivityManifest !== undefined;
    this.docs = docs;
    this.n = null;
    this.dims = [];
    this.compression = null;
  }

  add(file, key, expected, found) {
    this.out.push(violation(file, key, expected, found));
  }

  field(file, obj, key, ok, expected, path = "") {
    if (!has(obj, key)) return BAD;
    const value = obj[key];
    if (ok(value)) return value;
    this.add(file, join(path, key), expected, show(value));
    return BAD;
  }

  keys(file, obj, path, required, optional = [], ordered = false) {
    const allowed = new Set([...required, ...optional]);
    let clean = true;
    for (const key of required) {
      if (!has(obj, key)) {
        this.add(file, join(path, key), "present", "missing");
        clean = false;
      }
    }
    for (const key of Object.keys(obj)) {
      if (!allowed.has(key)) {
        this.add(file, join(path, key), "no such key", "an unknown key");
        clean = false;
      }
    }
    const found = Object.keys(obj);
    if (clean && ordered && found.join("\u0000") !== required.join("\u0000")) {
      this.add(file, join(path, "key order"), required.join(", "), found.join(", "));
    }
    return clean;
  }

  obj(file, parent, key, path = "") {
    return this.field(file, parent, key, isObject, "an object", path);
  }

  lst(file, parent, key, path = "") {
    return this.field(file, parent, key, Array.isArray, "an array", path);
  }

  equal(file, key, found, expected, why = "") {
    if (found === BAD || found === expected) return true;
    this.add(file, key, show(expected) + (why ? ` (${why})` : ""), show(found));
    return false;
  }

  checkPath(file, key, value) {
    const problem = pathProblem(value);
    if (problem === null) return value;
    this.add(file, key, "a relative path without '..', '?', '#', whitespace or backslash", `${show(value)}, which ${problem}`);
    return null;
  }

  get gz() {
    return this.compression ? ".gz" : "";
  }

  run() {
    for (const [doc, file] of [
      [this.docs.identity, IDENTITY_FILE],
      [this.docs.obsManifest, OBS_MANIFEST_FILE],
    ]) {
      if (doc === null || doc === undefined) this.add(file, "file", "present", "missing");
    }
    for (const [doc, file] of [
      [this.docs.identity, IDENTITY_FILE],
      [this.docs.obsManifest, OBS_MANIFEST_FILE],
      [this.docs.varManifest, VAR_MANIFEST_FILE],
      [this.docs.connectivityManifest, CONNECTIVITY_MANIFEST_FILE],
    ]) {
      if (doc !== null && doc !== undefined && !isObject(doc)) {
        this.add(file, "json", "a JSON object", Array.isArray(doc) ? "list" : typeof doc);
      }
    }
    this.deriveContext();
    this.checkIdentity();
    this.checkObs();
    this.checkVar();
    this.checkConnectivity();
    this.checkCrossFile();
    this.checkCatalog();
    return this.out;
  }

  deriveContext() {
    const identity = this.identity ?? {};
    const obs = this.obs ?? {};
    const stats = isObject(identity.stats) ? identity.stats : {};
    const settings = get(identity, "export_settings", null);
    if (isLevel(get(obs, "compression"))) this.compression = obs.compression;
    else if (isObject(settings) && isLevel(get(settings, "compression"))) this.compression = settings.compression;
    const emb = get(identity, "embeddings", null);
    const dims = get(emb, "available_dimensions", null);
    this.dims = isDims(dims) ? [...dims] : [];
    // n: the value most sources agree on (ties: the first source), as in python.
    const sources = [get(stats, "n_cells"), get(obs, "n_points"), get(this.var, "n_points"), get(this.conn, "n_cells")];
    const counts = new Map();
    for (const v of sources) if (isInt(v) && v > 0) counts.set(v, (counts.get(v) ?? 0) + 1);
    let best = 0;
    for (const [v, c] of counts) {
      if (c > best) {
        best = c;
        this.n = v;
      }
    }
  }

  // -- dataset_identity.json (SPEC §2.10)
  checkIdentity() {
    const ident = this.identity;
    if (ident === null) return;
    const f = IDENTITY_FILE;
    this.keys(f, ident, "", IDENTITY_REQUIRED, IDENTITY_OPTIONAL);
    this.field(f, ident, "version", (v) => v === 2, "2");
    this.field(f, ident, "id", isIdentityId, "a non-empty string without surrounding whitespace or control characters");
    this.field(f, ident, "name", hasNonSpace, "a string with a non-whitespace character");
    this.field(f, ident, "description", (v) => typeof v === "string", "a string");
    this.field(f, ident, "created_at", isTimestamp, "a UTC time as YYYY-MM-DDTHH:MM:SSZ");
    this.field(f, ident, "cellucid_data_version", hasNonSpace, "a non-empty version string");
    const stats = this.obj(f, ident, "stats");
    if (stats !== BAD) this.checkStatsShape(stats);
    const embeddings = this.obj(f, ident, "embeddings");
    if (embeddings !== BAD) this.checkEmbeddings(embeddings);
    const obsFields = this.lst(f, ident, "obs_fields");
    if (obsFields !== BAD) this.checkObsFieldsShape(obsFields);
    const settings = this.obj(f, ident, "export_settings");
    if (settings !== BAD) {
      const p = "export_settings";
      this.keys(f, settings, p, SETTINGS_KEYS);
      this.field(f, settings, "compression", isLevel, "null or an integer 1-9", p);
      for (const key of ["var_quantization", "obs_continuous_quantization"]) this.field(f, settings, key, isBits, "null, 8 or 16", p);
      this.field(f, settings, "obs_categorical_dtype", (v) => ["auto", "uint8", "uint16"].includes(v), '"auto", "uint8" or "uint16"', p);
    }
    const source = this.obj(f, ident, "source");
    if (source !== BAD) {
      this.keys(f, source, "source", ["name"], ["url", "citation", "filename"]);
      for (const key of ["name", "url", "citation", "filename"]) {
        this.field(f, source, key, hasNonSpace, "a string with a non-whitespace character", "source");
      }
      for (const key of ["name", "filename"]) {
        this.field(f, source, key, (v) => typeof v !== "string" || !isAbsolutePath(v), "a name, not an absolute path", "source");
      }
    }
    const vectorFields = this.obj(f, ident, "vector_fields");
    if (vectorFields !== BAD) this.checkVectorFieldsShape(vectorFields);
  }

  checkStatsShape(stats) {
    const f = IDENTITY_FILE;
    const p = "stats";
    this.keys(f, stats, p, STATS_KEYS);
    this.field(f, stats, "n_cells", (v) => isInt(v) && v >= 1, "an integer ≥ 1", p);
    const counts = {};
    for (const key of ["n_genes", "n_obs_fields", "n_categorical_fields", "n_continuous_fields"]) {
      counts[key] = this.field(f, stats, key, (v) => isInt(v) && v >= 0, "an integer ≥ 0", p);
    }
    const hasConn = this.field(f, stats, "has_connectivity", (v) => typeof v === "boolean", "true or false", p);
    const edges = this.field(f, stats, "n_edges", (v) => v === null || (isInt(v) && v >= 0), "null or an integer ≥ 0", p);
    if (hasConn !== BAD && edges !== BAD && (edges === null) === hasConn) {
      this.add(f, "stats.n_edges", "null exactly when has_connectivity is false", show(edges));
    }
    if (!Object.values(counts).includes(BAD)) {
      const total = counts.n_categorical_fields + counts.n_continuous_fields;
      this.equal(f, "stats.n_obs_fields", counts.n_obs_fields, total, "n_categorical_fields + n_continuous_fields");
    }
  }

  checkEmbeddings(emb) {
    const f = IDENTITY_FILE;
    const p = "embeddings";
    this.keys(f, emb, p, ["available_dimensions", "default_dimension", "files"]);
    const dims = this.field(f, emb, "available_dimensions", isDims, "a non-empty, strictly increasing list of 1, 2, 3", p);
    if (dims === BAD) return;
    this.equal(f, "embeddings.default_dimension", get(emb, "default_dimension"), Math.max(...dims), "the largest available dimension");
    const files = this.obj(f, emb, "files", p);
    if (files === BAD) return;
    this.keys(f, files, "embeddings.files", dims.map((d) => `${d}d`));
    for (const d of dims) {
      const value = get(files, `${d}d`);
      if (value === BAD) continue;
      this.equal(f, `embeddings.files.${d}d`, value, `points_${d}d.bin${this.gz}`);
      this.checkPath(f, `embeddings.files.${d}d`, value);
    }
  }

  checkObsFieldsShape(fields) {
    const f = IDENTITY_FILE;
    const seen = new Set();
    let seenCategory = false;
    fields.forEach((entry, i) => {
      const p = `obs_fields[${i}]`;
      if (!isObject(entry)) {
        this.add(f, p, "an object", show(entry));
        return;
      }
      const kind = get(entry, "kind", undefined);
      if (kind === "continuous") {
        this.keys(f, entry, p, ["key", "kind"]);
        if (seenCategory) {
          const found = `continuous ${show(get(entry, "key", null))} after a categorical field`;
          this.add(f, "obs_fields", "continuous fields first, then categorical fields", found);
        }
      } else if (kind === "category") {
        this.keys(f, entry, p, ["key", "kind", "n_categories"]);
        this.field(f, entry, "n_categories", (v) => isInt(v) && v >= 0, "an integer ≥ 0", p);
        seenCategory = true;
      } else {
        this.add(f, `${p}.kind`, '"continuous" or "category"', show(kind ?? null));
      }
      const key = this.field(f, entry, "key", (v) => typeof v === "string", "a string", p);
      if (key !== BAD) {
        if (seen.has(key)) this.add(f, `${p}.key`, "a key not listed before", show(key));
        seen.add(key);
      }
    });
  }

  checkVectorFieldsShape(vf) {
    const f = IDENTITY_FILE;
    const p = "vector_fields";
    this.keys(f, vf, p, ["default_field", "fields"]);
    const fields = this.field(f, vf, "fields", (v) => isObject(v) && Object.keys(v).length > 0, "a non-empty object", p);
    if (fields === BAD) return;
    const ids = Object.keys(fields);
    const sorted = [...ids].sort();
    const integerLike = ids.some((id) => /^(0|[1-9]\d*)$/.test(id));
    if (!integerLike && ids.join("\u0000") !== sorted.join("\u0000")) {
      this.add(f, "vector_fields.fields", "field ids in sorted order", show(ids));
    }
    const defaultId = has(fields, "velocity_umap") ? "velocity_umap" : sorted[0];
    this.equal(f, "vector_fields.default_field", get(vf, "default_field"), defaultId, "velocity_umap if present, else the alphabetically first id");
    for (const [fieldId, entry] of Object.entries(fields)) {
      const fp = `vector_fields.fields.${fieldId}`;
      if (!fieldId || safeName(fieldId) !== fieldId) {
        this.add(f, fp, "a field id equal to its safe name (SPEC §2.4)", `${show(fieldId)} (safe form '${safeName(fieldId)}')`);
      }
      if (!isObject(entry)) {
        this.add(f, fp, "an object", show(entry));
        continue;
      }
      this.keys(f, entry, fp, ["label", "basis", "available_dimensions", "default_dimension", "files"]);
      this.equal(f, `${fp}.label`, get(entry, "label"), fieldId, "the field id");
      this.equal(f, `${fp}.basis`, get(entry, "basis"), "umap");
      const dims = this.field(
        f,
        entry,
        "available_dimensions",
        // python falls back to the points files on disk when the embeddings are broken; the
        // viewer cannot list files, so unknown dimensions skip the subset rule (the broken
        // embeddings are reported already)
        (v) => isDims(v) && (!this.dims.length || v.every((d) => this.dims.includes(d))),
        `a strictly increasing list of embedding dimensions [${this.dims.join(", ")}]`,
        fp,
      );
      if (dims === BAD) continue;
      this.equal(f, `${fp}.default_dimension`, get(entry, "default_dimension"), Math.max(...dims), "the largest of its dimensions");
      const files = this.obj(f, entry, "files", fp);
      if (files === BAD) continue;
      this.keys(f, files, `${fp}.files`, dims.map((d) => `${d}d`));
      for (const d of dims) {
        const value = get(files, `${d}d`);
        if (value === BAD) continue;
        this.equal(f, `${fp}.files.${d}d`, value, `vectors/${fieldId}_${d}d.bin${this.gz}`);
        this.checkPath(f, `${fp}.files.${d}d`, value);
      }
    }
  }

  // -- obs_manifest.json (SPEC §2.6)
  checkObs() {
    const obs = this.obs;
    if (obs === null) return;
    const f = OBS_MANIFEST_FILE;
    this.checkCompactHead(f, obs, OBS_KEYS);
    this.field(f, obs, "centroid_outlier_quantile", (v) => v === null || (isNum(v) && v > 0.5 && v < 1), "null or a number in (0.5, 1)");
    this.field(f, obs, "latent_key", (v) => v === null || hasNonSpace(v), "null or a non-empty string");
    this.field(f, obs, "compression", isLevel, "null or an integer 1-9");
    const schemas = this.obj(f, obs, "_obsSchemas");
    const cont = this.lst(f, obs, "_continuousFields");
    const cat = this.lst(f, obs, "_categoricalFields");
    if (schemas === BAD || cont === BAD || cat === BAD) return;
    const wanted = [];
    if (cont.length) wanted.push("continuous");
    if (cat.length) wanted.push("categorical");
    this.keys(f, schemas, "_obsSchemas", wanted);
    this.checkObsNames(cont, cat);
    if (cont.length && has(schemas, "continuous")) {
      const schema = this.checkValuesSchema(f, schemas.continuous, "_obsSchemas.continuous", "obs");
      if (schema) cont.forEach((entry, i) => this.checkContinuousEntry(f, `_continuousFields[${i}]`, entry, schema.ext));
    }
    if (cat.length && has(schemas, "categorical")) {
      const info = this.checkCategoricalSchema(schemas.categorical);
      if (info) cat.forEach((entry, i) => this.checkCategoricalEntry(i, entry, info.quantised));
    }
  }

  // the shared start of the compact_v1 manifests: exact ordered keys, format, cell count
  checkCompactHead(file, doc, keys) {
    this.keys(file, doc, "", keys, [], true);
    this.equal(file, "_format", get(doc, "_format"), "compact_v1");
    this.checkN(file, "n_points", get(doc, "n_points"));
  }

  checkN(file, key, value) {
    if (value === BAD) return;
    if (!(isInt(value) && value >= 1)) this.add(file, key, "an integer ≥ 1", show(value));
    else if (this.n !== null && value !== this.n) this.add(file, key, `${this.n} (the number of cells)`, show(value));
  }

  checkObsNames(cont, cat) {
    const paths = keyPaths([
      ["_continuousFields", cont],
      ["_categoricalFields", cat],
    ]);
    this.checkNames(OBS_MANIFEST_FILE, paths, "obs key");
  }

  checkNames(file, paths, what) {
    const keys = [];
    for (const [key, where] of paths) for (let i = 0; i < where.length; i++) keys.push(key);
    const { collisions, unnamed } = findCollisions(keys);
    // Each location once (python reports a key that lacks a safe name and occurs twice twice).
    for (const key of new Set(unnamed)) {
      for (const where of paths.get(key)) this.add(file, where, `an ${what} with a letter, digit or '-' (SPEC §2.4)`, show(key));
    }
    for (const [safe, group] of collisions) {
      const first = group[0];
      const reported = new Set();
      for (const key of group) {
        for (const where of paths.get(key)) {
          if (where === paths.get(first)[0] || reported.has(where)) continue;
          reported.add(where);
          this.add(file, where, `an ${what} whose safe file name no other key has`, `${show(key)}, which maps to '${safe}' like ${show(first)}`);
        }
      }
    }
  }

  checkValuesSchema(file, schema, path, directory, kind = false) {
    if (!isObject(schema)) {
      this.add(file, path, "an object", show(schema));
      return null;
    }
    const ext = get(schema, "ext", null);
    const required = kind ? ["kind"] : [];
    required.push("pathPattern", "ext", "dtype", "quantized");
    if (ext === "u8" || ext === "u16") required.push("quantizationBits");
    this.keys(file, schema, path, required);
    if (kind) this.equal(file, `${path}.kind`, get(schema, "kind"), "continuous");
    if (!VALUE_EXTS.includes(ext)) {
      this.add(file, `${path}.ext`, '"f32", "u8" or "u16"', show(ext));
      return null;
    }
    const bits = quantisedBits(ext);
    this.equal(file, `${path}.dtype`, get(schema, "dtype"), EXT_DTYPE_NAMES[ext], `the dtype of ext ${ext}`);
    this.equal(file, `${path}.quantized`, get(schema, "quantized"), bits !== null, `ext ${ext}`);
    if (bits !== null) this.equal(file, `${path}.quantizationBits`, get(schema, "quantizationBits"), bits, `ext ${ext}`);
    const pattern = get(schema, "pathPattern");
    this.equal(file, `${path}.pathPattern`, pattern, `${directory}/{key}.values.${ext}${this.gz}`);
    return this.usablePattern(file, `${path}.pathPattern`, pattern, ext);
  }

  usablePattern(file, key, pattern, ext) {
    if (pattern === BAD) return null;
    if (this.checkPath(file, key, pattern) === null || !pattern.includes("{key}")) return null;
    return { pattern, ext };
  }

  checkCategoricalSchema(schema) {
    const f = OBS_MANIFEST_FILE;
    const p = "_obsSchemas.categorical";
    if (!isObject(schema)) {
      this.add(f, p, "an object", show(schema));
      return null;
    }
    this.keys(f, schema, p, ["codesPathPattern", "outlierPathPattern", "outlierExt", "outlierDtype", "outlierQuantized"]);
    const codes = get(schema, "codesPathPattern");
    this.equal(f, `${p}.codesPathPattern`, codes, `obs/{key}.codes.{ext}${this.gz}`);
    if (codes === BAD || this.checkPath(f, `${p}.codesPathPattern`, codes) === null) return null;
    if (get(this.obs, "latent_key", null) === null) {
      for (const key of ["outlierPathPattern", "outlierExt", "outlierDtype"]) {
        this.equal(f, `${p}.${key}`, get(schema, key), null, "latent_key is null");
      }
      this.equal(f, `${p}.outlierQuantized`, get(schema, "outlierQuantized"), false, "latent_key is null");
      return { quantised: false };
    }
    const ext = get(schema, "outlierExt", null);
    if (!VALUE_EXTS.includes(ext)) {
      this.add(f, `${p}.outlierExt`, '"f32", "u8" or "u16" (latent_key is set)', show(ext));
      return null;
    }
    const quantised = ext !== "f32";
    this.equal(f, `${p}.outlierDtype`, get(schema, "outlierDtype"), EXT_DTYPE_NAMES[ext], `the dtype of outlierExt ${ext}`);
    this.equal(f, `${p}.outlierQuantized`, get(schema, "outlierQuantized"), quantised, `outlierExt ${ext}`);
    const pattern = get(schema, "outlierPathPattern");
    this.equal(f, `${p}.outlierPathPattern`, pattern, `obs/{key}.outliers.${ext}${this.gz}`);
    if (this.usablePattern(f, `${p}.outlierPathPattern`, pattern, ext) === null) return null;
    return { quantised };
  }

  checkBounds(file, path, entry, at) {
    const lo = entry[at];
    const hi = entry[at + 1];
    if (!(isFinite(lo) && isFinite(hi) && lo < hi)) {
      this.add(file, `${path}[${at}]`, "finite min < max", `min ${show(lo)}, max ${show(hi)}`);
      return null;
    }
    return [lo, hi];
  }

  checkContinuousEntry(file, path, entry, ext) {
    const bits = quantisedBits(ext);
    const shape = bits ? "[key, min, max] (quantised)" : "[key] (float32)";
    if (!Array.isArray(entry) || entry.length !== (bits ? 3 : 1)) {
      this.add(file, path, shape, show(entry));
      return;
    }
    if (typeof entry[0] !== "string") {
      this.add(file, `${path}[0]`, "a string key", show(entry[0]));
      return;
    }
    if (bits) this.checkBounds(file, path, entry, 1);
  }

  checkCategoricalEntry(index, entry, quantised) {
    const f = OBS_MANIFEST_FILE;
    const p = `_categoricalFields[${index}]`;
    const length = quantised ? 7 : 5;
    if (!Array.isArray(entry) || entry.length !== length) {
      const shape = `[key, categories, codesDtype, codesMissing, centroidsByDim${quantised ? ", outlierMin, outlierMax]" : "]"}`;
      this.add(f, p, shape, show(entry));
      return;
    }
    const [key, categories, dtype, missing, centroids] = entry;
    if (typeof key !== "string") {
      this.add(f, `${p}[0]`, "a string key", show(key));
      return;
    }
    const ok = this.checkCategories(`${p}[1]`, categories);
    if (typeof dtype !== "string" || !has(MISSING_CODE, dtype)) {
      this.add(f, `${p}[2]`, '"uint8" or "uint16"', show(dtype));
      return;
    }
    this.equal(f, `${p}[3]`, missing, MISSING_CODE[dtype], `codesDtype ${dtype}`);
    if (ok && categories.length > MISSING_CODE[dtype]) {
      this.add(f, `${p}[2]`, `a dtype with room for ${categories.length} categories`, show(dtype));
    }
    this.checkCentroidsShape(`${p}[4]`, centroids, ok ? categories : []);
    const bounds = quantised ? this.checkBounds(f, p, entry, 5) : null;
    if (bounds && !(bounds[0] === 0 && bounds[1] === 1)) {
      const [lo, hi] = bounds;
      if (!(lo > 0 && lo <= 1 && (hi <= 1 || lo + 1 === hi))) {
        this.add(f, `${p}[5]`, "data-derived outlier bounds inside (0, 1]", `min ${show(lo)}, max ${show(hi)}`);
      }
    }
  }

  checkCategories(path, categories) {
    const f = OBS_MANIFEST_FILE;
    if (!Array.isArray(categories) || !categories.every(hasNonSpace)) {
      this.add(f, path, "a list of strings with a non-whitespace character", show(categories));
      return false;
    }
    const seen = new Set();
    const duplicates = new Set();
    for (const c of categories) (seen.has(c) ? duplicates : seen).add(c);
    if (duplicates.size) {
      this.add(f, path, "unique category labels", `duplicates ${show([...duplicates].sort())}`);
      return false;
    }
    return true;
  }

  checkCentroidsShape(path, byDim, categories) {
    const f = OBS_MANIFEST_FILE;
    if (!isObject(byDim)) {
      this.add(f, path, "an object", show(byDim));
      return false;
    }
    // unknown dimensions (broken embeddings, already reported): no key-set rule, as above
    let ok = this.dims.length ? this.keys(f, byDim, path, this.dims.map(String)) : true;
    const empty = get(this.obs, "centroid_outlier_quantile", null) === null;
    const order = new Map(categories.map((c, i) => [c, i]));
    for (const [dimKey, items] of Object.entries(byDim)) {
      const dp = `${path}.${dimKey}`;
      if (!Array.isArray(items)) {
        this.add(f, dp, "an array", show(items));
        ok = false;
        continue;
      }
      if (empty && items.length) this.add(f, dp, "an empty list (centroid_outlier_quantile is null)", `${items.length} entries`);
      let previous = -1;
      items.forEach((item, j) => {
        const ip = `${dp}[${j}]`;
        if (!isObject(item)) {
          this.add(f, ip, "an object", show(item));
          ok = false;
          return;
        }
        if (!this.keys(f, item, ip, ["category", "position", "n_points"])) {
          ok = false;
          return;
        }
        const category = item.category;
        if (typeof category !== "string" || !order.has(category)) {
          this.add(f, `${ip}.category`, "one of the field's categories", show(category));
          ok = false;
        } else if (order.get(category) <= previous) {
          this.add(f, `${ip}.category`, "one entry per category, in category order", show(category));
        } else {
          previous = order.get(category);
        }
        const width = ["1", "2", "3"].includes(dimKey) ? Number(dimKey) : -1;
        const position = item.position;
        if (!(Array.isArray(position) && position.length === width && position.every(isFinite))) {
          this.add(f, `${ip}.position`, `${width} finite numbers`, show(position));
          ok = false;
        }
        if (!(isInt(item.n_points) && item.n_points >= 1)) {
          this.add(f, `${ip}.n_points`, "an integer ≥ 1", show(item.n_points));
          ok = false;
        }
      });
    }
    return ok;
  }

  // -- var_manifest.json (SPEC §2.7)
  checkVar() {
    const v = this.var;
    if (v === null) return;
    const f = VAR_MANIFEST_FILE;
    this.checkCompactHead(f, v, VAR_KEYS);
    this.field(f, v, "var_gene_id_column", (x) => x === null || hasNonSpace(x), "null or a non-empty column name");
    this.checkCompressionMatches(f, v);
    const quantization = this.field(f, v, "quantization", isBits, "null, 8 or 16");
    const fields = this.lst(f, v, "fields");
    const schema = get(v, "_varSchema");
    const usable = schema === BAD ? null : this.checkValuesSchema(f, schema, "_varSchema", "var", true);
    if (usable) this.equal(f, "quantization", quantization, quantisedBits(usable.ext), "_varSchema.quantizationBits, null when not quantised");
    if (fields === BAD || !usable) return;
    this.checkNames(f, keyPaths([["fields", fields]]), "gene id");
    fields.forEach((entry, i) => this.checkContinuousEntry(f, `fields[${i}]`, entry, usable.ext));
  }

  checkCompressionMatches(file, manifest) {
    const value = this.field(file, manifest, "compression", isLevel, "null or an integer 1-9");
    this.equal(file, "compression", value, this.compression, "obs_manifest.json compression");
  }

  // -- connectivity_manifest.json (SPEC §2.8)
  checkConnectivity() {
    const conn = this.conn;
    if (conn === null) return;
    const f = CONNECTIVITY_MANIFEST_FILE;
    const n = this.n;
    this.keys(f, conn, "", CONNECTIVITY_KEYS, [], true);
    this.equal(f, "format", get(conn, "format"), "edge_pairs");
    this.checkN(f, "n_cells", get(conn, "n_cells"));
    const nEdges = this.field(f, conn, "n_edges", (v) => isInt(v) && v >= 0, "an integer ≥ 0");
    this.field(f, conn, "max_neighbors", (v) => isInt(v) && v >= 0, "an integer ≥ 0");
    const width = n === null || n <= 65536 ? 2 : 4;
    const why = n !== null ? `the smallest that fits n = ${n}` : "";
    this.equal(f, "index_bytes", get(conn, "index_bytes"), width, why);
    this.equal(f, "index_dtype", get(conn, "index_dtype"), `uint${8 * width}`, why);
    for (const [key, name] of [
      ["sourcesPath", "edges.src.bin"],
      ["destinationsPath", "edges.dst.bin"],
      ["weightsPath", "edges.weights.f64.bin"],
    ]) {
      this.equal(f, key, get(conn, key), `connectivity/${name}${this.gz}`);
    }
    this.equal(f, "weight_dtype", get(conn, "weight_dtype"), "float64");
    this.equal(f, "weight_bytes", get(conn, "weight_bytes"), 8);
    this.checkCompressionMatches(f, conn);
    for (const key of ["sourcesPath", "destinationsPath", "weightsPath"]) {
      if (has(conn, key)) this.checkPath(f, key, conn[key]);
    }
    if (nEdges === BAD || n === null) return;
    const problems = edgeCountProblems(n, nEdges, get(conn, "index_dtype", null));
    for (const [expected, found] of problems) this.add(f, "n_edges", expected, found);
  }

  // -- stats and obs_fields against the manifests (SPEC §2.10, §2.12)
  checkCrossFile() {
    const ident = this.identity ?? {};
    const obs = this.obs ?? {};
    const f = IDENTITY_FILE;
    const stats = isObject(ident.stats) ? ident.stats : {};
    const cont = get(obs, "_continuousFields", null);
    const cat = get(obs, "_categoricalFields", null);
    if (this.n !== null) this.equal(f, "stats.n_cells", get(stats, "n_cells"), this.n, "the number of cells");
    const nGenes = get(stats, "n_genes");
    if (isInt(nGenes) && this.hasVar !== nGenes > 0) {
      this.add(VAR_MANIFEST_FILE, "file", `${nGenes > 0 ? "present" : "absent"} (stats.n_genes = ${nGenes})`, this.hasVar ? "present" : "missing");
    }
    const genes = get(this.var, "fields", null);
    if (Array.isArray(genes)) this.equal(f, "stats.n_genes", nGenes, genes.length, "entries of var_manifest.json fields");
    if (Array.isArray(cont)) {
      this.equal(f, "stats.n_continuous_fields", get(stats, "n_continuous_fields"), cont.length, "obs_manifest.json _continuousFields");
    }
    if (Array.isArray(cat)) {
      this.equal(f, "stats.n_categorical_fields", get(stats, "n_categorical_fields"), cat.length, "obs_manifest.json _categoricalFields");
    }
    const obsFields = get(ident, "obs_fields", null);
    if (Array.isArray(obsFields)) this.equal(f, "stats.n_obs_fields", get(stats, "n_obs_fields"), obsFields.length, "entries of obs_fields");
    const flag = get(stats, "has_connectivity");
    if (typeof flag === "boolean" && flag !== this.hasConn) {
      this.add(
        CONNECTIVITY_MANIFEST_FILE,
        "file",
        `${flag ? "present" : "absent"} (stats.has_connectivity is ${flag})`,
        this.hasConn ? "present" : "missing",
      );
    }
    const connEdges = get(this.conn, "n_edges", null);
    if (isInt(connEdges)) this.equal(f, "stats.n_edges", get(stats, "n_edges"), connEdges, "connectivity_manifest.json n_edges");
    if (Array.isArray(obsFields) && Array.isArray(cont) && Array.isArray(cat)) this.checkObsFieldsMatch(obsFields, cont, cat);
    this.checkSettingsMatch(get(ident, "export_settings", null), cat);
  }

  checkObsFieldsMatch(obsFields, cont, cat) {
    const expected = [];
    for (const entry of cont) if (Array.isArray(entry) && entry.length) expected.push({ key: entry[0], kind: "continuous" });
    for (const entry of cat) {
      if (Array.isArray(entry) && entry.length >= 2 && Array.isArray(entry[1])) {
        expected.push({ key: entry[0], kind: "category", n_categories: entry[1].length });
      }
    }
    if (obsFields.length !== expected.length) {
      this.add(IDENTITY_FILE, "obs_fields", `${expected.length} entries (the obs manifest's fields)`, `${obsFields.length} entries`);
      return;
    }
    obsFields.forEach((got, i) => {
      if (!deepEqual(got, expected[i])) {
        this.add(IDENTITY_FILE, `obs_fields[${i}]`, `${show(expected[i])} (obs manifest order: continuous, then categorical)`, show(got));
      }
    });
  }

  checkSettingsMatch(settings, cat) {
    if (!isObject(settings)) return;
    const f = IDENTITY_FILE;
    const obs = this.obs ?? {};
    if (has(obs, "compression")) {
      this.equal(f, "export_settings.compression", get(settings, "compression"), obs.compression, "obs_manifest.json compression");
    }
    if (this.var !== null && has(this.var, "quantization")) {
      this.equal(f, "export_settings.var_quantization", get(settings, "var_quantization"), this.var.quantization, "var_manifest.json quantization");
    }
    const schemas = isObject(obs._obsSchemas) ? obs._obsSchemas : {};
    const used = [];
    const contSchema = get(schemas, "continuous", null);
    if (isObject(contSchema) && VALUE_EXTS.includes(contSchema.ext)) used.push(["_obsSchemas.continuous.ext", contSchema.ext]);
    const catSchema = get(schemas, "categorical", null);
    if (isObject(catSchema) && VALUE_EXTS.includes(catSchema.outlierExt)) used.push(["_obsSchemas.categorical.outlierExt", catSchema.outlierExt]);
    for (const [where, ext] of used) {
      const found = get(settings, "obs_continuous_quantization");
      this.equal(f, "export_settings.obs_continuous_quantization", found, quantisedBits(ext), `obs_manifest.json ${where} ${ext}`);
    }
    const choice = get(settings, "obs_categorical_dtype", null);
    if (!["auto", "uint8", "uint16"].includes(choice) || !Array.isArray(cat)) return;
    cat.forEach((entry, i) => {
      if (!(Array.isArray(entry) && entry.length >= 3 && Array.isArray(entry[1]))) return;
      const k = entry[1].length;
      const want = choice !== "auto" ? choice : k <= 255 ? "uint8" : "uint16";
      this.equal(OBS_MANIFEST_FILE, `_categoricalFields[${i}][2]`, entry[2], want, `obs_categorical_dtype '${choice}' with ${k} categories`);
    });
  }

  // -- the catalog entry (SPEC §2.11, §2.12 item 1)
  checkCatalog() {
    const entry = this.docs.catalogEntry;
    if (entry === null || entry === undefined) return;
    const f = this.docs.catalogFile ?? "_cellucid/datasets";
    if (!isObject(entry)) {
      this.add(f, "datasets[]", "an object", show(entry));
      return;
    }
    const ident = this.identity ?? {};
    const stats = isObject(ident.stats) ? ident.stats : {};
    for (const [key, want, where] of [
      ["id", get(ident, "id"), "id"],
      ["name", get(ident, "name"), "name"],
      ["n_cells", get(stats, "n_cells"), "stats.n_cells"],
      ["n_genes", get(stats, "n_genes"), "stats.n_genes"],
    ]) {
      if (want === BAD) continue;
      if (has(entry, key)) this.equal(f, key, entry[key], want, `${IDENTITY_FILE} ${where}`);
      else if (key === "id" || key === "name") this.add(f, key, "present", "missing");
    }
  }
}

// key → the JSON paths of the tuples that name it (`group[i][0]`), for the safe-name checks
function keyPaths(groups) {
  const paths = new Map();
  for (const [group, fields] of groups) {
    fields.forEach((entry, i) => {
      if (Array.isArray(entry) && entry.length && typeof entry[0] === "string") {
        if (!paths.has(entry[0])) paths.set(entry[0], []);
        paths.get(entry[0]).push(`${group}[${i}][0]`);
      }
    });
  }
  return paths;
}

const violation = (file, key, expected, found) => ({ file, key, expected, found });

function edgeCountProblems(n, nEdges, indexDtype) {
  const out = [];
  const maxEdges = (BigInt(n) * BigInt(n - 1)) / 2n;
  if (BigInt(nEdges) > maxEdges) out.push([`at most n(n-1)/2 = ${maxEdges}`, String(nEdges)]);
  const perEdge = indexDtype === "uint16" ? 48 : 44;
  const budget = perEdge * nEdges + 4 * n;
  if (budget > BROWSER_EDGE_BUDGET) {
    out.push([`${perEdge}·E + 4·n ≤ ${BROWSER_EDGE_BUDGET} (browser budget)`, `${budget} for E = ${nEdges}, n = ${n}`]);
  }
  return out;
}

/**
 * @typedef {{file: string, key: string, expected: string, found: string}} Violation
 * One broken rule: the file (relative to the dataset), the JSON key path inside it
 * (`stats.n_cells`, `_categoricalFields[0][3]`) or a pseudo-key (`file`, `json`, `bytes`,
 * `values`, `key order`), what the SPEC requires and what is there.
 */

/**
 * Check the JSON documents of one dataset (SPEC §2.6-§2.12), like the JSON-level part of
 * python `validate_export`: exact key sets and key orders, types, schemas, tuples, stats
 * consistency, obs_fields order and kinds, n_points agreement, path rules, vector fields,
 * the connectivity manifest with the browser budget, and the catalog entry.
 *
 * A document that was not fetched or does not exist is `null`/`undefined`: identity and obs
 * manifest are required; the var and connectivity manifests must exist exactly when the
 * identity stats say so (a loader that fetches them only then reports a 404 as `null`).
 *
 * @param {{identity: object, obsManifest: object, varManifest?: object|null,
 *   connectivityManifest?: object|null, catalogEntry?: {id: string, name: string,
 *   n_cells?: number, n_genes?: number}|null, catalogFile?: string}} docs
 *   `catalogFile` names the catalog in violations (default `"_cellucid/datasets"`).
 * @returns {Violation[]} empty when every checked rule holds, in the order python reports them
 */
export function checkDataset(docs) {
  return new Checker(docs ?? {}).run();
}

/**
 * Check a decompressed payload's byte length (SPEC §2.3, §2.12 items 6-7).
 *
 * @param {string} file the payload path
 * @param {number} byteLength decoded byte length
 * @param {number|{count: number, dtype: string}} expected byte count, or element count and
 *   dtype (`float32`, `uint8`, `uint16`, `uint32`, `float64` or their file extensions)
 * @returns {Violation|null}
 */
export function checkPayloadLength(file, byteLength, expected) {
  let size;
  let what;
  if (typeof expected === "number") {
    size = expected;
    what = `${size}`;
  } else {
    const dtype = EXT_DTYPE_NAMES[expected.dtype] ?? expected.dtype;
    if (!has(ITEM_SIZE, dtype)) throw new Error(`unknown dtype ${JSON.stringify(expected.dtype)}`);
    size = expected.count * ITEM_SIZE[dtype];
    what = `${size} (${expected.count} × ${dtype})`;
  }
  return byteLength === size ? null : violation(file, "bytes", what, String(byteLength));
}

/**
 * Check categorical codes (SPEC §2.6.5, §2.12 item 7): every code < k or the missing code.
 *
 * @param {string} file
 * @param {Uint8Array|Uint16Array} codes
 * @param {number} k number of categories
 * @param {number} missing 255 or 65535
 * @returns {Violation|null}
 */
export function checkCodes(file, codes, k, missing) {
  let bad = 0;
  let first = -1;
  for (let i = 0; i < codes.length; i++) {
    if (codes[i] >= k && codes[i] !== missing) {
      if (first < 0) first = i;
      bad++;
    }
  }
  if (!bad) return null;
  return violation(file, "values", `codes < ${k} or == ${missing}`, `${bad} code(s) out of range, e.g. ${codes[first]} at cell ${first}`);
}

/**
 * Check points or vectors (SPEC §2.5, §2.9): every coordinate finite.
 *
 * @param {string} file
 * @param {Float32Array} values
 * @returns {Violation|null}
 */
export function checkFinite(file, values) {
  let bad = 0;
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) bad++;
  return bad ? violation(file, "values", "finite values", `${bad} NaN or ±Inf value(s)`) : null;
}

/**
 * Check decoded edges (SPEC §2.8, §2.12 item 4): indices < n, src < dst, strictly sorted by
 * (src, dst), weights finite and > 0, and the recomputed maximum degree == `max_neighbors`.
 *
 * @param {{src: Uint16Array|Uint32Array, dst: Uint16Array|Uint32Array, weights: Float64Array,
 *   nCells: number, maxNeighbors: number, files?: {src?: string, dst?: string, weights?: string}}} edges
 * @returns {Violation[]}
 */
export function checkEdges({ src, dst, weights, nCells, maxNeighbors, files = {} }) {
  const srcFile = files.src ?? "connectivity/edges.src.bin";
  const dstFile = files.dst ?? "connectivity/edges.dst.bin";
  const out = [];
  let badWeights = 0;
  for (let i = 0; i < weights.length; i++) if (!(Number.isFinite(weights[i]) && weights[i] > 0)) badWeights++;
  const weightsFile = files.weights ?? "connectivity/edges.weights.f64.bin";
  if (badWeights) out.push(violation(weightsFile, "values", "finite weights > 0", `${badWeights} bad weight(s)`));
  const degree = new Uint32Array(nCells);
  for (let i = 0; i < src.length; i++) {
    const s = src[i];
    const d = dst[i];
    if (d >= nCells) return [...out, violation(dstFile, "values", `cell indices < ${nCells}`, `index ${d}`)];
    if (s >= d) return [...out, violation(srcFile, "values", "src < dst for every edge", `edge ${i}: src ${s}, dst ${d}`)];
    if (i && (s < src[i - 1] || (s === src[i - 1] && d <= dst[i - 1]))) {
      const found = `edge ${i} (${s}, ${d}) after (${src[i - 1]}, ${dst[i - 1]})`;
      return [...out, violation(srcFile, "values", "edges strictly sorted by (src, dst), without duplicates", found)];
    }
    degree[s]++;
    degree[d]++;
  }
  let actual = 0;
  for (let i = 0; i < degree.length; i++) if (degree[i] > actual) actual = degree[i];
  if (maxNeighbors !== actual) {
    const expected = `${actual} (the largest degree of the edges)`;
    out.push(violation(CONNECTIVITY_MANIFEST_FILE, "max_neighbors", expected, String(maxNeighbors)));
  }
  return out;
}

/**
 * Parse a JSON document strictly, like the Python validator: valid JSON (no NaN/Infinity),
 * an object at the top, no duplicate keys in any object.
 *
 * @param {string} file name for the violation
 * @param {string} text the document
 * @returns {{value: object|null, violation: Violation|null}}
 */
export function parseManifest(file, text) {
  const fail = (expected, found) => ({ value: null, violation: violation(file, "json", expected, found) });
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return fail("strict JSON (UTF-8, no NaN/Infinity, no duplicate keys)", `SyntaxError: ${error.message}`);
  }
  const duplicate = findDuplicateKey(text);
  if (duplicate !== null) return fail("strict JSON (UTF-8, no NaN/Infinity, no duplicate keys)", `ValueError: duplicate key ${show(duplicate)}`);
  if (!isObject(value)) return fail("a JSON object", Array.isArray(value) ? "list" : value === null ? "NoneType" : typeof value);
  return { value, violation: null };
}

/**
 * The first key that appears twice in one object of a JSON text, or null (also for text that
 * is not valid JSON, which `JSON.parse` reports).
 *
 * @param {string} text
 * @returns {string|null}
 */
export function findDuplicateKey(text) {
  const stack = []; // per open container: a Set of keys (object) or null (array)
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      if (j >= text.length) return null; // not valid JSON: JSON.parse reports it
      const top = stack[stack.length - 1];
      if (top && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1));
        if (top.has(key)) return key;
        top.add(key);
        expectKey = false;
      }
      i = j;
    } else if (ch === "{") {
      stack.push(new Set());
      expectKey = true;
    } else if (ch === "[") {
      stack.push(null);
      expectKey = false;
    } else if (ch === "}" || ch === "]") {
      stack.pop();
      expectKey = false;
    } else if (ch === ",") {
      expectKey = stack[stack.length - 1] instanceof Set;
    }
  }
  return null;
}
