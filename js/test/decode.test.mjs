import assert from "node:assert/strict";
import { test } from "node:test";
import zlib from "node:zlib";
import {
  decodeArray,
  decodeCategorical,
  decodeContinuous,
  decodeOutliers,
  decodePoints,
  dequantize,
  gunzip,
  gzip,
  gzipMemberEnd,
  runtimeRejectsTrailingGzip,
} from "../viewer/src/data/decode.js";
import { NO_PYTHON, runPython, rng } from "./helpers.mjs";

const bytesOf = (typed) => new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
const text = (buf) => Buffer.from(new Uint8Array(buf)).toString();

test("gunzip: one member round trip, including an empty payload", async () => {
  const data = Buffer.from("hello, cellucid ".repeat(100));
  for (const level of [1, 6, 9]) {
    assert.equal(text(await gunzip(zlib.gzipSync(data, { level }))), data.toString());
  }
  assert.equal((await gunzip(zlib.gzipSync(Buffer.alloc(0)))).byteLength, 0);
  assert.equal(text(await gunzip(await gzip(data))), data.toString());
});

test("gunzip: stored, fixed and dynamic blocks, big and random data", async () => {
  const random = new Uint8Array(300000);
  const r = rng(1);
  for (let i = 0; i < random.length; i++) random[i] = (r() * 256) | 0;
  const repetitive = new Float32Array(100000).map((_, i) => i % 17);
  for (const data of [random, bytesOf(repetitive), Buffer.from("a")]) {
    for (const level of [0, 1, 9]) {
      const gz = zlib.gzipSync(data, { level });
      assert.equal(gzipMemberEnd(gz), gz.length);
      assert.deepEqual(new Uint8Array(await gunzip(gz)), new Uint8Array(data));
    }
  }
});

test("gunzip: header fields (name, comment, extra, header CRC) are skipped", () => {
  const body = zlib.deflateRawSync(Buffer.from("payload"));
  const trailer = Buffer.alloc(8); // gzipMemberEnd finds the end; it does not check the CRC
  // FLG = FEXTRA | FNAME | FCOMMENT | FHCRC
  const header = Buffer.from([0x1f, 0x8b, 8, 4 | 8 | 16 | 2, 0, 0, 0, 0, 0, 0xff, 3, 0, 1, 2, 3, 0x61, 0, 0x62, 0, 0, 0]);
  const member = Buffer.concat([header, body, trailer]);
  assert.equal(gzipMemberEnd(member), member.length);
});

test("DecompressionStream in node ignores a second member and trailing bytes (documented), gunzip does not", async () => {
  const a = zlib.gzipSync(Buffer.from("first"));
  const b = zlib.gzipSync(Buffer.from("second"));
  const lenient = async (buf) => {
    const stream = new Blob([buf]).stream().pipeThrough(new DecompressionStream("gzip"));
    return text(await new Response(stream).arrayBuffer());
  };
  // what node 20 does natively (a browser rejects both)
  assert.equal(await lenient(Buffer.concat([a, b])), "firstsecond");
  assert.equal(await lenient(Buffer.concat([a, Buffer.from([0])])), "first");
  assert.equal(await runtimeRejectsTrailingGzip(), false);
  await assert.rejects(gunzip(Buffer.concat([a, b])), /after the gzip member/);
  await assert.rejects(gunzip(Buffer.concat([a, Buffer.from([0])])), /1 byte\(s\) after the gzip member/);
  await assert.rejects(gunzip(Buffer.concat([zlib.gzipSync(Buffer.alloc(0)), b])), /after the gzip member/);
  assert.equal(gzipMemberEnd(Buffer.concat([a, b])), a.length);
  assert.equal(gzipMemberEnd(Buffer.concat([a, b]), a.length), a.length + b.length);
});

test("gunzip rejects non-gzip, truncated and corrupt input", async () => {
  const gz = zlib.gzipSync(Buffer.from("some payload that is long enough".repeat(20)));
  await assert.rejects(gunzip(new Uint8Array(0)), /not a gzip member/);
  await assert.rejects(gunzip(Buffer.from("plain text, definitely not gzip")), /not a gzip member/);
  await assert.rejects(gunzip(gz.subarray(0, gz.length - 4)), /truncated|corrupt/);
  await assert.rejects(gunzip(gz.subarray(0, 20)), /truncated|corrupt/);
  const badCrc = Buffer.from(gz);
  badCrc[badCrc.length - 6] ^= 0xff;
  await assert.rejects(gunzip(badCrc), /corrupt gzip data/);
  const badFlags = Buffer.from(gz);
  badFlags[3] = 0x20;
  await assert.rejects(gunzip(badFlags), /reserved/);
  assert.throws(() => gzipMemberEnd(Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 0x07, 0, 0, 0, 0, 0, 0, 0, 0, 0])), /invalid deflate block type/);
});

