// Categorical palettes: distinguishable colours for up to hundreds of categories, and the
// neutral colour of missing values. Pure module (browser and node).
//
// How `categoricalPalette(k)` picks colours:
//  1. The first BASE.length (30) colours are hand-picked: saturated, mutually distinct hues
//     first, then lighter and darker variants, no greys (grey means "missing").
//  2. Further colours come from a greedy farthest-point walk in OKLab (a perceptually uniform
//     space): the candidates are an OKLCH grid (lightness 0.42-0.90, chroma 0.05-0.25, hue every
//     6°) clipped to the sRGB gamut; each step takes the candidate whose distance to the nearest
//     colour chosen so far (base colours and the missing grey included) is largest, ties to the
//     first candidate. This maximises the minimum distance one colour at a time.
//  3. After GREEDY_LIMIT colours the walk stops (distinctness is meaningless by then, and the
//     cost grows with k); colour i then comes from a golden-ratio low-discrepancy sequence over
//     OKLCH hue, lightness and chroma, reduced in chroma until it fits sRGB. That keeps 65,535
//     categories cheap.
// The sequence is deterministic and prefix-stable: categoricalPalette(k) is the first k colours
// of categoricalPalette(k + 1), so adding a category never recolours the others.

/** Neutral grey for missing values and "other" (not in the palette). */
export const MISSING_RGB = Object.freeze([160, 160, 160]);

const BASE = [
  // Tableau-style primaries without grey, then colours from a hand-picked pool in the order that
  // keeps them farthest apart (every pair here is at least 0.085 apart in OKLab, and from grey).
  "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
  "#bcbd22", "#000075", "#aaffc3", "#54278f", "#fabed4", "#006d2c", "#800000", "#ffe119",
  "#911eb4", "#f032e6", "#9edae5", "#ffbb78", "#469990", "#808000", "#00429d", "#e7969c",
  "#7b4173", "#98df8a", "#5254a3", "#c5b0d5", "#4363d8", "#bfef45",
];
const GREEDY_LIMIT = 1024;

/**
 * Parse `#RRGGBB`, `RRGGBB` or `#RGB` (case-insensitive).
 *
 * @param {string} hex
 * @returns {[number, number, number]}
 * @throws {Error} for anything else
 */
export function hexToRgb(hex) {
  let text = typeof hex === "string" ? hex.trim() : "";
  if (text.startsWith("#")) text = text.slice(1);
  if (/^[0-9a-fA-F]{3}$/.test(text)) text = [...text].map((c) => c + c).join("");
  if (!/^[0-9a-fA-F]{6}$/.test(text)) throw new Error(`not a #RRGGBB colour: ${JSON.stringify(hex)}`);
  return [0, 2, 4].map((i) => parseInt(text.slice(i, i + 2), 16));
}

/**
 * Format a colour as lowercase `#rrggbb`. Accepts `(r, g, b)` or one `[r, g, b]` array
 * (channels 0-255, rounded and clamped).
 *
 * @param {number|ArrayLike<number>} r
 * @param {number} [g]
 * @param {number} [b]
 * @returns {string}
 */
export function rgbToHex(r, g, b) {
  const rgb = typeof r === "number" ? [r, g, b] : [r[0], r[1], r[2]];
  return `#${rgb.map((v) => Math.min(255, Math.max(0, Math.round(v))).toString(16).padStart(2, "0")).join("")}`;
}

