// The split view's pure half: which panels exist (each a colouring, a dimension and an
// embedding), where they sit in the canvas, their fitted cameras and the linking of cameras.
// No DOM, no deck.gl: node tests cover all of it (js/test/panels.test.mjs). app/panels.js keeps
// the panels' data, render/views.js draws them.
//
// Panel 0 is the viewer's own state (its colouring, dimension and embedding, the side panel's
// controls); panels 1-3 are extra ones. Every panel shows the same cells: one selection, one
// set of highlight groups and one visibility mask (filters) for all.

/** Panels in one viewer at most. */
export const MAX_PANELS = 4;

/** Gap between panels in CSS pixels (the stage background shows through as a divider). */
export const PANEL_GAP = 2;

/**
 * Columns × rows for `count` panels in a `width` × `height` area: the arrangement whose cells
 * are the largest squares that fit (ties: fewer rows). 2 panels side by side in a landscape
 * area, above each other in a portrait one; 4 as 2 × 2.
 */
export function gridShape(count, width, height) {
  if (!Number.isInteger(count) || count < 1 || count > MAX_PANELS) throw new RangeError(`1 to ${MAX_PANELS} panels, not ${count}`);
  let best = null;
  for (let cols = 1; cols <= count; cols++) {
    const rows = Math.ceil(count / cols);
    if ((cols - 1) * rows >= count) continue; // an empty column
    const side = Math.min(width / cols, height / rows);
    if (!best || side > best.side + 1e-9) best = { cols, rows, side };
  }
  return { cols: best.cols, rows: best.rows };
}

/**
 * Rectangles {x, y, width, height} (CSS pixels, integers, row-major) of `count` panels filling
 * `width` × `height` with `gap` pixels between them. The last row's panels are as wide as the
 * others' (a 3-panel 2 × 2 grid leaves the fourth cell empty).
 */
export function gridLayout(count, width, height, gap = PANEL_GAP) {
  const { cols, rows } = gridShape(count, width, height);
  const cellW = (width - gap * (cols - 1)) / cols;
  const cellH = (height - gap * (rows - 1)) / rows;
  const out = [];
  for (let i = 0; i < count; i++) {
    const c = i % cols;
    const r = Math.floor(i / cols);
    const x0 = Math.round(c * (cellW + gap));
    const y0 = Math.round(r * (cellH + gap));
    const x1 = Math.round(c * (cellW + gap) + cellW);
    const y1 = Math.round(r * (cellH + gap) + cellH);
    out.push({ x: x0, y: y0, width: x1 - x0, height: y1 - y0 });
  }
  return out;
}

/** Index of the rectangle holding point (x, y), or -1. */
export function panelAt(rects, x, y) {
  return rects.findIndex((r) => x >= r.x && x < r.x + r.width && y >= r.y && y < r.y + r.height);
}

/**
 * The fitted camera of the normalised embedding ([-1, 1]^d) in a `width` × `height` view of
 * dimension `dim`: an orthographic view state (1D/2D) or an orbit one (3D).
 */
export function homeView(width, height, dim) {
  const w = width || 800;
  const h = height || 600;
  const span = dim === 1 ? 2.15 : 2.3;
  const px = dim === 1 ? w : Math.min(w, h);
  const zoom = Math.log2(px / span);
  if (dim === 3) return { target: [0, 0, 0], rotationX: 15, rotationOrbit: 30, zoom: zoom - 0.35, minZoom: zoom - 4, maxZoom: zoom + 12 };
  return { target: [0, 0, 0], zoom, minZoom: zoom - 4, maxZoom: zoom + 14 };
}

/** Camera keys a linked panel takes from the one the user moved (same kind of view only). */
const LINKED_KEYS = { flat: ["target", "zoom"], orbit: ["target", "zoom", "rotationX", "rotationOrbit"] };

const kind = (dim) => (dim === 3 ? "orbit" : "flat");

/**
 * Linked cameras: panel `from` moved to `viewState`; returns the new view states of every panel
 * (a new array). With `linked`, the other panels of the same kind (2D/1D views with each other,
 * 3D with 3D) take its target and zoom (and rotation in 3D); each keeps its own zoom limits.
 * Unlinked, or of another kind, a panel keeps its camera.
 */
