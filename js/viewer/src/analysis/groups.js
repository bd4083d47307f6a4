// The two groups of a comparison as sorted unique Uint32Array cell lists: from a cell list (the
// selection, a highlight group), from categories of a categorical field (codes), or "rest" (every
// cell not in the group). Checks that both are non-empty and disjoint.
//
// Pure module: no DOM, runs in browsers, workers and node.

import { complement, sortedUnique } from "../select/sets.js";

/**
 * Sorted unique cells, each below nCells.
 *
 * @param {ArrayLike<number>} cells
 * @param {number} nCells
 * @returns {Uint32Array}
 */
export function sortedCells(cells, nCells) {
  const out = sortedUnique(cells);
  if (out.length && out[out.length - 1] >= nCells) throw new RangeError(`cell index ${out[out.length - 1]} is out of range (n = ${nCells})`);
  return out;
}

/**
 * Cells whose code is one of `categoryIndices` (missing codes never match).
 *
 * @param {Uint8Array|Uint16Array} codes
 * @param {Iterable<number>} categoryIndices
 * @returns {Uint32Array} sorted
 */
export function cellsOfCategories(codes, categoryIndices) {
  const wanted = new Uint8Array(65536);
  for (const c of categoryIndices) wanted[c] = 1;
  let count = 0;
  for (let i = 0; i < codes.length; i++) count += wanted[codes[i]];
  const out = new Uint32Array(count);
  let k = 0;
  for (let i = 0; i < codes.length; i++) if (wanted[codes[i]]) out[k++] = i;
  return out;
}

/**
 * Every cell of 0 … nCells − 1 not in `cells` (sorted unique).
 *
 * @param {Uint32Array} cells sorted unique
 * @param {number} nCells
 * @returns {Uint32Array}
 */
export function complementCells(cells, nCells) {
  return complement(cells, nCells);
}

/**
 * Number of cells two sorted unique lists share.
 *
 * @param {Uint32Array} a
 * @param {Uint32Array} b
 * @returns {number}
 */
export function overlapCount(a, b) {
  let i = 0;
  let j = 0;
  let n = 0;
  while (i < a.length && j < b.length) {
    if (a[i] < b[j]) i++;
    else if (a[i] > b[j]) j++;
    else {
      n++;
      i++;
      j++;
    }
  }
  return n;
}

/** Cells each group needs (a variance or a rank test; the rule of python's resolve_groups). */
export const MIN_CELLS = 2;

/**
 * Check the groups of a comparison: a non-empty group, and a reference that is "rest" (which must
 * leave at least one cell) or a non-empty list without a cell of the group; each with at least
 * MIN_CELLS cells.
 *
 * @param {{cells: Uint32Array}} group
 * @param {"rest"|{cells: Uint32Array}} reference
 * @param {number} nCells
 * @throws {Error} naming what is wrong
 */
export function checkGroups(group, reference, nCells) {
  if (!group.cells.length) throw new Error("group A has no cells");
  const nB = reference === "rest" ? nCells - group.cells.length : reference.cells.length;
  if (reference === "rest" && !nB) throw new Error("group A holds every cell: the rest is empty");
  if (!nB) throw new Error("group B has no cells");
  if (reference !== "rest") {
    const shared = overlapCount(group.cells, reference.cells);
    if (shared) throw new Error(`groups A and B share ${shared.toLocaleString("en-US")} cells; they must not overlap`);
  }
  for (const [name, n] of [["A", group.cells.length], ["B", nB]]) {
    if (n < MIN_CELLS) throw new Error(`group ${name} has ${n} cell; at least ${MIN_CELLS} are needed for a variance or a rank test`);
  }
}
