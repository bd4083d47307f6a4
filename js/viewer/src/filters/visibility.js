// The viewer's one visibility mask: the bridge's setVisibility layer (SPEC 4.2) AND every
// filter of a FilterSet. A cell is drawn, pickable, lassoable and selectable, counts in
// highlights, KNN edges and figure export exactly when mask[i] === 1. Pure module.
//
// setVisibility and the filters are independent layers: setVisibility(null, true) makes every
// cell visible *for the bridge layer* and leaves the filters alone; removing a filter never
// shows a cell Python hid.

import { FilterSet } from "./model.js";
import { radiiFromMask } from "./mask.js";

export class Visibility {
  constructor(n) {
    this.n = n;
    /** the setVisibility layer (1 = visible) */
    this.base = new Uint8Array(n).fill(1);
    this.filters = new FilterSet(n);
    /** the combined mask, updated in place by update() (see `version`) */
    this.mask = new Uint8Array(n).fill(1);
    this.count = n;
    this.version = 0;
    this.radiiBuffer = null;
  }

  /**
   * The setVisibility command: `cells` (sorted, unique, valid) or null for every cell.
   */
  setBase(cells, visible) {
    const v = visible ? 1 : 0;
    if (cells === null || cells === undefined) this.base.fill(v);
    else for (let j = 0; j < cells.length; j++) this.base[cells[j]] = v;
  }

  /** Recompute the combined mask (in place) and the count; returns the count. */
  update() {
    this.count = this.filters.apply(this.base, this.mask);
    this.version++;
    return this.count;
  }

  /** Is cell i visible? */
  isVisible(i) {
    return this.mask[i] === 1;
  }

  /**
   * Radius factors of the mask for the points layer: one Float32Array (4 bytes a cell), handed
   * out as a new view of it each time, since deck.gl uploads a binary attribute when its array
   * reference changes (no second buffer, no allocation per change).
   */
  radii() {
    if (!this.radiiBuffer) this.radiiBuffer = new Float32Array(this.n);
    radiiFromMask(this.mask, this.radiiBuffer);
    return new Float32Array(this.radiiBuffer.buffer, 0, this.n);
  }
}
