// One comparison (its groups, state and result table) and the Comparer that runs it: on the server
// when the page has one with the compare route (analysis/remote.js), else in the browser's worker
// (analysis/local.js). Both feed the same messages ("start", "rows", "result") to
// Comparison.handle.
//
// No DOM: the worker factory and fetch are parameters.

import { encodeCompareBody } from "./body.js";
import { runLocalCompare } from "./local.js";
import { NO_ROUTE, RouteError, requestCredentials, runServerCompare } from "./remote.js";
import { ResultTable } from "./result.js";

const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
let counter = 0;

function localId() {
  const bytes = new Uint8Array(4);
  globalThis.crypto.getRandomValues(bytes);
  return `cmp-${++counter}-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

export class Comparison {
  /**
   * @param {{method: string, tieCorrect: boolean, nGenes?: number|null,
   *   group: {label: string, cells: Uint32Array}, reference: "rest"|{label: string, cells: Uint32Array},
   *   name?: string}} spec
   */
  constructor({ method, tieCorrect, nGenes = null, group, reference, name }) {
    this.id = localId();
    this.createdAt = new Date().toISOString();
    this.method = method;
    this.tieCorrect = Boolean(tieCorrect);
    this.nGenes = nGenes;
    this.group = group;
    this.reference = reference;
    this.name = name || `${group.label} vs ${reference === "rest" ? "rest" : reference.label}`;
    this.status = "running"; // running | done | cancelled | error
    this.error = null;
    this.statistic = "";
    this.source = ""; // "server" | "browser"
    this.quantized = false;
    this.total = 0;
    this.done = 0;
    this.groupSize = group.cells.length;
    this.referenceSize = 0;
    this.result = new ResultTable(0);
  }

  /** The request of analysis/body.js and analysis/local.js. */
  request() {
    return { method: this.method, tieCorrect: this.tieCorrect, nGenes: this.nGenes, group: this.group, reference: this.reference };
  }

  /** Take one message of the answer ("start", "rows", "result"). */
  handle(msg) {
    if (msg.type === "start") {
      if (typeof msg.comparisonId === "string" && SAFE_ID.test(msg.comparisonId)) this.id = msg.comparisonId;
      this.statistic = String(msg.statistic || "");
      this.source = msg.source || "";
      this.quantized = Boolean(msg.quantized) || /quantis/i.test(this.statistic);
      this.total = Number(msg.nGenes) || 0;
      this.groupSize = Number(msg.groupSize) || this.groupSize;
      this.referenceSize = Number(msg.referenceSize) || 0;
      this.result = new ResultTable(this.total);
    } else if (msg.type === "rows") {
      this.result.addRows(msg);
      this.done = Number.isInteger(msg.done) ? msg.done : this.result.count;
    } else if (msg.type === "result") {
      this.result.setResult(msg);
      this.done = this.total || this.result.count;
      this.status = "done";
    }
  }

  /** Plain summary (tests, debugging): state and the first `top` rows. */
  summary(top = 10) {
    const rows = Array.from(this.result.top(top), (i) => this.result.row(i));
    return {
      id: this.id,
      name: this.name,
      status: this.status,
      error: this.error,
      method: this.method,
      tieCorrect: this.tieCorrect,
      statistic: this.statistic,
      source: this.source,
      quantized: this.quantized,
      done: this.done,
      total: this.total,
      groupSize: this.groupSize,
      referenceSize: this.referenceSize,
      group: this.group.label,
      reference: this.reference === "rest" ? "rest" : this.reference.label,
      rows,
    };
  }
}

export class Comparer {
  /**
   * @param {{
   *   nCells: number, datasetId: string, mode: "server"|"static", base: URL|string,
   *   credentials?: {viewerId: string, viewerToken: string}|null,
   *   genes: string[], schema: object|null,
   *   fetchGene: (index: number, signal: AbortSignal) => Promise<{bytes: Uint8Array, tuple: Array}>,
   *   createWorker: () => Worker, fetchImpl?: typeof fetch,
   * }} ctx `credentials` from the page query (else asked of POST _cellucid/viewers)
   */
  constructor(ctx) {
    this.ctx = ctx;
    this.queryCredentials = ctx.credentials || null;
    this.pageCredentials = null;
    this.serverRoute = ctx.mode === "server" ? null : false; // null: not known yet
  }

  get hasGenes() {
    return this.ctx.genes.length > 0;
  }

  async credentials(fresh = false) {
    if (this.queryCredentials) return this.queryCredentials;
    if (this.pageCredentials && !fresh) return this.pageCredentials;
    const got = await requestCredentials(this.ctx.base, this.ctx.fetchImpl);
    if (got === NO_ROUTE) return null;
    this.pageCredentials = got;
    return got;
  }

  /** Try the server; false when it has no compare route (then the browser computes). */
  async onServer(cmp, signal, onMessage) {
    const { base, datasetId, nCells, fetchImpl } = this.ctx;
    const body = encodeCompareBody(cmp.request(), nCells);
    for (let attempt = 0; attempt < 2; attempt++) {
      const credentials = await this.credentials(attempt > 0);
      if (!credentials) return false;
      try {
        const out = await runServerCompare({ base, credentials, datasetId, body, signal, onMessage, fetchImpl });
        return out !== NO_ROUTE;
      } catch (err) {
        // page credentials the server forgot (it keeps 64): ask for new ones once
        const stale = err instanceof RouteError && (err.status === 403 || err.status === 404) && !this.queryCredentials;
        if (!stale || attempt > 0) throw err;
      }
    }
    return false;
  }

  /**
   * Run a comparison to its end; `onUpdate` after each message.
   *
   * @param {Comparison} cmp
   * @param {AbortSignal} signal
   * @param {() => void} [onUpdate]
   */
  async run(cmp, signal, onUpdate = () => {}) {
    if (!this.hasGenes) throw new Error("this dataset has no genes to compare");
    const onMessage = (msg) => {
      cmp.handle(msg);
      onUpdate(msg);
    };
    if (this.serverRoute !== false) {
      const ran = await this.onServer(cmp, signal, onMessage);
      this.serverRoute = ran;
      if (ran) return;
    }
    const { nCells, genes, schema, fetchGene, createWorker } = this.ctx;
    await runLocalCompare({ nCells, genes, schema, fetchGene, createWorker, request: cmp.request(), signal, onMessage });
  }
}
