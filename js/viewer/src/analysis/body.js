// The request body of `POST _cellucid/compare` (python/cellucid/server/PROTOCOL.md, "Compare
// groups"):
//
//   u32 LE    headerLen
//   header    headerLen bytes of UTF-8 JSON {method, tieCorrect, nGenes, layer,
//             group: {encoding, bytes, label}, reference: "rest" | {encoding, bytes, label}}
//   group     "bytes" bytes
//   reference "bytes" bytes (absent for "rest")
//
// A cell set is `u32` (sorted unique little-endian uint32 indices) or `bitset` (ceil(n/8) bytes,
// cell i is bit i % 8 of byte i // 8), whichever is smaller (ties: u32), with the bit order and
// rule of the bridge's cell sets (select/cellset.js).
//
// Pure module: no DOM, runs in browsers and node.

import { BITSET_ENCODING, encodeCells } from "../select/cellset.js";

/** Largest header the server accepts. */
export const MAX_HEADER_BYTES = 65536;

/**
 * One cell set in its smaller binary form.
 *
 * @param {Uint32Array} cells sorted unique, each < nCells
 * @param {number} nCells
 * @returns {{encoding: "u32"|"bitset", data: Uint8Array}}
 */
export function cellSetBytes(cells, nCells) {
  const enc = encodeCells(cells, nCells, { raw: true });
  return { encoding: enc.encoding === BITSET_ENCODING ? "bitset" : "u32", data: enc.data };
}

/**
 * Encode a compare request.
 *
 * @param {{method?: string, tieCorrect?: boolean, nGenes?: number|null, layer?: string|null,
 *   group: {cells: Uint32Array, label: string},
 *   reference: "rest" | {cells: Uint32Array, label: string}}} request cells sorted unique
 * @param {number} nCells cells of the dataset
 * @returns {Uint8Array}
 */
export function encodeCompareBody(request, nCells) {
  const { method = "wilcoxon", tieCorrect = false, nGenes = null, layer = null, group, reference } = request;
  const a = cellSetBytes(group.cells, nCells);
  const b = reference === "rest" ? null : cellSetBytes(reference.cells, nCells);
  const header = {
    method,
    tieCorrect: Boolean(tieCorrect),
    nGenes,
    layer,
    group: { encoding: a.encoding, bytes: a.data.length, label: String(group.label ?? "") },
    reference: b ? { encoding: b.encoding, bytes: b.data.length, label: String(reference.label ?? "") } : "rest",
  };
  const headerBytes = new TextEncoder().encode(JSON.stringify(header));
  if (headerBytes.length > MAX_HEADER_BYTES) throw new Error(`compare header is ${headerBytes.length} bytes, above ${MAX_HEADER_BYTES} (shorten the labels)`);
  const out = new Uint8Array(4 + headerBytes.length + a.data.length + (b ? b.data.length : 0));
  new DataView(out.buffer).setUint32(0, headerBytes.length, true);
  out.set(headerBytes, 4);
  out.set(a.data, 4 + headerBytes.length);
  if (b) out.set(b.data, 4 + headerBytes.length + a.data.length);
  return out;
}

function cellsFrom(bytes, encoding, nCells) {
  if (encoding === "u32") {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return Uint32Array.from({ length: bytes.length / 4 }, (_, i) => view.getUint32(4 * i, true));
  }
  const out = [];
  for (let i = 0; i < nCells; i++) if (bytes[i >>> 3] & (1 << (i & 7))) out.push(i);
  return Uint32Array.from(out);
}

/**
 * Read a compare request back (tests, debugging): the header and both cell lists.
 *
 * @param {Uint8Array} body
 * @param {number} nCells
 * @returns {{header: object, group: Uint32Array, reference: Uint32Array|null}}
 */
export function decodeCompareBody(body, nCells) {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const headerLen = view.getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(body.subarray(4, 4 + headerLen)));
  let o = 4 + headerLen;
  const take = (n) => body.subarray(o, (o += n));
  const group = cellsFrom(take(header.group.bytes), header.group.encoding, nCells);
  const reference = header.reference === "rest" ? null : cellsFrom(take(header.reference.bytes), header.reference.encoding, nCells);
  if (o !== body.length) throw new Error(`compare body has ${body.length - o} bytes after the cell sets`);
  return { header, group, reference };
}
