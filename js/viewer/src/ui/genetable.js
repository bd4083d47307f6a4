// The ranked gene table of a comparison: sortable by every column (click a header; again to
// reverse), the first rows shown with "show more", a row click picks the gene.

import { h, fmtInt } from "./dom.js";

export const TABLE_COLUMNS = [
  { key: "names", label: "Gene", title: "Gene (click a row to colour the embedding by it)", descFirst: false },
  { key: "logfoldchanges", label: "log2 FC", title: "log2 fold change of the mean expression, A over B", descFirst: true },
  { key: "scores", label: "Score", title: "Test statistic (z for Wilcoxon, t for t-tests); the ranking", descFirst: true },
  { key: "pvals_adj", label: "Adj. p", title: "Benjamini-Hochberg adjusted p-value (known once every gene is done)", descFirst: false },
  { key: "pct_nz_group", label: "% A", title: "Cells of A expressing the gene", descFirst: true },
  { key: "pct_nz_reference", label: "% B", title: "Cells of B expressing the gene", descFirst: true },
];
const PAGE = 100;

function pValue(v) {
  if (!Number.isFinite(v)) return "…";
  if (v === 0) return "0";
  return v < 1e-3 ? v.toExponential(1) : v.toFixed(3);
}

const percent = (v) => (Number.isFinite(v) ? `${(v * 100).toFixed(v < 0.1 && v > 0 ? 1 : 0)}%` : "–");
const number = (v) => (Number.isNaN(v) ? "–" : Number.isFinite(v) ? String(Number(v.toPrecision(3))) : String(v));

function cell(key, table, i) {
  const v = key === "names" ? table.names[i] : table.columns[key][i];
  if (key === "names") return v;
  if (key === "pvals_adj") return pValue(v);
  if (key === "pct_nz_group" || key === "pct_nz_reference") return percent(v);
  return key === "logfoldchanges" && Number.isFinite(v) ? v.toFixed(2) : number(v);
}

/**
 * @param {{onPick: (gene: string) => void}} opts
 * @returns {HTMLElement & {update: (cmp: object|null) => void, setActive: (gene: string|null) => void, sort: object}}
 */
export function geneTable({ onPick }) {
  const sort = { key: "scores", desc: true };
  let limit = PAGE;
  let cmp = null;
  let active = null;
  const head = h("tr");
  const body = h("tbody");
  const more = h("button.link.cmp-more", { type: "button", hidden: true, on: { click: () => ((limit += PAGE), render()) } });
  const el = h("div.cmp-table-box", {}, h("table.cmp-table", {}, h("thead", {}, head), body), more);

  const headers = TABLE_COLUMNS.map((c) =>
    h(
      "th",
      { scope: "col", title: c.title, "data-key": c.key, class: c.key === "names" ? "" : "num" },
      h(
        "button.th-sort",
        {
          type: "button",
          on: {
            click: () => {
              if (sort.key === c.key) sort.desc = !sort.desc;
              else Object.assign(sort, { key: c.key, desc: c.descFirst });
              render();
            },
          },
        },
        c.label,
      ),
    ),
  );
  head.append(...headers);

  function render() {
    headers.forEach((th, k) => {
      const on = TABLE_COLUMNS[k].key === sort.key;
      th.setAttribute("aria-sort", on ? (sort.desc ? "descending" : "ascending") : "none");
      th.classList.toggle("sorted", on);
    });
    const table = cmp && cmp.result;
    if (!table || !table.count) {
      body.replaceChildren();
      more.hidden = true;
      return;
    }
    const order = table.order(sort.key, sort.desc);
    const shown = Math.min(limit, order.length);
    const rows = [];
    for (let r = 0; r < shown; r++) {
      const i = order[r];
      const name = table.names[i];
      const tr = h("tr.cmp-row", { "data-gene": name, tabindex: 0, title: `Colour by ${name}`, on: { click: () => onPick(name), keydown: (e) => e.key === "Enter" && onPick(name) } });
      if (name === active) tr.classList.add("active");
      for (const c of TABLE_COLUMNS) tr.append(h(c.key === "names" ? "td.gene" : "td.num", { text: cell(c.key, table, i) }));
      rows.push(tr);
    }
    body.replaceChildren(...rows);
    more.hidden = shown >= order.length;
    more.textContent = `show ${fmtInt(Math.min(PAGE, order.length - shown))} more of ${fmtInt(order.length - shown)}`;
  }

  el.update = (next) => {
    if (next !== cmp) limit = PAGE;
    cmp = next;
    render();
  };
  el.setActive = (gene) => {
    active = gene;
    for (const tr of body.children) tr.classList.toggle("active", tr.dataset.gene === gene);
  };
  el.sort = sort;
  render();
  return el;
}
