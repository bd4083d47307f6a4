// Split view in one Deck: one deck.gl View per panel (an OrthographicView for 1D/2D, an
// OrbitView for 3D, each a rectangle of the canvas), layers named "panel<id>:<layer>" drawn
// only in their panel's view (Deck's layerFilter), one camera per panel, linkable.
//
// GPU memory: the cell positions of an embedding live in ONE luma.gl Buffer shared by every
// panel showing that embedding and dimension, and the visibility radii (filters apply to all
// panels) in one Buffer shared by all; each panel has its own colour buffer only. The buffers
// are given to the layers as external attribute buffers ({buffer, type, size}); BufferPool
// keeps one per typed array and destroys those no layer uses any more (a frame later, so a
// frame in flight never draws from a destroyed buffer).
//
// Panel 0 is the Scene's own state (its positions, colours, overlays, edges, vectors); extra
// panels carry the same fields (positions, size, colors, labels, selection and highlight
// positions, and a LodView of their own: render/lod.js), so Scene.cellLayers draws any of them.

import { OrbitView, OrthographicView } from "@deck.gl/core";
import { Buffer } from "@luma.gl/core";
import { gridLayout, homeView, linkCameras, panelAt } from "../app/panelmodel.js";
import { keepVisible } from "../filters/mask.js";

const POINTS = /^(panel\d+:)?points$/;
const LOD_POINTS = /^(panel\d+:)?points-lod$/;
const OWNER = /^panel(\d+):/;

/** Is this deck layer a panel's points layer (the one picking, hover and click use)? */
export function isPointsLayer(layer) {
  return Boolean(layer && POINTS.test(layer.id));
}

/** Is this deck layer a panel's level-of-detail subset layer (render/lod.js; Scene.lodPick maps its picks)? */
export function isLodLayer(layer) {
  return Boolean(layer && LOD_POINTS.test(layer.id));
}

/** Layer id prefix of a panel: "" for panel 0 (its layers keep their single-view ids). */
export function layerPrefix(panelId) {
  return panelId === 0 ? "" : `panel${panelId}:`;
}

/** The panel id a layer (or sub-layer) id belongs to. */
export function layerPanel(layerId) {
  const m = OWNER.exec(layerId);
  return m ? Number(m[1]) : 0;
}

export const viewId = (panelId) => `panel-${panelId}`;

/** Positions of `cells` (stride size), gathered into a new Float32Array. */
export function gather(positions, size, cells) {
  const out = new Float32Array(cells.length * size);
  for (let j = 0; j < cells.length; j++) {
    const i = cells[j];
    for (let c = 0; c < size; c++) out[j * size + c] = positions[i * size + c];
  }
  return out;
}

/** One GPU buffer per typed array, shared by every layer that draws it. */
export class BufferPool {
  constructor() {
    this.buffers = new Map(); // typed array → luma Buffer
    this.retired = []; // {buffer, frame}
    this.created = 0;
  }

  /** The buffer of `array` on `device` (created and uploaded once). */
  get(device, array) {
    let buffer = this.buffers.get(array);
    if (!buffer) {
      buffer = device.createBuffer({ data: array, usage: Buffer.VERTEX | Buffer.COPY_DST });
      this.buffers.set(array, buffer);
      this.created++;
    }
    return buffer;
  }

  /** Retire the buffers of arrays not in `used` (destroyed by sweep, a frame later). */
  keepOnly(used, frame) {
    for (const [array, buffer] of this.buffers) {
      if (used.has(array)) continue;
      this.buffers.delete(array);
      this.retired.push({ buffer, frame });
    }
  }

  /** Destroy retired buffers once a frame drawn after their retirement is done. */
  sweep(frame) {
    if (!this.retired.length) return;
    const keep = [];
    for (const r of this.retired) {
      if (frame > r.frame + 1) r.buffer.destroy();
      else keep.push(r);
    }
    this.retired = keep;
  }

  /** Bytes of the live buffers. */
  bytes() {
    let b = 0;
    for (const buffer of this.buffers.values()) b += buffer.byteLength;
    return b;
  }

  /** The device is gone (lost context, freeze): forget everything without destroying. */
  reset() {
    this.buffers.clear();
    this.retired = [];
  }
}

