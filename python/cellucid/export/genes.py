"""Reading gene columns out of an expression matrix, in blocks, without copying the matrix.

The export stores one dense column per gene, but matrices usually arrive cell-major (CSR
from scanpy, or a dense C-ordered array). Converting a large CSR matrix to CSC doubles its
memory, so :class:`CsrGenes` walks the matrix once, gene block by gene block, keeping a
cursor per row. Every block is a C-ordered ``(n_genes_in_block, n_cells)`` float32 array:
row ``j`` is one gene's column, contiguous and ready to be written.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

#: default size of one dense block of gene columns
DEFAULT_BLOCK_BYTES = 128 * 1024 * 1024


class GeneMatrix(Protocol):
    """Column access to an ``(n_cells, n_genes)`` expression matrix."""

    n_cells: int
    n_genes: int

    def blocks(
        self, columns: np.ndarray, block_bytes: int = DEFAULT_BLOCK_BYTES
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(positions, block)`` covering every entry of ``columns`` once.

        ``positions`` index into ``columns``; ``block[i]`` is the float32 column of
        ``columns[positions[i]]``.
        """
        ...


def genes_per_block(n_cells: int, block_bytes: int) -> int:
    return max(1, int(block_bytes // (4 * max(n_cells, 1))))


def _sorted_batches(columns: np.ndarray, per_block: int) -> Iterator[np.ndarray]:
    """Positions into ``columns`` grouped in ascending column order."""
    order = np.argsort(columns, kind="stable")
    for start in range(0, order.size, per_block):
        yield order[start : start + per_block]


class DenseGenes:
    """A dense ``numpy`` matrix (any memory order)."""

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = matrix
        self.n_cells, self.n_genes = matrix.shape

    def blocks(self, columns, block_bytes=DEFAULT_BLOCK_BYTES):
        for pos in _sorted_batches(columns, genes_per_block(self.n_cells, block_bytes)):
            sub = np.take(self.matrix, columns[pos], axis=1)
            yield pos, np.ascontiguousarray(sub.T, dtype=np.float32)


class CscGenes:
    """A CSC sparse matrix: column slices are cheap."""

    def __init__(self, matrix: Any) -> None:
        self.matrix = matrix
        self.n_cells, self.n_genes = matrix.shape

    def blocks(self, columns, block_bytes=DEFAULT_BLOCK_BYTES):
        n = self.n_cells
        for pos in _sorted_batches(columns, genes_per_block(n, block_bytes)):
            sub = self.matrix[:, columns[pos]]
            sub = sp.csc_matrix(sub)
            sub.sum_duplicates()
            out = np.zeros((pos.size, n), dtype=np.float32)
            which = np.repeat(np.arange(pos.size, dtype=np.int64), np.diff(sub.indptr))
            out[which, sub.indices] = sub.data
            yield pos, out


class CsrGenes:
    """A CSR sparse matrix read gene block by gene block in one pass.

    Each row keeps a cursor to its first entry not yet consumed. For the next block of
    columns ``[lo, hi)`` a vectorised binary search over all rows at once finds where each
    row's entries reach ``hi``; the entries in between are scattered into the dense block.
    Total work is proportional to the number of stored values, and the extra memory is one
    dense block plus that block's entries.
    """

    def __init__(self, matrix: Any) -> None:
        if not matrix.has_canonical_format:
            warnings.warn(
                "the expression matrix has unsorted or duplicate indices; exporting from a "
                "canonical copy (call X.sum_duplicates(); X.sort_indices() to avoid the copy)",
                stacklevel=3,
            )
            matrix = sp.csr_matrix(matrix, copy=True)
            matrix.sum_duplicates()
            matrix.sort_indices()
        self.matrix = matrix
        self.n_cells, self.n_genes = matrix.shape

    def blocks(self, columns, block_bytes=DEFAULT_BLOCK_BYTES):
        m = self.matrix
        n = self.n_cells
        indices, data = m.indices, m.data
        cursor = m.indptr[:-1].astype(np.int64)
        row_end = m.indptr[1:].astype(np.int64)
        rows_all = np.arange(n, dtype=np.int64)
        for pos in _sorted_batches(columns, genes_per_block(n, block_bytes)):
            cols = columns[pos]
            lo_col, hi_col = int(cols[0]), int(cols[-1]) + 1
            start = _first_at_least(indices, cursor, row_end, lo_col)
            end = _first_at_least(indices, start, row_end, hi_col)
            cursor = end
            out = np.zeros((pos.size, n), dtype=np.float32)
            lengths = end - start
            total = int(lengths.sum())
            if total:
                offsets = np.cumsum(lengths) - lengths
                flat = np.arange(total, dtype=np.int64)
                flat += np.repeat(start - offsets, lengths)
                local = np.full(hi_col - lo_col, -1, dtype=np.int64)
                local[cols - lo_col] = np.arange(pos.size)
                slot = local[indices[flat] - lo_col]
                rows = np.repeat(rows_all, lengths)
                keep = slot >= 0
                if not keep.all():
                    slot, rows, flat = slot[keep], rows[keep], flat[keep]
                out.ravel()[slot * n + rows] = data[flat]
            yield pos, out


def _first_at_least(indices: np.ndarray, lo: np.ndarray, hi: np.ndarray, value: int) -> np.ndarray:
    """Per row, the first position in ``[lo, hi)`` whose column index is ``>= value``."""
    lo = lo.copy()
    hi = hi.copy()
    active = np.flatnonzero(lo < hi)
    while active.size:
        mid = (lo[active] + hi[active]) // 2
        below = indices[mid] < value
        lo[active[below]] = mid[below] + 1
        hi[active[~below]] = mid[~below]
        active = active[lo[active] < hi[active]]
    return lo


def gene_matrix(matrix: Any) -> GeneMatrix:
    """Wrap an expression matrix for block-wise column reads, without copying when possible."""
    if sp.issparse(matrix):
        fmt = matrix.format
        if fmt == "csr":
            return CsrGenes(matrix)
        if fmt == "csc":
            return CscGenes(matrix)
        return CscGenes(sp.csc_matrix(matrix))
    arr = np.asarray(matrix)
    if arr.ndim != 2:
        raise ValueError(
            f"gene_expression must be a 2-D (n_cells, n_genes) matrix; got shape {arr.shape}"
        )
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"gene_expression must be numeric; got dtype {arr.dtype}")
    return DenseGenes(arr)
