// INTERIM: small stand-ins for the pure modules other helpers are writing
// (src/data/{http,decode,contract,names}.js, src/color/*, src/select/lasso.js).
// Each export mirrors the ARCHITECTURE.md API; when the real module lands, the
// imports in app/ and render/ switch to it and the matching code here goes away.

// ---------------------------------------------------------------- names (§2.4)
export function safeName(key) {
  const s = String(key)
    .replace(/[^A-Za-z0-9._-]+/g, "_")
    .replace(/^[._]+|[._]+$/g, "");
  return s;
}

export function fillPattern(pattern, key, ext) {
  let out = pattern.replace("{key}", safeName(key));
  if (ext !== undefined) out = out.replace("{ext}", ext);
  return out;
}

// ---------------------------------------------------------------- decode (§2.3, §2.6.6)
const CTORS = { float32: Float32Array, uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array, float64: Float64Array };

export function typedView(bytes, dtype, file) {
  const Ctor = CTORS[dtype];
  if (!Ctor) throw new ContractError(file, "dtype", "float32|uint8|uint16|uint32|float64", dtype);
  if (bytes.byteLength % Ctor.BYTES_PER_ELEMENT !== 0) {
    throw new ContractError(file, "byteLength", `a multiple of ${Ctor.BYTES_PER_ELEMENT}`, bytes.byteLength);
  }
  // Copy when unaligned so the typed view is valid.
  const buf = bytes.byteOffset % Ctor.BYTES_PER_ELEMENT === 0 ? bytes : bytes.slice();
  return new Ctor(buf.buffer, buf.byteOffset, buf.byteLength / Ctor.BYTES_PER_ELEMENT);
}

/** Quantised u8/u16 → Float32 (NaN for the missing marker), §2.6.6. */
export function dequantize(q, lo, hi) {
  const bits = q.BYTES_PER_ELEMENT === 1 ? 8 : 16;
  const maxq = bits === 8 ? 254 : 65534;
  const missing = bits === 8 ? 255 : 65535;
  const step = (hi - lo) / maxq;
  const out = new Float32Array(q.length);
  for (let i = 0; i < q.length; i++) {
    const v = q[i];
    out[i] = v === missing ? NaN : lo + v * step;
  }
  return out;
}

export async function gunzip(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

// ---------------------------------------------------------------- contract (§2.12)
export class ContractError extends Error {
  constructor(file, key, expected, found) {
    super(`${file}: ${key}: expected ${expected}, found ${typeof found === "string" ? found : JSON.stringify(found)}`);
    this.file = file;
    this.key = key;
    this.expected = expected;
    this.found = found;
  }
}

// ---------------------------------------------------------------- colours
/** Categorical palette: a fixed 20-colour head, then golden-angle hues (distinct for hundreds). */
const HEAD = [
  "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
  "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
];
export const MISSING_RGBA = [170, 170, 170, 150];

function hslToRgb(h, s, l) {
  const a = s * Math.min(l, 1 - l);
  const f = (n) => {
    const k = (n + h * 12) % 12;
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}
export function hexToRgb(hex) {
  const v = parseInt(hex.slice(1), 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}
export function categoricalPalette(k) {
  const out = new Uint8Array(k * 3);
  for (let i = 0; i < k; i++) {
    let rgb;
    if (i < HEAD.length) rgb = hexToRgb(HEAD[i]);
    else {
      const j = i - HEAD.length;
      rgb = hslToRgb((j * 0.618033988749895) % 1, 0.55 + 0.3 * ((j >> 1) % 2), 0.38 + 0.2 * (j % 3) / 2);
    }
    out.set(rgb, i * 3);
  }
  return out;
}

const STOPS = {
  viridis: ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"],
  magma: ["#000004", "#180f3d", "#440f76", "#721f81", "#9e2f7f", "#cd4071", "#f1605d", "#fd9668", "#feca8d", "#fcfdbf"],
  inferno: ["#000004", "#1b0c41", "#4a0c6b", "#781c6d", "#a52c60", "#cf4446", "#ed6925", "#fb9b06", "#f7d13d", "#fcffa4"],
  plasma: ["#0d0887", "#46039f", "#7201a8", "#9c179e", "#bd3786", "#d8576b", "#ed7953", "#fb9f3a", "#fdca26", "#f0f921"],
  coolwarm: ["#3b4cc0", "#5977e3", "#7b9ff9", "#9ebeff", "#c0d4f5", "#dddcdc", "#f2cbb7", "#f7ac8e", "#ee8468", "#d65244", "#b40426"],
  greys: ["#f0f0f0", "#000000"],
};
export const COLORMAPS = Object.keys(STOPS);

/** 256-entry RGB LUT for a colormap. */
export function colormapLut(name) {
  const stops = (STOPS[name] || STOPS.viridis).map(hexToRgb);
  const lut = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (stops.length - 1);
    const j = Math.min(stops.length - 2, Math.floor(t));
    const f = t - j;
    for (let c = 0; c < 3; c++) lut[i * 3 + c] = Math.round(stops[j][c] * (1 - f) + stops[j + 1][c] * f);
  }
  return lut;
}

