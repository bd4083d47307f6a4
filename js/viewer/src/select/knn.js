// Grow a selection along the kNN graph. Pure module.
//
// The graph is the connectivity of SPEC §2.8 as the viewer loads it for the edge overlay: each
// undirected edge once, as parallel `src` / `dst` index arrays (Uint16Array or Uint32Array).
// `buildAdjacency` turns it into compressed rows (every edge in both directions) once; a grow
// step then reads only the rows of the cells it expands, so its cost is the number of
// neighbours it looks at, not the size of the graph.

import { CellBuffer, fromMask } from "./sets.js";

/**
 * Compressed adjacency rows of an undirected edge list.
 *
 * @param {Uint16Array|Uint32Array|ArrayLike<number>} src
 * @param {Uint16Array|Uint32Array|ArrayLike<number>} dst same length as src
 * @param {number} nCells
 * @returns {{nCells: number, offsets: Uint32Array, neighbors: Uint32Array}} the neighbours of
 *   cell i are neighbors[offsets[i] … offsets[i + 1] − 1]
 * @throws {Error} for arrays of different lengths or an index ≥ nCells
 */
export function buildAdjacency(src, dst, nCells) {
  if (src.length !== dst.length) throw new Error(`src has ${src.length} entries, dst ${dst.length}`);
  const m = src.length;
  if (2 * m > 0xffffffff) throw new Error(`${m} edges are too many for uint32 offsets`);
  const offsets = new Uint32Array(nCells + 1);
  for (let e = 0; e < m; e++) {
    const a = src[e];
    const b = dst[e];
    if (a >= nCells || b >= nCells) throw new Error(`edge ${e} (${a}, ${b}) names a cell ≥ ${nCells}`);
    offsets[a + 1]++;
    offsets[b + 1]++;
  }
  for (let i = 0; i < nCells; i++) offsets[i + 1] += offsets[i];
  const fill = offsets.slice(0, nCells);
  const neighbors = new Uint32Array(2 * m);
  for (let e = 0; e < m; e++) {
    const a = src[e];
    const b = dst[e];
    neighbors[fill[a]++] = b;
    neighbors[fill[b]++] = a;
  }
  return { nCells, offsets, neighbors };
}

/**
 * The cells within `hops` steps of `cells` on the graph: `cells` plus their neighbours, and so
 * on. With a mask, only cells whose mask entry is set are added or expanded through (hidden cells
 * are neither selected nor walked across); the seed cells always stay.
 *
 * @param {{nCells: number, offsets: Uint32Array, neighbors: Uint32Array}} adjacency from buildAdjacency
 * @param {Uint32Array} cells seed cells (any order; duplicates allowed)
 * @param {number} hops ≥ 0
 * @param {Uint8Array|null} [mask]
 * @returns {Uint32Array} sorted unique
 */
export function growCells(adjacency, cells, hops, mask = null) {
  if (!Number.isInteger(hops) || hops < 0) throw new Error(`hops must be a non-negative integer, got ${hops}`);
  const { nCells, offsets, neighbors } = adjacency;
  const seen = new Uint8Array(nCells);
  let frontier = new Uint32Array(cells.length);
  let size = 0;
  for (let i = 0; i < cells.length; i++) {
    const c = cells[i];
    if (c >= nCells) throw new RangeError(`cell ${c} is not below ${nCells}`);
    if (!seen[c]) {
      seen[c] = 1;
      frontier[size++] = c;
    }
  }
  for (let h = 0; h < hops && size > 0; h++) {
    // the last hop only marks: nothing walks on from its cells
    const next = h < hops - 1 ? new CellBuffer(nCells) : null;
    for (let f = 0; f < size; f++) {
      const c = frontier[f];
      const end = offsets[c + 1];
      for (let e = offsets[c]; e < end; e++) {
        const nb = neighbors[e];
        if (seen[nb] || (mask && !mask[nb])) continue;
        seen[nb] = 1;
        if (next) next.push(nb);
      }
    }
    if (!next) break;
    frontier = next.data;
    size = next.length;
  }
  return fromMask(seen);
}
