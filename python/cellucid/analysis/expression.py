"""The expression values a comparison reads, whatever holds them.

:func:`open_expression` turns an AnnData (in memory or backed), a path to an ``.h5ad`` file,
a ``.zarr`` store or an export folder into an :class:`Expression`: gene names, a
:class:`~cellucid.storage.blocks.GeneMatrix` to read gene columns block by block, and, for
backed cell-major matrices, the column cache the server also uses (built here if it is not
there yet, so later comparisons and the server start warm). A backed matrix is never
loaded whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..export.genes import gene_matrix
from ..storage.anndata_io import materialize
from ..storage.backed import BackedMatrix
from ..storage.blocks import DEFAULT_BLOCK_VALUES, DenseBlock, GeneMatrix
from ..storage.column_cache import ColumnCache
from ..storage.stores import StorageOptions, is_url


@dataclass
class Expression:
    """Gene columns to compare, and what is known about their values.

    Attributes
    ----------
    names
        Gene names, one per compared gene.
    matrix
        Column access to the values (float32 columns).
    columns
        ``matrix`` column of each gene of ``names``.
    n_cells
        Number of cells (rows).
    obs
        Cell annotations, or a callable that reads them (only needed for ``(key, category)``
        groups), or ``None`` when there are none.
    log1p_base
        ``uns["log1p"]["base"]`` (``None``: natural logarithm), for the log fold change.
    quantized
        Whether the values were quantised by an export (statistics are then approximate).
    cache
        The ready column cache of a backed cell-major matrix, else ``None``.
    """

    names: np.ndarray
    matrix: GeneMatrix
    columns: np.ndarray
    n_cells: int
    obs: pd.DataFrame | Callable[[], pd.DataFrame] | None = None
    log1p_base: float | None = None
    quantized: bool = False
    cache: ColumnCache | None = None
    close: Callable[[], None] = field(default=lambda: None)

    def obs_frame(self) -> pd.DataFrame | None:
        if callable(self.obs):
            self.obs = self.obs()
        return self.obs


class ExportGenes:
    """Gene columns of an export folder (:class:`~cellucid.export.reader.ExportReader`),
    dequantised where the export quantised them."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.ids = reader.gene_ids()
        self.n_cells = reader.n_cells
        self.n_genes = len(self.ids)

    def blocks(
        self, columns: np.ndarray, block_values: int = DEFAULT_BLOCK_VALUES
    ) -> Iterator[DenseBlock]:
        per = max(1, block_values // max(self.n_cells, 1))
        columns = np.asarray(columns, dtype=np.int64)
        for start in range(0, columns.size, per):
            pos = np.arange(start, min(columns.size, start + per))
            rows = np.empty((pos.size, self.n_cells), dtype=np.float32)
            for i, c in enumerate(columns[pos].tolist()):
                rows[i] = self.reader.gene(self.ids[c])
            yield DenseBlock(pos, rows)


def _log1p_base(uns: Any) -> float | None:
    try:
        base = uns["log1p"]["base"]
    except (KeyError, TypeError, IndexError):
        return None
    if base is None:
        return None
    base = np.asarray(base)
    return float(base) if base.size == 1 else None


def _ensure_cache(
    matrix: BackedMatrix, progress: Callable[[float], None] | None
) -> ColumnCache | None:
    """The ready column cache of a backed cell-major matrix, built now when missing."""
    if matrix.format not in ("csr", "dense") or matrix.source_path is None:
        return None
    cache = matrix.cache if matrix.cache is not None else matrix.column_cache()
    if not cache.ready:
        cache.build(progress)
    matrix.attach_cache(cache)
    return cache


def _anndata_expression(
    adata: Any, layer: str | None, progress: Callable[[float], None] | None
) -> Expression:
    names = np.asarray(adata.var_names.astype(str), dtype=object)
    base = _log1p_base(adata.uns)
    if layer is not None:
        if layer not in adata.layers:
            available = ", ".join(map(repr, adata.layers.keys())) or "none"
            raise KeyError(f"layer {layer!r} not found in the AnnData (layers: {available})")
        x = adata.layers[layer]
    else:
        x = adata.X
    if x is None:
        raise ValueError("the AnnData has no X: pass layer=... to compare a layer")
    backed = BackedMatrix.from_anndata(adata) if layer is None else None
    if backed is not None:
        cache = _ensure_cache(backed, progress)
        matrix: GeneMatrix = backed
    else:
        if not (hasattr(x, "shape") and len(x.shape) == 2):
            raise TypeError(f"cannot read genes from {type(x).__name__}")
        matrix, cache = gene_matrix(x), None
    obs = adata.obs
    return Expression(
        names=names,
        matrix=matrix,
        columns=np.arange(names.size, dtype=np.int64),
        n_cells=int(adata.n_obs),
        obs=obs if isinstance(obs, pd.DataFrame) else lambda: materialize(obs),
        log1p_base=base,
        cache=cache,
    )


def _file_expression(
    path: Path | str,
    fmt: str,
    layer: str | None,
    progress: Callable[[float], None] | None,
    storage_options: StorageOptions | None = None,
) -> Expression:
    from anndata.io import read_elem

    element = "X" if layer is None else f"layers/{layer}"
    try:
        matrix = BackedMatrix.open(path, element, storage_options=storage_options)
    except KeyError:
        raise KeyError(
            f"{element!r} not found in {path}"
            + ("" if layer is None else ": check the layer name (layer=...)")
        ) from None
    try:
        root = matrix.root
        var = read_elem(root["var"]) if "var" in root else None
        names = (
            np.asarray(var.index.astype(str), dtype=object)
            if var is not None
            else np.arange(matrix.n_genes).astype(str).astype(object)
        )
        base = None
        if "uns" in root and "log1p" in root["uns"] and "base" in root["uns"]["log1p"]:
            base = _log1p_base({"log1p": {"base": read_elem(root["uns"]["log1p"]["base"])}})
        cache = _ensure_cache(matrix, progress)
    except BaseException:
        matrix.close()
        raise
    return Expression(
        names=names,
        matrix=matrix,
        columns=np.arange(names.size, dtype=np.int64),
        n_cells=matrix.n_cells,
        obs=lambda: read_elem(root["obs"]) if "obs" in root else None,
        log1p_base=base,
        cache=cache,
        close=matrix.close,
    )


def _export_expression(path: Path) -> Expression:
    from ..export.reader import ExportReader

    reader = ExportReader(path)
    genes = ExportGenes(reader)
    if genes.n_genes == 0:
        raise ValueError(f"the export at {path} has no genes (var_manifest.json)")
    schema = (reader.var_manifest or {}).get("_varSchema", {})
    return Expression(
        names=np.asarray(genes.ids, dtype=object),
        matrix=genes,
        columns=np.arange(genes.n_genes, dtype=np.int64),
        n_cells=genes.n_cells,
        obs=reader.obs_frame,
        quantized=schema.get("ext", "f32") != "f32",
    )


def open_expression(
    data: Any,
    layer: str | None = None,
    progress: Callable[[float], None] | None = None,
    storage_options: StorageOptions | None = None,
) -> Expression:
    """An :class:`Expression` for ``data`` (see the module docstring).

    ``progress`` receives the column cache's build progress (0-1) when one is built;
    ``storage_options`` are the fsspec options of a URL (``s3://…``).
    """
    if isinstance(data, Expression):
        return data
    if isinstance(data, (str, Path)):
        from ..sources.detect import detect

        found = detect(data, storage_options)
        if found.kind in ("h5ad", "zarr"):
            return _file_expression(found.path, found.kind, layer, progress, storage_options)
        if found.kind == "export" and is_url(found.path):
            raise ValueError(
                f"{found.path}: rank_genes reads export folders from local disk; compare the "
                "AnnData the export was made from (an .h5ad or .zarr, local or at a URL), or "
                "copy the export folder locally"
            )
        if found.kind == "export":
            if layer is not None:
                raise ValueError("an export folder has no layers: leave layer=None")
            return _export_expression(found.path)
        raise ValueError(
            f"{found.path} is a folder of exports: pass one dataset folder "
            "(the one holding dataset_identity.json)"
        )
    if hasattr(data, "var_names") and hasattr(data, "obs") and hasattr(data, "n_obs"):
        return _anndata_expression(data, layer, progress)
    raise TypeError(
        f"cannot compare genes of a {type(data).__name__}: pass an AnnData, or the path of an "
        ".h5ad file, a .zarr store or an export folder"
    )


def expression_of_dataset(dataset: Any) -> Expression:
    """The genes of an :class:`~cellucid.export.dataset.ExportDataset` (what the AnnData
    server serves), read through its own matrix and column cache."""
    if dataset.genes is None or not dataset.gene_ids:
        raise ValueError("the dataset has no genes")
    matrix = dataset.genes
    # a backed CSR matrix without its column cache would cost a pass over the rows per
    # block: wait for (or make) the cache the server builds in the background
    cache = _ensure_cache(matrix, None) if isinstance(matrix, BackedMatrix) else None
    return Expression(
        names=np.asarray(dataset.gene_ids, dtype=object),
        matrix=matrix,
        columns=np.asarray(dataset.gene_columns, dtype=np.int64),
        n_cells=int(dataset.n_cells),
        cache=cache,
    )
