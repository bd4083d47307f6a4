// The whole viewer session as a `.cellucid-session`: Viewer.sessionState() (SPEC §5 chunks,
// comparisons) plus our extension chunks (python/cellucid/server/PROTOCOL.md "Session chunks"):
// the Active filters, the category colours that are not the default palette, and the numeric
// user-defined fields.

import { writeSessionBundle } from "./bundle.js";
import { encodeFilters, FILTERS_CHUNK } from "./filterschunk.js";
import { customPalettes, PALETTES_CHUNK } from "./palettes.js";
import { continuousFieldChunks } from "./userfloats.js";

/**
 * The extension chunks of a viewer's session (writeSessionBundle `extraChunks`).
 *
 * @param {import("../app/viewer.js").Viewer} viewer
 * @returns {Array<object>}
 */
export function extensionChunks(viewer) {
  const chunks = [{ id: FILTERS_CHUNK, label: "Active filters", kind: "json", value: encodeFilters(viewer.filters) }];
  const categoriesOf = (key) => viewer.dataset.fieldByKey.get(key)?.categories ?? null;
  const palettes = customPalettes(viewer.palettes, categoriesOf);
  if (palettes) chunks.push({ id: PALETTES_CHUNK, label: "Category colours", kind: "json", value: palettes });
  chunks.push(...continuousFieldChunks(viewer.userFields.continuousForSession()));
  return chunks;
}

/**
 * The viewer's session as bundle bytes.
 *
 * @param {import("../app/viewer.js").Viewer} viewer
 * @returns {Promise<Uint8Array>}
 */
export function saveSessionBundle(viewer) {
  return writeSessionBundle({ ...viewer.sessionState(), extraChunks: extensionChunks(viewer) });
}

/** A file name for a saved session: `<dataset id>-<yyyy-mm-dd-hhmm>.cellucid-session`. */
export function sessionFileName(datasetId, date = new Date()) {
  const pad = (v) => String(v).padStart(2, "0");
  const stamp = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}-${pad(date.getHours())}${pad(date.getMinutes())}`;
  const safe = String(datasetId || "cellucid").replace(/[^A-Za-z0-9._-]+/g, "_");
  return `${safe}-${stamp}.cellucid-session`;
}
