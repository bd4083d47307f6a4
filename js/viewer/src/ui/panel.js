// Side panel: dataset, colour-by (obs field select + gene search), legend / colour bar,
// view controls, selection tools, groups, compare groups (opens ui/compare.js), export. Rebuilt
// parts follow Viewer events.

import { h, fmtInt } from "./dom.js";
import { categoricalLegend, colorBar } from "./legend.js";
import { geneSearch } from "./genesearch.js";
import { getColormap } from "../color/colormaps.js";
import { buildFilterSection } from "./filters.js";
import { labelsToggle } from "./labels.js";
import { groupsSection } from "./groups.js";
import { selectionSection } from "./selecttools.js";
import { sessionSection } from "./session.js";
import { embeddingPicker } from "./embeddings.js";
import { splitControls } from "./panels.js";

function section(title, ...children) {
  return h("section.sec", {}, h("h2", { text: title }), ...children);
}

export function buildPanel(viewer, { panel, datasets = [], currentId, onDataset, exporter, onTool, onCompare, stage = null }) {
  const ds = viewer.dataset;
  panel.replaceChildren();

  // ---- header
  const head = h("header.head", {}, h("div.brand", { text: "Cellucid" }));
  if (datasets.length > 1) {
    head.append(
      h(
        "select.ds-pick",
        { "aria-label": "Dataset", on: { change: (e) => onDataset(e.target.value) } },
        ...datasets.map((d) => h("option", { value: d.id, text: d.name || d.id, selected: d.id === currentId })),
      ),
    );
  } else head.append(h("div.ds-name", { text: ds.identity.name, title: ds.identity.description || ds.identity.name }));
  const st = ds.identity.stats;
  head.append(h("div.muted.small", { text: `${fmtInt(st.n_cells)} cells · ${fmtInt(st.n_genes)} genes · ${fmtInt(st.n_obs_fields)} obs fields` }));
  panel.append(head);

  // ---- colour by
  const fieldSel = h(
    "select.field-pick",
    { "aria-label": "Colour by obs field", on: { change: (e) => e.target.value && run(viewer.setColorBy(e.target.value)) } },
  );
  // obs fields, then the user-defined ones (Annotate, Python's addField) as they come
  const fieldOptions = () => {
    const keep = fieldSel.value;
    const obs = ds.fields.filter((f) => !f.user);
    fieldSel.replaceChildren(
      h("option", { value: "", text: "— obs field —" }),
      groupOpt("Categorical", obs.filter((f) => f.kind === "category")),
      groupOpt("Continuous", obs.filter((f) => f.kind === "continuous")),
      groupOpt("User-defined", ds.fields.filter((f) => f.user)),
    );
    fieldSel.value = keep;
  };
  fieldOptions();
  viewer.on("fields", fieldOptions);
  const genes = geneSearch(ds.genes, (g) => run(viewer.setColorBy(g)));
  const loading = h("div.loading.small", { hidden: true, "aria-live": "polite" });
  const legendBox = h("div.legend-box");
  panel.append(section("Colour by", fieldSel, genes, loading, legendBox));

  function groupOpt(label, fields) {
    if (!fields.length) return null;
    return h("optgroup", { label }, ...fields.map((f) => h("option", { value: f.key, text: f.kind === "category" ? `${f.key} (${f.categories.length})` : f.key })));
  }
  function run(p) {
    p.catch((err) => {
      genes.setStatus(`Could not load: ${err.message || err}`);
    });
  }

  let legend = null;
  const renderLegend = () => {
    const f = viewer.field;
    legendBox.replaceChildren();
    legend = null;
    if (!f) return;
    const title = h("div.legend-title", {}, h("span", { text: f.key }), h("span.muted.small", { text: f.source === "var" ? "gene" : f.kind === "category" ? "categorical" : "continuous" }));
    if (f.kind === "category") {
      legend = categoricalLegend({
        field: f,
        palette: viewer.palettes.get(f.key),
        counts: viewer.counts,
        hidden: viewer.hiddenCats,
        onToggle: (i) => viewer.toggleCategory(i),
        onSolo: (i) => viewer.toggleCategory(i, true),
        onColor: (i, hex) => viewer.setCategoryColor(f.key, i, hex),
      });
      legendBox.append(title, legend);
    } else {
      legendBox.append(
        title,
        colorBar({
          lut: getColormap(viewer.colormap),
          colormap: viewer.colormap,
          range: viewer.ranges.get(f.key),
          stats: viewer.stats,
          missing: viewer.stats.missing,
          onRange: (r) => viewer.setRange(r),
          onColormap: (c) => viewer.setColormap(c),
        }),
      );
    }
  };
  viewer.on("field", (f) => {
    fieldSel.value = f && f.source === "obs" ? f.key : "";
    if (f && f.source === "var") genes.setValue(f.key);
    else if (f) genes.setValue("");
    renderLegend();
  });
  viewer.on("categories", (hc) => legend && legend.update && legend.update(hc));
  const active = new Set();
  viewer.on("loading", ({ key, loading: on, error }) => {
    if (on) active.add(key);
    else active.delete(key);
    loading.hidden = active.size === 0 && !error;
    loading.textContent = active.size ? `Loading ${[...active].join(", ")}…` : error ? `Failed: ${error.message || error}` : "";
    loading.classList.toggle("bad", !active.size && !!error);
    panel.classList.toggle("busy", active.size > 0);
  });

  // ---- filters (ui/filters.js)
  panel.append(buildFilterSection(viewer));

  // ---- view
  const dimBtns = h(
    "div.seg",
    { role: "group", "aria-label": "Embedding dimension" },
    ...[1, 2, 3].map((d) =>
      h("button", {
        type: "button",
        text: `${d}D`,
        "data-dim": d,
        disabled: !viewer.dimensions.includes(d),
        title: viewer.dimensions.includes(d) ? `Show the ${d}D embedding` : `No ${d}D embedding in this dataset`,
        on: { click: () => viewer.setDimension(d).catch((e) => genes.setStatus(e.message)) },
      }),
    ),
  );
  const markDim = () =>
    dimBtns.querySelectorAll("button").forEach((b) => {
      b.classList.toggle("on", Number(b.dataset.dim) === viewer.dim);
      b.disabled = !viewer.dimensions.includes(Number(b.dataset.dim)); // the embedding's dimensions
    });
  markDim();
  viewer.on("dimension", markDim);
  viewer.on("embedding", markDim);
  const slider = (label, min, max, step, value, fn) => {
    const out = h("output", { text: String(value) });
    const input = h("input", { type: "range", min, max, step, value, "aria-label": label, on: { input: (e) => ((out.textContent = e.target.value), fn(parseFloat(e.target.value))) } });
    const row = h("label.row", {}, h("span", { text: label }), input, out);
    row.show = (v) => ((input.value = String(v)), (out.textContent = input.value)); // set from elsewhere
    return row;
  };
  const bg = h(
    "div.seg",
    { role: "group", "aria-label": "Background" },
    h("button.on", { type: "button", text: "Light", "data-bg": "light", on: { click: () => setBg(false) } }),
    h("button", { type: "button", text: "Dark", "data-bg": "dark", on: { click: () => setBg(true) } }),
  );
  function setBg(dark) {
    viewer.setStyle({ dark });
  }
  const sizeSlider = slider("Point size", 0.5, 12, 0.1, viewer.pointSize, (v) => viewer.setStyle({ pointSize: v }));
  const opacitySlider = slider("Opacity", 0.05, 1, 0.05, viewer.opacity, (v) => viewer.setStyle({ opacity: v }));
  // the controls follow the style whoever sets it (these buttons, an opened session, Python)
  viewer.on("style", (style) => {
    if (!style) return; // null: a colour range changed
    if (style.dark !== undefined) {
      document.body.dataset.theme = viewer.dark ? "dark" : "light";
      bg.querySelectorAll("button").forEach((b) => b.classList.toggle("on", (b.dataset.bg === "dark") === viewer.dark));
    }
    if (style.pointSize !== undefined) sizeSlider.show(viewer.pointSize);
    if (style.opacity !== undefined) opacitySlider.show(viewer.opacity);
  });
  const viewSec = section(
    "View",
    embeddingPicker(viewer, { onError: (m) => genes.setStatus(m) }),
    h("div.row", {}, dimBtns, h("button.btn", { type: "button", text: "Reset camera", title: "Reset camera (R)", on: { click: () => viewer.resetCamera() } })),
    splitControls(viewer, { onError: (m) => genes.setStatus(m) }),
    sizeSlider,
    opacitySlider,
    h("div.row", {}, h("span", { text: "Background" }), bg),
    labelsToggle(viewer),
  );
  if (ds.connectivity) {
    viewSec.append(
      h(
        "label.row.check",
        { title: `${fmtInt(ds.connectivity.n_edges)} edges, loaded on first use` },
        h("input", { type: "checkbox", on: { change: (e) => viewer.setEdges(e.target.checked).catch((err) => genes.setStatus(err.message)) } }),
        h("span", { text: `KNN edges (${fmtInt(ds.connectivity.n_edges)})` }),
      ),
    );
  }
  if (ds.vectorFields.length) {
    viewSec.append(
      h(
        "label.row",
        {},
        h("span", { text: "Vectors" }),
        h(
          "select",
          { "aria-label": "Vector field", on: { change: (e) => viewer.setVectorField(e.target.value || null).catch((err) => genes.setStatus(err.message)) } },
          h("option", { value: "", text: "off" }),
          ...ds.vectorFields.map((v) => h("option", { value: v.id, text: prettyVector(v.id) })),
        ),
      ),
    );
  }
  panel.append(viewSec);

  // ---- selection tools and groups (ui/selecttools.js, ui/groups.js)
  panel.append(selectionSection(viewer, { onTool, section }));
  panel.append(groupsSection(viewer, { section }));

  // ---- compare groups
  if (onCompare) {
    const hasGenes = ds.genes.length > 0;
    const openBtn = h("button.btn.cmp-open", {
      type: "button",
      text: "Compare groups…",
      "aria-expanded": "false",
      disabled: !hasGenes,
      title: hasGenes ? "Rank genes between two groups of cells" : "This dataset has no genes",
      on: { click: () => onCompare() },
    });
    viewer.on("comparepanel", (open) => openBtn.setAttribute("aria-expanded", String(open)));
    panel.append(section("Compare", h("div.row", {}, openBtn), h("p.hint.muted.small", { text: "Marker genes of the selection, a highlight group or categories, against the rest or another group." })));
  }

  // ---- session (ui/session.js): save, open, drop a file on the viewer
  panel.append(sessionSection(viewer, { section, stage }));

  // ---- export
  const exportMsg = h("div.small.muted", { "aria-live": "polite" });
  const doExport = (fn) => async () => {
    exportMsg.textContent = "Exporting…";
    try {
      exportMsg.textContent = (await fn()) || "";
    } catch (err) {
      exportMsg.textContent = err.message || String(err);
    }
  };
  panel.append(
    section(
      "Figure",
      h(
        "div.row",
        {},
        h("span", { text: "PNG" }),
        h("div.seg", {}, ...[1, 2, 4].map((s) => h("button", { type: "button", text: `${s}×`, on: { click: doExport(() => exporter.png(s)) } }))),
        h("button.btn", { type: "button", text: "SVG", title: "Vector figure (up to 200,000 visible cells)", on: { click: doExport(() => exporter.svg()) } }),
      ),
      exportMsg,
    ),
  );

  const conn = h("span.conn", { "data-state": "ok" });
  panel.append(h("footer.foot.small", {}, conn));
  return { conn, genes };
}

export function prettyVector(id) {
  const umap = /_umap$/.test(id);
  let s = id.replace(/_umap$/, "").replace(/_/g, " ");
  s = s.charAt(0).toUpperCase() + s.slice(1);
  return umap ? `${s} (UMAP)` : s;
}
