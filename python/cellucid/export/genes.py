"""Reading gene columns out of an expression matrix, block by block, without copying it.

The export stores one dense column per gene, but matrices usually arrive cell-major (CSR from
scanpy, or a dense C-ordered array). Converting a large CSR matrix to CSC would double its
memory, so :class:`CsrGenes` walks the matrix once, gene range by gene range, keeping a
cursor per row. Each range becomes a small CSC block (scipy's C++ counting sort), and a gene's
dense column is only materialised right before it is written, into a reused buffer that stays
in the CPU cache. Extra memory is one or two blocks of stored values, never a dense block.

The block types and the :class:`~cellucid.storage.blocks.GeneMatrix` protocol live in
:mod:`cellucid.storage.blocks`; :func:`gene_matrix` picks the reader for any matrix (a Dask
array becomes a :class:`~cellucid.storage.dask.DaskGenes`).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..storage.blocks import (
    DEFAULT_BLOCK_VALUES,
    DenseBlock,
    GeneMatrix,
    SparseBlock,
    genes_per_block,
    sorted_batches,
)
from ..storage.lazy_sparse import sp


class DenseGenes:
    """A dense matrix (any memory order)."""

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = matrix
        self.n_cells, self.n_genes = matrix.shape

    def blocks(self, columns, block_values=DEFAULT_BLOCK_VALUES):
        per = genes_per_block(self.n_cells * self.n_genes, self.n_genes, block_values)
        for pos in sorted_batches(columns, per):
            sub = np.take(self.matrix, columns[pos], axis=1)
            yield DenseBlock(pos, np.ascontiguousarray(sub.T, dtype=np.float32))


class CscGenes:
    """A CSC sparse matrix: column slices are cheap."""

    def __init__(self, matrix: Any) -> None:
        self.matrix = matrix
        self.n_cells, self.n_genes = matrix.shape

    def blocks(self, columns, block_values=DEFAULT_BLOCK_VALUES):
        per = genes_per_block(self.matrix.nnz, self.n_genes, block_values)
        for pos in sorted_batches(columns, per):
            sub = sp.csc_matrix(self.matrix[:, columns[pos]])
            if not sub.has_canonical_format:
                sub = sub.copy()
                sub.sum_duplicates()
            yield SparseBlock(pos, sub.indptr, sub.indices, sub.data)


class CsrGenes:
    """A CSR sparse matrix read one gene range at a time, in a single pass.

    Each row keeps a cursor to its first entry not yet consumed. For the next range of
    columns ``[lo, hi)`` a binary search vectorised over all rows finds where each row's
    entries reach ``hi``; the entries in between form the block. Total work is
    proportional to the number of stored values.
    """

    def __init__(self, matrix: Any) -> None:
        if not matrix.has_canonical_format:
            warnings.warn(
                "the expression matrix has unsorted or duplicate indices; reading genes from a "
                "canonical copy (X.sum_duplicates(); X.sort_indices() avoids the copy)",
                stacklevel=3,
            )
            matrix = sp.csr_matrix(matrix, copy=True)
            matrix.sum_duplicates()
            matrix.sort_indices()
        self.matrix = matrix
        self.n_cells, self.n_genes = matrix.shape

    def blocks(self, columns, block_values=DEFAULT_BLOCK_VALUES):
        m = self.matrix
        n = self.n_cells
        indices, data = m.indices, m.data
        cursor = m.indptr[:-1].astype(np.int64)
        row_end = m.indptr[1:].astype(np.int64)
        consumed = 0  # every entry with a column below this is behind the cursors
        per = genes_per_block(m.nnz, self.n_genes, block_values)
        for pos in sorted_batches(columns, per):
            cols, column_of = np.unique(columns[pos], return_inverse=True)
            if cols.size == pos.size:
                column_of = None
            lo, hi = int(cols[0]), int(cols[-1]) + 1
            start = cursor if lo == consumed else _first_at_least(indices, cursor, row_end, lo)
            end = _first_at_least(indices, start, row_end, hi)
            cursor, consumed = end, hi
            lengths = end - start
            bptr = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(lengths, out=bptr[1:])
            flat = np.repeat(start - bptr[:-1], lengths)
            flat += np.arange(flat.size, dtype=np.int64)
            local = indices[flat]
            local -= lo
            values = data[flat]
            del flat
            if bptr[-1] < np.iinfo(np.int32).max:  # keep scipy from widening the indices
                bptr = bptr.astype(np.int32)
                local = local.astype(np.int32, copy=False)
            if hi - lo != cols.size:  # a subset of the range: renumber, drop the rest
                slot = np.full(hi - lo, -1, dtype=np.int64)
                slot[cols - lo] = np.arange(cols.size)
                local = slot[local]
                keep = local >= 0
                rows = np.repeat(np.arange(n, dtype=np.int64), lengths)[keep]
                block = sp.csr_matrix(
                    (values[keep], (rows, local[keep])), shape=(n, cols.size)
                ).tocsc()
            else:
                block = sp.csr_matrix((values, local, bptr), shape=(n, cols.size)).tocsc()
            yield SparseBlock(pos, block.indptr, block.indices, block.data, column_of)


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
    if hasattr(matrix, "blocks") and hasattr(matrix, "n_cells"):  # already a GeneMatrix
        return matrix
    from ..storage.dask import DaskGenes, is_dask_array

    if is_dask_array(matrix):  # computed gene block by gene block on the Dask scheduler
        return DaskGenes(matrix)
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
