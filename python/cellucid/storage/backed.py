"""An expression matrix that stays on disk: row chunks and gene columns, read on demand.

A backed ``.h5ad`` (``anndata.read_h5ad(path, backed="r")``) or a ``.zarr`` store holds ``X``
as a dense array or as a sparse group (``indptr``, ``indices``, ``data``; CSR or CSC).
:class:`BackedMatrix` wraps any of them without reading a single stored value when it is
opened (only shapes, dtypes and attributes), and then reads:

- **CSC**: one gene is one slice of ``indices``/``data`` (``indptr`` is read once, it is
  ``n_genes + 1`` integers);
- **dense**: column blocks by h5py/zarr slicing aligned to the chunk layout;
- **CSR**: from a ready :class:`~cellucid.storage.column_cache.ColumnCache` when one is
  attached (an on-disk CSC copy; one slice per gene), otherwise by a *batched scan*: the rows
  are read once, in row chunks, and every requested gene of a block is picked out in that
  one pass. A block holds at most ``block_values`` stored values, so a request for all genes
  costs ``ceil(nnz / block_values)`` passes, never one pass per gene.

:class:`BackedMatrix` satisfies the :class:`~cellucid.storage.blocks.GeneMatrix` protocol, so
``prepare()`` and the server can stream genes from a backed file like from memory. The file
may be local or at an fsspec URL (:mod:`cellucid.storage.stores`).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .blocks import (
    DEFAULT_BLOCK_VALUES,
    DenseBlock,
    GeneBlock,
    SparseBlock,
    genes_per_block,
    nnz_batches,
    sorted_batches,
)
from .integrity import check_indptr
from .lazy_sparse import sp
from .stores import PathLike, StorageOptions, is_url, local_path

if TYPE_CHECKING:
    from .column_cache import ColumnCache

Format = Literal["csr", "csc", "dense"]

#: stored values read per row chunk by the CSR scan (about 10 bytes each while scanned)
DEFAULT_SCAN_VALUES = 4_000_000
#: rows of a CSR ``indptr`` read at a time when cutting row chunks (8 MiB of int64)
_INDPTR_WINDOW = 1 << 20
#: bytes of a dense slab read at once
_DENSE_SLAB_BYTES = 64 << 20

_SPARSE_ENCODINGS = {"csr_matrix": "csr", "csc_matrix": "csc"}


@dataclass
class RowChunk:
    """Rows ``[start, stop)`` of a cell-major matrix as canonical CSR arrays.

    ``indptr`` starts at 0; within a row ``indices`` are strictly increasing (duplicates of the
    source were summed). ``data`` is ``None`` when the chunk was read for its structure only.
    """

    start: int
    stop: int
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray | None


def _attr(attrs: Any, key: str) -> Any:
    value = attrs.get(key)
    if isinstance(value, bytes):
        value = value.decode()
    return value


def _is_group(obj: Any) -> bool:
    return hasattr(obj, "keys") and hasattr(obj, "attrs") and not hasattr(obj, "dtype")


def _sparse_layout(group: Any) -> tuple[str, tuple[int, int]]:
    """``(format, shape)`` of an AnnData sparse group (current or legacy h5sparse attrs)."""
    attrs = group.attrs
    enc = _attr(attrs, "encoding-type")
    fmt = _SPARSE_ENCODINGS.get(enc) if enc else _attr(attrs, "h5sparse_format")
    shape = attrs.get("shape", attrs.get("h5sparse_shape"))
    if fmt not in ("csr", "csc") or shape is None:
        raise ValueError(
            f"{getattr(group, 'name', group)!r} is not a sparse matrix group "
            f"(encoding-type {enc!r}); expected csr_matrix or csc_matrix"
        )
    missing = [k for k in ("indptr", "indices", "data") if k not in group]
    if missing:
        raise ValueError(f"sparse group {getattr(group, 'name', group)!r} lacks {missing}")
    return fmt, (int(shape[0]), int(shape[1]))


def is_canonical(indptr: np.ndarray, indices: np.ndarray) -> bool:
    """Whether every row of a CSR chunk has strictly increasing column indices."""
    if indices.size < 2:
        return True
    ok = indices[1:] > indices[:-1]
    starts = np.asarray(indptr[1:-1])
    starts = starts[(starts > 0) & (starts < indices.size)]
    ok[starts - 1] = True  # a new row may start anywhere
    return bool(ok.all())


def _runs(cols: np.ndarray, gap: int = 1) -> Iterator[tuple[int, int]]:
    """``(first, last)`` positions in sorted ``cols`` of runs whose steps are ``<= gap``."""
    if cols.size == 0:
        return
    breaks = np.flatnonzero(np.diff(cols) > gap) + 1
    edges = [0, *breaks.tolist(), cols.size]
    for a, b in itertools.pairwise(edges):
        yield a, b - 1


def column_slices_block(
    positions: np.ndarray,
    columns: np.ndarray,
    indptr: np.ndarray,
    read: Any,
    n_cells: int,
    canonical: bool = False,
) -> SparseBlock:
    """A :class:`SparseBlock` of CSC columns, read run by run of consecutive columns.

    ``read(a, b)`` returns ``(indices[a:b], data[a:b])`` of the column-major store.
    """
    cols, column_of = np.unique(columns, return_inverse=True)
    lengths = indptr[cols + 1] - indptr[cols]
    bptr = np.zeros(cols.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=bptr[1:])
    total = int(bptr[-1])
    rows = np.empty(total, dtype=np.int32)
    vals = np.empty(total, dtype=np.float32)
    for a, b in _runs(cols):
        lo, hi = int(indptr[cols[a]]), int(indptr[cols[b] + 1])
        if hi > lo:
            r, v = read(lo, hi)
            rows[bptr[a] : bptr[b + 1]] = r
            vals[bptr[a] : bptr[b + 1]] = v
    if total < np.iinfo(np.int32).max:
        bptr = bptr.astype(np.int32)
    if not canonical:
        m = sp.csc_matrix((vals, rows, bptr), shape=(n_cells, cols.size))
        if not m.has_canonical_format:
            m.sum_duplicates()
            bptr, rows, vals = m.indptr, m.indices, m.data
    return SparseBlock(
        positions, bptr, rows, vals, None if cols.size == columns.size else column_of
    )


class BackedMatrix:
    """Lazy access to an on-disk ``(n_cells, n_genes)`` expression matrix.

    Parameters
    ----------
    x
        An AnnData backed sparse dataset (``adata.X`` of a backed AnnData,
        ``anndata.io.sparse_dataset(group)``), an h5py/zarr sparse *group*
        (``encoding-type`` ``csr_matrix``/``csc_matrix``), or a 2-D h5py ``Dataset`` / zarr
        ``Array`` (dense). Nothing but metadata is read.
    source_path
        The file or store the matrix lives in (a path, or a URL string); needed for
        :meth:`column_cache`.
    storage_options
        fsspec options of a URL ``source_path`` (credentials, endpoint).
    element
        Its path inside the file (``"X"``, ``"layers/counts"``).
    scan_values
        Stored values read per row chunk by the CSR scan.

    Attributes
    ----------
    n_cells, n_genes : int
    format : {"csr", "csc", "dense"}
    dtype : numpy.dtype
        Stored dtype; columns always come out as float32.
    nnz : int
        Stored values (``n_cells * n_genes`` for dense).
    """

    def __init__(
        self,
        x: Any,
        *,
        source_path: PathLike | None = None,
        element: str | None = None,
        scan_values: int = DEFAULT_SCAN_VALUES,
        storage_options: StorageOptions | None = None,
        _owner: Any = None,
    ) -> None:
        self.source_path: str | Path | None = (
            None
            if source_path is None
            else str(source_path)
            if is_url(source_path)
            else Path(source_path)
        )
        self.storage_options = dict(storage_options or {})
        self.element = element
        self.scan_values = max(1, int(scan_values))
        self._owner = _owner  # a file/store opened by :meth:`open`, closed by :meth:`close`
        self._lock = threading.Lock()
        self._indptr: np.ndarray | None = None
        self._cache: ColumnCache | None = None
        if isinstance(x, np.ndarray) or sp.issparse(x):
            raise TypeError(
                "BackedMatrix wraps on-disk matrices; use cellucid.export.genes.gene_matrix "
                "for in-memory ones"
            )
        group = getattr(x, "group", None)  # anndata's backed sparse dataset
        if group is None and _is_group(x):
            group = x
        if group is not None:
            fmt, shape = _sparse_layout(group)
            self.format: Format = fmt  # type: ignore[assignment]
            self._indptr_ds = group["indptr"]
            self._indices_ds = group["indices"]
            self._data_ds = group["data"]
            self.dtype = np.dtype(self._data_ds.dtype)
            self.nnz = int(self._data_ds.shape[0])
            self._dense = None
            if fmt == "csr" and self._indptr_ds.shape[0] != shape[0] + 1:
                raise ValueError(f"CSR indptr has {self._indptr_ds.shape[0]} entries for {shape}")
            if fmt == "csc" and self._indptr_ds.shape[0] != shape[1] + 1:
                raise ValueError(f"CSC indptr has {self._indptr_ds.shape[0]} entries for {shape}")
        elif hasattr(x, "shape") and hasattr(x, "dtype") and len(x.shape) == 2:
            self.format = "dense"
            self._dense = x
            self.dtype = np.dtype(x.dtype)
            shape = (int(x.shape[0]), int(x.shape[1]))
            self.nnz = shape[0] * shape[1]
        else:
            raise TypeError(
                f"cannot read an expression matrix from {type(x).__name__}: expected a backed "
                "sparse dataset, a sparse group, or a 2-D h5py/zarr array"
            )
        if not (np.issubdtype(self.dtype, np.number) or self.dtype == np.bool_):
            raise ValueError(f"expression matrix must be numeric; got dtype {self.dtype}")
        self.n_cells, self.n_genes = shape

    # ------------------------------------------------------------------ constructors
    @classmethod
    def open(
        cls,
        path: PathLike,
        element: str = "X",
        *,
        attach_cache: bool = True,
        storage_options: StorageOptions | None = None,
    ) -> BackedMatrix:
        """Open ``element`` of an ``.h5ad`` file or ``.zarr`` store (v2 or v3) lazily, on
        local disk or at an fsspec URL (:func:`~cellucid.storage.stores.open_store`).

        With ``attach_cache`` a ready column cache of this exact file (default cache folder)
        is used for gene reads; none is built. :meth:`close` closes the file.
        """
        from .stores import open_store

        source = str(path) if is_url(path) else local_path(path)
        root, owner = open_store(source, storage_options)
        try:
            if element not in root:
                raise KeyError(f"{element!r} not found in {source}")
            matrix = cls(
                root[element],
                source_path=source,
                element=element,
                storage_options=storage_options,
                _owner=owner,
            )
        except BaseException:
            if owner is not None:
                owner.close()
            raise
        matrix.root = root  # the open file or store, for reading the annotations lazily
        if attach_cache:
            matrix._attach_existing_cache()
        return matrix

    @classmethod
    def from_anndata(cls, adata: Any, *, attach_cache: bool = True) -> BackedMatrix | None:
        """``adata.X`` of a backed AnnData, or ``None`` when X is in memory or absent.

        (In backed mode AnnData keeps only X on disk; layers are loaded in memory.)
        """
        if not getattr(adata, "isbacked", False):
            return None
        x = adata.X
        if x is None or isinstance(x, np.ndarray) or sp.issparse(x):
            return None
        matrix = cls(x, source_path=getattr(adata, "filename", None), element="X")
        if attach_cache:
            matrix._attach_existing_cache()
        return matrix

    def close(self) -> None:
        """Close the cache and the file opened by :meth:`open` (idempotent)."""
        if self._cache is not None:
            self._cache.close()
        if self._owner is not None:
            self._owner.close()
            self._owner = None

    def __enter__(self) -> BackedMatrix:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"BackedMatrix({self.n_cells} x {self.n_genes}, {self.format}, {self.dtype}, "
            f"nnz={self.nnz}, cache={'ready' if self.cache_ready else 'none'})"
        )

    # ------------------------------------------------------------------ column cache
    @property
    def cache(self) -> ColumnCache | None:
        """The attached column cache (ready or not)."""
        return self._cache

    @property
    def cache_ready(self) -> bool:
        return self._cache is not None and self._cache.ready

    def attach_cache(self, cache: ColumnCache | None) -> None:
        """Read genes from ``cache`` as soon as it is ready (``None`` detaches)."""
        if cache is not None and (cache.n_cells, cache.n_genes) != (self.n_cells, self.n_genes):
            raise ValueError(
                f"column cache shape {(cache.n_cells, cache.n_genes)} does not match "
                f"{(self.n_cells, self.n_genes)}"
            )
        self._cache = cache

    def column_cache(
        self, cache_dir: PathLike | None = None, *, memory_budget: int | None = None
    ) -> ColumnCache:
        """The column cache of this matrix (created, not built), attached for reads.

        Build it with ``.build()`` or ``.build_in_background()``; reads switch to it once
        it is ready.
        """
        from .column_cache import DEFAULT_MEMORY_BUDGET, ColumnCache

        if self.source_path is None or self.element is None:
            raise ValueError("a column cache needs source_path and element")
        cache = ColumnCache.for_source(
            self,
            self.source_path,
            self.element,
            cache_dir=cache_dir,
            memory_budget=memory_budget or DEFAULT_MEMORY_BUDGET,
            storage_options=self.storage_options,
        )
        self.attach_cache(cache)
        return cache

    def _attach_existing_cache(self) -> None:
        if self.format == "csc" or self.source_path is None or self.element is None:
            return
        from .column_cache import ColumnCache

        try:
            cache = ColumnCache.for_source(
                self, self.source_path, self.element, storage_options=self.storage_options
            )
        except OSError:
            return
        if cache.ready:
            self._cache = cache

    # ------------------------------------------------------------------ rows
    def _indptr_all(self) -> np.ndarray:
        """The whole ``indptr`` of a CSC matrix (``n_genes + 1`` integers), read once."""
        with self._lock:
            if self._indptr is None:
                self._indptr = self._checked_indptr(0, None)
            return self._indptr

    def _checked_indptr(self, start: int, stop: int | None) -> np.ndarray:
        """``indptr[start:stop]`` as int64, refused when a lost chunk shows in it."""
        p = np.asarray(self._indptr_ds[start:stop], dtype=np.int64)
        return check_indptr(
            p,
            start=start,
            total=int(self._indptr_ds.shape[0]),
            nnz=self.nnz,
            where=f"{self.element or 'X'}/indptr",
            source=str(self.source_path or ""),
        )

    def read_rows(self, start: int, stop: int) -> sp.csr_matrix | np.ndarray:
        """Cells ``[start, stop)`` as stored: a CSR matrix (sparse sources) or an ndarray.

        Cheap for CSR and dense; a CSC source is scanned whole (column chunk by chunk).
        """
        start, stop, _ = slice(start, stop).indices(self.n_cells)
        stop = max(start, stop)
        if self.format == "dense":
            return np.asarray(self._dense[start:stop])
        if self.format == "csr":
            p = self._checked_indptr(start, stop + 1)
            a, b = int(p[0]), int(p[-1])
            return sp.csr_matrix(
                (np.asarray(self._data_ds[a:b]), np.asarray(self._indices_ds[a:b]), p - a),
                shape=(stop - start, self.n_genes),
            )
        indptr = self._indptr_all()
        rows, cols, vals = [], [], []
        for j0, j1 in self._csc_column_chunks(indptr, self.scan_values):
            a, b = int(indptr[j0]), int(indptr[j1])
            r = np.asarray(self._indices_ds[a:b])
            hit = np.flatnonzero((r >= start) & (r < stop))
            if hit.size:
                rows.append(r[hit] - start)
                cols.append(np.searchsorted(indptr[j0 : j1 + 1], a + hit, side="right") - 1 + j0)
                vals.append(np.asarray(self._data_ds[a:b])[hit])
        if not rows:
            return sp.csr_matrix((stop - start, self.n_genes), dtype=self.dtype)
        return sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(stop - start, self.n_genes),
        )

    @staticmethod
    def _csc_column_chunks(indptr: np.ndarray, max_values: int) -> Iterator[tuple[int, int]]:
        j, n = 0, indptr.size - 1
        while j < n:
            k = int(np.searchsorted(indptr, indptr[j] + max_values, side="right")) - 1
            k = min(max(k, j + 1), n)
            yield j, k
            j = k

    def _csr_cuts(self, max_values: int) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(start, stop, indptr[start:stop + 1])`` of row chunks of ``<= max_values`` values
        (a single longer row forms its own chunk)."""
        n = self.n_cells
        r = 0
        while r < n:
            w_end = min(n, r + _INDPTR_WINDOW)
            p = self._checked_indptr(r, w_end + 1)
            i, nw = 0, w_end - r
            while i < nw:
                j = int(np.searchsorted(p, p[i] + max_values, side="right")) - 1
                j = min(max(j, i + 1), nw)
                yield r + i, r + j, p[i : j + 1]
                i = j
            r = w_end

    def iter_row_chunks(self, max_values: int, *, values: bool = True) -> Iterator[RowChunk]:
        """Canonical CSR row chunks of at most ``max_values`` stored values, in row order.

        For a CSR source, ``values=False`` skips reading ``data`` when a chunk is already
        canonical (its structure is enough to count entries per gene). Dense sources are
        converted chunk by chunk (zeros dropped). Not available for CSC.
        """
        if self.format == "csc":
            raise ValueError("row chunks of a CSC matrix need a full scan; use read_rows")
        if self.format == "dense":
            yield from self._dense_row_chunks(max_values)
            return
        small = self.n_genes < np.iinfo(np.int32).max
        for r0, r1, p in self._csr_cuts(max_values):
            a, b = int(p[0]), int(p[-1])
            local = p - a
            if b - a < np.iinfo(np.int32).max:
                local = local.astype(np.int32)
            indices = np.asarray(self._indices_ds[a:b])
            if small and indices.dtype != np.int32:
                indices = indices.astype(np.int32)
            canonical = is_canonical(local, indices)
            data = np.asarray(self._data_ds[a:b]) if values or not canonical else None
            if not canonical:
                m = sp.csr_matrix((data, indices, local), shape=(r1 - r0, self.n_genes))
                m.sum_duplicates()
                local, indices, data = m.indptr, m.indices, m.data
            yield RowChunk(r0, r1, local, indices, data)

    def _dense_row_chunks(self, max_values: int) -> Iterator[RowChunk]:
        g = max(self.n_genes, 1)
        rows = max(1, max_values // g)
        chunks = getattr(self._dense, "chunks", None)
        if chunks and rows > chunks[0]:
            rows -= rows % chunks[0]  # whole chunks per read
        for r0 in range(0, self.n_cells, rows):
            r1 = min(self.n_cells, r0 + rows)
            m = sp.csr_matrix(np.asarray(self._dense[r0:r1]))
            yield RowChunk(r0, r1, m.indptr, m.indices, m.data)

    # ------------------------------------------------------------------ columns
    def blocks(
        self, columns: np.ndarray, block_values: int = DEFAULT_BLOCK_VALUES
    ) -> Iterator[GeneBlock]:
        """Blocks that together cover every entry of ``columns`` exactly once
        (:class:`~cellucid.export.genes.GeneMatrix` protocol)."""
        columns = np.asarray(columns, dtype=np.int64)
        if columns.size and (columns.min() < 0 or columns.max() >= self.n_genes):
            raise IndexError(f"gene column out of range [0, {self.n_genes})")
        cache = self._cache
        if cache is not None and cache.ready:
            yield from cache.blocks(columns, block_values)
        elif self.format == "csc":
            yield from self._csc_blocks(columns, block_values)
        elif self.format == "dense":
            yield from self._dense_blocks(columns, block_values)
        else:
            yield from self._scan_blocks(columns, block_values)

    def column(self, j: int, out: np.ndarray | None = None) -> np.ndarray:
        """The dense float32 column of gene ``j`` (fills and returns ``out`` when given)."""
        j = int(j)
        if not 0 <= j < self.n_genes:
            raise IndexError(f"gene column {j} out of range [0, {self.n_genes})")
        buf = out if out is not None else np.empty(self.n_cells, dtype=np.float32)
        for block in self.blocks(np.array([j])):
            col = block.column(0, buf)
            if col is not buf:
                buf[:] = col
        return buf

    def columns(self, js: Any, block_values: int = DEFAULT_BLOCK_VALUES) -> np.ndarray:
        """``(len(js), n_cells)`` float32 columns, read in as few passes as ``block_values``
        allows (one scan of a CSR source per block)."""
        js = np.asarray(js, dtype=np.int64).reshape(-1)
        out = np.empty((js.size, self.n_cells), dtype=np.float32)
        for block in self.blocks(js, block_values):
            for i, p in enumerate(block.positions):
                row = out[p]
                col = block.column(i, row)
                if col is not row:
                    row[:] = col
        return out

    def _csc_blocks(self, columns: np.ndarray, block_values: int) -> Iterator[SparseBlock]:
        indptr = self._indptr_all()

        def read(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
            return np.asarray(self._indices_ds[a:b]), np.asarray(self._data_ds[a:b])

        for pos in nnz_batches(columns, np.diff(indptr), block_values):
            yield column_slices_block(pos, columns[pos], indptr, read, self.n_cells)

    def _dense_blocks(self, columns: np.ndarray, block_values: int) -> Iterator[DenseBlock]:
        ds, n = self._dense, self.n_cells
        chunks = getattr(ds, "chunks", None)
        # chunked layouts are read in whole chunks: row slabs in chunk multiples, and nearby
        # columns (within one chunk width) in one slice
        gap = max(1, int(chunks[1])) if chunks else 1
        per = genes_per_block(n * self.n_genes, self.n_genes, block_values)
        for pos in sorted_batches(columns, per):
            cols, column_of = np.unique(columns[pos], return_inverse=True)
            rows = np.empty((cols.size, n), dtype=np.float32)
            for a, b in _runs(cols, gap):
                c0, c1 = int(cols[a]), int(cols[b]) + 1
                width = c1 - c0
                row_step = max(1, _DENSE_SLAB_BYTES // max(1, width * self.dtype.itemsize))
                if chunks and row_step > chunks[0]:
                    row_step -= row_step % chunks[0]
                pick = cols[a : b + 1] - c0
                for r0 in range(0, n, row_step):
                    r1 = min(n, r0 + row_step)
                    slab = np.asarray(ds[r0:r1, c0:c1])
                    rows[a : b + 1, r0:r1] = slab[:, pick].T
            if cols.size != pos.size:
                rows = rows[column_of]
            yield DenseBlock(pos, rows)

    def _scan_blocks(self, columns: np.ndarray, block_values: int) -> Iterator[SparseBlock]:
        per = genes_per_block(self.nnz, self.n_genes, block_values)
        for pos in sorted_batches(columns, per):
            cols, column_of = np.unique(columns[pos], return_inverse=True)
            indptr, rows, vals = self._scan(cols)
            yield SparseBlock(pos, indptr, rows, vals, None if cols.size == pos.size else column_of)

    def _scan(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSC arrays of the sorted unique ``cols`` of a CSR source, in one pass over rows."""
        slot = np.full(self.n_genes, -1, dtype=np.int32)
        slot[cols] = np.arange(cols.size, dtype=np.int32)
        rows_p: list[np.ndarray] = []
        cols_p: list[np.ndarray] = []
        vals_p: list[np.ndarray] = []
        for r0, _r1, p in self._csr_cuts(self.scan_values):
            a, b = int(p[0]), int(p[-1])
            if a == b:
                continue
            k = slot[np.asarray(self._indices_ds[a:b])]
            hit = np.flatnonzero(k >= 0)
            if hit.size == 0:
                continue
            lo, hi = int(hit[0]), int(hit[-1]) + 1  # read data only where the genes are
            vals_p.append(np.asarray(self._data_ds[a + lo : a + hi])[hit - lo])
            cols_p.append(k[hit])
            rows_p.append(np.searchsorted(p, a + hit, side="right") - 1 + r0)
        n = self.n_cells
        if not rows_p:
            return np.zeros(cols.size + 1, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32)
        # COO -> CSC sums duplicate entries and sorts rows within each column
        m = sp.coo_matrix(
            (
                np.concatenate(vals_p).astype(np.float32, copy=False),
                (np.concatenate(rows_p), np.concatenate(cols_p)),
            ),
            shape=(n, cols.size),
        ).tocsc()
        return m.indptr, m.indices, m.data
