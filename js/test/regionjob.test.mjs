import assert from "node:assert/strict";
import { test } from "node:test";
import { lassoCells, runRegionJob } from "../viewer/src/select/regionjob.js";
import { SelectJobs } from "../viewer/src/select/client.js";
import { pointsInPolygon, projectToScreen } from "../viewer/src/select/lasso.js";
import { cellsWithCode } from "../viewer/src/select/sets.js";
import { rng } from "./helpers.mjs";

// a 3D camera-like matrix (column-major): scale, a little rotation, perspective w
const M = Float64Array.of(0.9, 0.1, 0.05, 0.02, -0.1, 0.9, 0.03, 0.01, 0.02, 0.05, 0.5, 0.1, 0.01, -0.02, 0.2, 1.5);

test("lassoCells (chunked) selects exactly what projecting everything and testing it selects", () => {
  const r = rng(3);
  for (const size of [2, 3]) {
    const n = 150_000; // more than two chunks
    const pos = Float32Array.from({ length: n * size }, () => r() * 2 - 1);
    const mask = Uint8Array.from({ length: n }, () => (r() < 0.8 ? 1 : 0));
    const poly = [100, 80, 500, 120, 420, 400, 250, 300, 120, 380];
    const expected = pointsInPolygon(projectToScreen(pos, size, M, 600, 480), poly, { visible: mask });
    const got = lassoCells(pos, size, M, 600, 480, poly, mask);
    assert.ok(expected.length > 1000, `a real selection (${expected.length})`);
    assert.deepEqual(got, expected);
  }
});

test("SelectJobs: lasso and category pick in a worker (copies), on the page without one", async () => {
  const r = rng(5);
  const n = 20_000;
  const pos = Float32Array.from({ length: n * 2 }, () => r() * 2 - 1);
  const codes = Uint8Array.from({ length: n }, () => Math.floor(r() * 7));
  const mask = Uint8Array.from({ length: n }, () => (r() < 0.9 ? 1 : 0));
  const poly = [0, 0, 300, 0, 300, 200, 0, 240];
  const lassoJob = { positions: pos, size: 2, matrix: M, width: 600, height: 480, polygon: poly, mask };
  const expectedLasso = lassoCells(pos, 2, M, 600, 480, poly, mask);
  const expectedCat = cellsWithCode(codes, 3, mask);
  const posted = [];
  class FakeWorker {
    postMessage(msg) {
      posted.push(msg.type);
      const data = structuredClone(msg); // what a real worker gets
      setTimeout(() => this.onmessage({ data: { id: data.id, ...runRegionJob(data), ms: 1 } }), 0);
    }
    terminate() {}
  }
  const jobs = new SelectJobs({ createWorker: () => new FakeWorker() });
  assert.deepEqual(await jobs.lasso(lassoJob), expectedLasso);
  assert.deepEqual(await jobs.category({ codes, code: 3, mask }), expectedCat);
  assert.deepEqual(posted, ["lasso", "category"]);
  const inline = new SelectJobs();
  assert.deepEqual(await inline.lasso(lassoJob), expectedLasso);
  class BrokenWorker {
    postMessage() {
      setTimeout(() => this.onerror({ message: "out of memory" }), 0);
    }
    terminate() {}
  }
  const broken = new SelectJobs({ createWorker: () => new BrokenWorker() });
  assert.deepEqual(await broken.category({ codes, code: 3, mask }), expectedCat, "a failed worker's job runs on the page");
  assert.throws(() => runRegionJob({ type: "nope" }), /unknown selection job/);
});
