// Entry of the select worker: kNN grow off the main thread (select/knnworker.js). js/build.mjs
// bundles this file on its own and embeds it in viewer.js; analysis/workerhost.js starts it.

import { KnnJob } from "./knnworker.js";

const job = new KnnJob((message, transfer = []) => self.postMessage(message, transfer));
self.onmessage = (event) => job.handle(event.data);
