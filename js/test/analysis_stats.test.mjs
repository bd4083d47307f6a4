// The browser's gene ranking (static export folders): special functions against scipy values,
// the sparse rank sum against plain midranks, Benjamini-Hochberg against statsmodels, and whole
// genes against scanpy's rank_genes_groups (when the repository's Python is there).
import assert from "node:assert/strict";
import { test } from "node:test";
import { betaIncReg, erfc, lgamma, normalTwoSided, studentTTwoSided } from "../viewer/src/analysis/special.js";
import {
  benjaminiHochberg,
  groupMembership,
  logFoldChange,
  orderByScore,
  rankGene,
  RankScratch,
  rankSumSparse,
} from "../viewer/src/analysis/stats.js";
import { NO_PYTHON, rng, runPython } from "./helpers.mjs";

function close(actual, expected, rel, what) {
  if (expected === null || Number.isNaN(expected)) {
    assert.ok(actual === null || Number.isNaN(actual), `${what}: expected NaN, got ${actual}`);
    return;
  }
  const err = Math.abs(actual - expected) / Math.max(Math.abs(expected), 1e-300);
  assert.ok(err <= rel || Math.abs(actual - expected) < 1e-300, `${what}: ${actual} vs ${expected} (relative error ${err})`);
}

test("two-sided normal p-values match scipy 2·norm.sf, deep tails included", () => {
  // 2 * scipy.stats.norm.sf(z)
  const cases = [
    [0.1, 0.920344325445942],
    [1, 0.31731050786291415],
    [1.96, 0.04999579029644087],
    [3, 0.0026997960632601866],
    [5, 5.733031437583866e-7],
    [10, 1.523970604832094e-23],
    [20, 5.507248237212311e-89],
    [30, 9.813427854295816e-198],
  ];
  for (const [z, p] of cases) {
    close(normalTwoSided(z), p, 1e-12, `z=${z}`);
    close(normalTwoSided(-z), p, 1e-12, `z=-${z}`);
  }
  assert.equal(normalTwoSided(0), 1);
  assert.equal(normalTwoSided(40), 0);
  assert.ok(Number.isNaN(normalTwoSided(NaN)));
  close(erfc(-1), 2 - 0.15729920705028513, 1e-15, "erfc(-1)");
});

test("log-gamma, incomplete beta and Student t p-values match scipy", () => {
  for (const [x, v] of [
    [0.5, 0.5723649429247001],
    [1, 0],
    [2.5, 0.2846828704729192],
    [10, 12.801827480081469],
    [50, 144.56574394634487],
  ]) {
    assert.ok(Math.abs(lgamma(x) - v) < 1e-13 * Math.max(1, v), `lgamma(${x})`);
  }
  // scipy.special.betainc(a, b, x)
  for (const [a, b, x, v] of [
    [2, 3, 0.4, 0.5247999999999999],
    [0.5, 0.5, 0.1, 0.20483276469913345],
    [10, 0.5, 0.99, 0.6579281751567845],
    [50, 2, 0.9, 0.030922651243920716],
  ]) {
    close(betaIncReg(a, b, x), v, 1e-12, `I_${x}(${a}, ${b})`);
  }
  // 2 * scipy.stats.t.sf(t, df)
  for (const [t, df, p] of [
    [0.5, 1, 0.7048327646991335],
    [2, 3, 0.13932596855884305],
    [2.5, 10, 0.03144684423660882],
    [10, 5, 0.00017094757574296363],
    [3, 1000, 0.0027667090442381925],
    [5, 50000, 5.752385056941256e-7],
    [40, 30, 1.3726045194406417e-27],
    [8, 99999.5, 1.2573920539461188e-15],
  ]) {
    close(studentTTwoSided(t, df), p, 1e-11, `t=${t} df=${df}`);
    close(studentTTwoSided(-t, df), p, 1e-11, `t=-${t} df=${df}`);
  }
  assert.equal(studentTTwoSided(Infinity, 4), 0);
  assert.equal(studentTTwoSided(0, 4), 1);
});