test("gunzip accepts the exporter's own .gz payloads (python gzip_bytes)", { skip: NO_PYTHON }, async () => {
  const out = runPython("run_inline.py", [
    "import sys\nfrom cellucid.export.binary import gzip_bytes\nsys.stdout.write(gzip_bytes(bytes(range(256)) * 50, 6).hex() + ' ' + gzip_bytes(b'', 9).hex())",
  ]);
  const [full, empty] = out.split(" ").map((hex) => Buffer.from(hex, "hex"));
  const decoded = new Uint8Array(await gunzip(full));
  assert.equal(decoded.length, 256 * 50);
  assert.equal(decoded[257], 1);
  assert.equal((await gunzip(empty)).byteLength, 0);
});

test("decodeArray: every dtype, little-endian, views when aligned", () => {
  const f = Float32Array.of(1.5, -2, NaN, Infinity);
  const got = decodeArray(f.buffer, "float32", 4);
  assert.ok(got instanceof Float32Array);
  assert.equal(got.buffer, f.buffer); // no copy
  assert.deepEqual(Array.from(got), [1.5, -2, NaN, Infinity]);
  assert.deepEqual(Array.from(decodeArray(Uint8Array.of(1, 2, 255), "uint8", 3)), [1, 2, 255]);
  assert.deepEqual(Array.from(decodeArray(Uint8Array.of(1, 0, 0, 1), "u16", 2)), [1, 256]);
  assert.deepEqual(Array.from(decodeArray(Uint8Array.of(1, 0, 0, 0, 0, 0, 0, 128), "uint32", 2)), [1, 2147483648]);
  assert.deepEqual(Array.from(decodeArray(Float64Array.of(0.1, 1e300), "f64", 2)), [0.1, 1e300]);
  assert.equal(decodeArray(new ArrayBuffer(0), "float32", 0).length, 0);
});

test("decodeArray: unaligned input is copied", () => {
  const backing = new Uint8Array(13);
  backing.set(bytesOf(Float32Array.of(3.25, -1, 7)), 1);
  const view = backing.subarray(1);
  const got = decodeArray(view, "float32", 3);
  assert.deepEqual(Array.from(got), [3.25, -1, 7]);
  assert.notEqual(got.buffer, backing.buffer);
  const wide = new Uint8Array(17);
  wide.set(bytesOf(Float64Array.of(2.5, 4)), 1);
  assert.deepEqual(Array.from(decodeArray(wide.subarray(1), "float64", 2)), [2.5, 4]);
});

test("decodeArray: a byte length that is not count × itemsize is an error naming the file", () => {
  assert.throws(() => decodeArray(new Uint8Array(10), "float32", 3, "obs/age.values.f32"), {
    message: "obs/age.values.f32: expected 12 bytes (3 × float32), found 10",
  });
  assert.throws(() => decodeArray(new Uint8Array(3), "uint16", 1), /expected 2 bytes \(1 × uint16\), found 3/);
  assert.throws(() => decodeArray(new Uint8Array(4), "int32", 1), /unknown dtype/);
  assert.throws(() => decodeArray("nope", "uint8", 0), TypeError);
});

test("dequantize: NaN for the missing marker, lo + q·step elsewhere", () => {
  assert.deepEqual(Array.from(dequantize(Uint8Array.of(0, 127, 254, 255), 0, 2, 8)), [0, 1, 2, NaN]);
  const d16 = dequantize(Uint16Array.of(0, 65534, 65535, 32767), -1, 1, 16);
  assert.equal(d16[0], -1);
  assert.equal(d16[1], 1);
  assert.ok(Number.isNaN(d16[2]));
  assert.ok(Math.abs(d16[3]) < 1e-4);
  assert.equal(dequantize(new Uint8Array(0), 0, 1, 8).length, 0);
  assert.throws(() => dequantize(Uint8Array.of(1), 0, 1, 12), /8 or 16/);
  assert.throws(() => dequantize(Uint16Array.of(1), 0, 1, 8), TypeError);
});

