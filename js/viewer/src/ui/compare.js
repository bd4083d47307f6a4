// The Compare panel (opened from the side panel): group A and group B (the selection, a highlight
// group, categories of a field; B may be the rest), the statistic, Run / Cancel, progress, which
// statistic ran and where, the ranked table (sortable; a click colours by the gene) and a dot plot
// of the top genes. It docks right of the plot; the figure export draws its dot plot too.

import { h, fmtInt } from "./dom.js";
import { geneTable } from "./genetable.js";
import { dotplotLayout, dotplotModel, drawDotplot } from "./dotplot.js";

const METHOD_LABELS = [
  ["wilcoxon", "Wilcoxon rank-sum"],
  ["t-test", "t-test (Welch)"],
  ["t-test_overestim_var", "t-test, overestimated variance"],
];

/** One group: what it is (a select) and, for a field, which categories (checkboxes). */
function groupPicker(viewer, which) {
  // obs fields and user-defined ones (Annotate, Python's addField): re-read when fields change
  const categorical = () => viewer.dataset.fields.filter((f) => f.kind === "category");
  const select = h("select.cmp-kind", { "aria-label": `Group ${which}`, "data-which": which });
  const filter = h("input.cmp-filter", { type: "search", placeholder: "Filter categories…", "aria-label": `Search the categories of group ${which}`, hidden: true });
  const list = h("div.cmp-cat-list", { role: "group", "aria-label": `Categories of group ${which}` });
  const cats = h("div.cmp-cats", { hidden: true, "data-which": which }, filter, list);
  const checked = new Set();
  let field = null;

  function options() {
    const keep = select.value;
    const n = viewer.selection.length;
    const opts = [];
    if (which === "B") opts.push(h("option", { value: "rest", text: "Rest (all other cells)" }));
    opts.push(h("option", { value: "selection", text: `Current selection (${n ? `${fmtInt(n)} cells` : "empty"})` }));
    if (viewer.highlights.length) opts.push(h("optgroup", { label: "Highlight groups" }, ...viewer.highlights.map((g) => h("option", { value: `hl:${g.id}`, text: g.label }))));
    const fields = categorical();
    if (fields.length) opts.push(h("optgroup", { label: "Categories of a field" }, ...fields.map((f) => h("option", { value: `field:${f.key}`, text: `${f.key} (${f.categories.length})` }))));
    select.replaceChildren(...opts);
    select.value = keep && [...select.options].some((o) => o.value === keep) ? keep : which === "B" ? "rest" : "selection";
  }

  function showCategories() {
    const key = select.value.startsWith("field:") ? select.value.slice(6) : null;
    if (key !== (field && field.key)) checked.clear();
    field = key === null ? null : categorical().find((f) => f.key === key);
    cats.hidden = !field;
    if (!field) return;
    filter.hidden = field.categories.length <= 12;
    filter.value = "";
    list.replaceChildren(
      ...field.categories.map((c) =>
        h(
          "label.cmp-cat",
          { "data-category": c },
          h("input", { type: "checkbox", checked: checked.has(c), on: { change: (e) => (e.target.checked ? checked.add(c) : checked.delete(c)) } }),
          h("span", { text: c }),
        ),
      ),
    );
  }
  filter.addEventListener("input", () => {
    const q = filter.value.trim().toLowerCase();
    for (const row of list.children) row.hidden = q !== "" && !row.dataset.category.toLowerCase().includes(q);
  });
  select.addEventListener("change", showCategories);
  viewer.on("selectionchange", options);
  viewer.on("highlights", () => (options(), showCategories()));
  viewer.on("fields", () => (options(), showCategories()));
  options();

  return {
    el: h("div.cmp-group", {}, h("label.cmp-label", { text: which === "A" ? "Group A" : "Group B" }), select, cats),
    /** The spec for viewer.compare. */
    value() {
      const v = select.value;
      if (v === "rest" || v === "selection") return v;
      if (v.startsWith("hl:")) return { highlight: v.slice(3) };
      const categories = field.categories.filter((c) => checked.has(c));
      return { field: field.key, categories };
    },
    select,
  };
}

/**
 * @param {import("../app/viewer.js").Viewer} viewer
 * @param {{host: HTMLElement}} opts the panel is appended to `host` (the app row)
 * @returns {{el: HTMLElement, toggle: (open?: boolean) => void}}
 */
