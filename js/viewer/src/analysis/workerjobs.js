// A worker that answers jobs by id, with the same job run on the calling thread when there is no
// worker (node, a page that cannot start one) or when it fails (CSP, out of memory: its pending
// jobs and every later one then run here). Shared by the filters (histograms), the select jobs
// (lasso, category pick) and the LOD index.
//
// A job is posted as {...message, id}; the worker answers {id, error} or {id, ...answer}.

export class WorkerJobs {
  /**
   * @param {{createWorker?: (() => Worker) | null, runLocal: (message: object) => object, name?: string}} opts
   *   runLocal answers a message on this thread (the worker's answer without its id)
   */
  constructor({ createWorker = null, runLocal, name = "worker" }) {
    this.createWorker = createWorker;
    this.runLocal = runLocal;
    this.name = name;
    this.worker = null;
    this.pending = new Map(); // id -> {resolve, reject, message}
    this.nextId = 1;
  }

  /** Run `message` (its arrays copied to the worker, or moved when listed in `transfer`). */
  run(message, transfer = []) {
    if (!this.start()) return Promise.resolve().then(() => this.runLocal(message));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, message });
      this.worker.postMessage({ ...message, id }, transfer);
    });
  }

  start() {
    if (this.worker) return true;
    if (!this.createWorker) return false;
    try {
      this.worker = this.createWorker();
    } catch (err) {
      console.warn(`cellucid: the ${this.name} worker did not start; running its jobs on the page`, err);
      this.createWorker = null;
      return false;
    }
    this.worker.onmessage = (e) => {
      const answer = e.data;
      const p = this.pending.get(answer.id);
      if (!p) return;
      this.pending.delete(answer.id);
      if (answer.error) p.reject(new Error(answer.error));
      else p.resolve(answer);
    };
    this.worker.onerror = (e) => {
      if (e && e.preventDefault) e.preventDefault();
      const jobs = [...this.pending.values()];
      this.pending.clear();
      this.terminate();
      this.createWorker = null;
      for (const p of jobs) {
        try {
          p.resolve(this.runLocal(p.message));
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
