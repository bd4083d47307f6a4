// Gene search with autocomplete over all gene names (prefix matches first, then substrings).

import { h, fmtInt } from "./dom.js";

/**
 * `label`: the input's accessible name; `prefix` goes before the suggestion list's and the
 * status line's class names ("suggest", "gene-status"), so that several gene searches in the
 * panel stay apart ("filter-" for the Filters section).
 */
export function geneSearch(genes, onPick, { label = "Colour by gene", prefix = "" } = {}) {
  const lower = genes.map((g) => g.toLowerCase());
  const input = h("input.gene-input", {
    type: "search",
    placeholder: genes.length ? `Search ${fmtInt(genes.length)} genes…` : "No genes in this dataset",
    disabled: !genes.length,
    autocomplete: "off",
    spellcheck: false,
    role: "combobox",
    "aria-label": label,
    "aria-autocomplete": "list",
  });
  const list = h(`ul.${prefix}suggest`, { role: "listbox", hidden: true });
  const status = h(`div.${prefix}gene-status.muted.small`, { "aria-live": "polite" });
  let items = [];
  let active = -1;

  const search = (q) => {
    q = q.trim().toLowerCase();
    if (!q) return [];
    const pre = [];
    const sub = [];
    for (let i = 0; i < lower.length && pre.length < 40; i++) {
      const s = lower[i];
      if (s.startsWith(q)) pre.push(i);
      else if (sub.length < 40 && s.includes(q)) sub.push(i);
    }
    pre.sort((a, b) => lower[a].length - lower[b].length || (lower[a] < lower[b] ? -1 : 1));
    return pre.concat(sub).slice(0, 40);
  };
  const render = () => {
    list.replaceChildren(...items.map((gi, j) => h("li", { role: "option", "aria-selected": j === active ? "true" : "false", class: j === active ? "active" : "", text: genes[gi], on: { mousedown: (e) => (e.preventDefault(), pick(gi)) } })));
    list.hidden = items.length === 0;
  };
  const pick = (gi) => {
    input.value = genes[gi];
    items = [];
    render();
    onPick(genes[gi]);
  };
  input.addEventListener("input", () => {
    items = search(input.value);
    active = items.length ? 0 : -1;
    render();
    status.textContent = input.value.trim() && !items.length ? "no matching gene" : "";
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      if (!items.length) return;
      active = (active + (e.key === "ArrowDown" ? 1 : -1) + items.length) % items.length;
      render();
    } else if (e.key === "Enter") {
      e.preventDefault();
      if (active >= 0) pick(items[active]);
      else {
        const exact = lower.indexOf(input.value.trim().toLowerCase());
        if (exact >= 0) pick(exact);
      }
    } else if (e.key === "Escape") {
      items = [];
      render();
      e.stopPropagation();
    }
  });
  input.addEventListener("blur", () => setTimeout(() => ((items = []), render()), 100));
  const el = h("div.gene-search", {}, input, list, status);
  el.setStatus = (text) => (status.textContent = text);
  el.setValue = (v) => (input.value = v);
  return el;
}
