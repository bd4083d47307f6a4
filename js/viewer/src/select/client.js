// The page's side of the lasso and category pick in the select worker (select/worker.js,
// select/regionjob.js): a job is posted with copies of the arrays it reads (positions, codes,
// the visibility mask; structured clone, so the page keeps its own), the answer is the selected
// cells. Without a worker (node, or one that fails to start) the job runs on the calling thread.

import { WorkerJobs } from "../analysis/workerjobs.js";
import { runRegionJob } from "./regionjob.js";

export class SelectJobs {
  /** @param {{createWorker?: (() => Worker) | null}} [opts] */
  constructor({ createWorker = null } = {}) {
    this.jobs = new WorkerJobs({ createWorker, runLocal: runRegionJob, name: "select" });
    this.lastMs = null; // the last job's time in the worker
  }

  /** Did the last job run in the worker? */
  get worker() {
    return this.jobs.worker;
  }

  /** Cells inside a screen polygon: see regionjob.js lassoCells. */
  lasso({ positions, size, matrix, width, height, polygon, mask }) {
    return this.run({ type: "lasso", positions, size, matrix: Float64Array.from(matrix), width, height, polygon: Float64Array.from(polygon), mask });
  }

  /** Cells whose code is `code` (and whose mask entry is set). */
  category({ codes, code, mask }) {
    return this.run({ type: "category", codes, code, mask });
  }

  async run(message) {
    const answer = await this.jobs.run(message);
    this.lastMs = answer.ms ?? null;
    return answer.cells;
  }

  terminate() {
    this.jobs.terminate();
  }
}
