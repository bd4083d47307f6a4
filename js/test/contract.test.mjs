import assert from "node:assert/strict";
import { test } from "node:test";
import {
  BROWSER_EDGE_BUDGET,
  checkCodes,
  checkDataset,
  checkEdges,
  checkFinite,
  checkPayloadLength,
  findDuplicateKey,
  parseManifest,
  show,
} from "../viewer/src/data/contract.js";
import { NO_PYTHON, runPython } from "./helpers.mjs";

// A small valid dataset written by hand from SPEC §2 (no compression, float32, one latent-free
// categorical field, 2D only, connectivity, one gene, one vector field).
function validDocs() {
  const identity = {
    version: 2,
    id: "demo",
    name: "Demo",
    description: "",
    created_at: "2024-05-01T12:00:00Z",
    cellucid_data_version: "0.1.0",
    stats: { n_cells: 4, n_genes: 1, n_obs_fields: 2, n_categorical_fields: 1, n_continuous_fields: 1, has_connectivity: true, n_edges: 2 },
    embeddings: { available_dimensions: [2], default_dimension: 2, files: { "2d": "points_2d.bin" } },
    obs_fields: [
      { key: "age", kind: "continuous" },
      { key: "cell type", kind: "category", n_categories: 2 },
    ],
    export_settings: { compression: null, var_quantization: null, obs_continuous_quantization: null, obs_categorical_dtype: "auto" },
    vector_fields: {
      default_field: "velocity_umap",
      fields: { velocity_umap: { label: "velocity_umap", basis: "umap", available_dimensions: [2], default_dimension: 2, files: { "2d": "vectors/velocity_umap_2d.bin" } } },
    },
  };
  const obsManifest = {
    _format: "compact_v1",
    n_points: 4,
    centroid_outlier_quantile: 0.95,
    latent_key: null,
    compression: null,
    _obsSchemas: {
      continuous: { pathPattern: "obs/{key}.values.f32", ext: "f32", dtype: "float32", quantized: false },
      categorical: { codesPathPattern: "obs/{key}.codes.{ext}", outlierPathPattern: null, outlierExt: null, outlierDtype: null, outlierQuantized: false },
    },
    _continuousFields: [["age"]],
    _categoricalFields: [["cell type", ["B", "T"], "uint8", 255, { 2: [{ category: "B", position: [0.1, 0.2], n_points: 2 }] }]],
  };
  const varManifest = {
    _format: "compact_v1",
    n_points: 4,
    var_gene_id_column: "index",
    compression: null,
    quantization: null,
    _varSchema: { kind: "continuous", pathPattern: "var/{key}.values.f32", ext: "f32", dtype: "float32", quantized: false },
    fields: [["CD3E"]],
  };
  const connectivityManifest = {
    format: "edge_pairs",
    n_cells: 4,
    n_edges: 2,
    max_neighbors: 1,
    index_bytes: 2,
    index_dtype: "uint16",
    sourcesPath: "connectivity/edges.src.bin",
    destinationsPath: "connectivity/edges.dst.bin",
    weightsPath: "connectivity/edges.weights.f64.bin",
    weight_dtype: "float64",
    weight_bytes: 8,
    compression: null,
  };
  return { identity, obsManifest, varManifest, connectivityManifest, catalogEntry: { id: "demo", path: "/", name: "Demo" } };
}

const keysOf = (violations) => violations.map((v) => `${v.file}|${v.key}`);

test("a valid dataset has no violations", () => {
  assert.deepEqual(checkDataset(validDocs()), []);
});

test("violations name file and key, with expected and found", () => {
  const docs = validDocs();
  docs.obsManifest.n_points = 5;
  assert.deepEqual(checkDataset(docs), [{ file: "obs_manifest.json", key: "n_points", expected: "4 (the number of cells)", found: "5" }]);
});

test("exact key sets and key order", () => {
  let docs = validDocs();
  docs.identity.extra = 1;
  delete docs.identity.description;
  assert.deepEqual(keysOf(checkDataset(docs)), ["dataset_identity.json|description", "dataset_identity.json|extra"]);
  docs = validDocs();
  const { _format, ...rest } = docs.obsManifest;
  docs.obsManifest = { ...rest, _format };
  const [v] = checkDataset(docs);
  assert.equal(v.key, "key order");
  assert.match(v.expected, /^_format, n_points/);
  docs = validDocs();
  docs.connectivityManifest = { compression: null, ...docs.connectivityManifest };
  assert.deepEqual(keysOf(checkDataset(docs)), ["connectivity_manifest.json|key order"]);
});

