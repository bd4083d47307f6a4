// Level of detail: while the camera moves (or above a point budget) a view draws a density-
// preserving subset of the visible cells instead of all of them, and everything again once the
// camera is still.
//
//   LodIndex  the LOD order of an embedding (render/lodorder.js), built in the LOD worker
//             (render/lodworker.js) and shared by every view of that embedding; the worker
//             also keeps the lasso's tree index of each embedding on screen (lasso jobs run
//             there: select/lassoindex.js).
//   LodView   one view's draw subset: which level its budget and camera allow, the subset's
//             cells, positions and colours (gathered, at most `budget` cells), and the map from a
//             pick on the subset back to its cell. A split-view panel keeps one LodView each.
//
// Memory: the order is 4 bytes a cell (one Uint32Array, shared); the LOD worker holds, for each
// embedding on screen (at most the 4 panels of the split view), its own copy of the positions in
// tree order and the tree's cell order (4·size + 4 bytes a cell: 120 MB for 10M cells in 2D,
// 160 MB in 3D) and the last visibility mask sent (1 bit a cell, only while a filter hides
// cells): LodIndex.heldBytes, the benchmark's memory report; a view's subset holds at most
// its budget of cells (4 + 4·size + 4 bytes each: 1M cells in 2D = 16 MB), whatever n is. No
// positions are duplicated per layer: the full points layer keeps its buffers (hidden, not
// dropped, so stopping is instant) and the subset layer draws from its own small arrays.

import { WorkerJobs } from "../analysis/workerjobs.js";
import { chooseLevel, stridePrefix, visiblePrefix } from "./lodorder.js";
import { LodJobs } from "./lodjobs.js";

/** Points drawn while the camera moves (a laptop GPU draws 1M points well within a frame). */
export const DEFAULT_MOVING_BUDGET = 1_000_000;
/** Time without camera change after which a view is still again (full detail). */
export const SETTLE_MS = 250;
/** Overlays (selection rings, highlight marks) draw at most this share of the budget while moving. */
const OVERLAY_SHARE = 0.25;

/**
 * LOD orders of embeddings (by positions array), built off the page's thread, and the lasso's
 * tree index of the embeddings on screen, kept in the LOD worker (render/lodjobs.js): a lasso
 * there sends a matrix and a polygon, not the positions.
 */
export class LodIndex {
  /** @param {{createWorker?: (() => Worker) | null}} [opts] without one, built on this thread */
  constructor({ createWorker = null } = {}) {
    // on the page (no worker): orders only, no second copy of the positions is kept
    const local = new LodJobs({ keep: false });
    this.jobs = new WorkerJobs({ createWorker, runLocal: (msg) => local.handle(msg).answer, name: "LOD" });
    this.cache = new WeakMap(); // positions -> {key, size, order: Promise<Uint32Array>, ready, reindex}
    this.nextKey = 1;
    this.buildMs = null;
    this.held = new Set(); // keys of the tree indexes the worker keeps (its last answer)
    this.heldBytes = 0; // typed-array bytes the worker keeps for them
    this.building = 0; // builds posted and not answered
    this.wanted = null; // key -> {positions, entry}: the embeddings on screen (keep)
    this.sentMaskToken = undefined; // the visibility mask the worker has
    this.lastLasso = null; // {ms, stats, cells} of the last lasso answered in the worker
  }

  /** Post a job to the worker (or run it here) and note which indexes it keeps. */
  post(message) {
    return this.jobs.run(message).then((answer) => {
      if (answer.held) {
        this.held = new Set(answer.held);
        this.heldBytes = answer.heldBytes;
        this.refresh();
      }
      return answer;
    });
  }

  /** Build the order (and the worker's tree index) of an entry; `order`: return the order. */
  build(entry, positions, order) {
    this.building++;
    // structured clone: the worker gets its own copy of the positions and keeps it (tree order)
    const done = this.post({ type: "order", key: entry.key, positions, size: entry.size, keep: true, order });
    done.then(
      () => this.building--,
      () => this.building--,
    );
    return done;
  }

