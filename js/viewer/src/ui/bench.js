// ?bench=N: N synthetic cells generated in the page (no server), with fps and load time
// shown in the page and exposed on window.__cellucid.bench for tests.
// &measure=filters also times a filter change against a plain recolour (ui/benchfilters.js)
// once the page has drawn for a second, with the camera still (&rounds=R, default 7, median);
// bench.filters holds the result.
// shown in the page and exposed on window.__cellucid.bench for tests (bench.lod: the level of
// detail now; &lodbench=1: frame times with and without it, ui/benchlod.js). `benchSelection` times
// the selection tools (category pick, kNN grow, proximity) against a plain recolour
// (?bench=N&animate=0&selectbench=1, or window.__cellucid.benchSelection()).

import { h } from "./dom.js";
import { measureFilterChange } from "./benchfilters.js";

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
    loadedFields: () => [data.score, data.cluster],
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

const raf = () => new Promise((resolve) => requestAnimationFrame(resolve));

/** Resolves true when the viewer has drawn a frame, false after `ms` without one. */
function nextFrame(viewer, ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => (off(), resolve(false)), ms);
    const off = viewer.on("frame", () => (clearTimeout(timer), off(), resolve(true)));
  });
}

/** Wait until nothing is left to draw and the last frame is on screen. */
async function quiet(viewer) {
  for (let i = 0; i < 1000; i++) {
    await raf();
    await raf();
    const deck = viewer.scene.deck;
    if (!deck || !deck.needsRedraw({ clearRedrawFlags: false })) return;
  }
}

function median(values) {
  const sorted = values.slice().sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}

/**
 * Time `step` (which changes what is drawn) `repeat` times, each after `prepare` and a quiet
 * screen: computeMs until it returned (the new picture handed to deck.gl), frameMs until the
 * viewer drew it (its draw calls issued), shownMs until the next animation frame (the browser
 * presented it). Medians. With `frames: false` only computeMs is measured (no drawing waited for).
 */
async function timeStep(viewer, step, { prepare = () => {}, repeat = 3, frames = true, timeoutMs = 600_000 } = {}) {
  const times = { compute: [], frame: [], shown: [] };
  for (let r = 0; r < repeat; r++) {
    await prepare();
    if (frames) await quiet(viewer);
    const drawn = frames ? nextFrame(viewer, timeoutMs) : null;
    const t0 = performance.now();
    await step();
    times.compute.push(performance.now() - t0);
    if (!frames) continue;
    if (!(await drawn)) throw new Error(`no frame within ${timeoutMs} ms`);
    times.frame.push(performance.now() - t0);
    await raf();
    times.shown.push(performance.now() - t0);
  }
  const round = (v) => (v.length ? Math.round(median(v) * 10) / 10 : null);
  return { computeMs: round(times.compute), frameMs: round(times.frame), shownMs: round(times.shown), cells: viewer.selection.length };
}

/**
 * The selection tools at the bench size against a plain recolour: category pick (the first
 * cell's cluster), proximity (a disc / ball of radius 0.1 around the first cell), kNN grow
 * (1 hop from that proximity selection, on the 15-neighbour graph, in the select worker; the
 * one-time load of the graph is `knnLoadMs`, its rows' build in the worker `knnBuildMs`). Each
 * step: median compute, frame and shown times (timeStep) and `ratio`, its shownMs over the
 * recolour's (computeMs over the recolour's with `frames: false`). Run it with the camera still
 * (?animate=0).
 */
export async function benchSelection(viewer, { repeat = 3, frames = true } = {}) {
  // compute only: deck.gl keeps updating its layers but draws nothing (software WebGL would
  // hold the page while it draws, and that wait would land in the timings)
  const deck = viewer.scene.deck;
  await quiet(viewer);
  if (!frames) deck.setProps({ _customRender: () => {} });
  try {
    return await measureSteps(viewer, { repeat, frames });
  } finally {
    if (!frames) deck.setProps({ _customRender: null });
  }
}

async function measureSteps(viewer, { repeat, frames }) {
  const clear = () => viewer.setSelection(new Uint32Array(0), "bench");
  const center = Array.from(viewer.scene.positions.subarray(0, viewer.scene.size));
  const disc = () => viewer.selectWithin(center, 0.1, "replace");
  const opts = { prepare: clear, repeat, frames };
  const recolor = await timeStep(viewer, () => viewer.recolor(), opts);
  const categoryPick = await timeStep(viewer, () => viewer.pickCategory(0, "replace"), opts);
  const proximity = await timeStep(viewer, disc, opts);
  disc();
  const t0 = performance.now();
  await viewer.growSelection(0); // loads the graph and builds its rows; selects nothing new
  const knnLoadMs = Math.round(performance.now() - t0);
  const knnBuildMs = Math.round((await viewer.knnGraph).buildMs);
  const knnGrow = await timeStep(viewer, () => viewer.growSelection(1), { ...opts, prepare: disc });
  clear();
  const out = { n: viewer.nCells, dim: viewer.dim, edges: viewer.dataset.connectivity.n_edges, knnLoadMs, knnBuildMs, recolor, categoryPick, proximity, knnGrow };
  const basis = frames ? "shownMs" : "computeMs";
  for (const key of ["categoryPick", "proximity", "knnGrow"]) out[key].ratio = Math.round((out[key][basis] / recolor[basis]) * 100) / 100;
  return out;
}

/** fps meter + camera animation; returns the stats object it keeps updating. */
export function runBenchHud(viewer, stage, { startedAt, animate = true, measure = false, rounds = 7 }) {
  const stats = { n: viewer.nCells, dim: viewer.dim, loadMs: null, fps: null, frames: 0, filters: null, paused: false };
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
    const f = stats.filters;
    const filters = f ? ` · filter ${f.range.totalMs} ms vs recolour ${f.recolor.totalMs} ms (×${f.ratio})` : "";
    const lod = viewer.scene.lod ? viewer.scene.lod.status() : null;
    stats.lod = lod;
    const lodText = lod && lod.active ? ` · LOD level ${lod.level} (${lod.drawn.toLocaleString("en-US")} drawn)` : lod && lod.state === "building" ? " · LOD index building…" : "";
    hud.textContent = `${stats.n.toLocaleString("en-US")} points · ${stats.dim}D · load ${stats.loadMs ?? "…"} ms · ${stats.fps ?? "…"} fps${lodText}${filters}`;
  };
  /** Time a filter change against a recolour (the camera stops meanwhile). */
  stats.measureFilters = async (opts) => {
    stats.paused = true;
    try {
      stats.filters = await measureFilterChange(viewer, opts);
    } finally {
      stats.paused = false;
    }
    return stats.filters;
  };
  if (measure) {
    const once = viewer.on("frame", () => {
      once();
      setTimeout(() => stats.measureFilters({ rounds }).catch((err) => (stats.filters = { error: String(err) })), 1000);
    });
  }
  setInterval(tick, 500);
  if (animate) {
    const scene = viewer.scene;
    const step = () => {
      if (viewer.frozen) return;
      if (stats.paused) return requestAnimationFrame(step);
      const vs = { ...scene.viewState };
      if (viewer.dim === 3) vs.rotationOrbit = (vs.rotationOrbit || 0) + 0.5;
      else vs.target = [Math.sin(performance.now() / 1500) * 0.05, 0, 0];
      if (scene.deck) scene.setViewState(vs); // a moving camera: the level of detail follows
      requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  }
  return stats;
}
