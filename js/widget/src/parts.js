// Binary payloads over the Jupyter comm, in parts of at most MAX_PART bytes.
//
// Notebook websockets cap browser → kernel messages at about 10 MB (SPEC §4.5), so a
// message with a large binary payload is split: each part is the same JSON message plus
// {part: i, parts: n} and one buffer. The Python side (cellucid.widget_protocol) splits
// and joins the same way, so both directions follow one rule.

export const MAX_PART = 4 * 1024 * 1024;

function toBytes(data) {
  if (data === null || data === undefined) return new Uint8Array(0);
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError("binary payload must be an ArrayBuffer or a typed array");
}

/** Send `message` with the binary `data` through `send(content, buffers)`, in parts. */
export function sendInParts(send, message, data, maxPart = MAX_PART) {
  const bytes = toBytes(data);
  const parts = Math.max(1, Math.ceil(bytes.byteLength / maxPart));
  for (let i = 0; i < parts; i++) {
    const chunk = bytes.subarray(i * maxPart, Math.min(bytes.byteLength, (i + 1) * maxPart));
    send({ ...message, part: i, parts }, [chunk]);
  }
  return parts;
}

/**
 * Collects parts by key. `add(key, msg, buffers)` returns null until the last part of `key`
 * arrived, then {message, bytes} (message = the first part's JSON, bytes = a Uint8Array of
 * everything, in order).
 */
export class PartCollector {
  constructor() {
    this.open = new Map();
  }

  add(key, msg, buffers) {
    const parts = Number.isInteger(msg.parts) && msg.parts > 0 ? msg.parts : 1;
    const part = Number.isInteger(msg.part) ? msg.part : 0;
    let entry = this.open.get(key);
    if (!entry) {
      entry = { message: msg, chunks: new Array(parts), received: 0 };
      this.open.set(key, entry);
    }
    if (part < 0 || part >= parts || entry.chunks[part] !== undefined) throw new Error(`bad part ${part} of ${parts} for ${key}`);
    const buffer = buffers && buffers.length ? buffers[0] : new Uint8Array(0);
    entry.chunks[part] = toBytes(buffer); // ipywidgets hands DataViews
    entry.received += 1;
    if (entry.received < parts) return null;
    this.open.delete(key);
    const total = entry.chunks.reduce((n, c) => n + c.byteLength, 0);
    const bytes = new Uint8Array(total);
    let offset = 0;
    for (const c of entry.chunks) {
      bytes.set(c, offset);
      offset += c.byteLength;
    }
    return { message: entry.message, bytes };
  }

  /** Forget incomplete payloads (view closed). */
  clear() {
    this.open.clear();
  }
}

/** Base64 text → bytes (the viewer's selection payloads use base64; the comm carries bytes). */
export function base64ToBytes(text) {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * A cell set of an event (a JSON list of indices, or an encoded set with base64 `data`) as
 * `[the set with data: null, its bytes]`: on the comm the bytes travel as a buffer, never as
 * JSON numbers or base64. A list becomes `u32-base64` (uint32 little-endian). Anything else:
 * null.
 */
export function cellSetBytes(cells) {
  if (Array.isArray(cells)) return [{ encoding: "u32-base64", count: cells.length, data: null }, new Uint8Array(Uint32Array.from(cells).buffer)];
  if (cells && typeof cells === "object" && typeof cells.data === "string") return [{ ...cells, data: null }, base64ToBytes(cells.data)];
  return null;
}

/**
 * An event to relay with its cell sets as bytes: `{event, bytes, groupBytes}`, or null when it
 * has none. `selection`: `event.cells` (the bytes are that one set). `groups`: every
 * `groups[i].cells`, their bytes one after the other and `groupBytes` their lengths.
 */
export function eventCellBytes(event) {
  if (event.type === "selection") {
    const set = cellSetBytes(event.cells);
    return set && { event: { ...event, cells: set[0] }, bytes: set[1], groupBytes: null };
  }
  if (event.type !== "groups" || !Array.isArray(event.groups)) return null;
  const sets = event.groups.map((g) => cellSetBytes(g && g.cells));
  if (sets.some((set) => set === null)) return null;
  const groupBytes = sets.map((set) => set[1].byteLength);
  const bytes = new Uint8Array(groupBytes.reduce((a, b) => a + b, 0));
  let offset = 0;
  for (const [, data] of sets) {
    bytes.set(data, offset);
    offset += data.byteLength;
  }
  const groups = event.groups.map((g, i) => ({ ...g, cells: sets[i][0] }));
  return { event: { ...event, groups }, bytes, groupBytes };
}
