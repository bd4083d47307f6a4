// Bench mode (?bench=N&measure=filters): how long a filter change takes to reach the screen,
// against a plain recolour of the same cells. Each step is timed from the call to the end of
// the first frame drawn after it (deck's onAfterRender, the viewer's "frame" event, then a
// one-pixel read-back so the GL has really drawn), with the camera still; `cpuMs` is the
// synchronous part (masks, radii, overlays, new layer props), the rest is deck uploading the
// changed buffer and drawing. Results are medians over `rounds`.

import { onlyCategories, rangeFilter } from "../filters/model.js";

export const median = (xs) => {
  const s = Float64Array.from(xs).sort();
  return s.length ? Math.round(s[s.length >> 1] * 10) / 10 : null;
};

/**
 * The end of the next frame. deck's onAfterRender fires once the draw calls are issued; reading
 * one pixel back makes the GL finish them (with a software renderer most of the time is there).
 */
export function frameAfter(viewer) {
  return new Promise((resolve) => {
    const off = viewer.on("frame", () => {
      off();
      const device = viewer.scene.deck && viewer.scene.deck.device;
      const gl = device && device.gl;
      if (gl) gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array(4));
      resolve(performance.now());
    });
  });
}

/** Time one change: {cpuMs, totalMs}. */
async function timed(viewer, change) {
  const done = frameAfter(viewer);
  const t0 = performance.now();
  await change(); // a promise when the mask is made in the filters worker (large datasets)
  const cpu = performance.now() - t0;
  viewer.scene.deck && viewer.scene.deck.redraw("bench");
  const t1 = await done;
  return { cpuMs: cpu, totalMs: t1 - t0 };
}

const idle = () => new Promise((r) => setTimeout(r, 30));

/**
 * @param {import("../app/viewer.js").Viewer} viewer a bench viewer (fields "score", "cluster")
 * @returns {Promise<{n, rounds, recolor: {cpuMs, totalMs}, range: {cpuMs, totalMs},
 *   category: {cpuMs, totalMs}, ratio: number, categoryRatio: number}>}
 */
export async function measureFilterChange(viewer, { rounds = 7 } = {}) {
  const score = await viewer.dataset.loadField("score");
  const cluster = await viewer.dataset.loadField("cluster");
  const runs = { recolor: [], range: [], category: [] };
  const maps = ["magma", "viridis"];
  const ranges = [
    [-0.2, 0.4],
    [-0.5, 0.1],
  ];
  for (let r = 0; r < rounds; r++) {
    runs.recolor.push(await timed(viewer, () => viewer.setColormap(maps[r % 2])));
    await idle();
    const [lo, hi] = ranges[r % 2];
    runs.range.push(await timed(viewer, () => viewer.setFilter(rangeFilter("score", "obs", lo, hi), score.values)));
    await idle();
    const half = cluster.categories.filter((_, c) => c % 2 === r % 2);
    runs.category.push(await timed(viewer, () => viewer.setFilter(onlyCategories("cluster", cluster.categories, half), cluster.codes)));
    await idle();
  }
  viewer.clearFilters();
  const summary = (xs) => ({ cpuMs: median(xs.map((x) => x.cpuMs)), totalMs: median(xs.map((x) => x.totalMs)) });
  const out = { n: viewer.nCells, rounds, recolor: summary(runs.recolor), range: summary(runs.range), category: summary(runs.category) };
  out.ratio = Math.round((out.range.totalMs / out.recolor.totalMs) * 100) / 100;
  out.categoryRatio = Math.round((out.category.totalMs / out.recolor.totalMs) * 100) / 100;
  return out;
}
