// The "Category labels" check box of the View section: labels at the category centroids of
// the active categorical field (Viewer.setLabels; drawn by render/scene.js).

import { h } from "./dom.js";

export function labelsToggle(viewer) {
  const box = h("input", { type: "checkbox", checked: viewer.labelsOn, on: { change: (e) => viewer.setLabels(e.target.checked) } });
  const row = h("label.row.check", { title: "Names of the categories at their centroids (categorical colouring)" }, box, h("span", { text: "Category labels" }));
  const sync = () => {
    const cat = !!(viewer.field && viewer.field.kind === "category");
    box.disabled = !cat;
    row.classList.toggle("off", !cat);
  };
  viewer.on("field", sync);
  viewer.on("labels", (on) => (box.checked = on));
  sync();
  return row;
}
