// The kNN graph for kNN grow: its adjacency rows are built and walked in the select worker
// (select/worker.js, select/knnworker.js), so neither the one-time build (a pass over every edge)
// nor a grow over many neighbours holds the page. Without a worker (node, a page whose workers
// fail to start) the same code runs here.

import { KnnJob } from "../select/knnworker.js";

export class KnnGraph {
  /**
   * @param {{nCells: number, createWorker?: (() => Worker) | null}} opts
   */
  constructor({ nCells, createWorker = null }) {
    this.nCells = nCells;
    this.pending = new Map(); // id -> {resolve, reject}
    this.nextId = 1;
    this.worker = null;
    this.buildMs = null; // how long the rows took to build (in the worker)
    if (createWorker) {
      try {
        this.worker = createWorker();
        this.worker.onmessage = (event) => this.answer(event.data);
        this.worker.onerror = (event) => this.fail(new Error(`kNN worker: ${event.message || "failed"}`));
      } catch (err) {
        console.warn("cellucid: no kNN worker, growing on the page", err);
        this.worker = null;
      }
    }
    if (!this.worker) this.local = new KnnJob((msg) => queueMicrotask(() => this.answer(msg)));
  }

  request(message, transfer = []) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.worker) this.worker.postMessage({ ...message, id }, transfer);
      else this.local.handle({ ...message, id });
    });
  }

  answer(msg) {
    const waiting = this.pending.get(msg.id);
    if (!waiting) return;
    this.pending.delete(msg.id);
    if (msg.type === "error") waiting.reject(new Error(msg.message));
    else waiting.resolve(msg);
  }

  fail(err) {
    for (const { reject } of this.pending.values()) reject(err);
    this.pending.clear();
  }

  /**
   * Build the rows from the edge list ({src, dst}, SPEC §2.8). The arrays are copied to the worker
   * (the edge overlay keeps using them).
   */
  async load(edges) {
    const reply = await this.request({ type: "graph", src: edges.src, dst: edges.dst, nCells: this.nCells });
    this.buildMs = reply.ms;
  }

  /**
   * The cells within `hops` steps of `cells` (sorted unique Uint32Array; only cells whose `mask`
   * entry is set are added).
   */
  async grow(cells, hops, mask = null) {
    return (await this.request({ type: "grow", cells, hops, mask })).cells;
  }

  terminate() {
    if (this.worker) this.worker.terminate();
    this.fail(new Error("the kNN graph was closed"));
  }
}
