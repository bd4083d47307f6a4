import assert from "node:assert/strict";
import { test } from "node:test";
import { readSessionBundle, writeSessionBundle } from "../viewer/src/session/bundle.js";
import { decodeFilters, encodeFilters, filterFromSpec, FILTERS_CHUNK } from "../viewer/src/session/filterschunk.js";
import { checkPalette, customPalettes, paletteFor } from "../viewer/src/session/palettes.js";
import { continuousFieldChunks, decodeFloat32, encodeFloat32, readContinuousFields, USER_FIELDS_CHUNK } from "../viewer/src/session/userfloats.js";
import { fingerprintProblems } from "../viewer/src/session/restore.js";
import { staticCandidates } from "../viewer/src/session/defaults.js";
import { categoryFilter, rangeFilter } from "../viewer/src/filters/model.js";
import { categoricalPalette } from "../viewer/src/color/palettes.js";

const CATS = ["B", "T", "NK"];

test("filters chunk: round trip by category name, unbounded ends as null", () => {
  const filters = [categoryFilter("cluster", CATS, [1, 0, 1], false), rangeFilter("n_genes", "obs", 500, Infinity), rangeFilter("CD3E", "var", -Infinity, 2.5)];
  const doc = JSON.parse(JSON.stringify(encodeFilters(filters)));
  assert.deepEqual(doc.filters[0], { kind: "category", source: "obs", key: "cluster", keep: ["B", "NK"], includeMissing: false });
  assert.deepEqual(doc.filters[1], { kind: "range", source: "obs", key: "n_genes", lo: 500, hi: null });
  const { specs, warnings } = decodeFilters(doc);
  assert.deepEqual(warnings, []);
  assert.equal(specs[2].source, "var");
  assert.equal(specs[2].lo, -Infinity);
  // categories re-ordered in another export: matched by name
  const { filter, warning } = filterFromSpec(specs[0], { kind: "category", categories: ["NK", "B", "T", "DC"] });
  assert.equal(warning, null);
  assert.deepEqual([...filter.include], [1, 1, 0, 0]);
  assert.equal(filter.includeMissing, false);
  const r = filterFromSpec(specs[1], { kind: "continuous" }).filter;
  assert.equal(r.lo, 500);
  assert.equal(r.hi, Infinity);
});

test("filters chunk: bad entries are reported, unknown categories named", () => {
  const { specs, warnings } = decodeFilters({ version: 1, filters: [{ kind: "range", key: "x", lo: "a" }, { kind: "what", key: "y" }, { kind: "category", key: "z", keep: ["gone"] }] });
  assert.equal(specs.length, 1);
  assert.equal(warnings.length, 2);
  assert.match(filterFromSpec(specs[0], { kind: "category", categories: CATS }).warning, /"gone"/);
  assert.throws(() => filterFromSpec(specs[0], { kind: "continuous" }), /not categorical/);
  assert.equal(decodeFilters({ version: 2, filters: [] }).warnings.length, 1);
});

test("palettes: validation names the field and the fix", () => {
  assert.match(checkPalette("cluster", { categories: CATS, colors: ["#ff0000", "#00ff00"] }).error, /"cluster".*2 colours for 3 categories/);
  assert.match(checkPalette("cluster", { categories: CATS, colors: ["#ff0000", "red", "#00f"] }).error, /"red".*entry 1/);
  assert.match(checkPalette("cluster", null).error, /default palette/);
  const ok = checkPalette("cluster", { categories: CATS, colors: ["#FF0000", "#00ff0080", "#00f"] });
  assert.equal(ok.error, null);
  assert.deepEqual(ok.colors.get("T"), [0, 255, 0]); // alpha dropped
  assert.deepEqual(ok.colors.get("NK"), [0, 0, 255]);
});

