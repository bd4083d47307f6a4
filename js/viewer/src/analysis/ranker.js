// The job of the compare worker, as a plain object (the worker entry only wires messages to it,
// so node tests drive it directly). Messages in:
//
//   {type: "init", nCells, group: Uint32Array, reference: Uint32Array | null, method, tieCorrect,
//    schema: var_manifest._varSchema, total}
//   {type: "gene", index, name, tuple, bytes: Uint8Array}     one gene's stored payload (gunzipped)
//   {type: "end"}                                            no more genes
//
// Messages out (the vocabulary of the server's NDJSON answer, PROTOCOL.md):
//
//   {type: "ack", done}                                      after each gene (flow control)
//   {type: "rows", done, total, genes, names, scores, …}     every ROWS_BATCH genes, and at most
//                                                            FLUSH_MS after a gene (slow fetches)
//   {type: "result", genes, names, scores, …, pvals_adj}     sorted by score, highest first
//   {type: "error", message}
//
// Pure module: no DOM, runs in workers and node.

import { decodeContinuous } from "../data/decode.js";
import { benjaminiHochberg, groupMembership, orderByScore, rankGene, RankScratch, ROW_COLUMNS } from "./stats.js";

export const ROWS_BATCH = 32;
export const FLUSH_MS = 120;

export class Ranker {
  /**
   * @param {(msg: object, transfer?: Transferable[]) => void} post
   * @param {{now?: () => number, setTimer?: typeof setTimeout, clearTimer?: typeof clearTimeout}} [clock]
   */
  constructor(post, { now = () => Date.now(), setTimer = (fn, ms) => setTimeout(fn, ms), clearTimer = (t) => clearTimeout(t) } = {}) {
    this.post = post;
    this.now = now;
    this.setTimer = setTimer;
    this.clearTimer = clearTimer;
    this.timer = null;
    this.job = null;
  }

  handle(msg) {
    try {
      if (msg.type === "init") this.init(msg);
      else if (msg.type === "gene") this.gene(msg);
      else if (msg.type === "end") this.end();
    } catch (err) {
      this.post({ type: "error", message: String((err && err.message) || err) });
      this.job = null;
    }
  }

  init({ nCells, group, reference, method, tieCorrect, schema, total }) {
    const groups = groupMembership(nCells, group, reference);
    const columns = {};
    for (const c of ROW_COLUMNS) columns[c] = new Float64Array(total);
    this.job = {
      nCells,
      groups,
      opts: { method, tieCorrect: Boolean(tieCorrect) },
      schema,
      total,
      scratch: new RankScratch(groups.n1 + groups.n2, groups.n1),
      genes: new Int32Array(total),
      names: new Array(total),
      columns,
      done: 0,
      flushedAt: 0,
      lastFlush: this.now(),
    };
  }

  gene({ index, name, tuple, bytes }) {
    const job = this.job;
    if (!job) return; // cancelled or failed
    let values;
    try {
      values = decodeContinuous(bytes, job.schema, tuple, job.nCells);
    } catch (err) {
      throw new Error(`gene ${JSON.stringify(name)}: ${err.message}`);
    }
    const row = rankGene(values, job.groups, job.opts, job.scratch);
    const k = job.done++;
    job.genes[k] = index;
    job.names[k] = name;
    for (const c of ROW_COLUMNS) job.columns[c][k] = row[c];
    this.post({ type: "ack", done: job.done });
    if (job.done - job.flushedAt >= ROWS_BATCH || this.now() - job.lastFlush >= FLUSH_MS) this.flush();
    else if (this.timer === null) {
      // the next gene may be slow to come: show what is done meanwhile
      this.timer = this.setTimer(() => {
        this.timer = null;
        if (this.job === job) this.flush();
      }, FLUSH_MS);
    }
  }

  flush() {
    if (this.timer !== null) {
      this.clearTimer(this.timer);
      this.timer = null;
    }
    const job = this.job;
    const from = job.flushedAt;
    const to = job.done;
    if (to === from) return;
    const msg = { type: "rows", done: to, total: job.total, genes: job.genes.slice(from, to), names: job.names.slice(from, to) };
    for (const c of ROW_COLUMNS) msg[c] = job.columns[c].slice(from, to);
    job.flushedAt = to;
    job.lastFlush = this.now();
    this.post(msg);
  }

  end() {
    const job = this.job;
    if (!job) return;
    this.flush();
    const n = job.done;
    const scores = job.columns.scores.subarray(0, n);
    const order = orderByScore(scores);
    const adj = benjaminiHochberg(job.columns.pvals.subarray(0, n));
    const pick = (col) => Float64Array.from(order, (i) => col[i]);
    const msg = { type: "result", genes: Int32Array.from(order, (i) => job.genes[i]), names: Array.from(order, (i) => job.names[i]), pvals_adj: pick(adj) };
    for (const c of ROW_COLUMNS) msg[c] = pick(job.columns[c]);
    this.job = null;
    this.post(msg);
  }
}
