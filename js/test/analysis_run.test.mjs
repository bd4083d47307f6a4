// Running a comparison: the worker's job (Ranker) behind runLocalCompare with flow control and
// cancel, and the Comparer choosing the server (credentials, NDJSON stream) or falling back to the
// browser when the server has no compare route. Workers and fetch are in-process fakes.
import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeCompareBody } from "../viewer/src/analysis/body.js";
import { Comparer, Comparison } from "../viewer/src/analysis/compare.js";
import { CONCURRENCY, runLocalCompare, WINDOW } from "../viewer/src/analysis/local.js";
import { FLUSH_MS, Ranker, ROWS_BATCH } from "../viewer/src/analysis/ranker.js";
import { benjaminiHochberg, groupMembership, rankGene } from "../viewer/src/analysis/stats.js";
import { rng } from "./helpers.mjs";

/** A Worker running the Ranker in this process, asynchronously like the real one. */
class FakeWorker {
  constructor(log = []) {
    this.log = log;
    this.terminated = false;
    this.ranker = new Ranker((msg) => setImmediate(() => !this.terminated && this.onmessage && this.onmessage({ data: msg })));
  }
  postMessage(msg) {
    this.log.push(msg.type);
    setImmediate(() => !this.terminated && this.ranker.handle(msg));
  }
  terminate() {
    this.terminated = true;
  }
}

function dataset(nCells, nGenes, seed) {
  const random = rng(seed);
  const genes = Array.from({ length: nGenes }, (_, g) => `G${g}`);
  // G3 marks the cells of GROUP: expressed in all of them, higher than anywhere else
  const values = genes.map((_, g) => Float32Array.from({ length: nCells }, (_, c) => (g === 3 && c % 3 === 0 ? 4 + random() : random() < 0.6 ? 0 : random() * 3)));
  return { nCells, genes, values, schema: { kind: "continuous", ext: "f32", quantized: false } };
}

function fetcher(ds, { delay = 0, stats = {} } = {}) {
  stats.active = 0;
  stats.maxActive = 0;
  stats.calls = 0;
  return async (index, signal) => {
    stats.calls++;
    stats.active++;
    stats.maxActive = Math.max(stats.maxActive, stats.active);
    try {
      await new Promise((resolve, reject) => {
        const t = setTimeout(resolve, delay);
        signal.addEventListener("abort", () => (clearTimeout(t), reject(Object.assign(new Error("aborted"), { name: "AbortError" }))));
      });
      return { bytes: new Uint8Array(ds.values[index].slice().buffer), tuple: [ds.genes[index]] };
    } finally {
      stats.active--;
    }
  };
}

const GROUP = (n) => Uint32Array.from({ length: Math.ceil(n / 3) }, (_, i) => 3 * i);

test("the browser path streams rows and ends with the table scanpy would give, sorted by score", async () => {
  const ds = dataset(300, 70, 1);
  const messages = [];
  const stats = {};
  const group = GROUP(ds.nCells);
  await runLocalCompare({
    nCells: ds.nCells,
    genes: ds.genes,
    schema: ds.schema,
    fetchGene: fetcher(ds, { stats }),
    createWorker: () => new FakeWorker(),
    request: { method: "wilcoxon", tieCorrect: true, group: { cells: group }, reference: "rest" },
    onMessage: (m) => messages.push(m),
  });
  const types = messages.map((m) => m.type);
  assert.equal(types[0], "start");
  assert.equal(types.at(-1), "result");
  assert.ok(types.filter((t) => t === "rows").length >= 2, "rows arrive in several batches");
  assert.ok(!types.includes("ack"), "flow control stays inside");
  const start = messages[0];
  assert.equal(start.source, "browser");
  assert.match(start.statistic, /^Wilcoxon rank-sum test \(normal approximation\), tie-corrected; Benjamini-Hochberg/);
  assert.equal(start.nGenes, 70);
  assert.equal(start.groupSize, 100);
  assert.equal(start.referenceSize, 200);
  assert.ok(stats.maxActive <= CONCURRENCY);
  const rows = messages.filter((m) => m.type === "rows");
  assert.equal(rows.reduce((s, m) => s + m.names.length, 0), 70);
  assert.equal(rows.at(-1).done, 70);

  const result = messages.at(-1);
  const groups = groupMembership(ds.nCells, group, null);
  const expected = ds.values.map((v) => rankGene(v, groups, { method: "wilcoxon", tieCorrect: true }));
  const adj = benjaminiHochberg(expected.map((r) => r.pvals));
  assert.equal(result.names[0], "G3", "the planted marker is on top");
  for (let k = 0; k < 70; k++) {
    const g = result.genes[k];
    assert.equal(result.names[k], `G${g}`);
    assert.equal(result.scores[k], expected[g].scores);
    assert.equal(result.pvals_adj[k], adj[g]);
    assert.equal(result.mean_group[k], expected[g].mean_group);
    if (k) assert.ok(result.scores[k] <= result.scores[k - 1], "sorted by score");
  }
});

