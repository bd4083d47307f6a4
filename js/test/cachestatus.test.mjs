import assert from "node:assert/strict";
import { test } from "node:test";
import { cacheStatusText, MAX_POLL_MS, nextPollMs, watchCacheStatus } from "../viewer/src/ui/cachestatus.js";

test("cacheStatusText: progress while building, nothing once ready", () => {
  assert.equal(cacheStatusText({ state: "building", progress: 0.426, error: null }), "gene cache 42%");
  assert.equal(cacheStatusText({ state: "pending", progress: null, error: null }), "gene cache: waiting for the file");
  assert.match(cacheStatusText({ state: "error", progress: 0.3, error: "disk full" }), /failed.*disk full/);
  for (const state of ["ready", "idle", "none"]) assert.equal(cacheStatusText({ state, progress: 1, error: null }), null);
  assert.equal(cacheStatusText(undefined), null);
});

test("watchCacheStatus: polls with backoff while building, stops and hides once ready", async () => {
  const answers = [
    { column_cache: { state: "pending", progress: null } },
    { column_cache: { state: "building", progress: 0.1 } },
    { column_cache: { state: "building", progress: 0.5 } },
    { column_cache: { state: "ready", progress: 1 } },
  ];
  const delays = [];
  const queue = [];
  const timers = { setTimeout: (fn, ms) => (delays.push(ms), queue.push(fn), queue.length), clearTimeout: () => {} };
  const el = { hidden: true, textContent: "", dataset: {} };
  const shown = [];
  let i = 0;
  const watch = watchCacheStatus(el, async () => answers[i++], { timers });
  const flush = () => new Promise((r) => setTimeout(r, 0));
  await flush();
  shown.push([el.hidden, el.textContent]);
  while (queue.length) {
    queue.shift()();
    await flush();
    shown.push([el.hidden, el.textContent]);
  }
  assert.deepEqual(shown, [
    [false, "gene cache: waiting for the file"],
    [false, "gene cache 10%"],
    [false, "gene cache 50%"],
    [true, ""],
  ]);
  assert.equal(watch.polls(), 4, "no poll after ready");
  assert.deepEqual(delays, [1000, 1500, 2250]);
  assert.equal(nextPollMs(9000), MAX_POLL_MS);
  // nothing to watch: no poll at all
  const idle = watchCacheStatus(el, async () => assert.fail("polled"), { initial: { column_cache: { state: "none" } }, timers });
  assert.equal(idle.polls(), 0);
  assert.equal(el.hidden, true);
});