  /** The LOD order of `positions` (stride `size`, 2 or 3), built once. */
  order(positions, size) {
    let entry = this.cache.get(positions);
    if (!entry) {
      entry = { key: this.nextKey++, size, order: null, ready: false, reindex: null };
      this.cache.set(positions, entry);
      entry.order = this.build(entry, positions, true).then(({ order, ms, kept }) => {
        this.buildMs = ms;
        entry.ready = true;
        entry.kept = kept;
        return order;
      });
      entry.order.catch(() => this.cache.delete(positions));
    }
    return entry.order;
  }

  /**
   * The embeddings on screen (the positions of each panel): the worker keeps their tree
   * indexes and drops the others'; one shown again is indexed again (in the background).
   */
  keep(shown) {
    const wanted = new Map();
    for (const positions of shown) {
      const entry = positions && this.cache.get(positions);
      if (entry) wanted.set(entry.key, { positions, entry });
    }
    const same = this.wanted && wanted.size === this.wanted.size && [...wanted.keys()].every((k) => this.wanted.has(k));
    this.wanted = wanted;
    if (!same && this.jobs.worker) this.post({ type: "keep", keys: [...wanted.keys()] }).catch((err) => console.error("cellucid: LOD worker", err));
    this.refresh();
  }

  /** Index again the embeddings on screen whose index the worker dropped. */
  refresh() {
    if (!this.wanted || !this.jobs.worker) return;
    for (const [key, { positions, entry }] of this.wanted) {
      if (!entry.ready || !entry.kept || entry.reindex || this.held.has(key)) continue;
      entry.reindex = this.build(entry, positions, false);
      entry.reindex.then(
        () => (entry.reindex = null),
        () => (entry.reindex = null),
      );
    }
  }

  /** Can a lasso on `positions` run on the worker's tree index now (indexed, worker idle)? */
  canLasso(positions) {
    const entry = positions && this.cache.get(positions);
    return !!(entry && this.jobs.worker && this.building === 0 && this.held.has(entry.key));
  }

  /**
   * Cells inside a screen polygon through the worker's tree index (select/lassoindex.js), or
   * null when it has none for `positions` (then lasso another way). `mask`: the visibility mask
   * (null = every cell), sent only when `maskToken` differs from the last one sent. With
   * `withPositions`, also the cells' coordinates (any order) for the selection rings.
   *
   * @returns {Promise<{cells: Uint32Array, bits: Int32Array, positions: Float32Array|null}|null>}
   */
  async lasso({ positions, matrix, width, height, polygon, mask = null, maskToken = null, withPositions = false }) {
    if (!this.canLasso(positions)) return null;
    const entry = this.cache.get(positions);
    const msg = { type: "lasso", key: entry.key, matrix: Float64Array.from(matrix), width, height, polygon: Float64Array.from(polygon), maskToken: mask ? maskToken : null, positions: withPositions };
    const withMask = () => {
      this.sentMaskToken = msg.maskToken;
      return { ...msg, mask };
    };
    let answer = await this.post(!mask || maskToken === null || maskToken !== this.sentMaskToken ? withMask() : msg);
    if (answer.needMask) answer = await this.post(withMask());
    if (answer.missing || !answer.cells) return null;
    this.lastLasso = { ms: answer.ms, stats: answer.stats, cells: answer.cells.length };
    return { cells: answer.cells, bits: answer.bits, positions: answer.positions || null };
  }

  terminate() {
    this.jobs.terminate();
  }
}

/** A typed array of at least `n` elements: `buf` when it is big enough, else a new one. */
function room(buf, Type, n) {
  return buf && buf.length >= n ? buf : new Type(Math.max(n, 1));
}

