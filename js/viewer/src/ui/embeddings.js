// The embedding picker of the View section (AnnData mode): every usable obsm embedding the
// server lists (app/embeddings.js), switched without reloading fields, genes, filters,
// selection or groups. Export folders and static hosts keep their single embedding set: the
// picker is not shown (the dimension buttons remain).

import { h } from "./dom.js";

/** "X_umap (2D, 3D)". */
export function embeddingOptionText(entry) {
  return `${entry.key} (${entry.dims.map((d) => `${d}D`).join(", ")})`;
}

/** The obsm key shown now (the dataset's own points are named by the key they come from). */
export function shownKey(viewer) {
  return viewer.embedding ?? (viewer.embeddings ? viewer.embeddings.currentKey(viewer.dim) : null);
}

/** The picker row, or null when the viewer has no catalog (export mode). */
export function embeddingPicker(viewer, { onError = () => {} } = {}) {
  const cat = viewer.embeddings;
  if (!cat || !cat.entries.length) return null;
  const select = h(
    "select.emb-pick",
    {
      "aria-label": "Embedding",
      on: {
        change: (e) => viewer.setEmbedding(e.target.value).catch((err) => (onError(err.message || String(err)), mark())),
      },
    },
    ...cat.entries.map((e) => h("option", { value: e.key, text: embeddingOptionText(e) })),
  );
  const mark = () => {
    select.value = shownKey(viewer) ?? "";
  };
  mark();
  viewer.on("embedding", mark);
  viewer.on("dimension", mark);
  return h("label.row", { title: "Any obsm embedding of the AnnData (positions arrive as float32)" }, h("span", { text: "Embedding" }), select);
}
