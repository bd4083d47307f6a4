// Filters: masks (filters/mask.js), the filter model (filters/model.js), histograms
// (filters/histogram.js) and the viewer's one visibility mask (filters/visibility.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { categoryCounts, categoryMask, combineMasks, countVisible, edgeVisibility, keepVisible, radiiFromMask, rangeMask } from "../viewer/src/filters/mask.js";
import { FilterSet, categoryFilter, describeFilter, filterId, isNoop, matchCategories, onlyCategories, rangeFilter, toggleCategory } from "../viewer/src/filters/model.js";
import { barHeights, binEdge, binOf, histogram, snapValue, valueAt, xOf } from "../viewer/src/filters/histogram.js";
import { Visibility } from "../viewer/src/filters/visibility.js";
import { rng } from "./helpers.mjs";

const bits = (a) => Array.from(a).join("");

test("categoryMask: included codes, missing sentinel and codes beyond k", () => {
  const codes = Uint8Array.of(0, 1, 2, 255, 1, 7);
  assert.equal(bits(categoryMask(codes, [1, 0, 1], true)), "101101");
  assert.equal(bits(categoryMask(codes, [1, 0, 1], false)), "101000");
  const wide = Uint16Array.of(0, 300, 65535, 2);
  const include = new Uint8Array(301);
  include[300] = 1;
  assert.equal(bits(categoryMask(wide, include, false)), "0100");
  const out = new Uint8Array(6);
  assert.equal(categoryMask(codes, [0, 1, 0], false, out), out);
  assert.throws(() => categoryMask(codes, [1], true, new Uint8Array(5)), /needs 6/);
});

test("rangeMask: inclusive bounds, open ends, NaN never passes", () => {
  const v = Float32Array.of(-1, 0, 0.5, 1, 2, NaN, Infinity, -Infinity);
  assert.equal(bits(rangeMask(v, 0, 1)), "01110000");
  assert.equal(bits(rangeMask(v, 0.5, Infinity)), "00111010");
  assert.equal(bits(rangeMask(v, -Infinity, Infinity)), "11111011");
});

test("combineMasks: AND of base and filters, word path and tail, count", () => {
  for (const n of [0, 1, 3, 4, 5, 17, 1001]) {
    const r = rng(n + 1);
    const base = Uint8Array.from({ length: n }, () => (r() < 0.8 ? 1 : 0));
    const masks = [0, 1, 2].map(() => Uint8Array.from({ length: n }, () => (r() < 0.6 ? 1 : 0)));
    const expected = base.map((b, i) => b & masks[0][i] & masks[1][i] & masks[2][i]);
    const out = new Uint8Array(n);
    const count = combineMasks(n, base, masks, out);
    assert.deepEqual(out, expected);
    assert.equal(count, expected.reduce((s, x) => s + x, 0));
    assert.equal(countVisible(out), count);
    // null base = all visible; no masks = the base
    assert.equal(combineMasks(n, null, [], out), n);
    assert.equal(combineMasks(n, base, [], out), base.reduce((s, x) => s + x, 0));
  }
  // unaligned views take the byte path and still agree
  const buf = new Uint8Array(11).fill(1);
  const odd = buf.subarray(1, 10);
  const m = Uint8Array.of(1, 0, 1, 0, 1, 0, 1, 0, 1);
  assert.equal(combineMasks(9, null, [m], odd), 5);
  assert.deepEqual(odd, m);
  assert.throws(() => combineMasks(3, null, [new Uint8Array(2)], new Uint8Array(3)), /filter mask/);
});

