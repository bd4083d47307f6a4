// Groups → a categorical field (the "Annotate" action), and the names groups and fields get.
// Pure module.

/** The category of cells in no group. */
export const UNASSIGNED = "unassigned";

/**
 * Codes of a categorical field made from groups: category g is group g's name, the last category
 * is "unassigned" (cells in no group). A cell in several groups gets the first of them (list
 * order). Codes are uint8 up to 255 categories, else uint16.
 *
 * @param {Array<{name: string, cells: Uint32Array}>} groups names must be unique and differ from
 *   "unassigned"
 * @param {number} nCells
 * @returns {{codes: Uint8Array|Uint16Array, categories: string[]}}
 * @throws {Error} for duplicate names, "unassigned" as a name, more than 65,535 categories or a
 *   cell ≥ nCells
 */
export function annotationCodes(groups, nCells) {
  const categories = groups.map((g) => String(g.name));
  const seen = new Set();
  for (const name of categories) {
    if (name === UNASSIGNED) throw new Error(`a group may not be called "${UNASSIGNED}": that is the category of the other cells`);
    if (seen.has(name)) throw new Error(`two groups are called ${JSON.stringify(name)}; group names must differ`);
    seen.add(name);
  }
  categories.push(UNASSIGNED);
  if (categories.length > 65535) throw new Error(`${groups.length} groups are too many for one field (at most 65,534)`);
  const codes = categories.length <= 255 ? new Uint8Array(nCells) : new Uint16Array(nCells);
  codes.fill(groups.length);
  for (let g = groups.length - 1; g >= 0; g--) {
    const cells = groups[g].cells;
    for (let i = 0; i < cells.length; i++) {
      if (cells[i] >= nCells) throw new RangeError(`group ${JSON.stringify(categories[g])}: cell ${cells[i]} is not below ${nCells}`);
      codes[cells[i]] = g;
    }
  }
  return { codes, categories };
}

/**
 * `name`, or `name (2)`, `name (3)`, … : the first that is not taken.
 *
 * @param {string} name
 * @param {Iterable<string>|Set<string>} taken
 * @returns {string}
 */
export function uniqueName(name, taken) {
  const used = taken instanceof Set ? taken : new Set(taken);
  const base = String(name).trim() || "Group";
  if (!used.has(base)) return base;
  for (let k = 2; ; k++) if (!used.has(`${base} (${k})`)) return `${base} (${k})`;
}
