// `.cellucid-session` bundles (SPEC §5): write one from the viewer's session, and read one back
// (for tests and for restoring). Pure module (browser and node; gzip through
// CompressionStream / DecompressionStream).
//
// Container, all integers little-endian:
//   "CELLUCID_SESSION\n" (17 bytes) · u32 manifestLen · manifest (UTF-8 JSON)
//   then per manifest.chunks entry, in order: u32 chunkLen · chunk (stored form)
//
// Chunks written (SPEC §5.2):
//   core/state                    json    the viewer state (opaque to Python)
//   core/field-overlays           json    {userDefinedFields: [{id, key, kind, categories,
//                                          source, isDeleted}]}
//   highlights/meta               json    {pages: [{id, name, highlightedGroups: [{id, name,
//                                          color, cellCount}]}]}
//   highlights/cells/<groupId>    binary  delta-varint cell list (§5.3)
//   user-defined/codes/<fieldId>  binary  user-defined codes (§5.3)
//   analysis/comparisons          json    {version: 1, comparisons: [...]} (only when there are
//                                          comparisons; python/cellucid/server/PROTOCOL.md)
//   analysis/comparisons/cells/<id>/group|reference   binary  delta-varint cell lists
//   extra chunks of the caller (session/save.js: cellucid/filters, cellucid/palettes,
//   cellucid/user-fields and its float32 values), in the order given
// JSON chunks larger than GZIP_THRESHOLD bytes use the gzip codec; every chunk meta carries
// storedBytes and uncompressedBytes (equal for codec "none").

import { asBytes, gunzip, gzip } from "../data/decode.js";

/** The 17-byte magic that starts every bundle. */
export const MAGIC = "CELLUCID_SESSION\n";
/** JSON chunks above this many bytes are gzip-compressed. */
export const GZIP_THRESHOLD = 4096;
/** Container limits (SPEC §5.1): manifest 1 … 16 MiB, each chunk ≤ 512 MiB. */
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;
export const MAX_CHUNK_BYTES = 512 * 1024 * 1024;
const CONTRIBUTOR = "cellucid-viewer";
const COMPARISONS = "analysis/comparisons";
const COMPARISON_CELLS = "analysis/comparisons/cells/";
const ENCODING_U8 = 0;
const ENCODING_U16 = 1;
const ENCODING_RLE = 2;

const utf8 = new TextEncoder();

// ---- uvarint (LEB128) -------------------------------------------------------------------------
const uvarintSize = (v) => {
  let size = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    size++;
  }
  return size;
};

class ByteWriter {
  constructor(capacity) {
    this.bytes = new Uint8Array(Math.max(16, capacity));
    this.length = 0;
  }

  reserve(extra) {
    if (this.length + extra <= this.bytes.length) return;
    const grown = new Uint8Array(Math.max(this.length + extra, this.bytes.length * 2));
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
  }

  uvarint(value) {
    if (!Number.isSafeInteger(value) || value < 0) throw new Error(`uvarint needs a non-negative safe integer, got ${value}`);
    this.reserve(10);
    let v = value;
    while (v >= 128) {
      this.bytes[this.length++] = (v % 128) | 128;
      v = Math.floor(v / 128);
    }
    this.bytes[this.length++] = v;
  }

  byte(value) {
    this.reserve(1);
    this.bytes[this.length++] = value;
  }

  append(bytes) {
    this.reserve(bytes.length);
    this.bytes.set(bytes, this.length);
    this.length += bytes.length;
  }

  result() {
    return this.bytes.slice(0, this.length);
  }
}

class ByteReader {
  constructor(bytes, label) {
    this.bytes = bytes;
    this.pos = 0;
    this.label = label;
  }

