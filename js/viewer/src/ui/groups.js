// The Groups section of the side panel: named highlight groups (editable name and colour, a
// visibility toggle, cell count, delete), new groups from the selection or from a category of
// the coloured field, and Annotate (the groups as a new categorical field).

import { h, fmtInt } from "./dom.js";

/**
 * @param {import("../app/viewer.js").Viewer} viewer
 * @param {{section: Function}} opts
 * @returns {HTMLElement} the section
 */
export function groupsSection(viewer, { section }) {
  const status = h("div.small.grp-status", { "aria-live": "polite" });
  const attempt = (fn) =>
    Promise.resolve()
      .then(fn)
      .then(
        () => (status.textContent = ""),
        (err) => (status.textContent = err.message || String(err)),
      );

  // ---- new groups
  const fromSelection = h("button.btn", {
    type: "button",
    text: "From selection",
    "data-action": "group-from-selection",
    title: "A new group of the selected cells",
    disabled: true,
    on: { click: () => attempt(() => viewer.groupFromSelection()) },
  });
  viewer.on("selectionchange", ({ cells }) => (fromSelection.disabled = !cells.length));
  const category = h("select.grp-category", { "aria-label": "Category for a new group" });
  const fromCategory = h("button.btn", {
    type: "button",
    text: "Add",
    "data-action": "group-from-category",
    title: "A new group of the cells of this category",
    on: { click: () => attempt(() => viewer.groupFromCategory(category.value)) },
  });
  const categoryRow = h("div.row", {}, h("span", { text: "From category" }), category, fromCategory);
  const showCategories = () => {
    const f = viewer.field;
    categoryRow.hidden = !f || f.kind !== "category";
    if (categoryRow.hidden) return;
    category.replaceChildren(...f.categories.map((c) => h("option", { value: c, text: c })));
  };
  viewer.on("field", showCategories);
  showCategories();

  // ---- the list
  const list = h("ul.hl-list.grp-list", { "aria-label": "Groups" });
  const row = (g) =>
    h(
      "li.hl-row.grp-row",
      { "data-group": g.id, "data-visible": String(g.visible !== false) },
      h("input.grp-visible", {
        type: "checkbox",
        checked: g.visible !== false,
        title: "Show or hide this group",
        "aria-label": `Show ${g.label}`,
        on: { change: (e) => attempt(() => viewer.updateGroup(g.id, { visible: e.target.checked })) },
      }),
      h("input.color.grp-color", { type: "color", value: g.color, "aria-label": `Colour of ${g.label}`, on: { change: (e) => attempt(() => viewer.updateGroup(g.id, { color: e.target.value })) } }),
      h("input.grp-name", {
        type: "text",
        value: g.label,
        "aria-label": `Name of ${g.label}`,
        on: {
          change: (e) => attempt(() => viewer.updateGroup(g.id, { name: e.target.value })).then(() => (e.target.value = g.label)),
          keydown: (e) => e.key === "Enter" && e.target.blur(),
        },
      }),
      h("span.legend-count.grp-count", { text: fmtInt(g.cells.length) }),
      h("button.x", { type: "button", text: "×", title: "Delete this group", "aria-label": `Delete ${g.label}`, on: { click: () => viewer.removeHighlight(g.id) } }),
    );

  // ---- annotate
  const fieldName = h("input.grp-field-name", { type: "text", value: "annotation", "aria-label": "Name of the annotation field" });
  const annotateBtn = h("button.btn.primary", {
    type: "button",
    text: "Annotate",
    "data-action": "annotate",
    title: "Turn the groups into a categorical field (the rest: unassigned)",
    on: { click: () => attempt(() => viewer.annotate(fieldName.value)) },
  });
  const annotateRow = h("div.row", {}, fieldName, annotateBtn);

  const clearAll = h("button.link", { type: "button", text: "clear all", on: { click: () => viewer.clearHighlights() } });
  const render = () => {
    list.replaceChildren(...viewer.highlights.map(row));
    annotateRow.hidden = clearAll.hidden = !viewer.highlights.length;
  };
  viewer.on("highlights", render);
  render();

  const sec = section("Groups", h("div.row", {}, fromSelection), categoryRow, list, annotateRow, status);
  sec.classList.add("grp-sec");
  sec.querySelector("h2").append(clearAll);
  return sec;
}
