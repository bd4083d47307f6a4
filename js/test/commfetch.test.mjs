// data/commfetch.js: requests under the comm base go to the parent window and come back as
// Response objects; other URLs use the real fetch; aborts, bodies and foreign messages.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { COMM_BASE, FETCH_TYPE, installCommFetch, REPLY_TYPE } from "../viewer/src/data/commfetch.js";

class FakeWindow {
  constructor() {
    this.listeners = [];
    this.location = { origin: "http://localhost:8888" };
    this.parent = { posted: [], postMessage: (data, origin, transfer) => this.parent.posted.push({ data, origin, transfer }) };
    this.realCalls = [];
    this.fetch = async (input) => {
      this.realCalls.push(String(input));
      return new Response("real");
    };
  }

  addEventListener(name, cb) {
    if (name === "message") this.listeners.push(cb);
  }

  removeEventListener(name, cb) {
    this.listeners = this.listeners.filter((l) => l !== cb);
  }

  deliver(data, source = this.parent) {
    for (const l of [...this.listeners]) l({ data, source });
  }
}

const reply = (win, id, status, text, headers = {}) =>
  win.deliver({ type: REPLY_TYPE, id, status, headers, body: new TextEncoder().encode(text).buffer });

describe("installCommFetch", () => {
  test("a GET under the base goes to the parent and resolves with its answer", async () => {
    const win = new FakeWindow();
    const comm = installCommFetch({ win, parentOrigin: "http://localhost:8888" });
    assert.equal(win.fetch, comm.fetch, "installed as window.fetch");
    const pending = win.fetch(new URL("_cellucid/health", COMM_BASE), { headers: { Accept: "application/json" } });
    await new Promise((r) => setImmediate(r));
    const [post] = win.parent.posted;
    assert.equal(post.origin, "http://localhost:8888");
    assert.deepEqual(
      { ...post.data, id: undefined },
      { type: FETCH_TYPE, id: undefined, path: "_cellucid/health", method: "GET", headers: { accept: "application/json" }, body: null },
    );
    reply(win, post.data.id, 200, '{"status":"ok"}', { "content-type": "application/json" });
    const res = await pending;
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/json");
    assert.deepEqual(await res.json(), { status: "ok" });
    assert.equal(comm.pending(), 0);
  });

  test("POST bodies are sent as transferred ArrayBuffers; query strings are kept", async () => {
    const win = new FakeWindow();
    installCommFetch({ win });
    const body = new Uint8Array([1, 2, 3, 4]).subarray(1, 3);
    const pending = win.fetch(`${COMM_BASE}_cellucid/session_bundle?viewerId=a&requestId=b`, { method: "post", body });
    await new Promise((r) => setImmediate(r));
    const [post] = win.parent.posted;
    assert.equal(post.data.path, "_cellucid/session_bundle?viewerId=a&requestId=b");
    assert.equal(post.data.method, "POST");
    assert.deepEqual([...new Uint8Array(post.data.body)], [2, 3]);
    assert.deepEqual(post.transfer, [post.data.body]);
    reply(win, post.data.id, 413, '{"status":"error"}');
    assert.equal((await pending).status, 413);
  });

  test("replies are matched by id and only accepted from the parent", async () => {
    const win = new FakeWindow();
    installCommFetch({ win });
    const a = win.fetch(`${COMM_BASE}a.json`);
    const b = win.fetch(`${COMM_BASE}b.json`);
    await new Promise((r) => setImmediate(r));
    const [pa, pb] = win.parent.posted.map((p) => p.data.id);
    win.deliver({ type: REPLY_TYPE, id: pb, status: 200, body: new ArrayBuffer(1) }, { not: "the parent" });
    reply(win, pb, 200, "B");
    reply(win, pa, 404, "A");
    assert.equal(await (await b).text(), "B");
    assert.equal((await a).status, 404);
  });

  test("other URLs use the real fetch; an abort rejects with AbortError", async () => {
    const win = new FakeWindow();
    const comm = installCommFetch({ win });
    await win.fetch("http://127.0.0.1:9/elsewhere");
    assert.deepEqual(win.realCalls, ["http://127.0.0.1:9/elsewhere"]);
    const controller = new AbortController();
    const pending = win.fetch(`${COMM_BASE}slow.bin`, { signal: controller.signal });
    await new Promise((r) => setImmediate(r));
    controller.abort();
    await assert.rejects(pending, { name: "AbortError" });
    assert.equal(comm.pending(), 0);
  });

  test("dispose rejects what is still waiting", async () => {
    const win = new FakeWindow();
    const comm = installCommFetch({ win });
    const pending = win.fetch(`${COMM_BASE}x.bin`);
    await new Promise((r) => setImmediate(r));
    comm.dispose();
    await assert.rejects(pending, /comm transport closed/);
  });
});
