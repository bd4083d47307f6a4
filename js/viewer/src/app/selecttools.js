// The selection tools of the Viewer beyond lasso and click: category pick, kNN grow, proximity
// (disc in 2D, ball in 3D), invert, undo / redo. The set logic is in select/ (pure); here it
// meets the viewer: its active field, drawn positions, kNN graph, selectable mask and history.
// Each tool is one selection step (Viewer.userSelect) whose `source` names the tool.

import { KnnGraph } from "./knngraph.js";
import { cellsWithin } from "../select/proximity.js";
import { cellsWithCode, complement } from "../select/sets.js";
import { lassoCells } from "../select/regionjob.js";

/** From this many cells on, lasso and category pick run in the select worker (select/client.js). */
export const WORKER_MIN_CELLS = 500_000;

/** The select worker's client when this viewer's scans should go there, else null. */
function jobsFor(viewer) {
  const min = viewer.selectWorkerMin ?? WORKER_MIN_CELLS;
  return viewer.selectJobs && viewer.nCells >= min ? viewer.selectJobs : null;
}

/** The scene's panel `index` of the split view (its positions and size); 0 = the scene itself. */
function panelOf(scene, index) {
  return index && scene.split ? scene.split.panels()[index] || scene : scene;
}

/** Index of the split view's panel under canvas CSS pixel `[x, y]` (0 in a single view or outside). */
function panelIndexAt(scene, [x, y]) {
  return scene.split ? Math.max(0, scene.split.at(x, y)) : 0;
}

/**
 * Lasso: the visible cells inside `polygon` (canvas CSS pixels, [[x, y], ...]), one selection
 * step, in the panel of the split view where the polygon starts (its embedding and camera).
 * Large datasets: through the tree index the LOD worker keeps of that embedding (render/lod.js
 * LodIndex.lasso: only the cells near the polygon's boundary are projected, no positions are
 * sent), else (index not built yet, worker busy) projected and tested in the select worker;
 * the result arrives as a promise and the page keeps drawing meanwhile. Small ones: here, at
 * once, with the same code (select/regionjob.js). Every route selects the same cells;
 * `viewer.lastLasso` says which one ran.
 *
 * @returns {Promise<void>|undefined}
 */
export function lassoSelect(viewer, polygon, mode) {
  const scene = viewer.scene;
  const index = panelIndexAt(scene, polygon[0]);
  const { positions, size } = panelOf(scene, index);
  const vp = scene.viewport(index);
  const jobs = jobsFor(viewer);
  if (!vp || !positions) return jobs ? Promise.resolve() : undefined;
  // the panel's own pixels: the projection puts its viewport's corner at (0, 0)
  const flat = polygon.flatMap(([x, y]) => [x - (vp.x || 0), y - (vp.y || 0)]);
  const job = { positions, size, matrix: vp.viewProjectionMatrix, width: vp.width, height: vp.height, polygon: flat, mask: viewer.selectableMask() };
  const t0 = performance.now();
  const done = (route, extra = {}) => (cells) => {
    const t1 = performance.now();
    viewer.userSelect(cells, mode, "lasso", { sorted: true, ...extra });
    // ms: until the cells were known; selectMs: the selection step on the page (history, drawing, events)
    viewer.lastLasso = { route, panel: index, cells: cells.length, ms: t1 - t0, selectMs: performance.now() - t1 };
  };
  if (!jobs) {
    done("page")(lassoCells(job.positions, job.size, job.matrix, job.width, job.height, job.polygon, job.mask));
    return undefined;
  }
  const tree = scene.lodIndex;
  const brute = () => jobs.lasso(job).then(done("worker"));
  if (!tree || !tree.canLasso(positions)) return brute();
  // a new selection: the worker sends its cells' coordinates too, so the rings need no gather
  return tree
    .lasso({ ...job, ...maskState(viewer), withPositions: mode === "replace" })
    .catch((err) => {
      console.error("cellucid: the lasso index failed; testing every cell instead", err);
      return null;
    })
    .then((out) => (out ? done("index", fromTree(out, positions))(out.cells) : brute()));
}

const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/** What the tree index sent besides the cells, for userSelect: the rings' coordinates, the bitset. */
function fromTree(out, positions) {
  return {
    overlay: out.positions ? { of: positions, positions: out.positions } : null,
    bits: LITTLE_ENDIAN && out.bits ? new Uint8Array(out.bits.buffer, out.bits.byteOffset, out.bits.byteLength) : null,
  };
}

const maskSerials = new WeakMap();
let nextMaskSerial = 1;

/**
 * The selectable mask for a job in a worker that keeps the last one it got: null when every
 * cell is selectable (nothing to send), else the mask and a token that changes whenever its
 * content does (filters/visibility.js bumps `version` on every update of the mask).
 */
