// Work the filters hand to their worker (filters/worker.js), as plain functions of a message:
// the same code runs in the worker and, without workers (node, a page that cannot start one),
// on the calling thread (filters/client.js). Pure module.
//
//   {op: "histogram", values: Float32Array, bins?, lo?, hi?}  → {hist}   (filters/histogram.js)
//   {op: "mask", values: codes or values, filter}            → {mask}   (filters/mask.js)

import { histogram } from "./histogram.js";
import { filterMask } from "./model.js";

/** Answer one job; throws on an unknown op. */
export function runJob(job) {
  if (job.op === "histogram") {
    const { values, bins, lo, hi } = job;
    return { hist: histogram(values, { bins, lo, hi }) };
  }
  if (job.op === "mask") return { mask: filterMask(job.filter, job.values) };
  throw new Error(`unknown filters job ${JSON.stringify(job.op)}`);
}

/** Typed arrays of an answer, to transfer rather than copy. */
export function transferables(answer) {
  if (answer.mask) return [answer.mask.buffer];
  return answer.hist ? [answer.hist.counts.buffer] : [];
}
