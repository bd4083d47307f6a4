"""Is a ``.zarr`` AnnData store whole? Missing chunk files, found before they are served.

Zarr reads a chunk whose file (or object) is missing as the array's fill value, so a store
that lost files in a partial copy or sync reads back as plausible zeros. Not every missing
chunk is a loss, though: zarr-python 3 (and anndata 0.11+ writing with it) omits chunks
whose values all equal the fill value, so a dense ``X`` block of zeros, or the codes of
cells that all belong to the first category, are legitimately absent.

This module therefore judges each element by what its values can be:

- **never all fill**: cell and gene names (an empty name is not a name), sparse
  ``indptr``/``indices``/``data`` (a sparse matrix stores no run of a whole chunk of zeros;
  ``indptr`` is checked for shape too, see :func:`check_indptr`) and the embeddings that
  will be drawn (a whole chunk of cells at exactly 0.0 is a hole, not data). A missing chunk
  there is an error: :class:`IncompleteStoreError` names the element, the rows and the fix.
- **possibly all fill**: categorical codes and numeric obs columns. Runs of the fill value
  (cells sorted by category, a column of zeros) have fill-valued neighbours, so a missing
  chunk whose stored neighbours hold other values is reported as a warning naming the
  field, the rows and what they will read as: a loss is not silent, and an intact store
  still opens without a word.
- **dense expression**: a missing chunk is the normal form of an all-zero block and cannot
  be told from a loss; nothing is reported.

:func:`check_store` makes one listing of the store (one ``LIST`` walk on object storage) and
compares it with the chunk keys each array should have.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

logger = logging.getLogger("cellucid.storage")

__all__ = [
    "IncompleteStoreError",
    "IncompleteStoreWarning",
    "StoreReport",
    "check_indptr",
    "check_store",
    "missing_rows",
]


class IncompleteStoreError(ValueError):
    """A store lacks data that cannot legitimately be absent; the message names it and the fix.

    ``public`` is the same without the store's location, for answers to HTTP clients.
    """

    def __init__(self, message: str, public: str | None = None) -> None:
        super().__init__(message)
        self.public = public if public is not None else message


class IncompleteStoreWarning(UserWarning):
    """A store lacks chunks that may be legitimately absent (all fill value) or lost."""


_FIX = (
    "The store is incomplete (an interrupted copy or sync?). Copy it again from its source, "
    "or re-write it with anndata (adata.write_zarr)."
)


@dataclass
class StoreReport:
    """What :func:`check_store` found: hard errors and soft warnings, one line each."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def raise_or_warn(self, source: str) -> None:
        """Raise :class:`IncompleteStoreError` for errors; emit one warning for the rest."""
        if self.errors:  # one line: command lines show the first line of an error
            lost = "; ".join(self.errors)
            raise IncompleteStoreError(f"{source}: chunk files are missing from {lost}. {_FIX}")
        if self.warnings:
            lines = "\n  ".join(self.warnings)
            warnings.warn(
                f"{source}: chunks missing; zarr reads them as the fill value. That is "
                "expected when every value there equals the fill value (zarr omits such "
                f"chunks); otherwise the store is incomplete:\n  {lines}",
                IncompleteStoreWarning,
                stacklevel=3,
            )


def _is_zarr_array(node: Any) -> bool:
    return hasattr(node, "metadata") and hasattr(node, "_iter_chunk_coords")


def _listing(array: Any) -> set[str] | None:
    """Every key under the store root (relative), listed once, or ``None`` if not listable."""
    from zarr.core.sync import sync

    store = array.store_path.store

    async def collect() -> set[str]:
        return {key async for key in store.list()}

    try:
        return sync(collect())
    except Exception:
        logger.debug("cannot list %r; chunk presence not checked", store, exc_info=True)
        return None


