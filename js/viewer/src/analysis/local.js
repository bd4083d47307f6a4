// Compare in the browser (a static export folder, or a server without the compare route): the page
// fetches the gene files (through data/http.js, so relative URLs, gunzip and the comm transport
// behave as for colouring) a few at a time and hands the bytes to the compare worker, which decodes
// and ranks them (analysis/ranker.js) and streams rows back. At most WINDOW genes wait in the
// worker. Aborting the signal stops the fetches and terminates the worker.
//
// No DOM: the worker factory and the gene fetcher are parameters (node tests pass fakes).

import { abortError } from "../data/http.js";
import { describeStatistic } from "./stats.js";

export const CONCURRENCY = 4;
export const WINDOW = 12;

/**
 * Run one comparison in a worker.
 *
 * @param {{
 *   nCells: number, genes: string[], schema: object,
 *   fetchGene: (index: number, signal: AbortSignal) => Promise<{bytes: Uint8Array, tuple: Array}>,
 *   createWorker: () => Worker,
 *   request: {method: string, tieCorrect: boolean, group: {cells: Uint32Array}, reference: "rest"|{cells: Uint32Array}},
 *   signal?: AbortSignal,
 *   onMessage: (msg: object) => void,
 * }} opts `schema` is var_manifest._varSchema; messages are those of the server's answer
 *   ("start", "rows", "result"), "start" with `source: "browser"` and `quantized`
 * @returns {Promise<void>} resolves after the "result" message
 */
export function runLocalCompare({ nCells, genes, schema, fetchGene, createWorker, request, signal, onMessage }) {
  return new Promise((resolve, reject) => {
    if (signal && signal.aborted) return reject(abortError("The comparison was cancelled"));
    const total = genes.length;
    const inner = new AbortController();
    const worker = createWorker();
    let acked = 0;
    let next = 0;
    let inFlight = 0;
    let ended = false;
    let settled = false;
    let waiters = [];
    const wake = () => {
      const w = waiters;
      waiters = [];
      for (const r of w) r();
    };

    const finish = (err) => {
      if (settled) return;
      settled = true;
      inner.abort();
      worker.terminate();
      if (signal) signal.removeEventListener("abort", onAbort);
      wake();
      if (err) reject(err);
      else resolve();
    };
    const onAbort = () => finish(abortError("The comparison was cancelled"));
    if (signal) signal.addEventListener("abort", onAbort);

    worker.onmessage = (event) => {
      const msg = event.data;
      if (settled) return;
      if (msg.type === "ack") {
        acked = msg.done;
        wake();
        return;
      }
      if (msg.type === "error") return finish(new Error(msg.message));
      try {
        onMessage(msg);
      } catch (err) {
        return finish(err);
      }
      if (msg.type === "result") finish(null);
    };
    worker.onerror = (event) => {
      if (event && typeof event.preventDefault === "function") event.preventDefault();
      finish(new Error(`the compare worker failed: ${(event && event.message) || "unknown error"}`));
    };

    const reference = request.reference === "rest" ? null : request.reference.cells;
    const quantized = Boolean(schema && schema.quantized);
    onMessage({
      type: "start",
      source: "browser",
      method: request.method,
      tieCorrect: Boolean(request.tieCorrect),
      statistic: describeStatistic(request.method, request.tieCorrect, quantized),
      quantized,
      nGenes: total,
      groupSize: request.group.cells.length,
      referenceSize: reference ? reference.length : nCells - request.group.cells.length,
    });
    worker.postMessage({
      type: "init",
      nCells,
      group: request.group.cells,
      reference,
      method: request.method,
      tieCorrect: Boolean(request.tieCorrect),
      schema,
      total,
    });

    // Fetch lanes: each takes the next gene while fewer than WINDOW genes wait in the worker.
    const room = () => new Promise((r) => waiters.push(r));
    let posted = 0;
    async function lane() {
      while (!settled && next < total) {
        while (!settled && posted - acked + inFlight >= WINDOW) await room();
        if (settled || next >= total) return;
        const index = next++;
        inFlight++;
        const { bytes, tuple } = await fetchGene(index, inner.signal);
        inFlight--;
        if (settled) return;
        const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
        worker.postMessage({ type: "gene", index, name: genes[index], tuple, bytes: own }, [own.buffer]);
        posted++;
      }
    }
    const lanes = Array.from({ length: Math.min(CONCURRENCY, Math.max(total, 1)) }, lane);
    Promise.all(lanes).then(
      () => {
        if (settled || ended) return;
        ended = true;
        worker.postMessage({ type: "end" });
      },
      (err) => finish(err),
    );
  });
}
