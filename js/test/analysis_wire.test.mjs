// Compare groups on the wire: the request body of POST _cellucid/compare (PROTOCOL.md), the
// NDJSON answer read across arbitrary chunk boundaries, the result table it fills, and the group
// resolution that feeds both.
import assert from "node:assert/strict";
import { test } from "node:test";
import { cellSetBytes, decodeCompareBody, encodeCompareBody } from "../viewer/src/analysis/body.js";
import { NdjsonParser, numbers, readNdjson } from "../viewer/src/analysis/ndjson.js";
import { ResultTable } from "../viewer/src/analysis/result.js";
import { cellsOfCategories, checkGroups, complementCells, overlapCount, sortedCells } from "../viewer/src/analysis/groups.js";
import { rng } from "./helpers.mjs";

const utf8 = new TextEncoder();

test("a small group goes as u32, a large one as a bitset (ties: u32)", () => {
  // n = 64: a bitset is 8 bytes, so up to 2 cells go as u32
  assert.equal(cellSetBytes(Uint32Array.of(3, 9), 64).encoding, "u32");
  const three = cellSetBytes(Uint32Array.of(0, 9, 63), 64);
  assert.equal(three.encoding, "bitset");
  assert.deepEqual([...three.data], [0b00000001, 0b00000010, 0, 0, 0, 0, 0, 0b10000000]);
  const u32 = cellSetBytes(Uint32Array.of(1, 258), 4000);
  assert.deepEqual([...u32.data], [1, 0, 0, 0, 2, 1, 0, 0]); // little-endian
  assert.throws(() => cellSetBytes(Uint32Array.of(64), 64), /not below/);
});

test("the compare body: u32 header length, JSON header, group bytes, reference bytes", () => {
  const body = encodeCompareBody(
    {
      method: "t-test",
      tieCorrect: true,
      nGenes: 50,
      group: { cells: Uint32Array.of(2, 5), label: "Selection (2 cells)" },
      reference: { cells: Uint32Array.from({ length: 40 }, (_, i) => i + 10), label: "cluster: β" },
    },
    100,
  );
  const headerLen = new DataView(body.buffer).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(body.subarray(4, 4 + headerLen)));
  assert.deepEqual(header, {
    method: "t-test",
    tieCorrect: true,
    nGenes: 50,
    layer: null,
    group: { encoding: "u32", bytes: 8, label: "Selection (2 cells)" },
    reference: { encoding: "bitset", bytes: 13, label: "cluster: β" },
  });
  assert.equal(body.length, 4 + headerLen + 8 + 13);
  assert.deepEqual([...body.subarray(4 + headerLen, 4 + headerLen + 8)], [2, 0, 0, 0, 5, 0, 0, 0]);
  const bits = body.subarray(4 + headerLen + 8);
  assert.equal(bits[1], 0b11111100); // cells 10 … 15
  assert.equal(bits[6], 0b00000011); // cells 48, 49
  assert.equal(bits[12], 0);
  const back = decodeCompareBody(body, 100);
  assert.deepEqual([...back.group], [2, 5]);
  assert.deepEqual([...back.reference], Array.from({ length: 40 }, (_, i) => i + 10));
});

test("the compare body against the rest carries one cell set and defaults", () => {
  const cells = Uint32Array.from({ length: 500 }, (_, i) => 2 * i);
  const body = encodeCompareBody({ group: { cells, label: "A" }, reference: "rest" }, 1000);
  const back = decodeCompareBody(body, 1000);
  assert.deepEqual(back.header, {
    method: "wilcoxon",
    tieCorrect: false,
    nGenes: null,
    layer: null,
    group: { encoding: "bitset", bytes: 125, label: "A" },
    reference: "rest",
  });
  assert.deepEqual([...back.group], [...cells]);
  assert.equal(back.reference, null);
});

const LINES = [
  { type: "start", comparisonId: "c1", method: "wilcoxon", tieCorrect: false, statistic: "Wilcoxon rank-sum — µ", nGenes: 3, groupSize: 2, referenceSize: 5 },
  { type: "rows", done: 2, total: 3, genes: [2, 0], names: ["Gène2", "G0"], scores: [1.5, null], pvals: [0.1, 1] },
  { type: "rows", done: 3, total: 3, genes: [1], names: ["G1"], scores: [-2], pvals: [0.01] },
  { type: "result", genes: [2, 0, 1], names: ["Gène2", "G0", "G1"], scores: [1.5, 0, -2], pvals: [0.1, 1, 0.01], pvals_adj: [0.15, 1, 0.03] },
];

test("NDJSON split at every byte (inside lines and UTF-8 characters) parses the same", () => {
  const bytes = utf8.encode(LINES.map((l) => JSON.stringify(l)).join("\n") + "\n");
  for (let cut = 1; cut < bytes.length; cut += 1) {
    const p = new NdjsonParser();
    const got = [...p.push(bytes.subarray(0, cut)), ...p.push(bytes.subarray(cut)), ...p.end()];
    assert.deepEqual(got, LINES, `cut at ${cut}`);
  }
  // random many-way splits, CRLF line ends, blank lines and no final newline
  const crlf = utf8.encode("\r\n" + LINES.map((l) => JSON.stringify(l)).join("\r\n\r\n"));
  const random = rng(3);
  for (let trial = 0; trial < 50; trial++) {
    const p = new NdjsonParser();
    const got = [];
    for (let o = 0; o < crlf.length; ) {
      const n = 1 + Math.floor(random() * 9);
      got.push(...p.push(crlf.subarray(o, o + n)));
      o += n;
    }
    got.push(...p.end());
    assert.deepEqual(got, LINES);
  }
  const bad = new NdjsonParser();
  assert.throws(() => bad.push(utf8.encode('{"type": "start"}\n{oops\n')), /line 2 of the answer is not JSON/);
});

