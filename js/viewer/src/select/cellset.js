// Binary cell sets of the bridge (SPEC §4.3, §4.5): exactly the `u32-base64` and
// `bitset-base64` forms of python/cellucid/server/events.py (`encode_cells`, `decode_cells`).
//
//   {"encoding": "u32-base64", "count": N, "data": D}
//       D = N little-endian uint32 indices (order kept), standard base64 with padding
//   {"encoding": "bitset-base64", "n": n, "count": N, "data": D}
//       D = ceil(n / 8) bytes; cell i is bit (i % 8) of byte floor(i / 8) (little-endian bit
//       order, numpy packbits(bitorder="little")); decodes sorted
//
// The encoder picks u32 when 4·count ≤ ceil(n / 8) (ties go to u32, as in python), else the
// bitset. Keys appear in python's order, so JSON.stringify gives the same text as json.dumps
// with compact separators.

import { sortedUnique } from "./lasso.js";

/** The `encoding` values of the two binary forms. */
export const U32_ENCODING = "u32-base64";
export const BITSET_ENCODING = "bitset-base64";
/** Cell counts up to this go into events as plain JSON arrays (`encodeCellsForEvent`). */
export const PLAIN_EVENT_LIMIT = 1000;
const MAX_CELLS = 2 ** 32;

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const DECODE = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) DECODE[ALPHABET.charCodeAt(i)] = i;
const POPCOUNT = new Uint8Array(256);
for (let i = 1; i < 256; i++) POPCOUNT[i] = (i & 1) + POPCOUNT[i >> 1];

/**
 * Standard base64 with padding (RFC 4648 §4).
 *
 * @param {Uint8Array} bytes
 * @returns {string}
 */
export function base64Encode(bytes) {
  const parts = [];
  const CHUNK = 3 * 16384;
  for (let start = 0; start < bytes.length; start += CHUNK) {
    const end = Math.min(bytes.length, start + CHUNK);
    let s = "";
    for (let i = start; i < end; i += 3) {
      const rest = end - i;
      const v = (bytes[i] << 16) | ((rest > 1 ? bytes[i + 1] : 0) << 8) | (rest > 2 ? bytes[i + 2] : 0);
      s += ALPHABET[(v >> 18) & 63] + ALPHABET[(v >> 12) & 63];
      s += rest > 1 ? ALPHABET[(v >> 6) & 63] : "=";
      s += rest > 2 ? ALPHABET[v & 63] : "=";
    }
    parts.push(s);
  }
  return parts.join("");
}

/**
 * Decode base64 text exactly as python's `base64.b64decode(text, validate=True)` (3.11)
 * does: only alphabet characters and `=`; no leading padding; nothing but padding after a
 * complete pad sequence; a final group of 2 or 3 characters must be padded; 1 leftover
 * character is an error; extra `=` after a complete group is ignored.
 *
 * @param {string} text
 * @returns {Uint8Array}
 * @throws {Error} for text python rejects
 */
export function base64Decode(text) {
  const out = new Uint8Array(Math.floor((text.length * 3) / 4) + 3);
  let o = 0;
  let quad = 0;
  let left = 0;
  let pads = 0;
  let padding = false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 61) {
      // "="
      if (i === 0) throw new Error("invalid base64: leading padding");
      padding = true;
      if (quad >= 2 && quad + ++pads >= 4) {
        if (i + 1 < text.length) throw new Error("invalid base64: data after padding");
        return out.slice(0, o);
      }
      continue;
    }
    const v = code < 128 ? DECODE[code] : -1;
    if (v < 0) throw new Error("invalid base64: a character outside the alphabet");
    if (padding) throw new Error("invalid base64: discontinuous padding");
    pads = 0;
    if (quad === 0) {
      left = v;
    } else if (quad === 1) {
      out[o++] = (left << 2) | (v >> 4);
      left = v & 15;
    } else if (quad === 2) {
      out[o++] = (left << 4) | (v >> 2);
      left = v & 3;
    } else {
      out[o++] = (left << 6) | v;
    }
    quad = (quad + 1) & 3;
  }
  if (quad === 1) throw new Error("invalid base64: number of data characters is 1 more than a multiple of 4");
  if (quad !== 0) throw new Error("invalid base64: incorrect padding");
  return out.slice(0, o);
}

function checkedIndices(indices, what = "cells") {
  const cells = new Uint32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const v = indices[i];
    if (!Number.isInteger(v) || v < 0) throw new Error(`${what} must be non-negative integers, got ${v}`);
    if (v >= MAX_CELLS) throw new Error(`${what} must be below 2**32, got ${v}`);
    cells[i] = v;
  }
  return cells;
}

function requireUnique(cells) {
  if (sortedUnique(cells).length !== cells.length) throw new Error("cells must not contain duplicate indices");
}

/**
 * Encode unique cell indices in the smaller binary form (ties: `u32-base64`, which keeps the
 * given order). Same object as python `encode_cells(indices, n_cells, raw=raw)`.
 *
 * @param {Uint32Array|ArrayLike<number>} indices unique, each < nCells
 * @param {number} nCells number of cells of the dataset (0 … 2**32)
 * @param {{raw?: boolean}} [opts] `raw`: `data` holds the bytes (Uint8Array) instead of base64
 * @returns {{encoding: "u32-base64", count: number, data: string|Uint8Array}|
 *   {encoding: "bitset-base64", n: number, count: number, data: string|Uint8Array}}
 * @throws {Error} for a bad, duplicate or out-of-range index, or a bad nCells
 */
