// Continuous colour maps as 256-entry RGB lookup tables, and colouring typed arrays into RGBA
// buffers. Pure module (browser and node).
//
// Where the tables come from (numbers written here, not copied from other projects' files):
//  - viridis, magma, inferno, plasma: the published degree-6 polynomial fits of the matplotlib
//    maps (Matt Zucker, 2020; public domain), evaluated at 256 points;
//  - turbo: Google's published degree-5 polynomial approximation (Anton Mikhailov, 2019);
//  - cividis (Nuñez, Anderton and Renslow, 2018): 18 evenly spaced anchor colours as published in
//    plotly's 18-stop "Cividis" scale (written from memory), linearly interpolated;
//  - coolwarm: Kenneth Moreland's diverging map (2009), generated with his algorithm: the end
//    colours (59, 76, 192) and (180, 4, 38) interpolated in Msh space through a white point of
//    magnitude max(M1, M2, 88), with the hue spin for unsaturated ends.
// Measured against matplotlib 3.11's tables (a one-off development check, not a test): per
// channel, viridis max 4/255 (mean 1), plasma 5 (1.6), magma 5 (2), inferno 9 (2.5), coolwarm 4
// (0.3); cividis 22 (2.2; plotly's dark blues differ from matplotlib's); turbo 32 (6.3), the
// known coarseness of the polynomial at the dark ends. Close enough for colour bars; replace a
// table here if exact agreement with matplotlib ever matters.

import { MISSING_RGB } from "./palettes.js";

/** Entries per colour-map table. */
export const LUT_SIZE = 256;

// rgb = sum_k c_k t^k, one row per k (k = 0…6), columns r, g, b.
const POLY6 = {
  viridis: [
    [0.2777273272234177, 0.005407344544966578, 0.3340998053353061],
    [0.1050930431085774, 1.404613529898575, 1.384590162594685],
    [-0.3308618287255563, 0.214847559468213, 0.09509516302823659],
    [-4.634230498983486, -5.799100973351585, -19.33244095627987],
    [6.228269936347081, 14.17993336680509, 56.69055260068105],
    [4.776384997670288, -13.74514537774601, -65.35303263337234],
    [-5.435455855934631, 4.645852612178535, 26.3124352495832],
  ],
  plasma: [
    [0.05873234392399702, 0.02333670892565664, 0.5433401826748754],
    [2.176514634195958, 0.2383834171260182, 0.7539604599784036],
    [-2.689460476458034, -7.455851135738909, 3.110799939717086],
    [6.130348345893603, 42.3461881477227, -28.51885465332158],
    [-11.10743619062271, -82.66631109428045, 60.13984767418263],
    [10.02306557647065, 71.41361770095349, -54.07218655560067],
    [-3.658713842777788, -22.93153465461149, 18.19190778539828],
  ],
  magma: [
    [-0.002136485053939582, -0.000749655052795221, -0.005386127855323933],
    [0.2516605407371642, 0.6775232436837668, 2.494026599312351],
    [8.353717279216625, -3.577719514958484, 0.3144679030132573],
    [-27.66873308576866, 14.26473078096533, -13.64921318813922],
    [52.17613981234068, -27.94360607168351, 12.94416944238394],
    [-50.76852536473588, 29.04658282127291, 4.23415299384598],
    [18.65570506591883, -11.48977351997711, -5.601961508734096],
  ],
  inferno: [
    [0.0002189403691192265, 0.001651004631001012, -0.01948089843709184],
    [0.1065134194856116, 0.5639564367884091, 3.932712388889277],
    [11.60249308247187, -3.972853965665698, -15.9423941062914],
    [-41.70399613139459, 17.43639888205313, 44.35414519872813],
    [77.162935699427, -33.40235894210092, -81.80730925738993],
    [-71.31942824499214, 32.62606426397723, 73.20951985803202],
    [25.13112622477341, -12.24266895238567, -23.07032500287172],
  ],
  turbo: [
    [0.13572138, 0.09140261, 0.1066733],
    [4.6153926, 2.19418839, 12.64194608],
    [-42.66032258, 4.84296658, -60.58204836],
    [132.13108234, -14.18503333, 110.36276771],
    [-152.94239396, 4.27729857, -89.90310912],
    [59.28637943, 2.82956604, 27.34824973],
  ],
};

