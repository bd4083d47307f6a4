import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import {
  MAGIC,
  decodeDeltaVarint,
  decodeUserCodes,
  encodeDeltaVarint,
  encodeUserCodes,
  readSessionBundle,
  writeSessionBundle,
} from "../viewer/src/session/bundle.js";
import { NO_PYTHON, rng, runPython } from "./helpers.mjs";

const FINGERPRINT = { sourceType: "export", datasetId: "demo", cellCount: 100000, varCount: 20 };

function session(overrides = {}) {
  const random = rng(8);
  const many = Uint32Array.from({ length: 30000 }, () => (random() * 100000) | 0);
  const codes = new Uint8Array(100000);
  for (let i = 0; i < codes.length; i++) codes[i] = i < 60000 ? 0 : i < 90000 ? 1 : 255;
  const noisy = Uint16Array.from({ length: 100000 }, () => (random() * 700) | 0);
  return {
    createdAt: "2024-05-01T12:00:00.000Z",
    datasetFingerprint: FINGERPRINT,
    dataSource: { type: "remote", url: "http://127.0.0.1:8765/" },
    highlightPages: [
      {
        id: "page-1",
        name: "Page 1",
        groups: [
          { id: "g1", name: "Python selection (3 cells)", color: "#ff0000", cells: Uint32Array.of(99999, 0, 17) },
          { id: "g2", name: "lasso", color: "#00ff00", cells: many },
        ],
      },
      { id: "page-2", name: "Empty page", groups: [{ id: "g3", name: "nothing", color: "#0000ff", cells: new Uint32Array(0) }] },
    ],
    userDefinedFields: [
      { id: "f1", key: "my clusters", kind: "category", categories: ["a", "b"], source: "obs", codes },
      { id: "f2", key: "noisy", kind: "category", categories: Array.from({ length: 700 }, (_, i) => `c${i}`), source: "obs", codes: noisy },
    ],
    coreState: { camera: { zoom: 2 }, big: "x".repeat(10000) },
    ...overrides,
  };
}

test("uvarint delta lists: round trip, sorting, bounds", () => {
  const bytes = encodeDeltaVarint(Uint32Array.of(300, 5, 5, 0, 4294967295));
  assert.deepEqual(Array.from(bytes.subarray(0, 4)), [4, 0, 5, 167]); // count 4, first 0, +5, +295 = 0xa7 0x02
  assert.deepEqual(Array.from(decodeDeltaVarint(bytes)), [0, 5, 300, 4294967295]);
  assert.deepEqual(Array.from(encodeDeltaVarint([])), [0]);
  assert.deepEqual(Array.from(decodeDeltaVarint(Uint8Array.of(0))), []);
  assert.throws(() => decodeDeltaVarint(encodeDeltaVarint([1, 2, 3]), { nObs: 2 }), /exceeds n_obs/);
  assert.throws(() => decodeDeltaVarint(encodeDeltaVarint([5]), { nObs: 5 }), /not below n_obs/);
  assert.throws(() => decodeDeltaVarint(Uint8Array.of(2, 1)), /truncated/);
  assert.throws(() => decodeDeltaVarint(Uint8Array.of(1, ...new Array(10).fill(0xff), 1)), /beyond 63/);
  assert.throws(() => encodeDeltaVarint([1.5]), /integers/);
});

test("user-defined codes: raw u8, raw u16, RLE, chosen by size", () => {
  const runs = new Uint8Array(1000).fill(3);
  const rle = encodeUserCodes(runs);
  assert.deepEqual(Array.from(rle), [2, 0xe8, 0x07, 1, 3, 0xe8, 0x07]);
  assert.deepEqual(decodeUserCodes(rle), runs);
  const varied = Uint8Array.of(0, 1, 2, 3, 4);
  const raw = encodeUserCodes(varied);
  assert.deepEqual(Array.from(raw), [0, 5, 0, 1, 2, 3, 4]);
  assert.deepEqual(decodeUserCodes(raw), varied);
  const wide = Uint16Array.of(300, 1, 65535, 2);
  const raw16 = encodeUserCodes(wide);
  assert.equal(raw16[0], 1);
  assert.deepEqual(decodeUserCodes(raw16), wide);
  const narrowInWide = Uint16Array.of(1, 2, 3, 4);
  assert.equal(encodeUserCodes(narrowInWide)[0], 0); // all < 256: raw uint8
  const wideRuns = new Uint16Array(50).fill(1000);
  const decoded = decodeUserCodes(encodeUserCodes(wideRuns));
  assert.ok(decoded instanceof Uint16Array);
  assert.deepEqual(decoded, wideRuns);
  assert.deepEqual(Array.from(decodeUserCodes(encodeUserCodes(new Uint8Array(0)))), []);
  assert.deepEqual(Array.from(decodeUserCodes(encodeUserCodes(Uint8Array.of(7)))), [7]);
});