export function linkCameras(viewStates, dims, from, viewState, linked) {
  const out = viewStates.slice();
  out[from] = viewState;
  if (!linked) return out;
  const keys = LINKED_KEYS[kind(dims[from])];
  for (let i = 0; i < out.length; i++) {
    if (i === from || kind(dims[i]) !== kind(dims[from])) continue;
    const next = { ...out[i] };
    for (const k of keys) if (viewState[k] !== undefined) next[k] = Array.isArray(viewState[k]) ? viewState[k].slice() : viewState[k];
    if (next.minZoom !== undefined && next.zoom < next.minZoom) next.zoom = next.minZoom;
    if (next.maxZoom !== undefined && next.zoom > next.maxZoom) next.zoom = next.maxZoom;
    out[i] = next;
  }
  return out;
}

/**
 * A panel spec from Python or the UI: a field name, or {field, dimension?, embedding?}
 * (`dim` is accepted for `dimension`). Returns {field, dim, embedding} (undefined = keep the
 * base panel's; embedding null = the dataset's own points); throws an Error naming the bad entry.
 */
export function parsePanelSpec(spec, i = 0) {
  if (typeof spec === "string") {
    if (!spec) throw new Error(`panels[${i}] must not be empty`);
    return { field: spec, dim: undefined, embedding: undefined };
  }
  if (spec === null || typeof spec !== "object" || Array.isArray(spec)) throw new Error(`panels[${i}] must be a field name or {field, dimension, embedding}`);
  const allowed = new Set(["field", "dimension", "dim", "embedding"]);
  const unknown = Object.keys(spec).filter((k) => !allowed.has(k));
  if (unknown.length) throw new Error(`panels[${i}] does not take ${unknown.join(", ")} (field, dimension, embedding)`);
  const field = spec.field; // undefined: keep the base panel's; null: no colouring
  if (field !== undefined && field !== null && (typeof field !== "string" || !field)) throw new Error(`panels[${i}].field must be a non-empty string`);
  const dim = spec.dimension ?? spec.dim;
  if (dim !== undefined && dim !== null && ![1, 2, 3].includes(dim)) throw new Error(`panels[${i}].dimension must be 1, 2 or 3, not ${JSON.stringify(dim)}`);
  const embedding = spec.embedding;
  if (embedding !== undefined && embedding !== null && (typeof embedding !== "string" || !embedding)) throw new Error(`panels[${i}].embedding must be an obsm key`);
  return { field, dim: dim ?? undefined, embedding };
}

/**
 * Which panels exist: [{id, field, dim, embedding}] with panel 0 first (the viewer's own
 * state), at most MAX_PANELS, ids never reused, and whether the cameras are linked.
 */
export class PanelModel {
  constructor() {
    this.panels = [{ id: 0, field: null, dim: 2, embedding: null }];
    this.nextId = 1;
    this.linked = true;
  }

  get count() {
    return this.panels.length;
  }

  get split() {
    return this.panels.length > 1;
  }

  index(id) {
    const i = this.panels.findIndex((p) => p.id === id);
    if (i < 0) throw new Error(`no panel ${id}`);
    return i;
  }

  get(id) {
    return this.panels[this.index(id)];
  }

  /** A new panel {field, dim, embedding}; returns it. Throws beyond MAX_PANELS. */
  add({ field = null, dim = 2, embedding = null } = {}) {
    if (this.panels.length >= MAX_PANELS) throw new Error(`at most ${MAX_PANELS} panels`);
    const panel = { id: this.nextId++, field, dim, embedding };
    this.panels.push(panel);
    return panel;
  }

  /** Remove a panel (not panel 0, the viewer's own). */
  remove(id) {
    if (id === 0) throw new Error("panel 0 is the viewer's own view and cannot be removed");
    this.panels.splice(this.index(id), 1);
  }

  /** Back to panel 0 alone; returns the removed panels. */
  clear() {
    return this.panels.splice(1);
  }

  update(id, changes) {
    Object.assign(this.get(id), changes);
  }
}