const CIVIDIS_ANCHORS = [
  [0, 32, 76], [0, 42, 102], [0, 52, 110], [39, 63, 108], [60, 74, 107], [76, 85, 107],
  [91, 95, 109], [104, 106, 112], [117, 117, 117], [131, 129, 120], [146, 140, 120],
  [161, 152, 118], [176, 165, 114], [192, 177, 109], [209, 191, 102], [225, 204, 92],
  [243, 219, 79], [255, 233, 69],
];

const to255 = (v) => Math.min(255, Math.max(0, Math.round(255 * v)));

function polynomialLut(rows) {
  const lut = new Uint8Array(LUT_SIZE * 3);
  for (let i = 0; i < LUT_SIZE; i++) {
    const t = i / (LUT_SIZE - 1);
    for (let ch = 0; ch < 3; ch++) {
      let v = 0;
      for (let k = rows.length - 1; k >= 0; k--) v = v * t + rows[k][ch];
      lut[i * 3 + ch] = to255(v);
    }
  }
  return lut;
}

function anchorLut(anchors) {
  const lut = new Uint8Array(LUT_SIZE * 3);
  const last = anchors.length - 1;
  for (let i = 0; i < LUT_SIZE; i++) {
    const x = (i / (LUT_SIZE - 1)) * last;
    const j = Math.min(last - 1, Math.floor(x));
    const f = x - j;
    for (let ch = 0; ch < 3; ch++) lut[i * 3 + ch] = Math.round(anchors[j][ch] * (1 - f) + anchors[j + 1][ch] * f);
  }
  return lut;
}

