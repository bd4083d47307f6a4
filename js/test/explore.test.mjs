// What users notice first: the default point size (render/pointsize.js), category labels at
// the centroids (render/labels.js), cell names for the tooltip (data/obsnames.js), and the SVG
// form of the overlays (render/svgoverlays.js, render/overlaystyle.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { POINT_SIZE_MAX, POINT_SIZE_MIN, defaultOpacity, defaultPointSize } from "../viewer/src/render/pointsize.js";
import { LABEL_MAX, categoryMeans, centroidLabels } from "../viewer/src/render/labels.js";
import { OBS_NAMES_BLOCK, ObsNameLoader, decodeObsNames, nameInBlock } from "../viewer/src/data/obsnames.js";
import { overlayStyle, svgPaint } from "../viewer/src/render/overlaystyle.js";
import { overlaySvg } from "../viewer/src/render/svgoverlays.js";

test("defaultPointSize: a power law of n, monotone, clamped, on the slider's 0.1 grid", () => {
  const table = { 100: 5.2, 500: 4, 1000: 3.6, 10000: 2.5, 100000: 1.7, 1000000: 1.2, 10000000: 0.8 };
  for (const [n, size] of Object.entries(table)) assert.equal(defaultPointSize(Number(n)), size, `n = ${n}`);
  let prev = Infinity;
  for (let e = 0; e <= 9; e += 0.25) {
    const s = defaultPointSize(10 ** e);
    assert.ok(s <= prev && s >= POINT_SIZE_MIN && s <= POINT_SIZE_MAX, `10^${e}: ${s}`);
    assert.equal(Math.round(s * 10) / 10, s);
    prev = s;
  }
  assert.equal(defaultPointSize(0), POINT_SIZE_MAX);
  assert.equal(defaultPointSize(NaN), POINT_SIZE_MAX);
  assert.equal(defaultPointSize(1e9), POINT_SIZE_MIN);
  assert.equal(defaultOpacity(1000), 0.9);
  assert.equal(defaultOpacity(1e6), 0.7);
});

test("centroidLabels: manifest centroids, means for the rest, visible categories only", () => {
  const categories = ["a", "b", "c", "d"];
  const codes = Uint8Array.of(0, 0, 1, 1, 1, 2, 255);
  const points = Float32Array.of(0, 0, 2, 0, 10, 10, 12, 10, 14, 13, -5, -5, 99, 99);
  const centroids = { 2: [{ category: "a", position: [1.5, 0.5], n_points: 2 }] };
  const field = { categories, codes, centroids };
  const labels = centroidLabels(field, 2, points, null);
  // largest first: b (3 cells), then a (2), c (1); d has no cells
  assert.deepEqual(labels.map((l) => l.text), ["b", "a", "c"]);
  assert.deepEqual(labels[0].position, [12, 11, 0]); // mean of b's cells
  assert.deepEqual(labels[1].position, [1.5, 0.5, 0]); // the manifest's (trimmed) centroid
  assert.deepEqual(labels.map((l) => l.count), [3, 2, 1]);
  // hidden cells: b keeps one visible cell, c none
  const mask = Uint8Array.of(1, 1, 0, 0, 1, 0, 1);
  assert.deepEqual(centroidLabels(field, 2, points, mask).map((l) => [l.text, l.count]), [["a", 2], ["b", 1]]);
  // 1D: y = 0 (the middle of the jitter band); 3D keeps z
  const one = centroidLabels({ categories: ["x"], codes: Uint8Array.of(0, 0) }, 1, Float32Array.of(1, 3), null);
  assert.deepEqual(one[0].position, [2, 0, 0]);
  const three = centroidLabels({ categories: ["x"], codes: Uint8Array.of(0), centroids: { 3: [{ category: "x", position: [1, 2, 3] }] } }, 3, Float32Array.of(0, 0, 0), null);
  assert.deepEqual(three[0].position, [1, 2, 3]);
  const means = categoryMeans(Uint8Array.of(1, 1), 2, Float32Array.of(1, 2, 3, 4), 2);
  assert.ok(Number.isNaN(means[0]));
  assert.deepEqual(Array.from(means.subarray(2)), [2, 3]);
  const many = Array.from({ length: LABEL_MAX + 50 }, (_, i) => `c${i}`);
  const manyCodes = Uint16Array.from(many, (_, i) => i);
  assert.equal(centroidLabels({ categories: many, codes: manyCodes }, 1, new Float32Array(many.length), null).length, LABEL_MAX);
});

/** The server's answer layout (python/cellucid/server/obs_names.py encode_block). */
function block(start, names) {
  const enc = names.map((s) => new TextEncoder().encode(s));
  const total = enc.reduce((s, b) => s + b.length, 0);
  const out = new Uint8Array(8 + 4 * (names.length + 1) + total);
  const view = new DataView(out.buffer);
  view.setUint32(0, start, true);
  view.setUint32(4, names.length, true);
  let off = 0;
  enc.forEach((b, i) => {
    view.setUint32(8 + 4 * i, off, true);
    out.set(b, 8 + 4 * (names.length + 1) + off);
    off += b.length;
  });
  view.setUint32(8 + 4 * names.length, off, true);
  return out;
}

