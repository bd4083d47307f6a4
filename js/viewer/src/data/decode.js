// Payload decoding (SPEC §2.3, §2.6.3-§2.6.6, §2.7): gunzip, little-endian typed arrays,
// dequantisation, and the schema/tuple semantics of obs and var fields.
//
// Pure module: no DOM, runs in browsers and in node 20.

const GZIP_MAGIC = [0x1f, 0x8b, 0x08];
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Typed array constructor and item size per manifest dtype name (and file extension). */
const DTYPES = {
  float32: { Array: Float32Array, size: 4, getter: "getFloat32" },
  uint8: { Array: Uint8Array, size: 1, getter: "getUint8" },
  uint16: { Array: Uint16Array, size: 2, getter: "getUint16" },
  uint32: { Array: Uint32Array, size: 4, getter: "getUint32" },
  float64: { Array: Float64Array, size: 8, getter: "getFloat64" },
};
const EXT_TO_DTYPE = { f32: "float32", u8: "uint8", u16: "uint16", u32: "uint32", f64: "float64" };

/** Missing-value code of a categorical codes dtype (SPEC §2.6.4). */
export const MISSING_CODE = Object.freeze({ uint8: 255, uint16: 65535 });
/** Largest quantised code per bit width (SPEC §2.6.6); maxq + 1 marks a missing value. */
export const QUANT_MAX = Object.freeze({ 8: 254, 16: 65534 });

function dtypeInfo(dtype) {
  const name = EXT_TO_DTYPE[dtype] ?? dtype;
  const info = DTYPES[name];
  if (!info) throw new Error(`unknown dtype ${JSON.stringify(dtype)} (expected one of ${Object.keys(DTYPES).join(", ")})`);
  return { name, ...info };
}

/**
 * A `Uint8Array` over the bytes of an `ArrayBuffer` or any `ArrayBufferView` (no copy).
 *
 * @param {ArrayBuffer|ArrayBufferView} buffer
 * @returns {Uint8Array}
 */
export function asBytes(buffer) {
  if (buffer instanceof Uint8Array) return buffer;
  if (ArrayBuffer.isView(buffer)) return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  if (buffer instanceof ArrayBuffer || Object.prototype.toString.call(buffer) === "[object ArrayBuffer]") {
    return new Uint8Array(buffer);
  }
  throw new TypeError("expected an ArrayBuffer or a typed array");
}

// ---- gunzip -----------------------------------------------------------------------------------

/*
 * What DecompressionStream("gzip") does with framing (checked in node 20.20 and per the
 * Compression Streams standard):
 *  - Browsers (Chromium, Firefox, Safari) follow the standard: data after the end of the first
 *    gzip member, whether a second member or junk, makes the stream error ("Junk found after end
 *    of compressed data" in Chromium). A truncated member errors too.
 *  - Node 20's implementation is built on zlib's gunzip, which decodes a second member and
 *    silently ignores trailing bytes that do not start with the gzip magic. Truncation, a bad
 *    header, CRC or length errors are rejected.
 * SPEC §2.3 requires exactly one member and nothing after it. So `gunzip` probes the runtime once
 * (a member followed by one junk byte) and, where the runtime is lenient, finds the end of the
 * first member itself (`gzipMemberEnd`, a deflate block walker that decodes Huffman symbols
 * without producing output) and rejects anything after it. Browsers skip that walk.
 */

// A gzip member of the empty payload (header: mtime 0, XFL 0, OS 0xFF; a fixed-Huffman final
// block holding only end-of-block; CRC 0, size 0).
const EMPTY_MEMBER = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff, 0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
const PROBES = [
  new Uint8Array([...EMPTY_MEMBER, 0x00]), // one junk byte after the member
  new Uint8Array([...EMPTY_MEMBER, ...EMPTY_MEMBER]), // a second member
];
let strictRuntime = null;