/** Midranks of `values` (1-based, ties averaged): the plain definition. */
function midranks(values) {
  const order = [...values.keys()].sort((a, b) => values[a] - values[b]);
  const ranks = new Float64Array(values.length);
  for (let i = 0; i < order.length; ) {
    let e = i + 1;
    while (e < order.length && values[order[e]] === values[order[i]]) e++;
    for (let k = i; k < e; k++) ranks[order[k]] = (i + 1 + e) / 2;
    i = e;
  }
  return ranks;
}

test("the sparse rank sum equals midranks over the whole union, negatives and ties included", () => {
  const random = rng(5);
  for (let trial = 0; trial < 40; trial++) {
    const n = 5 + Math.floor(random() * 60);
    const values = Array.from({ length: n }, () => (random() < 0.5 ? 0 : Math.round((random() * 6 - 1.5) * 2) / 2));
    const inGroup = values.map(() => random() < 0.4);
    const ranks = midranks(values);
    let expected = 0;
    let ties = 0;
    const counts = new Map();
    values.forEach((v, i) => {
      if (inGroup[i]) expected += ranks[i];
      counts.set(v, (counts.get(v) || 0) + 1);
    });
    for (const t of counts.values()) ties += t ** 3 - t;
    const nz = values.filter((v) => v !== 0);
    const nzGroup = values.filter((v, i) => v !== 0 && inGroup[i]);
    const zerosGroup = values.filter((v, i) => v === 0 && inGroup[i]).length;
    const got = rankSumSparse(Float64Array.from(nz).sort(), Float64Array.from(nzGroup).sort(), n - nz.length, zerosGroup);
    close(got.rankSum, expected, 1e-12, `rank sum (trial ${trial})`);
    assert.equal(got.tieSum, ties, `tie sum (trial ${trial})`);
  }
});

test("Benjamini-Hochberg matches statsmodels fdr_bh (NaN as 1, capped at 1)", () => {
  const adj = benjaminiHochberg([0.01, 0.04, 0.03, 0.005, 0.5, NaN, 0.9]);
  const expected = [0.035, 0.07, 0.07, 0.035, 0.7, 1, 1];
  expected.forEach((v, i) => close(adj[i], v, 1e-15, `adj[${i}]`));
  assert.deepEqual([...benjaminiHochberg([])], []);
  assert.deepEqual([...benjaminiHochberg([2])], [1]);
});

test("order by score puts the highest first, NaN last, ties in gene order", () => {
  assert.deepEqual([...orderByScore([1, NaN, 3, 1, -Infinity, Infinity])], [5, 2, 0, 3, 1, 4]);
});

test("a small comparison by hand: Wilcoxon, t-test and fold change", () => {
  // 5 cells; group {0, 2}, reference {1, 3}; cell 4 is in neither.
  const groups = groupMembership(5, Uint32Array.of(0, 2), Uint32Array.of(1, 3));
  assert.deepEqual([...groups.membership], [1, 2, 1, 2, 0]);
  const gene = Float32Array.of(0, 1, 2, 0, 3);
  const w = rankGene(gene, groups, { method: "wilcoxon", tieCorrect: true });
  // union values [0, 1, 2, 0]: ranks 1.5, 3, 4, 1.5; R1 = 1.5 + 4 = 5.5; scanpy: 0.40824830532073975
  close(w.scores, 0.40824830532073975, 1e-7, "wilcoxon score");
  close(w.pvals, 0.6830913983096087, 1e-9, "wilcoxon p");
  close(w.logfoldchanges, 1.4052960872650146, 1e-7, "lfc");
  assert.equal(w.pct_nz_group, 0.5);
  assert.equal(w.pct_nz_reference, 0.5);
  assert.equal(w.mean_group, 1);
  assert.equal(w.mean_reference, 0.5);
  // against the rest (cells 1, 3, 4); scanpy: -0.25, 0.822206065314767
  const rest = groupMembership(5, Uint32Array.of(0, 2), null);
  const t = rankGene(Float32Array.of(0, 1, 2, 0, 3), rest, { method: "t-test" });
  close(t.scores, -0.25, 1e-12, "t score");
  close(t.pvals, 0.822206065314767, 1e-9, "t p");
  close(logFoldChange(0, 0), 0, 0, "lfc of zeros");
  assert.throws(() => groupMembership(3, Uint32Array.of(1), Uint32Array.of(1, 2)), /both groups/);
});