test("keepVisible, radiiFromMask, categoryCounts, edgeVisibility", () => {
  const mask = Uint8Array.of(1, 0, 1, 1, 0);
  const cells = Uint32Array.of(0, 1, 3, 4);
  assert.deepEqual(keepVisible(cells, mask), Uint32Array.of(0, 3));
  const all = Uint32Array.of(0, 2);
  assert.equal(keepVisible(all, mask), all, "no copy when every cell is visible");
  assert.equal(keepVisible(cells, null), cells);
  assert.deepEqual(radiiFromMask(mask), Float32Array.of(1, 0, 1, 1, 0));
  assert.deepEqual(categoryCounts(Uint8Array.of(0, 1, 1, 255, 0), 2, null), Uint32Array.of(2, 2, 1));
  assert.deepEqual(categoryCounts(Uint8Array.of(0, 1, 1, 255, 0), 2, mask), Uint32Array.of(1, 1, 1));
  const src = Uint32Array.of(0, 0, 1, 2, 3);
  const dst = Uint32Array.of(2, 1, 3, 3, 4);
  const vis = edgeVisibility(src, dst, mask);
  assert.deepEqual(vis.widths, Float32Array.of(1, 0, 0, 1, 0));
  assert.equal(vis.count, 2);
  const strided = edgeVisibility(src, dst, mask, 2); // edges 0, 2, 4
  assert.deepEqual(strided.widths, Float32Array.of(1, 0, 0));
  assert.equal(edgeVisibility(src, dst, null).count, 5);
});

test("filter constructors, no-ops, descriptions", () => {
  const cats = ["B cells", "NK", "T cells", "Mono", "DC"];
  const only = onlyCategories("cell_type", cats, ["NK", "DC"]);
  assert.equal(only.id, "obs:cell_type");
  assert.deepEqual(only.include, Uint8Array.of(0, 1, 0, 0, 1));
  assert.equal(only.includeMissing, false);
  assert.equal(describeFilter(only), "cell_type: NK, DC");
  const notTwo = categoryFilter("cell_type", cats, [1, 1, 0, 1, 0]);
  assert.equal(describeFilter(notTwo), "cell_type: not T cells, DC");
  const many = Array.from({ length: 20 }, (_, i) => `c${i}`);
  assert.equal(describeFilter(categoryFilter("x", many, many.map((_, i) => (i < 10 ? 1 : 0)))), "x: 10 of 20 categories");
  assert.equal(describeFilter(categoryFilter("x", many, new Uint8Array(20))), "x: none");
  assert.ok(isNoop(categoryFilter("x", cats, [1, 1, 1, 1, 1])));
  assert.ok(!isNoop(categoryFilter("x", cats, [1, 1, 1, 1, 1], false)));
  assert.throws(() => categoryFilter("x", cats, [1]), /5 categories/);

  const gene = rangeFilter("CD3E", "var", 1, undefined);
  assert.deepEqual([gene.id, gene.lo, gene.hi], ["var:CD3E", 1, Infinity]);
  assert.equal(describeFilter(gene), "CD3E ≥ 1");
  assert.equal(describeFilter(rangeFilter("n_genes", "obs", NaN, 500)), "n_genes ≤ 500");
  assert.equal(describeFilter(rangeFilter("n_genes", "obs", 3000, 500)), "500 ≤ n_genes ≤ 3000");
  assert.equal(describeFilter(rangeFilter("q", "obs", 0.000012345, 1234567)), "1.23e-5 ≤ q ≤ 1.23e+6");
  assert.ok(isNoop(rangeFilter("q", "obs", -Infinity, Infinity)));
  assert.equal(filterId("var", "a"), "var:a");
  assert.equal(filterId("obs", "a"), "obs:a");
});

test("toggleCategory: the legend's clicks as a filter", () => {
  const cats = ["a", "b", "c"];
  let f = toggleCategory(null, "k", cats, 1);
  assert.deepEqual(f.include, Uint8Array.of(1, 0, 1));
  assert.equal(f.includeMissing, true);
  f = toggleCategory(f, "k", cats, 1);
  assert.ok(isNoop(f));
  assert.deepEqual(toggleCategory(f, "k", cats, 2, true).include, Uint8Array.of(0, 0, 1));
  assert.deepEqual(toggleCategory(f, "k", cats, "none").include, Uint8Array.of(0, 0, 0));
  const only = onlyCategories("k", cats, ["a"]);
  const more = toggleCategory(only, "k", cats, 1);
  assert.deepEqual(more.include, Uint8Array.of(1, 1, 0));
  assert.equal(more.includeMissing, false, "keeps the filter's missing rule");
  assert.ok(isNoop(toggleCategory(only, "k", cats, "all")), '"show all" shows every cell');
});

