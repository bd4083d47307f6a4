import assert from "node:assert/strict";
import { test } from "node:test";
import { annotationCodes, UNASSIGNED, uniqueName } from "../viewer/src/select/annotate.js";
import { SelectionHistory } from "../viewer/src/select/history.js";
import { buildAdjacency, growCells } from "../viewer/src/select/knn.js";
import { KnnJob } from "../viewer/src/select/knnworker.js";
import { KnnGraph } from "../viewer/src/app/knngraph.js";
import { cellsWithin } from "../viewer/src/select/proximity.js";
import { CellBuffer, cellsWithCode, combine, complement, difference, fromMask, intersection, union } from "../viewer/src/select/sets.js";
import { rng } from "./helpers.mjs";

const arr = (a) => Array.from(a);

function randomSet(rand, n, p) {
  const out = [];
  for (let i = 0; i < n; i++) if (rand() < p) out.push(i);
  return Uint32Array.from(out);
}

test("set operations match a reference on random sets", () => {
  const rand = rng(7);
  for (let trial = 0; trial < 40; trial++) {
    const n = 1 + Math.floor(rand() * 300);
    const a = randomSet(rand, n, rand());
    const b = randomSet(rand, n, rand());
    const sa = new Set(a);
    const sb = new Set(b);
    const all = [...Array(n).keys()];
    assert.deepEqual(arr(union(a, b)), all.filter((i) => sa.has(i) || sb.has(i)));
    assert.deepEqual(arr(difference(a, b)), all.filter((i) => sa.has(i) && !sb.has(i)));
    assert.deepEqual(arr(intersection(a, b)), all.filter((i) => sa.has(i) && sb.has(i)));
    assert.deepEqual(arr(complement(a, n)), all.filter((i) => !sa.has(i)));
    const mask = Uint8Array.from(all, () => (rand() < 0.5 ? 1 : 0));
    assert.deepEqual(arr(complement(a, n, mask)), all.filter((i) => !sa.has(i) && mask[i]));
    assert.deepEqual(arr(fromMask(mask)), all.filter((i) => mask[i]));
  }
});

test("set operations: empty inputs, results are new arrays", () => {
  const a = Uint32Array.of(1, 4, 9);
  const empty = new Uint32Array(0);
  assert.deepEqual(arr(union(empty, a)), [1, 4, 9]);
  assert.notEqual(union(empty, a), a);
  assert.notEqual(difference(a, empty), a);
  assert.deepEqual(arr(intersection(a, empty)), []);
  assert.deepEqual(arr(complement(empty, 3)), [0, 1, 2]);
  assert.deepEqual(arr(complement(Uint32Array.of(0, 1, 2), 3)), []);
  assert.deepEqual(arr(union(Uint32Array.of(4294967295), Uint32Array.of(0))), [0, 4294967295]);
});

test("combine: the four modes; unsorted input; unknown modes fail", () => {
  const current = Uint32Array.of(1, 3, 5, 7);
  const incoming = Uint32Array.of(7, 2, 3, 3);
  assert.deepEqual(arr(combine(current, incoming, "replace")), [2, 3, 7]);
  assert.deepEqual(arr(combine(current, incoming, "add")), [1, 2, 3, 5, 7]);
  assert.deepEqual(arr(combine(current, incoming, "subtract")), [1, 5]);
  assert.deepEqual(arr(combine(current, incoming, "intersect")), [3, 7]);
  assert.throws(() => combine(current, incoming, "xor"), /mode must be one of/);
});

test("cellsWithCode: one category, with and without a mask", () => {
  const codes = Uint8Array.of(0, 2, 2, 1, 2, 255);
  assert.deepEqual(arr(cellsWithCode(codes, 2)), [1, 2, 4]);
  assert.deepEqual(arr(cellsWithCode(codes, 2, Uint8Array.of(1, 1, 0, 1, 1, 1))), [1, 4]);
  assert.deepEqual(arr(cellsWithCode(Uint16Array.of(300, 1, 300), 300)), [0, 2]);
  assert.deepEqual(arr(cellsWithCode(codes, 9)), []);
});