// ---- OKLab (Björn Ottosson, 2020) -------------------------------------------------------------
const toLinear = (c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
const toGamma = (c) => (c <= 0.0031308 ? 12.92 * c : 1.055 * c ** (1 / 2.4) - 0.055);

/**
 * sRGB (0-255) to OKLab `[L, a, b]`.
 *
 * @param {ArrayLike<number>} rgb
 * @returns {[number, number, number]}
 */
export function rgbToOklab(rgb) {
  const [r, g, b] = [rgb[0], rgb[1], rgb[2]].map((v) => toLinear(v / 255));
  const l = Math.cbrt(0.4122214708 * r + 0.5363325363 * g + 0.0514459929 * b);
  const m = Math.cbrt(0.2119034982 * r + 0.6806995451 * g + 0.1073969566 * b);
  const s = Math.cbrt(0.0883024619 * r + 0.2817188376 * g + 0.6299787005 * b);
  return [
    0.2104542553 * l + 0.793617785 * m - 0.0040720468 * s,
    1.9779984951 * l - 2.428592205 * m + 0.4505937099 * s,
    0.0259040371 * l + 0.7827717662 * m - 0.808675766 * s,
  ];
}

/**
 * OKLab to linear-light sRGB components in [0, 1] when in gamut (may fall outside).
 *
 * @param {number} L
 * @param {number} a
 * @param {number} b
 * @returns {[number, number, number]}
 */
function oklabToLinear(L, a, b) {
  const l = (L + 0.3963377774 * a + 0.2158037573 * b) ** 3;
  const m = (L - 0.1055613458 * a - 0.0638541728 * b) ** 3;
  const s = (L - 0.0894841775 * a - 1.291485548 * b) ** 3;
  return [
    4.0767416621 * l - 3.3077115913 * m + 0.2309699292 * s,
    -1.2684380046 * l + 2.6097574011 * m - 0.3413193965 * s,
    -0.0041960863 * l - 0.7034186147 * m + 1.707614701 * s,
  ];
}

/**
 * OKLCH to sRGB 0-255, or null when outside the sRGB gamut.
 *
 * @param {number} L lightness 0-1
 * @param {number} C chroma
 * @param {number} hDeg hue in degrees
 * @returns {[number, number, number]|null}
 */
export function oklchToRgb(L, C, hDeg) {
  const h = (hDeg * Math.PI) / 180;
  const lin = oklabToLinear(L, C * Math.cos(h), C * Math.sin(h));
  if (lin.some((v) => v < -1e-4 || v > 1 + 1e-4)) return null;
  return lin.map((v) => Math.round(255 * toGamma(Math.min(1, Math.max(0, v)))));
}

// ---- the palette sequence ---------------------------------------------------------------------
let sequence = null; // {rgb: number[] (flat), lab: number[][], minDist: Float64Array, candidates}

function candidates() {
  const rgb = [];
  const lab = [];
  for (let L = 0.42; L <= 0.9001; L += 0.04) {
    for (let C = 0.05; C <= 0.2501; C += 0.025) {
      for (let h = 0; h < 360; h += 6) {
        const c = oklchToRgb(L, C, h);
        if (c) {
          rgb.push(c);
          lab.push(rgbToOklab(c));
        }
      }
    }
  }
  return { rgb, lab };
}

const dist2 = (p, q) => (p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 + (p[2] - q[2]) ** 2;

function initSequence() {
  const cand = candidates();
  const minDist = new Float64Array(cand.lab.length).fill(Infinity);
  const seq = { rgb: [], count: 0, cand, minDist };
  const take = (rgb) => {
    const lab = rgbToOklab(rgb);
    for (let i = 0; i < minDist.length; i++) minDist[i] = Math.min(minDist[i], dist2(lab, cand.lab[i]));
  };
  take(MISSING_RGB);
  for (const hex of BASE) {
    const rgb = hexToRgb(hex);
    seq.rgb.push(...rgb);
    seq.count++;
    take(rgb);
  }
  seq.take = take;
  return seq;
}

const PHI = 0.6180339887498949;
const PLASTIC_1 = 0.7548776662466927;
const PLASTIC_2 = 0.5698402909980532;
const frac = (x) => x - Math.floor(x);

function lowDiscrepancyColour(i) {
  const h = 360 * frac(i * PHI);
  const L = 0.45 + 0.4 * frac(i * PLASTIC_1);
  let C = 0.06 + 0.14 * frac(i * PLASTIC_2);
  for (;;) {
    const rgb = oklchToRgb(L, C, h);
    if (rgb) return rgb;
    C *= 0.85;
  }
}

function extendTo(k) {
  if (!sequence) sequence = initSequence();
  const seq = sequence;
  while (seq.count < k) {
    if (seq.count < GREEDY_LIMIT) {
      let best = 0;
      for (let i = 1; i < seq.minDist.length; i++) if (seq.minDist[i] > seq.minDist[best]) best = i;
      const rgb = seq.cand.rgb[best];
      seq.rgb.push(...rgb);
      seq.take(rgb);
    } else {
      seq.rgb.push(...lowDiscrepancyColour(seq.count));
    }
    seq.count++;
  }
}

/**
 * `k` distinguishable colours as a flat `Uint8Array(k * 3)` of RGB (see the module comment for
 * how they are chosen). Deterministic and prefix-stable; none is the missing grey.
 *
 * @param {number} k number of categories (0 gives an empty array)
 * @returns {Uint8Array}
 */
export function categoricalPalette(k) {
  if (!Number.isInteger(k) || k < 0) throw new Error(`category count must be a non-negative integer, got ${k}`);
  extendTo(k);
  return Uint8Array.from(sequence.rgb.slice(0, k * 3));
}
