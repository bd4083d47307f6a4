// Hover tooltip: the cell's obs name (barcode) when the server has names (data/obsnames.js,
// fetched on the first hover of each block of cells), its row number, and its value of the
// active field.

import { h, fmtInt, fmtNum } from "./dom.js";

export function installTooltip(viewer, { tooltip, stage, canvasHost }) {
  let last = null; // {cell, x, y}
  const show = ({ cell, x, y }) => {
    last = cell === null ? null : { cell, x, y };
    if (cell === null || viewer.tool === "lasso") {
      tooltip.hidden = true;
      return;
    }
    const f = viewer.field;
    const v = viewer.cellValue(cell);
    const name = viewer.cellName(cell);
    tooltip.replaceChildren(
      name !== null ? h("div.tt-name", { text: name }) : null,
      h(name !== null ? "div.tt-cell.muted" : "div.tt-cell", { text: `Cell ${fmtInt(cell)}` }),
      f ? h("div", {}, h("span.muted", { text: `${f.key}: ` }), h("strong", { text: typeof v === "number" ? (Number.isFinite(v) ? fmtNum(v) : "missing") : String(v) })) : null,
    );
    tooltip.hidden = false;
    const w = stage.clientWidth;
    tooltip.style.left = `${Math.min(x + 14, w - tooltip.offsetWidth - 4)}px`;
    tooltip.style.top = `${y + 14}px`;
  };
  viewer.on("pointer", show);
  // the names of a block arrived while the pointer rests on one of its cells
  viewer.on("obsnames", () => last && !tooltip.hidden && show(last));
  canvasHost.addEventListener("pointerleave", () => {
    tooltip.hidden = true;
    last = null;
    viewer.handleHover(null);
  });
}