test("user-defined codes: RLE readers skip zero runs and need runs that fill the length", () => {
  assert.deepEqual(Array.from(decodeUserCodes(Uint8Array.of(2, 3, 3, 1, 0, 4, 2, 5, 1))), [4, 4, 5]);
  assert.throws(() => decodeUserCodes(Uint8Array.of(2, 3, 1, 4, 2)), /fill 2 of 3/);
  assert.throws(() => decodeUserCodes(Uint8Array.of(2, 1, 1, 4, 2)), /exceed length/);
  assert.throws(() => decodeUserCodes(Uint8Array.of(9, 0)), /unknown encoding/);
  assert.throws(() => decodeUserCodes(Uint8Array.of(0, 3, 1)), /truncated/);
});

test("bundle layout: magic, u32 manifest length, manifest, length-prefixed chunks", async () => {
  const bytes = await writeSessionBundle(session());
  assert.equal(Buffer.from(bytes.subarray(0, 17)).toString("latin1"), MAGIC);
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  const manifestLen = view.getUint32(17, true);
  const manifest = JSON.parse(Buffer.from(bytes.subarray(21, 21 + manifestLen)).toString("utf8"));
  assert.deepEqual(Object.keys(manifest), ["createdAt", "dataSource", "datasetFingerprint", "summary", "chunks"]);
  assert.deepEqual(manifest.chunks.map((c) => c.id), [
    "core/state",
    "core/field-overlays",
    "highlights/meta",
    "highlights/cells/g1",
    "highlights/cells/g2",
    "highlights/cells/g3",
    "user-defined/codes/f1",
    "user-defined/codes/f2",
  ]);
  let o = 21 + manifestLen;
  for (const meta of manifest.chunks) {
    for (const key of ["id", "contributorId", "priority", "kind", "codec", "label", "datasetDependent", "storedBytes", "uncompressedBytes"]) {
      assert.ok(key in meta, `${meta.id}.${key}`);
    }
    assert.equal(view.getUint32(o, true), meta.storedBytes, meta.id);
    o += 4 + meta.storedBytes;
  }
  assert.equal(o, bytes.length);
  const state = manifest.chunks[0];
  assert.equal(state.codec, "gzip"); // > 4 KiB of JSON
  assert.ok(state.storedBytes < state.uncompressedBytes);
  assert.equal(manifest.chunks[2].codec, "none");
  assert.equal(manifest.chunks[2].storedBytes, manifest.chunks[2].uncompressedBytes);
  assert.deepEqual(manifest.summary, { highlightPages: 2, highlightGroups: 3, highlightedCells: 3 + new Set(session().highlightPages[0].groups[1].cells).size, userDefinedFields: 2 });
});

test("readSessionBundle round trip", async () => {
  const input = session();
  const { manifest, chunks } = await readSessionBundle(await writeSessionBundle(input));
  assert.equal(manifest.createdAt, input.createdAt);
  assert.deepEqual(manifest.datasetFingerprint, FINGERPRINT);
  assert.deepEqual(chunks.get("core/state").value, input.coreState);
  assert.deepEqual(Array.from(chunks.get("highlights/cells/g1").value), [0, 17, 99999]);
  assert.deepEqual(Array.from(chunks.get("highlights/cells/g2").value), [...new Set(input.highlightPages[0].groups[1].cells)].sort((a, b) => a - b));
  assert.equal(chunks.get("highlights/cells/g3").value.length, 0);
  assert.deepEqual(chunks.get("user-defined/codes/f1").value, input.userDefinedFields[0].codes);
  assert.deepEqual(chunks.get("user-defined/codes/f2").value, input.userDefinedFields[1].codes);
  const meta = chunks.get("highlights/meta").value;
  assert.deepEqual(meta.pages[0].highlightedGroups[0], { id: "g1", name: "Python selection (3 cells)", color: "#ff0000", cellCount: 3 });
  assert.deepEqual(chunks.get("core/field-overlays").value.userDefinedFields[0], { id: "f1", key: "my clusters", kind: "category", categories: ["a", "b"], source: "obs", isDeleted: false });
});