test("CellBuffer grows and returns what was pushed", () => {
  const buffer = new CellBuffer(100, 2);
  for (let i = 0; i < 37; i++) buffer.push(i * 2);
  assert.equal(buffer.length, 37);
  assert.deepEqual(arr(buffer.result()), Array.from({ length: 37 }, (_, i) => i * 2));
});

// ---- undo / redo -----------------------------------------------------------------------------

test("history: undo and redo walk the steps; a new step drops the redo branch", () => {
  const h = new SelectionHistory(100);
  assert.equal(h.canUndo, false);
  assert.equal(h.undo(), null);
  assert.equal(h.push(Uint32Array.of(1, 2), "lasso"), true);
  assert.equal(h.push(Uint32Array.of(1, 2, 3), "knn"), true);
  assert.equal(h.push(Uint32Array.of(1, 2, 3), "click"), false, "an unchanged selection is no step");
  assert.deepEqual(h.depth, { undo: 2, redo: 0 });
  let back = h.undo();
  assert.deepEqual(arr(back.cells), [1, 2]);
  assert.equal(back.source, "knn");
  back = h.undo();
  assert.deepEqual(arr(back.cells), []);
  assert.equal(back.source, "lasso");
  assert.equal(h.undo(), null);
  const again = h.redo();
  assert.deepEqual(arr(again.cells), [1, 2]);
  assert.equal(again.source, "lasso");
  h.push(Uint32Array.of(9), "proximity");
  assert.equal(h.canRedo, false, "a new step after undo drops the undone steps");
  assert.deepEqual(arr(h.undo().cells), [1, 2]);
  assert.deepEqual(arr(h.redo().cells), [9]);
  h.reset(Uint32Array.of(4));
  assert.deepEqual(h.depth, { undo: 0, redo: 0 });
});

test("history: large selections are stored as bitsets and come back exactly", () => {
  const n = 10_000;
  const h = new SelectionHistory(n);
  const big = randomSet(rng(3), n, 0.6);
  h.push(big, "invert");
  h.push(Uint32Array.of(5), "click");
  assert.equal(h.entries[1].bits.length, n / 8, "6,000 cells take n / 8 bytes, not 4 a cell");
  assert.equal(h.entries[2].cells.length, 1);
  assert.equal(h.bytes, n / 8 + 4);
  assert.deepEqual(arr(h.undo().cells), arr(big));
  assert.deepEqual(arr(h.redo().cells), [5]);
});

test("history: memory stays bounded by steps and by bytes", () => {
  const n = 80_000; // a bitset is 10,000 bytes
  const bySteps = new SelectionHistory(n, { maxSteps: 5 });
  for (let i = 0; i < 20; i++) bySteps.push(Uint32Array.of(i), "click");
  assert.equal(bySteps.entries.length, 5);
  let undone = 0;
  while (bySteps.undo()) undone++;
  assert.equal(undone, 4);
  assert.deepEqual(arr(bySteps.redo().cells), [16]);

  const byBytes = new SelectionHistory(n, { maxBytes: 35_000 });
  const all = Uint32Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < 10; i++) byBytes.push(all.subarray(i, n - i), "lasso");
  assert.ok(byBytes.bytes <= 35_000, `${byBytes.bytes} bytes kept`);
  assert.equal(byBytes.entries.length, 3);
  assert.equal(byBytes.bytes, byBytes.entries.reduce((s, e) => s + e.bytes, 0));
  assert.equal(byBytes.undo().cells.length, n - 16);
});

// ---- kNN grow ----------------------------------------------------------------------------------

// Two components: a path 0-1-2-3-4 and a triangle 5-6-7; 8 is alone. Edges once, src < dst.
const PATH_GRAPH = { src: Uint16Array.of(0, 1, 2, 3, 5, 5, 6), dst: Uint16Array.of(1, 2, 3, 4, 6, 7, 7) };