// Read a byte stream to the end. Reading it directly (not through `new Response(stream)`) keeps
// the codec's own error message ("Junk found after end of compressed data." in Chromium).
async function readAll(stream) {
  const reader = stream.getReader();
  const parts = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    total += value.length;
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

const transform = (bytes, codec) => readAll(new Blob([bytes]).stream().pipeThrough(codec));

async function inflateStream(bytes) {
  return (await transform(bytes, new DecompressionStream("gzip"))).buffer;
}

/**
 * Whether this runtime's `DecompressionStream("gzip")` itself rejects data after the first
 * member (true in browsers, false in node 20). Probed once, cached.
 *
 * @returns {Promise<boolean>}
 */
export function runtimeRejectsTrailingGzip() {
  if (strictRuntime === null) {
    const rejects = (probe) => inflateStream(probe).then(() => false, () => true);
    strictRuntime = Promise.all(PROBES.map(rejects)).then((results) => results.every(Boolean));
  }
  return strictRuntime;
}

/**
 * Decompress a `.gz` payload: exactly one complete gzip member and nothing after it
 * (SPEC §2.3), like browsers' `DecompressionStream`, in every runtime.
 *
 * @param {ArrayBuffer|ArrayBufferView} buffer the stored bytes
 * @returns {Promise<ArrayBuffer>} the decompressed bytes
 * @throws {Error} (rejects) for a non-gzip input, a corrupt or truncated member, a second
 *   member or trailing bytes
 */
export async function gunzip(buffer) {
  const bytes = asBytes(buffer);
  if (bytes.length < 18 || GZIP_MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new Error("not a gzip member (bad magic or shorter than a gzip header)");
  }
  if (!(await runtimeRejectsTrailingGzip())) {
    const end = gzipMemberEnd(bytes);
    if (end !== bytes.length) {
      throw new Error(
        `${bytes.length - end} byte(s) after the gzip member (a second member or trailing data)`,
      );
    }
  }
  try {
    return await inflateStream(bytes);
  } catch (error) {
    throw new Error(`corrupt gzip data: ${error?.message ?? error}`);
  }
}

/**
 * Gzip-compress bytes with `CompressionStream("gzip")` (for session bundles; the header is the
 * runtime's, not the reproducible one of SPEC §2.3, which only binds the exporter).
 *
 * @param {ArrayBuffer|ArrayBufferView} buffer
 * @returns {Promise<Uint8Array>}
 */
export function gzip(buffer) {
  return transform(asBytes(buffer), new CompressionStream("gzip"));
}

// Deflate tables (RFC 1951 §3.2.5).
const LENGTH_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const LENGTH_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const DIST_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
const CODE_LENGTH_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

class BitReader {
  constructor(bytes, pos) {
    this.bytes = bytes;
    this.pos = pos;
    this.buf = 0;
    this.cnt = 0;
  }

  bits(n) {
    while (this.cnt < n) {
      if (this.pos >= this.bytes.length) throw new Error("truncated gzip member");
      this.buf |= this.bytes[this.pos++] << this.cnt;
      this.cnt += 8;
    }
    const value = this.buf & ((1 << n) - 1);
    this.buf >>>= n;
    this.cnt -= n;
    return value;
  }

  align() {
    this.buf = 0;
    this.cnt = 0;
  }
}

// Canonical Huffman code as counts per length and symbols ordered by (length, symbol).
function huffman(lengths) {
  const count = new Uint16Array(16);
  for (const len of lengths) count[len]++;
  count[0] = 0;
  const offs = new Uint16Array(16);
  for (let len = 1; len < 15; len++) offs[len + 1] = offs[len] + count[len];
  const symbol = new Uint16Array(lengths.length);
  lengths.forEach((len, sym) => {
    if (len) symbol[offs[len]++] = sym;
  });
  return { count, symbol };
}

function decodeSymbol(reader, h) {
  let code = 0;
  let first = 0;
  let index = 0;
  for (let len = 1; len <= 15; len++) {
    code |= reader.bits(1);
    const count = h.count[len];
    if (code < first + count) return h.symbol[index + code - first];
    index += count;
    first = (first + count) << 1;
    code <<= 1;
  }
  throw new Error("invalid Huffman code in gzip member");
}

let fixedCodes = null;
function fixedHuffman() {
  if (!fixedCodes) {
    const lit = new Array(288);
    for (let i = 0; i < 288; i++) lit[i] = i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8;
    fixedCodes = { lit: huffman(lit), dist: huffman(new Array(30).fill(5)) };
  }
  return fixedCodes;
}

function dynamicHuffman(reader) {
  const nlen = reader.bits(5) + 257;
  const ndist = reader.bits(5) + 1;
  const ncode = reader.bits(4) + 4;
  if (nlen > 286 || ndist > 30) throw new Error("bad dynamic block counts in gzip member");
  const codeLengths = new Array(19).fill(0);
  for (let i = 0; i < ncode; i++) codeLengths[CODE_LENGTH_ORDER[i]] = reader.bits(3);
  const lencode = huffman(codeLengths);
  const lengths = [];
  while (lengths.length < nlen + ndist) {
    const sym = decodeSymbol(reader, lencode);
    if (sym < 16) {
      lengths.push(sym);
      continue;
    }
    let repeat;
    let value = 0;
    if (sym === 16) {
      if (!lengths.length) throw new Error("repeat without a previous length in gzip member");
      value = lengths[lengths.length - 1];
      repeat = 3 + reader.bits(2);
    } else if (sym === 17) {
      repeat = 3 + reader.bits(3);
    } else {
      repeat = 11 + reader.bits(7);
    }
    if (lengths.length + repeat > nlen + ndist) throw new Error("too many code lengths in gzip member");
    for (let i = 0; i < repeat; i++) lengths.push(value);
  }
  return { lit: huffman(lengths.slice(0, nlen)), dist: huffman(lengths.slice(nlen)) };
}

function skipCompressedBlock(reader, codes) {
  for (;;) {
    const sym = decodeSymbol(reader, codes.lit);
    if (sym < 256) continue;
    if (sym === 256) return;
    const li = sym - 257;
    if (li >= 29) throw new Error("invalid length symbol in gzip member");
    reader.bits(LENGTH_EXTRA[li]);
    const ds = decodeSymbol(reader, codes.dist);
    if (ds >= 30) throw new Error("invalid distance symbol in gzip member");
    reader.bits(DIST_EXTRA[ds]);
  }
}

/**
 * Offset just past the gzip member that starts at `start` (header, deflate blocks, 8-byte
 * trailer). Walks the deflate block structure without producing output; it does not verify the
 * CRC (the decompressor does). Used where the runtime's `DecompressionStream` ignores trailing
 * data.
 *
 * @param {Uint8Array} bytes
 * @param {number} [start=0]
 * @returns {number}
 * @throws {Error} for a bad header or a truncated/invalid member
 */
export function gzipMemberEnd(bytes, start = 0) {
  const b = bytes;
  let pos = start;
  if (b.length - pos < 18 || b[pos] !== 0x1f || b[pos + 1] !== 0x8b || b[pos + 2] !== 8) {
    throw new Error("not a gzip member (bad magic or shorter than a gzip header)");
  }
  const flags = b[pos + 3];
  if (flags & 0xe0) throw new Error("reserved gzip header flags set");
  pos += 10;
  if (flags & 4) pos += 2 + (b[pos] | (b[pos + 1] << 8)); // FEXTRA
  for (const bit of [8, 16]) {
    // FNAME, FCOMMENT: zero-terminated
    if (flags & bit) {
      while (pos < b.length && b[pos] !== 0) pos++;
      pos++;
    }
  }
  if (flags & 2) pos += 2; // FHCRC
  if (pos > b.length) throw new Error("truncated gzip header");
  const reader = new BitReader(b, pos);
  let final = 0;
  while (!final) {
    final = reader.bits(1);
    const type = reader.bits(2);
    if (type === 0) {
      reader.align();
      const p = reader.pos;
      if (p + 4 > b.length) throw new Error("truncated gzip member");
      const len = b[p] | (b[p + 1] << 8);
      const nlen = b[p + 2] | (b[p + 3] << 8);
      if ((len ^ 0xffff) !== nlen) throw new Error("corrupt stored block in gzip member");
      reader.pos = p + 4 + len;
      if (reader.pos > b.length) throw new Error("truncated gzip member");
    } else if (type === 1) {
      skipCompressedBlock(reader, fixedHuffman());
    } else if (type === 2) {
      skipCompressedBlock(reader, dynamicHuffman(reader));
    } else {
      throw new Error("invalid deflate block type in gzip member");
    }
  }
  const end = reader.pos + 8;
  if (end > b.length) throw new Error("truncated gzip member (no trailer)");
  return end;
}

// ---- typed arrays -----------------------------------------------------------------------------

/**
 * Decode a raw little-endian payload (SPEC §2.3) into a typed array of `expectedCount`
 * elements. Aligned input is viewed without copying; input whose byte offset is not a multiple
 * of the item size is copied first. Big-endian hosts get a byte-swapped copy.
 *
 * @param {ArrayBuffer|ArrayBufferView} buffer the decompressed payload bytes
 * @param {"float32"|"uint8"|"uint16"|"uint32"|"float64"|"f32"|"u8"|"u16"|"u32"|"f64"} dtype
 * @param {number} expectedCount number of elements (n, n·d, E …)
 * @param {string} [label] file name for the error message
 * @returns {Float32Array|Uint8Array|Uint16Array|Uint32Array|Float64Array}
 * @throws {Error} when the byte length is not `expectedCount × itemsize`
 */
export function decodeArray(buffer, dtype, expectedCount, label = "payload") {
  const info = dtypeInfo(dtype);
  const bytes = asBytes(buffer);
  const size = expectedCount * info.size;
  if (!Number.isSafeInteger(expectedCount) || expectedCount < 0) {
    throw new Error(`${label}: invalid element count ${expectedCount}`);
  }
  if (bytes.byteLength !== size) {
    throw new Error(
      `${label}: expected ${size} bytes (${expectedCount} × ${info.name}), found ${bytes.byteLength}`,
    );
  }
  if (!LITTLE_ENDIAN_HOST && info.size > 1) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const out = new info.Array(expectedCount);
    for (let i = 0; i < expectedCount; i++) out[i] = view[info.getter](i * info.size, true);
    return out;
  }
  const source = bytes.byteOffset % info.size === 0 ? bytes : bytes.slice();
  return new info.Array(source.buffer, source.byteOffset, expectedCount);
}

