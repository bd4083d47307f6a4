// Categorical legend (counts, click to hide/show, search) and continuous colour bar (range inputs).

import { h, fmtInt, fmtNum } from "./dom.js";
import { COLORMAP_NAMES, sampleColormap } from "../color/colormaps.js";
import { MISSING_RGBA } from "../render/colorize.js";
import { rgbToHex } from "../color/palettes.js";

const rgbCss = (p, i) => `rgb(${p[i * 3]},${p[i * 3 + 1]},${p[i * 3 + 2]})`;
const MISSING_CSS = `rgb(${MISSING_RGBA[0]} ${MISSING_RGBA[1]} ${MISSING_RGBA[2]} / ${Math.round((MISSING_RGBA[3] / 255) * 100)}%)`;

/**
 * @param field     {categories, codes, missing}
 * @param palette   Uint8Array k*3
 * @param counts    Uint32Array k+1 (last = missing)
 * @param hidden    Uint8Array k
 * @param onToggle  (index | "all" | "none") => void
 * @param onSolo    (index) => void  (double click: show only this category)
 * @param onColor   (index, "#rrggbb") => void  (a colour picked for the category; optional)
 */
export function categoricalLegend({ field, palette, counts, hidden, onToggle, onSolo, onColor = null }) {
  const k = field.categories.length;
  const list = h("ul.legend-list", { role: "listbox", "aria-label": "Categories" });
  const rows = [];
  // one colour input for the legend, opened by a swatch: the browser's own colour picker
  let picking = -1;
  const picker = onColor
    ? h("input.legend-color", { type: "color", tabindex: -1, "aria-label": "Category colour", on: { change: (e) => picking >= 0 && onColor(picking, e.target.value) } })
    : null;
  const pick = (i, e) => {
    e.stopPropagation(); // not a hide/show click
    picking = i;
    picker.value = rgbToHex(palette[i * 3], palette[i * 3 + 1], palette[i * 3 + 2]);
    picker.click();
  };
  for (let i = 0; i < k; i++) {
    const swatch = onColor
      ? h("button.swatch", { type: "button", title: `Change the colour of ${field.categories[i]}`, "aria-label": `Colour of ${field.categories[i]}`, style: { background: rgbCss(palette, i) }, on: { click: (e) => pick(i, e), dblclick: (e) => e.stopPropagation() } })
      : h("span.swatch", { style: { background: rgbCss(palette, i) } });
    const row = h(
      "li.legend-row",
      { title: `${field.categories[i]} — click to hide/show, double-click to show only this`, "data-index": i, on: { click: () => onToggle(i), dblclick: () => onSolo(i) } },
      swatch,
      h("span.legend-label", { text: field.categories[i] }),
      h("span.legend-count", { text: fmtInt(counts[i]) }),
    );
    if (hidden[i]) row.classList.add("off");
    rows.push(row);
    list.append(row);
  }
  if (counts[k] > 0) {
    list.append(h("li.legend-row.missing", { title: "cells without a category" }, h("span.swatch.swatch-missing", { style: { background: MISSING_CSS } }), h("span.legend-label", { text: "missing" }), h("span.legend-count", { text: fmtInt(counts[k]) })));
  }
  const info = h("span.legend-info", { text: `${fmtInt(k)} categories` });
  const search =
    k > 12
      ? h("input.legend-search", {
          type: "search",
          placeholder: `Filter ${fmtInt(k)} categories…`,
          "aria-label": "Filter categories",
          on: {
            input: (e) => {
              const q = e.target.value.trim().toLowerCase();
              let shown = 0;
              rows.forEach((r, i) => {
                const hit = !q || field.categories[i].toLowerCase().includes(q);
                r.hidden = !hit;
                shown += hit;
              });
              info.textContent = q ? `${fmtInt(shown)} of ${fmtInt(k)} categories` : `${fmtInt(k)} categories`;
            },
          },
        })
      : null;
  const tools = h(
    "div.legend-tools",
    {},
    info,
    h("button.link", { type: "button", text: "show all", on: { click: () => onToggle("all") } }),
    h("button.link", { type: "button", text: "hide all", on: { click: () => onToggle("none") } }),
  );
  const el = h("div.legend", {}, search, tools, list, picker);
  el.update = (hiddenNow) => rows.forEach((r, i) => r.classList.toggle("off", !!hiddenNow[i]));
  return el;
}

/** A horizontal colour bar with min/max inputs and a colormap picker. */
export function colorBar({ lut, colormap, range, stats, onRange, onColormap, missing }) {
  const canvas = h("canvas.colorbar", { width: 256, height: 12, "aria-hidden": "true" });
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(256, 12);
  for (let x = 0; x < 256; x++) {
    const rgb = sampleColormap(lut, x / 255);
    for (let y = 0; y < 12; y++) img.data.set([...rgb, 255], (y * 256 + x) * 4);
  }
  ctx.putImageData(img, 0, 0);
  const minIn = h("input.range-in", { type: "number", step: "any", value: fmtNum(range[0]), "aria-label": "Colour range minimum" });
  const maxIn = h("input.range-in", { type: "number", step: "any", value: fmtNum(range[1]), "aria-label": "Colour range maximum" });
  const apply = () => {
    const lo = parseFloat(minIn.value);
    const hi = parseFloat(maxIn.value);
    if (Number.isFinite(lo) && Number.isFinite(hi) && hi > lo) {
      minIn.classList.remove("bad");
      maxIn.classList.remove("bad");
      mark([lo, hi]);
      onRange([lo, hi]);
    } else {
      minIn.classList.add("bad");
      maxIn.classList.add("bad");
    }
  };
  minIn.addEventListener("change", apply);
  maxIn.addEventListener("change", apply);
  const set = (r) => {
    minIn.value = fmtNum(r[0]);
    maxIn.value = fmtNum(r[1]);
    mark(r);
    onRange(r);
  };
  // Genes open on the 1st–99th percentile of their expressing cells, obs fields on the data
  // range; the other is one click away, and the button of the range in use is marked.
  const fullBtn = h("button.link.range-full", { type: "button", text: "data range", title: `${fmtNum(stats.min)} – ${fmtNum(stats.max)}`, on: { click: () => set(stats.full) } });
  const robustTitle = stats.expressing ? "1st–99th percentile of the expressing (non-zero) cells" : "1st–99th percentile";
  const robustBtn = h("button.link.range-robust", { type: "button", text: stats.expressing ? "1–99 % expressing" : "1–99 %", title: `${robustTitle}: ${fmtNum(stats.robust[0])} – ${fmtNum(stats.robust[1])}`, on: { click: () => set(stats.robust) } });
  const same = (a, b) => a[0] === b[0] && a[1] === b[1];
  const mark = (r) => {
    fullBtn.classList.toggle("on", same(r, stats.full));
    robustBtn.classList.toggle("on", !same(r, stats.full) && same(r, stats.robust));
  };
  mark(range);
  const cmap = h("select.cmap", { "aria-label": "Colormap", on: { change: (e) => onColormap(e.target.value) } }, ...COLORMAP_NAMES.map((c) => h("option", { value: c, text: c, selected: c === colormap })));
  return h(
    "div.colorbar-box",
    {},
    canvas,
    h("div.range-row", {}, minIn, h("span.muted", { text: "to" }), maxIn),
    h(
      "div.legend-tools",
      {},
      cmap,
      fullBtn,
      robustBtn,
    ),
    h("div.muted.small", { text: `data ${fmtNum(stats.min)} – ${fmtNum(stats.max)}${missing ? ` · ${fmtInt(missing)} missing (grey)` : ""}` }),
  );
}
