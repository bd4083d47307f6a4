// Entry of the LOD worker: builds the level-of-detail order of an embedding (render/lodorder.js)
// off the page's thread (about 2 s for 10M cells). js/build.mjs bundles this file on its own
// and embeds it in viewer.js; analysis/workerhost.js starts it; render/lod.js LodIndex is its
// client.
//
// In:  {id, positions: Float32Array (a copy), size: 2 | 3}
// Out: {id, order: Uint32Array (transferred), ms} or {id, error}

import { buildLodOrder } from "./lodorder.js";

self.onmessage = (event) => {
  const { id, positions, size } = event.data;
  try {
    const t0 = performance.now();
    const order = buildLodOrder(positions, size);
    self.postMessage({ id, order, ms: performance.now() - t0 }, [order.buffer]);
  } catch (err) {
    self.postMessage({ id, error: String((err && err.message) || err) });
  }
};
