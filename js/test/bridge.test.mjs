// Unit tests of the viewer bridge (js/viewer/src/bridge): the pure protocol helpers, and
// installBridge wired to a fake window, viewer, fetch and clock.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  checkCommand,
  classifyMessage,
  clickPayload,
  COMMAND_KEYS,
  EVENT_KEYS,
  groupsPayload,
  HoverThrottle,
  hoverPayload,
  isJsonSafe,
  KEEPALIVE_MAX_BYTES,
  OriginPin,
  Outbox,
  padPosition,
  parseCells,
  readyPayload,
  redactToken,
  sameSecret,
  selectionPayload,
  userFieldsPayload,
} from "../viewer/src/bridge/protocol.js";

const ID = "0123456789abcdef";
const TOKEN = "0123456789abcdef0123456789abcdef";
const ENV = { viewerId: ID, viewerToken: TOKEN };

/** A manual clock: setTimeout/clearTimeout run only when advance() passes their time. */
class FakeClock {
  constructor(start = 1000) {
    this.t = start;
    this.nextId = 1;
    this.timers = new Map();
    this.now = () => this.t;
    this.setTimeout = (fn, ms) => {
      const id = this.nextId++;
      this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
      return id;
    };
    this.clearTimeout = (id) => this.timers.delete(id);
  }