/**
 * Decode quantised values (SPEC §2.6.6): `NaN` for the missing marker (255 / 65535), else
 * `lo + q * ((hi - lo) / maxq)` computed in float64 and rounded to float32, the same operations
 * as python `cellucid.export.encode.dequantize`, so results match bit for bit.
 *
 * @param {Uint8Array|Uint16Array} codes Uint8Array for 8 bits, Uint16Array for 16 bits
 * @param {number} lo finite minimum
 * @param {number} hi finite maximum (> lo)
 * @param {8|16} bits
 * @returns {Float32Array}
 */
export function dequantize(codes, lo, hi, bits) {
  const maxq = QUANT_MAX[bits];
  if (maxq === undefined) throw new Error(`quantisation bits must be 8 or 16, got ${bits}`);
  const Expected = bits === 8 ? Uint8Array : Uint16Array;
  if (!(codes instanceof Expected)) {
    throw new TypeError(`${bits}-bit codes must be a ${Expected.name}`);
  }
  const step = (hi - lo) / maxq;
  const lut = new Float32Array(maxq + 2);
  for (let q = 0; q <= maxq; q++) lut[q] = lo + q * step;
  lut[maxq + 1] = NaN;
  const out = new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i++) out[i] = lut[codes[i]];
  return out;
}