export function encodeCells(indices, nCells, opts = {}) {
  if (!Number.isInteger(nCells)) throw new TypeError(`n_cells must be an integer, got ${nCells}`);
  if (nCells < 0 || nCells > MAX_CELLS) throw new Error(`n_cells must be between 0 and 2**32, got ${nCells}`);
  const cells = checkedIndices(indices);
  const count = cells.length;
  const bitsetBytes = Math.ceil(nCells / 8);
  let max = -1;
  for (let i = 0; i < count; i++) if (cells[i] > max) max = cells[i];
  if (max >= nCells) throw new Error(`cell index ${max} is not below n_cells=${nCells}`);
  let data;
  let out;
  if (4 * count <= bitsetBytes) {
    requireUnique(cells);
    data = new Uint8Array(cells.buffer, 0, 4 * count);
    if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
      data = new Uint8Array(4 * count);
      const view = new DataView(data.buffer);
      cells.forEach((c, i) => view.setUint32(4 * i, c, true));
    }
    out = { encoding: U32_ENCODING, count };
  } else {
    data = new Uint8Array(bitsetBytes);
    for (let i = 0; i < count; i++) {
      const c = cells[i];
      const bit = 1 << (c & 7);
      if (data[c >>> 3] & bit) throw new Error("cells must not contain duplicate indices");
      data[c >>> 3] |= bit;
    }
    out = { encoding: BITSET_ENCODING, n: nCells, count };
  }
  out.data = opts.raw ? data : base64Encode(data);
  return out;
}

function rawData(data) {
  if (typeof data === "string") return base64Decode(data);
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new Error("cells.data must be base64 text");
}

function hasExactKeys(obj, keys) {
  const found = Object.keys(obj);
  return found.length === keys.length && keys.every((k) => Object.prototype.hasOwnProperty.call(obj, k));
}

/**
 * Decode a cell list in any form python `decode_cells` accepts: an array of unique
 * non-negative integers (order kept), a `u32-base64` object (order kept) or a `bitset-base64`
 * object (sorted). `data` may be base64 text or raw bytes. Rejects what python rejects (exact
 * key sets, byte lengths, counts, bits at or beyond n, duplicates, bad base64).
 *
 * @param {number[]|ArrayLike<number>|object} value
 * @returns {Uint32Array} a new array
 * @throws {Error}
 */
export function decodeCells(value) {
  if (Array.isArray(value) || ArrayBuffer.isView(value)) {
    const cells = checkedIndices(value);
    requireUnique(cells);
    return cells;
  }
  if (value === null || typeof value !== "object") {
    throw new Error(`cells must be a list of cell indices or an object with an 'encoding' of '${U32_ENCODING}' or '${BITSET_ENCODING}'`);
  }
  const encoding = value.encoding;
  let keys;
  if (encoding === U32_ENCODING) keys = ["encoding", "count", "data"];
  else if (encoding === BITSET_ENCODING) keys = ["encoding", "n", "count", "data"];
  else throw new Error(`cells.encoding must be '${U32_ENCODING}' or '${BITSET_ENCODING}'`);
  if (!hasExactKeys(value, keys)) throw new Error(`${encoding} cells must have exactly the keys ${[...keys].sort().join(", ")}`);
  const count = value.count;
  if (!Number.isInteger(count) || count < 0) throw new Error("cells.count must be a non-negative integer");
  const raw = rawData(value.data);
  if (encoding === U32_ENCODING) {
    if (raw.length !== 4 * count) throw new Error(`cells.data holds ${raw.length} bytes, but count=${count} needs ${4 * count}`);
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const cells = new Uint32Array(count);
    for (let i = 0; i < count; i++) cells[i] = view.getUint32(4 * i, true);
    requireUnique(cells);
    return cells;
  }
  const n = value.n;
  if (!Number.isInteger(n) || n < 0 || n > MAX_CELLS) throw new Error("cells.n must be an integer between 0 and 2**32");
  const bytes = Math.ceil(n / 8);
  if (raw.length !== bytes) throw new Error(`cells.data holds ${raw.length} bytes, but a bitset of n=${n} cells needs ${bytes}`);
  if (n % 8 && raw[bytes - 1] >> n % 8) throw new Error(`cells bitset has a bit set at or beyond n=${n}`);
  let set = 0;
  for (let i = 0; i < raw.length; i++) set += POPCOUNT[raw[i]];
  if (set !== count) throw new Error(`cells.count is ${count}, but the bitset has ${set} bits set`);
  return bitsetCells(raw, count);
}

/**
 * The cells of a bitset (cell i is bit i % 8 of byte i >> 3), ascending.
 *
 * @param {Uint8Array} bits
 * @param {number} count how many bits are set
 * @returns {Uint32Array}
 */
export function bitsetCells(bits, count) {
  const cells = new Uint32Array(count);
  let k = 0;
  for (let i = 0; i < bits.length && k < count; i++) {
    let byte = bits[i];
    while (byte) {
      const low = byte & -byte;
      cells[k++] = i * 8 + 31 - Math.clz32(low);
      byte ^= low;
    }
  }
  return cells;
}

/**
 * The `cells` value of a `selection` event (SPEC §4.3): a plain JSON array for at most
 * `PLAIN_EVENT_LIMIT` (1,000) cells, else the smaller binary form of `encodeCells`.
 *
 * @param {Uint32Array|ArrayLike<number>} indices unique, each < nCells
 * @param {number} nCells
 * @returns {number[]|object}
 */
export function encodeCellsForEvent(indices, nCells) {
  if (indices.length <= PLAIN_EVENT_LIMIT) {
    const cells = checkedIndices(indices);
    requireUnique(cells);
    for (const c of cells) if (c >= nCells) throw new Error(`cell index ${c} is not below n_cells=${nCells}`);
    return Array.from(cells);
  }
  return encodeCells(indices, nCells);
}