test("readNdjson reads a stream chunk by chunk, and a whole body when there is no stream", async () => {
  const text = LINES.map((l) => JSON.stringify(l)).join("\n");
  const bytes = utf8.encode(text);
  const stream = new ReadableStream({
    start(controller) {
      for (let o = 0; o < bytes.length; o += 7) controller.enqueue(bytes.slice(o, o + 7));
      controller.close();
    },
  });
  const seen = [];
  await readNdjson(stream, (m) => seen.push(m));
  assert.deepEqual(seen, LINES);
  const whole = [];
  await readNdjson(null, (m) => whole.push(m), async () => bytes.buffer);
  assert.deepEqual(whole, LINES);
  // the comm transport's answer: a Response over one ArrayBuffer
  const viaResponse = [];
  await readNdjson(new Response(bytes).body, (m) => viaResponse.push(m));
  assert.deepEqual(viaResponse, LINES);
});

test("the result table fills from rows, sorts by each column, and takes the final result", () => {
  assert.deepEqual([...numbers([1, null, 2])], [1, NaN, 2]);
  const table = new ResultTable(3);
  table.addRows(LINES[1]);
  table.addRows(LINES[2]);
  assert.equal(table.count, 3);
  assert.equal(table.complete, false);
  assert.deepEqual([...table.top(2)].map((i) => table.names[i]), ["Gène2", "G1"]); // NaN score last
  assert.deepEqual([...table.order("pvals", false)].map((i) => table.names[i]), ["G1", "Gène2", "G0"]);
  assert.deepEqual([...table.order("names", false)].map((i) => table.names[i]), ["G0", "G1", "Gène2"]);
  assert.deepEqual([...table.order("names", true)].map((i) => table.names[i]), ["Gène2", "G1", "G0"]);
  assert.ok(Number.isNaN(table.row(0).pvals_adj));
  table.setResult(LINES[3]);
  assert.equal(table.complete, true);
  assert.deepEqual(table.names, ["Gène2", "G0", "G1"]);
  assert.deepEqual([...table.top(5)], [0, 1, 2]);
  assert.equal(table.row(2).pvals_adj, 0.03);
  assert.equal(table.row(2).gene, 1);
  const session = table.toSession();
  assert.deepEqual(Object.keys(session), ["names", "scores", "logfoldchanges", "pvals", "pvals_adj", "pct_nz_group", "pct_nz_reference"]);
  assert.equal(JSON.stringify(session.logfoldchanges), "[null,null,null]");
  // more genes than announced: the table grows
  const grown = new ResultTable(1);
  for (let i = 0; i < 40; i++) grown.addRows({ names: [`g${i}`], genes: [i], scores: [i] });
  assert.equal(grown.count, 40);
  assert.equal(grown.names[grown.top(1)[0]], "g39");
});

test("groups: sorted cells, categories, the rest, overlap checks", () => {
  assert.deepEqual([...sortedCells([5, 1, 5, 3], 6)], [1, 3, 5]);
  assert.throws(() => sortedCells([6], 6), /out of range/);
  assert.deepEqual([...cellsOfCategories(Uint8Array.of(0, 2, 1, 255, 2, 0), [2, 0])], [0, 1, 4, 5]);
  assert.deepEqual([...cellsOfCategories(Uint16Array.of(300, 65535, 300), [300])], [0, 2]);
  assert.deepEqual([...complementCells(Uint32Array.of(0, 3, 4), 6)], [1, 2, 5]);
  assert.equal(overlapCount(Uint32Array.of(1, 4, 9), Uint32Array.of(0, 4, 9, 10)), 2);
  assert.throws(() => checkGroups({ cells: new Uint32Array(0) }, "rest", 4), /group A has no cells/);
  assert.throws(() => checkGroups({ cells: Uint32Array.of(0, 1, 2, 3) }, "rest", 4), /rest is empty/);
  assert.throws(() => checkGroups({ cells: Uint32Array.of(1) }, { cells: new Uint32Array(0) }, 4), /group B has no cells/);
  assert.throws(() => checkGroups({ cells: Uint32Array.of(1, 2) }, { cells: Uint32Array.of(2, 3) }, 4), /share 1 cells/);
  assert.throws(() => checkGroups({ cells: Uint32Array.of(1) }, { cells: Uint32Array.of(2, 3) }, 4), /group A has 1 cell; at least 2/);
  assert.throws(() => checkGroups({ cells: Uint32Array.of(0, 1, 2) }, "rest", 4), /group B has 1 cell/);
  checkGroups({ cells: Uint32Array.of(0, 1) }, { cells: Uint32Array.of(2, 3) }, 4);
  checkGroups({ cells: Uint32Array.of(0, 1) }, "rest", 4);
});
