// ?bench=N: N synthetic cells generated in the page (no server), with fps and load time
// shown in the page and exposed on window.__cellucid.bench for tests.
// &measure=filters also times a filter change against a plain recolour (ui/benchfilters.js)
// once the page has drawn for a second, with the camera still (&rounds=R, default 7, median);
// bench.filters holds the result.

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
  return {
    generateMs: performance.now() - t0,
    id: `bench-${n}`,
    n,
    dimensions: dims,
    defaultDimension: dim,
    identity: { id: `bench-${n}`, name: `Benchmark: ${n.toLocaleString("en-US")} synthetic cells`, description: "", stats: { n_cells: n, n_genes: 0, n_obs_fields: 2, has_connectivity: false } },
    fields,
    fieldByKey: new Map(fields.map((f) => [f.key, f])),
    genes: [],
    geneIndex: new Map(),
    vectorFields: [],
    connectivity: null,
    points: new Map([[dim, pts]]),
    loadPoints: async (d) => pts,
    loadField: async (key) => data[key],
    loadGene: async () => {
      throw new Error("no genes in bench mode");
    },
    loadEdges: async () => null,
    loadVectors: async () => null,
  };
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
    hud.textContent = `${stats.n.toLocaleString("en-US")} points · ${stats.dim}D · load ${stats.loadMs ?? "…"} ms · ${stats.fps ?? "…"} fps${filters}`;
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
      scene.viewState = vs;
      scene.deck && scene.deck.setProps({ viewState: vs });
      requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  }
  return stats;
}
