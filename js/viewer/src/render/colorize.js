// Per-cell RGBA and radius buffers from the active field (typed arrays in, typed arrays out).

import { MISSING_RGBA } from "../app/interim.js";

const DEFAULT_RGB = [70, 110, 170];

/** Uint8Array n*4 for a categorical field; palette is Uint8Array k*3. */
export function colorCategorical(codes, k, palette) {
  const n = codes.length;
  const out = new Uint8Array(n * 4);
  const [mr, mg, mb, ma] = MISSING_RGBA;
  for (let i = 0; i < n; i++) {
    const c = codes[i];
    const o = i * 4;
    if (c < k) {
      out[o] = palette[c * 3];
      out[o + 1] = palette[c * 3 + 1];
      out[o + 2] = palette[c * 3 + 2];
      out[o + 3] = 255;
    } else {
      out[o] = mr;
      out[o + 1] = mg;
      out[o + 2] = mb;
      out[o + 3] = ma;
    }
  }
  return out;
}

/** Uint8Array n*4 for continuous values mapped through a 256-entry RGB LUT on [lo, hi]; NaN → missing. */
export function colorContinuous(values, lo, hi, lut) {
  const n = values.length;
  const out = new Uint8Array(n * 4);
  const span = hi > lo ? hi - lo : 1;
  const [mr, mg, mb, ma] = MISSING_RGBA;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    const o = i * 4;
    if (v !== v || v === Infinity || v === -Infinity) {
      out[o] = mr;
      out[o + 1] = mg;
      out[o + 2] = mb;
      out[o + 3] = ma;
      continue;
    }
    let t = ((v - lo) / span) * 255;
    t = t < 0 ? 0 : t > 255 ? 255 : t;
    const j = (t | 0) * 3;
    out[o] = lut[j];
    out[o + 1] = lut[j + 1];
    out[o + 2] = lut[j + 2];
    out[o + 3] = 255;
  }
  return out;
}

export function colorUniform(n) {
  const out = new Uint8Array(n * 4);
  for (let i = 0; i < n; i++) out.set(DEFAULT_RGB, i * 4), (out[i * 4 + 3] = 255);
  return out;
}

/** Radius factors: 0 for hidden cells (setVisibility) or cells of hidden categories, else 1. */
export function radiiFor(visible, codes, hiddenCats) {
  const n = visible.length;
  const out = new Float32Array(n);
  const useCats = codes && hiddenCats && hiddenCats.some((h) => h);
  for (let i = 0; i < n; i++) {
    let on = visible[i] === 1;
    if (on && useCats) {
      const c = codes[i];
      if (c < hiddenCats.length && hiddenCats[c]) on = false;
    }
    out[i] = on ? 1 : 0;
  }
  return out;
}

/** Finite min/max and a robust 1–99 % range (by a strided sample for large n). */
export function valueStats(values) {
  let lo = Infinity, hi = -Infinity, finite = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === v && v !== Infinity && v !== -Infinity) {
      finite++;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (!finite) return { min: 0, max: 1, p01: 0, p99: 1, finite: 0, missing: values.length };
  const stride = Math.max(1, Math.floor(values.length / 200000));
  const sample = [];
  for (let i = 0; i < values.length; i += stride) {
    const v = values[i];
    if (Number.isFinite(v)) sample.push(v);
  }
  const s = Float64Array.from(sample).sort();
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * (s.length - 1)))];
  return { min: lo, max: hi, p01: q(0.01), p99: q(0.99), finite, missing: values.length - finite };
}