test("empty sessions and trailing bytes", async () => {
  const bytes = await writeSessionBundle({ datasetFingerprint: { sourceType: "export", datasetId: "x" } });
  const { manifest, chunks } = await readSessionBundle(Uint8Array.from([...bytes, 1, 2, 3]));
  assert.match(manifest.createdAt, /^\d{4}-\d{2}-\d{2}T/);
  assert.deepEqual(manifest.chunks.map((c) => c.id), ["core/state", "core/field-overlays", "highlights/meta"]);
  assert.deepEqual(chunks.get("highlights/meta").value, { pages: [] });
});

test("writer validation", async () => {
  await assert.rejects(writeSessionBundle({ datasetFingerprint: null }), /datasetFingerprint/);
  const dup = session();
  dup.highlightPages[1].groups[0].id = "g1";
  await assert.rejects(writeSessionBundle(dup), /duplicate highlight group id "g1"/);
  const out = session();
  out.highlightPages[0].groups[0].cells = Uint32Array.of(100000);
  await assert.rejects(writeSessionBundle(out), /not below cellCount 100000/);
  const short = session();
  short.userDefinedFields[0].codes = new Uint8Array(5);
  await assert.rejects(writeSessionBundle(short), /5 codes for 100000 cells/);
  const noId = session();
  noId.userDefinedFields[0].id = "";
  await assert.rejects(writeSessionBundle(noId), /non-empty string/);
});

test("reader rejects a bad magic, truncation and unknown codecs", async () => {
  const bytes = await writeSessionBundle(session());
  await assert.rejects(readSessionBundle(Buffer.from("NOT_A_SESSION_FILE_AT_ALL")), /invalid MAGIC header/);
  await assert.rejects(readSessionBundle(bytes.subarray(0, bytes.length - 10)), /truncated/);
  const view = new DataView(bytes.buffer.slice(0));
  const manifestLen = view.getUint32(17, true);
  const text = Buffer.from(bytes.subarray(21, 21 + manifestLen)).toString("utf8").replace('"codec":"none"', '"codec":"zstd"');
  const patched = Buffer.concat([Buffer.from(bytes.subarray(0, 21)), Buffer.from(text), Buffer.from(bytes.subarray(21 + manifestLen))]);
  await assert.rejects(readSessionBundle(patched), /unknown codec "zstd"/);
});

