// Starts the viewer's workers from the code js/build.mjs embedded in viewer.js (the virtual
// modules "cellucid:compare-worker", the bundled analysis/worker.js, and
// "cellucid:filters-worker", filters/worker.js, as strings): a Blob URL needs no file next to the
// page, so the workers run offline, under /proxy/<port>/ and when the viewer itself was loaded
// from blob URLs (the widget's comm transport). The page's CSP allows `worker-src blob:`.

import COMPARE_SOURCE from "cellucid:compare-worker";
import FILTERS_SOURCE from "cellucid:filters-worker";

function startWorker(source, name) {
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  try {
    return new Worker(url, { name });
  } finally {
    // the worker has its script once it is constructed
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }
}

/** The compare-groups worker (analysis/worker.js). @returns {Worker} */
export function createCompareWorker() {
  return startWorker(COMPARE_SOURCE, "cellucid-compare");
}

/** The filters worker (filters/worker.js: histograms). @returns {Worker} */
export function createFiltersWorker() {
  return startWorker(FILTERS_SOURCE, "cellucid-filters");
}
