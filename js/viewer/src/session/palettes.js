// Category colours in a session: the `cellucid/palettes` chunk (python/cellucid/server/PROTOCOL.md
// "Session chunks"), written by prepare() and the AnnData server from scanpy's
// adata.uns["<key>_colors"], and by the viewer for fields whose colours are not the default
// palette. Matched by category NAME. Pure module.
//
//   {<field key>: {categories: [name, ...], colors: ["#rrggbb", ...]}}   (same length; "#rgb" and
//   "#rrggbbaa" are accepted, alpha dropped)

import { categoricalPalette, hexToRgb, rgbToHex } from "../color/palettes.js";

export const PALETTES_CHUNK = "cellucid/palettes";

const HEX = /^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$/;

/**
 * Check one field's palette spec: returns the colour of each named category, or an error
 * message that names the field and the fix.
 *
 * @param {string} key
 * @param {unknown} spec
 * @returns {{colors: Map<string, number[]>|null, error: string|null}}
 */
export function checkPalette(key, spec) {
  const fail = (why) => ({ colors: null, error: `colours of ${JSON.stringify(key)} ignored (default palette used): ${why}` });
  if (!spec || typeof spec !== "object") return fail("expected {categories, colors}");
  const { categories, colors } = spec;
  if (!Array.isArray(categories) || !categories.every((c) => typeof c === "string")) return fail("categories must be a list of names");
  if (!Array.isArray(colors)) return fail("colors must be a list of \"#rrggbb\" strings");
  if (colors.length !== categories.length) return fail(`${colors.length} colours for ${categories.length} categories; give one colour per category`);
  const bad = colors.findIndex((c) => typeof c !== "string" || !HEX.test(c.trim()));
  if (bad >= 0) return fail(`${JSON.stringify(colors[bad])} (entry ${bad}) is not a "#rrggbb" colour`);
  const out = new Map();
  categories.forEach((c, i) => out.set(c, hexToRgb(colors[i].trim().slice(0, colors[i].trim().length === 9 ? 7 : undefined))));
  return { colors: out, error: null };
}

/**
 * A field's palette (Uint8Array k·3) from checked colours: categories the spec names get its
 * colour, the others keep the default palette's.
 *
 * @param {string[]} categories the field's categories
 * @param {Map<string, number[]>} colors from checkPalette
 * @returns {{palette: Uint8Array, matched: number}}
 */
export function paletteFor(categories, colors) {
  const palette = categoricalPalette(categories.length);
  let matched = 0;
  categories.forEach((c, i) => {
    const rgb = colors.get(c);
    if (rgb) {
      palette.set(rgb, i * 3);
      matched++;
    }
  });
  return { palette, matched };
}

/**
 * The chunk document of the palettes that differ from the default one.
 *
 * @param {Map<string, Uint8Array>} palettes viewer.palettes (key → k·3)
 * @param {(key: string) => string[]|null} categoriesOf the categories of a field (null: unknown)
 * @returns {object|null} null when every palette is the default
 */
export function customPalettes(palettes, categoriesOf) {
  const out = {};
  for (const [key, palette] of palettes) {
    const categories = categoriesOf(key);
    if (!categories || palette.length !== categories.length * 3) continue;
    const dflt = categoricalPalette(categories.length);
    if (palette.every((v, i) => v === dflt[i])) continue;
    out[key] = { categories: categories.slice(), colors: categories.map((_, i) => rgbToHex(palette[i * 3], palette[i * 3 + 1], palette[i * 3 + 2])) };
  }
  return Object.keys(out).length ? out : null;
}

/**
 * Merge two palette documents; `over` wins for the fields it names.
 *
 * @param {object|null} base
 * @param {object|null} over
 * @returns {object}
 */
export function mergePalettes(base, over) {
  return { ...(base || {}), ...(over || {}) };
}
