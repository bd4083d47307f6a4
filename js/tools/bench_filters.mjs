// Times the pure filter work of one filter change at a given size, in node (no GPU):
//
//   node tools/bench_filters.mjs [n=1000000] [rounds=15]
//
// Prints the median milliseconds of: a categorical mask, a range mask, combining the
// setVisibility layer with three filters, the radius buffer, one whole Visibility.update
// after changing one of three filters (what a brush step costs before deck uploads and draws),
// a 64-bin histogram, per-category visible counts and, for comparison, a plain recolour
// (colorContinuous) of the same cells.

import { categoryCounts, categoryMask, combineMasks, radiiFromMask, rangeMask } from "../viewer/src/filters/mask.js";
import { categoryFilter, rangeFilter } from "../viewer/src/filters/model.js";
import { histogram } from "../viewer/src/filters/histogram.js";
import { Visibility } from "../viewer/src/filters/visibility.js";
import { colorContinuous, getColormap } from "../viewer/src/color/colormaps.js";

const n = Number(process.argv[2] || 1_000_000);
const rounds = Number(process.argv[3] || 15);

let seed = 7;
const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296);
const k = 30;
const codes = Uint8Array.from({ length: n }, () => Math.floor(rand() * k));
const values = Float32Array.from({ length: n }, () => rand() * 10);
const genes = Float32Array.from({ length: n }, () => (rand() < 0.8 ? 0 : rand() * 4));
const cats = Array.from({ length: k }, (_, c) => `c${c}`);
const include = Uint8Array.from({ length: k }, (_, c) => (c % 4 ? 1 : 0));

function time(label, fn) {
  const ms = [];
  fn(0); // warm up the JIT
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    fn(r);
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  const med = ms[ms.length >> 1];
  console.log(`${label.padEnd(52)} ${med.toFixed(2).padStart(8)} ms`);
  return med;
}

console.log(`filters at ${n.toLocaleString("en-US")} cells (node ${process.version}, median of ${rounds})`);
const out = new Uint8Array(n);
const m1 = new Uint8Array(n);
const m2 = new Uint8Array(n);
const m3 = new Uint8Array(n);
time("categorical mask (30 categories)", () => categoryMask(codes, include, true, m1));
time("range mask (obs field)", (r) => rangeMask(values, 2 + (r % 3), 8, m2));
time("range mask (gene, 80 % zeros)", () => rangeMask(genes, 1, Infinity, m3));
const base = new Uint8Array(n).fill(1);
time("combine base + 3 filter masks", () => combineMasks(n, base, [m1, m2, m3], out));
time("radius buffer from the mask", () => radiiFromMask(out, new Float32Array(n)));
const vis = new Visibility(n);
vis.filters.set(categoryFilter("c", cats, include), codes);
vis.filters.set(rangeFilter("g", "var", 1, Infinity), genes);
const step = time("filter change: one range moves, 3 filters, update()", (r) => {
  vis.filters.set(rangeFilter("v", "obs", 2 + (r % 5) * 0.1, 8), values);
  vis.update();
  vis.radii();
});
time("histogram, 64 bins", () => histogram(values, { bins: 64 }));
time("visible cells per category", () => categoryCounts(codes, k, vis.mask));
const lut = getColormap("viridis");
const rgba = new Uint8Array(n * 4);
const recolor = time("plain recolour (colorContinuous), for comparison", (r) => colorContinuous(values, 0, 10 - (r % 2), lut, rgba));
console.log(`filter change / recolour (CPU part): ${(step / recolor).toFixed(2)}`);
