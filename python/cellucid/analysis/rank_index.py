"""Dense value ranks of a column cache, stored next to it and built once.

A Wilcoxon rank-sum test needs, per gene, the order of the values of the cells compared.
Sorting every gene again for every comparison costs seconds at a million cells; the order
does not depend on the groups, so it is computed once per column cache: for each stored
value, the rank of its value among the distinct stored values of its gene
(:func:`~cellucid.analysis.kernels.dense_ranks`). With it, a comparison is one counting
pass over the stored values (:func:`~cellucid.analysis.kernels.block_stats`).

The file is ``value_ranks.npy`` (uint32, aligned with the cache's ``data.npy``) inside the
cache folder, written under a temporary name and renamed when complete, so it is either
whole or absent. Two builders at once both finish; the second rename replaces an
identical file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..storage.column_cache import ColumnCache, _NpyReader, _NpyWriter
from .kernels import dense_ranks

FILE = "value_ranks.npy"
#: stored values per batch while building (about 16 bytes each in memory)
BUILD_BATCH_VALUES = 8_000_000


class ComparisonCancelled(Exception):  # noqa: N818 - a signal, not an error
    """The caller's cancel event was set."""


def gene_batches(
    indptr: np.ndarray, first: int, stop: int, max_values: int
) -> Iterator[tuple[int, int]]:
    """Ranges ``[g0, g1)`` of consecutive genes holding at most ``max_values`` stored values
    (a single larger gene still forms its own range)."""
    g = first
    while g < stop:
        limit = int(indptr[g]) + max_values
        g1 = int(np.searchsorted(indptr, limit, side="right")) - 1
        g1 = min(stop, max(g + 1, g1))
        yield g, g1
        g = g1


class RankIndex:
    """The dense value ranks of one ready :class:`~cellucid.storage.column_cache.ColumnCache`."""

    def __init__(self, cache: ColumnCache) -> None:
        if not cache.ready:
            raise RuntimeError(f"the column cache at {cache.path} is not ready")
        self.cache = cache
        self.path = Path(cache.path) / FILE
        self._reader: _NpyReader | None = None
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        """Whether the complete file exists."""
        if self._reader is not None:
            return True
        try:
            reader = _NpyReader(self.path)
        except (OSError, ValueError):
            return False
        if reader.n != self.cache.nnz or reader.dtype != np.uint32:
            reader.close()
            return False
        with self._lock:
            if self._reader is None:
                self._reader = reader
            else:
                reader.close()
        return True

    def build(
        self,
        progress: Callable[[float], None] | None = None,
        cancel: threading.Event | None = None,
        workers: int | None = None,
    ) -> None:
        """Compute and store the ranks (no-op when :attr:`ready`); raises :class:`ComparisonCancelled`."""
        if self.ready:
            return
        indptr = self.cache.indptr
        n_genes = indptr.size - 1
        nnz = int(indptr[-1])
        tmp = self.path.with_name(f"{FILE}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        writer = _NpyWriter(tmp, np.dtype(np.uint32), nnz)

        def one(batch: tuple[int, int]) -> int:
            g0, g1 = batch
            if cancel is not None and cancel.is_set():
                raise ComparisonCancelled
            a, b = int(indptr[g0]), int(indptr[g1])
            if b > a:
                _, data = self.cache.entries(a, b)
                local = (indptr[g0 : g1 + 1] - a).astype(np.int64)
                writer.write_at(a, dense_ranks(local, data))
            return g1 - g0

        try:
            done = 0
            batches = gene_batches(indptr, 0, n_genes, BUILD_BATCH_VALUES)
            with ThreadPoolExecutor(workers or min(4, os.cpu_count() or 1)) as pool:
                for count in pool.map(one, batches):
                    done += count
                    if progress is not None:
                        progress(done / max(n_genes, 1))
            writer.close()
            os.replace(tmp, self.path)
        except BaseException:
            writer.close()
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        if not self.ready:
            raise RuntimeError(f"rank index at {self.path} is incomplete after building")

    def read(self, a: int, b: int) -> np.ndarray:
        """Ranks of stored entries ``a:b``."""
        if not self.ready or self._reader is None:
            raise RuntimeError("the rank index is not built")
        return self._reader.read(a, b)

    def close(self) -> None:
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