/** One view's level of detail: its budgets, its camera's motion, and its draw subset. */
export class LodView {
  /**
   * @param {object} [opts]
   * @param {number} [opts.movingBudget] points drawn while the camera moves
   * @param {number} [opts.stillBudget] points drawn when still (Infinity: all)
   * @param {number} [opts.settleMs] quiet time after the last camera change before full detail
   * @param {boolean} [opts.enabled]
   * @param {() => void} [opts.onChange] the view must be drawn again (settled, index ready)
   */
  constructor({ movingBudget = DEFAULT_MOVING_BUDGET, stillBudget = Infinity, settleMs = SETTLE_MS, enabled = true, onChange = null } = {}) {
    this.movingBudget = movingBudget;
    this.stillBudget = stillBudget;
    this.settleMs = settleMs;
    this.enabled = enabled;
    this.onChange = onChange;
    this.moving = false;
    this.timer = null;
    this.order = null;
    this.orderFor = null; // the positions array the order belongs to
    this.state = "none"; // none | building | ready | error
    this.current = null; // the last subset (reused while its inputs are the same)
    this.key = {};
    this.last = { level: 0, drawn: 0, visible: 0, budget: Infinity, active: false };
    this.buf = { cells: null, positions: null, colors: null };
    this.moves = 0;
  }

  setBudgets({ movingBudget, stillBudget, enabled }) {
    if (movingBudget !== undefined) this.movingBudget = movingBudget;
    if (stillBudget !== undefined) this.stillBudget = stillBudget;
    if (enabled !== undefined) this.enabled = enabled;
    this.current = null;
    this.changed();
  }

  /** The order of `positions` is ready (from LodIndex, or set directly). */
  setOrder(order, positions) {
    this.order = order;
    this.orderFor = positions;
    this.state = "ready";
    this.current = null;
  }

  /** Ask `index` for the order of new positions; the view draws in full until it is ready. */
  follow(index, positions, size) {
    if (this.orderFor === positions && this.order) return;
    this.order = null;
    this.orderFor = positions;
    this.current = null;
    if (!positions || size < 2) return;
    this.state = "building";
    index.order(positions, size).then(
      (order) => {
        if (this.orderFor !== positions) return; // another embedding meanwhile
        this.setOrder(order, positions);
        this.changed();
      },
      (err) => {
        if (this.orderFor !== positions) return;
        this.state = "error";
        this.error = String((err && err.message) || err);
        console.error("cellucid: LOD index failed; drawing every point", err);
      },
    );
  }

