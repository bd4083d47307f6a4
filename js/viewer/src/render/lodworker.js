// Entry of the LOD worker: builds the level-of-detail order of an embedding (render/lodorder.js)
// off the page's thread (about 2 s for 10M cells), keeps the lasso's tree index of the
// embeddings on screen and answers lasso jobs on it (render/lodjobs.js: the messages).
// js/build.mjs bundles this file on its own and embeds it in viewer.js;
// analysis/workerhost.js starts it; render/lod.js LodIndex is its client.
//
// Memory: this worker holds a copy of the positions of each embedding on screen (in tree order)
// and its cell order: 4·size + 4 bytes a cell each, plus the visibility mask (1 bit a cell)
// once a filter hides cells. Embeddings no longer shown are dropped (the page says which).

import { LodJobs } from "./lodjobs.js";

const jobs = new LodJobs();
self.onmessage = (event) => {
  const msg = event.data;
  try {
    const { answer, transfer } = jobs.handle(msg);
    self.postMessage({ ...answer, id: msg.id }, transfer);
  } catch (err) {
    self.postMessage({ id: msg.id, error: String((err && err.message) || err), held: [...jobs.indexes.keys()], heldBytes: jobs.bytes() });
  }
};
