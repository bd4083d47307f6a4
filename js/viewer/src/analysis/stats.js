// Ranking genes between two groups of cells, as scanpy's `rank_genes_groups` does for one group
// against a reference ("rest" = every other cell): Wilcoxon rank-sum (normal approximation, midranks
// over the union of both groups, optional tie correction), Welch's t-test and
// "t-test_overestim_var"; log fold change from the group means; fraction of cells expressing;
// Benjamini-Hochberg adjusted p-values. Float64 throughout.
//
// Used by the browser's worker on static export folders (no Python). The Wilcoxon ranking sorts
// only the non-zero values of the union (native typed-array sorts, no comparator): the zeros are
// one tie block, so a sparse gene over 100k cells costs one pass and a sort of its non-zeros.
//
// Pure module: no DOM, runs in browsers, workers and node.

import { normalTwoSided, studentTTwoSided } from "./special.js";

/** Statistics a comparison can run (PROTOCOL.md "Compare groups"). */
export const METHODS = Object.freeze(["wilcoxon", "t-test", "t-test_overestim_var"]);

/** Columns of one ranked gene, in the order of the server's `rows` answer. */
export const ROW_COLUMNS = Object.freeze([
  "scores",
  "logfoldchanges",
  "pvals",
  "pct_nz_group",
  "pct_nz_reference",
  "mean_group",
  "mean_reference",
]);

/** Membership codes of `groupMembership`. */
export const IN_GROUP = 1;
export const IN_REFERENCE = 2;

/**
 * Per-cell membership for a comparison: 1 for the group, 2 for the reference, 0 for neither.
 * `reference` null means "rest": every cell not in the group.
 *
 * @param {number} nCells
 * @param {Uint32Array} group cell indices (unique)
 * @param {Uint32Array|null} reference cell indices (unique, disjoint from group) or null
 * @returns {{membership: Uint8Array, n1: number, n2: number}}
 */
export function groupMembership(nCells, group, reference) {
  const membership = new Uint8Array(nCells);
  if (reference === null) membership.fill(IN_REFERENCE);
  else for (let i = 0; i < reference.length; i++) membership[reference[i]] = IN_REFERENCE;
  for (let i = 0; i < group.length; i++) {
    if (reference !== null && membership[group[i]] === IN_REFERENCE) throw new Error(`cell ${group[i]} is in both groups`);
    membership[group[i]] = IN_GROUP;
  }
  const n1 = group.length;
  const n2 = reference === null ? nCells - n1 : reference.length;
  return { membership, n1, n2 };
}

/**
 * log2 fold change of scanpy: log2((expm1(meanGroup) + 1e-9) / (expm1(meanReference) + 1e-9)).
 *
 * @param {number} meanGroup
 * @param {number} meanReference
 * @returns {number}
 */
export function logFoldChange(meanGroup, meanReference) {
  return Math.log2((Math.expm1(meanGroup) + 1e-9) / (Math.expm1(meanReference) + 1e-9));
}

/**
 * Welch's t-test from summary statistics (scipy `ttest_ind_from_stats(equal_var=False)`, as
 * scanpy calls it): t = (m1 − m2) / √(v1/n1 + v2/n2), Welch–Satterthwaite df (NaN df → 1),
 * two-sided p from Student's t. scanpy then sets a NaN score to 0 and a NaN p to 1.
 *
 * @returns {{score: number, pval: number}}
 */
export function welch(mean1, var1, n1, mean2, var2, n2) {
  const vn1 = var1 / n1;
  const vn2 = var2 / n2;
  let df = (vn1 + vn2) ** 2 / (vn1 ** 2 / (n1 - 1) + vn2 ** 2 / (n2 - 1));
  if (Number.isNaN(df)) df = 1;
  const t = (mean1 - mean2) / Math.sqrt(vn1 + vn2);
  const p = studentTTwoSided(t, df);
  return { score: Number.isNaN(t) ? 0 : t, pval: Number.isNaN(p) ? 1 : p };
}