  advance(ms) {
    const end = this.t + ms;
    for (;;) {
      let next = null;
      for (const [id, timer] of this.timers) {
        if (timer.at <= end && (next === null || timer.at < next[1].at)) next = [id, timer];
      }
      if (next === null) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }
}

/** A decoder standing in for cellset.js decodeCells in the pure tests. */
function fakeDecode(value) {
  if (value.encoding !== "u32-base64") throw new Error("unsupported encoding");
  const bytes = Buffer.from(value.data, "base64");
  if (bytes.length !== 4 * value.count) throw new Error("length does not match count");
  return new Uint32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
}

function u32(cells) {
  return { encoding: "u32-base64", count: cells.length, data: Buffer.from(new Uint32Array(cells).buffer).toString("base64") };
}

describe("classifyMessage", () => {
  test("non-objects and objects without a string type are ignored", () => {
    for (const data of [null, "ping", 3, [], { type: 3, ...ENV }, { ...ENV }, new Map()]) {
      assert.equal(classifyMessage(data, ENV).verdict, "ignore", JSON.stringify(data));
    }
  });

  test("a wrong or missing token is ignored, silently", () => {
    assert.equal(classifyMessage({ type: "ping", viewerId: ID, viewerToken: "nope" }, ENV).verdict, "ignore");
    assert.equal(classifyMessage({ type: "ping", viewerId: ID }, ENV).verdict, "ignore");
    assert.equal(classifyMessage({ type: "ping", viewerId: ID, viewerToken: TOKEN.slice(1) }, ENV).verdict, "ignore");
  });

  test("the right token with another viewerId is rejected", () => {
    const result = classifyMessage({ type: "ping", viewerId: "ffffffffffffffff", viewerToken: TOKEN }, ENV);
    assert.equal(result.verdict, "reject");
    assert.match(result.reason, /ffffffffffffffff/);
  });

  test("our id and token authenticate", () => {
    assert.equal(classifyMessage({ type: "ping", ...ENV, requestId: "r" }, ENV).verdict, "authenticated");
  });

  test("a standalone viewer (no token) authenticates nothing", () => {
    const none = { viewerId: null, viewerToken: null };
    assert.equal(classifyMessage({ type: "ping", viewerId: null, viewerToken: null }, none).verdict, "ignore");
    assert.equal(classifyMessage({ type: "ping", viewerId: "", viewerToken: "" }, { viewerId: "", viewerToken: "" }).verdict, "ignore");
  });

  test("sameSecret compares whole strings", () => {
    assert.ok(sameSecret("abc", "abc"));
    assert.ok(!sameSecret("abc", "abd"));
    assert.ok(!sameSecret("abc", "abcd"));
    assert.ok(!sameSecret("abcd", "abc"));
    assert.ok(!sameSecret(undefined, "abc"));
  });
});

test("OriginPin keeps the first origin", () => {
  const pin = new OriginPin();
  assert.ok(pin.admit("http://127.0.0.1:8888"));
  assert.ok(pin.admit("http://127.0.0.1:8888"));
  assert.ok(!pin.admit("http://evil.example"));
  assert.equal(pin.origin, "http://127.0.0.1:8888");
});

describe("checkCommand", () => {
  const check = (data, nCells = 10) => checkCommand({ ...ENV, ...data }, { nCells, decode: fakeDecode });

  test("every command has exact keys: missing and extra keys are errors", () => {
    for (const [type, keys] of Object.entries(COMMAND_KEYS)) {
      const extra = check({ type, ...Object.fromEntries(keys.map((k) => [k, null])), bogus: 1 });
      assert.equal(extra.ok, false, type);
      assert.match(extra.reason, /does not take bogus/);
      if (keys.length) {
        const missing = check({ type });
        assert.equal(missing.ok, false, type);
        assert.match(missing.reason, new RegExp(`missing ${keys[0]}`));
      }
    }
  });

  test("highlight: a valid list and a binary set", () => {
    const ok = check({ type: "highlight", cells: [3, 1, 9], color: "#A0b1C2" });
    assert.ok(ok.ok);
    assert.deepEqual(Array.from(ok.command.cells), [3, 1, 9]);
    assert.ok(ok.command.cells instanceof Uint32Array);
    assert.equal(ok.command.color, "#A0b1C2");
    const binary = check({ type: "highlight", cells: u32([4, 2]), color: "#000000" });
    assert.ok(binary.ok, binary.reason);
    assert.deepEqual(Array.from(binary.command.cells), [4, 2]);
  });

  test("highlight: cells must be non-empty, unique, non-negative integers < n", () => {
    const bad = [[], [1, 1], [-1], [10], [1.5], ["1"], [true], [null], "1,2", { cells: 1 }, null, u32([3, 10]), u32([5, 5])];
    for (const cells of bad) {
      const result = check({ type: "highlight", cells, color: "#ff0000" });
      assert.equal(result.ok, false, JSON.stringify(cells));
      assert.equal(typeof result.reason, "string");
    }
  });

  test("highlight: an optional name (a non-empty string)", () => {
    const named = check({ type: "highlight", cells: [1], color: "#000000", name: "T cells" });
    assert.ok(named.ok, named.reason);
    assert.equal(named.command.name, "T cells");
    assert.equal(check({ type: "highlight", cells: [1], color: "#000000" }).command.name, undefined);
    assert.match(check({ type: "highlight", cells: [1], color: "#000000", name: "" }).reason, /highlight.name/);
    assert.match(check({ type: "highlight", cells: [1], color: "#000000", name: 3 }).reason, /highlight.name/);
  });

  test("addField: binary codes or values, one per cell", () => {
    const cat = check({ type: "addField", name: "f", kind: "category", categories: ["a", "b"], values: new Uint8Array(10) }, 10);
    assert.ok(cat.ok, cat.reason);
    assert.deepEqual(cat.command.categories, ["a", "b"]);
    assert.ok(cat.command.values instanceof Uint8Array);
    const num = check({ type: "addField", name: "g", kind: "continuous", categories: null, values: new Float32Array(10) }, 10);
    assert.ok(num.ok, num.reason);
    assert.equal(num.command.categories, null);
    const wide = check({ type: "addField", name: "w", kind: "category", categories: Array.from({ length: 300 }, (_, i) => `c${i}`), values: new Uint16Array(10) }, 10);
    assert.ok(wide.ok, wide.reason);
    const bad = [
      [{ name: "f", kind: "category", categories: ["a"], values: Array(10).fill(0) }, /binary/],
      [{ name: "f", kind: "category", categories: ["a"], values: new Uint8Array(9) }, /holds 9 values, the dataset has 10 cells/],
      [{ name: "f", kind: "category", categories: [], values: new Uint8Array(10) }, /non-empty list of strings/],
      [{ name: "f", kind: "category", categories: ["a", "a"], values: new Uint8Array(10) }, /must not repeat/],
      [{ name: "f", kind: "category", categories: Array.from({ length: 300 }, (_, i) => `c${i}`), values: new Uint8Array(10) }, /uint16/],
      [{ name: "f", kind: "continuous", categories: null, values: new Float64Array(10) }, /Float32Array/],
      [{ name: "f", kind: "continuous", categories: ["a"], values: new Float32Array(10) }, /null for a continuous/],
      [{ name: "f", kind: "text", categories: null, values: new Float32Array(10) }, /kind must be/],
      [{ name: "", kind: "continuous", categories: null, values: new Float32Array(10) }, /addField.name/],
      [{ name: "x".repeat(257), kind: "continuous", categories: null, values: new Float32Array(10) }, /more than 256/],
    ];
    for (const [keys, reason] of bad) {
      const result = check({ type: "addField", ...keys }, 10);
      assert.equal(result.ok, false, JSON.stringify(keys));
      assert.match(result.reason, reason);
    }
  });

  test("highlight: colour must be #RRGGBB", () => {
    for (const color of ["red", "#fff", "#ff00001", "ff0000", "#gg0000", 0xff0000, null]) {
      assert.equal(check({ type: "highlight", cells: [1], color }).ok, false, String(color));
    }
  });

  test("cells cannot be checked before the dataset is known", () => {
    const result = checkCommand({ ...ENV, type: "highlight", cells: [0], color: "#ff0000" }, { nCells: undefined, decode: fakeDecode });
    assert.equal(result.ok, false);
    assert.match(result.reason, /no dataset/);
  });

  test("setColorBy needs a non-empty string field", () => {
    assert.ok(check({ type: "setColorBy", field: "cluster" }).ok);
    for (const field of ["", 3, null, ["a"]]) assert.equal(check({ type: "setColorBy", field }).ok, false);
  });

  test("setVisibility: null means all cells, empty list allowed, visible must be a boolean", () => {
    const all = check({ type: "setVisibility", cells: null, visible: false });
    assert.ok(all.ok);
    assert.equal(all.command.cells, null);
    assert.equal(all.command.visible, false);
    assert.ok(check({ type: "setVisibility", cells: [], visible: true }).ok);
    assert.equal(check({ type: "setVisibility", cells: [1], visible: "yes" }).ok, false);
    assert.equal(check({ type: "setVisibility", cells: [11], visible: true }).ok, false);
  });

  test("setDimension takes 1, 2 or 3", () => {
    assert.equal(check({ type: "setDimension", dimension: 3 }).command.dimension, 3);
    for (const dimension of [0, 4, "2", null, 2.5]) assert.equal(check({ type: "setDimension", dimension }).ok, false, String(dimension));
    assert.equal(check({ type: "setDimension" }).ok, false);
  });

  test("cells may be a Uint32Array (the widget's binary form), still checked", () => {
    assert.deepEqual(Array.from(check({ type: "setSelection", cells: new Uint32Array([4, 1]) }).command.cells), [4, 1]);
    assert.equal(check({ type: "highlight", cells: new Uint32Array([1, 1]), color: "#00ff00" }).ok, false);
    assert.match(check({ type: "setSelection", cells: new Uint32Array([10]) }).reason, /not below the 10 cells/);
    assert.equal(check({ type: "setSelection", cells: new Int32Array([1]) }).ok, false);
  });

  test("setSelection takes a cell list (empty clears)", () => {
    assert.deepEqual(Array.from(check({ type: "setSelection", cells: [2, 0] }).command.cells), [2, 0]);
    assert.ok(check({ type: "setSelection", cells: [] }).ok);
    assert.equal(check({ type: "setSelection", cells: [2, 2] }).ok, false);
  });

  test("requestId commands need a non-empty string", () => {
    for (const type of ["ping", "debug_snapshot", "requestSessionBundle"]) {
      assert.equal(check({ type, requestId: "r1" }).command.requestId, "r1");
      assert.equal(check({ type, requestId: "" }).ok, false);
      assert.equal(check({ type, requestId: 5 }).ok, false);
    }
  });

  test("no-argument commands", () => {
    for (const type of ["clearHighlights", "resetCamera", "freeze"]) assert.ok(check({ type }).ok, type);
  });

  test("custom types pass their JSON payload without the envelope", () => {
    const result = check({ type: "myThing", a: [1, { b: "c" }], d: null });
    assert.ok(result.ok);
    assert.deepEqual(result.command, { type: "myThing", custom: true, payload: { a: [1, { b: "c" }], d: null } });
    assert.equal(check({ type: "myThing", when: new Date(0) }).ok, false);
    assert.equal(check({ type: "myThing", bytes: new Uint8Array(2) }).ok, false);
    assert.equal(check({ type: "myThing", x: Number.NaN }).ok, false);
    assert.equal(check({ type: "" }).ok, false);
  });

  test("isJsonSafe", () => {
    assert.ok(isJsonSafe({ a: [1, "x", true, null, { b: 2.5 }] }));
    assert.ok(!isJsonSafe({ a: undefined }));
    assert.ok(!isJsonSafe(() => 1));
    assert.ok(!isJsonSafe(Infinity));
  });

  test("parseCells reports the offending entry", () => {
    assert.throws(() => parseCells([0, 12], 10, fakeDecode), /cells\[1\] = 12/);
    assert.throws(() => parseCells([0, 4, 4], 10, fakeDecode), /4 twice/);
    assert.throws(() => parseCells({ encoding: "zip", data: "" }, 10, fakeDecode), /unsupported/);
  });
});

describe("event payloads", () => {
  test("positions are zero-padded to {x, y, z}", () => {
    assert.deepEqual(padPosition({ x: 1, y: 2 }), { x: 1, y: 2, z: 0 });
    assert.deepEqual(padPosition([0.5]), { x: 0.5, y: 0, z: 0 });
    assert.deepEqual(padPosition(new Float32Array([1, 2, 3])), { x: 1, y: 2, z: 3 });
    assert.deepEqual(padPosition({ x: Number.NaN, y: 1, z: 2 }), { x: 0, y: 1, z: 2 });
    assert.equal(padPosition(null), null);
  });

  test("hover payloads have exactly cell and position", () => {
    assert.deepEqual(hoverPayload({ cell: 4, position: { x: 1, y: 2 } }), { cell: 4, position: { x: 1, y: 2, z: 0 } });
    assert.deepEqual(hoverPayload({ cell: null, position: null }), { cell: null, position: null });
    assert.deepEqual(hoverPayload(null), { cell: null, position: null });
    assert.deepEqual(Object.keys(hoverPayload({ cell: 1, position: [1, 2], extra: 1 })), EVENT_KEYS.hover);
  });

  test("click: ctrl includes meta, nothing for empty space or other buttons", () => {
    assert.deepEqual(clickPayload({ cell: 3, button: 0, shift: true, ctrl: false, meta: true }), { cell: 3, button: 0, shift: true, ctrl: true });
    assert.deepEqual(clickPayload({ cell: 3, button: 2, shift: false, ctrl: false }), { cell: 3, button: 2, shift: false, ctrl: false });
    assert.equal(clickPayload({ cell: null, button: 0 }), null);
    assert.equal(clickPayload({ cell: 3, button: 3 }), null);
    assert.deepEqual(Object.keys(clickPayload({ cell: 1, button: 1, x: 5 })), EVENT_KEYS.click);
  });

  test("ready carries one dimension number", () => {
    assert.deepEqual(readyPayload({ n_cells: 5, dimensions: 2 }), { n_cells: 5, dimensions: 2 });
    assert.deepEqual(readyPayload({ n_cells: 5, dimensions: [2, 3] }, { dim: 3 }), { n_cells: 5, dimensions: 3 });
    assert.deepEqual(readyPayload({ n_cells: 5, dimensions: [1, 2] }, { dim: 3 }), { n_cells: 5, dimensions: 2 });
    assert.deepEqual(readyPayload({}, { nCells: 7, dim: 1 }), { n_cells: 7, dimensions: 1 });
  });

  test("selections: a list up to 1,000 cells, then the smaller binary form", async () => {
    const { encodeCellsForEvent } = await import("../viewer/src/select/cellset.js");
    const range = (k) => Uint32Array.from({ length: k }, (_, i) => i);
    const small = selectionPayload({ cells: range(1000), source: "lasso" }, 5000, encodeCellsForEvent);
    assert.ok(Array.isArray(small.cells));
    assert.equal(small.cells.length, 1000);
    const dense = selectionPayload({ cells: range(1001), source: "knn" }, 5000, encodeCellsForEvent);
    assert.deepEqual(Object.keys(dense), EVENT_KEYS.selection);
    assert.equal(dense.source, "knn");
    assert.equal(dense.cells.encoding, "bitset-base64");
    assert.equal(dense.cells.count, 1001);
    const sparse = selectionPayload({ cells: range(1001) }, 1_000_000, encodeCellsForEvent);
    assert.equal(sparse.cells.encoding, "u32-base64");
    assert.equal(sparse.source, "lasso", "a missing source defaults to lasso");
  });

  test("groups: every group with its name, colour, visibility and cells (binary when large)", async () => {
    const { encodeCellsForEvent } = await import("../viewer/src/select/cellset.js");
    const groups = [
      { id: "group-1", label: "T", color: "#ff0000", cells: Uint32Array.of(1, 5) },
      { id: "group-2", label: "B", color: "#00ff00", visible: false, cells: Uint32Array.from({ length: 2000 }, (_, i) => i) },
    ];
    const payload = groupsPayload(groups, 4000, encodeCellsForEvent);
    assert.deepEqual(Object.keys(payload), EVENT_KEYS.groups);
    assert.deepEqual(payload.groups[0], { id: "group-1", name: "T", color: "#ff0000", visible: true, cells: [1, 5] });
    assert.equal(payload.groups[1].visible, false);
    assert.equal(payload.groups[1].cells.encoding, "bitset-base64");
    const fields = userFieldsPayload([{ key: "a", kind: "category", categories: ["x"], origin: "annotation" }, { key: "b", kind: "continuous", categories: null, origin: "python" }]);
    assert.deepEqual(Object.keys(fields), EVENT_KEYS.user_fields);
    assert.deepEqual(fields.fields[1], { key: "b", kind: "continuous", categories: null, origin: "python" });
  });

  test("debug snapshots never show the token", () => {
    const href = redactToken(`http://127.0.0.1:8765/?jupyter=true&viewerId=${ID}&viewerToken=${TOKEN}`);
    assert.ok(!href.includes(TOKEN));
    assert.match(href, /viewerId=0123456789abcdef/);
  });
});

describe("HoverThrottle", () => {
  function setup() {
    const clock = new FakeClock();
    const sent = [];
    const throttle = new HoverThrottle((p) => sent.push({ t: clock.t, ...p }), { now: clock.now, timers: clock });
    return { clock, sent, throttle };
  }
  const at = (cell, x = cell) => ({ cell, position: { x, y: 0, z: 0 } });

  test("the first hover goes at once, the latest of a burst when the gap ends", () => {
    const { clock, sent, throttle } = setup();
    throttle.push(at(1));
    assert.equal(sent.length, 1);
    for (let cell = 2; cell <= 9; cell++) {
      clock.advance(5);
      throttle.push(at(cell));
    }
    assert.equal(sent.length, 1, "nothing inside the 50 ms gap");
    clock.advance(50);
    assert.deepEqual(sent.map((e) => e.cell), [1, 9]);
    assert.equal(sent[1].t - sent[0].t, 50);
  });

  test("a steady stream gives one event per 50 ms and keeps the final position", () => {
    const { clock, sent, throttle } = setup();
    for (let i = 0; i < 200; i++) {
      throttle.push(at(i));
      clock.advance(1);
    }
    clock.advance(100);
    assert.ok(sent.length >= 4 && sent.length <= 5, `${sent.length} events`);
    for (let i = 1; i < sent.length; i++) assert.ok(sent[i].t - sent[i - 1].t >= 50);
    assert.equal(sent.at(-1).cell, 199);
  });

  test("the same cell again is suppressed; leaving is sent once", () => {
    const { clock, sent, throttle } = setup();
    throttle.push(at(4, 0.1));
    clock.advance(60);
    throttle.push(at(4, 0.2));
    clock.advance(60);
    throttle.push(at(5));
    clock.advance(10);
    throttle.push(at(5, 0.3));
    throttle.push(at(4, 0.4));
    throttle.push(at(5, 0.5));
    clock.advance(60);
    throttle.push({ cell: null, position: null });
    clock.advance(60);
    throttle.push({ cell: null, position: null });
    clock.advance(60);
    assert.deepEqual(sent.map((e) => e.cell), [4, 5, null]);
    assert.equal(sent[2].position, null);
  });

  test("flush sends what is pending now; cancel drops it", () => {
    const { clock, sent, throttle } = setup();
    throttle.push(at(1));
    throttle.push(at(2));
    throttle.flush();
    assert.deepEqual(sent.map((e) => e.cell), [1, 2]);
    throttle.push(at(3));
    throttle.cancel();
    clock.advance(100);
    assert.equal(sent.length, 2);
  });
});

describe("Outbox", () => {
  test("posts one at a time, in order, merging queued hovers and surviving errors", async () => {
    const started = [];
    const releases = [];
    const errors = [];
    const outbox = new Outbox(
      (body) => {
        started.push(body.n);
        return new Promise((resolve, reject) => releases.push(body.n === 3 ? () => reject(new Error("boom")) : resolve));
      },
      { onError: (err, body) => errors.push([err.message, body.n]) },
    );
    outbox.push({ type: "ready", n: 1 });
    outbox.push({ type: "hover", n: 2 });
    outbox.push({ type: "hover", n: 3 });
    outbox.push({ type: "click", n: 4 });
    outbox.push({ type: "hover", n: 5 });
    assert.deepEqual(started, [1], "one request in flight");
    while (releases.length) {
      releases.shift()();
      await new Promise((r) => setImmediate(r));
    }
    await outbox.idle();
    assert.deepEqual(started, [1, 3, 4, 5], "hover 2 was replaced by hover 3 while queued");
    assert.deepEqual(errors, [["boom", 3]]);
  });
});

// ---- installBridge on a fake window ---------------------------------------------------------

const PAGE = "http://127.0.0.1:8765/sub/index.html?jupyter=false";

class FakeWindow {
  constructor({ href = PAGE, parent = null } = {}) {
    const url = new URL(href);
    this.location = { href, origin: url.origin, ancestorOrigins: parent ? [parent.origin] : [] };
    this.navigator = { userAgent: "FakeBrowser/1.0" };
    this.listeners = new Map();
    this.parent = parent ?? this;
  }