test("the worker shows finished genes soon even when the next gene is slow to come", async () => {
  const out = [];
  const ranker = new Ranker((m) => out.push(m));
  const schema = { kind: "continuous", ext: "f32", quantized: false };
  ranker.handle({ type: "init", nCells: 4, group: Uint32Array.of(0, 1), reference: null, method: "wilcoxon", tieCorrect: false, schema, total: 3 });
  const gene = (i) => ({ type: "gene", index: i, name: `G${i}`, tuple: [`G${i}`], bytes: new Uint8Array(Float32Array.of(1, 2, 0, i).buffer) });
  ranker.handle(gene(0));
  ranker.handle(gene(1));
  assert.deepEqual(out.map((m) => m.type), ["ack", "ack"]);
  await new Promise((r) => setTimeout(r, FLUSH_MS + 50));
  const rows = out.filter((m) => m.type === "rows");
  assert.equal(rows.length, 1);
  assert.deepEqual(rows[0].names, ["G0", "G1"]);
  assert.equal(rows[0].done, 2);
  ranker.handle(gene(2));
  ranker.handle({ type: "end" });
  assert.deepEqual(out.slice(-2).map((m) => m.type), ["rows", "result"]);
  await new Promise((r) => setTimeout(r, FLUSH_MS + 50));
  assert.equal(out.at(-1).type, "result", "no flush after the end");
  assert.ok(ROWS_BATCH > 2);
});

test("quantised genes are decoded in the worker and the statistic says approximate", async () => {
  const codes = Uint8Array.from({ length: 40 }, (_, i) => (i < 20 ? 254 : 0));
  const messages = [];
  await runLocalCompare({
    nCells: 40,
    genes: ["Q"],
    schema: { kind: "continuous", ext: "u8", quantized: true, quantizationBits: 8 },
    fetchGene: async () => ({ bytes: codes.slice(), tuple: ["Q", 0, 2] }),
    createWorker: () => new FakeWorker(),
    request: { method: "t-test", tieCorrect: false, group: { cells: Uint32Array.from({ length: 20 }, (_, i) => i) }, reference: "rest" },
    onMessage: (m) => messages.push(m),
  });
  assert.equal(messages[0].quantized, true);
  assert.match(messages[0].statistic, /approximate: quantised values/);
  const result = messages.at(-1);
  assert.ok(Math.abs(result.mean_group[0] - 2) < 1e-6);
  assert.equal(result.mean_reference[0], 0);
  assert.equal(result.pvals[0], 0); // constant groups with different means: t = ±inf
});

test("a bad gene payload fails the comparison with the gene named", async () => {
  await assert.rejects(
    runLocalCompare({
      nCells: 10,
      genes: ["Broken"],
      schema: { kind: "continuous", ext: "f32", quantized: false },
      fetchGene: async () => ({ bytes: new Uint8Array(12), tuple: ["Broken"] }),
      createWorker: () => new FakeWorker(),
      request: { method: "wilcoxon", tieCorrect: false, group: { cells: Uint32Array.of(1) }, reference: "rest" },
      onMessage: () => {},
    }),
    /gene "Broken"/,
  );
});

