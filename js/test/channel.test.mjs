// Unit tests of the command channel of plain tabs (js/viewer/src/bridge/channel.js): URL,
// when a page opens it, frame reassembly, buffering until ready, acknowledgements,
// duplicates and reconnecting with backoff, against a fake WebSocket and a manual clock.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  backoffDelay,
  CLOSE_PROTOCOL_ERROR,
  CLOSE_VIEWER_STOPPED,
  CommandChannel,
  commandsUrl,
  FrameReader,
  wantsChannel,
} from "../viewer/src/bridge/channel.js";

const ID = "0123456789abcdef";
const TOKEN = "0123456789abcdef0123456789abcdef";

/** Timers that run only when advance() passes their time. */
class FakeTimers {
  constructor() {
    this.t = 0;
    this.nextId = 1;
    this.pending = new Map();
    this.setTimeout = (fn, ms) => {
      const id = this.nextId++;
      this.pending.set(id, { at: this.t + ms, fn });
      return id;
    };
    this.clearTimeout = (id) => this.pending.delete(id);
  }

  advance(ms) {
    this.t += ms;
    for (const [id, timer] of [...this.pending].sort((a, b) => a[1].at - b[1].at)) {
      if (timer.at <= this.t && this.pending.delete(id)) timer.fn();
    }
  }
}

/** A WebSocket the test opens, feeds and closes by hand; every instance is recorded. */
function fakeWebSocketClass() {
  const sockets = [];
  class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.closedWith = null;
      sockets.push(this);
    }

    send(data) {
      this.sent.push(JSON.parse(data));
    }

    close(code = 1000, reason = "") {
      this.closedWith = { code, reason };
      this.serverClose(code, reason);
    }

    // ---- the test plays the server
    serverOpen() {
      this.readyState = 1;
      this.onopen?.({});
    }

    serverSend(frame) {
      this.onmessage?.({ data: frame });
    }

    serverClose(code = 1006, reason = "") {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.onclose?.({ code, reason });
    }
  }
  return { FakeWebSocket, sockets };
}

function command(seq, command, cells = null) {
  const head = { kind: "command", seq, command };
  if (cells === null) return [JSON.stringify(head)];
  const bytes = new Uint32Array(cells).buffer;
  return [JSON.stringify({ ...head, cells_bytes: true, bytes: bytes.byteLength }), bytes];
}

function makeChannel() {
  const { FakeWebSocket, sockets } = fakeWebSocketClass();
  const timers = new FakeTimers();
  const warnings = [];
  const log = { warn: (m) => warnings.push(m), error: (m) => warnings.push(m) };
  const channel = new CommandChannel({
    url: "ws://127.0.0.1:1/_cellucid/commands?x",
    viewerId: ID,
    viewerToken: TOKEN,
    WebSocketImpl: FakeWebSocket,
    timers,
    log,
    random: () => 1,
  });
  const ran = [];
  return { channel, sockets, timers, warnings, ran, handler: (c) => ran.push(c) };
}

function feed(socket, frames) {
  for (const frame of frames) socket.serverSend(frame);
}

describe("commandsUrl and wantsChannel", () => {
  test("relative to the page directory, ws or wss after the page, under a proxy prefix", () => {
    const plain = commandsUrl(new URL("http://127.0.0.1:8765/"), ID, TOKEN);
    assert.equal(plain.href, `ws://127.0.0.1:8765/_cellucid/commands?viewerId=${ID}&viewerToken=${TOKEN}`);
    const proxied = commandsUrl(new URL("https://hub.example/user/me/proxy/8765/"), ID, TOKEN);
    assert.equal(proxied.protocol, "wss:");
    assert.equal(proxied.pathname, "/user/me/proxy/8765/_cellucid/commands");
  });

  test("plain tabs with credentials open it; the widget's iframe and credential-less pages do not", () => {
    const creds = { viewerId: ID, viewerToken: TOKEN };
    assert.equal(wantsChannel({ ...creds }), true);
    assert.equal(wantsChannel({ ...creds, jupyter: true }), true, "viewer_url opened in a tab");
    assert.equal(wantsChannel({ ...creds, framed: true }), true, "framed by some other page");
    assert.equal(wantsChannel({ ...creds, jupyter: true, framed: true }), false);
    assert.equal(wantsChannel({ ...creds, overComm: true }), false);
    assert.equal(wantsChannel({ viewerId: null, viewerToken: null }), false);
    assert.equal(wantsChannel({ viewerId: ID, viewerToken: "" }), false);
  });
});