  uvarint() {
    let value = 0;
    let scale = 1;
    for (let i = 0; ; i++) {
      // 10 bytes reach shift 63; a continuation bit there would shift beyond 63 (SPEC §5.3)
      if (i >= 10) throw new Error(`${this.label}: uvarint shifts beyond 63 bits`);
      if (this.pos >= this.bytes.length) throw new Error(`${this.label}: truncated uvarint`);
      const b = this.bytes[this.pos++];
      value += (b & 127) * scale;
      if (!(b & 128)) break;
      scale *= 128;
    }
    if (!Number.isSafeInteger(value)) throw new Error(`${this.label}: uvarint beyond 2**53`);
    return value;
  }

  byte() {
    if (this.pos >= this.bytes.length) throw new Error(`${this.label}: truncated`);
    return this.bytes[this.pos++];
  }

  take(length) {
    if (this.pos + length > this.bytes.length) throw new Error(`${this.label}: truncated`);
    const out = this.bytes.subarray(this.pos, this.pos + length);
    this.pos += length;
    return out;
  }
}

// ---- delta-varint cell lists ------------------------------------------------------------------

/**
 * Encode cell indices as a delta-varint list (SPEC §5.3): uvarint count, then uvarint deltas,
 * the first absolute. Input is sorted and de-duplicated first, so indices strictly increase.
 *
 * @param {Uint32Array|ArrayLike<number>} cells
 * @returns {Uint8Array}
 */
export function encodeDeltaVarint(cells) {
  return deltaVarint(sortedUniqueCells(cells));
}

function deltaVarint(sorted) {
  const w = new ByteWriter(sorted.length * 2 + 8);
  w.uvarint(sorted.length);
  let previous = 0;
  for (let i = 0; i < sorted.length; i++) {
    w.uvarint(sorted[i] - previous);
    previous = sorted[i];
  }
  return w.result();
}

/**
 * Decode a delta-varint cell list.
 *
 * @param {Uint8Array} bytes
 * @param {{nObs?: number}} [opts] bounds count ≤ nObs and every index ≤ nObs − 1 (SPEC §5.3)
 * @returns {Uint32Array}
 */
export function decodeDeltaVarint(bytes, opts = {}) {
  const r = new ByteReader(bytes, "delta-varint cell list");
  const count = r.uvarint();
  const nObs = opts.nObs ?? 2 ** 32;
  if (count > nObs) throw new Error(`cell list count ${count} exceeds n_obs ${nObs}`);
  const cells = new Uint32Array(count);
  let index = 0;
  for (let i = 0; i < count; i++) {
    index = i === 0 ? r.uvarint() : index + r.uvarint();
    if (index > nObs - 1) throw new Error(`cell index ${index} is not below n_obs ${nObs}`);
    cells[i] = index;
  }
  return cells;
}

function sortedUniqueCells(cells) {
  const a = Uint32Array.from(cells, (v) => {
    if (!Number.isInteger(v) || v < 0 || v >= 2 ** 32) throw new Error(`cell indices must be integers in [0, 2**32), got ${v}`);
    return v;
  });
  a.sort();
  let m = 0;
  for (let i = 0; i < a.length; i++) if (i === 0 || a[i] !== a[m - 1]) a[m++] = a[i];
  return a.subarray(0, m);
}

// ---- user-defined codes -----------------------------------------------------------------------

/**
 * Encode user-defined codes (SPEC §5.3): byte 0 is the encoding (0 raw uint8, 1 raw uint16 LE,
 * 2 RLE), then the uvarint length, then the raw elements or a uvarint pair count and
 * (value, runLength) uvarint pairs. Raw uses uint8 when every code is < 256; RLE is chosen when
 * it is strictly smaller than raw.
 *
 * @param {Uint8Array|Uint16Array} codes
 * @returns {Uint8Array}
 */