  addEventListener(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name).add(fn);
  }

  removeEventListener(name, fn) {
    this.listeners.get(name)?.delete(fn);
  }

  dispatch(name, event) {
    for (const fn of this.listeners.get(name) ?? []) fn(event);
  }

  message(data, { origin = "http://127.0.0.1:8765", source = this } = {}) {
    this.dispatch("message", { data, origin, source });
  }
}

class FakeParent {
  constructor(origin) {
    this.origin = origin;
    this.posted = [];
  }

  postMessage(body, targetOrigin) {
    this.posted.push({ body: structuredClone(body), targetOrigin });
  }
}

class FakeViewer {
  constructor(nCells = 20) {
    this.nCells = nCells;
    this.dim = 2;
    this.handlers = new Map();
    this.calls = [];
    for (const name of ["highlight", "clearHighlights", "setVisibility", "setSelection", "setDimension", "resetCamera", "freeze"]) {
      this[name] = (...args) => {
        this.calls.push([name, ...args]);
        return name === "highlight" ? 1 : undefined;
      };
    }
  }

  on(name, cb) {
    this.handlers.set(name, cb);
    return () => this.handlers.delete(name);
  }

  emit(name, event) {
    this.handlers.get(name)?.(event);
  }

  async setColorBy(field) {
    this.calls.push(["setColorBy", field]);
    if (field === "nope") throw new Error("unknown field nope");
  }

