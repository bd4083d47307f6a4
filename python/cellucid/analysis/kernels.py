"""Numba kernels of the group comparison: one pass over each gene's stored values.

Every kernel works on a block of genes in CSC form (``indptr``, ``indices`` = cell ids,
``data`` = float32 values) and a ``codes`` array with one byte per cell: ``1`` for the
group, ``2`` for the reference, ``0`` for cells in neither. Kernels are serial and release
the GIL (``nogil``), so the caller runs blocks on a thread pool; numba's own parallel layer
is not used because its default (workqueue) layer must not be entered from two threads.

Ranks are computed from *dense value ranks*: for each stored value, the rank of its value
among the distinct stored values of its gene (0, 1, ...). With them, the midranks of any
subset of cells follow from a counting pass, without sorting. Zeros (missing entries and
explicit zeros) form one tie block, placed between the negative and the positive values.
"""

from __future__ import annotations

import numba
import numpy as np

#: columns of the per-gene statistics a block kernel fills
NNZ_G, SUM_G, SQ_G, NNZ_R, SUM_R, SQ_R, RANKSUM_G, TIES, NANS = range(9)
N_STATS = 9


@numba.njit(nogil=True, cache=True)
def _dense_ranks_into(values: np.ndarray, out: np.ndarray) -> None:
    """Dense ranks of ``values`` (ascending, equal values share a rank) into ``out``."""
    order = np.argsort(values)
    rank = -1
    prev = np.float32(0.0)
    for i in range(order.size):
        v = values[order[i]]
        if i == 0 or v != prev:
            rank += 1
            prev = v
        out[order[i]] = rank


@numba.njit(nogil=True, cache=True)
def dense_ranks(indptr: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Per gene of a CSC block, the dense rank of each stored value (uint32).

    NaN values get ranks of their own (they are refused later, by :func:`block_stats`).
    """
    out = np.empty(data.size, dtype=np.uint32)
    for j in range(indptr.size - 1):
        a = indptr[j]
        b = indptr[j + 1]
        if b > a:
            _dense_ranks_into(data[a:b], out[a:b])
    return out


@numba.njit(nogil=True, cache=True)
def block_stats(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    ranks: np.ndarray,
    codes: np.ndarray,
    n_group: int,
    n_union: int,
    want_ranks: bool,
    out: np.ndarray,
) -> None:
    """Fill ``out[j]`` (see the ``NNZ_G`` ... ``NANS`` columns) for each gene ``j`` of a block.

    Sums are float64; squares are taken in float32 first, as scanpy's ``_get_mean_var``
    does. ``ranks`` are the dense value ranks of :func:`dense_ranks` (ignored unless
    ``want_ranks``). With ``want_ranks`` the group's rank sum over the cells of both groups
    (midranks, zeros as one tie block) and the tie term ``sum(t**3 - t)`` are computed.
    """
    for j in range(indptr.size - 1):
        a = indptr[j]
        b = indptr[j + 1]
        nnz_g = 0
        nnz_r = 0
        sum_g = 0.0
        sum_r = 0.0
        sq_g = 0.0
        sq_r = 0.0
        nans = 0
        n_distinct = 0
        n_neg = 0  # distinct negative values: the zero block comes after them
        for k in range(a, b):
            v = data[k]
            if v != v:
                nans += 1
                continue
            if v == 0:
                continue
            c = codes[indices[k]]
            if c == 1:
                nnz_g += 1
                sum_g += v
                sq_g += v * v
            elif c == 2:
                nnz_r += 1
                sum_r += v
                sq_r += v * v
            if want_ranks:
                r = np.int64(ranks[k]) + 1
                if r > n_distinct:
                    n_distinct = r
                if v < 0 and r > n_neg:
                    n_neg = r
        out[j, NNZ_G] = nnz_g
        out[j, SUM_G] = sum_g
        out[j, SQ_G] = sq_g
        out[j, NNZ_R] = nnz_r
        out[j, SUM_R] = sum_r
        out[j, SQ_R] = sq_r
        out[j, NANS] = nans
        if not want_ranks or nans:
            out[j, RANKSUM_G] = 0.0
            out[j, TIES] = 0.0
            continue
        in_union = np.zeros(n_distinct, dtype=np.int64)
        in_group = np.zeros(n_distinct, dtype=np.int64)
        for k in range(a, b):
            v = data[k]
            if v == 0:
                continue
            c = codes[indices[k]]
            if c != 0:
                r = ranks[k]
                in_union[r] += 1
                if c == 1:
                    in_group[r] += 1
        zeros_union = n_union - nnz_g - nnz_r
        zeros_group = n_group - nnz_g
        below = 0.0  # cells of the union ranked before the current block
        rank_sum = 0.0
        ties = 0.0
        for d in range(n_distinct + 1):
            if d == n_neg and zeros_union > 0:
                t = float(zeros_union)
                rank_sum += zeros_group * (below + (t + 1.0) / 2.0)
                ties += t * t * t - t
                below += t
            if d < n_distinct:
                t = float(in_union[d])
                if t > 0:
                    rank_sum += in_group[d] * (below + (t + 1.0) / 2.0)
                    ties += t * t * t - t
                    below += t
        out[j, RANKSUM_G] = rank_sum
        out[j, TIES] = ties
