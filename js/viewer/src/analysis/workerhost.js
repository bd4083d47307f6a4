// Starts the compare worker from the code js/build.mjs embedded in viewer.js (the virtual module
// "cellucid:compare-worker", the bundled analysis/worker.js as a string): a Blob URL needs no file
// next to the page, so the worker runs offline, under /proxy/<port>/ and when the viewer itself
// was loaded from blob URLs (the widget's comm transport). The page's CSP allows `worker-src blob:`.

import WORKER_SOURCE from "cellucid:compare-worker";

/** @returns {Worker} */
export function createCompareWorker() {
  const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
  try {
    return new Worker(url, { name: "cellucid-compare" });
  } finally {
    // the worker has its script once it is constructed
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }
}