  snapshot() {
    return { connected: true };
  }

  async sessionBundle() {
    return new TextEncoder().encode("CELLUCID_SESSION\nrest");
  }
}

function fakeFetch({ status = 200 } = {}) {
  const requests = [];
  const impl = async (url, init) => {
    const text = init.body instanceof Uint8Array ? new TextDecoder().decode(init.body) : null;
    requests.push({ url: String(url), init, json: text && url.pathname.endsWith("events") ? JSON.parse(text) : null });
    const request = requests[requests.length - 1];
    request.bodyRead = false;
    const read = (value) => {
      request.bodyRead = true;
      return value;
    };
    return {
      ok: status < 400,
      status,
      json: async () => read({ status: "ok", delivered: true }),
      text: async () => read('{"status":"ok","delivered":true}'),
    };
  };
  return { impl, requests };
}

const quiet = { warn() {}, error() {}, info() {} };

async function install(opts = {}) {
  const { installBridge } = await import("../viewer/src/bridge/bridge.js");
  const clock = new FakeClock();
  const win = opts.win ?? new FakeWindow();
  const viewer = opts.viewer ?? new FakeViewer();
  const fetch = fakeFetch(opts.fetch);
  const warnings = [];
  const log = { ...quiet, warn: (m) => warnings.push(m) };
  const bridge = installBridge(viewer, {
    viewerId: ID,
    viewerToken: TOKEN,
    jupyter: false,
    win,
    fetchImpl: fetch.impl,
    now: clock.now,
    timers: clock,
    log,
    pageId: "p1",
    ...opts.bridge,
  });
  return { bridge, clock, win, viewer, fetch, warnings };
}