/** A cells × genes matrix with many zeros, ties, negative values and degenerate genes. */
function matrix(nCells, nGenes, seed) {
  const random = rng(seed);
  const X = Array.from({ length: nCells }, () => new Float32Array(nGenes));
  for (let g = 0; g < nGenes; g++) {
    const density = [0.05, 0.3, 0.7, 1][g % 4];
    for (let c = 0; c < nCells; c++) {
      if (g === 0) continue; // all zeros
      if (g === 1) X[c][g] = 2.5; // constant
      else if (random() < density) {
        const shift = c % 7 === 0 ? 1.5 : 0; // some signal
        const v = g % 5 === 0 ? Math.round((random() * 4 - 2) * 4) / 4 : random() * 3 + shift;
        X[c][g] = g % 3 === 0 ? Math.round(v * 2) / 2 : v; // ties in some genes
      }
    }
  }
  return X;
}

test("whole genes match scanpy rank_genes_groups (every method, rest and a reference)", { skip: NO_PYTHON }, () => {
  const nCells = 300;
  const nGenes = 24;
  const X = matrix(nCells, nGenes, 11);
  const random = rng(12);
  const group = [];
  const reference = [];
  for (let c = 0; c < nCells; c++) {
    if (c % 7 === 0 || random() < 0.1) group.push(c);
    else if (random() < 0.5) reference.push(c);
  }
  const cases = [
    ["wilcoxon", false, null],
    ["wilcoxon", true, null],
    ["wilcoxon", true, reference],
    ["t-test", false, null],
    ["t-test", false, reference],
    ["t-test_overestim_var", false, null],
    ["t-test_overestim_var", false, reference],
  ];
  const rowsX = X.map((row) => Array.from(row));
  const queries = cases.map(([method, tieCorrect, ref]) => ({ X: rowsX, group, reference: ref, method, tie_correct: tieCorrect }));
  const answers = JSON.parse(runPython("rank_genes.py", [], JSON.stringify(queries)));
  cases.forEach(([method, tieCorrect, ref], k) => {
    const what = `${method}${tieCorrect ? " (tie correction)" : ""} vs ${ref ? "reference" : "rest"}`;
    const expected = answers[k];
    const groups = groupMembership(nCells, Uint32Array.from(group), ref ? Uint32Array.from(ref) : null);
    const scratch = new RankScratch(groups.n1 + groups.n2, groups.n1);
    const rows = [];
    for (let g = 0; g < nGenes; g++) rows.push(rankGene(Float32Array.from(X, (row) => row[g]), groups, { method, tieCorrect }, scratch));
    const adj = benjaminiHochberg(rows.map((r) => r.pvals));
    rows.forEach((r, g) => {
      // scanpy stores scores and fold changes as float32
      close(r.scores, expected.scores[g], 2e-6, `${what}: score of gene ${g}`);
      close(r.logfoldchanges, expected.logfoldchanges[g], 2e-6, `${what}: lfc of gene ${g}`);
      // p from the float64 score: its own accuracy, loosened by the float32 score we compare with
      close(r.pvals, expected.pvals[g], 1e-6, `${what}: p of gene ${g}`);
      close(adj[g], expected.pvals_adj[g], 1e-6, `${what}: adjusted p of gene ${g}`);
      close(r.pct_nz_group, expected.pct_nz_group[g], 1e-12, `${what}: pct A of gene ${g}`);
      close(r.pct_nz_reference, expected.pct_nz_reference[g], 1e-12, `${what}: pct B of gene ${g}`);
    });
  });
});