test("palettes: applied by name; unnamed categories keep the default colour; custom ones round trip", () => {
  const { colors } = checkPalette("cluster", { categories: ["NK", "B"], colors: ["#010203", "#0a0b0c"] });
  const { palette, matched } = paletteFor(["B", "T", "NK"], colors);
  assert.equal(matched, 2);
  const dflt = categoricalPalette(3);
  assert.deepEqual([...palette.subarray(0, 3)], [10, 11, 12]);
  assert.deepEqual([...palette.subarray(3, 6)], [...dflt.subarray(3, 6)]);
  assert.deepEqual([...palette.subarray(6, 9)], [1, 2, 3]);
  const palettes = new Map([["cluster", palette], ["plain", categoricalPalette(2)]]);
  const doc = customPalettes(palettes, (k) => (k === "cluster" ? ["B", "T", "NK"] : ["a", "b"]));
  assert.deepEqual(Object.keys(doc), ["cluster"]); // the default palette is not written
  assert.deepEqual(doc.cluster.colors[0], "#0a0b0c");
  assert.equal(customPalettes(new Map([["plain", categoricalPalette(2)]]), () => ["a", "b"]), null);
});

test("numeric user fields: float32 chunk codec, length checked", () => {
  const values = Float32Array.of(1.5, NaN, -3, 1e30);
  const bytes = encodeFloat32(values);
  assert.equal(bytes.length, 16);
  assert.deepEqual([...bytes.subarray(0, 4)], [0, 0, 0xc0, 0x3f]); // 1.5 little-endian
  const back = decodeFloat32(bytes.subarray(0), 4);
  assert.ok(Number.isNaN(back[1]));
  assert.equal(back[3], values[3]);
  assert.throws(() => decodeFloat32(bytes, 5), /not 5/);
});

test("bundle with extension chunks: written, read back, fingerprint checked", async () => {
  const values = Float32Array.from({ length: 1000 }, (_, i) => i / 7);
  const bundle = await writeSessionBundle({
    datasetFingerprint: { sourceType: "cellucid-export", datasetId: "demo", cellCount: 1000, varCount: 3 },
    extraChunks: [
      { id: FILTERS_CHUNK, label: "Active filters", kind: "json", value: encodeFilters([rangeFilter("score", "obs", 0, 1)]) },
      ...continuousFieldChunks([{ id: "user-1", key: "score", values }]),
    ],
  });
  const { manifest, chunks } = await readSessionBundle(bundle);
  assert.ok(manifest.chunks.some((c) => c.id === "cellucid/user-fields/values/user-1" && c.kind === "binary" && c.dependsOn[0] === USER_FIELDS_CHUNK));
  const { fields, warnings } = readContinuousFields(chunks, 1000);
  assert.deepEqual(warnings, []);
  assert.deepEqual(fields[0].values, values);
  assert.match(readContinuousFields(chunks, 999).warnings[0], /not 999/);
  assert.equal(chunks.get(FILTERS_CHUNK).value.filters[0].key, "score");
  await assert.rejects(writeSessionBundle({ datasetFingerprint: {}, extraChunks: [{ id: "core/state", kind: "json", value: 1 }] }), /duplicate chunk id/);
  assert.deepEqual(fingerprintProblems(manifest.datasetFingerprint, { id: "demo", nCells: 1000, nGenes: 3 }), []);
  const bad = fingerprintProblems(manifest.datasetFingerprint, { id: "other", nCells: 10, nGenes: 3 });
  assert.equal(bad.length, 2);
  assert.match(bad.join(";"), /1,000 cells.*10/);
});

test("static default sessions: inside the dataset folder, then the sibling file", () => {
  const urls = staticCandidates(new URL("http://h/exports/pbmc/")).map(String);
  assert.deepEqual(urls, ["http://h/exports/pbmc/default.cellucid-session", "http://h/exports/pbmc.cellucid-session"]);
  assert.deepEqual(staticCandidates(new URL("http://h/")).map(String), ["http://h/default.cellucid-session"]);
});
