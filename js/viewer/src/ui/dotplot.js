// Dot plot of a comparison: the top genes (rows) in group A and group B (columns); dot area =
// fraction of cells expressing, colour = mean expression (one scale over the plot, viridis). Laid
// out once as a list of shapes, drawn on a 2D canvas (the compare panel, PNG export) or written
// as SVG (SVG export): the same picture everywhere, no library.
//
// No DOM: a canvas 2D context is passed in; the SVG is a string.

import { getColormap, sampleColormap } from "../color/colormaps.js";

export const DOT_GENES = 10;
const ROW = 20;
const COL = 44;
const MAX_R = 8.5;
const LABEL_W = 92;
const FONT = "system-ui, sans-serif";
const MISSING = "rgb(160,160,160)";

const clip = (s, n) => (s.length > n ? s.slice(0, n - 1) + "…" : s);
const num = (v) => String(Number(v.toPrecision(3)));

/**
 * The data of the dot plot: the first `top` genes of the result (score order), their fraction
 * expressing and mean in each group, and the colour range.
 *
 * @param {{result: import("../analysis/result.js").ResultTable, group: {label: string},
 *   reference: "rest"|{label: string}}} cmp
 * @param {number} [top]
 * @returns {{genes: string[], labels: [string, string], pct: number[][], mean: number[][], maxMean: number}|null}
 */
export function dotplotModel(cmp, top = DOT_GENES) {
  if (!cmp || !cmp.result || !cmp.result.count) return null;
  const t = cmp.result;
  const rows = t.top(top);
  const c = t.columns;
  const genes = Array.from(rows, (i) => t.names[i]);
  const pct = Array.from(rows, (i) => [c.pct_nz_group[i], c.pct_nz_reference[i]]);
  const mean = Array.from(rows, (i) => [c.mean_group[i], c.mean_reference[i]]);
  let maxMean = 0;
  for (const pair of mean) for (const v of pair) if (Number.isFinite(v) && v > maxMean) maxMean = v;
  return { genes, labels: [cmp.group.label, cmp.reference === "rest" ? "rest" : cmp.reference.label], pct, mean, maxMean };
}

/**
 * Shapes of the dot plot with its top-left corner at (0, 0): {width, height, shapes}, each shape
 * {kind: "text", x, y, text, size, weight, align, fill} | {kind: "circle", cx, cy, r, fill, stroke}
 * | {kind: "rect", x, y, w, h, fill}.
 *
 * @param {ReturnType<typeof dotplotModel>} model
 * @param {{dark?: boolean}} [opts]
 */