function maskState(viewer) {
  const mask = viewer.selectableMask();
  const vis = viewer.visibility;
  if (!mask) return { mask: null, maskToken: null };
  if (!vis || vis.mask !== mask) return { mask, maskToken: null }; // no version to go by: always sent
  if (vis.count === mask.length) return { mask: null, maskToken: null };
  if (!maskSerials.has(vis)) maskSerials.set(vis, nextMaskSerial++);
  return { mask, maskToken: `${maskSerials.get(vis)}:${vis.version}` };
}

/**
 * Category pick: select the cells of `cell`'s category in the coloured (categorical) field.
 *
 * @returns {boolean|Promise<boolean>} false (and a notice) when the field is not categorical or the
 *   cell has none; a promise when the scan runs in the select worker (large datasets)
 */
export function pickCategory(viewer, cell, mode = "replace") {
  const f = viewer.field;
  if (!f || f.kind !== "category") {
    viewer.emit("notice", "Alt+click selects a category: colour by a categorical field first");
    return false;
  }
  const code = f.codes[cell];
  if (code >= f.categories.length) {
    viewer.emit("notice", `Cell ${cell} has no ${f.key} category`);
    return false;
  }
  const jobs = jobsFor(viewer);
  if (!jobs) {
    viewer.userSelect(cellsWithCode(f.codes, code, viewer.selectableMask()), mode, "annotation");
    return true;
  }
  // large: the scan runs in the select worker; resolves to true once the selection is made
  return jobs.category({ codes: f.codes, code, mask: viewer.selectableMask() }).then((cells) => {
    viewer.userSelect(cells, mode, "annotation");
    return true;
  });
}

/** The kNN graph (app/knngraph.js: rows built in the select worker), loaded once. Rejects without one. */
export function knnGraph(viewer) {
  if (!viewer.knnGraph) {
    viewer.knnGraph = (async () => {
      const edges = await viewer.loadEdges();
      if (!edges) throw new Error("this dataset has no kNN graph");
      const graph = new KnnGraph({ nCells: viewer.nCells, createWorker: viewer.createSelectWorker });
      await graph.load(edges);
      return graph;
    })();
    viewer.knnGraph.catch(() => (viewer.knnGraph = null)); // try again next time
  }
  return viewer.knnGraph;
}

/** kNN grow: add the cells within `hops` steps of the selection on the kNN graph. */
export async function growSelection(viewer, hops = 1) {
  if (!viewer.selection.length) throw new Error("select cells first: kNN grow adds their neighbours");
  const graph = await knnGraph(viewer);
  viewer.userSelect(await graph.grow(viewer.selection, hops, viewer.selectableMask()), "replace", "knn");
}

/**
 * Proximity: the cells within `radius` of `center` in the drawn embedding (a disc or a ball);
 * `panel`: the split view's panel whose embedding `center` is in.
 */
export function selectWithin(viewer, center, radius, mode = "replace", panel = 0) {
  const { positions, size } = panelOf(viewer.scene, panel);
  viewer.userSelect(cellsWithin(positions, size, center, radius, viewer.selectableMask()), mode, "proximity");
}

/** Invert: the drawn cells that are not selected. */
export function invertSelection(viewer) {
  viewer.userSelect(complement(viewer.selection, viewer.nCells, viewer.selectableMask()), "replace", "invert");
}

/** Undo / redo one selection step; false when there is none. */
export function stepHistory(viewer, direction) {
  const step = direction === "undo" ? viewer.history.undo() : viewer.history.redo();
  if (!step) return false;
  viewer.showSelection(step.cells, direction, true);
  return true;
}

/**
 * A proximity gesture in canvas pixels → {center, radius} in the drawn embedding's coordinates.
 * The centre lies at the depth of the cell under the press point (3D), else of the camera target;
 * the radius reaches the release point at that depth.
 *
 * @param {import("./viewer.js").Viewer} viewer
 * @param {[number, number]} start canvas CSS pixels
 * @param {[number, number]} end
 */
export function proximityFromScreen(viewer, start, end) {
  const scene = viewer.scene;
  const panel = panelIndexAt(scene, start); // where it starts
  const p = panelOf(scene, panel);
  const vp = scene.viewport(panel);
  if (!vp) throw new Error("the view is not ready");
  const size = p.size;
  let anchor = p.viewState && p.viewState.target ? p.viewState.target : [0, 0, 0];
  if (size === 3) {
    const hit = scene.pickCell(start[0], start[1]);
    if (hit !== null) anchor = Array.from(p.positions.subarray(hit * 3, hit * 3 + 3));
  }
  const local = (q) => [q[0] - (vp.x || 0), q[1] - (vp.y || 0)]; // the panel's own pixels
  const depth = vp.project([anchor[0], anchor[1], anchor[2] || 0])[2];
  const center = vp.unproject([...local(start), depth]).slice(0, size);
  const edge = vp.unproject([...local(end), depth]).slice(0, size);
  const radius = Math.hypot(...edge.map((v, i) => v - center[i]));
  return { center, radius, panel };
}
