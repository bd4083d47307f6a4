// deck.gl scene: one Deck on our own canvas, an orthographic view (1D/2D) or an orbit
// view (3D), and layers fed only with binary attributes (typed arrays → GPU buffers).
//
// Changing an attribute = handing deck a NEW typed array (deck compares buffers by
// reference), so colour/size updates re-upload just that buffer.

import { COORDINATE_SYSTEM, Deck, OrbitView, OrthographicView } from "@deck.gl/core";
import { LineLayer, ScatterplotLayer, TextLayer } from "@deck.gl/layers";
import { projectToScreen } from "../select/lasso.js";
import { edgeVisibility, keepVisible } from "../filters/mask.js";
import { overlayStyle } from "./overlaystyle.js";
import { homeView } from "../app/panelmodel.js";
import { BufferPool, gather, isLodLayer, layerPanel, layerPrefix, SplitView, viewId } from "./views.js";

const ORTHO = new OrthographicView({ id: "ortho", flipY: false });
const ORBIT = new OrbitView({ id: "orbit", orbitAxis: "Y", fovy: 40 });

/** 1D layout: x from the embedding, y a deterministic jitter in [-0.1, 0.1] from a hash of the index. */
export function layout1d(x) {
  const out = new Float32Array(x.length * 2);
  for (let i = 0; i < x.length; i++) {
    let h = Math.imul(i ^ 0x9e3779b9, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    out[2 * i] = x[i];
    out[2 * i + 1] = ((h >>> 8) / 16777216 - 0.5) * 0.2;
  }
  return out;
}

/** Pointer movement (px) between press and release that still counts as a click. */
const CLICK_SLOP_PX = 4;

export class Scene {
  /**
   * @param {HTMLElement} host  element the canvas fills
   * @param {object} hooks      {onHover(info), onClick(info, event), onViewState(vs), onContextLost(), onFrame()}
   */
  constructor(host, hooks) {
    this.host = host;
    this.hooks = hooks;
    this.dim = 2;
    this.positions = null; // Float32Array, stride this.size
    this.size = 2;
    this.n = 0;
    this.colors = null; // Uint8Array n*4
    this.radii = null; // Float32Array n (0 = hidden)
    this.mask = null; // Uint8Array n, the viewer's visibility mask (null = all visible)
    this.labels = null; // [{text, position}] category labels, or null
    this.pointSize = 2;
    this.opacity = 0.85;
    this.dark = false;
    this.selection = new Uint32Array(0);
    this.selectionPositions = null;
    this.selectionOverlay = null; // {of, positions}: the selection's coordinates from the tool (setSelection)
    this.highlights = []; // {id, rgb, cells, positions}
    this.edges = null; // {src: Float32Array, dst: Float32Array, length}
    this.showEdges = false;
    this.vectors = null; // {segments: {src, dst, length}}
    this.showVectors = false;
    this.interactive = true;
    this.frozen = false;
    this.frames = 0;
    this.lod = null; // render/lod.js LodView: this view's draw subset (attachLod)
    this.lodIndex = null;
    this.split = null; // render/views.js SplitView while several panels are shown
    this.buffers = new BufferPool(); // GPU buffers shared by the panels (split view)
    this.createDeck();
  }

  createDeck() {
    this.canvas = document.createElement("canvas");
    this.canvas.className = "scene-canvas";
    this.host.replaceChildren(this.canvas);
    this.canvas.addEventListener("webglcontextlost", (e) => {
      e.preventDefault();
      if (!this.frozen) this.hooks.onContextLost && this.hooks.onContextLost();
    });
    // Clicks are picked here, at the click position, as soon as the button is released:
    // deck.gl's own click waits for a possible double click (a quick second click was lost)
    // and reused the last hover pick (a click without a hover first was lost).
    let down = null;
    this.canvas.addEventListener("pointerdown", (e) => {
      down = { x: e.offsetX, y: e.offsetY };
    });
    this.canvas.addEventListener("pointerup", (e) => {
      const start = down;
      down = null;
      if (!start || !this.deck || this.frozen) return;
      if (Math.hypot(e.offsetX - start.x, e.offsetY - start.y) > CLICK_SLOP_PX) return;
      const info = this.pickAt(e.offsetX, e.offsetY);
      this.hooks.onClick && this.hooks.onClick(info || { index: -1, layer: null }, { srcEvent: e });
    });
    this.viewState = this.viewState || this.homeViewState();
    this.deck = new Deck({
      canvas: this.canvas,
      width: "100%",
      height: "100%",
      views: this.deckViews(),
      viewState: this.deckViewState(),
      controller: this.split ? null : this.controllerProps(),
      layerFilter: (ctx) => !this.split || this.split.filter(ctx),
      layers: [],
      pickingRadius: 3,
      useDevicePixels: Math.min(window.devicePixelRatio || 1, 2),
      parameters: { clearColor: this.clearColor() },
      getCursor: ({ isDragging }) => (!this.interactive ? "crosshair" : isDragging ? "grabbing" : "default"),
      onViewStateChange: ({ viewState, viewId }) => {
        if (this.split) return this.split.onViewState(viewId, viewState);
        this.userMoved = true;
        this.setViewState(viewState);
        this.hooks.onViewState && this.hooks.onViewState(viewState);
      },
      // Until the user moves the camera, keep the fitted view fitted: the first fit can run
      // before the page layout settles (hidden host → fallback size), and resetCamera must
      // come back to exactly the view the page opened with.
      onResize: () => {
        if (this.frozen) return;
        if (this.split) this.split.resize();
        else if (!this.userMoved) this.fitView();
      },
      onDeviceInitialized: () => this.split && this.update(),
      onHover: (info) => this.hooks.onHover && this.hooks.onHover(this.lodPick(info)),
      onAfterRender: () => {
        this.frames++;
        this.buffers.sweep(this.frames);
        this.hooks.onFrame && this.hooks.onFrame();
      },
      onError: (err) => this.hooks.onError && this.hooks.onError(err),
    });
    this.update();
  }

  clearColor() {
    return this.dark ? [0.07, 0.08, 0.1, 1] : [1, 1, 1, 1];
  }

  controllerProps(dim = this.dim) {
    const nav = this.interactive;
    return { dragPan: nav, dragRotate: nav && dim === 3, doubleClickZoom: false, keyboard: false, inertia: false, scrollZoom: { smooth: false, speed: 0.01 } };
  }

  /** Fit [-1,1]^d (the normalised embedding) to the canvas. */
  homeViewState() {
    return homeView(this.host.clientWidth, this.host.clientHeight, this.dim);
  }

  // ---- views: one (single view) or one per panel (split view, render/views.js)
  deckViews() {
    if (this.split) return this.split.views();
    return this.dim === 3 ? ORBIT : ORTHO;
  }

  deckViewState() {
    return this.split ? this.split.viewStates() : this.viewState;
  }

  /** Hand deck the current views, cameras and controllers. */
  applyViews() {
    if (!this.deck) return;
    this.deck.setProps({ views: this.deckViews(), viewState: this.deckViewState(), controller: this.split ? null : this.controllerProps() });
  }

  /**
   * Extra panels of the split view: [{id, dim, positions (stored, stride dim), colors}] or null
   * (back to one view). Cameras of panels that exist already are kept; new ones are fitted.
   */
  setPanels(panels, { linked = true } = {}) {
    if (!panels || !panels.length) {
      if (this.split) {
        for (const p of this.split.extra) if (p.lod) p.lod.detach();
        this.split = null;
        this.fitView();
        this.applyViews();
      }
    } else {
      const fresh = !this.split;
      if (fresh) this.split = new SplitView(this);
      const old = new Map(this.split.extra.map((p) => [p.id, p]));
      this.split.extra = panels.map((spec) => {
        const prev = old.get(spec.id);
        old.delete(spec.id);
        const moved = prev && prev.dim === spec.dim && prev.userMoved;
        const positions = spec.dim === 1 ? (prev && prev.raw === spec.positions ? prev.positions : layout1d(spec.positions)) : spec.positions;
        const panel = { ...spec, raw: spec.positions, positions, size: spec.dim === 1 ? 2 : spec.dim, labels: spec.labels && spec.labels.length ? spec.labels : null, viewState: moved ? prev.viewState : spec.viewState || null, userMoved: !!moved || !!spec.viewState };
        panel.lod = this.panelLod(panel, prev && prev.lod);
        return panel;
      });
      for (const gone of old.values()) if (gone.lod) gone.lod.detach();
      this.split.linked = linked;
      this.split.layout();
      this.split.panels().forEach((p, i) => {
        if (!p.viewState || (!p.userMoved && (i > 0 || fresh))) this.split.fit(i);
      });
      this.split.gather();
      this.applyViews();
    }
    this.keepLodIndex();
    this.update();
  }

  /**
   * Move the camera (a user gesture or an animation): the level of detail follows the motion.
   * In a split view this is panel 0's camera (linked panels follow, render/views.js).
   */
  setViewState(viewState) {
    if (this.split) return this.split.onViewState(viewId(0), viewState);
    this.viewState = viewState;
    const started = this.lod ? this.lod.moved() : false;
    this.deck.setProps({ viewState });
    if (started) this.update();
  }

  // ---- level of detail (render/lod.js): one hook here, the logic there
  // Every panel of the split view has its own LodView (its camera moves on its own when the
  // cameras are not linked) with panel 0's budgets, following the LOD order of its own
  // positions: the one LodIndex keeps one order per positions array, so panels showing the same
  // embedding share one order and a panel with another embedding (or dimension) gets its own.
  /** Draw a density-preserving subset while moving / above a budget; index = shared LodIndex. */
  attachLod(view, index) {
    this.lod = view;
    this.lodIndex = index;
    view.onChange = () => this.update();
    if (this.positions) view.follow(index, this.positions, this.size);
    if (this.split) for (const p of this.split.extra) p.lod = this.panelLod(p, null);
    this.keepLodIndex();
    this.update();
  }

  /** Tell the LOD index which embeddings are on screen (its worker keeps their lasso index only). */
  keepLodIndex() {
    if (!this.lodIndex) return;
    const shown = [this, ...(this.split ? this.split.extra : [])].filter((p) => p.positions && p.size >= 2);
    this.lodIndex.keep(shown.map((p) => p.positions));
  }

  /** The LodView of an extra panel of the split view (`prev`: the one it had), or null without LOD. */
  panelLod(panel, prev) {
    if (!this.lod) return null;
    const lod = prev || this.lod.sibling();
    lod.onChange = () => this.update();
    if (panel.positions) lod.follow(this.lodIndex, panel.positions, panel.size);
    return lod;
  }

  /** Panel 0 (the scene) or the extra panel with this id. */
  panelById(id) {
    if (id === 0) return this;
    return (this.split && this.split.extra.find((p) => p.id === id)) || null;
  }

  /** The subset `panel` (default: the scene, panel 0) draws now (null: every point). */
  lodSubset(panel = this) {
    if (!panel.lod || !panel.positions || !panel.colors) return null;
    return panel.lod.subset({ positions: panel.positions, size: panel.size, colors: panel.colors, mask: this.mask, visible: this.mask ? this.visibleCount() : this.n, maskKey: this.radii });
  }

  visibleCount() {
    if (this.countFor !== this.radii) {
      let c = 0;
      const m = this.mask;
      for (let i = 0; i < m.length; i++) c += m[i];
      this.countFor = this.radii;
      this.countCache = c;
    }
    return this.countCache;
  }

  /** A pick on a panel's subset layer, as a pick of its cell on that panel's points layer. */
  lodPick(info) {
    if (!info || !info.layer || !isLodLayer(info.layer)) return info;
    const panel = this.panelById(layerPanel(info.layer.id));
    const index = panel && panel.lod ? panel.lod.cellOf(info.index) : -1;
    return { ...info, index, layer: index >= 0 ? panel.pointsLayerRef : null };
  }

  /** Every `step`-th overlay point of `panel` while its subset is drawn (attribute stride, no copy). */
  thinned(panel, count) {
    const t = panel.lod ? panel.lod.thin(count) : { length: count, step: 1 };
    return { length: t.length, stride: t.step > 1 ? { stride: t.step * panel.size * 4 } : {} };
  }

  resetCamera() {
    this.fitView();
  }

  /** Back to the fitted view (homeViewState for the current canvas size). */
  fitView() {
    this.userMoved = false;
    if (this.split) {
      this.split.fitAll();
      this.deck.setProps({ viewState: this.split.viewStates() });
      this.hooks.onViewState && this.hooks.onViewState(this.viewState);
      return;
    }
    this.viewState = this.homeViewState();
    this.deck.setProps({ viewState: this.viewState });
    this.hooks.onViewState && this.hooks.onViewState(this.viewState);
  }

  /** New embedding (dim 1/2/3): positions as stored in points_{d}d.bin. */
  setPositions(dim, raw) {
    const dimChanged = dim !== this.dim;
    this.dim = dim;
    this.positions = dim === 1 ? layout1d(raw) : raw;
    this.size = dim === 1 ? 2 : dim;
    this.n = raw.length / dim;
    this.gatherOverlays();
    if (this.edgeIndex) this.buildEdgeSegments();
    if (this.lod) this.lod.follow(this.lodIndex, this.positions, this.size);
    this.keepLodIndex();
    if (dimChanged || !this.viewState) {
      this.userMoved = false;
      this.viewState = this.homeViewState();
      if (this.split) this.split.fit(0);
      this.applyViews();
    }
    this.update();
  }

  setColors(colors) {
    this.colors = colors;
    this.update();
  }

  setStyle({ pointSize, opacity, dark }) {
    if (pointSize !== undefined) this.pointSize = pointSize;
    if (opacity !== undefined) this.opacity = opacity;
    if (dark !== undefined) {
      this.dark = dark;
      this.deck.setProps({ parameters: { clearColor: this.clearColor() } });
    }
    this.update();
  }

  setInteractive(on) {
    this.interactive = on;
    this.applyViews();
  }

  /**
   * The selection (sorted unique cells). `overlay`: {of, positions} when the tool that made it
   * already has the coordinates of its visible cells in the positions array `of` (any order:
   * the lasso's tree index), so the rings need not be gathered again.
   */
  setSelection(cells, overlay = null) {
    this.selection = cells;
    this.selectionOverlay = overlay;
    this.gatherOverlays();
    this.update();
  }

  /** Coordinates of the shown selection in `positions` (stride `size`), gathered unless given. */
  shownSelectionPositions(positions, size) {
    const sel = this.selectionShown;
    if (!sel || !sel.length) return null;
    const given = this.selectionOverlay;
    // the cells shown are a subset of the tool's (hidden ones dropped since): equal counts, same cells
    if (given && given.of === positions && given.positions.length === sel.length * size) return given.positions;
    return gather(positions, size, sel);
  }

  setHighlights(groups) {
    this.highlights = groups.map((g) => ({ ...g }));
    this.gatherOverlays();
    this.update();
  }

  // ---- visibility: the viewer's one mask hides points, overlays, edges, arrows and labels
  /** The visibility mask (Uint8Array n) and its radius factors (Float32Array n, a new reference). */
  setVisibleMask(mask, radii, count = null) {
    this.mask = mask;
    this.radii = radii;
    this.countFor = count === null ? null : radii; // visibleCount() counts when not given
    this.countCache = count;
    this.gatherOverlays();
    if (this.edgeIndex) this.maskEdges();
    if (this.vectorInput) this.buildVectors();
    this.update();
  }

  /** Selection rings and highlight marks of the visible cells only. */
  gatherOverlays() {
    const p = this.positions;
    const all = !this.mask || this.visibleCount() === this.n;
    const sel = p && this.selection.length ? (all ? this.selection : keepVisible(this.selection, this.mask)) : null;
    this.selectionShown = sel;
    this.selectionPositions = p ? this.shownSelectionPositions(p, this.size) : null;
    for (const h of this.highlights) {
      h.shown = p ? keepVisible(h.cells, this.mask) : null;
      h.positions = p ? gather(p, this.size, h.shown) : null;
    }
    if (this.split) this.split.gather();
  }

  /** Category labels: [{text, position: [x, y, z]}] or null (off). */
  setLabels(labels) {
    this.labels = labels && labels.length ? labels : null;
    this.update();
  }

  /** Labels of an extra panel of the split view. */
  setPanelLabels(id, labels) {
    const p = this.split && this.split.extra.find((q) => q.id === id);
    if (!p) return;
    p.labels = labels && labels.length ? labels : null;
    this.update();
  }

  /** Edge index arrays (src/dst, typed) → world-space segments for the current embedding. */
  setEdges(edgeIndex) {
    this.edgeIndex = edgeIndex;
    this.buildEdgeSegments();
    this.update();
  }

  buildEdgeSegments() {
    // Cap the drawn edges (deterministic stride) so huge graphs stay interactive.
    const stride = Math.max(1, Math.ceil(this.edgeIndex.src.length / MAX_EDGES));
    this.edges = { ...edgeSegments(this.edgeIndex, this.positions, this.size, stride), stride };
    this.maskEdges();
  }

  /**
   * A split-view panel's kNN edge segments: panel 0's when the panel shows the same positions,
   * else its own, built once per positions array from the same edges (same stride and order,
   * so the visibility widths are shared).
   */
  panelEdges(p) {
    if (!this.edges) return null;
    if (p === this || p.positions === this.positions) return this.edges;
    const own = p.edgeSegments;
    if (!own || own.of !== p.positions || own.from !== this.edges) {
      p.edgeSegments = { ...edgeSegments(this.edgeIndex, p.positions, p.size, this.edges.stride), of: p.positions, from: this.edges };
    }
    return { ...p.edgeSegments, widths: this.edges.widths };
  }

  edgeLayer(edges, st, id = "edges") {
    return new LineLayer({
      id,
      coordinateSystem: COORDINATE_SYSTEM.CARTESIAN,
      data: {
        length: edges.length,
        attributes: {
          getSourcePosition: { value: edges.src, size: 3 },
          getTargetPosition: { value: edges.dst, size: 3 },
          getWidth: { value: edges.widths, size: 1 },
        },
      },
      getColor: st.edge.color,
      widthScale: st.edge.width,
      widthUnits: "pixels",
      parameters: { depthWriteEnabled: false },
    });
  }

  vectorLayer(st, id = "vectors") {
    return new LineLayer({
      id,
      coordinateSystem: COORDINATE_SYSTEM.CARTESIAN,
      data: { length: this.vectors.length, attributes: { getSourcePosition: { value: this.vectors.src, size: 3 }, getTargetPosition: { value: this.vectors.dst, size: 3 } } },
      getColor: st.vector.color,
      getWidth: st.vector.width,
      widthUnits: "pixels",
      parameters: this.dim === 3 ? { depthCompare: "always" } : {},
    });
  }

  /** An edge is drawn only when both ends are visible: width 1 or 0 per drawn edge. */
  maskEdges() {
    const { src, dst } = this.edgeIndex;
    const vis = edgeVisibility(src, dst, this.mask, this.edges.stride);
    this.edges.widths = vis.widths;
    this.edges.shown = vis.count;
  }

  setShowEdges(on) {
    this.showEdges = on;
    this.update();
  }

  /** Vector arrows: subsample to ≤ maxArrows cells (deterministic stride); vec has stride dim. */
  setVectors(vec, dim, maxArrows = 15000) {
    this.vectorInput = vec ? { vec, dim, maxArrows } : null;
    if (!vec) this.vectors = null;
    else this.buildVectors();
    this.update();
  }

  /** Arrows of the visible cells among the subsampled ones. */
  buildVectors() {
    const { vec, dim, maxArrows } = this.vectorInput;
    const visible = this.mask;
    const n = this.n;
    const stride = Math.max(1, Math.ceil(n / maxArrows));
    const pos = this.positions;
    const k = this.size;
    let len = 0;
    const picks = [];
    for (let i = 0; i < n; i += stride) if (!visible || visible[i]) picks.push(i);
    // Median vector length sets the arrow scale: the median arrow is ~4% of the embedding.
    const lens = new Float32Array(picks.length);
    picks.forEach((i, j) => {
      let s = 0;
      for (let c = 0; c < dim; c++) s += vec[i * dim + c] ** 2;
      lens[j] = Math.sqrt(s);
    });
    const sorted = Float32Array.from(lens).sort();
    const med = sorted.length ? sorted[sorted.length >> 1] || 1e-9 : 1;
    const scale = 0.04 / med;
    const src = new Float32Array(picks.length * 9);
    const dst = new Float32Array(picks.length * 9);
    for (const i of picks) {
      const p = [pos[i * k], pos[i * k + 1] || 0, k > 2 ? pos[i * k + 2] : 0];
      const v = [vec[i * dim] * scale, dim > 1 ? vec[i * dim + 1] * scale : 0, dim > 2 ? vec[i * dim + 2] * scale : 0];
      const tip = [p[0] + v[0], p[1] + v[1], p[2] + v[2]];
      // Two barbs, rotated ±150° in the xy plane.
      const segs = [[p, tip]];
      for (const ang of [2.6, -2.6]) {
        const c = Math.cos(ang), s = Math.sin(ang);
        segs.push([tip, [tip[0] + 0.35 * (c * v[0] - s * v[1]), tip[1] + 0.35 * (s * v[0] + c * v[1]), tip[2] + 0.35 * v[2] * c]]);
      }
      for (const [a, b] of segs) {
        src.set(a, len * 3);
        dst.set(b, len * 3);
        len++;
      }
    }
    this.vectors = { src, dst, length: len, stride };
  }

  setShowVectors(on) {
    this.showVectors = on;
    this.update();
  }

  layers() {
    if (!this.positions || !this.colors || !this.radii) return [];
    const layers = [];
    const st = overlayStyle(this);
    const edges = this.showEdges && this.edges;
    // vector arrows belong to the dataset's embedding: panels showing the same positions
    const vectors = this.showVectors && this.vectors;
    if (edges) layers.push(this.edgeLayer(this.edges, st));
    const shared = this.sharedBuffers();
    layers.push(...this.cellLayers(this, st, "", shared));
    if (vectors) layers.push(this.vectorLayer(st));
    if (this.labels) layers.push(this.labelLayer(st.label));
    if (this.split) {
      for (const p of this.split.extra) {
        if (!p.colors) continue;
        const prefix = layerPrefix(p.id);
        if (edges) layers.push(this.edgeLayer(this.panelEdges(p), st, `${prefix}edges`));
        layers.push(...this.cellLayers(p, st, prefix, shared));
        if (vectors && p.positions === this.positions) layers.push(this.vectorLayer(st, `${prefix}vectors`));
        if (p.labels) layers.push(this.labelLayer(st.label, p.labels, `${prefix}labels`));
      }
    }
    return layers;
  }

  /**
   * Split view: the attribute sources of the points layers, {position(panel), radius} as shared
   * GPU buffers (one per embedding array, one for the radii); null in a single view (or before
   * the device exists), where the layer uploads its typed arrays itself.
   */
  sharedBuffers() {
    const device = this.deck && this.deck.device;
    if (!this.split || !device) {
      this.buffers.keepOnly(new Set(), this.frames);
      return null;
    }
    const used = new Set([this.radii]);
    // explicit strides: without a typed array deck would take the attribute's default element
    // size (8 bytes for the fp64-capable positions)
    const radius = { buffer: this.buffers.get(device, this.radii), type: "float32", size: 1, stride: 4, offset: 0 };
    const position = (p) => {
      used.add(p.positions);
      return { buffer: this.buffers.get(device, p.positions), type: "float32", size: p.size, stride: p.size * 4, offset: 0 };
    };
    const out = { radius, positions: new Map() };
    for (const p of this.split.panels()) if (p.positions) out.positions.set(p, position(p));
    this.buffers.keepOnly(used, this.frames);
    return out;
  }

  /**
   * The layers of one panel's cells: points, highlight marks, selection rings. `panel` is the
   * scene (panel 0) or an extra panel of the split view (same fields); `prefix` names its layers.
   */
  cellLayers(panel, st, prefix, shared) {
    const cs = COORDINATE_SYSTEM.CARTESIAN;
    const onTop = panel.dim === 3 ? { depthCompare: "always" } : {};
    const layers = [];
    const position = shared ? shared.positions.get(panel) : { value: panel.positions, size: panel.size };
    const points = {
      coordinateSystem: cs,
      radiusUnits: "pixels",
      radiusScale: this.pointSize,
      billboard: true,
      // 3D: hard-edged discs (fragments outside are discarded), so depth writes of
      // antialiased rims cannot hide the points behind them.
      antialiasing: panel.dim !== 3,
      opacity: this.opacity,
      pickable: true,
    };
    const sub = this.lodSubset(panel); // level of detail: hide the full layer (its buffers stay)
    panel.pointsLayerRef = new ScatterplotLayer({
      ...points,
      id: `${prefix}points`,
      visible: !sub,
      pickable: !sub,
      data: {
        length: this.n,
        attributes: {
          getPosition: position,
          getFillColor: { value: panel.colors, size: 4, normalized: true },
          getRadius: shared ? shared.radius : { value: this.radii, size: 1 },
        },
      },
    });
    layers.push(panel.pointsLayerRef);
    if (sub) {
      const attributes = { getPosition: { value: sub.positions, size: panel.size }, getFillColor: { value: sub.colors, size: 4, normalized: true } };
      layers.push(new ScatterplotLayer({ ...points, id: `${prefix}points-lod`, data: { length: sub.count, attributes }, getRadius: 1 }));
    }
    for (const h of panel.highlights) {
      if (!h.positions || !h.shown.length) continue;
      const t = this.thinned(panel, h.shown.length);
      layers.push(
        new ScatterplotLayer({
          id: `${prefix}hl-${h.id}`,
          coordinateSystem: cs,
          data: { length: t.length, attributes: { getPosition: { value: h.positions, size: panel.size, ...t.stride } } },
          radiusUnits: "pixels",
          getRadius: st.highlight.radius,
          getFillColor: [...h.rgb, st.highlight.alpha],
          stroked: true,
          getLineColor: st.highlight.stroke,
          lineWidthUnits: "pixels",
          getLineWidth: st.highlight.strokeWidth,
          billboard: true,
          parameters: onTop,
        }),
      );
    }
    if (panel.selectionPositions) {
      const t = this.thinned(panel, panel.selectionShown.length);
      layers.push(
        new ScatterplotLayer({
          id: `${prefix}selection`,
          coordinateSystem: cs,
          data: { length: t.length, attributes: { getPosition: { value: panel.selectionPositions, size: panel.size, ...t.stride } } },
          radiusUnits: "pixels",
          getRadius: st.selection.radius,
          filled: false,
          stroked: true,
          getLineColor: st.selection.stroke,
          lineWidthUnits: "pixels",
          getLineWidth: st.selection.strokeWidth,
          billboard: true,
          parameters: onTop,
        }),
      );
    }
    return layers;
  }

  /** Category labels: dark text with a light halo on light backgrounds, and the reverse. */
  labelLayer(st, labels = this.labels, id = "labels") {
    return new TextLayer({
      id,
      coordinateSystem: COORDINATE_SYSTEM.CARTESIAN,
      data: labels,
      getPosition: (d) => d.position,
      getText: (d) => d.text,
      getSize: st.size,
      sizeUnits: "pixels",
      getColor: st.color,
      outlineWidth: st.haloWidth,
      outlineColor: st.halo,
      fontSettings: { sdf: true, fontSize: 48, buffer: 6, radius: 12 },
      fontFamily: st.font,
      fontWeight: st.weight,
      characterSet: "auto",
      billboard: true,
      getTextAnchor: "middle",
      getAlignmentBaseline: "center",
      parameters: { depthCompare: "always", depthWriteEnabled: false },
      updateTriggers: { getColor: this.dark },
    });
  }

  update() {
    if (this.frozen || !this.deck) return;
    this.deck.setProps({ layers: this.layers() });
  }

  /**
   * deck's pick of a points layer at canvas CSS pixels (x, y), or null; a pick on a level-of-detail
   * subset layer comes back as a pick of its cell on the panel's points layer (lodPick).
   */
  pickAt(x, y) {
    if (!this.deck) return null;
    const layerIds = this.split ? this.split.pointLayerIds() : ["points", "points-lod"];
    return this.lodPick(this.deck.pickObject({ x, y, radius: 3, layerIds }));
  }

  /** The cell drawn at canvas CSS pixels (x, y), or null. */
  pickCell(x, y) {
    const info = this.pickAt(x, y);
    return info && info.index >= 0 ? info.index : null;
  }

  /** The viewport of panel `index` of the split view (0 = the scene's own; the only one otherwise). */
  viewport(index = 0) {
    const vps = this.deck && this.deck.getViewports();
    if (!vps) return undefined;
    if (!this.split) return vps[0];
    const id = `panel-${this.split.panelId(index)}`;
    return vps.find((v) => v.id === id);
  }

  /**
   * CSS-pixel canvas positions (x0,y0,x1,y1,…) of every cell in the current view; in a split
   * view, as drawn in the panel under canvas point `at` ([x, y]; panel 0 without one).
   */
  screenPositions(at = null) {
    if (!this.positions) return new Float32Array(0);
    const i = this.split && at ? Math.max(0, this.split.at(at[0], at[1])) : 0;
    const p = i === 0 ? this : this.split.extra[i - 1];
    return this.project(p.positions, p.size, i);
  }

  /** CSS-pixel canvas positions of world positions (stride 1-3) in panel `index`'s view. */
  project(positions, size, index = 0) {
    const vp = this.viewport(index);
    if (!vp) return new Float32Array(0);
    const out = projectToScreen(positions, size, vp.viewProjectionMatrix, vp.width, vp.height);
    if (vp.x || vp.y) {
      for (let k = 0; k < out.length; k += 2) {
        out[k] += vp.x;
        out[k + 1] += vp.y;
      }
    }
    return out;
  }

  /**
   * Draw now and return the canvas (valid until the next task). A figure shows every cell: a
   * view still drawing its level-of-detail subset (the camera just moved) settles first.
   */
  drawNow() {
    if (this.lod) this.lod.settle();
    if (this.split) for (const p of this.split.extra) if (p.lod) p.lod.settle();
    this.deck.redraw("export");
    return this.canvas;
  }

  /** Stop rendering and release the WebGL context (SPEC §4.5). Returns a data URL of the last frame. */
  freeze() {
    if (this.frozen) return this.lastFrame;
    let url = null;
    try {
      url = this.drawNow().toDataURL("image/png");
    } catch {
      url = null;
    }
    this.frozen = true;
    this.lastFrame = url;
    const gl = this.canvas.getContext("webgl2");
    try {
      this.deck.finalize();
    } catch {
      /* already gone */
    }
    this.deck = null;
    this.buffers.reset();
    const ext = gl && gl.getExtension("WEBGL_lose_context");
    if (ext) ext.loseContext();
    return url;
  }

  /** After a lost context: a fresh canvas and Deck, same typed arrays and camera. */
  rebuild() {
    try {
      if (this.deck) this.deck.finalize();
    } catch {
      /* lost */
    }
    this.deck = null;
    this.buffers.reset();
    this.frozen = false;
    this.createDeck();
    this.applyViews();
  }
}

/** Edges drawn at most (a deterministic stride over the graph's edges above it). */
const MAX_EDGES = 3_000_000;

/**
 * World-space segments of every `stride`-th edge of `edgeIndex` ({src, dst} cell arrays) in
 * `positions` (stride `size`), as 3-component float32 ends.
 */
function edgeSegments({ src, dst }, positions, size, stride) {
  const m = Math.floor((src.length + stride - 1) / stride);
  const s = new Float32Array(m * 3);
  const t = new Float32Array(m * 3);
  for (let j = 0, e = 0; e < src.length; e += stride, j++) {
    const a = src[e] * size;
    const b = dst[e] * size;
    for (let c = 0; c < size; c++) {
      s[j * 3 + c] = positions[a + c];
      t[j * 3 + c] = positions[b + c];
    }
  }
  return { src: s, dst: t, length: m };
}
