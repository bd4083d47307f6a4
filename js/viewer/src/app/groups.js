// Named highlight groups of the Viewer (viewer.highlights): make them from cells, the selection or
// a category, edit their name, colour and visibility, and turn them into a categorical field
// (Annotate). A group is {id, label (its name, unique), color "#rrggbb", rgb, cells (sorted unique
// Uint32Array), visible}. Every change redraws the visible groups and emits "highlights"; the
// bridge sends Python a `groups` event from that.

import { categoricalPalette, hexToRgb, rgbToHex } from "../color/palettes.js";
import { annotationCodes, uniqueName } from "../select/annotate.js";
import { cellsWithCode } from "../select/sets.js";

const HEX = /^#[0-9a-fA-F]{6}$/;
/** The colour of cells in no group in an annotation field. */
export const UNASSIGNED_RGB = [205, 205, 205];

function checkColor(color) {
  if (typeof color !== "string" || !HEX.test(color)) throw new TypeError(`color must be "#RRGGBB", got ${JSON.stringify(color)}`);
  return color.toLowerCase();
}

function names(viewer, exceptId = null) {
  return new Set(viewer.highlights.filter((g) => g.id !== exceptId).map((g) => g.label));
}

/** Draw the visible groups. */
export function drawGroups(viewer) {
  viewer.scene.setHighlights(viewer.highlights.filter((g) => g.visible !== false));
}

/** Redraw the visible groups and tell the UI and the bridge. */
export function groupsChanged(viewer) {
  drawGroups(viewer);
  viewer.emit("highlights", viewer.highlights);
}

/** A colour for the next new group: the categorical palette, in creation order. */
export function nextGroupColor(viewer) {
  const k = viewer.nextGroup;
  const palette = categoricalPalette(k);
  return rgbToHex(palette[(k - 1) * 3], palette[(k - 1) * 3 + 1], palette[(k - 1) * 3 + 2]);
}

/**
 * Add a group. `name` is made unique (" (2)", …); `color` defaults to the next palette colour.
 *
 * @param {import("./viewer.js").Viewer} viewer
 * @param {Uint32Array} cells sorted unique, valid
 * @param {{name?: string, color?: string}} [opts]
 * @returns {object} the group
 */
export function addGroup(viewer, cells, { name, color } = {}) {
  if (!cells.length) throw new RangeError("a group needs at least one cell");
  const hex = checkColor(color === undefined ? nextGroupColor(viewer) : color);
  const id = `group-${viewer.nextGroup++}`;
  const label = uniqueName(name || `Group ${viewer.nextGroup - 1}`, names(viewer));
  const group = { id, label, color: hex, rgb: hexToRgb(hex), cells, visible: true };
  viewer.highlights.push(group);
  groupsChanged(viewer);
  return group;
}

/**
 * Change a group's name (made unique), colour or visibility.
 *
 * @param {import("./viewer.js").Viewer} viewer
 * @param {string} id
 * @param {{name?: string, color?: string, visible?: boolean}} changes
 * @returns {object} the group
 */
export function updateGroup(viewer, id, { name, color, visible } = {}) {
  const group = viewer.highlights.find((g) => g.id === id);
  if (!group) throw new Error(`no group ${JSON.stringify(id)}`);
  if (name !== undefined) {
    const wanted = String(name).trim();
    if (!wanted) throw new Error("a group needs a name");
    group.label = uniqueName(wanted, names(viewer, id));
  }
  if (color !== undefined) {
    group.color = checkColor(color);
    group.rgb = hexToRgb(group.color);
  }
  if (visible !== undefined) group.visible = Boolean(visible);
  groupsChanged(viewer);
  return group;
}

/** A group of the cells of `category` of a categorical field (the active one by default). */
export async function groupFromCategory(viewer, category, fieldKey = null) {
  const field = fieldKey === null ? viewer.field : await viewer.loadField(fieldKey);
  if (!field || field.kind !== "category") throw new Error("colour by a categorical field to make groups from its categories");
  const code = field.categories.indexOf(String(category));
  if (code < 0) throw new Error(`${field.key} has no category ${JSON.stringify(category)}`);
  const palette = viewer.palettes.get(field.key);
  const color = palette ? rgbToHex(palette[code * 3], palette[code * 3 + 1], palette[code * 3 + 2]) : undefined;
  const cells = cellsWithCode(field.codes, code);
  if (!cells.length) throw new Error(`no cell is in ${field.key} = ${category}`);
  return addGroup(viewer, cells, { name: String(category), color });
}

/**
 * Annotate: a new categorical user field from the groups (categories: the group names in list
 * order, then "unassigned"; a cell in several groups gets the first), coloured with the groups'
 * colours. Colours the cells by it.
 *
 * @param {import("./viewer.js").Viewer} viewer
 * @param {string} name the field name (made unique among user fields; must not be an obs key)
 * @returns {Promise<string>} the field name
 */
export async function annotate(viewer, name = "annotation") {
  if (!viewer.highlights.length) throw new Error("make a group first: Annotate turns the groups into a field");
  const taken = new Set(viewer.dataset.fields.map((f) => f.key));
  const key = uniqueName(String(name).trim() || "annotation", taken);
  const { codes, categories } = annotationCodes(
    viewer.highlights.map((g) => ({ name: g.label, cells: g.cells })),
    viewer.nCells,
  );
  const palette = new Uint8Array(categories.length * 3);
  viewer.highlights.forEach((g, i) => palette.set(g.rgb, i * 3));
  palette.set(UNASSIGNED_RGB, viewer.highlights.length * 3);
  viewer.addUserField({ key, kind: "category", categories, codes }, "annotation", palette);
  await viewer.setColorBy(key);
  return key;
}
