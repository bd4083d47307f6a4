import assert from "node:assert/strict";
import { test } from "node:test";
import { buildLodOrder, chooseLevel, mortonKeys, sortByKey, stratify, stridePrefix, visiblePrefix } from "../viewer/src/render/lodorder.js";
import { LodView, lodOptionsFromQuery } from "../viewer/src/render/lod.js";
import { rng } from "./helpers.mjs";

/** n points in k gaussian clusters of unequal size (dim 2 or 3); codes = the cluster. */
function clustered(n, dim, k, seed = 7) {
  const r = rng(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
  const weights = Array.from({ length: k }, (_, c) => 1 + c * c); // sizes 1 : 2 : 5 : 10 : ...
  const total = weights.reduce((a, b) => a + b, 0);
  const centers = Array.from({ length: k }, () => Array.from({ length: dim }, () => (r() - 0.5) * 4));
  const pos = new Float32Array(n * dim);
  const codes = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let u = r() * total;
    let c = 0;
    while (u > weights[c]) u -= weights[c++];
    codes[i] = c;
    const spread = 0.05 + 0.1 * (c % 3); // tight and loose clusters
    for (let a = 0; a < dim; a++) pos[i * dim + a] = centers[c][a] + gauss() * spread;
  }
  return { pos, codes };
}

function isPermutation(order, n) {
  if (order.length !== n) return false;
  const seen = new Uint8Array(n);
  for (const i of order) {
    if (i >= n || seen[i]) return false;
    seen[i] = 1;
  }
  return true;
}

/**
 * Largest |count in prefix - expected count| over the groups, in units of the binomial noise of a
 * random sample of that size (sqrt of the expected count): below 3 is as good as random sampling.
 */
function worstShareError(order, groupOf, nGroups, m) {
  const all = new Float64Array(nGroups);
  const pre = new Float64Array(nGroups);
  for (let j = 0; j < order.length; j++) {
    const g = groupOf(order[j]);
    all[g]++;
    if (j < m) pre[g]++;
  }
  let worst = 0;
  for (let g = 0; g < nGroups; g++) {
    if (!all[g]) continue;
    const expected = (all[g] * m) / order.length;
    if (expected < 10) continue; // too few to judge
    worst = Math.max(worst, Math.abs(pre[g] - expected) / Math.sqrt(expected));
  }
  return worst;
}

for (const dim of [2, 3]) {
  const tree = dim === 2 ? "quadtree" : "octree";
  test(`LOD order (${tree}): every cell exactly once, deterministic`, () => {
    const { pos } = clustered(50_000, dim, 8);
    const a = buildLodOrder(pos, dim);
    assert.ok(isPermutation(a, 50_000), "a permutation of the cells");
    assert.deepEqual(buildLodOrder(pos, dim), a, "same input, same order");
    for (const n of [0, 1, 2, 3, 5, 1000, 1025]) assert.ok(isPermutation(buildLodOrder(pos.subarray(0, n * dim), dim), n), `n = ${n}`);
  });

  test(`LOD order (${tree}): each cluster's share of any prefix matches its share overall`, () => {
    const { pos, codes } = clustered(200_000, dim, 8);
    const order = buildLodOrder(pos, dim);
    for (const frac of [0.01, 0.1, 0.37]) {
      const err = worstShareError(order, (i) => codes[i], 8, Math.round(order.length * frac));
      assert.ok(err < 3, `first ${frac * 100}%: a cluster's count is off by ${err.toFixed(2)} sd`);
    }
    // against the index order's first 10%, which is no sample of space at all once sorted by cluster
    const byCluster = Uint32Array.from(order).sort((x, y) => codes[x] - codes[y] || x - y);
    assert.ok(worstShareError(byCluster, (i) => codes[i], 8, order.length / 10) > 10, "the check can fail");
  });

  test(`LOD order (${tree}): the prefix is stratified over space (grid cells of the tree)`, () => {
    const { pos } = clustered(200_000, dim, 5, 11);
    const order = buildLodOrder(pos, dim);
    // grid of 8 per axis over the data's bounds: the tree's depth-3 nodes
    const lo = [Infinity, Infinity, Infinity];
    const hi = [-Infinity, -Infinity, -Infinity];
    for (let i = 0; i < pos.length; i++) {
      const a = i % dim;
      lo[a] = Math.min(lo[a], pos[i]);
      hi[a] = Math.max(hi[a], pos[i]);
    }
    const cellOf = (i) => {
      let g = 0;
      for (let a = 0; a < dim; a++) g = g * 8 + Math.min(7, Math.floor(((pos[i * dim + a] - lo[a]) / (hi[a] - lo[a])) * 8));
      return g;
    };
    // stratified: far tighter than a random sample's noise
    const err = worstShareError(order, cellOf, 8 ** dim, order.length / 20);
    assert.ok(err < 1, `first 5%: a grid cell's count is off by ${err.toFixed(2)} sd`);
  });
}

