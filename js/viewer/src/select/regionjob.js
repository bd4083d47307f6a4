// Selection jobs that scan every cell (lasso, category pick), as plain functions of a message:
// the select worker (select/worker.js) runs them off the page's thread for large datasets, and
// the same code runs on the page for small ones or without a worker (select/client.js). Pure.
//
//   {type: "lasso", positions, size, matrix, width, height, polygon, mask}  → {cells}
//   {type: "category", codes, code, mask}                                  → {cells}

import { pointsInPolygon, projectToScreen } from "./lasso.js";
import { CellBuffer, cellsWithCode } from "./sets.js";

/** Cells projected per chunk: the screen coordinates of one chunk only (512 KB), never 2n floats. */
const CHUNK = 65536;

/**
 * The cells (ascending) whose projection by `matrix` (column-major view-projection, as
 * select/lasso.js projectToScreen) falls inside `polygon` (screen x0, y0, x1, y1, ...), among
 * those whose `mask` entry is set (null = all). Projects and tests a chunk at a time.
 */
export function lassoCells(positions, size, matrix, width, height, polygon, mask = null) {
  const n = Math.floor(positions.length / size);
  const xy = new Float32Array(2 * Math.min(CHUNK, n));
  const out = new CellBuffer(n);
  for (let start = 0; start < n; start += CHUNK) {
    const end = Math.min(n, start + CHUNK);
    const screen = projectToScreen(positions.subarray(start * size, end * size), size, matrix, width, height, xy).subarray(0, 2 * (end - start));
    const hits = pointsInPolygon(screen, polygon, { visible: mask ? mask.subarray(start, end) : null });
    for (let j = 0; j < hits.length; j++) out.push(hits[j] + start);
  }
  return out.result();
}

/** Answer one region job: {cells} (ascending Uint32Array). Throws on an unknown type. */
export function runRegionJob(msg) {
  if (msg.type === "lasso") return { cells: lassoCells(msg.positions, msg.size, msg.matrix, msg.width, msg.height, msg.polygon, msg.mask || null) };
  if (msg.type === "category") return { cells: cellsWithCode(msg.codes, msg.code, msg.mask || null) };
  throw new Error(`unknown selection job ${JSON.stringify(msg && msg.type)}`);
}

export const REGION_JOBS = new Set(["lasso", "category"]);
