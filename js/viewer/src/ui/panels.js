// Split view controls: the View section's row (new panel from the current view, link cameras,
// back to one view) and a header on each panel of the stage (its colouring, dimension and
// embedding; remove). Panel 0's header only names what it shows: the side panel drives it.

import { h } from "./dom.js";
import { MAX_PANELS } from "../app/panelmodel.js";
import { dimsOf } from "../app/embeddings.js";

/** The View section's split row. */
export function splitControls(viewer, { onError = () => {} } = {}) {
  const fail = (err) => onError(err.message || String(err));
  const add = h("button.btn.panel-add", { type: "button", text: "+ Panel", title: "New panel from the current view (split view)", on: { click: () => viewer.panels.add().catch(fail) } });
  const single = h("button.btn.panel-single", { type: "button", text: "One view", title: "Back to a single view", on: { click: () => viewer.split(null).catch(fail) } });
  const link = h("input.panel-link", { type: "checkbox", checked: viewer.panels.linked, on: { change: (e) => viewer.panels.setLinked(e.target.checked) } });
  const sync = () => {
    add.disabled = viewer.panels.model.count >= MAX_PANELS;
    single.disabled = !viewer.panels.split;
    link.checked = viewer.panels.linked;
  };
  viewer.on("panels", sync);
  sync();
  return h("div.row.split-row", {}, add, single, h("label.check", { title: "Moving one panel's camera moves the others" }, link, h("span", { text: "Link cameras" })));
}

function fieldOptions(viewer, current) {
  const ds = viewer.dataset;
  const opts = [h("option", { value: "", text: "— colour by —" })];
  for (const f of ds.fields) opts.push(h("option", { value: f.key, text: f.key }));
  if (current && !ds.fieldByKey.has(current)) opts.push(h("option", { value: current, text: `${current} (gene)` }));
  return opts;
}

/** Headers over the panels of the stage, following "panels", "field" and canvas resizes. */
export function installPanelHeaders(viewer, stage, { onError = () => {} } = {}) {
  const layer = h("div.panel-heads");
  stage.append(layer);
  const fail = (err) => onError(err.message || String(err));
  const genes = h("datalist#panel-genes", {}, ...viewer.dataset.genes.slice(0, 20000).map((g) => h("option", { value: g })));
  layer.append(genes);

  function head(p, rect) {
    const el = h("div.panel-head", { "data-panel": p.id, style: { left: `${rect.x}px`, top: `${rect.y}px`, maxWidth: `${rect.width}px` } });
    if (p.id === 0) {
      el.append(h("span.panel-title", { text: `${p.field ?? "—"} · ${p.dim}D${p.embedding ? ` · ${p.embedding}` : ""}` }));
      return el;
    }
    const field = h("select.panel-field", { "aria-label": `Panel ${p.id} colour`, on: { change: (e) => e.target.value && viewer.panels.update(p.id, { field: e.target.value }).catch(fail) } }, ...fieldOptions(viewer, p.field));
    field.value = p.field ?? "";
    const gene = h("input.panel-gene", {
      type: "text",
      list: "panel-genes",
      placeholder: "gene…",
      "aria-label": `Panel ${p.id} gene`,
      on: { change: (e) => e.target.value && viewer.panels.update(p.id, { field: e.target.value.trim() }).catch(fail) },
    });
    const dims = h(
      "select.panel-dim",
      { "aria-label": `Panel ${p.id} dimension`, on: { change: (e) => viewer.panels.update(p.id, { dimension: Number(e.target.value) }).catch(fail) } },
      ...dimsOf(viewer, p.embedding).map((d) => h("option", { value: d, text: `${d}D`, selected: d === p.dim })),
    );
    el.append(field, gene, dims);
    const cat = viewer.embeddings;
    if (cat && cat.entries.length) {
      const emb = h(
        "select.panel-emb",
        { "aria-label": `Panel ${p.id} embedding`, on: { change: (e) => viewer.panels.update(p.id, { embedding: e.target.value }).catch(fail) } },
        ...cat.entries.map((e) => h("option", { value: e.key, text: e.key })),
      );
      emb.value = p.embedding ?? cat.currentKey(p.dim) ?? "";
      el.append(emb);
    }
    el.append(h("button.panel-remove", { type: "button", text: "×", title: "Remove this panel", "aria-label": `Remove panel ${p.id}`, on: { click: () => viewer.panels.remove(p.id).catch(fail) } }));
    return el;
  }

  function render() {
    const split = viewer.scene.split;
    layer.replaceChildren(genes);
    layer.hidden = !split;
    if (!split) return;
    const panels = viewer.panels.describe();
    split.rects.forEach((r) => layer.append(h("div.panel-frame", { style: { left: `${r.x}px`, top: `${r.y}px`, width: `${r.width}px`, height: `${r.height}px` } })));
    panels.forEach((p, i) => split.rects[i] && layer.append(head(p, split.rects[i])));
  }
  viewer.on("panels", render);
  viewer.on("field", () => viewer.panels.split && render());
  viewer.on("embedding", () => viewer.panels.split && render());
  viewer.on("dimension", () => viewer.panels.split && render());
  new ResizeObserver(() => requestAnimationFrame(render)).observe(stage);
  render();
  return { render };
}