test("matchCategories: case-insensitive substring, all for an empty query", () => {
  const cats = ["CD4 T", "CD8 T", "B", "NK", "cd14 mono"];
  assert.deepEqual(matchCategories(cats, "cd"), Uint32Array.of(0, 1, 4));
  assert.deepEqual(matchCategories(cats, "  T "), Uint32Array.of(0, 1));
  assert.equal(matchCategories(cats, "").length, 5);
  assert.equal(matchCategories(cats, "zzz").length, 0);
});

test("FilterSet: one mask per filter, replace, remove, no-op removes, apply", () => {
  const codes = Uint8Array.of(0, 1, 2, 0, 1, 2, 255, 0);
  const values = Float32Array.of(0, 1, 2, 3, 4, 5, 6, NaN);
  const set = new FilterSet(8);
  assert.equal(set.apply(null, new Uint8Array(8)), 8);
  assert.ok(set.set(onlyCategories("c", ["x", "y", "z"], ["x", "y"]), codes));
  const out = new Uint8Array(8);
  assert.equal(set.apply(null, out), 5);
  assert.equal(bits(out), "11011001");
  set.set(rangeFilter("v", "obs", 1, 4), values);
  assert.equal(set.apply(null, out), 3);
  assert.equal(bits(out), "01011000");
  // replacing a filter keeps its place and recomputes only its mask
  const before = set.list().map((f) => f.id);
  set.set(rangeFilter("v", "obs", 0, 10), values);
  assert.deepEqual(set.list().map((f) => f.id), before);
  assert.equal(set.apply(null, out), 4); // NaN is outside every range
  // the base layer (setVisibility) combines with the filters
  const base = Uint8Array.of(0, 1, 1, 1, 1, 1, 1, 1);
  assert.equal(set.apply(base, out), 3);
  // a no-op filter removes the field's filter
  set.set(rangeFilter("v", "obs", -Infinity, Infinity), values);
  assert.equal(set.size, 1);
  assert.ok(set.remove("obs:c"));
  assert.ok(!set.remove("obs:c"));
  assert.equal(set.apply(null, out), 8);
  set.set(rangeFilter("v", "var", 2, 2), values);
  assert.ok(set.clear() && !set.clear());
  assert.throws(() => set.set(rangeFilter("v", "obs", 0, 1), new Float32Array(3)), /values of 8 cells/);
  assert.throws(() => set.set({ id: "x", kind: "weird", include: [0] }, codes), /unknown filter kind/);
});

test("Visibility: setVisibility layer AND filters; radii as new views of one buffer", () => {
  const vis = new Visibility(6);
  assert.equal(vis.update(), 6);
  vis.setBase(Uint32Array.of(0, 5), false);
  assert.equal(vis.update(), 4);
  vis.filters.set(rangeFilter("v", "obs", 2, 10), Float32Array.of(0, 1, 2, 3, 4, 5));
  assert.equal(vis.update(), 3);
  assert.ok(!vis.isVisible(0) && !vis.isVisible(1) && vis.isVisible(2) && !vis.isVisible(5));
  // showing every cell again through the bridge leaves the filters alone
  vis.setBase(null, true);
  assert.equal(vis.update(), 4);
  const r1 = vis.radii();
  const r2 = vis.radii();
  assert.notEqual(r1, r2, "a new reference each time (deck uploads on a new array)");
  assert.equal(r1.buffer, r2.buffer, "one buffer: 4 bytes a cell, not 8");
  assert.deepEqual(Array.from(r2), [0, 0, 1, 1, 1, 1]);
  vis.setBase(Uint32Array.of(2), false);
  vis.update();
  assert.deepEqual(Array.from(vis.radii()), [0, 0, 0, 1, 1, 1]);
});

