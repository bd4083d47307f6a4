// Figure export: PNG (1x/2x/4x of the current view, legend or colour bar drawn beside it)
// and SVG (one circle per visible cell, refused above 200,000 visible cells). When the compare
// panel shows a comparison, its dot plot is drawn right of the legend in both.
//
// Both show exactly what is on screen: only visible cells (the viewer's visibility mask), and
// the KNN edges (both ends visible), highlights, selection rings, vector arrows and category
// labels that are drawn. The SVG writes those overlays as elements (render/svgoverlays.js); it
// refuses more than `svgLimit` drawn KNN edges, as it refuses more than `svgLimit` cells.

import { getColormap, sampleColormap } from "../color/colormaps.js";
import { safeName } from "../data/names.js";
import { SVGNS } from "../ui/lasso.js";
import { dotplotLayout, dotplotModel, dotplotSvg, drawDotplot } from "../ui/dotplot.js";
import { categoryCounts } from "../filters/mask.js";
import { overlaySvg } from "./svgoverlays.js";

export const SVG_MAX_POINTS = 200000;

function download(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

const frame = () => new Promise((r) => requestAnimationFrame(() => r()));

/** Legend entries of the active field: [{label, rgb}] or a colour bar {lut, lo, hi}. */
function legendModel(viewer) {
  const f = viewer.field;
  if (!f) return null;
  if (f.kind === "category") {
    const p = viewer.palettes.get(f.key);
    const items = [];
    const shown = categoryCounts(f.codes, f.categories.length, viewer.visibleMask());
    f.categories.forEach((c, i) => {
      if (shown[i] > 0) items.push({ label: c, rgb: [p[i * 3], p[i * 3 + 1], p[i * 3 + 2]] });
    });
    return { title: f.key, items };
  }
  const [lo, hi] = viewer.ranges.get(f.key);
  return { title: f.key, lut: getColormap(viewer.colormap), lo, hi };
}

const fmt = (v) => String(Number(v.toPrecision(4)));

/**
 * Split view: [{rect, title, positions, size, colors, index}] of every panel (panel 0 = the
 * scene itself); a single view → one panel covering the canvas, without a title.
 */
export function figurePanels(viewer, scene) {
  const w = scene.host.clientWidth;
  const hgt = scene.host.clientHeight;
  if (!scene.split) return [{ rect: { x: 0, y: 0, width: w, height: hgt }, title: null, positions: scene.positions, size: scene.size, colors: scene.colors, index: 0 }];
  const described = viewer.panels.describe();
  return scene.split.panels().map((p, i) => {
    const d = described[i] || {};
    const title = `${d.field ?? "—"}${d.embedding ? ` · ${d.embedding}` : ""} · ${p.dim}D`;
    return { rect: scene.split.rects[i], title, positions: p.positions, size: p.size, colors: p.colors, index: i };
  });
}

/** Panel frames and titles of a split view on a 2D canvas context (CSS pixel units). */
function drawPanelFrames(ctx, panels, dark) {
  if (panels.length < 2) return;
  ctx.save();
  ctx.strokeStyle = dark ? "#3a4150" : "#c9ced8";
  ctx.lineWidth = 1;
  ctx.fillStyle = dark ? "#e6e8ee" : "#1d2330";
  ctx.font = "600 12px system-ui, sans-serif";
  for (const { rect, title } of panels) {
    ctx.strokeRect(rect.x + 0.5, rect.y + 0.5, rect.width - 1, rect.height - 1);
    ctx.fillText(title, rect.x + 8, rect.y + 16);
  }
  ctx.restore();
}

/** The dot plot of the comparison the open compare panel shows, laid out; else null. */
function shownDotplot(viewer) {
  if (!viewer.comparePanelOpen) return null;
  const model = dotplotModel(viewer.activeComparison);
  return model ? dotplotLayout(model, { dark: viewer.dark }) : null;
}

/** Figure size: plot, legend column, dot plot column (CSS pixels). */
function figureSize(cssW, cssH, legend, dots) {
  const legendW = legend ? 270 : 0;
  return { legendW, width: cssW + legendW + (dots ? dots.width + 20 : 0), height: Math.max(cssH, dots ? dots.height + 32 : 0) };
}

export function makeExporter(viewer, getScene = () => viewer.scene) {
  // The SVG limit lives on the viewer so a test can lower it and reach the refusal.
  if (viewer.svgLimit === undefined) viewer.svgLimit = SVG_MAX_POINTS;
  const baseName = () => `${viewer.dataset.id}${viewer.field ? "_" + safeName(viewer.field.key) : ""}`;

  async function png(scale) {
    const scene = getScene();
    const deck = scene.deck;
    const cssW = scene.host.clientWidth;
    const cssH = scene.host.clientHeight;
    deck.setProps({ useDevicePixels: scale });
    await frame();
    await frame();
    const canvas = scene.drawNow();
    const legend = legendModel(viewer);
    const dots = shownDotplot(viewer);
    const size = figureSize(cssW, cssH, legend, dots);
    const out = document.createElement("canvas");
    out.width = Math.round(size.width * scale);
    out.height = Math.round(size.height * scale);
    const ctx = out.getContext("2d");
    ctx.fillStyle = viewer.dark ? "#121419" : "#ffffff";
    ctx.fillRect(0, 0, out.width, out.height);
    ctx.drawImage(canvas, 0, 0, cssW * scale, cssH * scale);
    deck.setProps({ useDevicePixels: Math.min(window.devicePixelRatio || 1, 2) });
    ctx.save();
    ctx.scale(scale, scale);
    drawPanelFrames(ctx, figurePanels(viewer, scene), viewer.dark);
    ctx.restore();
    if (legend) {
      ctx.save();
      ctx.scale(scale, scale);
      ctx.translate(cssW + 10, 16);
      ctx.fillStyle = viewer.dark ? "#e6e8ee" : "#1d2330";
      ctx.font = "600 13px system-ui, sans-serif";
      ctx.fillText(legend.title, 0, 12);
      ctx.font = "12px system-ui, sans-serif";
      if (legend.items) {
        const max = Math.floor((cssH - 50) / 17);
        legend.items.slice(0, max).forEach((it, i) => {
          ctx.fillStyle = `rgb(${it.rgb.join(",")})`;
          ctx.beginPath();
          ctx.arc(6, 30 + i * 17, 5, 0, Math.PI * 2);
          ctx.fill();
          ctx.fillStyle = viewer.dark ? "#e6e8ee" : "#1d2330";
          ctx.fillText(it.label.length > 28 ? it.label.slice(0, 27) + "…" : it.label, 16, 34 + i * 17);
        });
        if (legend.items.length > max) ctx.fillText(`+${legend.items.length - max} more`, 16, 34 + max * 17);
      } else {
        for (let y = 0; y < 160; y++) {
          ctx.fillStyle = `rgb(${sampleColormap(legend.lut, 1 - y / 159).join(",")})`;
          ctx.fillRect(0, 24 + y, 16, 1);
        }
        ctx.fillStyle = viewer.dark ? "#e6e8ee" : "#1d2330";
        ctx.fillText(fmt(legend.hi), 22, 32);
        ctx.fillText(fmt(legend.lo), 22, 186);
      }
      ctx.restore();
    }
    if (dots) {
      ctx.save();
      ctx.scale(scale, scale);
      drawDotplot(ctx, dots, cssW + size.legendW + 10, 16);
      ctx.restore();
    }
    const blob = await new Promise((r) => out.toBlob(r, "image/png"));
    download(blob, `${baseName()}_${scale}x.png`);
    return `PNG ${out.width}×${out.height} saved`;
  }

  function svgString() {
    const scene = getScene();
    const n = viewer.nCells;
    const mask = viewer.visibleMask();
    const panels = figurePanels(viewer, scene);
    const visible = viewer.visibleCount;
    const limit = viewer.svgLimit;
    if (visible * panels.length > limit) {
      const what = panels.length > 1 ? ` in ${panels.length} panels` : "";
      throw new Error(`SVG export is limited to ${limit.toLocaleString("en-US")} visible cells; ${(visible * panels.length).toLocaleString("en-US")} are visible${what}. Hide some (legend, filters or selection) or export a PNG.`);
    }
    const edges = scene.showEdges && scene.edges ? scene.edges.shown : 0;
    if (edges > limit) {
      throw new Error(`SVG export is limited to ${limit.toLocaleString("en-US")} KNN edges; ${edges.toLocaleString("en-US")} are drawn. Turn the KNN edges off, filter cells or export a PNG.`);
    }
    const w = scene.host.clientWidth;
    const hgt = scene.host.clientHeight;
    const r = scene.pointSize;
    const legend = legendModel(viewer);
    const dots = shownDotplot(viewer);
    const size = figureSize(w, hgt, legend, dots);
    const parts = [];
    parts.push(`<rect width="${size.width}" height="${size.height}" fill="${viewer.dark ? "#121419" : "#ffffff"}"/>`);
    const overlays = overlaySvg(scene, { width: w, height: hgt });
    parts.push(overlays.under);
    const esc = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
    const ink = viewer.dark ? "#e6e8ee" : "#1d2330";
    for (const panel of panels) {
      const { rect, colors } = panel;
      const screen = scene.project(panel.positions, panel.size, panel.index);
      const split = panels.length > 1;
      if (split) parts.push(`<g class="panel" data-panel="${panel.index}"><clipPath id="panel-clip-${panel.index}"><rect x="${rect.x}" y="${rect.y}" width="${rect.width}" height="${rect.height}"/></clipPath>`);
      parts.push(`<g class="cells" fill-opacity="${viewer.opacity}"${split ? ` clip-path="url(#panel-clip-${panel.index})"` : ""}>`);
      for (let i = 0; i < n; i++) {
        if (!mask[i]) continue;
        const x = screen[2 * i], y = screen[2 * i + 1];
        if (x < rect.x - r || y < rect.y - r || x > rect.x + rect.width + r || y > rect.y + rect.height + r) continue;
        parts.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="${r}" fill="rgb(${colors[i * 4]},${colors[i * 4 + 1]},${colors[i * 4 + 2]})"/>`);
      }
      parts.push("</g>");
      if (split) parts.push(`<rect x="${rect.x + 0.5}" y="${rect.y + 0.5}" width="${rect.width - 1}" height="${rect.height - 1}" fill="none" stroke="${viewer.dark ? "#3a4150" : "#c9ced8"}"/><text x="${rect.x + 8}" y="${rect.y + 16}" font-family="sans-serif" font-size="12" font-weight="600" fill="${ink}">${esc(panel.title)}</text></g>`);
    }
    parts.push(overlays.over);
    if (legend) {
      parts.push(`<g transform="translate(${w + 10},16)" font-family="sans-serif" font-size="12" fill="${ink}"><text y="12" font-weight="600" font-size="13">${esc(legend.title)}</text>`);
      if (legend.items) {
        legend.items.slice(0, 60).forEach((it, i) => parts.push(`<circle cx="6" cy="${30 + i * 17}" r="5" fill="rgb(${it.rgb.join(",")})"/><text x="16" y="${34 + i * 17}">${esc(it.label)}</text>`));
      } else {
        parts.push(`<defs><linearGradient id="cb" x1="0" y1="1" x2="0" y2="0">`);
        for (let s = 0; s <= 10; s++) {
          parts.push(`<stop offset="${s / 10}" stop-color="rgb(${sampleColormap(legend.lut, s / 10).join(",")})"/>`);
        }
        parts.push(`</linearGradient></defs><rect y="24" width="16" height="160" fill="url(#cb)"/><text x="22" y="32">${fmt(legend.hi)}</text><text x="22" y="186">${fmt(legend.lo)}</text>`);
      }
      parts.push("</g>");
    }
    if (dots) parts.push(dotplotSvg(dots, w + size.legendW + 10, 16));
    const svg = document.createElementNS(SVGNS, "svg");
    svg.setAttribute("width", String(size.width));
    svg.setAttribute("height", String(size.height));
    svg.setAttribute("viewBox", `0 0 ${size.width} ${size.height}`);
    const text = new XMLSerializer().serializeToString(svg).replace(/<\/svg>$|\/>$/, (m) => (m === "/>" ? ">" : "") + parts.join("") + "</svg>");
    return { text, visible };
  }

  async function svg() {
    const { text, visible } = svgString();
    download(new Blob([text], { type: "image/svg+xml" }), `${baseName()}.svg`);
    return `SVG with ${visible.toLocaleString("en-US")} cells saved`;
  }

  return { png, svg, svgString };
}
