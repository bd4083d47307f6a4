// Entry of the compare worker (static export folders): ranks genes off the main thread. js/build.mjs
// bundles this file on its own and embeds the code in viewer.js as a string, started from a Blob
// URL (analysis/workerhost.js), so it works offline, under /proxy/<port>/ and from blob pages.
// Cancel = the page terminates the worker.

import { Ranker } from "./ranker.js";

const ranker = new Ranker((msg) => self.postMessage(msg));
self.onmessage = (event) => ranker.handle(event.data);
