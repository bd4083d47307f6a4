import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { base64Decode, base64Encode, decodeCells, encodeCells, encodeCellsForEvent } from "../viewer/src/select/cellset.js";
import { FIXTURES, NO_PYTHON, rng, runPython } from "./helpers.mjs";

const attempt = (fn) => {
  try {
    const value = fn();
    return value instanceof Uint32Array || value instanceof Uint8Array ? Array.from(value) : value;
  } catch (error) {
    return { error: error.message };
  }
};

// Compare with python's answers: equal values, or an error on both sides.
function assertSame(mine, python, what) {
  if (python && typeof python === "object" && "error" in python) {
    assert.ok(mine && typeof mine === "object" && "error" in mine, `${what}: python rejects (${python.error}), JS gave ${JSON.stringify(mine)}`);
  } else {
    assert.deepEqual(mine, python, what);
  }
}

function answer(query) {
  return {
    encode: query.encode.map(([indices, n]) => attempt(() => encodeCells(indices, n))),
    decode: query.decode.map((value) => attempt(() => decodeCells(value))),
    b64: query.b64.map((text) => attempt(() => base64Decode(text))),
  };
}

function compare(query, python) {
  const mine = answer(query);
  for (const part of ["encode", "decode", "b64"]) {
    query[part].forEach((q, i) => assertSame(mine[part][i], python[part][i], `${part} ${JSON.stringify(q).slice(0, 80)}`));
  }
}

test("python's docstring examples", () => {
  assert.deepEqual(encodeCells([1, 3], 1000), { encoding: "u32-base64", count: 2, data: "AQAAAAMAAAA=" });
  assert.equal(encodeCells(Array.from({ length: 500 }, (_, i) => 2 * i), 1000).encoding, "bitset-base64");
  assert.deepEqual(Array.from(decodeCells([5, 2])), [5, 2]);
  assert.deepEqual(Array.from(decodeCells({ encoding: "bitset-base64", n: 10, count: 2, data: "JAA=" })), [2, 5]);
});

test("the committed fixture of python answers (js/test/fixtures/cellsets.json)", () => {
  const { query, answer: python } = JSON.parse(readFileSync(path.join(FIXTURES, "cellsets.json"), "utf8"));
  compare(query, python);
  // the key order of python's dicts, so JSON texts are equal too
  assert.equal(JSON.stringify(encodeCells([0, 7], 8)), JSON.stringify(python.encode[6]));
});

test("ties go to u32; the bitset wins one cell later; bitsets at byte boundaries", () => {
  // n = 64 → 8 bitset bytes: 2 cells (8 bytes) tie → u32, 3 cells → bitset
  assert.equal(encodeCells([4, 0], 64).encoding, "u32-base64");
  assert.deepEqual(encodeCells([63, 1, 62], 64), { encoding: "bitset-base64", n: 64, count: 3, data: base64Encode(Uint8Array.of(2, 0, 0, 0, 0, 0, 0, 0xc0)) });
  for (const n of [7, 8, 9, 15, 16, 17, 24]) {
    const all = Array.from({ length: n }, (_, i) => i);
    const enc = encodeCells(all, n);
    assert.equal(enc.encoding, "bitset-base64");
    const bytes = base64Decode(enc.data);
    assert.equal(bytes.length, Math.ceil(n / 8));
    assert.equal(bytes[bytes.length - 1], n % 8 ? (1 << n % 8) - 1 : 0xff);
    assert.deepEqual(Array.from(decodeCells(enc)), all);
  }
});

test("u32 keeps order, bitset decodes sorted; raw bytes", () => {
  assert.deepEqual(Array.from(decodeCells(encodeCells([9, 2, 5], 1000))), [9, 2, 5]);
  assert.deepEqual(Array.from(decodeCells(encodeCells([9, 2, 5], 10))), [2, 5, 9]);
  const raw = encodeCells([3, 1], 1000, { raw: true });
  assert.ok(raw.data instanceof Uint8Array);
  assert.deepEqual(Array.from(raw.data), [3, 0, 0, 0, 1, 0, 0, 0]);
  assert.deepEqual(Array.from(decodeCells(raw)), [3, 1]);
  assert.deepEqual(Array.from(decodeCells({ ...raw, data: raw.data.buffer.slice(0, 8) })), [3, 1]);
});

test("empty selections, n = 0 and n = 1", () => {
  assert.deepEqual(encodeCells([], 0), { encoding: "u32-base64", count: 0, data: "" });
  assert.deepEqual(encodeCells(new Uint32Array(0), 5), { encoding: "u32-base64", count: 0, data: "" });
  assert.deepEqual(encodeCells([0], 1), { encoding: "bitset-base64", n: 1, count: 1, data: "AQ==" });
  assert.deepEqual(Array.from(decodeCells({ encoding: "bitset-base64", n: 0, count: 0, data: "" })), []);
  assert.deepEqual(Array.from(decodeCells([])), []);
});

