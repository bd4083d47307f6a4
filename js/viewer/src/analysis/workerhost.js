// Starts the viewer's workers from the code js/build.mjs embedded in viewer.js (the virtual
// modules "cellucid:<name>-worker": each bundled worker entry as a string): a Blob URL needs no
// file next to the page, so the workers run offline, under /proxy/<port>/ and when the viewer
// itself was loaded from blob URLs (the widget's comm transport). The page's CSP allows
// `worker-src blob:`.
//
//   compare  analysis/worker.js  gene ranking for compare groups
//   filters  filters/worker.js   histograms of the filter panel
//   select   select/worker.js    kNN grow on the graph's adjacency rows, lasso, category pick
//   lod      render/lodworker.js the level-of-detail order of an embedding

import COMPARE_SOURCE from "cellucid:compare-worker";
import FILTERS_SOURCE from "cellucid:filters-worker";
import SELECT_SOURCE from "cellucid:select-worker";
import LOD_SOURCE from "cellucid:lod-worker";

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

/** The selection worker (select/worker.js: kNN grow). @returns {Worker} */
export function createSelectWorker() {
  return startWorker(SELECT_SOURCE, "cellucid-select");
}

/** The level-of-detail worker (render/lodworker.js). @returns {Worker} */
export function createLodWorker() {
  return startWorker(LOD_SOURCE, "cellucid-lod");
}
