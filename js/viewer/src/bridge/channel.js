// The command channel of a page in a plain browser tab (PROTOCOL.md, "Command channel").
//
// Inside the notebook widget, Python's commands come by postMessage from the widget's front
// end. A page opened in its own tab (a script printed its URL, `cellucid serve`, a second
// tab on a notebook's viewer) has no such parent: it opens a WebSocket to its data server,
// `_cellucid/commands?viewerId=…&viewerToken=…` relative to the page directory (so it works
// under a /proxy/<port>/ prefix), ws: or wss: after the page's protocol.
//
// Frames from the server: a JSON text frame {kind: "command", seq, command}, and for
// commands with cells {…, cells_bytes: true, bytes: N} followed by one binary frame of N
// bytes of little-endian uint32 cell indices (what the comm carries). Frames to the server:
// {kind: "ready"} once the page runs commands, {kind: "ack", seq} as it hands each one to
// the bridge.
//
// Commands received before the viewer is ready wait here, in order; start(handler) runs
// them and every later one. The connection is re-opened with a growing delay (0.5 s to
// 10 s) until close() or a close code 4001 (the viewer was stopped). A command seen twice
// (re-sent after a reconnect) runs once. Sequence numbers grow, but a page may see one out of
// order: a request left unanswered by a closing tab is handed to another. Pure: the WebSocket class and the timers are
// injected, so node tests drive it with fakes (js/test/channel.test.mjs).

import { isPlainObject } from "./protocol.js";

export const BACKOFF_MIN_MS = 500;
export const BACKOFF_MAX_MS = 10_000;
/** Close code of the server when the viewer was stopped: do not reconnect. */
export const CLOSE_VIEWER_STOPPED = 4001;
/** Close code of the page when the server broke the framing. */
export const CLOSE_PROTOCOL_ERROR = 4002;
/** How many recent sequence numbers a page remembers to run each command once. */
export const SEEN_SEQS = 4096;

/** The WebSocket URL of the command channel for a page whose data server is `base`. */
export function commandsUrl(base, viewerId, viewerToken) {
  const url = new URL("_cellucid/commands", base);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.search = new URLSearchParams({ viewerId, viewerToken }).toString();
  url.hash = "";
  return url;
}

/**
 * Does this page need the channel? Only with credentials, and never inside the notebook
 * widget (jupyter=true in a frame, or loaded over the comm): the widget posts the commands.
 */
export function wantsChannel({ viewerId, viewerToken, jupyter = false, framed = false, overComm = false }) {
  const credentials = typeof viewerId === "string" && viewerId !== "" && typeof viewerToken === "string" && viewerToken !== "";
  return credentials && !overComm && !(jupyter && framed);
}

function protocolError(message) {
  const error = new Error(message);
  error.name = "ChannelProtocolError";
  return error;
}

function toArrayBuffer(data) {
  if (data instanceof ArrayBuffer) return data;
  if (ArrayBuffer.isView(data)) return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
  return null;
}

/**
 * Joins the frames of one command. feed(frame) returns {seq, command} once a command is
 * complete (cells as a Uint32Array), null while it waits for its cells or for a message that
 * is not a command, and throws a ChannelProtocolError when the framing is broken.
 */
export class FrameReader {
  constructor() {
    this.pending = null;
  }

  feed(data) {
    if (typeof data === "string") return this.text(data);
    const buffer = toArrayBuffer(data);
    if (buffer === null) throw protocolError("a frame that is neither text nor binary");
    const pending = this.pending;
    if (pending === null) throw protocolError("binary cells without a command");
    this.pending = null;
    if (buffer.byteLength !== pending.bytes) {
      throw protocolError(`command ${pending.seq}: ${buffer.byteLength} bytes of cells, expected ${pending.bytes}`);
    }
    return { seq: pending.seq, command: { ...pending.command, cells: new Uint32Array(buffer) } };
  }

  text(data) {
    if (this.pending !== null) {
      const { seq } = this.pending;
      this.pending = null;
      throw protocolError(`command ${seq} came without its cells`);
    }
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      throw protocolError("a text frame that is not JSON");
    }
    if (!isPlainObject(message) || message.kind !== "command") return null; // for later versions
    const { seq, command } = message;
    if (!Number.isInteger(seq) || seq < 1) throw protocolError(`bad seq ${JSON.stringify(seq)}`);
    if (!isPlainObject(command) || typeof command.type !== "string") throw protocolError(`command ${seq} has no type`);
    if (message.cells_bytes !== true) return { seq, command };
    const bytes = message.bytes;
    if (!Number.isInteger(bytes) || bytes < 0 || bytes % 4 !== 0) throw protocolError(`command ${seq}: bad cell byte count`);
    this.pending = { seq, command, bytes };
    return null;
  }

  reset() {
    this.pending = null;
  }
}

/** The delay before reconnect attempt `attempt` (0-based): doubling, capped, with jitter from `random`. */
export function backoffDelay(attempt, { min = BACKOFF_MIN_MS, max = BACKOFF_MAX_MS, random = Math.random } = {}) {
  const full = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return Math.round(full * (0.5 + 0.5 * random()));
}