/**
 * The split state of a Scene: its extra panels, their rectangles and cameras. Panel 0 is the
 * scene itself (scene.viewState is its camera).
 */
export class SplitView {
  constructor(scene) {
    this.scene = scene;
    this.extra = []; // render panels: {id, dim, size, positions, colors, labels, selectionPositions, selectionShown, highlights, viewState, userMoved}
    this.linked = true;
    this.rects = [];
    this.layout();
  }

  /** [scene (panel 0), ...extra panels]. */
  panels() {
    return [this.scene, ...this.extra];
  }

  panelId(i) {
    return i === 0 ? 0 : this.extra[i - 1].id;
  }

  dims() {
    return this.panels().map((p) => p.dim);
  }

  layout() {
    const host = this.scene.host;
    this.rects = gridLayout(this.extra.length + 1, host.clientWidth || 800, host.clientHeight || 600);
  }

  /** A deck View per panel, each with its own controller. */
  views() {
    const ctl = this.scene.controllerProps.bind(this.scene);
    return this.panels().map((p, i) => {
      const r = this.rects[i];
      const common = { id: viewId(this.panelId(i)), x: r.x, y: r.y, width: r.width, height: r.height, controller: ctl(p.dim) };
      return p.dim === 3 ? new OrbitView({ ...common, orbitAxis: "Y", fovy: 40 }) : new OrthographicView({ ...common, flipY: false });
    });
  }

  viewStates() {
    const out = {};
    this.panels().forEach((p, i) => (out[viewId(this.panelId(i))] = p.viewState));
    return out;
  }

  /**
   * The user moved panel `id`'s camera: move it (and the linked ones). Each panel whose camera
   * moved tells its level of detail (render/lod.js), so it draws its subset while moving.
   */
  onViewState(id, viewState) {
    const i = this.panels().findIndex((p, k) => viewId(this.panelId(k)) === id);
    if (i < 0) return;
    const states = linkCameras(this.panels().map((p) => p.viewState), this.dims(), i, viewState, this.linked);
    let started = false;
    this.panels().forEach((p, k) => {
      if (states[k] !== p.viewState) {
        p.viewState = states[k];
        p.userMoved = true;
        if (p.lod && p.lod.moved()) started = true;
      }
    });
    this.scene.deck.setProps({ viewState: this.viewStates() });
    if (started) this.scene.update();
    this.scene.hooks.onViewState && this.scene.hooks.onViewState(this.scene.viewState);
  }

  /** Fit panel i's camera to its rectangle. */
  fit(i) {
    const p = this.panels()[i];
    const r = this.rects[i];
    p.viewState = homeView(r.width, r.height, p.dim);
    p.userMoved = false;
  }

  fitAll() {
    this.panels().forEach((_, i) => this.fit(i));
  }

  /** Canvas resized: new rectangles; fitted panels stay fitted. */
  resize() {
    this.layout();
    this.panels().forEach((p, i) => {
      if (!p.userMoved) this.fit(i);
    });
    this.scene.applyViews();
  }

  /** Deck's layerFilter: a panel's layers are drawn in its own view only. */
  filter({ layer, viewport }) {
    return viewport.id === viewId(layerPanel(layer.id));
  }

  /** The pickable cell layers of every panel: points, and the level-of-detail subset while drawn. */
  pointLayerIds() {
    return this.panels().flatMap((_, i) => [`${layerPrefix(this.panelId(i))}points`, `${layerPrefix(this.panelId(i))}points-lod`]);
  }

  /** Index of the panel under canvas CSS pixel (x, y), or -1. */
  at(x, y) {
    return panelAt(this.rects, x, y);
  }

  /** Selection rings and highlight marks of the extra panels (the visible cells the scene gathered). */
  gather() {
    const s = this.scene;
    for (const p of this.extra) {
      p.selectionShown = s.selectionShown;
      p.selectionPositions = s.shownSelectionPositions(p.positions, p.size);
      p.highlights = s.highlights.map((h) => {
        const shown = h.shown || keepVisible(h.cells, s.mask);
        return { id: h.id, rgb: h.rgb, shown, positions: gather(p.positions, p.size, shown) };
      });
    }
  }
}