/**
 * Wilcoxon rank-sum z-score from the group's rank sum (scanpy): z = (R1 − n1(N+1)/2) / σ with
 * σ = √(n1·n2·(N+1)/12), times √(1 − Σ(t³−t)/(N³−N)) with tie correction; a NaN score is 0;
 * p = 2·Φ(−|z|).
 *
 * @returns {{score: number, pval: number}}
 */
export function wilcoxonZ(rankSum, n1, n2, tieSum, tieCorrect) {
  const N = n1 + n2;
  const correction = tieCorrect && N >= 2 ? 1 - tieSum / (N * N * N - N) : 1;
  let z = (rankSum - (n1 * (N + 1)) / 2) / Math.sqrt((correction * n1 * n2 * (N + 1)) / 12);
  if (Number.isNaN(z)) z = 0;
  return { score: z, pval: normalTwoSided(z) };
}

/**
 * Reusable buffers for `rankGene` (one per worker): the non-zero values of the union and of the
 * group.
 */
export class RankScratch {
  constructor(nUnion, nGroup) {
    this.union = new Float64Array(nUnion);
    this.group = new Float64Array(nGroup);
  }
}

/**
 * Sum of the group's midranks over the union, and Σ(t³ − t) over the tie blocks, from the sorted
 * non-zero values of the union and of the group plus the count of zeros in each (the zeros are
 * one tie block, placed after the negative values).
 */
export function rankSumSparse(unionSorted, groupSorted, zerosUnion, zerosGroup) {
  const ku = unionSorted.length;
  const kg = groupSorted.length;
  let negatives = 0;
  while (negatives < ku && unionSorted[negatives] < 0) negatives++;
  let rankSum = 0;
  let tieSum = 0;
  let j = 0;
  for (let i = 0; i < ku; ) {
    const v = unionSorted[i];
    let e = i + 1;
    while (e < ku && unionSorted[e] === v) e++;
    const t = e - i;
    const start = i < negatives ? i : i + zerosUnion; // 0-based rank position of the block
    const midrank = start + (t + 1) / 2;
    while (j < kg && groupSorted[j] < v) j++;
    let inGroup = 0;
    while (j < kg && groupSorted[j] === v) {
      inGroup++;
      j++;
    }
    rankSum += inGroup * midrank;
    tieSum += t * t * t - t;
    i = e;
  }
  if (zerosUnion > 0) {
    rankSum += zerosGroup * (negatives + (zerosUnion + 1) / 2);
    tieSum += zerosUnion * zerosUnion * zerosUnion - zerosUnion;
  }
  return { rankSum, tieSum };
}

/**
 * Rank one gene between the groups of `groupMembership`.
 *
 * @param {ArrayLike<number>} values the gene's value per cell (length nCells)
 * @param {{membership: Uint8Array, n1: number, n2: number}} groups
 * @param {{method?: string, tieCorrect?: boolean}} opts
 * @param {RankScratch} [scratch] reused buffers (Wilcoxon)
 * @returns {{scores: number, logfoldchanges: number, pvals: number, pct_nz_group: number,
 *   pct_nz_reference: number, mean_group: number, mean_reference: number}}
 */