describe("FrameReader", () => {
  test("a command without cells is complete at once; with cells, after its binary frame", () => {
    const reader = new FrameReader();
    assert.deepEqual(reader.feed(command(1, { type: "resetCamera" })[0]), { seq: 1, command: { type: "resetCamera" } });
    const [head, bytes] = command(2, { type: "highlight", color: "#ff0000" }, [4, 1, 9]);
    assert.equal(reader.feed(head), null);
    const done = reader.feed(bytes);
    assert.equal(done.seq, 2);
    assert.ok(done.command.cells instanceof Uint32Array);
    assert.deepEqual(Array.from(done.command.cells), [4, 1, 9]);
    assert.equal(done.command.color, "#ff0000");
  });

  test("cells given as a typed-array view are copied out of their buffer", () => {
    const reader = new FrameReader();
    reader.feed(JSON.stringify({ kind: "command", seq: 1, command: { type: "setSelection" }, cells_bytes: true, bytes: 4 }));
    const backing = new Uint8Array([9, 9, 7, 0, 0, 0, 9]);
    const done = reader.feed(backing.subarray(2, 6));
    assert.deepEqual(Array.from(done.command.cells), [7]);
  });

  test("messages of other kinds are skipped; broken framing throws", () => {
    const reader = new FrameReader();
    assert.equal(reader.feed(JSON.stringify({ kind: "hello" })), null);
    assert.throws(() => reader.feed("not json"), /not JSON/);
    assert.throws(() => reader.feed(new ArrayBuffer(4)), /without a command/);
    assert.throws(() => reader.feed(JSON.stringify({ kind: "command", seq: 0, command: { type: "x" } })), /bad seq/);
    assert.throws(() => reader.feed(JSON.stringify({ kind: "command", seq: 1, command: {} })), /no type/);
    assert.throws(() => reader.feed(JSON.stringify({ kind: "command", seq: 1, command: { type: "x" }, cells_bytes: true, bytes: 3 })), /byte count/);
    reader.feed(command(3, { type: "highlight" }, [1])[0]);
    assert.throws(() => reader.feed(command(4, { type: "resetCamera" })[0]), /without its cells/);
    reader.feed(command(5, { type: "highlight" }, [1])[0]);
    assert.throws(() => reader.feed(new ArrayBuffer(8)), /expected 4/);
  });
});