test("errors: bad indices, duplicates, out of range, malformed objects", () => {
  assert.throws(() => encodeCells([1, 1], 100), /duplicate/);
  assert.throws(() => encodeCells([1, 1, 2, 3, 4], 8), /duplicate/); // bitset path
  assert.throws(() => encodeCells([10], 10), /not below n_cells=10/);
  assert.throws(() => encodeCells([-1], 10), /non-negative/);
  assert.throws(() => encodeCells([1.5], 10), /non-negative integers/);
  assert.throws(() => encodeCells([1], 2 ** 32 + 1), /between 0 and 2\*\*32/);
  assert.throws(() => encodeCells([1], 1.5), TypeError);
  assert.throws(() => decodeCells({ encoding: "u32-base64", count: 1, data: "AQAAAA==", extra: 1 }), /exactly the keys count, data, encoding/);
  assert.throws(() => decodeCells({ encoding: "u32-base64", count: -1, data: "" }), /non-negative integer/);
  assert.throws(() => decodeCells({ encoding: "u32-base64", count: true, data: "" }), /non-negative integer/);
  assert.throws(() => decodeCells({ encoding: "bitset-base64", n: 9, count: 1, data: "AAI=" }), /at or beyond n=9/);
  assert.throws(() => decodeCells({ encoding: "bitset-base64", n: 10, count: 1, data: "JAA=" }), /2 bits set/);
  assert.throws(() => decodeCells({ encoding: "bitset-base64", n: 10, count: 0, data: "AA==" }), /needs 2/);
  assert.throws(() => decodeCells({ encoding: "u32-base64", count: 1, data: "AQAA!A==" }), /base64/);
  assert.throws(() => decodeCells({ encoding: "u32-base64", count: 1, data: 5 }), /base64 text/);
  assert.throws(() => decodeCells("1,2"), /list of cell indices/);
  assert.throws(() => decodeCells(null), /list of cell indices/);
  assert.throws(() => decodeCells([1, 2, 1]), /duplicate/);
});

test("base64 round trip for every length and byte value", () => {
  const random = rng(9);
  for (let len = 0; len < 70; len++) {
    const bytes = Uint8Array.from({ length: len }, () => (random() * 256) | 0);
    const text = base64Encode(bytes);
    assert.equal(text, Buffer.from(bytes).toString("base64"));
    assert.deepEqual(base64Decode(text), bytes);
  }
  const big = Uint8Array.from({ length: 200001 }, (_, i) => i * 7);
  assert.equal(base64Encode(big), Buffer.from(big).toString("base64"));
});

test("encodeCellsForEvent: a plain array up to 1,000 cells, else the smaller binary form", () => {
  assert.deepEqual(encodeCellsForEvent(Uint32Array.of(5, 1), 10), [5, 1]);
  assert.deepEqual(encodeCellsForEvent(new Uint32Array(0), 10), []);
  const thousand = Uint32Array.from({ length: 1000 }, (_, i) => i);
  assert.ok(Array.isArray(encodeCellsForEvent(thousand, 5000)));
  const more = Uint32Array.from({ length: 1001 }, (_, i) => i * 3);
  assert.equal(encodeCellsForEvent(more, 4000).encoding, "bitset-base64");
  assert.equal(encodeCellsForEvent(more, 10_000_000).encoding, "u32-base64");
  assert.throws(() => encodeCellsForEvent([3], 3), /not below/);
  assert.throws(() => encodeCellsForEvent([3, 3], 5), /duplicate/);
});

test("a multi-million-cell selection round trips", () => {
  const n = 5_000_000;
  const all = Uint32Array.from({ length: n }, (_, i) => i);
  const enc = encodeCells(all, n);
  assert.equal(enc.encoding, "bitset-base64");
  assert.equal(enc.data.length, 4 * Math.ceil(Math.ceil(n / 8) / 3));
  assert.deepEqual(decodeCells(enc), all);
});

test("live cross-check against python encode_cells / decode_cells / b64decode", { skip: NO_PYTHON }, () => {
  const random = rng(42);
  const query = { encode: [], decode: [], b64: [] };
  for (let round = 0; round < 200; round++) {
    const n = [0, 1, 7, 8, 9, 31, 32, 33, 63, 64, 65, 1000][round % 12] + ((random() * 3) | 0);
    const density = random();
    const cells = [];
    for (let i = 0; i < n; i++) if (random() < density) cells.push(i);
    for (let i = cells.length - 1; i > 0; i--) {
      const j = (random() * (i + 1)) | 0;
      [cells[i], cells[j]] = [cells[j], cells[i]];
    }
    query.encode.push([cells, n]);
  }
  // python's own outputs, decoded by JS, are checked below; here: JS outputs decoded by python
  for (const [cells, n] of query.encode.slice(0, 60)) query.decode.push(encodeCells(cells, n));
  const alphabet = "AQ=+/z9\n-_";
  for (let round = 0; round < 300; round++) {
    let text = "";
    const len = (random() * 9) | 0;
    for (let i = 0; i < len; i++) text += alphabet[(random() * alphabet.length) | 0];
    query.b64.push(text);
  }
  const python = JSON.parse(runPython("cellsets.py", [], JSON.stringify(query)));
  compare(query, python);
  for (const encoded of python.encode) {
    const back = Array.from(decodeCells(encoded));
    assert.deepEqual(Array.from(decodeCells(encodeCells(back, encoded.n ?? 4294967296))).sort((a, b) => a - b), [...back].sort((a, b) => a - b));
  }
});