export function rankGene(values, groups, { method = "wilcoxon", tieCorrect = false } = {}, scratch = null) {
  const { membership, n1, n2 } = groups;
  const wilcoxon = method === "wilcoxon";
  if (!wilcoxon && method !== "t-test" && method !== "t-test_overestim_var") throw new Error(`unknown method ${JSON.stringify(method)}`);
  if (wilcoxon && !scratch) scratch = new RankScratch(n1 + n2, n1);
  let sum1 = 0, sq1 = 0, nz1 = 0;
  let sum2 = 0, sq2 = 0, nz2 = 0;
  let ku = 0;
  let hasNaN = false;
  const union = wilcoxon ? scratch.union : null;
  const grp = wilcoxon ? scratch.group : null;
  for (let i = 0; i < membership.length; i++) {
    const m = membership[i];
    if (m === 0) continue;
    const v = values[i];
    if (m === IN_GROUP) {
      sum1 += v;
      sq1 += v * v;
      if (v !== 0) {
        if (wilcoxon) {
          grp[nz1] = v;
          union[ku++] = v;
        }
        nz1++;
      }
    } else {
      sum2 += v;
      sq2 += v * v;
      if (v !== 0) {
        if (wilcoxon) union[ku++] = v;
        nz2++;
      }
    }
    if (v !== v) hasNaN = true;
  }
  const mean1 = sum1 / n1;
  const mean2 = sum2 / n2;
  const out = {
    scores: 0,
    logfoldchanges: logFoldChange(mean1, mean2),
    pvals: 1,
    pct_nz_group: nz1 / n1,
    pct_nz_reference: nz2 / n2,
    mean_group: mean1,
    mean_reference: mean2,
  };
  if (wilcoxon) {
    if (hasNaN) return out; // ranks of NaN are NaN: score 0, p 1 (as scanpy)
    const u = union.subarray(0, ku).sort();
    const g = grp.subarray(0, nz1).sort();
    const { rankSum, tieSum } = rankSumSparse(u, g, n1 + n2 - ku, n1 - nz1);
    const r = wilcoxonZ(rankSum, n1, n2, tieSum, tieCorrect);
    out.scores = r.score;
    out.pvals = r.pval;
    return out;
  }
  // scanpy's _get_mean_var: mean of squares minus squared mean, times n/(n − 1) (ddof = 1)
  const var1 = n1 > 1 ? ((sq1 / n1 - mean1 * mean1) * n1) / (n1 - 1) : 0;
  const var2 = n2 > 1 ? ((sq2 / n2 - mean2 * mean2) * n2) / (n2 - 1) : 0;
  const nRef = method === "t-test_overestim_var" ? n1 : n2;
  const r = welch(mean1, var1, n1, mean2, var2, nRef);
  out.scores = r.score;
  out.pvals = r.pval;
  return out;
}

/**
 * Benjamini-Hochberg adjusted p-values (statsmodels `multipletests(method="fdr_bh")`): NaN p
 * counts as 1; p·m/rank, made monotone from the largest p down, capped at 1.
 *
 * @param {ArrayLike<number>} pvals
 * @returns {Float64Array} in the order of `pvals`
 */
export function benjaminiHochberg(pvals) {
  const m = pvals.length;
  const p = Float64Array.from(pvals, (v) => (Number.isNaN(v) ? 1 : v));
  const order = Uint32Array.from({ length: m }, (_, i) => i).sort((a, b) => p[a] - p[b] || a - b);
  const adj = new Float64Array(m);
  let running = Infinity;
  for (let r = m - 1; r >= 0; r--) {
    const i = order[r];
    running = Math.min(running, (p[i] * m) / (r + 1));
    adj[i] = Math.min(running, 1);
  }
  return adj;
}

/**
 * Indices ordered by score, highest first (NaN last; ties keep gene order).
 *
 * @param {ArrayLike<number>} scores
 * @returns {Uint32Array}
 */
export function orderByScore(scores) {
  const key = (v) => (Number.isNaN(v) ? -Infinity : v);
  return Uint32Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => key(scores[b]) - key(scores[a]) || a - b);
}

/**
 * The statistic in words (the wording of python's `cellucid.analysis.statistics.describe`).
 *
 * @param {string} method
 * @param {boolean} tieCorrect
 * @param {boolean} [quantized] the values were quantised by the export
 * @returns {string}
 */
export function describeStatistic(method, tieCorrect, quantized = false) {
  let text;
  if (method === "wilcoxon") text = `Wilcoxon rank-sum test (normal approximation), ${tieCorrect ? "tie-corrected" : "no tie correction"}`;
  else if (method === "t-test") text = "Welch's t-test";
  else text = "Welch's t-test, reference variance over-estimated (scanpy t-test_overestim_var)";
  text += "; Benjamini-Hochberg adjusted p-values; as scanpy.tl.rank_genes_groups";
  if (quantized) text += "; approximate: quantised values";
  return text;
}