describe("CommandChannel", () => {
  test("commands wait until start(), then run in order with credentials, each acknowledged", () => {
    const { channel, sockets, ran, handler } = makeChannel();
    channel.connect();
    const [ws] = sockets;
    assert.equal(ws.binaryType, "arraybuffer");
    ws.serverOpen();
    feed(ws, command(1, { type: "setColorBy", field: "louvain" }));
    feed(ws, command(2, { type: "highlight", color: "#00ff00" }, [3, 5]));
    assert.equal(ran.length, 0);
    assert.equal(channel.stats.buffered, 2);
    assert.deepEqual(ws.sent, [], "nothing acknowledged before the viewer runs it");
    channel.start(handler);
    feed(ws, command(3, { type: "resetCamera" }));
    assert.deepEqual(ran.map((c) => c.type), ["setColorBy", "highlight", "resetCamera"]);
    assert.deepEqual(ran[0], { type: "setColorBy", field: "louvain", viewerId: ID, viewerToken: TOKEN });
    assert.deepEqual(Array.from(ran[1].cells), [3, 5]);
    assert.deepEqual(ws.sent, [{ kind: "ready" }, { kind: "ack", seq: 1 }, { kind: "ack", seq: 2 }, { kind: "ack", seq: 3 }]);
    assert.equal(channel.stats.handled, 3);
  });

  test("reconnects with a growing, capped delay and says ready again; a resent command runs once", () => {
    const { channel, sockets, timers, ran, handler } = makeChannel();
    channel.connect();
    sockets[0].serverOpen();
    channel.start(handler);
    feed(sockets[0], command(1, { type: "clearHighlights" }));
    sockets[0].serverClose(1006);
    assert.equal(channel.stats.state, "waiting");
    assert.equal(channel.stats.nextRetryMs, 500);
    timers.advance(499);
    assert.equal(sockets.length, 1);
    timers.advance(1);
    assert.equal(sockets.length, 2);
    sockets[1].serverClose(1006); // refused: the next wait doubles
    assert.equal(channel.stats.nextRetryMs, 1000);
    timers.advance(1000);
    sockets[2].serverOpen();
    assert.deepEqual(sockets[2].sent, [{ kind: "ready" }]);
    feed(sockets[2], command(1, { type: "clearHighlights" })); // the server re-sent it
    feed(sockets[2], command(2, { type: "resetCamera" }));
    assert.deepEqual(ran.map((c) => c.type), ["clearHighlights", "resetCamera"]);
    assert.equal(channel.stats.duplicates, 1);
    assert.deepEqual(sockets[2].sent.slice(1), [{ kind: "ack", seq: 1 }, { kind: "ack", seq: 2 }]);
    for (let i = 0; i < 10; i++) {
      sockets.at(-1).serverClose(1006);
      timers.advance(channel.stats.nextRetryMs);
    }
    assert.equal(channel.stats.nextRetryMs, null);
    sockets.at(-1).serverClose(1006);
    assert.equal(channel.stats.nextRetryMs, 10_000, "capped");
  });

  test("a request handed over from another tab runs even with a lower seq", () => {
    const { channel, sockets, ran, handler } = makeChannel();
    channel.connect();
    sockets[0].serverOpen();
    channel.start(handler);
    feed(sockets[0], command(6, { type: "clearHighlights" }));
    feed(sockets[0], command(5, { type: "ping", requestId: "r" }));
    assert.deepEqual(ran.map((c) => c.type), ["clearHighlights", "ping"]);
  });

  test("broken framing closes the socket and reconnects; a stopped viewer ends it", () => {
    const { channel, sockets, timers, warnings } = makeChannel();
    channel.connect();
    sockets[0].serverOpen();
    feed(sockets[0], [new ArrayBuffer(4)]);
    assert.equal(sockets[0].closedWith.code, CLOSE_PROTOCOL_ERROR);
    assert.match(warnings[0], /without a command/);
    timers.advance(500);
    assert.equal(sockets.length, 2);
    sockets[1].serverOpen();
    sockets[1].serverClose(CLOSE_VIEWER_STOPPED, "viewer stopped");
    assert.equal(channel.stats.state, "closed");
    timers.advance(60_000);
    assert.equal(sockets.length, 2, "no reconnect after 4001");
  });

  test("a command that closes the channel (freeze) was acknowledged first", () => {
    const { channel, sockets } = makeChannel();
    channel.connect();
    sockets[0].serverOpen();
    channel.start(() => channel.close());
    feed(sockets[0], command(1, { type: "freeze" }));
    assert.deepEqual(sockets[0].sent, [{ kind: "ready" }, { kind: "ack", seq: 1 }]);
    assert.equal(sockets[0].closedWith.code, 1000);
  });

  test("close() stops for good and drops what waited", () => {
    const { channel, sockets, timers } = makeChannel();
    channel.connect();
    sockets[0].serverOpen();
    feed(sockets[0], command(1, { type: "resetCamera" }));
    channel.close();
    assert.equal(sockets[0].closedWith.code, 1000);
    assert.equal(channel.stats.buffered, 0);
    timers.advance(60_000);
    assert.equal(sockets.length, 1);
    channel.connect();
    assert.equal(sockets.length, 1);
  });

  test("backoffDelay doubles from the minimum up to the maximum, with jitter of at most half", () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, { random: () => 1 })), [500, 1000, 2000, 4000, 8000, 10000, 10000]);
    assert.equal(backoffDelay(0, { random: () => 0 }), 250);
    assert.equal(backoffDelay(1000, { random: () => 1 }), 10000);
  });
});