const settle = async (bridge) => {
  for (let i = 0; i < 5; i++) {
    await bridge.idle();
    await new Promise((r) => setImmediate(r));
  }
};

describe("installBridge", () => {
  test("events are POSTed to _cellucid/events of the page directory with the exact keys", async () => {
    const { bridge, viewer, fetch } = await install();
    viewer.emit("ready", { n_cells: 20, dimensions: 2 });
    viewer.emit("click", { cell: 3, button: 0, shift: false, ctrl: false, meta: true });
    viewer.emit("click", { cell: null, button: 0, shift: false, ctrl: false });
    viewer.emit("selection", { cells: new Uint32Array([1, 4]), source: "lasso" });
    await settle(bridge);
    // eventId = page id + sequence: the click on empty space (2) sent nothing
    assert.deepEqual(
      fetch.requests.map((r) => r.url),
      [1, 2, 3].map((i) => `http://127.0.0.1:8765/sub/_cellucid/events?viewerId=${ID}&viewerToken=${TOKEN}&eventId=p1-${i}`),
    );
    assert.deepEqual(fetch.requests.map((r) => r.json), [
      { type: "ready", viewerId: ID, viewerToken: TOKEN, n_cells: 20, dimensions: 2 },
      { type: "click", viewerId: ID, viewerToken: TOKEN, cell: 3, button: 0, shift: false, ctrl: true },
      { type: "selection", viewerId: ID, viewerToken: TOKEN, cells: [1, 4], source: "lasso" },
    ]);
    for (const r of fetch.requests) {
      assert.equal(r.init.method, "POST");
      assert.equal(r.init.headers["Content-Type"], "application/json");
      assert.equal(r.init.keepalive, true);
    }
    assert.ok(bridge.stats.ready);
  });

  test("every answer is read (Chrome frees keepalive budget only then)", async () => {
    const { bridge, viewer, fetch } = await install();
    for (let i = 0; i < 5; i++) viewer.emit("click", { cell: i, button: 0, shift: false, ctrl: false });
    await settle(bridge);
    assert.equal(fetch.requests.length, 5);
    assert.ok(fetch.requests.every((r) => r.init.keepalive && r.bodyRead), "an unread keepalive answer");
  });

  test("a body of 60 KB or more goes without keepalive, in the binary form", async () => {
    const n = 1_000_000;
    const { bridge, viewer, fetch } = await install({ viewer: new FakeViewer(n) });
    const cells = Uint32Array.from({ length: n / 2 }, (_, i) => 2 * i);
    viewer.emit("selection", { cells, source: "lasso" });
    await settle(bridge);
    const [request] = fetch.requests;
    assert.ok(request.init.body.length >= KEEPALIVE_MAX_BYTES);
    assert.equal(request.init.keepalive, false);
    const sent = request.json.cells;
    assert.equal(sent.encoding, "bitset-base64");
    assert.equal(sent.count, n / 2);
    assert.equal(Buffer.from(sent.data, "base64")[0], 0b01010101);
  });

  test("a standalone page (no id/token) sends nothing and obeys no command", async () => {
    const { bridge, viewer, fetch, win } = await install({ bridge: { viewerId: null, viewerToken: null } });
    viewer.emit("ready", { n_cells: 20, dimensions: 2 });
    win.message({ type: "highlight", viewerId: null, viewerToken: null, cells: [1], color: "#ff0000" });
    win.message({ type: "resetCamera", viewerId: ID, viewerToken: TOKEN });
    await settle(bridge);
    assert.equal(fetch.requests.length, 0);
    assert.deepEqual(viewer.calls, []);
    assert.equal(bridge.stats.eventsDropped, 1);
    assert.equal(bridge.stats.ignored, 2);
  });

  test("commands: wrong token ignored silently, other viewerId rejected, valid ones run", async () => {
    const { bridge, viewer, fetch, win, warnings } = await install();
    win.message({ type: "highlight", viewerId: ID, viewerToken: "f".repeat(32), cells: [1], color: "#ff0000" });
    win.message({ type: "highlight", viewerId: ID, cells: [1], color: "#ff0000" });
    await settle(bridge);
    assert.deepEqual(viewer.calls, []);
    assert.equal(fetch.requests.length, 0, "no command_error for a wrong token");
    assert.deepEqual(warnings, []);
    win.message({ type: "highlight", viewerId: "ffffffffffffffff", viewerToken: TOKEN, cells: [1], color: "#ff0000" });
    await settle(bridge);
    assert.deepEqual(viewer.calls, []);
    assert.equal(warnings.length, 1);
    win.message({ type: "highlight", ...ENV, cells: [1, 2], color: "#00ff00" });
    win.message({ type: "setVisibility", ...ENV, cells: null, visible: false });
    win.message({ type: "setSelection", ...ENV, cells: [5] });
    win.message({ type: "clearHighlights", ...ENV });
    win.message({ type: "resetCamera", ...ENV });
    win.message({ type: "freeze", ...ENV });
    win.message({ type: "setDimension", ...ENV, dimension: 3 });
    await settle(bridge);
    assert.deepEqual(
      viewer.calls.map((c) => c[0]),
      ["freeze", "highlight", "setVisibility", "setSelection", "clearHighlights", "resetCamera", "setDimension"],
    );
    assert.deepEqual(viewer.calls.at(-1), ["setDimension", 3]);
    assert.deepEqual(Array.from(viewer.calls[1][1]), [1, 2]);
    assert.equal(viewer.calls[2][1], null);
    assert.equal(viewer.calls[3][2], "python");
    assert.equal(bridge.stats.accepted, 7);
    assert.equal(bridge.stats.rejected, 1);
    assert.equal(bridge.stats.ignored, 2);
  });

  test("origin pinning: after the first authenticated message, other origins are refused", async () => {
    const { bridge, viewer, win } = await install();
    win.message({ type: "resetCamera", ...ENV }, { origin: "http://localhost:8888" });
    win.message({ type: "resetCamera", ...ENV }, { origin: "http://localhost:9999" });
    win.message({ type: "resetCamera", ...ENV }, { origin: "http://localhost:8888" });
    await settle(bridge);
    assert.equal(viewer.calls.length, 2);
    assert.equal(bridge.pinnedOrigin, "http://localhost:8888");
    assert.match(bridge.stats.lastRejection.reason, /localhost:9999/);
  });

  test("channel commands (bridge.command) get the same checks, without pinning an origin", async () => {
    const { bridge, viewer, win, fetch } = await install();
    bridge.command({ type: "highlight", viewerId: ID, viewerToken: "f".repeat(32), cells: new Uint32Array([1]), color: "#ff0000" });
    bridge.command({ type: "highlight", ...ENV, cells: new Uint32Array([1, 1]), color: "#ff0000" });
    bridge.command({ type: "highlight", ...ENV, cells: new Uint32Array([2, 4]), color: "#00ff00" });
    await settle(bridge);
    assert.equal(bridge.stats.ignored, 1);
    assert.deepEqual(fetch.requests.map((r) => [r.json.type, r.json.command]), [["command_error", "highlight"]]);
    assert.deepEqual(viewer.calls.map((c) => [c[0], Array.from(c[1]), c[2]]), [["highlight", [2, 4], "#00ff00"]]);
    assert.equal(bridge.pinnedOrigin, null);
    win.message({ type: "resetCamera", ...ENV }, { origin: "http://localhost:8888" });
    await settle(bridge);
    assert.equal(bridge.pinnedOrigin, "http://localhost:8888");
  });

  test("invalid fields and failing commands answer command_error {command, reason}", async () => {
    const { bridge, viewer, win, fetch } = await install();
    win.message({ type: "highlight", ...ENV, cells: [25], color: "#ff0000" });
    win.message({ type: "setColorBy", ...ENV, field: "nope" });
    win.message({ type: "ping", ...ENV, requestId: "r", extra: true });
    await settle(bridge);
    const errors = fetch.requests.map((r) => r.json);
    assert.deepEqual(errors.map((e) => [e.type, e.command]), [
      ["command_error", "highlight"],
      ["command_error", "ping"],
      ["command_error", "setColorBy"],
    ]);
    for (const e of errors) assert.deepEqual(Object.keys(e), ["type", "viewerId", "viewerToken", ...EVENT_KEYS.command_error]);
    assert.match(errors[0].reason, /25/);
    assert.match(errors[2].reason, /unknown field nope/);
    assert.deepEqual(viewer.calls, [["setColorBy", "nope"]]);
  });

  test("ping → pong and debug_snapshot with exactly their keys", async () => {
    const { bridge, win, fetch, clock } = await install();
    win.message({ type: "ping", ...ENV, requestId: "abc" });
    win.message({ type: "debug_snapshot", ...ENV, requestId: "def" });
    await settle(bridge);
    const [pong, snap] = fetch.requests.map((r) => r.json);
    assert.deepEqual(pong, { type: "pong", viewerId: ID, viewerToken: TOKEN, requestId: "abc", t: clock.t });
    assert.deepEqual(Object.keys(snap), ["type", "viewerId", "viewerToken", ...EVENT_KEYS.debug_snapshot]);
    assert.equal(snap.requestId, "def");
    assert.equal(snap.serverUrl, "http://127.0.0.1:8765/sub/");
    assert.equal(snap.origin, "http://127.0.0.1:8765");
    assert.equal(snap.connected, true);
    assert.equal(snap.parentOrigin, null);
    assert.equal(snap.userAgent, "FakeBrowser/1.0");
  });

  test("custom commands go to registered handlers with the JSON payload", async () => {
    const { bridge, win } = await install();
    const got = [];
    bridge.onCommand("zoomTo", (payload) => got.push(payload));
    win.message({ type: "zoomTo", ...ENV, cell: 4 });
    await settle(bridge);
    assert.deepEqual(got, [{ cell: 4 }]);
    assert.throws(() => bridge.notifyCustomEvent("mine", { viewerToken: "x" }), /viewerToken/);
  });

  test("requestSessionBundle POSTs the bundle bytes without keepalive", async () => {
    const { bridge, win, fetch } = await install();
    win.message({ type: "requestSessionBundle", ...ENV, requestId: "req1" });
    await settle(bridge);
    const [upload] = fetch.requests;
    const url = new URL(upload.url);
    assert.equal(url.pathname, "/sub/_cellucid/session_bundle");
    assert.deepEqual(Object.fromEntries(url.searchParams), { viewerId: ID, viewerToken: TOKEN, requestId: "req1" });
    assert.equal(upload.init.headers["Content-Type"], "application/octet-stream");
    assert.ok(!upload.init.keepalive);
    assert.equal(new TextDecoder().decode(upload.init.body), "CELLUCID_SESSION\nrest");
  });

  test("a failed session upload answers command_error", async () => {
    const { bridge, win, fetch } = await install({ fetch: { status: 404 } });
    win.message({ type: "requestSessionBundle", ...ENV, requestId: "req2" });
    await settle(bridge);
    assert.equal(fetch.requests.length, 2);
    assert.equal(fetch.requests[1].json?.command, "requestSessionBundle");
    assert.match(fetch.requests[1].json.reason, /req2.*404/);
  });

  test("hover events reach the server throttled", async () => {
    const { bridge, viewer, fetch, clock } = await install();
    for (let i = 0; i < 30; i++) {
      viewer.emit("hover", { cell: i, position: { x: i, y: 1 } });
      clock.advance(2);
    }
    clock.advance(100);
    await settle(bridge); // (a hover queued behind a request would be replaced by a newer one)
    viewer.emit("hover", { cell: null, position: null });
    await settle(bridge);
    const hovers = fetch.requests.map((r) => r.json).filter((e) => e.type === "hover");
    assert.deepEqual(hovers[0], { type: "hover", viewerId: ID, viewerToken: TOKEN, cell: 0, position: { x: 0, y: 1, z: 0 } });
    assert.equal(hovers.at(-2).cell, 29, "the final position is not lost");
    assert.deepEqual(hovers.at(-1), { type: "hover", viewerId: ID, viewerToken: TOKEN, cell: null, position: null });
    const throttled = bridge.stats.sentByType.hover;
    assert.ok(throttled >= 3 && throttled <= 4, `${throttled} hover events for 30 moves in 60 ms, then leaving`);
  });

  test("setDimension runs; a `view` event reports colour field and dimension once per change", async () => {
    const { bridge, viewer, fetch } = await install();
    {
      viewer.field = { key: "cluster" };
      viewer.emit("field", viewer.field);
      viewer.emit("field", viewer.field); // same key again (new colormap): no event
      viewer.dim = 3;
      viewer.emit("dimension", 3);
    }
    await settle(bridge);
    assert.deepEqual(
      fetch.requests.map((r) => r.json).filter((e) => e.type === "view"),
      [
        { type: "view", viewerId: ID, viewerToken: TOKEN, color_by: "cluster", dimension: 2 },
        { type: "view", viewerId: ID, viewerToken: TOKEN, color_by: "cluster", dimension: 3 },
      ],
    );
  });

  describe("inside the notebook widget", () => {
    const PARENT = "http://localhost:8888";
    const widget = () => {
      const parent = new FakeParent(PARENT);
      const win = new FakeWindow({ href: `http://127.0.0.1:8765/?jupyter=true&viewerId=${ID}&viewerToken=${TOKEN}`, parent });
      return { parent, win };
    };

    test("events wait for the parent's first command, then go to it by postMessage", async () => {
      const { parent, win } = widget();
      const { bridge, viewer, fetch } = await install({ win, bridge: { jupyter: true } });
      viewer.emit("ready", { n_cells: 20, dimensions: 2 });
      assert.equal(bridge.transport, "pending");
      assert.equal(parent.posted.length, 0);
      win.message({ type: "ping", ...ENV, requestId: "hello" }, { origin: PARENT, source: parent });
      await settle(bridge);
      assert.equal(bridge.transport, "parent");
      assert.deepEqual(parent.posted.map((p) => [p.body.type, p.targetOrigin]), [
        ["ready", PARENT],
        ["pong", PARENT],
      ]);
      assert.deepEqual(parent.posted[0].body, { type: "ready", viewerId: ID, viewerToken: TOKEN, n_cells: 20, dimensions: 2, eventId: "p1-1" });
      assert.equal(parent.posted[1].body.eventId, "p1-2");
      assert.equal(fetch.requests.length, 0);
    });

    test("alsoHttp: every event to the parent is POSTed too, with the same eventId", async () => {
      const { parent, win } = widget();
      const { bridge, viewer, fetch } = await install({ win, bridge: { jupyter: true, alsoHttp: true } });
      viewer.emit("ready", { n_cells: 20, dimensions: 2 });
      win.message({ type: "ping", ...ENV, requestId: "hello" }, { origin: PARENT, source: parent });
      viewer.emit("selection", { cells: new Uint32Array([1, 4]), source: "lasso" });
      await settle(bridge);
      assert.deepEqual(parent.posted.map((p) => [p.body.type, p.body.eventId]), [
        ["ready", "p1-1"],
        ["pong", "p1-2"],
        ["selection", "p1-3"],
      ]);
      assert.deepEqual(
        fetch.requests.map((r) => [r.json.type, new URL(r.url).searchParams.get("eventId")]),
        [["ready", "p1-1"], ["pong", "p1-2"], ["selection", "p1-3"]],
      );
      assert.ok(fetch.requests.every((r) => !("eventId" in r.json)), "the POST body keeps the exact SPEC keys");
    });

    test("a message from the frame itself pins but is not the parent: no postMessage", async () => {
      const { parent, win } = widget();
      const { bridge, viewer } = await install({ win, bridge: { jupyter: true } });
      win.message({ type: "resetCamera", ...ENV }, { origin: "http://127.0.0.1:8765", source: win });
      viewer.emit("ready", { n_cells: 20, dimensions: 2 });
      assert.equal(bridge.transport, "pending");
      assert.equal(parent.posted.length, 0);
    });

    test("without a pin within 5 s the events go by HTTP", async () => {
      const { parent, win } = widget();
      const { bridge, viewer, fetch, clock } = await install({ win, bridge: { jupyter: true } });
      viewer.emit("ready", { n_cells: 20, dimensions: 2 });
      clock.advance(4900);
      assert.equal(fetch.requests.length, 0);
      clock.advance(200);
      await settle(bridge);
      assert.equal(bridge.transport, "http");
      assert.deepEqual(fetch.requests.map((r) => r.json.type), ["ready"]);
      assert.equal(fetch.requests[0].url, `http://127.0.0.1:8765/_cellucid/events?viewerId=${ID}&viewerToken=${TOKEN}&eventId=p1-1`);
      assert.equal(parent.posted.length, 0);
    });

    test("jupyter=false in a frame posts by HTTP at once", async () => {
      const { parent, win } = widget();
      const { bridge, viewer, fetch } = await install({ win });
      viewer.emit("ready", { n_cells: 20, dimensions: 2 });
      await settle(bridge);
      assert.equal(fetch.requests.length, 1);
      assert.equal(parent.posted.length, 0);
    });
  });
});
