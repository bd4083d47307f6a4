// Proximity selection: the cells within a distance of a point in embedding space, a disc in
// 2D and a ball in 3D. Pure module.

import { CellBuffer } from "./sets.js";

/**
 * Cells whose position lies within `radius` of `center` (Euclidean, boundary included).
 *
 * @param {Float32Array|Float64Array} positions row-major (n, size), as drawn (2 or 3 numbers a cell;
 *   the 1D layout has 2)
 * @param {number} size 1, 2 or 3
 * @param {ArrayLike<number>} center `size` numbers
 * @param {number} radius ≥ 0
 * @param {Uint8Array|null} [mask] only cells whose entry is set
 * @returns {Uint32Array} ascending
 */
export function cellsWithin(positions, size, center, radius, mask = null) {
  if (size !== 1 && size !== 2 && size !== 3) throw new Error(`size must be 1, 2 or 3, got ${size}`);
  if (!(radius >= 0) || !Number.isFinite(radius)) throw new Error(`radius must be a finite number ≥ 0, got ${radius}`);
  const n = Math.floor(positions.length / size);
  const cx = +center[0];
  const cy = size > 1 ? +center[1] : 0;
  const cz = size > 2 ? +center[2] : 0;
  const r2 = radius * radius;
  const out = new CellBuffer(n);
  for (let i = 0, p = 0; i < n; i++, p += size) {
    const dx = positions[p] - cx;
    let d2 = dx * dx;
    if (d2 > r2) continue;
    if (size > 1) {
      const dy = positions[p + 1] - cy;
      d2 += dy * dy;
      if (size > 2) {
        const dz = positions[p + 2] - cz;
        d2 += dz * dz;
      }
    }
    if (d2 <= r2 && (!mask || mask[i])) out.push(i);
  }
  return out.result();
}