  /** The camera changed: moving until `settleMs` pass without another change. */
  moved() {
    this.moves++;
    const wasMoving = this.moving;
    this.moving = true;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.moving = false;
      this.timer = null;
      this.changed();
    }, this.settleMs);
    return !wasMoving;
  }

  /** Still now (no timer): for benchmarks and tests. */
  settle() {
    clearTimeout(this.timer);
    this.timer = null;
    if (!this.moving) return;
    this.moving = false;
    this.changed();
  }

  changed() {
    if (this.onChange) this.onChange();
  }

  /** A new view with this one's budgets and settle time (another panel of the split view). */
  sibling() {
    return new LodView({ movingBudget: this.movingBudget, stillBudget: this.stillBudget, settleMs: this.settleMs, enabled: this.enabled });
  }

  /** The view is gone (a removed panel): no timer, no more redraw requests. */
  detach() {
    clearTimeout(this.timer);
    this.timer = null;
    this.moving = false;
    this.onChange = null;
  }

  /**
   * The subset to draw instead of every point, or null for full detail.
   *
   * @param {{positions: Float32Array, size: number, colors: Uint8Array, mask: Uint8Array|null,
   *   visible: number, maskKey?: any}} scene  maskKey changes whenever the mask's content does
   * @returns {null | {count: number, level: number, cells: Uint32Array, positions: Float32Array, colors: Uint8Array}}
   */
  subset({ positions, size, colors, mask, visible, maskKey = mask }) {
    const { level, count, budget } = chooseLevel({ visible, moving: this.moving, movingBudget: this.movingBudget, stillBudget: this.stillBudget });
    // no order yet (building): a plain stride keeps the first frames of a huge dataset in budget
    const ordered = !!this.order && this.orderFor === positions;
    const usable = this.enabled && level > 0 && (ordered || this.state === "building");
    this.last = { level: usable ? level : 0, drawn: usable ? count : visible, visible, budget, active: !!usable };
    if (!usable) return null;
    const k = this.key;
    let cur = this.current;
    const order = ordered ? this.order : null;
    if (!cur || k.order !== order || k.positions !== positions || k.maskKey !== maskKey || k.count !== count) {
      const b = this.buf;
      b.cells = room(b.cells, Uint32Array, count);
      b.positions = room(b.positions, Float32Array, count * size);
      const n = Math.floor(positions.length / size);
      const found = order ? visiblePrefix(order, mask, count, b.cells) : stridePrefix(n, mask, visible, count, b.cells);
      const cells = b.cells.subarray(0, found);
      const pos = b.positions.subarray(0, found * size);
      for (let j = 0; j < found; j++) {
        const i = cells[j] * size;
        for (let c = 0; c < size; c++) pos[j * size + c] = positions[i + c];
      }
      cur = { count: found, level, cells, positions: pos, colors: null, stride: !order };
      this.key = { order, positions, maskKey, count, colors: null };
      this.last.drawn = found;
    }
    if (this.key.colors !== colors || !cur.colors) {
      const b = this.buf;
      b.colors = room(b.colors, Uint8Array, cur.count * 4);
      const out = b.colors.subarray(0, cur.count * 4); // a new view: deck uploads it again
      const cells = cur.cells;
      for (let j = 0; j < cur.count; j++) {
        const i = cells[j] * 4;
        out[j * 4] = colors[i];
        out[j * 4 + 1] = colors[i + 1];
        out[j * 4 + 2] = colors[i + 2];
        out[j * 4 + 3] = colors[i + 3];
      }
      cur = { ...cur, colors: out };
      this.key.colors = colors;
    }
    this.current = cur;
    return cur;
  }

  /** The cell of the subset's j-th point (a pick on the subset layer). */
  cellOf(j) {
    const cur = this.current;
    return cur && j >= 0 && j < cur.count ? cur.cells[j] : -1;
  }

  /**
   * Overlay thinning while the subset is drawn: draw every `step`-th of `count` overlay points
   * (at most OVERLAY_SHARE of the budget); {length, step} with step 1 = all.
   */
  thin(count) {
    if (!this.last.active) return { length: count, step: 1 };
    const cap = Math.max(1, Math.floor(this.last.budget * OVERLAY_SHARE));
    if (count <= cap) return { length: count, step: 1 };
    const step = Math.ceil(count / cap);
    return { length: Math.ceil(count / step), step };
  }

  /** Typed-array bytes this view and its order hold. */
  bytes() {
    const b = this.buf;
    let total = this.order ? this.order.byteLength : 0;
    for (const a of [b.cells, b.positions, b.colors]) if (a) total += a.byteLength;
    return total;
  }

  /** What is drawn now: for the bench HUD, tests and status displays. */
  status() {
    return { state: this.state, enabled: this.enabled, moving: this.moving, movingBudget: this.movingBudget, stillBudget: this.stillBudget, moves: this.moves, ...this.last, bytes: this.bytes() };
  }
}

/**
 * LodView options from the page's query: `lod=off` (never a subset), `lodbudget=N` (points while
 * moving), `lodstill=N` (points when still; default all), `lodsettle=MS`. Bad values throw with
 * the parameter's name, so a typo is not silently ignored.
 *
 * @param {URLSearchParams} query
 */
export function lodOptionsFromQuery(query) {
  const opts = {};
  const lod = query.get("lod");
  if (lod !== null) {
    if (!["on", "off", "1", "0"].includes(lod)) throw new Error(`lod=${lod}: use lod=on or lod=off`);
    opts.enabled = lod === "on" || lod === "1";
  }
  const count = (name, key, min) => {
    const raw = query.get(name);
    if (raw === null) return;
    const v = Number(raw);
    if (!Number.isInteger(v) || v < min) throw new Error(`${name}=${raw}: expected a whole number ≥ ${min}`);
    opts[key] = v;
  };
  count("lodbudget", "movingBudget", 1);
  count("lodstill", "stillBudget", 1);
  count("lodsettle", "settleMs", 0);
  return opts;
}
