// Times the pure selection code at the bench size in node (no drawing):
//
//     node js/tools/bench_select.mjs [N=1000000] [dim=2]
//
// On the synthetic dataset of ?bench=N (ui/bench.js): category pick (one cluster), proximity
// (a disc / ball of radius 0.1), the one-time kNN adjacency build, kNN grow by one hop (from the
// proximity selection, on the 15-neighbour graph), invert, the set operations and a history step.
// Prints the median of 5 runs in ms.
import { syntheticDataset } from "../viewer/src/ui/bench.js";
import { buildAdjacency, growCells } from "../viewer/src/select/knn.js";
import { cellsWithin } from "../viewer/src/select/proximity.js";
import { cellsWithCode, combine, complement } from "../viewer/src/select/sets.js";
import { SelectionHistory } from "../viewer/src/select/history.js";

const n = Number(process.argv[2] || 1_000_000);
const dim = Number(process.argv[3] || 2);
const ds = syntheticDataset(n, dim);
const pts = ds.points.get(dim);
const { codes } = await ds.loadField("cluster");
const mask = new Uint8Array(n).fill(1);

function time(label, fn, runs = 5) {
  const ms = [];
  let out;
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    out = fn();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  const size = out && out.length !== undefined ? `${out.length.toLocaleString("en-US")} cells` : "";
  console.log(`${label.padEnd(34)} ${ms[ms.length >> 1].toFixed(1).padStart(8)} ms  ${size}`);
  return out;
}

console.log(`${n.toLocaleString("en-US")} cells, ${dim}D, ${ds.connectivity.n_edges.toLocaleString("en-US")} kNN edges`);
const edges = await ds.loadEdges();
const pick = time("category pick (cellsWithCode)", () => cellsWithCode(codes, codes[0], mask));
const disc = time("proximity (cellsWithin r=0.1)", () => cellsWithin(pts, dim, pts.subarray(0, dim), 0.1, mask));
const adjacency = time("kNN adjacency build (once)", () => buildAdjacency(edges.src, edges.dst, n), 3);
time("kNN grow, 1 hop from the disc", () => growCells(adjacency, disc, 1, mask));
time("kNN grow, 1 hop from the category", () => growCells(adjacency, pick, 1, mask));
time("invert (complement)", () => complement(disc, n, mask));
time("combine add (disc ∪ category)", () => combine(disc, pick, "add"));
time("combine intersect", () => combine(disc, pick, "intersect"));
const history = new SelectionHistory(n);
let flip = false;
time("history step (push)", () => ((flip = !flip), history.push(flip ? disc : pick, "bench")));