export function encodeUserCodes(codes) {
  const n = codes.length;
  let max = 0;
  let runs = 0;
  let rleSize = 0;
  for (let i = 0; i < n; ) {
    const v = codes[i];
    if (v > max) max = v;
    let j = i + 1;
    while (j < n && codes[j] === v) j++;
    runs++;
    rleSize += uvarintSize(v) + uvarintSize(j - i);
    i = j;
  }
  const wide = max >= 256;
  const rawSize = n * (wide ? 2 : 1);
  rleSize += uvarintSize(runs);
  const w = new ByteWriter(1 + 10 + Math.min(rawSize, rleSize));
  if (rleSize < rawSize) {
    w.byte(ENCODING_RLE);
    w.uvarint(n);
    w.uvarint(runs);
    for (let i = 0; i < n; ) {
      let j = i + 1;
      while (j < n && codes[j] === codes[i]) j++;
      w.uvarint(codes[i]);
      w.uvarint(j - i);
      i = j;
    }
  } else if (wide) {
    w.byte(ENCODING_U16);
    w.uvarint(n);
    const raw = new Uint8Array(2 * n);
    for (let i = 0; i < n; i++) {
      raw[2 * i] = codes[i] & 255;
      raw[2 * i + 1] = codes[i] >> 8;
    }
    w.append(raw);
  } else {
    w.byte(ENCODING_U8);
    w.uvarint(n);
    w.append(codes instanceof Uint8Array ? codes : Uint8Array.from(codes));
  }
  return w.result();
}

/**
 * Decode user-defined codes (the reader side of `encodeUserCodes`). RLE yields uint8 unless a
 * value is ≥ 256; zero-length runs are skipped; the runs must fill exactly `length`.
 *
 * @param {Uint8Array} bytes
 * @returns {Uint8Array|Uint16Array}
 */
export function decodeUserCodes(bytes) {
  const r = new ByteReader(bytes, "user-defined codes");
  const encoding = r.byte();
  const length = r.uvarint();
  if (encoding === ENCODING_U8) return r.take(length).slice();
  if (encoding === ENCODING_U16) {
    const raw = r.take(2 * length);
    const out = new Uint16Array(length);
    for (let i = 0; i < length; i++) out[i] = raw[2 * i] | (raw[2 * i + 1] << 8);
    return out;
  }
  if (encoding !== ENCODING_RLE) throw new Error(`user-defined codes: unknown encoding ${encoding}`);
  const pairs = r.uvarint();
  const values = [];
  const lengths = [];
  let total = 0;
  let max = 0;
  for (let p = 0; p < pairs; p++) {
    const value = r.uvarint();
    const run = r.uvarint();
    if (run === 0) continue;
    if (value > 65535) throw new Error(`user-defined codes: value ${value} does not fit uint16`);
    total += run;
    if (total > length) throw new Error(`user-defined codes: runs exceed length ${length}`);
    values.push(value);
    lengths.push(run);
    if (value > max) max = value;
  }
  if (total !== length) throw new Error(`user-defined codes: runs fill ${total} of ${length}`);
  const out = max >= 256 ? new Uint16Array(length) : new Uint8Array(length);
  let o = 0;
  for (let p = 0; p < values.length; p++) {
    out.fill(values[p], o, o + lengths[p]);
    o += lengths[p];
  }
  return out;
}

// ---- writer -----------------------------------------------------------------------------------

function u32le(value) {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value, true);
  return out;
}

function chunkMeta(id, label, priority, kind, codec, storedBytes, uncompressedBytes) {
  // every chunk this viewer writes refers to cells or fields of the dataset
  return { id, contributorId: CONTRIBUTOR, priority, kind, codec, label, datasetDependent: true, storedBytes, uncompressedBytes };
}

async function jsonChunk(id, label, value) {
  const raw = utf8.encode(JSON.stringify(value));
  const compress = raw.length > GZIP_THRESHOLD;
  const stored = compress ? await gzip(raw) : raw;
  return {
    meta: chunkMeta(id, label, "eager", "json", compress ? "gzip" : "none", stored.length, raw.length),
    stored,
  };
}

