// The kNN worker's job (select/worker.js is its entry; KnnGraph in app/knngraph.js its client):
// keep the adjacency rows of the kNN graph and grow selections on them, off the main thread.
// Pure module: `post(message, transfer)` is injected, so node can test it.
//
// Messages in:  {id, type: "graph", src, dst, nCells}      build the rows (replaces any graph)
//               {id, type: "grow", cells, hops, mask}      grow (mask: Uint8Array or null)
// Messages out: {id, type: "ready", edges, ms}             the rows are built
//               {id, type: "cells", cells, ms}             the grown selection (its buffer transferred)
//               {id, type: "error", message}

import { buildAdjacency, growCells } from "./knn.js";

export class KnnJob {
  /** @param {(message: object, transfer?: Transferable[]) => void} post */
  constructor(post) {
    this.post = post;
    this.adjacency = null;
  }

  handle(msg) {
    const id = msg && msg.id;
    try {
      const t0 = performance.now();
      if (msg.type === "graph") {
        this.adjacency = buildAdjacency(msg.src, msg.dst, msg.nCells);
        this.post({ id, type: "ready", edges: msg.src.length, ms: performance.now() - t0 });
      } else if (msg.type === "grow") {
        if (!this.adjacency) throw new Error("no kNN graph loaded");
        const cells = growCells(this.adjacency, msg.cells, msg.hops, msg.mask || null);
        this.post({ id, type: "cells", cells, ms: performance.now() - t0 }, [cells.buffer]);
      } else {
        throw new Error(`unknown message type ${JSON.stringify(msg && msg.type)}`);
      }
    } catch (err) {
      this.post({ id, type: "error", message: String((err && err.message) || err) });
    }
  }
}