test("missing documents: identity and obs are required; var/connectivity follow the stats", () => {
  let docs = validDocs();
  docs.varManifest = null;
  assert.deepEqual(checkDataset(docs), [{ file: "var_manifest.json", key: "file", expected: "present (stats.n_genes = 1)", found: "missing" }]);
  docs = validDocs();
  docs.connectivityManifest = undefined;
  assert.deepEqual(keysOf(checkDataset(docs)), ["connectivity_manifest.json|file"]);
  docs = validDocs();
  docs.identity.stats.n_genes = 0;
  const extra = checkDataset(docs);
  assert.deepEqual(keysOf(extra), ["var_manifest.json|file", "dataset_identity.json|stats.n_genes"]);
  assert.equal(extra[0].expected, "absent (stats.n_genes = 0)");
  assert.deepEqual(keysOf(checkDataset({ identity: null, obsManifest: null })), ["dataset_identity.json|file", "obs_manifest.json|file"]);
  assert.deepEqual(keysOf(checkDataset({ identity: [], obsManifest: validDocs().obsManifest })), ["dataset_identity.json|json"]);
});

test("the browser edge budget: 48·E + 4·n with uint16 indices, 44·E + 4·n with uint32", () => {
  const docs = validDocs();
  const n = 1_000_000;
  docs.identity.stats.n_cells = n;
  docs.obsManifest.n_points = n;
  docs.varManifest.n_points = n;
  Object.assign(docs.connectivityManifest, { n_cells: n, index_bytes: 4, index_dtype: "uint32" });
  const fits = Math.floor((BROWSER_EDGE_BUDGET - 4 * n) / 44);
  for (const [edges, over] of [
    [fits, false],
    [fits + 1, true],
  ]) {
    docs.connectivityManifest.n_edges = edges;
    docs.identity.stats.n_edges = edges;
    const budget = checkDataset(docs).filter((v) => v.key === "n_edges" && v.file === "connectivity_manifest.json");
    assert.equal(budget.length, over ? 1 : 0, `E = ${edges}`);
    if (over) assert.match(budget[0].expected, /^44·E \+ 4·n ≤ 536870912/);
  }
  const small = validDocs();
  const e16 = Math.floor((BROWSER_EDGE_BUDGET - 16) / 48) + 1; // over with uint16, n = 4
  small.connectivityManifest.n_edges = e16;
  small.identity.stats.n_edges = e16;
  const found = checkDataset(small).filter((v) => v.file === "connectivity_manifest.json").map((v) => v.expected);
  assert.ok(found.some((e) => e.startsWith("at most n(n-1)/2 = 6")));
  assert.ok(found.some((e) => e.startsWith("48·E + 4·n")));
});

test("catalog entry: id and name must match the identity; counts when present", () => {
  let docs = validDocs();
  docs.catalogEntry = { id: "other", path: "/", name: "Demo" };
  assert.deepEqual(checkDataset(docs), [{ file: "_cellucid/datasets", key: "id", expected: '"demo" (dataset_identity.json id)', found: '"other"' }]);
  docs = validDocs();
  docs.catalogEntry = { id: "demo", path: "demo/", name: "Demo", n_cells: 5, n_genes: 1 };
  docs.catalogFile = "datasets.json";
  assert.deepEqual(keysOf(checkDataset(docs)), ["datasets.json|n_cells"]);
  docs.catalogEntry = { path: "/" };
  assert.deepEqual(keysOf(checkDataset(docs)), ["datasets.json|id", "datasets.json|name"]);
});

test("vector fields: ids, defaults, dims and files", () => {
  const docs = validDocs();
  const vf = docs.identity.vector_fields;
  vf.fields.velocity_umap.available_dimensions = [2, 3];
  vf.fields.velocity_umap.default_dimension = 3;
  vf.fields.velocity_umap.files["3d"] = "vectors/velocity_umap_3d.bin";
  const [v] = checkDataset(docs);
  assert.equal(v.key, "vector_fields.fields.velocity_umap.available_dimensions");
  const docs2 = validDocs();
  docs2.identity.vector_fields.fields = { "10": docs2.identity.vector_fields.fields.velocity_umap, "9": docs2.identity.vector_fields.fields.velocity_umap };
  // integer-like ids: JavaScript reorders them, so the sorted-order rule is skipped (documented)
  assert.ok(!keysOf(checkDataset(docs2)).includes("dataset_identity.json|vector_fields.fields"));
});

test("safe-name collisions and keys without a safe name", () => {
  const docs = validDocs();
  docs.obsManifest._continuousFields = [["n genes"], ["n_genes"]];
  docs.obsManifest._categoricalFields[0][0] = "★";
  docs.identity.obs_fields = [
    { key: "n genes", kind: "continuous" },
    { key: "n_genes", kind: "continuous" },
    { key: "★", kind: "category", n_categories: 2 },
  ];
  docs.identity.stats = { ...docs.identity.stats, n_obs_fields: 3, n_continuous_fields: 2 };
  const out = checkDataset(docs);
  assert.deepEqual(keysOf(out), ["obs_manifest.json|_categoricalFields[0][0]", "obs_manifest.json|_continuousFields[1][0]"]);
  assert.match(out[1].found, /maps to 'n_genes' like "n genes"/);
});