function binaryChunk(id, label, stored, dependsOn) {
  const meta = chunkMeta(id, label, "lazy", "binary", "none", stored.length, stored.length);
  return {
    meta: dependsOn ? { ...meta, dependsOn: [dependsOn] } : meta,
    stored,
  };
}

function requireId(id, what, seen) {
  if (typeof id !== "string" || id === "") throw new Error(`${what} id must be a non-empty string, got ${JSON.stringify(id)}`);
  if (seen.has(id)) throw new Error(`duplicate ${what} id ${JSON.stringify(id)}`);
  seen.add(id);
}

/** A binary chunk of a delta-varint cell list (sorted, unique, each below cellCount when known). */
function cellListChunk(id, label, cells, dependsOn, cellCount, what) {
  const sorted = sortedUniqueCells(cells);
  const last = sorted.length ? sorted[sorted.length - 1] : -1;
  if (cellCount !== null && last >= cellCount) throw new Error(`${what}: cell ${last} is not below cellCount ${cellCount}`);
  return { ...binaryChunk(id, label, deltaVarint(sorted), dependsOn), count: sorted.length };
}

/**
 * The compare-groups chunks (PROTOCOL.md "Session chunks"): the `analysis/comparisons` JSON and a
 * delta-varint cell list per group; nothing when there are no comparisons.
 */
async function comparisonChunks(comparisons, cellCount) {
  if (!comparisons.length) return [];
  const ids = new Set();
  const cells = [];
  const cellsChunk = (c, which, group) => {
    const id = `${COMPARISON_CELLS}${c.id}/${which}`;
    cells.push(cellListChunk(id, `Compared cells: ${group.label}`, group.cells, COMPARISONS, cellCount, `comparison ${c.id}`));
    return { label: group.label, cellsChunk: id };
  };
  const list = comparisons.map((c) => {
    requireId(c.id, "comparison", ids);
    if (c.id.includes("/")) throw new Error(`comparison id ${JSON.stringify(c.id)} must not contain "/"`);
    return {
      id: c.id,
      name: c.name,
      createdAt: c.createdAt,
      method: c.method,
      tieCorrect: Boolean(c.tieCorrect),
      statistic: c.statistic,
      group: cellsChunk(c, "group", c.group),
      reference: c.reference === "rest" ? "rest" : cellsChunk(c, "reference", c.reference),
      result: c.result,
    };
  });
  return [await jsonChunk(COMPARISONS, "Compare groups", { version: 1, comparisons: list }), ...cells];
}

/**
 * Serialise a viewer session as a `.cellucid-session` bundle (SPEC §5).
 *
 * @param {{
 *   createdAt?: string,
 *   datasetFingerprint: {sourceType: string, datasetId: string, cellCount?: number, varCount?: number},
 *   dataSource?: object|null,
 *   highlightPages?: Array<{id: string, name: string, groups: Array<{id: string, name: string,
 *     color: string, cells: Uint32Array, visible?: boolean}>}>,
 *   userDefinedFields?: Array<{id: string, key: string, kind: "category", categories: string[],
 *     source: "obs"|"var", codes: Uint8Array|Uint16Array}>,
 *   coreState?: object,
 *   comparisons?: Array<{id: string, name: string, createdAt: string, method: string,
 *     tieCorrect: boolean, statistic: string, group: {label: string, cells: Uint32Array},
 *     reference: "rest"|{label: string, cells: Uint32Array}, result: object}>,
 *   summary?: object|null,
 *   extraChunks?: Array<{id: string, label: string, kind: "json"|"binary", value?: unknown,
 *     bytes?: Uint8Array, dependsOn?: string}>,
 * }} session `extraChunks` are more chunks (json: `value`; binary: `bytes`), written after
 *   the others; `createdAt` defaults to now (ISO 8601); `summary` defaults to counts of pages,
 *   groups, highlighted cells and user-defined fields. Group ids must be unique across pages
 *   and field ids unique; cells must be < `datasetFingerprint.cellCount` when that is given,
 *   and obs codes must have that length.
 * @returns {Promise<Uint8Array>} the bundle bytes
 */