test("dequantize matches python encode.dequantize bit for bit", { skip: NO_PYTHON }, () => {
  const cases = [
    [8, 0.1, 7.3],
    [8, -3.5, 1e-3],
    [16, 1e-7, 123456.789],
    [16, -1e30, 1e30],
  ];
  const script = [
    "import json, sys, numpy as np",
    "from cellucid.export.encode import dequantize",
    "out = []",
    "for bits, lo, hi in json.load(sys.stdin):",
    "    codes = np.arange(0, (1 << bits), dtype=np.uint8 if bits == 8 else np.uint16)",
    "    out.append(dequantize(codes, lo, hi, bits).view(np.uint32).tolist())",
    "print(json.dumps(out))",
  ].join("\n");
  const expected = JSON.parse(runPython("run_inline.py", [script], JSON.stringify(cases)));
  cases.forEach(([bits, lo, hi], i) => {
    const codes = bits === 8 ? Uint8Array.from({ length: 256 }, (_, q) => q) : Uint16Array.from({ length: 65536 }, (_, q) => q);
    const mine = new Uint32Array(dequantize(codes, lo, hi, bits).buffer);
    assert.deepEqual(Array.from(mine), expected[i], `bits ${bits} [${lo}, ${hi}]`);
  });
});

test("decodeContinuous: float32 and quantised tuples", () => {
  const f = Float32Array.of(1, NaN, -Infinity);
  assert.deepEqual(Array.from(decodeContinuous(f.buffer, { ext: "f32", quantized: false }, ["age"], 3)), [1, NaN, -Infinity]);
  const q = decodeContinuous(Uint8Array.of(0, 254, 255), { ext: "u8", quantized: true, quantizationBits: 8 }, ["age", 10, 20], 3);
  assert.deepEqual(Array.from(q), [10, 20, NaN]);
  const q16 = decodeContinuous(bytesOf(Uint16Array.of(65534, 65535)), { ext: "u16", quantized: true }, ["g", 0, 1], 2);
  assert.deepEqual(Array.from(q16), [1, NaN]);
  assert.throws(() => decodeContinuous(f.buffer, { ext: "f32" }, ["age", 0, 1], 3), /tuple must be \[key\]/);
  assert.throws(() => decodeContinuous(Uint8Array.of(0), { ext: "u8" }, ["age"], 1), /\[key, min, max\]/);
  assert.throws(() => decodeContinuous(Uint8Array.of(0), { ext: "u8" }, ["age", 2, 1], 1), /finite min < max/);
  assert.throws(() => decodeContinuous(Uint8Array.of(0), { ext: "u32" }, ["age", 0, 1], 1), /unknown values ext/);
  assert.throws(() => decodeContinuous(f.buffer, { ext: "f32" }, ["age"], 4), /expected 16 bytes/);
  assert.equal(decodeContinuous(new ArrayBuffer(4), { ext: "f32" }, ["x"], 1).length, 1); // n = 1
});

test("decodeCategorical: codes < k or the sentinel", () => {
  assert.deepEqual(Array.from(decodeCategorical(Uint8Array.of(0, 1, 255, 2), "uint8", 4, 3)), [0, 1, 255, 2]);
  assert.throws(() => decodeCategorical(Uint8Array.of(0, 3), "uint8", 2, 3), /code 3 at cell 1/);
  const wide = decodeCategorical(bytesOf(Uint16Array.of(0, 65535, 1000)), "uint16", 3, 1001);
  assert.ok(wide instanceof Uint16Array);
  assert.deepEqual(Array.from(wide), [0, 65535, 1000]);
  // k = 0: every cell missing is fine, any other code is not
  assert.deepEqual(Array.from(decodeCategorical(Uint8Array.of(255, 255), "uint8", 2, 0)), [255, 255]);
  assert.throws(() => decodeCategorical(Uint8Array.of(0), "uint8", 1, 0), /neither < 0/);
  // 65,535 categories: the largest code is 65534
  assert.deepEqual(Array.from(decodeCategorical(bytesOf(Uint16Array.of(65534, 65535)), "uint16", 2, 65535)), [65534, 65535]);
  assert.throws(() => decodeCategorical(Uint8Array.of(0), "int8", 1, 1), /uint8" or "uint16/);
});

test("decodeOutliers and decodePoints", () => {
  const schema = { outlierExt: "u8" };
  assert.deepEqual(Array.from(decodeOutliers(Uint8Array.of(0, 254, 255), schema, ["c", ["a"], "uint8", 255, {}, 0.5, 1], 3)), [0.5, 1, NaN]);
  assert.deepEqual(Array.from(decodeOutliers(Float32Array.of(0.25).buffer, { outlierExt: "f32" }, ["c", ["a"], "uint8", 255, {}], 1)), [0.25]);
  assert.throws(() => decodeOutliers(new Uint8Array(1), { outlierExt: null }, ["c"], 1), /no latent space/);
  assert.equal(decodePoints(new Float32Array(6).buffer, 2, 3).length, 6);
  assert.throws(() => decodePoints(new Float32Array(5).buffer, 2, 3), /points_3d.bin: expected 24 bytes/);
});