test("decodeObsNames: the binary block, UTF-8 names, refused when inconsistent", () => {
  const b = decodeObsNames(block(10, ["AAAC-1", "", "Zelle-Ä-😀"]));
  assert.deepEqual([b.start, b.count], [10, 3]);
  assert.equal(nameInBlock(b, 10), "AAAC-1");
  assert.equal(nameInBlock(b, 11), "");
  assert.equal(nameInBlock(b, 12), "Zelle-Ä-😀");
  assert.equal(nameInBlock(b, 13), null);
  assert.equal(nameInBlock(b, 9), null);
  assert.throws(() => decodeObsNames(new Uint8Array(4)), /too short/);
  const bad = block(0, ["ab"]);
  bad[12] = 9; // offsets[1] past the names
  assert.throws(() => decodeObsNames(bad), /do not cover/);
  const big = new Uint8Array(12);
  new DataView(big.buffer).setUint32(4, 1000, true);
  assert.throws(() => decodeObsNames(big), /do not fit/);
});

test("ObsNameLoader: lazy blocks, one request per block, off after a failure", async () => {
  const asked = [];
  const names = Array.from({ length: 25 }, (_, i) => `cell-${i}`);
  let loaded = 0;
  const loader = new ObsNameLoader({
    nCells: 25,
    block: 10,
    fetchBlock: async (start, count) => (asked.push([start, count]), block(start, names.slice(start, start + count))),
    onLoad: () => loaded++,
  });
  assert.equal(loader.get(12), null, "not loaded yet");
  assert.equal(loader.get(13), null);
  await loader.load(1);
  assert.equal(loader.get(12), "cell-12");
  assert.equal(loader.get(19), "cell-19");
  await loader.load(2);
  assert.equal(loader.get(24), "cell-24");
  assert.deepEqual(asked, [[10, 10], [20, 5]]);
  assert.equal(loaded, 2);
  assert.equal(loader.get(-1), null);
  assert.equal(loader.get(25), null);

  const failing = new ObsNameLoader({ nCells: 5, fetchBlock: async () => Promise.reject(new Error("HTTP 404")) });
  assert.equal(failing.get(0), null);
  await failing.load(0);
  assert.equal(failing.available, false);
  assert.match(failing.error.message, /404/);
  assert.equal(failing.get(1), null);
  const off = new ObsNameLoader({ nCells: 5, enabled: false, fetchBlock: () => assert.fail("no request when off") });
  assert.equal(off.get(0), null);
  // a server answering another block than asked is refused
  const wrong = new ObsNameLoader({ nCells: 5, fetchBlock: async () => block(1, ["x"]) });
  await wrong.load(0);
  assert.equal(wrong.available, false);
  assert.equal(OBS_NAMES_BLOCK, 65536);
});

test("overlayStyle and svgPaint: one look for the screen and the SVG", () => {
  const light = overlayStyle({ dark: false, pointSize: 4 });
  const dark = overlayStyle({ dark: true, pointSize: 1 });
  assert.equal(light.highlight.radius, 6);
  assert.equal(dark.highlight.radius, 2.5);
  assert.equal(dark.selection.radius, 3);
  assert.notDeepEqual(light.label.color, dark.label.color);
  assert.deepEqual(svgPaint([255, 0, 10, 51]), { rgb: "rgb(255,0,10)", opacity: 0.2 });
  assert.deepEqual(svgPaint([1, 2, 3]), { rgb: "rgb(1,2,3)", opacity: 1 });
});

test("overlaySvg: visible edges under the points, highlights, selection, arrows, labels over", () => {
  // identity projection: world x, y are screen pixels
  const project = (pos, size) => {
    const n = pos.length / size;
    const out = new Float32Array(2 * n);
    for (let i = 0; i < n; i++) [out[2 * i], out[2 * i + 1]] = [pos[i * size], pos[i * size + 1]];
    return out;
  };
  const scene = {
    dark: false,
    pointSize: 2,
    size: 2,
    project,
    showEdges: true,
    edges: { src: Float32Array.of(10, 10, 0, 50, 50, 0), dst: Float32Array.of(20, 20, 0, 60, 60, 0), length: 2, widths: Float32Array.of(1, 0), shown: 1 },
    highlights: [{ id: "group-1", rgb: [255, 0, 0], positions: Float32Array.of(30, 30, 500, 500), shown: Uint32Array.of(3, 4) }],
    selectionPositions: Float32Array.of(40, 40),
    showVectors: true,
    vectors: { src: Float32Array.of(5, 5, 0), dst: Float32Array.of(8, 9, 0), length: 1 },
    labels: [{ text: "T <cells>", position: [70, 70, 0] }],
  };
  const { under, over } = overlaySvg(scene, { width: 100, height: 100 });
  assert.match(under, /^<g class="underlays"><path class="knn-edges"[^>]* d="M10\.0 10\.0L20\.0 20\.0"\/><\/g>$/);
  assert.match(over, /<g class="highlight" data-group="group-1" fill="rgb\(255,0,0\)"[^>]*><circle cx="30\.0" cy="30\.0" r="3"\/><\/g>/);
  assert.ok(!over.includes('cx="500.0"'), "marks outside the plot are left out");
  assert.match(over, /<g class="selection" fill="none"[^>]*><circle cx="40\.0" cy="40\.0" r="3\.8"\/><\/g>/);
  assert.match(over, /<path class="vectors"[^>]* d="M5\.0 5\.0L8\.0 9\.0"\/>/);
  assert.match(over, /<g class="labels"[^>]*paint-order="stroke"><text x="70\.0" y="70\.0">T &lt;cells&gt;<\/text><\/g>/);
  // nothing shown: empty fragments
  const empty = overlaySvg({ ...scene, showEdges: false, highlights: [], selectionPositions: null, showVectors: false, labels: null }, { width: 100, height: 100 });
  assert.deepEqual(empty, { under: "", over: "" });
});