test("buildAdjacency: every edge both ways", () => {
  const adj = buildAdjacency(PATH_GRAPH.src, PATH_GRAPH.dst, 9);
  const row = (i) => arr(adj.neighbors.subarray(adj.offsets[i], adj.offsets[i + 1])).sort((a, b) => a - b);
  assert.deepEqual(row(0), [1]);
  assert.deepEqual(row(2), [1, 3]);
  assert.deepEqual(row(7), [5, 6]);
  assert.deepEqual(row(8), []);
  assert.equal(adj.neighbors.length, 14);
  assert.throws(() => buildAdjacency(Uint32Array.of(0), Uint32Array.of(9), 9), /names a cell/);
  assert.throws(() => buildAdjacency(Uint32Array.of(0), Uint32Array.of(), 9), /src has 1/);
});

test("growCells: hops on a known graph, stays in its component, respects the mask", () => {
  const adj = buildAdjacency(PATH_GRAPH.src, PATH_GRAPH.dst, 9);
  assert.deepEqual(arr(growCells(adj, Uint32Array.of(2), 0)), [2]);
  assert.deepEqual(arr(growCells(adj, Uint32Array.of(2), 1)), [1, 2, 3]);
  assert.deepEqual(arr(growCells(adj, Uint32Array.of(2), 2)), [0, 1, 2, 3, 4]);
  assert.deepEqual(arr(growCells(adj, Uint32Array.of(2), 10)), [0, 1, 2, 3, 4]);
  assert.deepEqual(arr(growCells(adj, Uint32Array.of(0, 5, 8), 1)), [0, 1, 5, 6, 7, 8]);
  // 3 hidden: neither added nor walked across
  const mask = Uint8Array.of(1, 1, 1, 0, 1, 1, 1, 1, 1);
  assert.deepEqual(arr(growCells(adj, Uint32Array.of(2), 5, mask)), [0, 1, 2]);
  assert.throws(() => growCells(adj, Uint32Array.of(2), -1), /hops/);
  assert.throws(() => growCells(adj, Uint32Array.of(9), 1), /not below/);
});

test("growCells: one hop on a random graph equals the neighbours by brute force", () => {
  const rand = rng(11);
  const n = 500;
  const pairs = new Set();
  while (pairs.size < 1500) {
    const a = Math.floor(rand() * n);
    const b = Math.floor(rand() * n);
    if (a !== b) pairs.add(`${Math.min(a, b)},${Math.max(a, b)}`);
  }
  const edges = [...pairs].map((p) => p.split(",").map(Number));
  const adj = buildAdjacency(Uint32Array.from(edges, (e) => e[0]), Uint32Array.from(edges, (e) => e[1]), n);
  const seed = randomSet(rand, n, 0.05);
  const inSeed = new Set(seed);
  const expected = new Set(seed);
  for (const [a, b] of edges) {
    if (inSeed.has(a)) expected.add(b);
    if (inSeed.has(b)) expected.add(a);
  }
  assert.deepEqual(arr(growCells(adj, seed, 1)), [...expected].sort((x, y) => x - y));
});

test("KnnJob: the worker's messages (graph, grow, errors) with the grown buffer transferred", () => {
  const posted = [];
  const job = new KnnJob((message, transfer) => posted.push({ message, transfer }));
  job.handle({ id: 1, type: "grow", cells: Uint32Array.of(2), hops: 1, mask: null });
  assert.deepEqual(posted[0].message, { id: 1, type: "error", message: "no kNN graph loaded" });
  job.handle({ id: 2, type: "graph", src: PATH_GRAPH.src, dst: PATH_GRAPH.dst, nCells: 9 });
  assert.equal(posted[1].message.type, "ready");
  assert.equal(posted[1].message.edges, 7);
  job.handle({ id: 3, type: "grow", cells: Uint32Array.of(2), hops: 2, mask: Uint8Array.of(1, 1, 1, 1, 0, 1, 1, 1, 1) });
  const { message, transfer } = posted[2];
  assert.equal(message.id, 3);
  assert.deepEqual(arr(message.cells), [0, 1, 2, 3]);
  assert.deepEqual(transfer, [message.cells.buffer]);
  job.handle({ id: 4, type: "shrink" });
  assert.match(posted[3].message.message, /unknown message type "shrink"/);
});

