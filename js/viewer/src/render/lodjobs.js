// The jobs of the LOD worker (render/lodworker.js), as a plain class so node tests run them too:
// it builds the level-of-detail order of an embedding and keeps, per embedding on screen, the
// lasso's tree index (select/lassoindex.js) built from the same sort, so a lasso sends only a
// matrix, a polygon and (when it changed) the visibility mask, never the positions again.
//
// Messages (every answer also carries `held`: the keys of the embeddings kept, and `heldBytes`):
//   {type: "order", key, positions, size, keep, order}
//       → {order?: Uint32Array (transferred; when `order`), kept: boolean, ms}
//     positions is the worker's own copy (structured clone); with `keep` it is reordered into
//     the tree order and kept as the index of `key` (the clone itself is dropped)
//   {type: "lasso", key, matrix, width, height, polygon, mask?, maskToken, positions?}
//       → {cells: Uint32Array, bits: Int32Array (the same cells as a bitset), positions?:
//          Float32Array (all transferred), ms, stats}
//         | {missing: true} | {needMask: true}
//     positions (when asked): the selected cells' coordinates in tree order, for the page's
//     selection rings (select/lassoindex.js lassoTree)
//     mask (Uint8Array n or null = every cell) is sent only when it changed: the last one sent
//     is kept (as a bitset) with its token; a lasso whose token differs gets needMask
//   {type: "keep", keys} → {}   drop the indexes of every other embedding (panels not shown)
//
// Memory held (`heldBytes`): per kept embedding 4·size + 4 bytes a cell (its positions in tree
// order and the cell of each tree rank) and the node offsets (256 KB in 2D, 1 MB in 3D), plus the
// last visibility mask sent, as a bitset (1 bit a cell). The order is moved to the page, not kept.

import { mortonKeys, sortByKey, stratify } from "./lodorder.js";
import { lassoTree, maskBitset, treeIndex } from "../select/lassoindex.js";

export class LodJobs {
  /** @param {{keep?: boolean}} [opts] keep = false: build orders only, keep nothing (the page) */
  constructor({ keep = true } = {}) {
    this.canKeep = keep;
    this.indexes = new Map(); // key -> treeIndex
    this.maskBits = null; // the last visibility mask sent, as a bitset
    this.maskToken = null;
  }

  /** Answer one message: {answer, transfer}. Throws on a bad message. */
  handle(msg) {
    const type = msg.type || "order";
    let answer;
    let transfer = [];
    if (type === "order") {
      answer = this.build(msg);
      if (answer.order) transfer = [answer.order.buffer];
    } else if (type === "lasso") {
      answer = this.lasso(msg);
      if (answer.cells) transfer = [answer.cells.buffer, answer.bits.buffer];
      if (answer.positions) transfer.push(answer.positions.buffer);
    } else if (type === "keep") {
      answer = this.keep(msg.keys);
    } else {
      throw new Error(`unknown LOD job ${JSON.stringify(type)}`);
    }
    return { answer: { ...answer, held: [...this.indexes.keys()], heldBytes: this.bytes() }, transfer };
  }

  build({ key = null, positions, size, keep = false, order = true }) {
    const t0 = performance.now();
    let morton = mortonKeys(positions, size);
    const sorted = sortByKey(morton.keys, morton.bits);
    const kept = keep && this.canKeep && key !== null;
    if (kept) this.indexes.set(key, treeIndex(positions, size, morton, sorted));
    morton = null; // the keys can go before the order is made
    const out = order ? stratify(sorted) : null;
    return { order: out, kept, ms: performance.now() - t0 };
  }

  lasso({ key, matrix, width, height, polygon, mask, maskToken = null, positions = false }) {
    const index = this.indexes.get(key);
    if (!index) return { missing: true };
    if (mask !== undefined) {
      if (mask !== null && mask.length !== index.n) throw new Error(`the visibility mask has ${mask.length} entries for ${index.n} cells`);
      this.maskBits = mask === null ? null : maskBitset(mask);
      this.maskToken = maskToken;
    } else if (maskToken !== this.maskToken) {
      return { needMask: true };
    }
    const t0 = performance.now();
    const stats = {};
    const out = lassoTree(index, { matrix, width, height, polygon, maskBits: this.maskBits, stats, positions });
    return { cells: out.cells, bits: out.bits, ...(positions ? { positions: out.positions } : {}), ms: performance.now() - t0, stats };
  }

  keep(keys) {
    const wanted = new Set(keys);
    for (const key of [...this.indexes.keys()]) if (!wanted.has(key)) this.indexes.delete(key);
    if (!this.indexes.size) {
      this.maskBits = null;
      this.maskToken = null;
    }
    return {};
  }

  /** Bytes of the typed arrays kept (indexes and the last mask). */
  bytes() {
    let total = this.maskBits ? this.maskBits.byteLength : 0;
    for (const index of this.indexes.values()) total += index.bytes;
    return total;
  }
}