/**
 * The page's end of the command channel.
 *
 * Options: url (commandsUrl), viewerId, viewerToken (added to each command, so that it goes
 * through the bridge's checks as a postMessage command does), WebSocketImpl, timers, log,
 * random, minDelay, maxDelay. stats: {state, opens, closes, received, handled, duplicates,
 * buffered, lastSeq, lastClose, lastError, nextRetryMs}.
 */
export class CommandChannel {
  constructor(options) {
    this.url = String(options.url);
    this.credentials = { viewerId: options.viewerId, viewerToken: options.viewerToken };
    this.WebSocketImpl = options.WebSocketImpl ?? globalThis.WebSocket;
    this.timers = options.timers ?? globalThis;
    this.log = options.log ?? globalThis.console;
    this.backoff = { min: options.minDelay ?? BACKOFF_MIN_MS, max: options.maxDelay ?? BACKOFF_MAX_MS, random: options.random ?? Math.random };
    this.reader = new FrameReader();
    this.buffer = [];
    this.handler = null;
    this.seen = new Set();
    this.ws = null;
    this.retryTimer = null;
    this.attempt = 0;
    this.stopped = false;
    this.stats = { state: "idle", opens: 0, closes: 0, received: 0, handled: 0, duplicates: 0, buffered: 0, lastSeq: 0, lastClose: null, lastError: null, nextRetryMs: null };
  }

  /** Open the WebSocket (again after a close, until close() is called). */
  connect() {
    if (this.stopped || this.ws !== null) return;
    this.retryTimer = null;
    this.stats.state = "connecting";
    this.stats.nextRetryMs = null;
    let ws;
    try {
      ws = new this.WebSocketImpl(this.url);
    } catch (err) {
      this.stats.lastError = String((err && err.message) || err);
      this.retry();
      return;
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.attempt = 0;
      this.stats.state = "open";
      this.stats.opens += 1;
      if (this.handler !== null) this.sendJson({ kind: "ready" });
    };
    ws.onmessage = (event) => {
      if (this.ws === ws) this.receive(event.data);
    };
    ws.onerror = () => {
      this.stats.lastError = "WebSocket error";
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.reader.reset();
      this.stats.closes += 1;
      this.stats.lastClose = { code: event.code, reason: event.reason || "" };
      if (event.code === CLOSE_VIEWER_STOPPED) {
        this.log.warn("cellucid channel: the viewer was stopped in Python; no more commands will come");
        this.stop();
      } else {
        this.retry();
      }
    };
  }

  retry() {
    if (this.stopped) return;
    const delay = backoffDelay(this.attempt, this.backoff);
    this.attempt += 1;
    this.stats.state = "waiting";
    this.stats.nextRetryMs = delay;
    this.retryTimer = this.timers.setTimeout(() => this.connect(), delay);
  }

  receive(data) {
    let done;
    try {
      done = this.reader.feed(data);
    } catch (err) {
      this.stats.lastError = err.message;
      this.log.warn(`cellucid channel: ${err.message}; reconnecting`);
      this.ws.close(CLOSE_PROTOCOL_ERROR, "protocol error");
      return;
    }
    if (done === null) return;
    this.stats.received += 1;
    if (this.handler === null) {
      this.buffer.push(done);
      this.stats.buffered = this.buffer.length;
    } else {
      this.run(done);
    }
  }

  run({ seq, command }) {
    // Acknowledged before it runs: a command may close the channel (freeze), and a
    // command handed to the viewer must not be sent again to the next page.
    this.sendJson({ kind: "ack", seq });
    if (this.seen.has(seq)) {
      this.stats.duplicates += 1; // re-sent after a reconnect: ran already
      return;
    }
    this.seen.add(seq);
    if (this.seen.size > SEEN_SEQS) this.seen.delete(this.seen.values().next().value);
    this.stats.lastSeq = seq;
    this.stats.handled += 1;
    try {
      this.handler({ ...command, ...this.credentials });
    } catch (err) {
      this.log.error(`cellucid channel: command ${command.type} failed: ${(err && err.message) || err}`);
    }
  }

  /** From now on hand each command (with the credentials added) to `handler`, in order. */
  start(handler) {
    if (typeof handler !== "function") throw new TypeError("handler must be a function");
    this.handler = handler;
    this.sendJson({ kind: "ready" });
    const waiting = this.buffer.splice(0);
    this.stats.buffered = 0;
    for (const item of waiting) this.run(item);
  }

  sendJson(message) {
    const ws = this.ws;
    if (ws === null || ws.readyState !== 1) return;
    try {
      ws.send(JSON.stringify(message));
    } catch (err) {
      this.stats.lastError = String((err && err.message) || err);
    }
  }

  stop() {
    this.stopped = true;
    this.stats.state = "closed";
    this.stats.nextRetryMs = null;
    if (this.retryTimer !== null) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  /** Close for good (the viewer froze or failed): unacknowledged commands go back to Python's queue. */
  close() {
    this.stop();
    const ws = this.ws;
    this.ws = null;
    this.buffer = [];
    this.stats.buffered = 0;
    if (ws !== null) {
      try {
        ws.close(1000, "page closed");
      } catch {
        // already closing
      }
    }
  }
}
