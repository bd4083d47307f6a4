// Per-cell RGBA buffers of the scene (typed arrays in, typed arrays out). Field colouring
// itself is color/colormaps.js (colorContinuous, colorCategorical); this adds what only the
// scene needs: the uncoloured default and the translucent missing colour. Radii (visibility)
// come from filters/visibility.js.

import { MISSING_RGB } from "../color/palettes.js";

const DEFAULT_RGB = [70, 110, 170];

/** Missing values (NaN, missing category): the neutral grey of palettes.js, drawn translucent. */
export const MISSING_RGBA = Object.freeze([...MISSING_RGB, 150]);

export function colorUniform(n) {
  const out = new Uint8Array(n * 4);
  for (let i = 0; i < n; i++) out.set(DEFAULT_RGB, i * 4), (out[i * 4 + 3] = 255);
  return out;
}
