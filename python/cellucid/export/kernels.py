"""Numba kernels of the export's per-cell passes (trimmed category centroids, SPEC §2.6.8).

A server opening a ten-million-cell file computes the centroids of every categorical field
in every dimension before it can answer ``obs_manifest.json``: numpy needs a dozen passes
over the cells per (field, dimension) for that (sums per column, distances per column, a
histogram, gathers); these kernels need three, fused, and release the GIL so that the
caller's thread pool runs the (field, dimension) jobs side by side.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def _group_sums(codes: np.ndarray, points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    n, d = points.shape
    sums = np.zeros((k, d), dtype=np.float64)
    counts = np.zeros(k, dtype=np.int64)
    for i in range(n):
        c = codes[i]
        if c < 0:
            continue
        counts[c] += 1
        for j in range(d):
            sums[c, j] += points[i, j]
    return sums, counts


@numba.njit(nogil=True, cache=True)
def _select(a: np.ndarray, kth: int) -> float:
    """Reorder ``a`` in place so that ``a[kth]`` is its ``kth`` smallest value, every value
    before it ``<=`` and every value after it ``>=`` (quickselect, median-of-three pivots);
    returns ``a[kth]``. Small on purpose: numpy's partition costs seconds to compile."""
    lo, hi = 0, a.size - 1
    while hi > lo:
        mid = (lo + hi) // 2
        if a[mid] < a[lo]:
            a[mid], a[lo] = a[lo], a[mid]
        if a[hi] < a[lo]:
            a[hi], a[lo] = a[lo], a[hi]
        if a[hi] < a[mid]:
            a[hi], a[mid] = a[mid], a[hi]
        pivot = a[mid]
        i, j = lo, hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if kth <= j:
            hi = j
        elif kth >= i:
            lo = i
        else:
            break
    return a[kth]


@numba.njit(nogil=True, cache=True)
def trimmed_group_means(
    codes: np.ndarray, points: np.ndarray, k: int, quantile: float, min_points: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(means, counts, kept_means, kept_counts)`` of the rows of each category.

    ``codes`` holds a category per row (``< 0``: none), ``points`` the row coordinates.
    A category with more than ``min_points`` members keeps those whose Euclidean distance to
    its mean is at most the ``quantile`` of its members' distances (linear interpolation,
    as :func:`numpy.quantile`); the others keep every member.
    """
    n, d = points.shape
    sums, counts = _group_sums(codes, points, k)
    means = np.full((k, d), np.nan)
    for c in range(k):
        if counts[c] > 0:
            for j in range(d):
                means[c, j] = sums[c, j] / counts[c]
    # each member's distance, and the distances grouped by category (a counting sort)
    starts = np.zeros(k + 1, dtype=np.int64)
    for c in range(k):
        starts[c + 1] = starts[c] + counts[c]
    fill = starts[:k].copy()
    grouped = np.empty(starts[k], dtype=np.float64)
    dist = np.empty(n, dtype=np.float64)
    for i in range(n):
        c = codes[i]
        if c < 0:
            dist[i] = 0.0
            continue
        s = 0.0
        for j in range(d):
            diff = np.float64(points[i, j]) - means[c, j]
            s += diff * diff
        dist[i] = np.sqrt(s)
        grouped[fill[c]] = dist[i]
        fill[c] += 1
    thr = np.full(k, np.nan)
    for c in range(k):
        m = counts[c]
        if m <= min_points:
            continue
        pos = quantile * (m - 1)
        lo = int(np.floor(pos))
        seg = grouped[starts[c] : starts[c + 1]]  # a view: selected in place
        v_lo = _select(seg, lo)
        v_hi = v_lo
        if lo + 1 < m:
            v_hi = seg[lo + 1 :].min()  # the selection put every larger value there
        thr[c] = v_lo + (pos - lo) * (v_hi - v_lo)
    cut = np.zeros((k, d), dtype=np.float64)
    cut_counts = np.zeros(k, dtype=np.int64)
    for i in range(n):
        c = codes[i]
        if c < 0 or not dist[i] > thr[c]:  # NaN thresholds trim nothing
            continue
        cut_counts[c] += 1
        for j in range(d):
            cut[c, j] += points[i, j]
    kept_counts = counts - cut_counts
    kept = np.full((k, d), np.nan)
    for c in range(k):
        if kept_counts[c] > 0:
            for j in range(d):
                kept[c, j] = (sums[c, j] - cut[c, j]) / kept_counts[c]
    return means, counts, kept, kept_counts
