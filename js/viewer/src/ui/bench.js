// ?bench=N: N synthetic cells generated in the page (no server), with fps and load time
// shown in the page and exposed on window.__cellucid.bench for tests. `benchSelection` times
// the selection tools (category pick, kNN grow, proximity) against a plain recolour
// (?bench=N&animate=0&selectbench=1, or window.__cellucid.benchSelection()).

import { h } from "./dom.js";

/** A dataset-shaped object held in memory (the same interface as app/dataset.js Dataset). */
export function syntheticDataset(n, dim) {
  const t0 = performance.now();
  let seed = 12345;
  const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296);
  const gauss = () => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
  const k = 24;
  const centers = Array.from({ length: k }, () => [gauss() * 0.35, gauss() * 0.35, gauss() * 0.35]);
  const pts = new Float32Array(n * dim);
  const codes = new Uint8Array(n);
  const score = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const c = Math.floor(rand() * k);
    codes[i] = c;
    for (let a = 0; a < dim; a++) pts[i * dim + a] = centers[c][a] + gauss() * 0.06;
    score[i] = pts[i * dim] + 0.3 * gauss();
  }
  const categories = Array.from({ length: k }, (_, i) => `cluster ${i}`);
  const fields = [
    { key: "score", kind: "continuous" },
    { key: "cluster", kind: "category", categories, codesDtype: "uint8", missing: 255 },
  ];
  const data = {
    score: { key: "score", kind: "continuous", source: "obs", values: score },
    cluster: { key: "cluster", kind: "category", source: "obs", codes, categories, missing: 255 },
  };
  const dims = [dim];
  const knn = syntheticKnn(codes, k);
  return {
    generateMs: performance.now() - t0,
    id: `bench-${n}`,
    n,
    dimensions: dims,
    defaultDimension: dim,
    identity: { id: `bench-${n}`, name: `Benchmark: ${n.toLocaleString("en-US")} synthetic cells`, description: "", stats: { n_cells: n, n_genes: 0, n_obs_fields: 2, has_connectivity: true } },
    fields,
    fieldByKey: new Map(fields.map((f) => [f.key, f])),
    genes: [],
    geneIndex: new Map(),
    vectorFields: [],
    connectivity: { n_edges: knn.nEdges },
    points: new Map([[dim, pts]]),
    loadPoints: async (d) => pts,
    loadField: async (key) => data[key],
    loadGene: async () => {
      throw new Error("no genes in bench mode");
    },
    loadEdges: async () => knn.edges(),
    loadVectors: async () => null,
  };
}

/** Neighbours of a cell in its cluster's order, on each side (the synthetic kNN graph). */
export const KNN_REACH = 8;

/**
 * The synthetic kNN graph of `syntheticDataset`: cells are put in order cluster by cluster, and
 * each cell's 15 nearest neighbours are the 7 before it and the 8 after it in its cluster (the
 * graph of a kNN search with k = 15). Symmetrised as SPEC §2.8 does, that is the cells up to 8
 * places away on either side: 8 undirected edges a cell, 16 neighbours. `edges()` builds them
 * ({src, dst} Uint32Array, src < dst) on first use.
 */
export function syntheticKnn(codes, k) {
  const n = codes.length;
  const sizes = new Uint32Array(k);
  for (let i = 0; i < n; i++) sizes[codes[i]]++;
  let nEdges = 0;
  for (const s of sizes) for (let o = 1; o <= KNN_REACH; o++) nEdges += Math.max(0, s - o);
  let built = null;
  const edges = () => {
    if (built) return built;
    const start = new Uint32Array(k + 1);
    for (let c = 0; c < k; c++) start[c + 1] = start[c] + sizes[c];
    const fill = start.slice(0, k);
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[fill[codes[i]]++] = i;
    const src = new Uint32Array(nEdges);
    const dst = new Uint32Array(nEdges);
    let e = 0;
    for (let c = 0; c < k; c++) {
      for (let p = start[c]; p < start[c + 1]; p++) {
        for (let q = p + 1; q <= p + KNN_REACH && q < start[c + 1]; q++) {
          const a = order[p];
          const b = order[q];
          src[e] = a < b ? a : b;
          dst[e++] = a < b ? b : a;
        }
      }
    }
    built = { src, dst, weights: null };
    return built;
  };
  return { nEdges, edges };
}

/** Draw the scene now and wait until the GPU has finished it (a one-pixel read). */
function drawAndFinish(viewer) {
  const gl = viewer.scene.drawNow().getContext("webgl2");
  if (gl) gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array(4));
}