const QUANT_EXT = { u8: 8, u16: 16 };

function decodeValues(buffer, ext, bounds, n, label) {
  const bits = QUANT_EXT[ext];
  if (ext === "f32") return decodeArray(buffer, "float32", n, label);
  if (!bits) throw new Error(`${label}: unknown values ext ${JSON.stringify(ext)}`);
  const [lo, hi] = bounds;
  if (!(Number.isFinite(lo) && Number.isFinite(hi) && lo < hi)) {
    throw new Error(`${label}: quantised field needs finite min < max, got ${lo}, ${hi}`);
  }
  return dequantize(decodeArray(buffer, ext, n, label), lo, hi, bits);
}

/**
 * Decode a continuous obs field or a gene (SPEC §2.6.3, §2.6.4, §2.7) to float32 values.
 *
 * @param {ArrayBuffer|ArrayBufferView} buffer decompressed payload
 * @param {{ext: "f32"|"u8"|"u16", quantized: boolean}} schema `_obsSchemas.continuous` or `_varSchema`
 * @param {Array} tuple `[key]` (float32) or `[key, min, max]` (quantised)
 * @param {number} n number of cells
 * @returns {Float32Array} length n; NaN where missing (quantised) or stored as NaN
 * @throws {Error} on a length mismatch or a tuple that does not fit the schema
 */