export async function writeSessionBundle(session) {
  const {
    createdAt = new Date().toISOString(),
    datasetFingerprint,
    dataSource = null,
    highlightPages = [],
    userDefinedFields = [],
    coreState = {},
    comparisons = [],
    extraChunks = [],
  } = session;
  if (datasetFingerprint === null || typeof datasetFingerprint !== "object") throw new Error("datasetFingerprint must be an object");
  const cellCount = Number.isInteger(datasetFingerprint.cellCount) ? datasetFingerprint.cellCount : null;
  const groupIds = new Set();
  const fieldIds = new Set();
  const cellChunks = [];
  const pages = highlightPages.map((page) => ({
    id: page.id,
    name: page.name,
    highlightedGroups: (page.groups ?? []).map((group) => {
      requireId(group.id, "highlight group", groupIds);
      const chunk = cellListChunk(`highlights/cells/${group.id}`, `Highlighted cells: ${group.name}`, group.cells, "highlights/meta", cellCount, `highlight group ${group.id}`);
      cellChunks.push(chunk);
      const meta = { id: group.id, name: group.name, color: group.color, cellCount: chunk.count };
      return group.visible === false ? { ...meta, visible: false } : meta;
    }),
  }));
  const codeChunks = [];
  const overlays = userDefinedFields.map((field) => {
    requireId(field.id, "user-defined field", fieldIds);
    if (field.source === "obs" && cellCount !== null && field.codes.length !== cellCount) {
      throw new Error(`user-defined field ${field.id}: ${field.codes.length} codes for ${cellCount} cells`);
    }
    codeChunks.push(binaryChunk(`user-defined/codes/${field.id}`, `Codes: ${field.key}`, encodeUserCodes(field.codes), "core/field-overlays"));
    const categories = [...(field.categories ?? [])];
    return { id: field.id, key: field.key, kind: field.kind ?? "category", categories, source: field.source ?? "obs", isDeleted: false };
  });
  const chunks = [
    await jsonChunk("core/state", "Viewer state", coreState),
    await jsonChunk("core/field-overlays", "User-defined fields", { userDefinedFields: overlays }),
    await jsonChunk("highlights/meta", "Highlight pages", { pages }),
    ...cellChunks,
    ...codeChunks,
    ...(await comparisonChunks(comparisons, cellCount)),
  ];
  const taken = new Set(chunks.map((c) => c.meta.id));
  for (const extra of extraChunks) {
    requireId(extra.id, "chunk", taken);
    if (extra.kind === "json") chunks.push(await jsonChunk(extra.id, extra.label, extra.value));
    else if (extra.kind === "binary" && extra.bytes instanceof Uint8Array) chunks.push(binaryChunk(extra.id, extra.label, extra.bytes, extra.dependsOn));
    else throw new Error(`chunk ${extra.id}: kind must be "json" (with value) or "binary" (with Uint8Array bytes)`);
  }
  const summary =
    session.summary !== undefined
      ? session.summary
      : {
          highlightPages: pages.length,
          highlightGroups: cellChunks.length,
          highlightedCells: pages.reduce((sum, p) => sum + p.highlightedGroups.reduce((s, g) => s + g.cellCount, 0), 0),
          userDefinedFields: overlays.length,
        };
  const manifest = utf8.encode(JSON.stringify({ createdAt, dataSource, datasetFingerprint, summary, chunks: chunks.map((c) => c.meta) }));
  if (manifest.length > MAX_MANIFEST_BYTES) throw new Error(`session manifest is ${manifest.length} bytes, above 16 MiB`);
  const magic = utf8.encode(MAGIC);
  let total = magic.length + 4 + manifest.length;
  for (const c of chunks) {
    if (c.stored.length > MAX_CHUNK_BYTES) throw new Error(`chunk ${c.meta.id} is ${c.stored.length} bytes, above 512 MiB`);
    total += 4 + c.stored.length;
  }
  const out = new Uint8Array(total);
  let o = 0;
  for (const part of [magic, u32le(manifest.length), manifest, ...chunks.flatMap((c) => [u32le(c.stored.length), c.stored])]) {
    out.set(part, o);
    o += part.length;
  }
  return out;
}

