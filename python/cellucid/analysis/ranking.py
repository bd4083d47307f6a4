"""``rank_genes``: marker genes of one group of cells against a reference or the rest.

The work is one pass over every gene's stored values, block by block
(:mod:`cellucid.analysis.kernels`), on a small thread pool; blocks come from the column
cache when the matrix is a backed cell-major one (with the rank index of
:mod:`cellucid.analysis.rank_index`, so no gene is sorted again), else from the matrix
itself. Per-gene results are final as soon as their block is done, except the adjusted
p-values, which need every gene.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..storage.blocks import DenseBlock
from .expression import Expression, open_expression
from .groups import Groups, resolve_groups
from .kernels import N_STATS, NANS, block_stats, dense_ranks
from .rank_index import ComparisonCancelled, RankIndex, gene_batches
from .statistics import benjamini_hochberg, describe, gene_statistics
from .table import COLUMNS, METHODS, column_dtype

#: stored values per block of genes: small enough for a steady progress bar and two
#: blocks in flight per worker, large enough to amortise a read
BLOCK_VALUES = 2_000_000

RowsCallback = Callable[[np.ndarray, dict[str, np.ndarray]], None]


@dataclass
class Comparison:
    """The full result of one comparison (every gene, in the data's gene order)."""

    names: np.ndarray
    columns: dict[str, np.ndarray]
    groups: Groups
    method: str
    tie_correct: bool
    statistic: str
    quantized: bool = False
    layer: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def order(self) -> np.ndarray:
        """Gene positions by score, highest first (ties keep the gene order)."""
        return np.argsort(-self.columns["scores"], kind="stable")

    def to_frame(self, n_genes: int | None = None) -> pd.DataFrame:
        """This group's table, as ``scanpy.get.rank_genes_groups_df`` gives it after
        ``rank_genes_groups(..., pts=True)``."""
        order = self.order()
        if n_genes is not None:
            order = order[:n_genes]
        data: dict[str, Any] = {"names": self.names[order]}
        for name in COLUMNS[1:]:
            data[name] = self.columns[name][order].astype(column_dtype(name))
        frame = pd.DataFrame(data, columns=COLUMNS)
        frame.attrs["cellucid"] = self.summary()
        return frame

    def summary(self) -> dict[str, Any]:
        """What was compared, for tables' ``attrs``, events and session bundles."""
        g = self.groups
        return {
            "method": self.method,
            "tie_correct": self.tie_correct,
            "statistic": self.statistic,
            "group": g.group_label,
            "reference": g.reference_label,
            "n_group": g.n_group,
            "n_reference": g.n_reference,
            "layer": self.layer,
            "quantized": self.quantized,
            **self.extra,
        }


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(
            f"method {method!r} is not supported; use one of {', '.join(map(repr, METHODS))}"
        )


def _dense_to_csc(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nz = rows != 0
    nz |= np.isnan(rows)
    counts = nz.sum(axis=1)
    indptr = np.zeros(rows.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.nonzero(nz)[1].astype(np.int32)
    return indptr, indices, rows[nz]


class _Work:
    """One block: its gene positions and a loader of ``(indptr, indices, data, ranks)``."""

    __slots__ = ("load", "positions")

    def __init__(self, positions: np.ndarray, load: Callable[[], tuple[Any, ...]]) -> None:
        self.positions = positions
        self.load = load


def _cache_work(expr: Expression, index: RankIndex | None, want_ranks: bool) -> Iterator[_Work]:
    """Blocks read straight from the column cache (and its rank index)."""
    cache = expr.cache
    assert cache is not None
    indptr = cache.indptr
    order = np.argsort(expr.columns, kind="stable")
    cols = expr.columns[order]
    # runs of consecutive columns are read with one pread per file
    breaks = np.flatnonzero(np.diff(cols) != 1) + 1
    for run in np.split(np.arange(cols.size), breaks):
        if run.size == 0:
            continue
        first, stop = int(cols[run[0]]), int(cols[run[-1]]) + 1
        for g0, g1 in gene_batches(indptr, first, stop, BLOCK_VALUES):
            positions = order[run[0] + (g0 - first) : run[0] + (g1 - first)]

            def load(g0: int = g0, g1: int = g1) -> tuple[Any, ...]:
                a, b = int(indptr[g0]), int(indptr[g1])
                local = (indptr[g0 : g1 + 1] - a).astype(np.int64)
                indices, data = cache.entries(a, b)
                if not want_ranks:
                    ranks = np.zeros(0, np.uint32)
                elif index is not None:
                    ranks = index.read(a, b)
                else:
                    ranks = dense_ranks(local, data)
                return local, indices, data, ranks

            yield _Work(positions, load)


def _matrix_work(expr: Expression, want_ranks: bool) -> Iterator[_Work]:
    """Blocks from the matrix's own block reader (in-memory, CSC, dense, export folders)."""
    # a matrix may prefer larger blocks (a Dask array reads its row chunks once per block)
    values = max(BLOCK_VALUES, int(getattr(expr.matrix, "block_values", 0)))
    for block in expr.matrix.blocks(expr.columns, values):
        if isinstance(block, DenseBlock):
            indptr, indices, data = _dense_to_csc(np.asarray(block.rows, dtype=np.float32))
            positions = block.positions
        else:
            indptr = np.asarray(block.indptr, dtype=np.int64)
            indices, data = block.indices, np.asarray(block.data, dtype=np.float32)
            if block.column_of is not None:  # repeated columns: a block row per position
                positions = block.positions
                sel = np.asarray(block.column_of)
                parts = [(indptr[j], indptr[j + 1]) for j in sel.tolist()]
                lengths = np.array([b - a for a, b in parts], dtype=np.int64)
                take = np.concatenate([np.arange(a, b) for a, b in parts]) if parts else []
                indptr = np.zeros(sel.size + 1, dtype=np.int64)
                np.cumsum(lengths, out=indptr[1:])
                indices, data = indices[take], data[take]
            else:
                positions = block.positions

        def load(indptr=indptr, indices=indices, data=data) -> tuple[Any, ...]:
            ranks = dense_ranks(indptr, data) if want_ranks else np.zeros(0, np.uint32)
            return indptr, indices, data, ranks

        yield _Work(np.asarray(positions), load)


def compare_expression(
    expr: Expression,
    groups: Groups,
    *,
    method: str = "wilcoxon",
    tie_correct: bool = False,
    layer: str | None = None,
    on_rows: RowsCallback | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    workers: int | None = None,
) -> Comparison:
    """Run a comparison on already opened data (the engine behind :func:`rank_genes` and the
    server's ``/_cellucid/compare``).

    ``on_rows(positions, columns)`` receives each finished block (every column but
    ``pvals_adj``, plus ``mean_group``/``mean_reference``); ``progress(done, total)`` counts
    genes; setting ``cancel`` stops at the next block with
    :class:`~cellucid.analysis.rank_index.ComparisonCancelled`.
    """
    _check_method(method)
    if groups.codes.shape != (expr.n_cells,):
        raise ValueError("groups were resolved for another number of cells")
    want_ranks = method == "wilcoxon"
    n = expr.names.size
    index = None
    if want_ranks and expr.cache is not None:
        index = RankIndex(expr.cache)
        if not index.ready:
            index.build(cancel=cancel, workers=workers)
    work = (
        _cache_work(expr, index, want_ranks)
        if expr.cache is not None
        else _matrix_work(expr, want_ranks)
    )
    columns = {
        name: np.zeros(n, dtype=np.float64)
        for name in (*COLUMNS[1:], "mean_group", "mean_reference")
        if name != "pvals_adj"
    }
    codes = groups.codes

    def compute(item: _Work) -> tuple[np.ndarray, np.ndarray]:
        if cancel is not None and cancel.is_set():
            raise ComparisonCancelled
        indptr, indices, data, ranks = item.load()
        out = np.zeros((indptr.size - 1, N_STATS), dtype=np.float64)
        block_stats(
            indptr, indices, data, ranks, codes, groups.n_group, groups.n_union, want_ranks, out
        )
        return item.positions, out

    done = 0
    n_workers = workers or max(1, min(4, os.cpu_count() or 1))
    pending: deque[Future[tuple[np.ndarray, np.ndarray]]] = deque()

    def finish(future: Future[tuple[np.ndarray, np.ndarray]]) -> None:
        nonlocal done
        positions, out = future.result()
        bad = np.flatnonzero(out[:, NANS] > 0)
        if bad.size:
            gene = expr.names[positions[bad[0]]]
            raise ValueError(
                f"gene {gene!r} has {int(out[bad[0], NANS])} NaN values; rank_genes needs "
                "NaN-free expression values (fill or drop them first)"
            )
        result = gene_statistics(
            out,
            groups.n_group,
            groups.n_reference,
            method,
            rest=groups.reference_is_rest,
            tie_correct=tie_correct,
            log1p_base=expr.log1p_base,
        )
        for name, values in result.items():
            columns[name][positions] = values
        done += positions.size
        if on_rows is not None:
            on_rows(positions, result)
        if progress is not None:
            progress(done, n)

    with ThreadPoolExecutor(n_workers, thread_name_prefix="cellucid-compare") as pool:
        try:
            for item in work:
                if cancel is not None and cancel.is_set():
                    raise ComparisonCancelled
                pending.append(pool.submit(compute, item))
                while len(pending) > n_workers:
                    finish(pending.popleft())
            while pending:
                finish(pending.popleft())
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        finally:
            if index is not None:
                index.close()  # its file is opened per comparison: never leave it open
    columns["pvals_adj"] = benjamini_hochberg(columns["pvals"])
    return Comparison(
        names=expr.names,
        columns=columns,
        groups=groups,
        method=method,
        tie_correct=tie_correct,
        statistic=describe(method, tie_correct, expr.quantized),
        quantized=expr.quantized,
        layer=layer,
    )


def rank_genes(
    data: Any,
    group: Any,
    reference: Any = "rest",
    *,
    method: str = "wilcoxon",
    layer: str | None = None,
    tie_correct: bool = False,
    n_genes: int | None = None,
    quiet: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Rank genes that tell one group of cells from a reference group or from the rest.

    The statistics are those of :func:`scanpy.tl.rank_genes_groups` for one group
    (``groups=[group]``, ``reference=...``, ``use_raw=False``), computed without loading a
    backed matrix: scores and p-values agree with scanpy's to float precision.

    Parameters
    ----------
    data
        An :class:`~anndata.AnnData` (in memory or backed), or the path of an ``.h5ad`` file,
        a ``.zarr`` store or a cellucid export folder. Backed cell-major matrices are read
        through the column cache the server uses (``$CELLUCID_CACHE_DIR``), built on the first
        call; the Wilcoxon test also stores the genes' value order there once. Export folders
        are read from their gene payloads: an export that quantised its values
        (``var_quantization``) gives **approximate** statistics.
    group
        The cells to characterise: a boolean mask (one value per cell), integer cell indices,
        ``(obs_key, category)`` or ``(obs_key, [categories])``.
    reference
        ``"rest"`` (every cell not in ``group``) or another group in the same forms; it must
        not share cells with ``group``.
    method
        ``"wilcoxon"`` (rank-sum test, normal approximation), ``"t-test"`` (Welch) or
        ``"t-test_overestim_var"`` (Welch, with the reference given the group's size).
    layer
        Compare ``adata.layers[layer]`` instead of ``X``.
    tie_correct
        Tie correction of the Wilcoxon test's variance (as scanpy's ``tie_correct``).
    n_genes
        Return only the top ``n_genes`` rows (adjusted p-values still count every gene).
    quiet
        No progress bars.
    storage_options
        fsspec options (credentials, ``client_kwargs={"endpoint_url": ...}``) when ``data``
        is a URL such as ``s3://bucket/atlas.zarr``; the column cache and rank index go to
        the local cache folder. The standard environment variables (``AWS_*``) work too.

    Returns
    -------
    pandas.DataFrame
        One row per gene, highest score first, with the columns of
        ``scanpy.get.rank_genes_groups_df(adata, group)`` after
        ``scanpy.tl.rank_genes_groups(..., pts=True)``: ``names``, ``scores``
        (float32), ``logfoldchanges`` (float32; log2 of the ratio of ``expm1`` of the group
        means, for log1p-normalised data; ``uns["log1p"]["base"]`` is respected), ``pvals``,
        ``pvals_adj`` (Benjamini-Hochberg), ``pct_nz_group``, ``pct_nz_reference`` (fraction
        of cells with a non-zero value). ``frame.attrs["cellucid"]`` says what was compared.

    Raises
    ------
    ValueError
        Empty, single-cell or overlapping groups, unknown categories, an unknown method,
        NaN values.
    KeyError
        An unknown obs column or layer.

    Notes
    -----
    Values are read as float32, as the viewer shows them; float64 matrices therefore agree
    with scanpy to float32 precision.

    Examples
    --------
    >>> import scanpy as sc
    >>> import cellucid
    >>> adata = sc.datasets.pbmc68k_reduced()
    >>> table = cellucid.rank_genes(adata, ("louvain", "3"), quiet=True)
    >>> list(table.columns)
    ['names', 'scores', 'logfoldchanges', 'pvals', 'pvals_adj', 'pct_nz_group', 'pct_nz_reference']
    """
    _check_method(method)
    if n_genes is not None and (not isinstance(n_genes, (int, np.integer)) or n_genes < 1):
        raise ValueError(f"n_genes must be a positive integer or None; got {n_genes!r}")
    bars: list[Any] = []

    def bar(desc: str, total: int, unit: str) -> Any:
        from tqdm.auto import tqdm

        b = tqdm(total=total, desc=desc, unit=unit, disable=quiet, leave=False)
        bars.append(b)
        return b

    cache_bar = None

    def cache_progress(fraction: float) -> None:
        nonlocal cache_bar
        if cache_bar is None:
            cache_bar = bar("column cache", 100, "%")
        cache_bar.n = round(fraction * 100)
        cache_bar.refresh()

    expr = open_expression(data, layer, cache_progress, storage_options)
    try:
        groups = resolve_groups(group, reference, expr.n_cells, expr.obs_frame)
        genes_bar = bar(f"rank_genes ({method})", int(expr.names.size), "genes")

        def progress(done: int, total: int) -> None:
            genes_bar.n = done
            genes_bar.refresh()

        comparison = compare_expression(
            expr, groups, method=method, tie_correct=tie_correct, layer=layer, progress=progress
        )
    finally:
        for b in bars:
            b.close()
        if not isinstance(data, Expression):
            expr.close()
    return comparison.to_frame(None if n_genes is None else int(n_genes))


__all__ = ["COLUMNS", "Comparison", "compare_expression", "rank_genes"]
