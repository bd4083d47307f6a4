// The page's side of the filters worker: jobs (filters/jobs.js) posted with a copy of their
// data (transferred, so the page keeps its own arrays), answers matched by id. Without a worker
// (node, or one that fails to start) the same job runs on the calling thread.

import { runJob } from "./jobs.js";

export class FilterJobs {
  /** @param {{createWorker?: () => Worker}} [opts] */
  constructor({ createWorker = null } = {}) {
    this.createWorker = createWorker;
    this.worker = null;
    this.pending = new Map(); // id -> {resolve, reject, job}
    this.nextId = 1;
    this.broken = !createWorker;
  }

  /** Histogram of `values` (filters/histogram.js) off the page's thread. */
  histogram(values, { bins = 64, lo, hi } = {}) {
    return this.run({ op: "histogram", values, bins, lo, hi });
  }

  run(job) {
    if (this.broken || !this.start()) return Promise.resolve().then(() => runJob(job));
    const id = this.nextId++;
    const copy = { ...job, values: job.values.slice() };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, job });
      this.worker.postMessage({ id, job: copy }, [copy.values.buffer]);
    });
  }

  start() {
    if (this.worker) return true;
    try {
      this.worker = this.createWorker();
    } catch {
      this.broken = true;
      return false;
    }
    this.worker.onmessage = (e) => {
      const { id, answer, error } = e.data;
      const p = this.pending.get(id);
      if (!p) return;
      this.pending.delete(id);
      if (error) p.reject(new Error(error));
      else p.resolve(answer);
    };
    // a worker that cannot run (CSP, out of memory): finish its jobs here, and every later one
    this.worker.onerror = (e) => {
      if (e && e.preventDefault) e.preventDefault();
      this.broken = true;
      const jobs = [...this.pending.values()];
      this.pending.clear();
      this.terminate();
      for (const p of jobs) {
        try {
          p.resolve(runJob(p.job));
        } catch (err) {
          p.reject(err);
        }
      }
    };
    return true;
  }

  terminate() {
    if (this.worker) this.worker.terminate();
    this.worker = null;
  }
}