export function decodeContinuous(buffer, schema, tuple, n) {
  const label = `field ${JSON.stringify(tuple?.[0])}`;
  const quantised = schema.ext !== "f32";
  if (!Array.isArray(tuple) || tuple.length !== (quantised ? 3 : 1)) {
    throw new Error(`${label}: tuple must be ${quantised ? "[key, min, max]" : "[key]"} for ext ${schema.ext}`);
  }
  return decodeValues(buffer, schema.ext, tuple.slice(1, 3), n, label);
}

/**
 * Decode categorical codes (SPEC §2.6.4, §2.6.5) and check that every code is < k or the
 * missing sentinel (SPEC §2.12 item 7).
 *
 * @param {ArrayBuffer|ArrayBufferView} buffer decompressed payload
 * @param {"uint8"|"uint16"} codesDtype tuple[2]
 * @param {number} n number of cells
 * @param {number} k number of categories (tuple[1].length)
 * @returns {Uint8Array|Uint16Array} codes; `MISSING_CODE[codesDtype]` marks a missing value
 * @throws {Error} on a length mismatch or an out-of-range code
 */
export function decodeCategorical(buffer, codesDtype, n, k) {
  const missing = MISSING_CODE[codesDtype];
  if (missing === undefined) throw new Error(`codes dtype must be "uint8" or "uint16", got ${JSON.stringify(codesDtype)}`);
  const codes = decodeArray(buffer, codesDtype, n, "codes");
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    if (c >= k && c !== missing) {
      throw new Error(`codes: code ${c} at cell ${i} is neither < ${k} nor the missing code ${missing}`);
    }
  }
  return codes;
}

/**
 * Decode the outlier quantiles of a categorical field (SPEC §2.6.9): float32, or quantised with
 * `tuple[5]`, `tuple[6]` as min and max.
 *
 * @param {ArrayBuffer|ArrayBufferView} buffer decompressed payload
 * @param {{outlierExt: "f32"|"u8"|"u16"}} schema `_obsSchemas.categorical` (with a latent space)
 * @param {Array} tuple the categorical tuple
 * @param {number} n number of cells
 * @returns {Float32Array} NaN where undefined
 */
export function decodeOutliers(buffer, schema, tuple, n) {
  const label = `outliers of ${JSON.stringify(tuple?.[0])}`;
  if (!schema.outlierExt) throw new Error(`${label}: the dataset has no latent space, so no outlier payloads`);
  return decodeValues(buffer, schema.outlierExt, tuple.slice(5, 7), n, label);
}

/**
 * Decode a points or vector file (SPEC §2.5, §2.9): float32, row-major `(n, d)`.
 *
 * @param {ArrayBuffer|ArrayBufferView} buffer
 * @param {number} n number of cells
 * @param {1|2|3} d dimension
 * @param {string} [label]
 * @returns {Float32Array} length n·d
 */
export function decodePoints(buffer, n, d, label = `points_${d}d.bin`) {
  return decodeArray(buffer, "float32", n * d, label);
}