test("flow control keeps at most WINDOW genes queued; cancel stops fetching and terminates", async () => {
  const ds = dataset(60, 400, 2);
  const stats = {};
  const controller = new AbortController();
  let worker;
  let rows = 0;
  const run = runLocalCompare({
    nCells: ds.nCells,
    genes: ds.genes,
    schema: ds.schema,
    fetchGene: fetcher(ds, { delay: 2, stats }),
    createWorker: () => (worker = new FakeWorker()),
    request: { method: "wilcoxon", tieCorrect: false, group: { cells: GROUP(60) }, reference: "rest" },
    signal: controller.signal,
    onMessage: (m) => {
      if (m.type === "rows") rows += m.names.length;
      if (rows >= 40) controller.abort();
    },
  });
  await assert.rejects(run, (err) => err.name === "AbortError");
  assert.ok(worker.terminated, "the worker is terminated");
  const calls = stats.calls;
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(stats.calls, calls, "no fetch after the cancel");
  assert.ok(calls < 400 && calls <= rows + WINDOW + CONCURRENCY, `fetched ${calls} genes for ${rows} rows`);
  assert.equal(stats.active, 0, "pending fetches were aborted");
});

// ---- the Comparer: server or browser -----------------------------------------------------------

function ndjsonResponse(lines, chunk = 5) {
  const bytes = new TextEncoder().encode(lines.map((l) => JSON.stringify(l)).join("\n") + "\n");
  return new Response(
    new ReadableStream({
      start(c) {
        for (let o = 0; o < bytes.length; o += chunk) c.enqueue(bytes.slice(o, o + chunk));
        c.close();
      },
    }),
    { status: 200, headers: { "Content-Type": "application/x-ndjson" } },
  );
}

const json = (status, body) => new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

const SERVER_LINES = [
  { type: "start", comparisonId: "abc123", method: "wilcoxon", tieCorrect: false, statistic: "Wilcoxon rank-sum test (normal approximation), no tie correction; …", nGenes: 2, groupSize: 100, referenceSize: 200 },
  { type: "rows", done: 2, total: 2, genes: [1, 0], names: ["G1", "G0"], scores: [3, 1], pvals: [0.01, 0.3] },
  { type: "result", genes: [1, 0], names: ["G1", "G0"], scores: [3, 1], pvals: [0.01, 0.3], pvals_adj: [0.02, 0.3], logfoldchanges: [1, null], pct_nz_group: [1, 0.5], pct_nz_reference: [0.1, 0.5], mean_group: [2, 1], mean_reference: [0.1, 1] },
];

function comparer(ds, routes, extra = {}) {
  const requests = [];
  const fetchImpl = async (url, init) => {
    const u = new URL(url);
    requests.push({ path: u.pathname + u.search, init });
    const handler = routes[u.pathname];
    return handler ? handler(u, init, requests) : new Response("404: Not Found", { status: 404 });
  };
  const c = new Comparer({
    nCells: ds.nCells,
    datasetId: "demo",
    mode: "server",
    base: new URL("http://127.0.0.1:9/proxy/8765/"),
    genes: ds.genes,
    schema: ds.schema,
    fetchGene: fetcher(ds),
    createWorker: () => new FakeWorker(),
    fetchImpl,
    ...extra,
  });
  return { c, requests };
}

function comparison(ds) {
  return new Comparison({ method: "wilcoxon", tieCorrect: false, group: { label: "Selection (100 cells)", cells: GROUP(ds.nCells) }, reference: "rest" });
}

