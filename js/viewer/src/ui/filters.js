// The Filters section of the side panel and the visible-cell count on the plot:
//   - a field picker (obs fields, and genes through a search box);
//   - continuous fields and genes: a small histogram (canvas) with a brush, and min/max inputs
//     (either may be empty: "n_genes ≥ 500"); the filter follows the brush as it moves;
//   - categorical fields: a search box, the matching categories with check boxes, and
//     "Only these" / "Hide these";
//   - the Active filters list (legend toggles show up here too), each removable;
//   - "N of M cells visible", in the section and always on screen at the top of the panel.
// The model and the masks are filters/ (pure); this file is only the DOM.

import { h, fmtInt, fmtNum } from "./dom.js";
import { geneSearch } from "./genesearch.js";
import { describeFilter, filterId, matchCategories, onlyCategories, rangeFilter, toggleCategory } from "../filters/model.js";
import { barHeights, snapValue, valueAt, xOf } from "../filters/histogram.js";

const HIST_W = 256;
const HIST_H = 56;
const BINS = 64;
const MATCH_LIST_MAX = 200;

/** "120 of 481 cells visible" or "481 cells" when nothing is hidden. */
export function visibleText(count, n) {
  return count === n ? `${fmtInt(n)} cells` : `${fmtInt(count)} of ${fmtInt(n)} cells visible`;
}

/**
 * The visible-cell count, always on screen: a bar stuck to the top of the side panel (kept off
 * the plot, so it never covers cells or ends up in a figure).
 */
export function installVisibleCount(viewer, panel) {
  const badge = h("div.vis-count", { role: "status", "aria-live": "polite", "aria-label": "Visible cells" });
  const show = () => {
    badge.textContent = visibleText(viewer.visibleCount, viewer.nCells);
    badge.classList.toggle("filtered", viewer.visibleCount !== viewer.nCells);
  };
  show();
  viewer.on("visibility", show);
  panel.prepend(badge);
  return badge;
}

const cssVar = (name, fallback) => getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;

/** Histogram bars, the brushed range shaded in the accent colour (a note until it is computed). */
function drawHistogram(canvas, hist, lo, hi) {
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(HIST_W * ratio);
  canvas.height = Math.round(HIST_H * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, HIST_W, HIST_H);
  if (!hist) {
    ctx.fillStyle = cssVar("--muted", "#667085");
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillText("computing the histogram…", 6, HIST_H / 2 + 4);
    return;
  }
  const bars = barHeights(hist, HIST_H - 2);
  const bw = HIST_W / hist.bins;
  const accent = cssVar("--accent", "#2f6fdb");
  const muted = cssVar("--muted", "#667085");
  const x0 = xOf(hist, Math.max(lo, hist.lo), HIST_W);
  const x1 = xOf(hist, Math.min(hi, hist.hi), HIST_W);
  const brushed = lo > -Infinity || hi < Infinity;
  for (let b = 0; b < hist.bins; b++) {
    const mid = (b + 0.5) * bw;
    const inside = !brushed || (mid >= x0 && mid <= x1);
    ctx.fillStyle = inside ? accent : muted;
    ctx.globalAlpha = inside ? 0.85 : 0.35;
    ctx.fillRect(b * bw + 0.5, HIST_H - bars[b], Math.max(1, bw - 1), bars[b]);
  }
  ctx.globalAlpha = 1;
  if (brushed && x1 >= x0) {
    ctx.fillStyle = accent;
    ctx.globalAlpha = 0.12;
    ctx.fillRect(x0, 0, Math.max(1, x1 - x0), HIST_H);
    ctx.globalAlpha = 1;
    ctx.fillRect(x0, 0, 1.5, HIST_H);
    ctx.fillRect(Math.max(x0, x1 - 1.5), 0, 1.5, HIST_H);
  }
}

/**
 * Range editor of one continuous field or gene: histogram + brush + min/max inputs.
 * `apply(lo, hi)` sets the filter (±Infinity = open end).
 */
