"""One dataset in the export format, as a set of files: manifests plus payload producers.

:class:`ExportDataset` is the single place that knows which file holds what. ``prepare``
writes every file it lists to disk; the server serves the same files on request. Both get
the bytes from the same methods, so a served file and a written file cannot drift apart.

Building an ``ExportDataset`` validates everything (shapes, names, limits) and computes the
small derived data (normalised points, codes, centroids, outlier quantiles, edges); gene
columns are produced on demand, one by one or in blocks.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .._version import __version__
from ..storage.anndata_io import LazyElement
from ..storage.blocks import GeneBlock, GeneMatrix
from ..storage.dask import is_dask_array
from . import encode as enc
from .binary import EXT_DTYPE_NAMES, le_buffer, le_bytes
from .naming import (
    CONNECTIVITY_DIR,
    CONNECTIVITY_MANIFEST_FILE,
    IDENTITY_FILE,
    OBS_DIR,
    OBS_MANIFEST_FILE,
    VAR_DIR,
    VAR_MANIFEST_FILE,
    VECTORS_DIR,
    check_names,
    safe_name,
    with_gz,
)

#: from this many cells on, category centroids are computed on a thread per core
PARALLEL_CENTROID_CELLS = 200_000


# --------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class ExportSettings:
    """Options that change payload bytes (SPEC §6.2); validated on construction."""

    compression: int | None = None
    var_quantization: int | None = None
    obs_continuous_quantization: int | None = None
    obs_categorical_dtype: str = "auto"
    centroid_outlier_quantile: float | None = 0.95
    centroid_min_points: int = 10

    def __post_init__(self) -> None:
        c = self.compression
        if c is not None and (
            isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c <= 9
        ):
            raise ValueError(f"compression must be None, 0 (off) or a gzip level 1-9; got {c!r}")
        object.__setattr__(self, "compression", int(c) if c else None)
        for name in ("var_quantization", "obs_continuous_quantization"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or v not in (8, 16)):
                raise ValueError(f"{name} must be None, 8 or 16; got {v!r}")
            object.__setattr__(self, name, None if v is None else int(v))
        if self.obs_categorical_dtype not in ("auto", "uint8", "uint16"):
            raise ValueError(
                "obs_categorical_dtype must be 'auto', 'uint8' or 'uint16'; "
                f"got {self.obs_categorical_dtype!r}"
            )
        q = self.centroid_outlier_quantile
        if q is not None and (
            isinstance(q, bool)
            or not isinstance(q, (int, float, np.floating))
            or not 0.5 < float(q) < 1
        ):
            raise ValueError(
                f"centroid_outlier_quantile must be None or strictly between 0.5 and 1; got {q!r}"
            )
        object.__setattr__(self, "centroid_outlier_quantile", None if q is None else float(q))
        m = self.centroid_min_points
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise ValueError(f"centroid_min_points must be an integer >= 1; got {m!r}")
        object.__setattr__(self, "centroid_min_points", int(m))


@dataclass
class DatasetInfo:
    """Identity metadata (SPEC §2.10)."""

    id: str
    name: str
    description: str = ""
    source: dict[str, str] | None = None
    created_at: str | None = None  # set when the dataset is built

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(
                f"dataset_name must contain a non-whitespace character; got {self.name!r}"
            )
        if (
            not isinstance(self.id, str)
            or not self.id
            or self.id != self.id.strip()
            or any(ord(ch) < 32 or ord(ch) == 127 for ch in self.id)
        ):
            raise ValueError(
                f"dataset_id must be a non-empty string without surrounding whitespace or control "
                f"characters; got {self.id!r} (try {safe_name(self.id)!r})"
            )
        if not isinstance(self.description, str):
            raise ValueError(f"dataset_description must be a string; got {self.description!r}")


def make_source(
    name: str | None,
    url: str | None = None,
    citation: str | None = None,
    filename: str | None = None,
) -> dict[str, str] | None:
    """Build the identity ``source`` object; blank arguments count as not given."""

    def clean(v: str | None) -> str | None:
        return v if isinstance(v, str) and v.strip() else None

    name, url, citation, filename = clean(name), clean(url), clean(citation), clean(filename)
    if name is None:
        if url or citation:
            raise ValueError("source_url/source_citation need a source_name as well")
        return None
    out = {"name": name}
    for k, v in (("url", url), ("citation", citation), ("filename", filename)):
        if v is not None:
            out[k] = v
    return out


@dataclass
class ExportInputs:
    """Everything an export is made of, before validation and encoding."""

    points: dict[int, Any]
    obs: pd.DataFrame
    info: DatasetInfo
    settings: ExportSettings = field(default_factory=ExportSettings)
    latent: Any = None
    latent_key: str | None = None
    genes: GeneMatrix | None = None
    gene_columns: np.ndarray | None = None  # positions into genes, export order
    gene_ids: list[str] | None = None
    var_gene_id_column: str = "index"
    connectivities: Any = None
    vector_fields: dict[str, Any] | None = None
    normalize_embeddings: bool = True  # False: raw float32 coordinates, scale 1 (AnnData mode)
    #: a server's dataset: outlier quantiles are computed when first asked for (from a latent
    #: space that may stay on disk), and a kNN graph left on disk is read only as far as needed
    lazy: bool = False
    #: results of an earlier start on the same file (centroids, the graph's budget proof):
    #: a :class:`~cellucid.storage.start_memo.StartMemo` (``get``/``put``), or ``None``
    memo: Any = None


# --------------------------------------------------------------------------- encoded fields
@dataclass
class ObsField:
    key: str
    kind: str  # "continuous" | "category"
    values: np.ndarray | None = None  # continuous float32
    quantized: enc.Quantized | None = None
    codes: np.ndarray | None = None  # stored codes (uint8/uint16)
    codes_dtype: str | None = None
    categories: list[str] | None = None
    centroids: dict[str, list[dict[str, Any]]] | None = None
    outliers: np.ndarray | None = None  # float32 quantiles (lazy: computed on first use)
    outliers_q: enc.Quantized | None = None
    raw_codes: np.ndarray | None = None  # category codes (-1: missing), kept for lazy outliers


def _json_compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode()


def _json_pretty(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, allow_nan=False, ensure_ascii=False) + "\n").encode()


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --------------------------------------------------------------------------- the dataset
class ExportDataset:
    """A validated dataset, seen as the files of the export format.

    Paths are relative to the dataset directory and carry ``.gz`` when compression is on.

    Examples
    --------
    >>> import pandas as pd, numpy as np
    >>> ds = ExportDataset(ExportInputs(
    ...     points={2: np.random.rand(50, 2)},
    ...     obs=pd.DataFrame({"cluster": pd.Categorical(["a", "b"] * 25)}),
    ...     info=DatasetInfo(id="demo", name="Demo")))
    >>> sorted(ds.paths())[:3]
    ['dataset_identity.json', 'obs/cluster.codes.u8', 'obs_manifest.json']
    """

    def __init__(self, inputs: ExportInputs) -> None:
        # ``inputs`` is not kept: a server lives long, and the raw embeddings, latent space
        # and connectivity matrix are not needed once encoded
        self.settings = s = inputs.settings
        self.compression = s.compression
        self.info = inputs.info
        # lazy outliers need the latent space later; quantised ones go into the manifest
        self.lazy = inputs.lazy and not s.obs_continuous_quantization
        self._outlier_lock = threading.Lock()
        self._memo = inputs.memo
        graph = inputs.connectivities
        bound: Future[int | None] | None = None
        if inputs.lazy and isinstance(graph, LazyElement) and graph.is_sparse and graph.shape:
            # a stored graph's size is checked while points and obs are encoded (or was, at
            # an earlier start on the same file)
            bound = self._graph_bound(graph)
        self._build_points(inputs.points, inputs.normalize_embeddings)
        self.n_cells = next(iter(self.points.values())).shape[0]
        self._build_latent(inputs.latent, inputs.latent_key)
        self._build_obs(inputs.obs)
        if not self.lazy:
            self.latent = None  # only the outlier quantiles needed it; a server lives long
        self._build_genes(inputs)
        self._build_edges(graph, bound)
        self._build_vectors(inputs.vector_fields)
        self.created_at = self.info.created_at or _utc_now()
        self._gene_ranges: dict[int, tuple[float, float]] = {}

    # ----- building (all validation happens here, before anything is written)
    def _build_points(self, points: dict[int, Any], normalize: bool = True) -> None:
        if 4 in points and points[4] is not None:
            raise NotImplementedError("4D embeddings are not supported (X_umap_4d must be None)")
        given = {d: v for d, v in points.items() if v is not None}
        if not given:
            raise ValueError(
                "no embedding given: pass at least one of X_umap_1d, X_umap_2d or X_umap_3d "
                "(for an AnnData, obsm['X_umap'] or obsm['X_umap_2d'/'X_umap_3d'])"
            )
        self.points: dict[int, np.ndarray] = {}
        self.scales: dict[int, float] = {}
        n_rows: dict[int, int] = {}
        for d in sorted(given):
            if d not in (1, 2, 3):
                raise ValueError(f"embedding dimension must be 1, 2 or 3; got {d}")
            pts, scale = enc.normalize_points(given[d], d, f"X_umap_{d}d", normalize=normalize)
            self.points[d], self.scales[d] = pts, scale
            n_rows[d] = pts.shape[0]
            if pts.nbytes > enc.POINTS_FILE_LIMIT:
                warnings.warn(
                    f"points_{d}d.bin is {pts.nbytes / 2**20:.0f} MiB, above the Cellucid web "
                    "app's 512 MiB limit per embedding; it may refuse to load it",
                    stacklevel=4,
                )
        if len(set(n_rows.values())) > 1:
            raise ValueError(f"embeddings disagree on the number of cells: {n_rows}")
        self.dims = sorted(self.points)

    def _build_latent(self, latent: Any, latent_key: str | None) -> None:
        n = next(iter(self.points.values())).shape[0]
        self.has_latent = latent is not None
        if latent is None:
            self.latent = None
            self.latent_key = None
            return
        # a file's or a Dask latent space stays where it is, read in row chunks (a Dask one
        # even in prepare(): at atlas scale it is gigabytes)
        if (self.lazy or is_dask_array(latent)) and enc.is_stored_array(latent):
            self.latent = enc.check_latent_shape(latent, n)
        else:
            self.latent = enc.as_latent(latent, n)  # released once the outliers are computed
        self.latent_key = latent_key or "latent_space"

    def _build_obs(self, obs: pd.DataFrame) -> None:
        n = self.n_cells
        if not isinstance(obs, pd.DataFrame):
            raise TypeError(f"obs must be a pandas DataFrame; got {type(obs).__name__}")
        if len(obs) != n:
            raise ValueError(f"obs has {len(obs)} rows but the embedding has {n} cells")
        keys = [str(k) for k in obs.columns]
        check_names(keys, "obs key", "Rename the columns or choose a subset with obs_keys=[...].")
        s = self.settings
        self.obs_fields: list[ObsField] = []
        centroid_jobs: list[tuple[ObsField, int, np.ndarray]] = []
        for key, col in zip(keys, obs.columns, strict=False):
            series = obs[col]
            if isinstance(series, pd.DataFrame):  # duplicate labels are caught above
                raise ValueError(f"obs column {key!r} is duplicated")
            kind = enc.classify_obs_column(key, series)
            if isinstance(kind, enc.ContinuousColumn):
                f = ObsField(key, "continuous", values=kind.values)
                if s.obs_continuous_quantization:
                    f.quantized = enc.quantize(kind.values, s.obs_continuous_quantization)
            else:
                dtype = enc.codes_dtype_for(key, len(kind.categories), s.obs_categorical_dtype)
                f = ObsField(
                    key,
                    "category",
                    codes=enc.encode_codes(kind.codes, dtype),
                    codes_dtype=dtype,
                    categories=kind.categories,
                )
                f.centroids = {}
                centroid_jobs += [(f, d, kind.codes) for d in self.dims]
                if self.latent is not None and self.lazy:
                    f.raw_codes = kind.codes
                elif self.latent is not None:
                    f.outliers = enc.compute_outlier_quantiles(
                        kind.codes, len(kind.categories), self.latent, s.centroid_min_points
                    )
                    if s.obs_continuous_quantization:
                        f.outliers_q = enc.quantize(f.outliers, s.obs_continuous_quantization)
            self.obs_fields.append(f)
        self._compute_centroids(centroid_jobs)
        self.continuous = [f for f in self.obs_fields if f.kind == "continuous"]
        self.categorical = [f for f in self.obs_fields if f.kind == "category"]
        self._obs_by_safe = {safe_name(f.key): f for f in self.obs_fields}

    def _compute_centroids(self, jobs: list[tuple[ObsField, int, np.ndarray]]) -> None:
        """Every (field, dimension)'s centroids, on a thread per core: the work is numpy
        calls that release the GIL, and at ten million cells it is most of a server's
        start-up."""
        s = self.settings
        known: dict[int, list[dict[str, Any]]] = {}
        keys = [self._centroid_key(f, d) for f, d, _codes in jobs]
        if self._memo is not None:
            for i, key in enumerate(keys):
                found = self._memo.get(key)
                if isinstance(found, list):
                    known[i] = found
        todo = [job for i, job in enumerate(jobs) if i not in known]
        loaded = enc.centroid_kernel_loaded()
        work = len(todo) * self.n_cells

        def run(job: tuple[ObsField, int, np.ndarray]) -> list[dict[str, Any]]:
            f, d, codes = job
            assert f.categories is not None
            return enc.compute_centroids(
                codes,
                f.categories,
                self.points[d],
                s.centroid_outlier_quantile,
                s.centroid_min_points,
                kernel=enc.centroids_use_kernel(loaded, work, len(f.categories)),
            )

        workers = min(len(todo), os.cpu_count() or 1)
        if workers <= 1 or self.n_cells < PARALLEL_CENTROID_CELLS:
            computed = [run(job) for job in todo]
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="cellucid-centroids") as pool:
                computed = list(pool.map(run, todo))
        fresh = iter(computed)
        results = [known[i] if i in known else next(fresh) for i in range(len(jobs))]
        if self._memo is not None:
            for i, (key, found) in enumerate(zip(keys, results, strict=True)):
                if i not in known:
                    self._memo.put(key, found)
        for (f, d, _codes), found in zip(jobs, results, strict=True):
            assert f.centroids is not None
            f.centroids[str(d)] = found
        for f, _d, _codes in jobs:  # dimension order, as before
            f.centroids = {str(d): f.centroids[str(d)] for d in self.dims}

    def _centroid_key(self, f: ObsField, d: int) -> str:
        """What a field's centroids in one dimension depend on, besides the file and its
        embedding (which the memo itself is keyed by)."""
        s = self.settings
        what = [f.key, d, f.categories, s.centroid_outlier_quantile, s.centroid_min_points]
        return "centroids|" + hashlib.sha256(_json_compact(what)).hexdigest()[:32]

    def _build_genes(self, inputs: ExportInputs) -> None:
        self.genes = inputs.genes
        if inputs.genes is None or not inputs.gene_ids:
            self.gene_ids: list[str] = []
            self.gene_columns = np.zeros(0, dtype=np.int64)
            self.genes = None
            return
        if inputs.genes.n_cells != self.n_cells:
            raise ValueError(
                f"gene_expression has {inputs.genes.n_cells} rows but the embedding has {self.n_cells} cells"
            )
        self.gene_ids = [str(g) for g in inputs.gene_ids]
        check_names(
            self.gene_ids,
            "gene id",
            "Make ids unique (adata.var_names_make_unique()) or pick an id column with "
            "var_gene_id_column=...",
        )
        cols = np.asarray(inputs.gene_columns, dtype=np.int64)
        if cols.shape != (len(self.gene_ids),):
            raise ValueError("gene_columns and gene_ids must have the same length")
        self.gene_columns = cols
        self.var_gene_id_column = inputs.var_gene_id_column or "index"
        self._gene_by_safe = {safe_name(g): i for i, g in enumerate(self.gene_ids)}

    def _build_edges(self, connectivities: Any, bound: Future[int | None] | None = None) -> None:
        self.edges: enc.Edges | None = None
        if connectivities is None:
            return
        if isinstance(connectivities, LazyElement):
            if bound is not None and self._graph_too_large(connectivities, bound.result()):
                return
            connectivities = connectivities()
        edges = enc.build_edges(connectivities, self.n_cells)
        need = enc.edge_working_set(edges.n_edges, self.n_cells, edges.index_dtype)
        if need > enc.EDGE_BUDGET:
            warnings.warn(
                f"connectivity not exported: {edges.n_edges} edges for {self.n_cells} cells need "
                f"{need} bytes in the browser, above the Cellucid web app's limit of "
                f"{enc.EDGE_BUDGET} bytes; reduce the neighbour count to export it",
                stacklevel=4,
            )
            return
        self.edges = edges

    def _graph_bound(self, graph: LazyElement) -> Future[int | None]:
        """:func:`~cellucid.export.encode.edges_lower_bound` of a stored graph, on a thread
        (or from the memo of an earlier start, which keeps proven bounds)."""
        key = f"graph-bound|{list(graph.shape or ())}|{enc.EDGE_BUDGET}"
        known = self._memo.get(key) if self._memo is not None else None
        if isinstance(known, int):
            done: Future[int | None] = Future()
            done.set_result(known)
            return done
        memo = self._memo

        def prove() -> int | None:
            found = enc.edges_lower_bound(graph.values(), graph.shape[0])
            if found is not None and memo is not None:
                memo.put(key, found)
            return found

        pool = ThreadPoolExecutor(1, thread_name_prefix="cellucid-graph")
        future = pool.submit(prove)
        pool.shutdown(wait=False)
        return future

    def _graph_too_large(self, graph: LazyElement, bound: int | None) -> bool:
        """Whether a stored graph provably exceeds the browser budget (SPEC §2.8): ``bound``
        comes from :func:`~cellucid.export.encode.edges_lower_bound`, which reads its stored
        values only until the proof, never its structure. A ten-million-cell kNN graph is
        proven too large after a fraction of its values, where building its edges would read
        and symmetrise every entry."""
        n = self.n_cells
        if graph.shape != (n, n) or bound is None:
            return False  # build_edges says what is wrong, or builds the edges
        warnings.warn(
            f"connectivity not exported: at least {bound} edges for {n} cells need more than "
            f"{enc.EDGE_BUDGET} bytes in the browser (the Cellucid web app's limit); reduce "
            "the neighbour count to export it",
            stacklevel=5,
        )
        return True

    def _build_vectors(self, vector_fields: dict[str, Any] | None) -> None:
        self.vectors: dict[tuple[str, int], np.ndarray] = {}
        if vector_fields is None:
            return
        parsed = enc.parse_vector_fields(vector_fields, self.n_cells, self.dims)
        for (fid, dim), arr in parsed.items():
            self.vectors[(fid, dim)] = (arr * self.scales[dim]).astype(np.float32)

    # ----- paths
    def _gz(self, path: str) -> str:
        return with_gz(path, self.compression)

    def points_path(self, dim: int) -> str:
        return self._gz(f"points_{dim}d.bin")

    def obs_values_path(self, f: ObsField) -> str:
        q = self.settings.obs_continuous_quantization
        ext = enc.QUANT_EXT[q] if q else "f32"
        return self._gz(f"{OBS_DIR}/{safe_name(f.key)}.values.{ext}")

    def obs_codes_path(self, f: ObsField) -> str:
        return self._gz(f"{OBS_DIR}/{safe_name(f.key)}.codes.{enc.CODES[f.codes_dtype][0]}")

    def obs_outliers_path(self, f: ObsField) -> str:
        q = self.settings.obs_continuous_quantization
        ext = enc.QUANT_EXT[q] if q else "f32"
        return self._gz(f"{OBS_DIR}/{safe_name(f.key)}.outliers.{ext}")

    def gene_path(self, index: int) -> str:
        q = self.settings.var_quantization
        ext = enc.QUANT_EXT[q] if q else "f32"
        return self._gz(f"{VAR_DIR}/{safe_name(self.gene_ids[index])}.values.{ext}")

    def edge_paths(self) -> tuple[str, str, str]:
        return (
            self._gz(f"{CONNECTIVITY_DIR}/edges.src.bin"),
            self._gz(f"{CONNECTIVITY_DIR}/edges.dst.bin"),
            self._gz(f"{CONNECTIVITY_DIR}/edges.weights.f64.bin"),
        )

    def vector_path(self, field_id: str, dim: int) -> str:
        return self._gz(f"{VECTORS_DIR}/{field_id}_{dim}d.bin")

    # ----- file listing: path -> producer of the raw (uncompressed) payload
    def payload_producers(self) -> dict[str, Callable[[], bytes | memoryview]]:
        """Every non-gene binary payload: ``{path: () -> raw bytes}`` (paths with ``.gz``).

        Points come as a read-only view of the encoded array, not a copy (80 MB at ten
        million cells, which a server would otherwise hold twice)."""
        out: dict[str, Callable[[], bytes | memoryview]] = {}
        for d in self.dims:
            out[self.points_path(d)] = lambda d=d: le_buffer(self.points[d], "<f4").toreadonly()
        for f in self.continuous:
            out[self.obs_values_path(f)] = lambda f=f: self._continuous_bytes(f)
        for f in self.categorical:
            out[self.obs_codes_path(f)] = lambda f=f: le_bytes(f.codes, f.codes.dtype)
            if f.outliers is not None or f.raw_codes is not None:
                out[self.obs_outliers_path(f)] = lambda f=f: self._outlier_bytes(f)
        if self.edges is not None:
            e = self.edges
            src, dst, w = self.edge_paths()
            out[src] = lambda: le_bytes(e.src, e.src.dtype)
            out[dst] = lambda: le_bytes(e.dst, e.dst.dtype)
            out[w] = lambda: le_bytes(e.weights, "<f8")
        for (fid, dim), arr in self.vectors.items():
            out[self.vector_path(fid, dim)] = lambda arr=arr: le_bytes(arr, "<f4")
        return out

    def gene_paths(self) -> dict[str, int]:
        """``{path: gene index}`` for every exported gene."""
        return {self.gene_path(i): i for i in range(len(self.gene_ids))}

    def paths(self) -> list[str]:
        """Every file of the dataset, manifests included."""
        files = [IDENTITY_FILE, OBS_MANIFEST_FILE]
        if self.gene_ids:
            files.append(VAR_MANIFEST_FILE)
        if self.edges is not None:
            files.append(CONNECTIVITY_MANIFEST_FILE)
        return files + list(self.payload_producers()) + list(self.gene_paths())

    def _continuous_bytes(self, f: ObsField) -> bytes:
        if f.quantized is not None:
            return le_bytes(f.quantized.codes, f.quantized.codes.dtype)
        return le_bytes(f.values, "<f4")

    def _outlier_bytes(self, f: ObsField) -> bytes:
        if f.outliers_q is not None:
            return le_bytes(f.outliers_q.codes, f.outliers_q.codes.dtype)
        return le_bytes(self.outliers(f), "<f4")

    def outliers(self, f: ObsField) -> np.ndarray:
        """The outlier quantiles of a categorical field (computed now when lazy; one field
        at a time, reading the latent space in row chunks)."""
        if f.outliers is None:
            with self._outlier_lock:
                if f.outliers is None:
                    assert f.raw_codes is not None and f.categories is not None
                    f.outliers = enc.compute_outlier_quantiles(
                        f.raw_codes,
                        len(f.categories),
                        self.latent,
                        self.settings.centroid_min_points,
                    )
                    f.raw_codes = None
        return f.outliers

    # ----- genes
    def gene_blocks(self, block_values: int | None = None) -> Iterator[GeneBlock]:
        """Blocks of gene columns; ``block.positions`` are indices into :attr:`gene_ids`
        (``block_values`` stored values each; ``None``: the matrix's own default)."""
        if self.genes is None:
            return
        if block_values is None:
            yield from self.genes.blocks(self.gene_columns)
        else:
            yield from self.genes.blocks(self.gene_columns, block_values)

    def encode_gene(self, index: int, values: np.ndarray) -> memoryview:
        """Raw payload of one gene column (a view, no copy when possible).

        Records the gene's range when quantised; the var manifest needs it.
        """
        bits = self.settings.var_quantization
        if bits:
            q = enc.quantize(values, bits)
            self._gene_ranges[index] = (q.lo, q.hi)
            return le_buffer(q.codes, q.codes.dtype)
        return le_buffer(values, "<f4")

    # ----- manifests
    def _schema_continuous(self, prefix: str, bits: int | None) -> dict[str, Any]:
        ext = enc.QUANT_EXT[bits] if bits else "f32"
        schema: dict[str, Any] = {
            "pathPattern": self._gz(f"{prefix}/{{key}}.values.{ext}"),
            "ext": ext,
            "dtype": EXT_DTYPE_NAMES[ext],
            "quantized": bool(bits),
        }
        if bits:
            schema["quantizationBits"] = bits
        return schema

    def obs_manifest(self) -> dict[str, Any]:
        s = self.settings
        bits = s.obs_continuous_quantization
        schemas: dict[str, Any] = {}
        if self.continuous:
            schemas["continuous"] = self._schema_continuous(OBS_DIR, bits)
        if self.categorical:
            has_outliers = self.has_latent
            ext = (enc.QUANT_EXT[bits] if bits else "f32") if has_outliers else None
            schemas["categorical"] = {
                "codesPathPattern": self._gz(f"{OBS_DIR}/{{key}}.codes.{{ext}}"),
                "outlierPathPattern": self._gz(f"{OBS_DIR}/{{key}}.outliers.{ext}")
                if ext
                else None,
                "outlierExt": ext,
                "outlierDtype": EXT_DTYPE_NAMES[ext] if ext else None,
                "outlierQuantized": bool(bits) and has_outliers,
            }
        cont = []
        for f in self.continuous:
            cont.append(
                [f.key, f.quantized.lo, f.quantized.hi] if f.quantized is not None else [f.key]
            )
        cats = []
        for f in self.categorical:
            t: list[Any] = [
                f.key,
                f.categories,
                f.codes_dtype,
                enc.CODES[f.codes_dtype][1],
                f.centroids,
            ]
            if f.outliers_q is not None:
                t += [f.outliers_q.lo, f.outliers_q.hi]
            cats.append(t)
        return {
            "_format": "compact_v1",
            "n_points": self.n_cells,
            "centroid_outlier_quantile": (
                float(s.centroid_outlier_quantile)
                if s.centroid_outlier_quantile is not None
                else None
            ),
            "latent_key": self.latent_key,
            "compression": self.compression,
            "_obsSchemas": schemas,
            "_continuousFields": cont,
            "_categoricalFields": cats,
        }

    def var_manifest(self) -> dict[str, Any] | None:
        """The var manifest; with quantisation, every gene must have been encoded first."""
        if not self.gene_ids:
            return None
        bits = self.settings.var_quantization
        if bits:
            missing = len(self.gene_ids) - len(self._gene_ranges)
            if missing:
                raise RuntimeError(f"{missing} gene(s) not encoded yet; their ranges are unknown")
            fields = [[g, *self._gene_ranges[i]] for i, g in enumerate(self.gene_ids)]
        else:
            fields = [[g] for g in self.gene_ids]
        schema = {"kind": "continuous", **self._schema_continuous(VAR_DIR, bits)}
        return {
            "_format": "compact_v1",
            "n_points": self.n_cells,
            "var_gene_id_column": self.var_gene_id_column,
            "compression": self.compression,
            "quantization": bits,
            "_varSchema": schema,
            "fields": fields,
        }

    def connectivity_manifest(self) -> dict[str, Any] | None:
        e = self.edges
        if e is None:
            return None
        src, dst, w = self.edge_paths()
        return {
            "format": "edge_pairs",
            "n_cells": self.n_cells,
            "n_edges": e.n_edges,
            "max_neighbors": e.max_neighbors,
            "index_bytes": e.index_bytes,
            "index_dtype": e.index_dtype,
            "sourcesPath": src,
            "destinationsPath": dst,
            "weightsPath": w,
            "weight_dtype": "float64",
            "weight_bytes": 8,
            "compression": self.compression,
        }

    def identity(self) -> dict[str, Any]:
        s = self.settings
        n_genes = len(self.gene_ids)
        ident: dict[str, Any] = {
            "version": 2,
            "id": self.info.id,
            "name": self.info.name,
            "description": self.info.description,
            "created_at": self.created_at,
            "cellucid_data_version": __version__,
            "stats": {
                "n_cells": self.n_cells,
                "n_genes": n_genes,
                "n_obs_fields": len(self.obs_fields),
                "n_categorical_fields": len(self.categorical),
                "n_continuous_fields": len(self.continuous),
                "has_connectivity": self.edges is not None,
                "n_edges": self.edges.n_edges if self.edges is not None else None,
            },
            "embeddings": {
                "available_dimensions": self.dims,
                "default_dimension": max(self.dims),
                "files": {f"{d}d": self.points_path(d) for d in self.dims},
            },
            "obs_fields": [{"key": f.key, "kind": "continuous"} for f in self.continuous]
            + [
                {"key": f.key, "kind": "category", "n_categories": len(f.categories or [])}
                for f in self.categorical
            ],
            "export_settings": {
                "compression": self.compression,
                "var_quantization": s.var_quantization,
                "obs_continuous_quantization": s.obs_continuous_quantization,
                "obs_categorical_dtype": s.obs_categorical_dtype,
            },
        }
        if self.info.source:
            ident["source"] = dict(self.info.source)
        if self.vectors:
            ident["vector_fields"] = self._vector_fields_identity()
        return ident

    def _vector_fields_identity(self) -> dict[str, Any]:
        dims_by_field: dict[str, list[int]] = {}
        for fid, dim in self.vectors:
            dims_by_field.setdefault(fid, []).append(dim)
        fields = {}
        for fid in sorted(dims_by_field):
            dims = sorted(dims_by_field[fid])
            fields[fid] = {
                "label": fid,
                "basis": "umap",
                "available_dimensions": dims,
                "default_dimension": max(dims),
                "files": {f"{d}d": self.vector_path(fid, d) for d in dims},
            }
        default = "velocity_umap" if "velocity_umap" in fields else sorted(fields)[0]
        return {"default_field": default, "fields": fields}

    def manifest_bytes(self) -> dict[str, bytes]:
        """The JSON files, encoded as written (compact manifests, pretty identity)."""
        out = {
            IDENTITY_FILE: _json_pretty(self.identity()),
            OBS_MANIFEST_FILE: _json_compact(self.obs_manifest()),
        }
        var = self.var_manifest()
        if var is not None:
            out[VAR_MANIFEST_FILE] = _json_compact(var)
        conn = self.connectivity_manifest()
        if conn is not None:
            out[CONNECTIVITY_MANIFEST_FILE] = _json_compact(conn)
        return out