test("an independent python decoder reads what JS wrote", { skip: NO_PYTHON }, async () => {
  const input = session();
  const dir = mkdtempSync(path.join(os.tmpdir(), "cellucid-session-"));
  try {
    const file = path.join(dir, "test.cellucid-session");
    writeFileSync(file, await writeSessionBundle(input));
    const decoded = JSON.parse(runPython("session_decode.py", [file]));
    assert.equal(decoded.trailing, 0);
    assert.deepEqual(decoded.json["core/state"], input.coreState);
    assert.deepEqual(decoded.highlights.g1, [0, 17, 99999]);
    assert.deepEqual(decoded.highlights.g2, [...new Set(input.highlightPages[0].groups[1].cells)].sort((a, b) => a - b));
    assert.deepEqual(decoded.highlights.g3, []);
    assert.equal(decoded.codes.f1.encoding, 2); // long runs → RLE
    assert.equal(decoded.codes.f1.dtype, "uint8");
    assert.deepEqual(decoded.codes.f1.values, Array.from(input.userDefinedFields[0].codes));
    assert.equal(decoded.codes.f2.encoding, 1); // noisy values ≥ 256 → raw uint16
    assert.deepEqual(decoded.codes.f2.values, Array.from(input.userDefinedFields[1].codes));
    const groups = decoded.json["highlights/meta"].pages.flatMap((p) => p.highlightedGroups.map((g) => g.id));
    assert.deepEqual(groups, ["g1", "g2", "g3"]);
    assert.deepEqual(decoded.json["core/field-overlays"].userDefinedFields.map((f) => f.id), ["f1", "f2"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function comparisons() {
  const result = { names: ["MARK3", "G1"], scores: [12.5, -1], logfoldchanges: [4.2, NaN], pvals: [1e-30, 0.3], pvals_adj: [2e-30, 0.3], pct_nz_group: [1, 0.2], pct_nz_reference: [0.05, 0.2] };
  return [
    { id: "c1", name: "Selection (3 cells) vs rest", createdAt: "2024-05-01T12:00:00.000Z", method: "wilcoxon", tieCorrect: false, statistic: "Wilcoxon …", group: { label: "Selection (3 cells)", cells: Uint32Array.of(7, 2, 99999) }, reference: "rest", result },
    { id: "c2", name: "a vs b", createdAt: "2024-05-01T12:01:00.000Z", method: "t-test", tieCorrect: false, statistic: "Welch's t-test …", group: { label: "cluster: a", cells: Uint32Array.of(1) }, reference: { label: "cluster: b", cells: Uint32Array.of(3, 4) }, result },
  ];
}

test("comparisons: analysis/comparisons JSON and delta-varint cell chunks, after the existing chunks", async () => {
  const input = session({ comparisons: comparisons() });
  const { manifest, chunks } = await readSessionBundle(await writeSessionBundle(input));
  assert.deepEqual(manifest.chunks.map((c) => c.id).slice(8), [
    "analysis/comparisons",
    "analysis/comparisons/cells/c1/group",
    "analysis/comparisons/cells/c2/group",
    "analysis/comparisons/cells/c2/reference",
  ]);
  assert.deepEqual(manifest.chunks.map((c) => c.id).slice(0, 8), (await readSessionBundle(await writeSessionBundle(session()))).manifest.chunks.map((c) => c.id));
  const cellMeta = manifest.chunks.find((c) => c.id === "analysis/comparisons/cells/c2/reference");
  assert.equal(cellMeta.kind, "binary");
  assert.deepEqual(cellMeta.dependsOn, ["analysis/comparisons"]);
  const doc = chunks.get("analysis/comparisons").value;
  assert.equal(doc.version, 1);
  assert.deepEqual(doc.comparisons[0], {
    id: "c1",
    name: "Selection (3 cells) vs rest",
    createdAt: "2024-05-01T12:00:00.000Z",
    method: "wilcoxon",
    tieCorrect: false,
    statistic: "Wilcoxon …",
    group: { label: "Selection (3 cells)", cellsChunk: "analysis/comparisons/cells/c1/group" },
    reference: "rest",
    result: { ...comparisons()[0].result, logfoldchanges: [4.2, null] },
  });
  assert.deepEqual(doc.comparisons[1].reference, { label: "cluster: b", cellsChunk: "analysis/comparisons/cells/c2/reference" });
  assert.deepEqual([...chunks.get("analysis/comparisons/cells/c1/group").value], [2, 7, 99999]);
  assert.deepEqual([...chunks.get("analysis/comparisons/cells/c2/reference").value], [3, 4]);
  const bad = session({ comparisons: [{ ...comparisons()[0], id: "a/b" }] });
  await assert.rejects(writeSessionBundle(bad), /must not contain "\/"/);
  const outOfRange = session({ comparisons: [{ ...comparisons()[0], group: { label: "x", cells: Uint32Array.of(100000) } }] });
  await assert.rejects(writeSessionBundle(outOfRange), /comparison c1: cell 100000 is not below cellCount/);
});

test("the independent python decoder reads the comparison chunks", { skip: NO_PYTHON }, async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "cellucid-session-"));
  try {
    const file = path.join(dir, "compare.cellucid-session");
    writeFileSync(file, await writeSessionBundle(session({ comparisons: comparisons() })));
    const decoded = JSON.parse(runPython("session_decode.py", [file]));
    assert.deepEqual(decoded.comparison_cells, { "c1/group": [2, 7, 99999], "c2/group": [1], "c2/reference": [3, 4] });
    assert.equal(decoded.json["analysis/comparisons"].comparisons[1].result.names[0], "MARK3");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