function rangeEditor(viewer, data) {
  const id = filterId(data.source, data.key);
  let hist = null; // computed in the filters worker (tens of ms at a million cells)
  const current = viewer.visibility.filters.get(id);
  let lo = current ? current.lo : -Infinity;
  let hi = current ? current.hi : Infinity;
  const canvas = h("canvas.filter-hist", { role: "img", "aria-label": `Histogram of ${data.key}; drag to filter a range` });
  canvas.style.width = `${HIST_W}px`;
  canvas.style.height = `${HIST_H}px`;
  const fmtIn = (v) => (Number.isFinite(v) ? fmtNum(v) : "");
  const minIn = h("input.range-in.filter-min", { type: "number", step: "any", placeholder: "min", value: fmtIn(lo), "aria-label": "Filter minimum" });
  const maxIn = h("input.range-in.filter-max", { type: "number", step: "any", placeholder: "max", value: fmtIn(hi), "aria-label": "Filter maximum" });
  const redraw = () => drawHistogram(canvas, hist, lo, hi);
  let pending = 0;
  const apply = () => {
    pending = 0;
    viewer.setFilter(rangeFilter(data.key, data.source, lo, hi), data.values);
  };
  // at most one filter update per frame while the brush moves
  const schedule = () => (pending ||= requestAnimationFrame(apply));
  const setRange = (a, b, live) => {
    [lo, hi] = a <= b ? [a, b] : [b, a];
    minIn.value = fmtIn(lo);
    maxIn.value = fmtIn(hi);
    minIn.classList.remove("bad");
    maxIn.classList.remove("bad");
    redraw();
    if (live) schedule();
    else {
      cancelAnimationFrame(pending);
      apply();
    }
  };
  let drag = null;
  const xAt = (e) => e.clientX - canvas.getBoundingClientRect().left;
  // a brush end dragged to (or past) an edge of the histogram leaves that side open
  const at = (x) => (x <= 0 ? -Infinity : x >= HIST_W ? Infinity : snapValue(hist, valueAt(hist, x, HIST_W), HIST_W));
  canvas.addEventListener("pointerdown", (e) => {
    if (!hist) return;
    drag = { x: xAt(e), moved: false };
    canvas.setPointerCapture(e.pointerId);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const x = xAt(e);
    if (Math.abs(x - drag.x) < 3 && !drag.moved) return;
    drag.moved = true;
    setRange(at(drag.x), at(x), true);
  });
  const end = (e) => {
    if (!drag) return;
    const d = drag;
    drag = null;
    if (d.moved) setRange(at(d.x), at(xAt(e)), false);
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", () => (drag = null));
  const typed = () => {
    const a = minIn.value.trim() === "" ? -Infinity : parseFloat(minIn.value);
    const b = maxIn.value.trim() === "" ? Infinity : parseFloat(maxIn.value);
    const ok = !Number.isNaN(a) && !Number.isNaN(b) && a <= b;
    minIn.classList.toggle("bad", !ok);
    maxIn.classList.toggle("bad", !ok);
    if (ok) setRange(a, b, false);
  };
  minIn.addEventListener("change", typed);
  maxIn.addEventListener("change", typed);
  const clear = h("button.link", { type: "button", text: "clear", title: "Remove this range filter", on: { click: () => (setRange(-Infinity, Infinity, false), viewer.removeFilter(id)) } });
  const axis = h("div.hist-axis.small.muted");
  const note = h("div.small.muted", { text: "drag over the histogram, or type a bound" });
  const el = h("div.filter-range", {}, canvas, axis, h("div.range-row", {}, minIn, h("span.muted", { text: "to" }), maxIn, clear), note);
  viewer.filterJobs.histogram(data.values, { bins: BINS }).then(
    (answer) => {
      hist = answer.hist;
      axis.replaceChildren(h("span", { text: fmtNum(hist.lo) }), h("span", { text: fmtNum(hist.hi) }));
      if (hist.nonFinite) note.textContent += ` · ${fmtInt(hist.nonFinite)} missing (hidden by a range)`;
      canvas.dataset.ready = "true";
      redraw();
    },
    (err) => (note.textContent = `no histogram: ${err.message || err}`),
  );
  el.redraw = redraw;
  el.sync = () => {
    const f = viewer.visibility.filters.get(id);
    lo = f ? f.lo : -Infinity;
    hi = f ? f.hi : Infinity;
    minIn.value = fmtIn(lo);
    maxIn.value = fmtIn(hi);
    redraw();
  };
  requestAnimationFrame(redraw);
  return el;
}

/** Categorical editor: search, matching categories with check boxes, Only these / Hide these. */
function categoryEditor(viewer, data) {
  const { key, categories } = data;
  const k = categories.length;
  const search = h("input.filter-search", { type: "search", placeholder: `Search ${fmtInt(k)} categories…`, "aria-label": "Find categories" });
  const list = h("div.filter-matches", { role: "group", "aria-label": "Matching categories" });
  const info = h("span.small.muted");
  let matches = new Uint32Array(0);
  const checked = new Set();
  const only = h("button.btn.filter-only", { type: "button", text: "Only these" });
  const hide = h("button.btn.filter-hide", { type: "button", text: "Hide these" });
  const chosen = () => [...matches].filter((c) => checked.has(c));
  const render = () => {
    matches = matchCategories(categories, search.value);
    checked.clear();
    for (const c of matches) checked.add(c);
    const shown = matches.subarray(0, MATCH_LIST_MAX);
    list.replaceChildren(
      ...Array.from(shown, (c) =>
        h(
          "label.filter-cat",
          { "data-category": categories[c] },
          h("input", { type: "checkbox", checked: true, on: { change: (e) => (e.target.checked ? checked.add(c) : checked.delete(c), count()) } }),
          h("span", { text: categories[c] }),
        ),
      ),
    );
    info.textContent = `${fmtInt(matches.length)} of ${fmtInt(k)} match${matches.length > shown.length ? ` (first ${fmtInt(shown.length)} listed)` : ""}`;
    count();
  };
  const count = () => {
    const m = chosen().length;
    only.textContent = `Only these (${fmtInt(m)})`;
    hide.textContent = `Hide these (${fmtInt(m)})`;
    only.disabled = hide.disabled = m === 0;
  };
  only.addEventListener("click", () => viewer.setFilter(onlyCategories(key, categories, chosen().map((c) => categories[c])), data.codes));
  hide.addEventListener("click", () => {
    let f = viewer.visibility.filters.get(filterId("obs", key));
    for (const c of chosen()) if (!f || f.include[c]) f = toggleCategory(f, key, categories, c);
    if (f) viewer.setFilter(f, data.codes);
  });
  search.addEventListener("input", render);
  render();
  return h("div.filter-cats", {}, search, info, list, h("div.row", {}, only, hide));
}

/** The Filters section. */
export function buildFilterSection(viewer) {
  const ds = viewer.dataset;
  const count = h("div.filter-count", { "aria-live": "polite" });
  const editor = h("div.filter-editor");
  const list = h("ul.filter-list", { "aria-label": "Active filters" });
  const clearAll = h("button.link", { type: "button", text: "clear all", on: { click: () => viewer.clearFilters() } });
  let open = null; // {key, source, el}
  const opt = (f) => h("option", { value: `obs:${f.key}`, text: f.kind === "category" ? `${f.key} (${f.categories.length})` : f.key });
  const group = (label, fields) => (fields.length ? h("optgroup", { label }, ...fields.map(opt)) : null);
  const picker = h(
    "select.filter-field",
    { "aria-label": "Filter field", on: { change: (e) => e.target.value && edit(e.target.value.slice(4), "obs") } },
    h("option", { value: "", text: "— filter by an obs field —" }),
    group("Continuous", ds.fields.filter((f) => f.kind === "continuous")),
    group("Categorical", ds.fields.filter((f) => f.kind === "category")),
  );
  const genes = ds.genes.length ? geneSearch(ds.genes, (g) => edit(g, "var"), { label: "Filter by gene", prefix: "filter-" }) : null;
  const status = h("div.small.muted.filter-status", { "aria-live": "polite" });
  const listTitle = h("div.small.muted.filter-list-title");

  async function edit(key, source) {
    status.textContent = "";
    let data;
    try {
      data = source === "var" ? await ds.loadGene(key) : await ds.loadField(key);
    } catch (err) {
      status.textContent = `Could not load ${key}: ${err.message || err}`;
      return;
    }
    picker.value = source === "obs" ? `obs:${key}` : "";
    if (genes && source === "obs") genes.setValue("");
    const el = data.kind === "category" ? categoryEditor(viewer, data) : rangeEditor(viewer, data);
    open = { key, source, el };
    editor.replaceChildren(h("div.filter-editor-title", {}, h("span", { text: key }), h("span.muted.small", { text: source === "var" ? "gene" : data.kind === "category" ? "categorical" : "continuous" })), el);
  }

  const renderList = () => {
    const filters = viewer.filters;
    list.replaceChildren(
      ...filters.map((f) => {
        const text = describeFilter(f);
        return h(
          "li.filter-row",
          { "data-filter": f.id },
          h("button.filter-text", { type: "button", text, title: `Edit: ${text}`, on: { click: () => edit(f.key, f.source) } }),
          h("button.x", { type: "button", text: "×", title: "Remove this filter", "aria-label": `Remove filter ${text}`, on: { click: () => viewer.removeFilter(f.id) } }),
        );
      }),
    );
    list.hidden = clearAll.hidden = filters.length === 0;
    listTitle.textContent = filters.length ? "Active filters" : "Active filters: none";
    if (open && open.el.sync) open.el.sync();
  };
  const renderCount = () => (count.textContent = visibleText(viewer.visibleCount, viewer.nCells));
  viewer.on("filters", renderList);
  viewer.on("visibility", renderCount);
  viewer.on("style", (s) => s && s.dark !== undefined && open && open.el.redraw && requestAnimationFrame(() => open.el.redraw()));
  renderList();
  renderCount();
  const sec = h(
    "section.sec.filters",
    {},
    h("h2", {}, h("span", { text: "Filters" }), clearAll),
    count,
    picker,
    genes,
    status,
    editor,
    listTitle,
    list,
  );
  return sec;
}
