// Category labels at the category centroids of the embedding. Pure module.
//
// The export stores a centroid per category and dimension in obs_manifest.json (SPEC 2.6.8:
// the mean position after trimming outliers, in the normalised coordinates of points_<d>d.bin).
// A category the manifest has no centroid for (fewer than centroid_min_points cells, or
// centroid_outlier_quantile = null, or the bench dataset) gets the plain mean of its cells.
// Only categories with visible cells are labelled, the largest first, at most LABEL_MAX.

import { categoryCounts } from "../filters/mask.js";

export const LABEL_MAX = 200;

/**
 * @param {{categories: string[], codes: Uint8Array|Uint16Array, centroids?: object}} field
 * @param {1|2|3} dim
 * @param {Float32Array} points the stored embedding of `dim` (stride dim)
 * @param {Uint8Array|null} mask visible cells (null = all)
 * @returns {{text: string, position: number[], count: number}[]} position has 3 components
 *   (1D: y = 0, the middle of the jitter band)
 */
export function centroidLabels(field, dim, points, mask) {
  const k = field.categories.length;
  const counts = categoryCounts(field.codes, k, mask);
  const stored = new Map();
  const list = (field.centroids && field.centroids[String(dim)]) || [];
  for (const c of list) if (c && Array.isArray(c.position) && c.position.length === dim) stored.set(String(c.category), c.position);
  const wanted = [];
  for (let c = 0; c < k; c++) if (counts[c] > 0) wanted.push(c);
  wanted.sort((a, b) => counts[b] - counts[a] || a - b);
  const shown = wanted.slice(0, LABEL_MAX);
  const missing = shown.filter((c) => !stored.has(field.categories[c]));
  const means = missing.length ? categoryMeans(field.codes, k, points, dim) : null;
  return shown.map((c) => {
    const name = field.categories[c];
    const p = stored.get(name) || Array.from(means.subarray(c * dim, c * dim + dim));
    return { text: name, position: [p[0], dim > 1 ? p[1] : 0, dim > 2 ? p[2] : 0], count: counts[c] };
  });
}

/** Mean position of every category's cells: Float64Array(k · dim) (NaN for an empty one). */
export function categoryMeans(codes, k, points, dim) {
  const sums = new Float64Array(k * dim);
  const n = new Float64Array(k);
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    if (c >= k) continue;
    n[c]++;
    for (let a = 0; a < dim; a++) sums[c * dim + a] += points[i * dim + a];
  }
  for (let c = 0; c < k; c++) for (let a = 0; a < dim; a++) sums[c * dim + a] /= n[c];
  return sums;
}
