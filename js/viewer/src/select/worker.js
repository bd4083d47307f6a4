// Entry of the select worker: kNN grow (select/knnworker.js) and the selection jobs that scan
// every cell, lasso and category pick (select/regionjob.js), off the main thread. js/build.mjs
// bundles this file on its own and embeds it in viewer.js; analysis/workerhost.js starts it.

import { KnnJob } from "./knnworker.js";
import { REGION_JOBS, runRegionJob } from "./regionjob.js";

const post = (message, transfer = []) => self.postMessage(message, transfer);
const job = new KnnJob(post);
self.onmessage = (event) => {
  const msg = event.data;
  if (!msg || !REGION_JOBS.has(msg.type)) return job.handle(msg);
  try {
    const t0 = performance.now();
    const { cells } = runRegionJob(msg);
    post({ id: msg.id, type: "cells", cells, ms: performance.now() - t0 }, [cells.buffer]);
  } catch (err) {
    post({ id: msg.id, error: String((err && err.message) || err) });
  }
};
