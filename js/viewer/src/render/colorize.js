// Per-cell RGBA and radius buffers of the scene (typed arrays in, typed arrays out). Field
// colouring itself is color/colormaps.js (colorContinuous, colorCategorical); this adds what
// only the scene needs: the uncoloured default, the translucent missing colour, radii.

import { MISSING_RGB } from "../color/palettes.js";

const DEFAULT_RGB = [70, 110, 170];

/** Missing values (NaN, missing category): the neutral grey of palettes.js, drawn translucent. */
export const MISSING_RGBA = Object.freeze([...MISSING_RGB, 150]);

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
