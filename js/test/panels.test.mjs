// Split view's pure half (app/panelmodel.js), the embedding catalog's parsing
// (app/embeddings.js) and the split/setEmbedding command checks (bridge/protocol.js).

import { test } from "node:test";
import assert from "node:assert/strict";
import { gridLayout, gridShape, homeView, linkCameras, MAX_PANELS, panelAt, PanelModel, parsePanelSpec } from "../viewer/src/app/panelmodel.js";
import { baseKey, parseListing, resolveEmbedding } from "../viewer/src/app/embeddings.js";
import { checkCommand } from "../viewer/src/bridge/protocol.js";

test("grid shape: the arrangement with the largest square cells", () => {
  assert.deepEqual(gridShape(1, 800, 600), { cols: 1, rows: 1 });
  assert.deepEqual(gridShape(2, 1200, 600), { cols: 2, rows: 1 }); // landscape: side by side
  assert.deepEqual(gridShape(2, 600, 1200), { cols: 1, rows: 2 }); // portrait: stacked
  assert.deepEqual(gridShape(3, 1500, 500), { cols: 3, rows: 1 });
  assert.deepEqual(gridShape(4, 900, 700), { cols: 2, rows: 2 });
  assert.deepEqual(gridShape(3, 900, 700), { cols: 2, rows: 2 }); // one empty cell
  assert.throws(() => gridShape(5, 800, 600), /1 to 4 panels/);
  assert.throws(() => gridShape(0, 800, 600), /1 to 4 panels/);
});

test("grid layout: equal integer rectangles that tile the area with gaps, row-major", () => {
  const rects = gridLayout(4, 901, 641, 2);
  assert.equal(rects.length, 4);
  for (const r of rects) for (const v of Object.values(r)) assert.ok(Number.isInteger(v));
  assert.deepEqual(rects[0], { x: 0, y: 0, width: 450, height: 320 });
  assert.equal(rects[1].x, 452);
  assert.equal(rects[1].x + rects[1].width, 901); // reaches the right edge
  assert.equal(rects[2].y, 322);
  assert.equal(rects[3].y + rects[3].height, 641);
  // no overlap between any two
  for (let i = 0; i < 4; i++) {
    for (let j = i + 1; j < 4; j++) {
      const a = rects[i], b = rects[j];
      const overlap = a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
      assert.ok(!overlap, `${i} and ${j} overlap`);
    }
  }
  assert.equal(panelAt(rects, 10, 10), 0);
  assert.equal(panelAt(rects, 800, 600), 3);
  assert.equal(panelAt(rects, 451, 10), -1); // in the gap
  assert.deepEqual(gridLayout(1, 640, 480), [{ x: 0, y: 0, width: 640, height: 480 }]);
});

test("home view fits [-1, 1] into the smaller side (2D/3D) or the width (1D)", () => {
  assert.equal(homeView(460, 920, 2).zoom, Math.log2(460 / 2.3));
  assert.equal(homeView(920, 460, 1).zoom, Math.log2(920 / 2.15));
  const orbit = homeView(400, 400, 3);
  assert.equal(orbit.rotationOrbit, 30);
  assert.ok(Math.abs(orbit.zoom - (Math.log2(400 / 2.3) - 0.35)) < 1e-12);
});

test("linked cameras: same-kind panels follow, others and unlinked ones stay", () => {
  const a = homeView(400, 400, 2);
  const b = homeView(400, 400, 1);
  const c = homeView(400, 400, 3);
  const d = homeView(400, 400, 3);
  const moved = { ...a, target: [0.3, -0.2, 0], zoom: a.zoom + 1 };
  const linked = linkCameras([a, b, c, d], [2, 1, 3, 3], 0, moved, true);
  assert.equal(linked[0], moved);
  assert.deepEqual(linked[1].target, [0.3, -0.2, 0]); // 1D and 2D views are both flat
  assert.equal(linked[1].zoom, a.zoom + 1);
  assert.equal(linked[1].minZoom, b.minZoom); // its own limits
  assert.equal(linked[2], c); // 3D does not follow a 2D panel
  const spun = { ...c, rotationOrbit: 90, zoom: c.zoom - 10 };
  const linked3 = linkCameras([a, b, c, d], [2, 1, 3, 3], 2, spun, true);
  assert.equal(linked3[3].rotationOrbit, 90);
  assert.equal(linked3[3].zoom, d.minZoom); // clamped to its limits
  assert.equal(linked3[0], a);
  const unlinked = linkCameras([a, b], [2, 2], 1, moved, false);
  assert.equal(unlinked[0], a);
  assert.equal(unlinked[1], moved);
  // the source's target array is copied, not shared
  assert.notEqual(linked[1].target, moved.target);
});

