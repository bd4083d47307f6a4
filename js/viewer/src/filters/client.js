// The page's side of the filters worker: jobs (filters/jobs.js) posted with a copy of their
// data (transferred, so the page keeps its own arrays), answers matched by id. Without a worker
// (node, or one that fails to start) the same job runs on the calling thread.

import { WorkerJobs } from "../analysis/workerjobs.js";
import { runJob } from "./jobs.js";

export class FilterJobs {
  /** @param {{createWorker?: () => Worker}} [opts] */
  constructor({ createWorker = null } = {}) {
    this.jobs = new WorkerJobs({ createWorker, runLocal: ({ job }) => ({ answer: runJob(job) }), name: "filters" });
  }

  /** True once jobs run on the page (no worker, or it failed). */
  get broken() {
    return !this.jobs.createWorker;
  }

  /** The mask of `filter` over `data` (filters/model.js filterMask), off the page's thread. */
  async mask(filter, data) {
    return (await this.run({ op: "mask", values: data, filter })).mask;
  }

  /** Histogram of `values` (filters/histogram.js) off the page's thread. */
  histogram(values, { bins = 64, lo, hi } = {}) {
    return this.run({ op: "histogram", values, bins, lo, hi });
  }

  async run(job) {
    const copy = this.jobs.createWorker ? { ...job, values: job.values.slice() } : job;
    return (await this.jobs.run({ job: copy }, this.jobs.createWorker ? [copy.values.buffer] : [])).answer;
  }

  terminate() {
    this.jobs.terminate();
  }
}