test("histogram: bins, range, outside counts, NaN and the mask", () => {
  const v = Float32Array.of(0, 0.1, 0.5, 0.99, 1, NaN, Infinity, 2);
  const hAll = histogram(v, { bins: 4 });
  assert.deepEqual([hAll.lo, hAll.hi], [0, 2]);
  assert.deepEqual(Array.from(hAll.counts), [2, 2, 1, 1]);
  assert.equal(hAll.nonFinite, 2);
  assert.equal(hAll.total, 8);
  assert.equal(hAll.max, 2);
  const h = histogram(v, { bins: 2, lo: 0, hi: 1 });
  assert.deepEqual(Array.from(h.counts), [2, 3]); // 1 falls in the last bin
  assert.equal(h.above, 1);
  const masked = histogram(v, { bins: 2, lo: 0, hi: 1, mask: Uint8Array.of(1, 1, 0, 0, 0, 1, 0, 0) });
  assert.deepEqual([Array.from(masked.counts), masked.nonFinite, masked.total], [[2, 0], 1, 3]);
  const none = histogram(Float32Array.of(NaN), { bins: 3 });
  assert.deepEqual([none.lo, none.hi, none.max], [0, 1, 0]);
  const flat = histogram(Float32Array.of(5, 5, 5), { bins: 3 });
  assert.deepEqual(Array.from(flat.counts), [3, 0, 0]);
  assert.equal(binOf(hAll, 1.2), 2);
  assert.equal(binOf(hAll, -5), 0);
  assert.equal(binOf(hAll, 99), 3);
  assert.equal(binEdge(hAll, 1), 0.5);
  assert.equal(binEdge(hAll, 4), 2);
});

test("histogram helpers: bar heights, brush pixels ↔ values, snapping", () => {
  const h = histogram(Float32Array.of(0, 0, 0, 0, 1, 3), { bins: 3 });
  assert.deepEqual(Array.from(h.counts), [4, 1, 1]);
  const bars = barHeights(h, 40);
  assert.equal(bars[0], 40);
  assert.equal(bars[1], 20); // sqrt scale: 1/4 of the count is half the height
  assert.deepEqual(Array.from(barHeights(histogram(new Float32Array(0)), 10)), new Array(64).fill(0));
  assert.equal(valueAt(h, 0, 300), 0);
  assert.equal(valueAt(h, 150, 300), 1.5);
  assert.equal(valueAt(h, 999, 300), 3);
  assert.equal(xOf(h, 1.5, 300), 150);
  assert.equal(xOf(h, -1, 300), 0);
  assert.equal(snapValue({ lo: -14.2, hi: 14.3 }, 7.51834, 256), 7.5);
  assert.equal(snapValue({ lo: 0, hi: 1 }, 0.123456, 256), 0.123);
  assert.equal(snapValue({ lo: 0, hi: 5000 }, 1234.5, 256), 1230);
  assert.equal(snapValue({ lo: 1, hi: 1 }, 0.3333, 256), 0.3333);
});

test("a million cells: masks and combining stay far under 100 ms", () => {
  const n = 1_000_000;
  const r = rng(9);
  const codes = Uint8Array.from({ length: n }, () => Math.floor(r() * 30));
  const values = Float32Array.from({ length: n }, () => r() * 10);
  const set = new FilterSet(n);
  const out = new Uint8Array(n);
  const include = Uint8Array.from({ length: 30 }, (_, c) => (c % 3 ? 1 : 0));
  const t0 = performance.now();
  set.set(categoryFilter("c", Array.from({ length: 30 }, (_, c) => `c${c}`), include), codes);
  set.set(rangeFilter("v", "obs", 2, 8), values);
  const count = set.apply(null, out);
  const ms = performance.now() - t0;
  let expected = 0;
  for (let i = 0; i < n; i++) expected += include[codes[i]] && values[i] >= 2 && values[i] <= 8 ? 1 : 0;
  assert.equal(count, expected);
  // only a guard against gross regressions (a shared, loaded 2-core machine runs this);
  // js/tools/bench_filters.mjs measures properly
  assert.ok(ms < 2000, `${ms.toFixed(1)} ms`);
});

