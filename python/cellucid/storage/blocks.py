"""The gene-reading protocol every expression matrix speaks, wherever it is stored.

A :class:`GeneMatrix` yields :class:`GeneBlock` objects: some genes' columns at a time, as a
small CSC piece (:class:`SparseBlock`) or dense rows (:class:`DenseBlock`). In-memory
matrices (:mod:`cellucid.export.genes`), backed files (:mod:`cellucid.storage.backed`), the
column cache (:mod:`cellucid.storage.column_cache`) and Dask arrays
(:mod:`cellucid.storage.dask`) all implement it, so the exporter, the server and
``rank_genes`` read genes the same way from any of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np

#: stored values per block of genes (about 12 bytes each while a block is built)
DEFAULT_BLOCK_VALUES = 8_000_000


class GeneBlock(Protocol):
    """Some genes' columns; ``positions[i]`` says which requested gene row ``i`` is."""

    positions: np.ndarray

    def column(self, i: int, out: np.ndarray) -> np.ndarray:
        """The float32 column of gene ``i`` of the block (may fill and return ``out``)."""
        ...


class GeneMatrix(Protocol):
    """Column access to an ``(n_cells, n_genes)`` expression matrix."""

    n_cells: int
    n_genes: int

    def blocks(
        self, columns: np.ndarray, block_values: int = DEFAULT_BLOCK_VALUES
    ) -> Iterator[GeneBlock]:
        """Yield blocks that together cover every entry of ``columns`` exactly once."""
        ...


class DenseBlock:
    def __init__(self, positions: np.ndarray, rows: np.ndarray) -> None:
        self.positions = positions
        self.rows = rows  # (genes, n_cells) float32, C order

    def column(self, i: int, out: np.ndarray) -> np.ndarray:
        return self.rows[i]


class SparseBlock:
    """Genes of a block as CSC arrays over ``(n_cells, n_genes_in_block)``."""

    def __init__(
        self,
        positions: np.ndarray,
        indptr: np.ndarray,
        indices: np.ndarray,
        data: np.ndarray,
        column_of: np.ndarray | None = None,
    ) -> None:
        self.positions = positions
        self.indptr = indptr
        self.indices = indices
        self.data = data
        self.column_of = column_of  # block row -> CSC column, when columns repeat

    def column(self, i: int, out: np.ndarray) -> np.ndarray:
        out.fill(0)
        j = i if self.column_of is None else int(self.column_of[i])
        s, e = self.indptr[j], self.indptr[j + 1]
        out[self.indices[s:e]] = self.data[s:e]
        return out


def sorted_batches(columns: np.ndarray, per_block: int) -> Iterator[np.ndarray]:
    """Positions into ``columns`` in ascending column order, ``per_block`` at a time."""
    order = np.argsort(columns, kind="stable")
    for start in range(0, order.size, max(1, per_block)):
        yield order[start : start + per_block]


def genes_per_block(n_values: int, n_genes: int, block_values: int) -> int:
    per_gene = max(1.0, n_values / max(n_genes, 1))
    return max(1, int(block_values / per_gene))


def nnz_batches(
    columns: np.ndarray, nnz_per_column: np.ndarray, block_values: int
) -> Iterator[np.ndarray]:
    """Positions into ``columns`` in ascending column order, cut so that a batch holds at most
    ``block_values`` stored values (a single larger column still forms its own batch)."""
    order = np.argsort(columns, kind="stable")
    if order.size == 0:
        return
    cum = np.cumsum(nnz_per_column[columns[order]])
    start = 0
    while start < order.size:
        base = int(cum[start - 1]) if start else 0
        stop = max(start + 1, int(np.searchsorted(cum, base + block_values, side="right")))
        yield order[start:stop]
        start = stop


def iter_columns(matrix: GeneMatrix, columns: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """``(position, float32 column)`` for every requested column; a convenience for tests
    and single-gene reads (the column array is only valid until the next one is yielded)."""
    buf = np.empty(matrix.n_cells, dtype=np.float32)
    for block in matrix.blocks(np.asarray(columns, dtype=np.int64)):
        for i, p in enumerate(block.positions):
            yield int(p), block.column(i, buf)