test("mortonKeys: interleaves the grid coordinates (x in the low bit)", () => {
  const { keys, bits } = mortonKeys(Float32Array.of(0, 0, 1, 0, 0, 1, 1, 1), 2);
  assert.equal(bits, 26);
  const top = (1 << 26) - 1;
  assert.deepEqual(Array.from(keys), [0, top & 0x5555555, top & 0xaaaaaaa, top]);
  assert.throws(() => mortonKeys(new Float32Array(4), 1), /2D or 3D/);
  // NaN coordinates do not break the order
  const order = buildLodOrder(Float32Array.of(NaN, 0, 1, 1, 2, NaN, 0.5, 0.5), 2);
  assert.ok(isPermutation(order, 4));
});

test("sortByKey is a stable sort; stratify spreads the ranks evenly", () => {
  const keys = Uint32Array.of(5, 1, 5, 0, 1 << 20, 1);
  assert.deepEqual(Array.from(sortByKey(keys, 26)), [3, 1, 5, 0, 2, 4]);
  const sorted = Uint32Array.from({ length: 8 }, (_, i) => i);
  assert.deepEqual(Array.from(stratify(sorted)), [0, 4, 2, 6, 1, 5, 3, 7]);
  const five = stratify(Uint32Array.from({ length: 5 }, (_, i) => i));
  assert.deepEqual(Array.from(five), [0, 4, 2, 1, 3]);
});

test("chooseLevel: full detail when still, the finest level within the budget when moving", () => {
  assert.deepEqual(chooseLevel({ visible: 10_000_000, moving: false, movingBudget: 1_000_000 }), { level: 0, count: 10_000_000, budget: Infinity });
  assert.deepEqual(chooseLevel({ visible: 10_000_000, moving: true, movingBudget: 1_000_000 }), { level: 4, count: 625_000, budget: 1_000_000 });
  assert.deepEqual(chooseLevel({ visible: 800_000, moving: true, movingBudget: 1_000_000 }), { level: 0, count: 800_000, budget: 1_000_000 });
  // above a still budget: a level even when still, and moving never draws more than still
  assert.deepEqual(chooseLevel({ visible: 20_000_000, moving: false, movingBudget: 1_000_000, stillBudget: 8_000_000 }), { level: 2, count: 5_000_000, budget: 8_000_000 });
  assert.equal(chooseLevel({ visible: 20_000_000, moving: true, movingBudget: 50_000_000, stillBudget: 8_000_000 }).count, 5_000_000);
  assert.equal(chooseLevel({ visible: 0, moving: true, movingBudget: 10 }).count, 0);
});

test("visiblePrefix: the first visible cells of the order, hidden ones skipped", () => {
  const order = Uint32Array.of(4, 0, 3, 1, 2);
  const out = new Uint32Array(5);
  assert.equal(visiblePrefix(order, null, 3, out), 3);
  assert.deepEqual(Array.from(out.subarray(0, 3)), [4, 0, 3]);
  const mask = Uint8Array.of(1, 1, 1, 0, 0);
  assert.equal(visiblePrefix(order, mask, 2, out), 2);
  assert.deepEqual(Array.from(out.subarray(0, 2)), [0, 1]);
  assert.equal(visiblePrefix(order, mask, 5, out), 3);
});