test("panel model: panel 0 stays, at most 4, ids never reused", () => {
  const m = new PanelModel();
  assert.equal(m.count, 1);
  assert.equal(m.split, false);
  const p1 = m.add({ field: "cell_type", dim: 2 });
  const p2 = m.add({ field: "CD3E", dim: 3, embedding: "X_tsne" });
  assert.equal(m.split, true);
  assert.deepEqual(m.get(p2.id), { id: 2, field: "CD3E", dim: 3, embedding: "X_tsne" });
  m.add();
  assert.equal(m.count, MAX_PANELS);
  assert.throws(() => m.add(), /at most 4 panels/);
  assert.throws(() => m.remove(0), /cannot be removed/);
  m.remove(p1.id);
  assert.throws(() => m.get(p1.id), /no panel 1/);
  assert.equal(m.add().id, 4); // a new id
  m.update(2, { field: "MS4A1" });
  assert.equal(m.get(2).field, "MS4A1");
  assert.equal(m.clear().length, 3);
  assert.equal(m.split, false);
});

test("panel specs: a field name or {field, dimension, embedding}; bad ones named", () => {
  assert.deepEqual(parsePanelSpec("CD3E"), { field: "CD3E", dim: undefined, embedding: undefined });
  assert.deepEqual(parsePanelSpec({ field: "x", dim: 3, embedding: null }), { field: "x", dim: 3, embedding: null });
  assert.deepEqual(parsePanelSpec({ embedding: "spatial" }), { field: undefined, dim: undefined, embedding: "spatial" });
  assert.throws(() => parsePanelSpec({ feld: "x" }, 2), /panels\[2\] does not take feld/);
  assert.throws(() => parsePanelSpec({ dimension: 4 }), /1, 2 or 3/);
  assert.throws(() => parsePanelSpec(""), /must not be empty/);
  assert.throws(() => parsePanelSpec(7), /field name or/);
});

const dataset = { dimensions: [2, 3] };

test("embedding listing and targets: own points reused, unknown keys and dims refused", () => {
  const listing = parseListing({ embeddings: [{ key: "X_umap", columns: 2, dims: [2, 1] }, { key: "X_pca", columns: 50, dims: [1, 2, 3] }], current: { 2: "X_umap", 3: "X_pca:3" } });
  assert.deepEqual(listing.entries[0].dims, [1, 2]);
  assert.equal(baseKey("X_pca:3"), "X_pca");
  const catalog = { current: listing.current, currentKey: (d) => baseKey(listing.current.get(d) ?? null), dims: (k) => listing.entries.find((e) => e.key === k).dims };
  // the dataset's own 2D points are X_umap: the same bytes, no second copy
  assert.deepEqual(resolveEmbedding(catalog, dataset, "X_umap", null, 2), { key: null, dim: 2 });
  assert.deepEqual(resolveEmbedding(catalog, dataset, "X_umap", 1, 2), { key: "X_umap", dim: 1 });
  // X_pca:3 is the first 3 columns, not the key itself: fetched by key
  assert.deepEqual(resolveEmbedding(catalog, dataset, "X_pca", null, 3), { key: "X_pca", dim: 3 });
  assert.throws(() => resolveEmbedding(catalog, dataset, "X_umap", 3, 2), /cannot be shown in 3D/);
  assert.throws(() => resolveEmbedding(null, dataset, "X_tsne", null, 2), /export folder/);
  assert.deepEqual(resolveEmbedding(null, dataset, null, null, 1), { key: null, dim: 3 });
  assert.throws(() => parseListing({ embeddings: [{ key: "x", dims: [4] }] }), /dims within 1-3/);
});

const env = { nCells: 10, decode: () => new Uint32Array(0) };

test("split and setEmbedding commands are checked before they run", () => {
  const ok = checkCommand({ type: "split", panels: ["a", { field: "b", dimension: 3, embedding: "X_tsne" }], linked: false }, env);
  assert.equal(ok.ok, true);
  assert.deepEqual(ok.command, { type: "split", panels: ["a", { field: "b", dimension: 3, embedding: "X_tsne" }], linked: false });
  assert.deepEqual(checkCommand({ type: "split", panels: null }, env).command, { type: "split", panels: null });
  assert.match(checkCommand({ type: "split", panels: [] }, env).reason, /1 to 4 panels/);
  assert.match(checkCommand({ type: "split", panels: ["a", "b", "c", "d", "e"] }, env).reason, /1 to 4 panels/);
  assert.match(checkCommand({ type: "split", panels: [{ color: "x" }] }, env).reason, /does not take color/);
  assert.match(checkCommand({ type: "split" }, env).reason, /missing panels/);
  assert.deepEqual(checkCommand({ type: "setEmbedding", key: "X_tsne" }, env).command, { type: "setEmbedding", key: "X_tsne", dimension: null });
  assert.deepEqual(checkCommand({ type: "setEmbedding", key: null, dimension: 2 }, env).command, { type: "setEmbedding", key: null, dimension: 2 });
  assert.match(checkCommand({ type: "setEmbedding", key: "X", dimension: 5 }, env).reason, /1, 2 or 3/);
  assert.match(checkCommand({ type: "setEmbedding", key: "" }, env).reason, /non-empty string/);
});