test("filter jobs: histogram in a worker, inline without one, inline after a worker error", async () => {
  const { FilterJobs } = await import("../viewer/src/filters/client.js");
  const { runJob } = await import("../viewer/src/filters/jobs.js");
  const values = Float32Array.of(0, 1, 2, 3, NaN);
  const expected = histogram(values, { bins: 4 });
  const inline = new FilterJobs();
  assert.deepEqual((await inline.histogram(values, { bins: 4 })).hist, expected);
  // a stand-in worker: structured clone + the worker entry's message handling
  const posted = [];
  class FakeWorker {
    postMessage(msg, transfer) {
      posted.push(transfer.length);
      const data = structuredClone(msg);
      setTimeout(() => this.onmessage({ data: { id: data.id, answer: runJob(data.job) } }), 0);
    }
    terminate() {}
  }
  const jobs = new FilterJobs({ createWorker: () => new FakeWorker() });
  const [a, b] = await Promise.all([jobs.histogram(values, { bins: 4 }), jobs.histogram(values, { bins: 2, lo: 0, hi: 1 })]);
  assert.deepEqual(a.hist, expected);
  assert.deepEqual(Array.from(b.hist.counts), [1, 1]);
  assert.deepEqual(posted, [1, 1], "the values go as a transferred copy");
  assert.equal(values.length, 5, "the caller keeps its array");
  // a worker that fails: its pending job and every later one run inline
  class BrokenWorker {
    postMessage() {
      setTimeout(() => this.onerror({ message: "boom" }), 0);
    }
    terminate() {}
  }
  const broken = new FilterJobs({ createWorker: () => new BrokenWorker() });
  assert.deepEqual((await broken.histogram(values, { bins: 4 })).hist, expected);
  assert.equal(broken.broken, true);
  assert.deepEqual((await broken.histogram(values, { bins: 4 })).hist, expected);
  const failing = new FilterJobs({ createWorker: () => { throw new Error("CSP"); } });
  assert.deepEqual((await failing.histogram(values, { bins: 4 })).hist, expected);
  assert.throws(() => runJob({ op: "nope" }), /unknown filters job/);
});

test("filter masks in the filters worker's job equal the page's; FilterSet.setMask takes them", async () => {
  const { runJob } = await import("../viewer/src/filters/jobs.js");
  const { FilterSet, filterMask, onlyCategories, rangeFilter } = await import("../viewer/src/filters/model.js");
  const { FilterJobs } = await import("../viewer/src/filters/client.js");
  const codes = Uint8Array.from({ length: 1000 }, (_, i) => i % 5);
  const values = Float32Array.from({ length: 1000 }, (_, i) => i / 1000);
  const cat = onlyCategories("c", ["a", "b", "c", "d", "e"], ["b", "d"]);
  const range = rangeFilter("v", "obs", 0.25, 0.5);
  assert.deepEqual(runJob({ op: "mask", values: codes, filter: cat }).mask, filterMask(cat, codes));
  const jobs = new FilterJobs(); // no worker: the same job on this thread
  const mask = await jobs.mask(range, values);
  assert.equal(mask.reduce((a, b) => a + b, 0), 251);
  const set = new FilterSet(1000);
  set.setMask(range, values, mask);
  set.set(cat, codes);
  const out = new Uint8Array(1000);
  const count = set.apply(null, out);
  let expected = 0;
  for (let i = 0; i < 1000; i++) {
    const keep = values[i] >= 0.25 && values[i] <= 0.5 && (i % 5 === 1 || i % 5 === 3) ? 1 : 0;
    assert.equal(out[i], keep);
    expected += keep;
  }
  assert.equal(count, expected);
  assert.ok(expected > 50);
  assert.throws(() => set.setMask(range, values, new Uint8Array(3)), /mask of 1000 cells/);
});
