"""From per-gene sums and rank sums to scanpy's two-group statistics.

Each function mirrors the arithmetic of ``scanpy.tl.rank_genes_groups`` (scanpy 1.10-1.11,
``_RankGenes``) for one group against a reference or the rest, down to the order of the
floating-point operations where that order changes the last bits, so that our tables agree
with scanpy's to float precision.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import stats

from .kernels import NNZ_G, NNZ_R, RANKSUM_G, SQ_G, SQ_R, SUM_G, SUM_R, TIES

Method = Literal["wilcoxon", "t-test", "t-test_overestim_var"]


def mean_var(sums: np.ndarray, squares: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased variance from float64 sums of values and of float32 squares
    (scanpy's ``_get_mean_var``)."""
    mean = sums / n
    var = squares / n - mean**2
    if n != 1:
        var *= n / (n - 1)
    return mean, var


def t_test(
    mean_g: np.ndarray,
    var_g: np.ndarray,
    n_group: int,
    mean_r: np.ndarray,
    var_r: np.ndarray,
    n_reference: int,
    method: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Welch's t-test from summary statistics; ``"t-test_overestim_var"`` gives the
    reference the group's size (scanpy's variance over-estimate for small groups)."""
    ns_rest = n_reference if method == "t-test" else n_group
    with np.errstate(invalid="ignore", divide="ignore"):
        scores, pvals = stats.ttest_ind_from_stats(
            mean1=mean_g,
            std1=np.sqrt(var_g),
            nobs1=n_group,
            mean2=mean_r,
            std2=np.sqrt(var_r),
            nobs2=ns_rest,
            equal_var=False,
        )
    scores = np.asarray(scores, dtype=np.float64)
    pvals = np.asarray(pvals, dtype=np.float64)
    scores[np.isnan(scores)] = 0
    pvals[np.isnan(pvals)] = 1
    return scores, pvals


def wilcoxon(
    rank_sums: np.ndarray,
    ties: np.ndarray,
    n_group: int,
    n_reference: int,
    *,
    rest: bool,
    tie_correct: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Wilcoxon rank-sum z-scores (normal approximation) and two-sided p-values."""
    n_union = n_group + n_reference
    if tie_correct:
        size = np.float64(n_union)
        coef = 1.0 - ties / (size**3 - size) if n_union >= 2 else np.ones_like(ties)
    else:
        coef = 1
    with np.errstate(invalid="ignore", divide="ignore"):
        if rest:
            std_dev = np.sqrt(coef * n_group * (n_union - n_group) * (n_union + 1) / 12.0)
            scores = (rank_sums - (n_group * (n_union + 1) / 2.0)) / std_dev
        else:
            std_dev = np.sqrt(coef * n_group * n_reference * (n_group + n_reference + 1) / 12.0)
            scores = (rank_sums - (n_group * ((n_group + n_reference + 1) / 2.0))) / std_dev
    scores = np.asarray(scores, dtype=np.float64)
    scores[np.isnan(scores)] = 0
    pvals = 2 * stats.distributions.norm.sf(np.abs(scores))
    return scores, pvals


def log_fold_change(mean_g: np.ndarray, mean_r: np.ndarray, base: float | None) -> np.ndarray:
    """log2 of the ratio of the groups' means back on the count scale (``expm1``)."""
    if base is None:
        expm1 = np.expm1
    else:
        factor = np.log(base)

        def expm1(x: np.ndarray) -> np.ndarray:
            return np.expm1(x * factor)

    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log2((expm1(mean_g) + 1e-9) / (expm1(mean_r) + 1e-9))


def benjamini_hochberg(pvals: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (statsmodels' ``fdr_bh``), capped at 1."""
    p = np.asarray(pvals, dtype=np.float64).copy()
    p[np.isnan(p)] = 1
    n = p.size
    if n == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] / (np.arange(1, n + 1) / float(n))
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    adjusted[adjusted > 1] = 1
    out = np.empty(n, dtype=np.float64)
    out[order] = adjusted
    return out


def gene_statistics(
    block: np.ndarray,
    n_group: int,
    n_reference: int,
    method: str,
    *,
    rest: bool,
    tie_correct: bool,
    log1p_base: float | None,
) -> dict[str, np.ndarray]:
    """Every per-gene column but ``pvals_adj`` from the kernels' sums (see
    :mod:`cellucid.analysis.kernels`)."""
    mean_g, var_g = mean_var(block[:, SUM_G], block[:, SQ_G], n_group)
    mean_r, var_r = mean_var(block[:, SUM_R], block[:, SQ_R], n_reference)
    if method == "wilcoxon":
        scores, pvals = wilcoxon(
            block[:, RANKSUM_G],
            block[:, TIES],
            n_group,
            n_reference,
            rest=rest,
            tie_correct=tie_correct,
        )
    else:
        scores, pvals = t_test(mean_g, var_g, n_group, mean_r, var_r, n_reference, method)
    return {
        "scores": scores,
        "logfoldchanges": log_fold_change(mean_g, mean_r, log1p_base),
        "pvals": pvals,
        "pct_nz_group": block[:, NNZ_G] / n_group,
        "pct_nz_reference": block[:, NNZ_R] / n_reference,
        "mean_group": mean_g,
        "mean_reference": mean_r,
    }


def describe(method: str, tie_correct: bool, quantized: bool = False) -> str:
    """The statistic in words, for tables and the viewer."""
    if method == "wilcoxon":
        text = "Wilcoxon rank-sum test (normal approximation), " + (
            "tie-corrected" if tie_correct else "no tie correction"
        )
    elif method == "t-test":
        text = "Welch's t-test"
    else:
        text = "Welch's t-test, reference variance over-estimated (scanpy t-test_overestim_var)"
    text += "; Benjamini-Hochberg adjusted p-values; as scanpy.tl.rank_genes_groups"
    if quantized:
        text += "; approximate: the export quantised the values"
    return text