def _missing_coords(array: Any, keys: set[str]) -> Iterator[tuple[int, ...]]:
    """Chunk-grid coordinates of ``array`` whose stored object is absent from ``keys``."""
    # one stored object per shard (sharded arrays) or per chunk
    grid = array._iter_shard_coords() if array.shards else array._iter_chunk_coords()
    prefix = array.store_path.path
    prefix = f"{prefix}/" if prefix else ""
    for coords in grid:
        if prefix + array.metadata.encode_chunk_key(coords) not in keys:
            yield tuple(int(c) for c in coords)


def missing_rows(array: Any, keys: set[str]) -> list[tuple[int, int]]:
    """Row ranges ``[start, stop)`` (first axis) of ``array`` covered by missing chunks,
    merged where adjacent."""
    if array.ndim == 0 or array.shape[0] == 0:
        return []
    step = int((array.shards or array.chunks)[0])
    n = int(array.shape[0])
    starts = sorted({c[0] * step for c in _missing_coords(array, keys)})
    ranges: list[tuple[int, int]] = []
    for a in starts:
        b = min(n, a + step)
        if ranges and ranges[-1][1] == a:
            ranges[-1] = (ranges[-1][0], b)
        else:
            ranges.append((a, b))
    return ranges


def _rows(ranges: list[tuple[int, int]], unit: str = "rows") -> str:
    shown = ", ".join(f"{a:,}-{b - 1:,}" for a, b in ranges[:4])
    more = f" and {len(ranges) - 4} more ranges" if len(ranges) > 4 else ""
    return f"{unit} {shown}{more}"