test("65,535 categories fit uint16; 256 do not fit uint8", () => {
  const docs = validDocs();
  const many = Array.from({ length: 65535 }, (_, i) => `c${i}`);
  docs.obsManifest._categoricalFields[0] = ["cell type", many, "uint16", 65535, { 2: [] }];
  docs.identity.obs_fields[1].n_categories = 65535;
  assert.deepEqual(checkDataset(docs), []);
  docs.obsManifest._categoricalFields[0][1] = many.slice(0, 256);
  docs.obsManifest._categoricalFields[0][2] = "uint8";
  docs.obsManifest._categoricalFields[0][3] = 255;
  docs.identity.obs_fields[1].n_categories = 256;
  assert.deepEqual(keysOf(checkDataset(docs)), ["obs_manifest.json|_categoricalFields[0][2]", "obs_manifest.json|_categoricalFields[0][2]"]);
  docs.obsManifest._categoricalFields[0][1] = [];
  docs.obsManifest._categoricalFields[0][4] = { 2: [] };
  docs.identity.obs_fields[1].n_categories = 0;
  assert.deepEqual(checkDataset(docs), []); // k = 0 is allowed
});

test("checkPayloadLength", () => {
  assert.equal(checkPayloadLength("obs/a.values.f32", 16, { count: 4, dtype: "float32" }), null);
  assert.deepEqual(checkPayloadLength("obs/a.values.f32", 15, { count: 4, dtype: "f32" }), { file: "obs/a.values.f32", key: "bytes", expected: "16 (4 × float32)", found: "15" });
  assert.deepEqual(checkPayloadLength("x", 3, 4), { file: "x", key: "bytes", expected: "4", found: "3" });
  assert.throws(() => checkPayloadLength("x", 3, { count: 1, dtype: "int8" }), /unknown dtype/);
});

test("payload checks: codes, finite values, edges", () => {
  assert.equal(checkCodes("c", Uint8Array.of(0, 1, 255), 2, 255), null);
  assert.match(checkCodes("c", Uint8Array.of(0, 2, 3), 2, 255).found, /^2 code\(s\) out of range, e.g. 2 at cell 1/);
  assert.equal(checkFinite("p", Float32Array.of(0, 1)), null);
  assert.match(checkFinite("p", Float32Array.of(NaN, Infinity, 0)).found, /^2 NaN/);
  const ok = { src: Uint16Array.of(0, 0, 1), dst: Uint16Array.of(1, 2, 2), weights: Float64Array.of(1, 0.5, 2), nCells: 3, maxNeighbors: 2 };
  assert.deepEqual(checkEdges(ok), []);
  assert.deepEqual(checkEdges({ ...ok, maxNeighbors: 3 }).map((v) => v.key), ["max_neighbors"]);
  assert.match(checkEdges({ ...ok, dst: Uint16Array.of(1, 0, 2) })[0].expected, /src < dst/);
  assert.match(checkEdges({ ...ok, src: Uint16Array.of(0, 1, 0), dst: Uint16Array.of(1, 2, 2) })[0].expected, /strictly sorted/);
  assert.match(checkEdges({ ...ok, dst: Uint16Array.of(1, 2, 3) })[0].expected, /cell indices < 3/);
  assert.match(checkEdges({ ...ok, weights: Float64Array.of(1, 0, NaN) })[0].found, /2 bad weight/);
  assert.deepEqual(checkEdges({ src: new Uint32Array(0), dst: new Uint32Array(0), weights: new Float64Array(0), nCells: 1, maxNeighbors: 0 }), []);
});

test("parseManifest: strict JSON, an object, no duplicate keys", () => {
  assert.deepEqual(parseManifest("a.json", '{"x": [1, {"y": 2}]}'), { value: { x: [1, { y: 2 }] }, violation: null });
  assert.equal(parseManifest("a.json", '{"x": NaN}').violation.key, "json");
  assert.equal(parseManifest("a.json", "[1]").violation.expected, "a JSON object");
  assert.match(parseManifest("a.json", '{"x": 1, "x": 2}').violation.found, /duplicate key "x"/);
  assert.equal(findDuplicateKey('{"a": {"b": 1, "c": {"b": 2}}, "d": ["a", "a", {"a": 1}]}'), null);
  assert.equal(findDuplicateKey('{"a": 1, "b": {"k": "\\"}", "\\u006b": 2}}'), "k");
  assert.equal(findDuplicateKey('{"a": [{"z": 1}, {"z": 2}], "a": 0}'), "a");
});

test("show formats like python json.dumps and cuts at 100 characters", () => {
  assert.equal(show([1, "a", null, { k: true }]), '[1, "a", null, {"k": true}]');
  assert.equal(show("x".repeat(200)).length, 100);
  assert.ok(show("x".repeat(200)).endsWith("..."));
});

test("the same verdicts as python validate_export on every manifest case", { skip: NO_PYTHON, timeout: 120000 }, () => {
  const cases = JSON.parse(runPython("contract_cases.py"));
  assert.ok(cases.length >= 100);
  for (const c of cases) {
    const mine = keysOf(checkDataset(c.docs)).sort();
    const python = c.violations.map(([file, key]) => `${file}|${key}`).sort();
    assert.deepEqual(mine, python, c.name);
  }
  assert.deepEqual(cases[0].violations, []);
});