// ---- Moreland's diverging map in Msh space ----------------------------------------------------
const WHITE = [0.95047, 1.0, 1.08883]; // D65
const linear = (c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
const gamma = (c) => (c <= 0.0031308 ? 12.92 * c : 1.055 * c ** (1 / 2.4) - 0.055);
const labF = (t) => (t > (6 / 29) ** 3 ? Math.cbrt(t) : t / (3 * (6 / 29) ** 2) + 4 / 29);
const labFInv = (t) => (t > 6 / 29 ? t ** 3 : 3 * (6 / 29) ** 2 * (t - 4 / 29));

function rgbToMsh(rgb) {
  const [r, g, b] = rgb.map((v) => linear(v / 255));
  const x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / WHITE[0];
  const y = (0.2126 * r + 0.7152 * g + 0.0722 * b) / WHITE[1];
  const z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / WHITE[2];
  const L = 116 * labF(y) - 16;
  const a = 500 * (labF(x) - labF(y));
  const bb = 200 * (labF(y) - labF(z));
  const M = Math.hypot(L, a, bb);
  return [M, Math.acos(L / M), Math.atan2(bb, a)];
}

function mshToRgb([M, s, h]) {
  const L = M * Math.cos(s);
  const a = M * Math.sin(s) * Math.cos(h);
  const bb = M * Math.sin(s) * Math.sin(h);
  const fy = (L + 16) / 116;
  const x = WHITE[0] * labFInv(fy + a / 500);
  const y = WHITE[1] * labFInv(fy);
  const z = WHITE[2] * labFInv(fy - bb / 200);
  const r = 3.2406 * x - 1.5372 * y - 0.4986 * z;
  const g = -0.9689 * x + 1.8758 * y + 0.0415 * z;
  const b = 0.0557 * x - 0.204 * y + 1.057 * z;
  return [r, g, b].map((v) => to255(gamma(Math.min(1, Math.max(0, v)))));
}

function adjustHue([M, s, h], mUnsat) {
  if (M >= mUnsat) return h;
  const spin = (s * Math.sqrt(mUnsat ** 2 - M ** 2)) / (M * Math.sin(s));
  return h > -Math.PI / 3 ? h + spin : h - spin;
}

function divergingLut(rgb1, rgb2) {
  const lut = new Uint8Array(LUT_SIZE * 3);
  const end1 = rgbToMsh(rgb1);
  const end2 = rgbToMsh(rgb2);
  const mMid = Math.max(end1[0], end2[0], 88);
  for (let i = 0; i < LUT_SIZE; i++) {
    let t = i / (LUT_SIZE - 1);
    let a = [...end1];
    let b = [...end2];
    if (t < 0.5) {
      b = [mMid, 0, 0];
      t *= 2;
    } else {
      a = [mMid, 0, 0];
      t = 2 * t - 1;
    }
    if (a[1] < 0.05 && b[1] > 0.05) a[2] = adjustHue(b, a[0]);
    else if (b[1] < 0.05 && a[1] > 0.05) b[2] = adjustHue(a, b[0]);
    const rgb = mshToRgb([0, 1, 2].map((k) => (1 - t) * a[k] + t * b[k]));
    lut.set(rgb, i * 3);
  }
  return lut;
}

const GENERATORS = {
  viridis: () => polynomialLut(POLY6.viridis),
  magma: () => polynomialLut(POLY6.magma),
  inferno: () => polynomialLut(POLY6.inferno),
  plasma: () => polynomialLut(POLY6.plasma),
  cividis: () => anchorLut(CIVIDIS_ANCHORS),
  turbo: () => polynomialLut(POLY6.turbo),
  coolwarm: () => divergingLut([59, 76, 192], [180, 4, 38]),
};

/** Names accepted by `getColormap`, the default first. */
export const COLORMAP_NAMES = Object.freeze(Object.keys(GENERATORS));

const cache = new Map();

/**
 * The 256-entry RGB lookup table of a colour map (`Uint8Array(768)`, r,g,b per entry, low
 * values first). Shared and cached: do not modify it.
 *
 * @param {"viridis"|"magma"|"inferno"|"plasma"|"cividis"|"turbo"|"coolwarm"} name
 * @returns {Uint8Array}
 */
export function getColormap(name) {
  if (!Object.prototype.hasOwnProperty.call(GENERATORS, name)) {
    throw new Error(`unknown colour map ${JSON.stringify(name)} (one of ${COLORMAP_NAMES.join(", ")})`);
  }
  if (!cache.has(name)) cache.set(name, GENERATORS[name]());
  return cache.get(name);
}

/**
 * The colour of a LUT at `t` ∈ [0, 1] (clamped), for colour bars and legends.
 *
 * @param {Uint8Array} lut
 * @param {number} t
 * @returns {[number, number, number]}
 */
export function sampleColormap(lut, t) {
  const n = lut.length / 3;
  const i = Math.min(n - 1, Math.max(0, Math.round((Number.isFinite(t) ? t : 0) * (n - 1))));
  return [lut[i * 3], lut[i * 3 + 1], lut[i * 3 + 2]];
}

// ---- colouring --------------------------------------------------------------------------------
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function packRgba(r, g, b, a) {
  return LITTLE_ENDIAN ? ((a << 24) | (b << 16) | (g << 8) | r) >>> 0 : ((r << 24) | (g << 16) | (b << 8) | a) >>> 0;
}

function missingRgba(missing, alpha) {
  const m = missing ?? MISSING_RGB;
  return [m[0], m[1], m[2], m.length > 3 ? m[3] : alpha];
}

function outputBuffer(out, n) {
  const rgba = out ?? new Uint8Array(n * 4);
  if (rgba.length < n * 4) throw new Error(`output buffer holds ${rgba.length} bytes, needs ${n * 4}`);
  return rgba;
}

// A Uint32 view of `rgba` when it is 4-byte aligned (one write per cell), else null.
const words = (rgba) => (rgba.byteOffset % 4 === 0 ? new Uint32Array(rgba.buffer, rgba.byteOffset, rgba.length >> 2) : null);

function writeFromTable(indexOf, n, table, rgba, alpha) {
  const w = typeof alpha === "number" ? words(rgba) : null;
  if (w) {
    for (let i = 0; i < n; i++) w[i] = table[indexOf(i)];
    return rgba;
  }
  const bytes = new Uint8Array(table.buffer);
  for (let i = 0; i < n; i++) {
    const j = indexOf(i) * 4;
    const o = i * 4;
    rgba[o] = bytes[j];
    rgba[o + 1] = bytes[j + 1];
    rgba[o + 2] = bytes[j + 2];
    rgba[o + 3] = typeof alpha === "number" ? bytes[j + 3] : bytes[j + 3] === 0 ? 0 : alpha[i];
  }
  return rgba;
}

/**
 * Colour continuous values into an RGBA buffer: `lo` maps to the first LUT entry, `hi` to the
 * last, values outside are clamped (±Infinity too); NaN gets the missing colour. When
 * `hi <= lo` every finite value gets the middle entry.
 *
 * @param {Float32Array|Float64Array} values
 * @param {number} lo
 * @param {number} hi
 * @param {Uint8Array} lut RGB table from `getColormap` (any multiple of 3 entries)
 * @param {Uint8Array} [outRGBA] length ≥ 4·n; allocated when omitted
 * @param {{missing?: ArrayLike<number>, alpha?: number|Uint8Array}} [opts] `missing`: RGB or
 *   RGBA (default `MISSING_RGB` with `alpha`); `alpha`: 0-255 for all cells (default 255) or a
 *   per-cell `Uint8Array` (the missing colour's own alpha 0 still wins)
 * @returns {Uint8Array} `outRGBA`
 */
export function colorContinuous(values, lo, hi, lut, outRGBA, opts = {}) {
  const n = values.length;
  const rgba = outputBuffer(outRGBA, n);
  const alpha = opts.alpha ?? 255;
  const tableAlpha = typeof alpha === "number" ? alpha : 255;
  const size = lut.length / 3;
  const table = new Uint32Array(size + 1);
  for (let i = 0; i < size; i++) table[i] = packRgba(lut[i * 3], lut[i * 3 + 1], lut[i * 3 + 2], tableAlpha);
  const m = missingRgba(opts.missing, tableAlpha);
  table[size] = packRgba(m[0], m[1], m[2], m[3]);
  const top = size - 1;
  const degenerate = !(hi > lo);
  const scale = degenerate ? 0 : top / (hi - lo);
  const middle = top >> 1;
  const indexOf = (i) => {
    const v = values[i];
    if (v !== v) return size;
    if (degenerate) return middle;
    const x = (v - lo) * scale;
    return x <= 0 ? 0 : x >= top ? top : (x + 0.5) | 0;
  };
  return writeFromTable(indexOf, n, table, rgba, alpha);
}

/**
 * Colour categorical codes into an RGBA buffer: code c < k gets palette colour c, the missing
 * code (and any code ≥ k) the missing colour; hidden categories get alpha 0.
 *
 * @param {Uint8Array|Uint16Array} codes
 * @param {number} missingCode 255 or 65535
 * @param {Uint8Array} paletteRGB `Uint8Array(k * 3)` from `categoricalPalette`
 * @param {Uint8Array} [outRGBA] length ≥ 4·n; allocated when omitted
 * @param {{hidden?: Uint8Array|null, hideMissing?: boolean, missing?: ArrayLike<number>,
 *   alpha?: number|Uint8Array}} [opts] `hidden[c]` non-zero hides category c; `hideMissing`
 *   hides missing cells; `missing`, `alpha` as in `colorContinuous`
 * @returns {Uint8Array} `outRGBA`
 */
export function colorCategorical(codes, missingCode, paletteRGB, outRGBA, opts = {}) {
  const n = codes.length;
  const rgba = outputBuffer(outRGBA, n);
  const alpha = opts.alpha ?? 255;
  const tableAlpha = typeof alpha === "number" ? alpha : 255;
  const k = paletteRGB.length / 3;
  const hidden = opts.hidden ?? null;
  const span = codes instanceof Uint8Array ? 256 : 65536;
  const table = new Uint32Array(span);
  const m = missingRgba(opts.missing, tableAlpha);
  const missingWord = packRgba(m[0], m[1], m[2], opts.hideMissing ? 0 : m[3]);
  table.fill(missingWord);
  for (let c = 0; c < Math.min(k, span); c++) {
    if (c === missingCode) continue;
    const a = hidden && hidden[c] ? 0 : tableAlpha;
    table[c] = packRgba(paletteRGB[c * 3], paletteRGB[c * 3 + 1], paletteRGB[c * 3 + 2], a);
  }
  return writeFromTable((i) => codes[i], n, table, rgba, alpha);
}

/**
 * Default colour-bar range of continuous values: exact finite min/max, and the 1st/99th
 * percentiles (linear interpolation, like numpy) of the finite values, computed on an evenly
 * strided sample of at most `maxSample` values for large arrays.
 *
 * `lo`/`hi` is the suggested range: the percentiles when they differ, else min/max, else
 * `[min, min + 1]` for a constant field, and `[0, 1]` when nothing is finite (then min, max and
 * the percentiles are NaN).
 *
 * `nonZero: true` (genes) takes the percentiles over the expressing cells only, the finite
 * non-zero values, so that a gene expressed in 5 % of the cells is not coloured by its zeros;
 * min/max stay those of every finite value (the full range), and when the expressing cells
 * have no spread (or there are none) the suggested range falls back to min/max as above.
 *
 * @param {Float32Array|Float64Array} values
 * @param {{maxSample?: number, nonZero?: boolean}} [opts] maxSample default 200,000
 * @returns {{min: number, max: number, p1: number, p99: number, lo: number, hi: number, nFinite: number}}
 */
export function robustRange(values, opts = {}) {
  const maxSample = opts.maxSample ?? 200000;
  const nonZero = !!opts.nonZero;
  const n = values.length;
  let min = Infinity;
  let max = -Infinity;
  let nFinite = 0;
  let nUsed = 0; // values the percentiles are taken over
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v - v === 0) {
      nFinite++;
      if (v < min) min = v;
      if (v > max) max = v;
      if (!nonZero || v !== 0) nUsed++;
    }
  }
  if (!nFinite) return { min: NaN, max: NaN, p1: NaN, p99: NaN, lo: 0, hi: 1, nFinite: 0 };
  // Stride over the used values only: a sparse gene's few expressing cells are all sampled.
  const stride = Math.max(1, Math.ceil(nUsed / maxSample));
  const sample = new Float64Array(Math.ceil(nUsed / stride));
  let m = 0;
  for (let i = 0, j = 0; i < n; i++) {
    const v = values[i];
    if (v - v === 0 && (!nonZero || v !== 0) && j++ % stride === 0) sample[m++] = v;
  }
  if (nonZero && !m) return { min, max, p1: NaN, p99: NaN, lo: min, hi: max > min ? max : min + 1, nFinite };
  const sorted = sample.subarray(0, m).sort();
  const quantile = (q) => {
    const pos = q * (sorted.length - 1);
    const j = Math.floor(pos);
    const f = pos - j;
    return j + 1 < sorted.length ? sorted[j] + f * (sorted[j + 1] - sorted[j]) : sorted[j];
  };
  const p1 = quantile(0.01);
  const p99 = quantile(0.99);
  let lo = p1;
  let hi = p99;
  if (!(hi > lo)) {
    lo = min;
    hi = max > min ? max : min + 1;
  }
  return { min, max, p1, p99, lo, hi, nFinite };
}

/**
 * Colour-bar statistics of continuous values: robustRange (min, max, p1, p99, lo/hi = the 1–99 %
 * range) plus the count of missing values, `full` (the data range) and `robust`. Genes: `robust`
 * is the 1st–99th percentile of the expressing (non-zero) cells and is the default range;
 * obs fields open on the full range. `defaultRange` names the one used first.
 */
export function valueStats(values, gene = false) {
  const r = robustRange(values, { nonZero: gene });
  const full = r.nFinite ? [r.min, r.max > r.min ? r.max : r.min + 1] : [r.lo, r.hi];
  const robust = [r.lo, r.hi];
  return { ...r, full, robust, expressing: gene, defaultRange: gene ? "robust" : "full", missing: values.length - r.nFinite };
}
