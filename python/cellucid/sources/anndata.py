"""An AnnData seen as the files of an export (SPEC §3.4 "virtual files", §6.5).

:class:`AnnDataAdapter` derives its inputs exactly as ``prepare(adata, ...)`` does and builds
the same :class:`~cellucid.export.dataset.ExportDataset`, so every file it serves decodes to
what ``prepare`` would write (with compression and quantisation off). Manifests and the
identity are built once at start; payloads are produced per request; gene columns go through
a byte-bounded LRU. Backed files stay on disk: only obs, obsm, obsp and var are read.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..export.binary import gzip_bytes, le_buffer
from ..export.dataset import DatasetInfo, ExportDataset, ExportSettings, make_source
from ..export.genes import CscGenes, CsrGenes
from ..export.inputs import (
    EmbeddingSpec,
    build_inputs,
    derive_from_anndata,
    embedding_keys,
    embedding_sources,
    export_obsm_keys,
    latent_keys,
)
from ..session.palettes import scanpy_palettes
from ..storage.anndata_io import load_anndata, load_anndata_lazy
from ..storage.backed import BackedMatrix
from ..storage.blocks import iter_columns
from ..storage.column_cache import ColumnCache
from ..storage.lazy_sparse import sp
from ..storage.lru import ColumnLRU
from ..storage.start_memo import StartMemo
from ..storage.stores import StorageOptions, is_url, is_zarr_store, local_path
from .base import DatasetEntry, FileBody, content_type_for
from .deferred import default_names
from .embeddings import ObsmEmbeddings

if TYPE_CHECKING:
    from anndata import AnnData

Format = Literal["h5ad", "zarr", "in-memory"]
#: a one-time CSC copy of an in-memory CSR matrix warns above this size (SPEC §6.5)
CSC_COPY_WARN_BYTES = 2 * 1024**3
#: seconds after start at the latest before the column cache build starts (it starts as soon
#: as the points are served)
CACHE_START_DELAY = 1.0
#: ``.gz`` variants of virtual files are made per request: fast beats small here
GZIP_LEVEL = 1
#: recent gene columns, stored sparse when that is smaller; the byte bound keeps a server
#: within its memory budget even for dense data (SPEC §6.5: an LRU of 100 genes)
LRU_GENES, LRU_BYTES = 100, 192 * 1024**2
#: non-gene payloads (points, obs, edges, vectors) kept as bytes once made
PAYLOAD_BYTES = 512 * 1024**2


class AnnDataAdapter:
    """Serve an AnnData as an export dataset, generating each file on request.

    Parameters follow the upstream adapter (SPEC §6.5); ``layer`` picks an expression
    layer instead of ``X``.

    Examples
    --------
    >>> import scanpy as sc
    >>> adapter = AnnDataAdapter(sc.datasets.pbmc68k_reduced())
    >>> adapter.health()["n_cells"]
    700
    >>> body = adapter.open(adapter.datasets()[0], "obs_manifest.json")
    >>> body.content_type
    'application/json'
    """

    kind: Literal["anndata"] = "anndata"

    def __init__(
        self,
        adata: AnnData,
        latent_key: str | None = None,
        gene_id_column: str | None = "index",
        normalize_embeddings: bool = True,
        centroid_outlier_quantile: float | None = 0.95,
        centroid_min_points: int = 10,
        dataset_name: str | None = None,
        dataset_id: str | None = None,
        connectivity: bool = True,
        obs_keys: list[str] | None = None,
        *,
        layer: str | None = None,
        embedding: EmbeddingSpec | None = None,
        cache_columns: bool = True,
        _format: Format = "in-memory",
        _path: str | Path | None = None,
        _matrix: BackedMatrix | None = None,
    ) -> None:
        self.adata: AnnData | None = adata  # None once a file's annotations are encoded
        self.format: Format = _format
        self.path = _path
        self.is_backed = _matrix is not None or bool(getattr(adata, "isbacked", False))
        self._lock = threading.RLock()
        self._closed = False
        ident, dataset_name, file_name = default_names(_path, dataset_name, dataset_id)
        info = DatasetInfo(
            id=ident,
            name=dataset_name,
            description="Loaded directly from AnnData",
            source=make_source(file_name, filename=file_name) if file_name else None,
        )
        settings = ExportSettings(
            centroid_outlier_quantile=centroid_outlier_quantile,
            centroid_min_points=centroid_min_points,
        )
        lazy = {"gene_expression": _matrix, "var": adata.var} if _matrix is not None else {}
        derived = derive_from_anndata(
            adata,
            layer=None if _matrix is not None else layer,
            latent_key=latent_key,
            connectivity=connectivity,
            overrides=lazy,
            embedding=embedding,
        )
        latent_from = derived.pop("latent_key", None)
        self.embeddings = _obsm_embeddings(
            adata,
            _path if _matrix is not None else None,
            embedding,
            normalize_embeddings,
            _matrix.storage_options if _matrix is not None else None,
        )
        inputs = build_inputs(
            info=info,
            settings=settings,
            points={d: derived.pop(f"X_umap_{d}d", None) for d in (1, 2, 3)},
            obs_keys=obs_keys,
            var_gene_id_column=gene_id_column,
            latent_key=latent_from,
            normalize_embeddings=normalize_embeddings,
            lazy=True,
            **derived,
        )
        inputs.points = {d: a for d, a in inputs.points.items() if a is not None}
        if _matrix is not None and _path is not None:  # a file: an earlier start's results
            inputs.memo = StartMemo.for_file(
                _path,
                {"embeddings": self.embeddings.current, "normalize": normalize_embeddings},
            )
        self.dataset = ExportDataset(inputs)
        if inputs.memo is not None:
            inputs.memo.save()
        # Cell names for the viewer's hover (GET /_cellucid/obs_names): not an export file.
        self._obs_names = adata.obs_names
        #: scanpy's category colours of the served obs fields (the default session's
        #: ``cellucid/palettes`` chunk, session/palettes.py); invalid ones warned about here
        self.palettes = scanpy_palettes(getattr(adata, "uns", {}) or {}, adata.obs, obs_keys)
        self._manifests = self.dataset.manifest_bytes()
        self._payloads = self.dataset.payload_producers()
        self._genes = self.dataset.gene_paths()
        self._columns = ColumnLRU(LRU_GENES, max_bytes=LRU_BYTES)
        self._made = ColumnLRU(1024, max_bytes=PAYLOAD_BYTES)
        self._csc_ready = False
        self.column_cache: ColumnCache | None = None
        genes = self.dataset.genes
        # from backed CSR one gene costs a pass over the matrix until the column cache exists
        backed_csr = isinstance(genes, BackedMatrix) and genes.format == "csr"
        self._cache_timer: threading.Timer | None = None
        self._cache_start_lock = threading.Lock()
        if cache_columns and backed_csr and not genes.cache_ready:
            self.column_cache = genes.column_cache()
            # once the viewer has its points (or a moment later): the build's process start
            # and its reads would otherwise compete with the first files for the two cores
            self._cache_timer = threading.Timer(CACHE_START_DELAY, self._start_column_cache)
            self._cache_timer.daemon = True
            self._cache_timer.start()
        self._etag_seed = hashlib.sha1(
            f"{info.id}|{self.dataset.created_at}|{id(self)}".encode()
        ).hexdigest()[:16]

    # ----- construction helpers
    @classmethod
    def from_file(
        cls,
        path: str | Path,
        backed: bool | str = "r",
        *,
        layer: str | None = None,
        storage_options: StorageOptions | None = None,
        **kwargs: Any,
    ) -> AnnDataAdapter:
        """Open an ``.h5ad`` or a ``.zarr`` store, on local disk or at an fsspec URL
        (``s3://…``; ``storage_options`` for credentials and endpoints). By default only the
        annotations are read and the expression matrix stays where it is (``backed=False``
        loads a local .h5ad fully)."""
        remote = is_url(path)
        p: str | Path = str(path) if remote else local_path(path).resolve()
        fmt: Format = "zarr" if is_zarr_store(p, storage_options) else "h5ad"
        if backed or fmt == "zarr" or remote:
            latent, shown = latent_keys(kwargs.get("latent_key")), kwargs.get("embedding")
            adata, matrix = load_anndata_lazy(
                p,
                layer=layer,
                obsm_keys=export_obsm_keys(kwargs.get("latent_key"), shown),
                storage_options=storage_options,
                # the graph and the latent space are read when (and as far as) needed
                lazy_obsp=True,
                lazy_obsm=lambda key: key in latent and key not in embedding_keys(shown),
            )
            adapter = cls(adata, _format=fmt, _path=p, _matrix=matrix, **kwargs)
            adapter.adata = None  # ours, and fully encoded: free obs, var and obsm
            return adapter
        return cls(load_anndata(p), _format=fmt, _path=p, layer=layer, **kwargs)

    # ----- DataSource
    @property
    def n_cells(self) -> int:
        return self.dataset.n_cells

    @property
    def n_genes(self) -> int:
        return len(self.dataset.gene_ids)

    def datasets(self) -> list[DatasetEntry]:
        ident = self.dataset.info
        return [DatasetEntry(id=ident.id, name=ident.name, path="/")]

    def health(self) -> dict[str, Any]:
        return {
            "type": "anndata",
            "format": self.format,
            "is_backed": self.is_backed,
            "n_cells": self.n_cells,
            "n_genes": self.n_genes,
        }

    def status(self) -> dict[str, Any]:
        """The column cache's state for ``/_cellucid/info`` (PROTOCOL.md): ``state`` is
        ``"pending"`` (the build is scheduled), ``"building"``, ``"ready"``, ``"idle"``,
        ``"error"`` or ``"none"`` (no cache: genes are read directly), with ``progress``
        (0-1) and ``error``."""
        cache = self.column_cache
        if cache is not None:
            status = cache.status()
            if status["state"] == "idle" and self._cache_timer is not None:
                # scheduled, not started yet: a viewer keeps polling (idle would stop it)
                return {"state": "pending", "progress": None, "error": None}
            return status
        genes = self.dataset.genes
        if isinstance(genes, BackedMatrix) and genes.cache_ready:
            return {"state": "ready", "progress": 1.0, "error": None}
        return {"state": "none", "progress": None, "error": None}

    def identity(self) -> dict[str, Any]:
        return self.dataset.identity()

    def obs_names(self, dataset: DatasetEntry | None = None) -> Any:
        """The AnnData's ``obs_names`` (a pandas Index), in cell order."""
        return self._obs_names

    def open(self, dataset: DatasetEntry, relpath: str) -> FileBody | None:
        gz = relpath.endswith(".gz")
        base = relpath[:-3] if gz else relpath
        raw = self.raw_payload(base)
        if raw is None or (gz and base.endswith(".json")):
            return None
        data = gzip_bytes(raw, GZIP_LEVEL) if gz else raw
        etag = f'"{self._etag_seed}-{hashlib.sha1(relpath.encode()).hexdigest()[:12]}"'
        return FileBody.from_bytes(data, content_type_for(relpath), etag)

    def raw_payload(self, relpath: str) -> bytes | memoryview | None:
        """The uncompressed bytes of a file of the dataset, or ``None`` if there is none."""
        if relpath in self._manifests:
            return self._manifests[relpath]
        producer = self._payloads.get(relpath)
        if producer is not None:  # made once, then served from memory (points at 1M: 8 MB)
            if relpath.startswith("points_"):
                self._start_column_cache()
            return self._made.get_or_load(relpath, lambda _key: producer())
        index = self._genes.get(relpath)
        if index is not None:
            return self.gene_payload(index)
        return None

    def _start_column_cache(self) -> None:
        """Start building the column cache (once; in a child process; never after close)."""
        if self._cache_timer is None:
            return
        with self._cache_start_lock:  # close() takes it too: no build starts after it
            timer = self._cache_timer
            if timer is not None and not self._closed and self.column_cache is not None:
                timer.cancel()
                self.column_cache.build_in_background(process=True)
            # only now: until the build's thread runs, status() says "pending" (a viewer
            # that read "idle" in between would stop polling and never show the build)
            self._cache_timer = None

    def gene_payload(self, index: int) -> bytes:
        """One gene's float32 column (LRU-cached; concurrent requests share one read)."""
        stored = self._columns.get_or_load(index, self._load_gene)
        return _expand(stored, self.n_cells)

    def _load_gene(self, index: int) -> tuple[np.ndarray, np.ndarray] | bytes:
        with self._lock:  # one reader at a time for backed files and the CSC copy
            self._prepare_columns()
            column = np.asarray(self.dataset.gene_columns[index : index + 1])
            ((_, values),) = iter_columns(self.dataset.genes, column)
            return _compact(values)

    def _prepare_columns(self) -> None:
        """Give an in-memory CSR matrix a one-time CSC copy, so a column costs one slice."""
        if self._csc_ready:
            return
        genes = self.dataset.genes
        if isinstance(genes, CsrGenes):
            m = genes.matrix
            size = m.data.nbytes + m.indices.nbytes + 8 * (m.shape[1] + 1)
            if size > CSC_COPY_WARN_BYTES:
                warnings.warn(
                    f"making a {size / 2**30:.1f} GiB column-major copy of the expression matrix "
                    "for fast gene reads; save the AnnData as CSC or export it with prepare()",
                    stacklevel=3,
                )
            self.dataset.genes = CscGenes(sp.csc_matrix(m))
        self._csc_ready = True

    def close(self) -> None:
        """Release the backed file (idempotent)."""
        with self._cache_start_lock:  # first: a gene read may hold self._lock for long
            if self._closed:
                return
            self._closed = True
            if self._cache_timer is not None:
                self._cache_timer.cancel()
            if self.column_cache is not None:
                self.column_cache.cancel()
        with self._lock:
            if isinstance(self.dataset.genes, BackedMatrix):
                self.dataset.genes.close()
            file = getattr(self.adata, "file", None)
            if getattr(self.adata, "isbacked", False) and file is not None:
                file.close()

    def __enter__(self) -> AnnDataAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _obsm_embeddings(
    adata: AnnData,
    path: str | Path | None,
    embedding: EmbeddingSpec | None,
    normalize: bool,
    storage_options: StorageOptions | None = None,
) -> ObsmEmbeddings:
    """Every obsm embedding of the data, for the viewer's embedding switch (read lazily from
    the file when the AnnData in memory holds only what the export needs)."""
    current = embedding_sources(adata.obsm, adata.n_obs, embedding)
    if path is not None:
        return ObsmEmbeddings.from_file(
            path, adata.n_obs, current, normalize=normalize, storage_options=storage_options
        )
    return ObsmEmbeddings.from_anndata(adata, current, normalize=normalize)


def _compact(values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | bytes:
    """A gene column as (rows, values) when sparse storage is smaller, else its bytes."""
    rows = np.flatnonzero(values)
    if rows.size * 8 < values.size * 4:
        return rows.astype(np.uint32), values[rows].astype(np.float32)
    return bytes(le_buffer(values, "<f4"))


def _expand(stored: tuple[np.ndarray, np.ndarray] | bytes, n: int) -> bytes:
    if isinstance(stored, bytes):
        return stored
    rows, vals = stored
    out = np.zeros(n, dtype=np.float32)
    out[rows] = vals
    return bytes(le_buffer(out, "<f4"))
