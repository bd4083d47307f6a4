// Entry of the filters worker: a histogram of a million values takes tens of milliseconds, so
// it runs here, off the page's thread. js/build.mjs bundles this file on its own and embeds it
// in viewer.js as a string, started from a Blob URL (analysis/workerhost.js).

import { runJob, transferables } from "./jobs.js";

self.onmessage = (event) => {
  const { id, job } = event.data;
  try {
    const answer = runJob(job);
    self.postMessage({ id, answer }, transferables(answer));
  } catch (err) {
    self.postMessage({ id, error: String((err && err.message) || err) });
  }
};
