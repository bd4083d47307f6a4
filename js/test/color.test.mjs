import assert from "node:assert/strict";
import { test } from "node:test";
import { COLORMAP_NAMES, LUT_SIZE, colorCategorical, colorContinuous, getColormap, robustRange, sampleColormap } from "../viewer/src/color/colormaps.js";
import { MISSING_RGB, categoricalPalette, hexToRgb, oklchToRgb, rgbToHex, rgbToOklab } from "../viewer/src/color/palettes.js";
import { rng } from "./helpers.mjs";

const rgbAt = (p, i) => [p[3 * i], p[3 * i + 1], p[3 * i + 2]];
const oklabDistance = (a, b) => {
  const [p, q] = [rgbToOklab(a), rgbToOklab(b)];
  return Math.hypot(p[0] - q[0], p[1] - q[1], p[2] - q[2]);
};

test("hexToRgb and rgbToHex", () => {
  assert.deepEqual(hexToRgb("#FF8000"), [255, 128, 0]);
  assert.deepEqual(hexToRgb("ff8000"), [255, 128, 0]);
  assert.deepEqual(hexToRgb("#f80"), [255, 136, 0]);
  assert.throws(() => hexToRgb("#12345"), /#RRGGBB/);
  assert.throws(() => hexToRgb("red"), /#RRGGBB/);
  assert.throws(() => hexToRgb(null), /#RRGGBB/);
  assert.equal(rgbToHex(255, 128, 0), "#ff8000");
  assert.equal(rgbToHex([0, 15, 300]), "#000fff");
  assert.equal(rgbToHex(Uint8Array.of(1, 2, 3)), "#010203");
  for (let v = 0; v < 256; v += 17) assert.equal(rgbToHex(hexToRgb(rgbToHex(v, 255 - v, v >> 1))), rgbToHex(v, 255 - v, v >> 1));
});

test("OKLab conversions: white, black, and OKLCH out of gamut", () => {
  const white = rgbToOklab([255, 255, 255]);
  assert.ok(Math.abs(white[0] - 1) < 1e-6 && Math.abs(white[1]) < 1e-6 && Math.abs(white[2]) < 1e-6);
  assert.deepEqual(rgbToOklab([0, 0, 0]).map((v) => Math.round(v * 1e6)), [0, 0, 0]);
  assert.deepEqual(oklchToRgb(1, 0, 0), [255, 255, 255]);
  assert.equal(oklchToRgb(0.5, 0.4, 140), null); // far outside sRGB
});

test("categoricalPalette: sizes, k = 0, determinism and prefix stability", () => {
  assert.equal(categoricalPalette(0).length, 0);
  assert.equal(categoricalPalette(1).length, 3);
  const p300 = categoricalPalette(300);
  assert.ok(p300 instanceof Uint8Array);
  assert.deepEqual(categoricalPalette(20), p300.subarray(0, 60));
  assert.deepEqual(categoricalPalette(300), p300);
  assert.throws(() => categoricalPalette(-1), /non-negative integer/);
  assert.throws(() => categoricalPalette(1.5), /non-negative integer/);
});

test("categoricalPalette: distinguishable colours, none of them grey", () => {
  const p = categoricalPalette(300);
  const minPairwise = (k) => {
    let min = Infinity;
    for (let i = 0; i < k; i++) for (let j = 0; j < i; j++) min = Math.min(min, oklabDistance(rgbAt(p, i), rgbAt(p, j)));
    return min;
  };
  assert.ok(minPairwise(10) > 0.12, "first 10");
  assert.ok(minPairwise(30) > 0.08, "hand-picked base");
  assert.ok(minPairwise(100) > 0.06, "100 categories");
  assert.ok(minPairwise(300) > 0.04, "300 categories");
  for (let i = 0; i < 300; i++) assert.ok(oklabDistance(rgbAt(p, i), MISSING_RGB) > 0.04, `colour ${i} is too close to the missing grey`);
});

test("categoricalPalette: 65,535 categories are cheap and in range", () => {
  const start = performance.now();
  const p = categoricalPalette(65535);
  assert.equal(p.length, 65535 * 3);
  assert.ok(performance.now() - start < 5000);
  const distinct = new Set();
  for (let i = 0; i < 65535; i++) distinct.add(rgbToHex(rgbAt(p, i)));
  assert.ok(distinct.size > 20000, `${distinct.size} distinct colours`);
});

test("colour maps: every name gives a 256-entry table with the known end points", () => {
  assert.deepEqual([...COLORMAP_NAMES], ["viridis", "magma", "inferno", "plasma", "cividis", "turbo", "coolwarm"]);
  const close = (got, want, tol, what) => got.forEach((v, i) => assert.ok(Math.abs(v - want[i]) <= tol, `${what}: ${got} vs ${want}`));
  // published end and middle colours of each map
  const anchors = {
    viridis: [[68, 1, 84], [33, 145, 140], [253, 231, 37]],
    magma: [[0, 0, 4], [183, 55, 121], [252, 253, 191]],
    inferno: [[0, 0, 4], [188, 55, 84], [252, 255, 164]],
    plasma: [[13, 8, 135], [204, 71, 120], [240, 249, 33]],
    cividis: [[0, 34, 78], [125, 124, 120], [254, 232, 56]],
    turbo: [[48, 18, 59], [164, 252, 60], [122, 4, 3]],
    coolwarm: [[59, 76, 192], [221, 221, 221], [180, 4, 38]],
  };
  const tolerance = { viridis: 5, magma: 6, inferno: 8, plasma: 6, cividis: 14, turbo: 35, coolwarm: 3 };
  for (const name of COLORMAP_NAMES) {
    const lut = getColormap(name);
    assert.equal(lut.length, LUT_SIZE * 3);
    assert.equal(getColormap(name), lut); // cached
    const [lo, mid, hi] = anchors[name];
    close(rgbAt(lut, 0), lo, tolerance[name], `${name}(0)`);
    close(rgbAt(lut, 128), mid, tolerance[name], `${name}(0.5)`);
    close(rgbAt(lut, 255), hi, tolerance[name], `${name}(1)`);
  }
  assert.throws(() => getColormap("jet"), /unknown colour map/);
});

test("sequential maps get lighter; coolwarm is symmetric around a light grey", () => {
  for (const name of ["viridis", "magma", "inferno", "plasma", "cividis"]) {
    const lut = getColormap(name);
    const L = (i) => rgbToOklab(rgbAt(lut, i))[0];
    for (let i = 16; i < 256; i += 16) assert.ok(L(i) > L(i - 16), `${name} lightness at ${i}`);
  }
  const cw = getColormap("coolwarm");
  const L = (i) => rgbToOklab(rgbAt(cw, i))[0];
  assert.ok(L(128) > L(0) && L(128) > L(255));
  assert.ok(Math.abs(L(64) - L(191)) < 0.05);
});

test("sampleColormap clamps", () => {
  const lut = getColormap("viridis");
  assert.deepEqual(sampleColormap(lut, -3), rgbAt(lut, 0));
  assert.deepEqual(sampleColormap(lut, 2), rgbAt(lut, 255));
  assert.deepEqual(sampleColormap(lut, NaN), rgbAt(lut, 0));
});

test("colorContinuous: range, clamping, NaN, Infinity, alpha", () => {
  const lut = getColormap("viridis");
  const values = Float32Array.of(0, 10, 5, -4, 99, NaN, Infinity, -Infinity);
  const out = colorContinuous(values, 0, 10, lut, undefined, { alpha: 200 });
  const px = (i) => Array.from(out.subarray(4 * i, 4 * i + 4));
  assert.deepEqual(px(0), [...rgbAt(lut, 0), 200]);
  assert.deepEqual(px(1), [...rgbAt(lut, 255), 200]);
  assert.deepEqual(px(2), [...rgbAt(lut, 128), 200]); // 127.5 rounds up
  assert.deepEqual(px(3), px(0));
  assert.deepEqual(px(4), px(1));
  assert.deepEqual(px(5), [...MISSING_RGB, 200]);
  assert.deepEqual(px(6), px(1));
  assert.deepEqual(px(7), px(0));
  const custom = colorContinuous(Float32Array.of(NaN), 0, 1, lut, new Uint8Array(4), { missing: [1, 2, 3, 0] });
  assert.deepEqual(Array.from(custom), [1, 2, 3, 0]);
});

test("colorContinuous: degenerate ranges, all-NaN, empty, per-cell alpha, unaligned output", () => {
  const lut = getColormap("magma");
  const out = colorContinuous(Float32Array.of(3, 3), 3, 3, lut);
  assert.deepEqual(Array.from(out.subarray(0, 3)), rgbAt(lut, 127));
  const nan = colorContinuous(new Float32Array(3).fill(NaN), 0, 1, lut);
  for (let i = 0; i < 3; i++) assert.deepEqual(Array.from(nan.subarray(4 * i, 4 * i + 4)), [...MISSING_RGB, 255]);
  assert.equal(colorContinuous(new Float32Array(0), 0, 1, lut).length, 0);
  const alpha = Uint8Array.of(10, 20);
  const per = colorContinuous(Float32Array.of(0, NaN), 0, 1, lut, undefined, { alpha, missing: [9, 9, 9, 0] });
  assert.deepEqual([per[3], per[7]], [10, 0]);
  const backing = new Uint8Array(9);
  const unaligned = backing.subarray(1);
  colorContinuous(Float32Array.of(0, 1), 0, 1, lut, unaligned);
  assert.deepEqual(Array.from(unaligned.subarray(4, 8)), [...rgbAt(lut, 255), 255]);
  assert.throws(() => colorContinuous(Float32Array.of(0, 1), 0, 1, lut, new Uint8Array(4)), /needs 8/);
});

test("colorCategorical: palette, missing, out-of-range codes, hidden categories", () => {
  const palette = categoricalPalette(3);
  const codes = Uint8Array.of(0, 1, 2, 255, 7);
  const hidden = Uint8Array.of(0, 1, 0);
  const out = colorCategorical(codes, 255, palette, undefined, { hidden, alpha: 180 });
  const px = (i) => Array.from(out.subarray(4 * i, 4 * i + 4));
  assert.deepEqual(px(0), [...rgbAt(palette, 0), 180]);
  assert.deepEqual(px(1), [...rgbAt(palette, 1), 0]);
  assert.deepEqual(px(2), [...rgbAt(palette, 2), 180]);
  assert.deepEqual(px(3), [...MISSING_RGB, 180]);
  assert.deepEqual(px(4), [...MISSING_RGB, 180]);
  const hideMissing = colorCategorical(codes, 255, palette, undefined, { hideMissing: true });
  assert.equal(hideMissing[15], 0);
  const none = colorCategorical(Uint8Array.of(255, 255), 255, categoricalPalette(0));
  assert.deepEqual(Array.from(none.subarray(0, 4)), [...MISSING_RGB, 255]);
  const perCell = colorCategorical(Uint8Array.of(0, 1), 255, palette, undefined, { hidden, alpha: Uint8Array.of(7, 8) });
  assert.deepEqual([perCell[3], perCell[7]], [7, 0]);
});

test("colorCategorical: uint16 codes with 65,535 categories", () => {
  const k = 65535;
  const palette = categoricalPalette(k);
  const codes = Uint16Array.of(0, 65534, 65535, 40000);
  const out = colorCategorical(codes, 65535, palette);
  assert.deepEqual(Array.from(out.subarray(4, 7)), rgbAt(palette, 65534));
  assert.deepEqual(Array.from(out.subarray(8, 11)), [...MISSING_RGB]);
  assert.deepEqual(Array.from(out.subarray(12, 15)), rgbAt(palette, 40000));
});

test("robustRange: min/max, percentiles, sampling, degenerate inputs", () => {
  const values = new Float32Array(1001).map((_, i) => i);
  values[5] = NaN;
  const r = robustRange(values);
  assert.equal(r.min, 0);
  assert.equal(r.max, 1000);
  assert.equal(r.nFinite, 1000);
  assert.ok(Math.abs(r.p1 - 10.99) < 0.02 && Math.abs(r.p99 - 990.01) < 0.02, `${r.p1} ${r.p99}`);
  assert.deepEqual([r.lo, r.hi], [r.p1, r.p99]);
  const none = robustRange(Float32Array.of(NaN, NaN, Infinity));
  assert.deepEqual([none.lo, none.hi, none.nFinite], [0, 1, 0]);
  assert.ok(Number.isNaN(none.min));
  assert.deepEqual(robustRange(new Float32Array(0)).nFinite, 0);
  const constant = robustRange(Float32Array.of(4, 4, 4));
  assert.deepEqual([constant.lo, constant.hi], [4, 5]);
  const one = robustRange(Float32Array.of(7));
  assert.deepEqual([one.min, one.max, one.p1, one.p99, one.lo, one.hi], [7, 7, 7, 7, 7, 8]);
  const spike = new Float32Array(1000).fill(1);
  spike[999] = 50;
  const s = robustRange(spike);
  assert.deepEqual([s.lo, s.hi, s.max], [1, 50, 50]); // percentiles equal → min/max
  const big = new Float32Array(3_000_000);
  const random = rng(3);
  for (let i = 0; i < big.length; i++) big[i] = random();
  big[1234567] = -5;
  const b = robustRange(big, { maxSample: 100000 });
  assert.equal(b.min, -5); // exact, not sampled
  assert.ok(Math.abs(b.p1 - 0.01) < 0.003 && Math.abs(b.p99 - 0.99) < 0.003);
});

test("robustRange nonZero: percentiles of the expressing cells, full min/max, fallbacks", () => {
  // a gene: 90 % zeros, the expressing cells spread over 1..100
  const gene = new Float32Array(1000);
  for (let i = 0; i < 100; i++) gene[i * 10] = i + 1;
  gene[5] = NaN;
  const r = robustRange(gene, { nonZero: true });
  assert.deepEqual([r.min, r.max, r.nFinite], [0, 100, 999]);
  assert.ok(Math.abs(r.p1 - 1.99) < 1e-9 && Math.abs(r.p99 - 99.01) < 1e-9, `${r.p1} ${r.p99}`);
  assert.deepEqual([r.lo, r.hi], [r.p1, r.p99]);
  // the plain range would start at the zeros
  assert.equal(robustRange(gene).lo, 0);
  // expressed at one level only: the full range (zeros to that level) instead of an empty one
  const flat = Float32Array.of(0, 0, 5, 5, 0);
  const f = robustRange(flat, { nonZero: true });
  assert.deepEqual([f.lo, f.hi], [0, 5]);
  // not expressed at all: [0, 1]
  const zero = robustRange(new Float32Array(10), { nonZero: true });
  assert.deepEqual([zero.lo, zero.hi, zero.min, zero.max], [0, 1, 0, 0]);
  // sampling keeps every expressing cell of a sparse gene in the sample
  const sparse = new Float32Array(2_000_000);
  for (let i = 0; i < 1000; i++) sparse[i * 2000 + 7] = 1 + i / 999;
  const s = robustRange(sparse, { nonZero: true, maxSample: 100000 });
  assert.ok(Math.abs(s.p1 - 1.01) < 1e-3 && Math.abs(s.p99 - 1.99) < 1e-3, `${s.p1} ${s.p99}`);
});