test("on a server: credentials from POST _cellucid/viewers, the binary body, rows as they stream", async () => {
  const ds = dataset(300, 2, 3);
  const { c, requests } = comparer(ds, {
    "/proxy/8765/_cellucid/viewers": () => json(200, { viewerId: "v1", viewerToken: "t1" }),
    "/proxy/8765/_cellucid/compare": () => ndjsonResponse(SERVER_LINES),
  });
  const cmp = comparison(ds);
  const seen = [];
  await c.run(cmp, new AbortController().signal, (m) => seen.push([m.type, cmp.result.count]));
  assert.deepEqual(seen, [["start", 0], ["rows", 2], ["result", 2]]);
  assert.equal(cmp.status, "done");
  assert.equal(cmp.source, "server");
  assert.equal(cmp.id, "abc123");
  assert.deepEqual(cmp.result.names, ["G1", "G0"]);
  assert.equal(cmp.result.row(0).pvals_adj, 0.02);
  assert.ok(Number.isNaN(cmp.result.row(1).logfoldchanges));
  assert.equal(requests[0].path, "/proxy/8765/_cellucid/viewers");
  assert.equal(requests[1].path, "/proxy/8765/_cellucid/compare?viewerId=v1&viewerToken=t1&dataset=demo");
  const body = decodeCompareBody(requests[1].init.body, ds.nCells);
  assert.equal(body.header.reference, "rest");
  assert.deepEqual([...body.group], [...GROUP(ds.nCells)]);
  assert.equal(requests[1].init.method, "POST");
  // a second comparison reuses the page credentials
  await c.run(comparison(ds), new AbortController().signal);
  assert.equal(requests.filter((r) => r.path.endsWith("/_cellucid/viewers")).length, 1);
});

test("page credentials the server forgot are renewed once; query credentials are used as they are", async () => {
  const ds = dataset(300, 2, 3);
  let issued = 0;
  const { c, requests } = comparer(ds, {
    "/proxy/8765/_cellucid/viewers": () => json(200, { viewerId: `v${++issued}`, viewerToken: "t" }),
    "/proxy/8765/_cellucid/compare": (u) => (u.searchParams.get("viewerId") === "v1" ? json(404, { status: "error", message: "unknown viewer" }) : ndjsonResponse(SERVER_LINES)),
  });
  await c.run(comparison(ds), new AbortController().signal);
  assert.deepEqual(
    requests.map((r) => r.path.split("?")[0].split("/").pop()),
    ["viewers", "compare", "viewers", "compare"],
  );
  const fixed = comparer(ds, { "/proxy/8765/_cellucid/compare": () => json(403, { status: "error", message: "bad token" }) }, { credentials: { viewerId: "q", viewerToken: "qt" } });
  await assert.rejects(fixed.c.run(comparison(ds), new AbortController().signal), /HTTP 403: bad token/);
  assert.equal(fixed.requests.length, 1);
});

test("no compare route (an older server): the browser computes, and the server is not asked again", async () => {
  const ds = dataset(90, 5, 4);
  const { c, requests } = comparer(ds, { "/proxy/8765/_cellucid/viewers": () => json(200, { viewerId: "v", viewerToken: "t" }) });
  const cmp = comparison(ds);
  await c.run(cmp, new AbortController().signal);
  assert.equal(cmp.status, "done");
  assert.equal(cmp.source, "browser");
  assert.equal(cmp.result.count, 5);
  await c.run(comparison(ds), new AbortController().signal);
  assert.equal(requests.length, 2, "viewers + compare once");
  // a server error is an error, not a fallback
  const failing = comparer(ds, {
    "/proxy/8765/_cellucid/viewers": () => json(200, { viewerId: "v", viewerToken: "t" }),
    "/proxy/8765/_cellucid/compare": () => ndjsonResponse([SERVER_LINES[0], { type: "error", message: "out of memory" }]),
  });
  await assert.rejects(failing.c.run(comparison(ds), new AbortController().signal), /could not compare: out of memory/);
  // a static folder never asks
  const offline = comparer(ds, {}, { mode: "static" });
  await offline.c.run(comparison(ds), new AbortController().signal);
  assert.equal(offline.requests.length, 0);
});