def _arrays(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """``(path, array)`` of every array under ``node`` (a group or an array)."""
    if _is_zarr_array(node):
        yield path, node
        return
    if hasattr(node, "keys"):
        for key in node:
            yield from _arrays(node[key], f"{path}/{key}")


def _fill_value(array: Any) -> Any:
    fill = getattr(array.metadata, "fill_value", None)
    return getattr(array, "fill_value", None) if fill is None else fill


def _suspicious(array: Any, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The missing ranges that an omitted all-fill chunk does not explain.

    Values that fill whole chunks come in runs (cells sorted by a category, a column of
    zeros), so the stored values next to a legitimately omitted range are the fill value
    too, unless a run ends exactly on a chunk boundary. A range with a different neighbour
    is suspicious; reading the neighbours costs one chunk each.
    """
    fill = np.asarray(_fill_value(array))
    n = int(array.shape[0])
    out = []
    for a, b in ranges:
        neighbours = [i for i in (a - 1, b) if 0 <= i < n]
        values = [np.asarray(array[i]) for i in neighbours]
        same = all(
            np.array_equal(v, fill, equal_nan=v.dtype.kind == "f" and fill.dtype.kind == "f")
            for v in values
        )
        if not same:
            out.append((a, b))
    return out


def _fill_reading(array: Any, categories: Any | None) -> str:
    fill = _fill_value(array)
    if categories is not None:
        try:
            code = int(fill)
        except (TypeError, ValueError):
            return "as missing"
        if 0 <= code < len(categories):
            return f"as category {str(categories[code])!r}"
        return "as missing"
    return f"as {fill!r}"


def check_store(
    root: Any,
    *,
    matrices: Iterable[str] = ("X",),
    embeddings: Callable[[str], bool] | None = None,
    graphs: bool = True,
) -> StoreReport:
    """Compare a zarr AnnData store's chunk objects with the chunks its arrays should have.

    Parameters
    ----------
    root
        The store's root group (``zarr.open_group(..., mode="r")``). Anything else (an
        h5py file) is not checked: HDF5 has no missing-chunk failure of this kind.
    matrices
        Expression elements to check (``"X"``, ``"layers/counts"``); only sparse ones can
        be judged (see the module notes).
    embeddings
        Which ``obsm`` keys will be drawn (default: all); their missing chunks are errors.
    graphs
        Check the sparse ``obsp`` matrices too.

    Returns
    -------
    StoreReport
        Empty when the store is whole (or cannot be listed).
    """
    report = StoreReport()
    first = next((a for _, a in _arrays(root, "")), None) if hasattr(root, "keys") else None
    if first is None:
        return report
    keys = _listing(first)
    if keys is None:
        return report

    def hard(path: str, array: Any, what: str, unit: str = "rows") -> None:
        ranges = missing_rows(array, keys)
        if ranges:
            report.errors.append(f"{path.lstrip('/')} ({what}): {_rows(ranges, unit)}")

    for section in ("obs", "var"):
        if section not in root:
            continue
        group = root[section]
        index_key = group.attrs.get("_index")
        if index_key is not None and index_key in group:
            hard(f"{section}/{index_key}", group[index_key], f"{section} names")
        if section != "obs":
            continue
        for key in group:
            if key == index_key:
                continue
            node = group[key]
            if _is_zarr_array(node):
                ranges = _suspicious(node, missing_rows(node, keys))
                if ranges:
                    report.warnings.append(
                        f"obs/{key}: {_rows(ranges)} read {_fill_reading(node, None)}"
                    )
            elif hasattr(node, "keys") and "codes" in node and "categories" in node:
                ranges = _suspicious(node["codes"], missing_rows(node["codes"], keys))
                if ranges:
                    hard(f"obs/{key}/categories", node["categories"], "category names", "entries")
                    cats = np.asarray(node["categories"][:])
                    report.warnings.append(
                        f"obs/{key}: {_rows(ranges)} read {_fill_reading(node['codes'], cats)}"
                    )
    if "obsm" in root:
        for key in root["obsm"]:
            if embeddings is not None and not embeddings(str(key)):
                continue
            node = root["obsm"][key]
            if _is_zarr_array(node):
                hard(f"obsm/{key}", node, "embedding coordinates")
    sparse: list[str] = [m for m in matrices if m in root]
    if graphs and "obsp" in root:
        sparse += [f"obsp/{key}" for key in root["obsp"]]
    for element in sparse:
        node = root[element]
        if hasattr(node, "keys") and {"data", "indices", "indptr"} <= set(node.keys()):
            for part in ("indptr", "indices", "data"):
                hard(f"{element}/{part}", node[part], "sparse matrix structure", "entries")
    return report


def check_indptr(
    indptr: np.ndarray, *, start: int, total: int, nnz: int, where: str, source: str = ""
) -> np.ndarray:
    """Check a window ``indptr[start:start + len]`` of a sparse matrix of ``total`` rows
    (or columns) plus one, holding ``nnz`` stored values; ``where`` names the element
    (``"X/indptr"``) and ``source`` the store.

    The first entry must be 0, the entries non-decreasing and within ``[0, nnz]``, and the
    last equal to ``nnz``. A lost chunk reads as zeros, which breaks these rules unless it
    is the leading run of empty rows, which is indeed all zeros.

    Raises
    ------
    IncompleteStoreError
        Naming ``where``, the first bad position and the fix.
    """
    p = np.asarray(indptr)
    if p.size == 0:
        return p
    problem = None
    if start == 0 and p[0] != 0:
        problem = f"indptr[0] is {int(p[0])}, not 0"
    elif p.size > 1 and bool((np.diff(p) < 0).any()):
        at = start + int(np.flatnonzero(np.diff(p) < 0)[0]) + 1
        problem = f"indptr decreases at position {at:,}"
    elif int(p.min()) < 0 or int(p.max()) > nnz:
        problem = f"indptr leaves [0, {nnz:,}] (the stored value count)"
    elif start + p.size == total and int(p[-1]) != nnz:
        problem = f"indptr ends at {int(p[-1]):,}, but {nnz:,} values are stored"
    if problem is not None:
        public = f"{where}: {problem}. {_FIX}"
        raise IncompleteStoreError(f"{source}: {public}" if source else public, public)
    return p