function median(values) {
  const sorted = values.slice().sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}

/**
 * Time `step` (which changes what is drawn) `repeat` times after `prepare`: computeMs until it
 * returned, redrawMs until the new picture was drawn and finished on the GPU (medians).
 */
async function timeStep(viewer, step, { prepare = () => {}, repeat = 3 } = {}) {
  const compute = [];
  const redraw = [];
  for (let r = 0; r < repeat; r++) {
    await prepare();
    drawAndFinish(viewer);
    const t0 = performance.now();
    await step();
    const t1 = performance.now();
    drawAndFinish(viewer);
    compute.push(t1 - t0);
    redraw.push(performance.now() - t0);
  }
  const round = (v) => Math.round(v * 10) / 10;
  return { computeMs: round(median(compute)), redrawMs: round(median(redraw)), cells: viewer.selection.length };
}

/**
 * The selection tools at the bench size against a plain recolour: category pick (the first
 * cell's cluster), proximity (a disc / ball of radius 0.1 around the first cell), kNN grow
 * (1 hop from that proximity selection, on the 15-neighbour graph; the one-time graph build is
 * `knnBuildMs`). Each: median compute and redraw (until the new picture is drawn) time in ms,
 * and the redraw time as a ratio to the recolour's. Run it with the camera still (?animate=0).
 */
export async function benchSelection(viewer, { repeat = 3 } = {}) {
  const clear = () => viewer.setSelection(new Uint32Array(0), "bench");
  const center = Array.from(viewer.scene.positions.subarray(0, viewer.scene.size));
  const disc = () => viewer.selectWithin(center, 0.1, "replace");
  const recolor = await timeStep(viewer, () => viewer.recolor(), { prepare: clear, repeat });
  const categoryPick = await timeStep(viewer, () => viewer.pickCategory(0, "replace"), { prepare: clear, repeat });
  const proximity = await timeStep(viewer, disc, { prepare: clear, repeat });
  disc();
  const t0 = performance.now();
  await viewer.growSelection(0); // loads the graph and builds its rows, selects nothing new
  const knnBuildMs = Math.round(performance.now() - t0);
  const knnGrow = await timeStep(viewer, () => viewer.growSelection(1), { prepare: disc, repeat });
  clear();
  const out = { n: viewer.nCells, dim: viewer.dim, edges: viewer.dataset.connectivity.n_edges, knnBuildMs, recolor, categoryPick, proximity, knnGrow };
  for (const key of ["categoryPick", "proximity", "knnGrow"]) out[key].ratio = Math.round((out[key].redrawMs / recolor.redrawMs) * 100) / 100;
  return out;
}

/** fps meter + camera animation; returns the stats object it keeps updating. */
export function runBenchHud(viewer, stage, { startedAt, animate = true }) {
  const stats = { n: viewer.nCells, dim: viewer.dim, loadMs: null, fps: null, frames: 0 };
  const hud = h("div.hud", { "aria-live": "off" });
  stage.append(hud);
  let first = true;
  let times = [];
  let firstAt = null;
  const WINDOW_MS = 5000;
  viewer.on("frame", () => {
    const t = performance.now();
    if (first) {
      first = false;
      firstAt = t;
      stats.loadMs = Math.round(t - startedAt);
    }
    stats.frames++;
    times.push(t);
    while (times.length && times[0] < t - WINDOW_MS) times.shift();
  });
  const tick = () => {
    // Frames drawn in the last 5 s (or since the first frame), per second.
    const t = performance.now();
    while (times.length && times[0] < t - WINDOW_MS) times.shift();
    if (firstAt !== null && t - firstAt > 1000) stats.fps = Math.round((times.length / (Math.min(WINDOW_MS, t - firstAt) / 1000)) * 10) / 10;
    hud.textContent = `${stats.n.toLocaleString("en-US")} points · ${stats.dim}D · load ${stats.loadMs ?? "…"} ms · ${stats.fps ?? "…"} fps`;
  };
  setInterval(tick, 500);
  if (animate) {
    const scene = viewer.scene;
    const step = () => {
      if (viewer.frozen) return;
      const vs = { ...scene.viewState };
      if (viewer.dim === 3) vs.rotationOrbit = (vs.rotationOrbit || 0) + 0.5;
      else vs.target = [Math.sin(performance.now() / 1500) * 0.05, 0, 0];
      scene.viewState = vs;
      scene.deck && scene.deck.setProps({ viewState: vs });
      requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  }
  return stats;
}