export function buildComparePanel(viewer, { host }) {
  const available = Boolean(viewer.comparer && viewer.comparer.hasGenes);
  const a = groupPicker(viewer, "A");
  const b = groupPicker(viewer, "B");
  const method = h("select.cmp-method", { "aria-label": "Statistic" }, ...METHOD_LABELS.map(([v, t]) => h("option", { value: v, text: t })));
  const tie = h("input", { type: "checkbox", "aria-label": "Tie correction" });
  const tieRow = h("label.row.check.cmp-tie", { title: "Wilcoxon only: correct the variance for tied values" }, tie, h("span", { text: "tie correction" }));
  method.addEventListener("change", () => (tieRow.hidden = method.value !== "wilcoxon"));
  const runBtn = h("button.btn.primary.cmp-run", { type: "button", text: "Compare", disabled: !available });
  const cancelBtn = h("button.btn.cmp-cancel", { type: "button", text: "Cancel", disabled: true, on: { click: () => viewer.cancelCompare() } });
  const bar = h("span");
  const progress = h("div.cmp-progress", { hidden: true, role: "progressbar", "aria-label": "Comparison progress", "aria-valuemin": 0 }, bar);
  const status = h("div.cmp-status.small", { "aria-live": "polite", text: available ? "" : "This dataset has no genes to compare." });
  const statistic = h("p.cmp-statistic.small.muted", { hidden: true });
  const warn = h("p.cmp-warn.small", { hidden: true, text: "Approximate: quantised values (the export stored the genes with 8 or 16 bits)." });
  const table = geneTable({
    onPick: (gene) => {
      viewer.setColorBy(gene).catch((err) => (status.textContent = `Could not colour by ${gene}: ${err.message || err}`));
    },
  });
  const dotCanvas = h("canvas.cmp-dotplot", { "aria-label": "Dot plot of the top genes", role: "img" });
  const dotBox = h("div.cmp-dot-box", { hidden: true }, dotCanvas);

  runBtn.addEventListener("click", () => {
    let spec;
    try {
      spec = { group: a.value(), reference: b.value(), method: method.value, tieCorrect: method.value === "wilcoxon" && tie.checked };
    } catch (err) {
      status.textContent = err.message;
      return;
    }
    status.textContent = "";
    viewer.compare(spec).catch((err) => {
      if (err && err.name !== "AbortError") status.textContent = `Could not compare: ${err.message || err}`;
    });
  });

  const el = h(
    "aside.cmp-panel#compare",
    { hidden: true, "aria-label": "Compare groups" },
    h("header.cmp-head", {}, h("h2", { text: "Compare groups" }), h("button.x", { type: "button", text: "×", title: "Close", "aria-label": "Close compare panel", on: { click: () => toggle(false) } })),
    h("div.cmp-form", {}, a.el, b.el, h("div.row", {}, h("span", { text: "Statistic" }), method), tieRow, h("div.row", {}, runBtn, cancelBtn)),
    progress,
    status,
    statistic,
    warn,
    table,
    dotBox,
  );
  host.append(el);

  // While rows stream in, redraw at most every RUNNING_REDRAW_MS (sorting a 20k-gene table each
  // frame would hold the page); otherwise on the next frame.
  const RUNNING_REDRAW_MS = 250;
  let frame = 0;
  let lastRender = 0;
  const schedule = () => {
    if (frame) return;
    const wait = viewer.compareRun ? lastRender + RUNNING_REDRAW_MS - performance.now() : 0;
    frame = wait > 0 ? setTimeout(() => ((frame = 0), schedule()), wait) : requestAnimationFrame(render);
  };
  function render() {
    frame = 0;
    lastRender = performance.now();
    const cmp = viewer.activeComparison;
    const running = Boolean(viewer.compareRun);
    cancelBtn.disabled = !running;
    progress.hidden = !cmp;
    if (cmp) {
      const frac = cmp.total ? cmp.done / cmp.total : 0;
      bar.style.width = `${(100 * Math.min(1, frac)).toFixed(1)}%`;
      progress.setAttribute("aria-valuemax", String(cmp.total));
      progress.setAttribute("aria-valuenow", String(cmp.done));
      progress.dataset.state = cmp.status;
      const where = cmp.source === "server" ? "on the server" : cmp.source === "browser" ? "in this browser" : "";
      const counts = `${fmtInt(cmp.groupSize)} vs ${fmtInt(cmp.referenceSize || 0)} cells`;
      if (cmp.status === "running") status.textContent = cmp.total ? `Ranking genes: ${fmtInt(cmp.done)} / ${fmtInt(cmp.total)}${where ? ` ${where}` : ""}…` : "Starting…";
      else if (cmp.status === "done") status.textContent = `${fmtInt(cmp.result.count)} genes ranked ${where} · ${counts}`;
      else if (cmp.status === "cancelled") status.textContent = `Cancelled after ${fmtInt(cmp.done)} of ${fmtInt(cmp.total)} genes`;
      else if (cmp.status === "error") status.textContent = `Could not compare: ${cmp.error}`;
      status.dataset.state = cmp.status;
      statistic.hidden = !cmp.statistic;
      statistic.textContent = cmp.statistic ? `Statistic: ${cmp.statistic}${where ? ` (computed ${where})` : ""}` : "";
      statistic.dataset.source = cmp.source;
      warn.hidden = !cmp.quantized;
    } else {
      statistic.hidden = warn.hidden = true;
    }
    table.update(cmp);
    drawDots(cmp);
  }

  function drawDots(cmp) {
    const model = dotplotModel(cmp);
    dotBox.hidden = !model;
    if (!model) return;
    const layout = dotplotLayout(model, { dark: viewer.dark });
    const dpr = window.devicePixelRatio || 1;
    dotCanvas.width = Math.ceil(layout.width * dpr);
    dotCanvas.height = Math.ceil(layout.height * dpr);
    dotCanvas.style.width = `${layout.width}px`;
    dotCanvas.style.height = `${layout.height}px`;
    const ctx = dotCanvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    drawDotplot(ctx, layout);
  }

  viewer.on("comparison", schedule);
  viewer.on("style", (s) => s && s.dark !== undefined && schedule());
  viewer.on("field", (f) => table.setActive(f && f.source === "var" ? f.key : null));

  function toggle(open = el.hidden) {
    el.hidden = !open;
    viewer.comparePanelOpen = open;
    viewer.emit("comparepanel", open);
    if (open) schedule();
  }
  return { el, toggle };
}