test("KnnGraph without a worker grows on the page; a worker that fails to start falls back", async () => {
  const graph = new KnnGraph({ nCells: 9 });
  await graph.load(PATH_GRAPH);
  assert.ok(graph.buildMs >= 0);
  assert.deepEqual(arr(await graph.grow(Uint32Array.of(0, 5), 1)), [0, 1, 5, 6, 7]);
  await assert.rejects(graph.grow(Uint32Array.of(0), -1), /hops/);
  const warn = console.warn;
  const warned = [];
  console.warn = (...args) => warned.push(args);
  let fallback;
  try {
    fallback = new KnnGraph({ nCells: 9, createWorker: () => { throw new Error("CSP"); } });
  } finally {
    console.warn = warn;
  }
  assert.equal(warned.length, 1);
  await fallback.load(PATH_GRAPH);
  assert.deepEqual(arr(await fallback.grow(Uint32Array.of(4), 1)), [3, 4]);
});

// ---- proximity ---------------------------------------------------------------------------------

test("cellsWithin: a disc in 2D and a ball in 3D, boundary included, mask respected", () => {
  const pts2 = Float32Array.of(0, 0, 1, 0, 0, 2, 3, 4, -0.5, -0.5);
  assert.deepEqual(arr(cellsWithin(pts2, 2, [0, 0], 1)), [0, 1, 4]);
  assert.deepEqual(arr(cellsWithin(pts2, 2, [0, 0], 5)), [0, 1, 2, 3, 4]);
  assert.deepEqual(arr(cellsWithin(pts2, 2, [3, 4], 0)), [3]);
  assert.deepEqual(arr(cellsWithin(pts2, 2, [0, 0], 1, Uint8Array.of(1, 0, 1, 1, 1))), [0, 4]);
  const pts3 = Float32Array.of(0, 0, 0, 0, 0, 1, 0, 0, 1.01, 1, 1, 1);
  assert.deepEqual(arr(cellsWithin(pts3, 3, [0, 0, 0], 1)), [0, 1]);
  assert.deepEqual(arr(cellsWithin(pts3, 3, [1, 1, 1], 1.7321)), [0, 1, 2, 3]);
  assert.deepEqual(arr(cellsWithin(Float32Array.of(NaN, 0), 2, [0, 0], 10)), [], "NaN is never inside");
  assert.throws(() => cellsWithin(pts2, 2, [0, 0], -1), /radius/);
  assert.throws(() => cellsWithin(pts2, 4, [0, 0], 1), /size/);
});

// ---- annotate -----------------------------------------------------------------------------------

test("annotationCodes: group names then unassigned; the first group wins overlaps", () => {
  const { codes, categories } = annotationCodes(
    [
      { name: "T cells", cells: Uint32Array.of(0, 2, 3) },
      { name: "B cells", cells: Uint32Array.of(3, 4) },
    ],
    6,
  );
  assert.deepEqual(categories, ["T cells", "B cells", UNASSIGNED]);
  assert.ok(codes instanceof Uint8Array);
  assert.deepEqual(arr(codes), [0, 2, 0, 0, 1, 2]);
  const many = Array.from({ length: 300 }, (_, g) => ({ name: `g${g}`, cells: Uint32Array.of(g) }));
  const wide = annotationCodes(many, 301);
  assert.ok(wide.codes instanceof Uint16Array);
  assert.equal(wide.codes[299], 299);
  assert.equal(wide.codes[300], 300);
  assert.throws(() => annotationCodes([{ name: "a", cells: Uint32Array.of() }, { name: "a", cells: Uint32Array.of() }], 3), /two groups are called "a"/);
  assert.throws(() => annotationCodes([{ name: UNASSIGNED, cells: Uint32Array.of() }], 3), /may not be called/);
  assert.throws(() => annotationCodes([{ name: "a", cells: Uint32Array.of(3) }], 3), /not below 3/);
});

test("uniqueName: suffixes the first free number", () => {
  assert.equal(uniqueName("Group", []), "Group");
  assert.equal(uniqueName("Group", ["Group", "Group (2)"]), "Group (3)");
  assert.equal(uniqueName("  ", new Set()), "Group");
});
