// The table of one comparison, filled while it runs: `rows` messages (unsorted, no adjusted p)
// add genes; the final `result` message replaces them with every column, sorted by score. The
// same messages come from the server (NDJSON, PROTOCOL.md) and from the browser's worker.
// Columns are Float64Array (NaN where the wire had null).
//
// Pure module: no DOM, runs in browsers and node.

import { numbers } from "./ndjson.js";

/** Numeric columns of a result, in table order. */
export const COLUMNS = Object.freeze([
  "scores",
  "logfoldchanges",
  "pvals",
  "pvals_adj",
  "pct_nz_group",
  "pct_nz_reference",
  "mean_group",
  "mean_reference",
]);

/** Columns a session bundle keeps (PROTOCOL.md "Session chunks"), after `names`. */
export const SESSION_COLUMNS = Object.freeze(["scores", "logfoldchanges", "pvals", "pvals_adj", "pct_nz_group", "pct_nz_reference"]);

export class ResultTable {
  /** @param {number} total genes expected (0: unknown) */
  constructor(total = 0) {
    this.total = total;
    this.count = 0;
    this.complete = false;
    this.genes = new Int32Array(Math.max(total, 16));
    this.names = [];
    this.columns = {};
    for (const c of COLUMNS) this.columns[c] = new Float64Array(this.genes.length).fill(NaN);
  }

  grow(need) {
    if (need <= this.genes.length) return;
    const size = Math.max(need, this.genes.length * 2);
    const genes = new Int32Array(size);
    genes.set(this.genes);
    this.genes = genes;
    for (const c of COLUMNS) {
      const col = new Float64Array(size).fill(NaN);
      col.set(this.columns[c]);
      this.columns[c] = col;
    }
  }

  /**
   * Add the genes of a `rows` message ({genes, names, scores, …}; any column may be missing).
   *
   * @param {object} msg
   */
  addRows(msg) {
    const k = msg.names.length;
    const at = this.count;
    this.grow(at + k);
    for (let i = 0; i < k; i++) {
      this.genes[at + i] = msg.genes ? msg.genes[i] : -1;
      this.names.push(String(msg.names[i]));
    }
    for (const c of COLUMNS) if (msg[c]) this.columns[c].set(numbers(msg[c]), at);
    this.count += k;
    if (Number.isInteger(msg.total)) this.total = msg.total;
  }

  /**
   * Replace everything with a final `result` message (sorted by score, highest first).
   *
   * @param {object} msg
   */
  setResult(msg) {
    this.count = 0;
    this.names = [];
    this.addRows(msg);
    this.complete = true;
  }

  /** Row i as a plain object {name, gene, scores, …}. */
  row(i) {
    const out = { name: this.names[i], gene: this.genes[i] };
    for (const c of COLUMNS) out[c] = this.columns[c][i];
    return out;
  }

  /**
   * Row indices sorted by a column ("names" or one of COLUMNS); NaN last either way.
   *
   * @param {string} column
   * @param {boolean} descending
   * @returns {Uint32Array}
   */
  order(column, descending) {
    const idx = Uint32Array.from({ length: this.count }, (_, i) => i);
    const sign = descending ? -1 : 1;
    if (column === "names") {
      const names = this.names;
      return idx.sort((a, b) => sign * (names[a] < names[b] ? -1 : names[a] > names[b] ? 1 : 0) || a - b);
    }
    const col = this.columns[column];
    if (!col) throw new Error(`unknown column ${JSON.stringify(column)}`);
    return idx.sort((a, b) => {
      const x = col[a];
      const y = col[b];
      if (Number.isNaN(x) || Number.isNaN(y)) return Number.isNaN(x) - Number.isNaN(y) || a - b;
      return sign * (x - y) || a - b;
    });
  }

  /** The first n rows by score, highest first (the final order once complete). */
  top(n) {
    const order = this.complete ? Uint32Array.from({ length: this.count }, (_, i) => i) : this.order("scores", true);
    return order.subarray(0, Math.min(n, order.length));
  }

  /** The session form (PROTOCOL.md): plain arrays; NaN becomes null in JSON. */
  toSession() {
    const out = { names: this.names.slice(0, this.count) };
    for (const c of SESSION_COLUMNS) out[c] = Array.from(this.columns[c].subarray(0, this.count));
    return out;
  }
}