export function dotplotLayout(model, { dark = false } = {}) {
  const ink = dark ? "#e6e8ee" : "#1d2330";
  const muted = dark ? "#98a2b3" : "#667085";
  const lut = getColormap("viridis");
  const shapes = [];
  const text = (x, y, s, extra = {}) => shapes.push({ kind: "text", x, y, text: s, size: 11, weight: 400, align: "start", fill: ink, ...extra });
  const colour = (v) => (Number.isFinite(v) ? `rgb(${sampleColormap(lut, model.maxMean > 0 ? v / model.maxMean : 0).join(",")})` : MISSING);
  text(0, 12, `Top ${model.genes.length} genes`, { size: 12, weight: 600 });
  text(0, 27, `A: ${clip(model.labels[0], 34)}`, { fill: muted, size: 10 });
  text(0, 40, `B: ${clip(model.labels[1], 34)}`, { fill: muted, size: 10 });
  const top = 50;
  ["A", "B"].forEach((g, j) => text(LABEL_W + j * COL + COL / 2, top + 10, g, { align: "middle", weight: 600 }));
  const y0 = top + 16;
  model.genes.forEach((gene, i) => {
    const cy = y0 + i * ROW + ROW / 2;
    text(LABEL_W - 8, cy + 4, clip(gene, 14), { align: "end" });
    for (let j = 0; j < 2; j++) {
      const p = model.pct[i][j];
      const r = Number.isFinite(p) && p > 0 ? Math.max(0.8, MAX_R * Math.sqrt(Math.min(1, p))) : 0;
      if (r > 0) shapes.push({ kind: "circle", cx: LABEL_W + j * COL + COL / 2, cy, r, fill: colour(model.mean[i][j]), stroke: dark ? "#2a2f3a" : "#ffffff" });
    }
  });
  // legends: dot size and colour, right of the dots
  const lx = LABEL_W + 2 * COL + 14;
  text(lx, y0 + 8, "% expressing", { fill: muted, size: 10 });
  [0.25, 0.5, 1].forEach((p, k) => {
    const cy = y0 + 24 + k * 20;
    shapes.push({ kind: "circle", cx: lx + MAX_R, cy, r: MAX_R * Math.sqrt(p), fill: muted, stroke: "none" });
    text(lx + 2 * MAX_R + 6, cy + 4, `${p * 100}%`, { size: 10 });
  });
  const by = y0 + 24 + 3 * 20;
  text(lx, by, "mean expression", { fill: muted, size: 10 });
  const steps = 24;
  for (let s = 0; s < steps; s++) {
    shapes.push({ kind: "rect", x: lx + s * 3, y: by + 6, w: 3, h: 10, fill: `rgb(${sampleColormap(lut, s / (steps - 1)).join(",")})` });
  }
  text(lx, by + 29, "0", { size: 10 });
  text(lx + steps * 3, by + 29, num(model.maxMean), { size: 10, align: "end" });
  const width = lx + 96;
  const height = Math.max(y0 + model.genes.length * ROW, by + 34) + 6;
  return { width, height, shapes };
}

/** Draw a layout on a canvas 2D context at (x, y) in its current units. */
export function drawDotplot(ctx, layout, x = 0, y = 0) {
  ctx.save();
  ctx.translate(x, y);
  for (const s of layout.shapes) {
    if (s.kind === "text") {
      ctx.font = `${s.weight} ${s.size}px ${FONT}`;
      ctx.textAlign = s.align === "middle" ? "center" : s.align === "end" ? "right" : "left";
      ctx.fillStyle = s.fill;
      ctx.fillText(s.text, s.x, s.y);
    } else if (s.kind === "circle") {
      ctx.beginPath();
      ctx.arc(s.cx, s.cy, s.r, 0, Math.PI * 2);
      ctx.fillStyle = s.fill;
      ctx.fill();
      if (s.stroke !== "none") {
        ctx.strokeStyle = s.stroke;
        ctx.lineWidth = 0.75;
        ctx.stroke();
      }
    } else {
      ctx.fillStyle = s.fill;
      ctx.fillRect(s.x, s.y, s.w, s.h);
    }
  }
  ctx.restore();
}

const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** The layout as an SVG group translated to (x, y). */
export function dotplotSvg(layout, x = 0, y = 0) {
  const parts = [`<g class="dotplot" transform="translate(${x},${y})" font-family="sans-serif">`];
  for (const s of layout.shapes) {
    if (s.kind === "text") {
      parts.push(`<text x="${s.x}" y="${s.y}" font-size="${s.size}" font-weight="${s.weight}" text-anchor="${s.align}" fill="${s.fill}">${esc(s.text)}</text>`);
    } else if (s.kind === "circle") {
      parts.push(`<circle cx="${s.cx}" cy="${s.cy}" r="${s.r.toFixed(2)}" fill="${s.fill}"${s.stroke !== "none" ? ` stroke="${s.stroke}" stroke-width="0.75"` : ""}/>`);
    } else {
      parts.push(`<rect x="${s.x}" y="${s.y}" width="${s.w}" height="${s.h}" fill="${s.fill}"/>`);
    }
  }
  parts.push("</g>");
  return parts.join("");
}