// ---- reader -----------------------------------------------------------------------------------

/**
 * Read a `.cellucid-session` bundle: validate the container, decode every chunk (gzip applied,
 * JSON parsed, `highlights/cells/*` and `analysis/comparisons/cells/*` as Uint32Array, `user-defined/codes/*` as typed arrays,
 * other binary chunks as bytes). Trailing bytes after the last chunk are ignored (SPEC §5.1).
 *
 * @param {ArrayBuffer|ArrayBufferView} buffer
 * @returns {Promise<{manifest: object, chunks: Map<string, {meta: object, stored: Uint8Array, value: unknown}>}>}
 * @throws {Error} (rejects) for a bad magic, manifest, codec, kind or a truncated chunk
 */
export async function readSessionBundle(buffer) {
  const bytes = asBytes(buffer);
  const magic = utf8.encode(MAGIC);
  if (bytes.length < magic.length || magic.some((b, i) => bytes[i] !== b)) throw new Error("Not a .cellucid-session file (invalid MAGIC header)");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = magic.length;
  if (o + 4 > bytes.length) throw new Error("truncated session bundle (no manifest length)");
  const manifestLen = view.getUint32(o, true);
  o += 4;
  if (manifestLen < 1 || manifestLen > MAX_MANIFEST_BYTES) throw new Error(`manifest length ${manifestLen} outside 1 … 16 MiB`);
  if (o + manifestLen > bytes.length) throw new Error("truncated session manifest");
  const manifest = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(o, o + manifestLen)));
  o += manifestLen;
  if (manifest === null || typeof manifest !== "object" || !Array.isArray(manifest.chunks)) throw new Error("session manifest has no chunks list");
  const cellCount = manifest.datasetFingerprint?.cellCount;
  const chunks = new Map();
  for (const meta of manifest.chunks) {
    if (typeof meta?.id !== "string" || meta.id === "" || chunks.has(meta.id)) {
      throw new Error(`bad or duplicate chunk id ${JSON.stringify(meta?.id)}`);
    }
    if (!["json", "binary"].includes(meta.kind)) throw new Error(`chunk ${meta.id}: unknown kind ${JSON.stringify(meta.kind)}`);
    if (!["none", "gzip"].includes(meta.codec)) throw new Error(`chunk ${meta.id}: unknown codec ${JSON.stringify(meta.codec)}`);
    if (o + 4 > bytes.length) throw new Error(`chunk ${meta.id}: truncated length`);
    const len = view.getUint32(o, true);
    o += 4;
    if (len > MAX_CHUNK_BYTES || o + len > bytes.length) throw new Error(`chunk ${meta.id}: truncated or larger than 512 MiB`);
    const stored = bytes.subarray(o, o + len);
    o += len;
    const data = meta.codec === "gzip" ? new Uint8Array(await gunzip(stored)) : stored;
    const limit = meta.uncompressedBytes;
    if (Number.isInteger(limit) && limit > 0 && data.length > limit) {
      throw new Error(`chunk ${meta.id}: decodes to ${data.length} bytes, above its uncompressedBytes ${limit}`);
    }
    let value;
    if (meta.kind === "json") value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data));
    else if (meta.id.startsWith("highlights/cells/") || meta.id.startsWith(COMPARISON_CELLS)) value = decodeDeltaVarint(data, Number.isInteger(cellCount) ? { nObs: cellCount } : {});
    else if (meta.id.startsWith("user-defined/codes/")) value = decodeUserCodes(data);
    else value = data;
    chunks.set(meta.id, { meta, stored, value });
  }
  return { manifest, chunks };
}