test("LodView: the subset while moving keeps colours, hides hidden cells, maps picks back", () => {
  const n = 10_000;
  const { pos } = clustered(n, 2, 4);
  const colors = new Uint8Array(n * 4);
  for (let i = 0; i < n; i++) colors.set([i & 255, (i >> 8) & 255, 7, 255], i * 4);
  const mask = new Uint8Array(n).fill(1);
  for (let i = 0; i < n; i += 3) mask[i] = 0;
  const visible = n - Math.ceil(n / 3);
  let settled = 0;
  const lod = new LodView({ movingBudget: 1000, settleMs: 5, onChange: () => settled++ });
  lod.setOrder(buildLodOrder(pos, 2), pos);
  const still = lod.subset({ positions: pos, size: 2, colors, mask, visible });
  assert.equal(still, null, "still: full detail");
  assert.equal(lod.status().drawn, visible);
  lod.moved();
  const sub = lod.subset({ positions: pos, size: 2, colors, mask, visible });
  assert.ok(sub && sub.count <= 1000 && sub.count > 400, `drawn ${sub && sub.count}`);
  assert.equal(lod.status().level, Math.ceil(Math.log2(visible / 1000)));
  for (let j = 0; j < sub.count; j++) {
    const i = sub.cells[j];
    assert.equal(mask[i], 1, "a hidden cell is never drawn");
    assert.deepEqual(Array.from(sub.colors.subarray(j * 4, j * 4 + 4)), Array.from(colors.subarray(i * 4, i * 4 + 4)));
    assert.deepEqual(Array.from(sub.positions.subarray(j * 2, j * 2 + 2)), Array.from(pos.subarray(i * 2, i * 2 + 2)));
  }
  assert.equal(lod.cellOf(5), sub.cells[5], "a pick on the subset names its cell");
  // same inputs: the same arrays (no new upload); new colours: new colour array only
  assert.equal(lod.subset({ positions: pos, size: 2, colors, mask, visible }), sub);
  const recoloured = lod.subset({ positions: pos, size: 2, colors: colors.slice(), mask, visible });
  assert.equal(recoloured.positions, sub.positions);
  assert.notEqual(recoloured.colors, sub.colors);
  return new Promise((resolve) =>
    setTimeout(() => {
      assert.ok(settled >= 1, "settling asks for a redraw");
      assert.equal(lod.subset({ positions: pos, size: 2, colors, mask, visible }), null, "still again: full detail");
      resolve();
    }, 30),
  );
});

test("LodView.sibling: a split-view panel's view with the same budgets and its own motion; detach stops it", () => {
  const first = new LodView({ movingBudget: 300, stillBudget: 5000, settleMs: 5, enabled: true });
  const panel = first.sibling();
  assert.deepEqual([panel.movingBudget, panel.stillBudget, panel.settleMs, panel.enabled], [300, 5000, 5, true]);
  assert.equal(new LodView({ enabled: false }).sibling().enabled, false);
  let redraws = 0;
  panel.onChange = () => redraws++;
  assert.equal(panel.moved(), true, "its camera started moving");
  assert.equal(first.moving, false, "the first panel's view is still");
  panel.detach(); // the panel was removed: no settle timer fires into the scene
  assert.equal(panel.moving, false);
  assert.equal(panel.onChange, null);
  return new Promise((resolve) =>
    setTimeout(() => {
      assert.equal(redraws, 0);
      resolve();
    }, 30),
  );
});

test("lodOptionsFromQuery: budgets from the page's query, bad values named", () => {
  const q = (s) => lodOptionsFromQuery(new URLSearchParams(s));
  assert.deepEqual(q(""), {});
  assert.deepEqual(q("lod=off&lodbudget=5000&lodstill=20000&lodsettle=50"), { enabled: false, movingBudget: 5000, stillBudget: 20000, settleMs: 50 });
  assert.throws(() => q("lodbudget=lots"), /lodbudget=lots: expected a whole number/);
  assert.throws(() => q("lod=maybe"), /lod=on or lod=off/);
});

test("stridePrefix (before the order is built): every step-th visible cell, within the count", () => {
  const out = new Uint32Array(10);
  const mask = Uint8Array.from({ length: 20 }, (_, i) => (i % 4 === 3 ? 0 : 1)); // 15 visible
  const k = stridePrefix(20, mask, 15, 5, out);
  assert.equal(k, 5);
  assert.deepEqual(Array.from(out.subarray(0, k)), [0, 4, 8, 12, 16]);
  const view = new LodView({ movingBudget: 4, stillBudget: 4 });
  view.state = "building";
  const pos = new Float32Array(40);
  const sub = view.subset({ positions: pos, size: 2, colors: new Uint8Array(80), mask, visible: 15 });
  assert.ok(sub && sub.stride && sub.count <= 4);
  for (const i of sub.cells) assert.equal(mask[i], 1);
});
