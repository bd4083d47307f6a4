"""A Dask array as a gene matrix: gene blocks computed on the active Dask scheduler.

An AnnData read with ``anndata.experimental.read_lazy`` or ``read_elem_lazy`` holds ``X`` as a
Dask array of row chunks (scipy CSR or dense numpy chunks). :class:`DaskGenes` reads it the way
every other matrix is read here (:class:`~cellucid.storage.blocks.GeneMatrix`): block of genes
by block of genes. Each block is one ``dask.compute``: every row chunk is read by a task that
keeps only the block's columns (made canonical and float32 there), and the driver stacks the
pieces into the block's columns. ``dask.compute`` runs on the active scheduler, so a
``dask.distributed`` cluster computes the blocks when a ``Client`` is active, and Dask's
threads otherwise. The next block is computed while the current one is being written.

Memory: a task holds one row chunk and its share of a block; the driver holds at most two
blocks (each at most ``block_values`` stored values). A sparse matrix is read once more first,
to count the stored values of each gene, so that blocks are cut by their real size.
Reading a cell-major matrix by genes reads every row chunk once per block: a larger
``block_values`` means fewer passes (:data:`DASK_BLOCK_VALUES` by default).

The values are exactly those of the same matrix in memory (duplicate entries summed in the
stored dtype, then float32), so an export is byte for byte the in-memory one.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from .blocks import DenseBlock, GeneBlock, SparseBlock, genes_per_block, nnz_batches, sorted_batches
from .lazy_sparse import sp

#: stored values per block of genes read from a Dask array: each block is a pass over the
#: row chunks, so blocks are larger than in memory (about 8 bytes a value at the driver)
DASK_BLOCK_VALUES = 64_000_000


def is_dask_array(x: Any) -> bool:
    """Whether ``x`` is a ``dask.array.Array`` (without importing Dask)."""
    return type(x).__module__.startswith("dask.") and hasattr(x, "__dask_graph__")


def compute(x: Any) -> Any:
    """``x`` computed on the active scheduler when it is a Dask collection, else ``x``."""
    if hasattr(x, "__dask_graph__") and type(x).__module__.startswith("dask."):
        import dask

        (x,) = dask.compute(x)
    return x


def _is_sparse_chunk(meta: Any) -> bool:
    return sp.issparse(meta)


def _sparse_piece(chunk: Any, cols: np.ndarray) -> sp.csr_matrix:
    """The columns ``cols`` of one row chunk, canonical (duplicates summed in the stored
    dtype, as an in-memory CSR matrix is read), as float32 CSR."""
    m = sp.csr_matrix(chunk)[:, cols]
    if not m.has_canonical_format:
        m = sp.csr_matrix(m, copy=True)
        m.sum_duplicates()
    return m.astype(np.float32)


def _dense_piece(chunk: Any, cols: np.ndarray) -> np.ndarray:
    return np.asarray(chunk)[:, cols].astype(np.float32)


def _chunk_counts(chunk: Any) -> np.ndarray:
    indices = sp.csr_matrix(chunk).indices
    return np.bincount(indices, minlength=chunk.shape[1])[None, :]


class DaskGenes:
    """Column access to an ``(n_cells, n_genes)`` Dask array (scipy sparse or numpy chunks).

    Parameters
    ----------
    array
        The Dask array (``adata.X`` of a lazily read AnnData).
    block_values
        Stored values per block of genes (default :data:`DASK_BLOCK_VALUES`).
    """

    def __init__(self, array: Any, block_values: int = DASK_BLOCK_VALUES) -> None:
        if len(array.shape) != 2:
            raise ValueError(f"gene_expression must be 2-D; got shape {array.shape}")
        dtype = np.dtype(array.dtype)
        if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
            raise ValueError(f"gene_expression must be numeric; got dtype {dtype}")
        self.array = array
        self.n_cells, self.n_genes = (int(s) for s in array.shape)
        self.sparse = _is_sparse_chunk(getattr(array, "_meta", None))
        self.block_values = int(block_values)
        self._counts: np.ndarray | None = None

    def __repr__(self) -> str:
        kind = "sparse" if self.sparse else "dense"
        return f"DaskGenes({self.n_cells} x {self.n_genes}, {kind}, {self.array.dtype})"

    def gene_counts(self) -> np.ndarray:
        """Stored values per gene (one pass over the row chunks; sparse arrays only)."""
        if self._counts is None:
            x = self.array
            counts = x.map_blocks(
                _chunk_counts,
                dtype=np.int64,
                chunks=((1,) * len(x.chunks[0]), x.chunks[1]),
                meta=np.empty((0, 0), dtype=np.int64),
            ).sum(axis=0)
            self._counts = np.asarray(compute(counts), dtype=np.int64)
        return self._counts

    def _batches(self, columns: np.ndarray, block_values: int) -> list[np.ndarray]:
        if self.sparse:
            return list(nnz_batches(columns, self.gene_counts(), block_values))
        per = genes_per_block(self.n_cells * self.n_genes, self.n_genes, block_values)
        return list(sorted_batches(columns, per))

    def _compute(self, cols: np.ndarray) -> Any:
        """The columns ``cols`` (sorted, unique) of every row chunk, stacked."""
        x = self.array
        make = _sparse_piece if self.sparse else _dense_piece
        meta = sp.csr_matrix((0, 0), dtype=np.float32) if self.sparse else np.empty((0, 0))
        picked = x.rechunk({1: -1}) if len(x.chunks[1]) > 1 else x
        sub = picked.map_blocks(
            make,
            cols,
            dtype=np.float32,
            chunks=(x.chunks[0], (cols.size,)),
            meta=meta,
        )
        import dask

        pieces = dask.compute(*sub.to_delayed().ravel().tolist())  # one task per row chunk
        if self.sparse:
            return sp.vstack(pieces, format="csr").tocsc()
        return np.concatenate(pieces, axis=0)

    def _block(self, pos: np.ndarray, column_of: np.ndarray | None, piece: Any) -> GeneBlock:
        if self.sparse:
            piece.sort_indices()
            return SparseBlock(pos, piece.indptr, piece.indices, piece.data, column_of)
        rows = np.ascontiguousarray(piece.T)
        return DenseBlock(pos, rows if column_of is None else rows[column_of])

    def blocks(self, columns: np.ndarray, block_values: int | None = None) -> Iterator[GeneBlock]:
        """Blocks covering ``columns`` (:class:`~cellucid.storage.blocks.GeneMatrix`); the
        next block is computed while the caller works on this one."""
        columns = np.asarray(columns, dtype=np.int64)
        if columns.size and (columns.min() < 0 or columns.max() >= self.n_genes):
            raise IndexError(f"gene column out of range [0, {self.n_genes})")
        batches = self._batches(columns, block_values or self.block_values)
        plan = []
        for pos in batches:
            cols, column_of = np.unique(columns[pos], return_inverse=True)
            plan.append((pos, cols, None if cols.size == pos.size else column_of))
        if not plan:
            return
        with ThreadPoolExecutor(1, thread_name_prefix="cellucid-dask-block") as ahead:
            pending: Future[Any] = ahead.submit(self._compute, plan[0][1])
            for i, (pos, _cols, column_of) in enumerate(plan):
                piece = pending.result()
                if i + 1 < len(plan):
                    pending = ahead.submit(self._compute, plan[i + 1][1])
                yield self._block(pos, column_of, piece)
                del piece
