"""``prepare``: write a dataset in the export format (SPEC §2, §6.2).

Everything is validated before the first byte is written. Files go to a staging folder next
to ``out_dir`` and are moved into place only when complete, so an error or Ctrl+C leaves any
previous export untouched and no half-written one. Gene columns are streamed in blocks and
encoded, compressed and written by more threads than there are cores (libdeflate and file
writes release the GIL), so the cores stay busy while threads wait for the disk.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
import pandas as pd

from .binary import aligned_empty, encode_payload, write_file
from .dataset import DatasetInfo, ExportDataset, ExportSettings, make_source
from .genes import DEFAULT_BLOCK_VALUES, GeneBlock
from .inputs import build_inputs, derive_from_anndata
from .naming import (
    CONNECTIVITY_DIR,
    CONNECTIVITY_MANIFEST_FILE,
    IDENTITY_FILE,
    OBS_DIR,
    OBS_MANIFEST_FILE,
    VAR_DIR,
    VAR_MANIFEST_FILE,
    VECTORS_DIR,
    safe_name,
)

if TYPE_CHECKING:
    from anndata import AnnData

#: names in a dataset directory that belong to an export (SPEC §2.1)
ARTIFACT_FILES = (
    IDENTITY_FILE,
    OBS_MANIFEST_FILE,
    VAR_MANIFEST_FILE,
    CONNECTIVITY_MANIFEST_FILE,
    *(f"points_{d}d.bin{gz}" for d in (1, 2, 3, 4) for gz in ("", ".gz")),
)
ARTIFACT_DIRS = (OBS_DIR, VAR_DIR, CONNECTIVITY_DIR, VECTORS_DIR)
#: writer threads, at least: more than the cores, so that while some wait for the disk
#: (creating a file, a direct write) the others keep every core encoding and compressing
MIN_WRITER_THREADS = 8
_FIXED_NAMES = {
    "obs_manifest_filename": OBS_MANIFEST_FILE,
    "obs_binary_dirname": OBS_DIR,
    "var_manifest_filename": VAR_MANIFEST_FILE,
    "var_binary_dirname": VAR_DIR,
    "connectivity_manifest_filename": CONNECTIVITY_MANIFEST_FILE,
    "connectivity_binary_dirname": CONNECTIVITY_DIR,
}


# --------------------------------------------------------------------------- public API
@overload
def prepare(
    adata: AnnData, out_dir: str | os.PathLike[str] | None = None, /, **options: Any
) -> Path: ...
@overload
def prepare(
    latent_space: Any = None,
    obs: pd.DataFrame | None = None,
    var: pd.DataFrame | None = None,
    gene_expression: Any = None,
    **options: Any,
) -> Path: ...
def prepare(*args: Any, **kwargs: Any) -> Path:
    """Export a dataset to a folder in the Cellucid export format.

    Two forms are accepted:

    ``prepare(adata, out_dir, *, layer=None, latent_key=None, **options)``
        Derive every input from an AnnData: embeddings from ``obsm["X_umap"]`` (by column
        count) or ``obsm["X_umap_1d"/"_2d"/"_3d"]``, the latent space from ``latent_key`` or
        the first of ``scanvi, scvi, X_scvi, X_pca, harmony, X_harmony``, all ``obs`` columns
        (or ``obs_keys``), genes from ``X`` or ``layers[layer]``, ``obsp["connectivities"]``
        and velocity-like ``obsm["<name>_umap[_<d>d]"]`` vector fields. Array options given
        as well (``X_umap_2d=...``, ``gene_expression=...``) replace the derived input.

    ``prepare(latent_space=None, obs=None, var=None, gene_expression=None, ...)``
        The upstream keyword form with arrays and DataFrames; ``obs`` and at least one of
        ``X_umap_1d/2d/3d`` are required.

    Options (both forms): ``out_dir`` (default ``./exports``), ``obs_keys``,
    ``var_gene_id_column``, ``gene_identifiers``, ``connectivities``, ``vector_fields``,
    ``var_quantization`` and ``obs_continuous_quantization`` (None, 8 or 16),
    ``obs_categorical_dtype`` ('auto', 'uint8', 'uint16'), ``compression`` (None or gzip
    level 1-9), ``centroid_outlier_quantile``, ``centroid_min_points``, ``dataset_name``,
    ``dataset_description``, ``dataset_id``, ``source_name``, ``source_url``,
    ``source_citation``, ``force`` (alias ``overwrite``) to replace an existing export, and
    ``quiet`` to silence progress output.

    Returns the resolved output folder.

    Examples
    --------
    >>> import scanpy as sc, cellucid
    >>> adata = sc.datasets.pbmc68k_reduced()
    >>> cellucid.prepare(adata, "exports/pbmc68k", compression=6, quiet=True)  # doctest: +SKIP
    PosixPath('.../exports/pbmc68k')
    """
    if args and _is_anndata(args[0]):
        if len(args) > 2:
            raise TypeError(
                "prepare(adata, out_dir, **options) takes at most two positional arguments"
            )
        if len(args) == 2:
            if "out_dir" in kwargs:
                raise TypeError("out_dir given both positionally and as a keyword")
            kwargs["out_dir"] = args[1]
        return _prepare_anndata(args[0], **kwargs)
    return _prepare_arrays(*args, **kwargs)


def _is_anndata(obj: Any) -> bool:
    mod = sys.modules.get("anndata")
    return mod is not None and isinstance(obj, mod.AnnData)


def _prepare_arrays(
    latent_space: Any = None,
    obs: pd.DataFrame | None = None,
    var: pd.DataFrame | None = None,
    gene_expression: Any = None,
    var_gene_id_column: str | None = "index",
    gene_identifiers: Sequence[str] | None = None,
    connectivities: Any = None,
    out_dir: str | os.PathLike[str] | None = None,
    obs_keys: Sequence[str] | None = None,
    centroid_outlier_quantile: float | None = 0.95,
    centroid_min_points: int = 10,
    obs_manifest_filename: str = OBS_MANIFEST_FILE,
    obs_binary_dirname: str = OBS_DIR,
    var_manifest_filename: str = VAR_MANIFEST_FILE,
    var_binary_dirname: str = VAR_DIR,
    connectivity_manifest_filename: str = CONNECTIVITY_MANIFEST_FILE,
    connectivity_binary_dirname: str = CONNECTIVITY_DIR,
    force: bool = False,
    var_quantization: int | None = None,
    obs_continuous_quantization: int | None = None,
    obs_categorical_dtype: Literal["auto", "uint8", "uint16"] = "auto",
    compression: int | None = None,
    dataset_name: str | None = None,
    dataset_description: str | None = None,
    dataset_id: str | None = None,
    source_name: str | None = None,
    source_url: str | None = None,
    source_citation: str | None = None,
    X_umap_1d: Any = None,
    X_umap_2d: Any = None,
    X_umap_3d: Any = None,
    X_umap_4d: Any = None,
    vector_fields: dict[str, Any] | None = None,
    *,
    latent_key: str | None = None,
    quiet: bool = False,
    overwrite: bool | None = None,
    workers: int | None = None,
    block_values: int = DEFAULT_BLOCK_VALUES,
) -> Path:
    names = {
        "obs_manifest_filename": obs_manifest_filename,
        "obs_binary_dirname": obs_binary_dirname,
        "var_manifest_filename": var_manifest_filename,
        "var_binary_dirname": var_binary_dirname,
        "connectivity_manifest_filename": connectivity_manifest_filename,
        "connectivity_binary_dirname": connectivity_binary_dirname,
    }
    for param, value in names.items():
        if value != _FIXED_NAMES[param]:
            raise ValueError(
                f"{param}={value!r} is not supported: readers require the fixed name "
                f"{_FIXED_NAMES[param]!r}; leave it at its default"
            )
    if X_umap_4d is not None:
        raise NotImplementedError("4D embeddings are not supported (X_umap_4d must be None)")
    points = {d: a for d, a in ((1, X_umap_1d), (2, X_umap_2d), (3, X_umap_3d)) if a is not None}
    out = Path.cwd() / "exports" if out_dir is None else Path(out_dir)
    out = out.expanduser().resolve()
    settings = ExportSettings(
        compression=compression,
        var_quantization=var_quantization,
        obs_continuous_quantization=obs_continuous_quantization,
        obs_categorical_dtype=obs_categorical_dtype,
        centroid_outlier_quantile=centroid_outlier_quantile,
        centroid_min_points=centroid_min_points,
    )
    name = dataset_name if dataset_name is not None else out.name
    info = DatasetInfo(
        id=dataset_id if dataset_id is not None else safe_name(name),
        name=name,
        description=dataset_description or "",
        source=make_source(source_name, source_url, source_citation),
    )
    inputs = build_inputs(
        obs=obs,
        obs_keys=obs_keys,
        info=info,
        settings=settings,
        points=points,
        latent_space=latent_space,
        latent_key=latent_key,
        var=var,
        gene_expression=gene_expression,
        var_gene_id_column=var_gene_id_column,
        gene_identifiers=gene_identifiers,
        connectivities=connectivities,
        vector_fields=vector_fields,
    )
    force = bool(force or overwrite)
    existing = existing_artifacts(out)
    if existing and not force:
        shown = ", ".join(existing[:10]) + (" …" if len(existing) > 10 else "")
        raise FileExistsError(
            f"{out} already holds an export ({shown}); pass force=True (CLI: --force) to replace it"
        )
    dataset = ExportDataset(inputs)
    return write_dataset(dataset, out, quiet=quiet, workers=workers, block_values=block_values)


def _prepare_anndata(
    adata: AnnData,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    layer: str | None = None,
    latent_key: str | None = None,
    **options: Any,
) -> Path:
    derived = derive_from_anndata(adata, layer=layer, latent_key=latent_key, overrides=options)
    return _prepare_arrays(out_dir=out_dir, **derived)


# --------------------------------------------------------------------------- writing
def existing_artifacts(out_dir: Path) -> list[str]:
    """Export files and folders already present in ``out_dir`` (sorted names)."""
    if not out_dir.is_dir():
        if out_dir.exists():
            raise NotADirectoryError(f"out_dir {out_dir} exists and is not a directory")
        return []
    names = set(ARTIFACT_FILES) | set(ARTIFACT_DIRS)
    return sorted(p.name for p in out_dir.iterdir() if p.name in names)


class _Progress:
    """One tqdm bar per phase; nothing at all when quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def bar(self, total: int, desc: str, unit: str):
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, disable=self.quiet or total == 0, leave=True)

    def note(self, text: str) -> None:
        if not self.quiet:
            from tqdm.auto import tqdm

            tqdm.write(text, file=sys.stderr)


def write_dataset(
    dataset: ExportDataset,
    out_dir: Path,
    *,
    quiet: bool = False,
    workers: int | None = None,
    block_values: int = DEFAULT_BLOCK_VALUES,
) -> Path:
    """Write every file of ``dataset`` into ``out_dir`` through a staging folder."""
    out_dir = Path(out_dir).resolve()
    progress = _Progress(quiet)
    t0 = time.perf_counter()
    progress.note(_summary(dataset, out_dir))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = _sibling_dir(out_dir, "staging")
    try:
        pool = ThreadPoolExecutor(
            max_workers=workers or max(os.cpu_count() or 1, MIN_WRITER_THREADS),
            thread_name_prefix="cellucid-export",
        )
        try:
            _write_payloads(dataset, staging, pool, progress)
            _write_genes(dataset, staging, pool, progress, block_values)
        finally:  # on an error or Ctrl+C, queued files are dropped; running ones finish
            pool.shutdown(wait=True, cancel_futures=True)
        (staging / OBS_DIR).mkdir(exist_ok=True)  # obs/ always exists
        for name, data in dataset.manifest_bytes().items():
            (staging / name).write_bytes(data)
        _publish(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    progress.note(
        f"cellucid: exported {dataset.n_cells} cells to {out_dir} in {time.perf_counter() - t0:.1f} s"
    )
    return out_dir


def _sibling_dir(out_dir: Path, role: str) -> Path:
    """A new hidden folder next to ``out_dir``; unlike mkdtemp it keeps the umask's mode,
    because the staging folder becomes the export itself."""
    for _ in range(100):
        path = out_dir.parent / f".{out_dir.name}.cellucid-{role}-{secrets.token_hex(4)}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"could not create a {role} folder next to {out_dir}")


def _summary(ds: ExportDataset, out_dir: Path) -> str:
    s = ds.settings
    return (
        f"cellucid: exporting {ds.n_cells} cells, dims {ds.dims}, {len(ds.continuous)} continuous + "
        f"{len(ds.categorical)} categorical obs fields, {len(ds.gene_ids)} genes, "
        f"{ds.edges.n_edges if ds.edges else 0} edges, {len(ds.vectors)} vector files -> {out_dir}\n"
        f"          compression={s.compression} var_quantization={s.var_quantization} "
        f"obs_continuous_quantization={s.obs_continuous_quantization} "
        f"obs_categorical_dtype={s.obs_categorical_dtype} latent={ds.latent_key}"
    )


def _write_file(path: Path, raw: bytes | memoryview, compression: int | None) -> None:
    write_file(path, encode_payload(raw, compression))


def _write_payloads(
    ds: ExportDataset, root: Path, pool: ThreadPoolExecutor, progress: _Progress
) -> None:
    producers = ds.payload_producers()
    for rel in producers:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
    with progress.bar(len(producers), "embeddings, obs, edges", "file") as bar:
        futures = [
            pool.submit(lambda r=rel, m=make: _write_file(root / r, m(), ds.compression))
            for rel, make in producers.items()
        ]
        for fut in futures:
            fut.result()
            bar.update(1)


def _write_genes(
    ds: ExportDataset, root: Path, pool: ThreadPoolExecutor, progress: _Progress, block_values: int
) -> None:
    """Encode and write gene columns on the pool while the next block is being read."""
    if not ds.gene_ids:
        return
    (root / VAR_DIR).mkdir(parents=True, exist_ok=True)
    comp = ds.compression
    per_task = 32
    local = threading.local()

    def write_some(block: GeneBlock, start: int, stop: int) -> int:
        buf = getattr(local, "buf", None)
        if buf is None:  # aligned, so an uncompressed column is written without a copy
            buf = local.buf = aligned_empty(ds.n_cells, np.float32)
        for i in range(start, stop):
            gi = int(block.positions[i])
            raw = ds.encode_gene(gi, block.column(i, buf))
            _write_file(root / ds.gene_path(gi), raw, comp)
        return stop - start

    previous: list[Future[int]] = []
    with progress.bar(len(ds.gene_ids), "genes", "gene") as bar:
        for block in ds.gene_blocks(block_values):
            size = len(block.positions)
            current = [
                pool.submit(write_some, block, i, min(i + per_task, size))
                for i in range(0, size, per_task)
            ]
            for fut in previous:  # at most two blocks alive: one being written, one read
                bar.update(fut.result())
            previous = current
        for fut in previous:
            bar.update(fut.result())


def _publish(staging: Path, out_dir: Path) -> None:
    """Move the finished export into ``out_dir``, replacing old export files only."""
    if not out_dir.exists():
        os.rename(staging, out_dir)
        return
    old = existing_artifacts(out_dir)
    others = [p.name for p in out_dir.iterdir() if p.name not in old]
    backup = _sibling_dir(out_dir, "old")
    moved_old: list[str] = []
    moved_new: list[str] = []
    try:
        if not others:
            backup.rmdir()
            os.rename(out_dir, backup)
            try:
                os.rename(staging, out_dir)
            except BaseException:
                os.rename(backup, out_dir)
                raise
        else:
            for name in old:
                os.rename(out_dir / name, backup / name)
                moved_old.append(name)
            for entry in sorted(os.listdir(staging)):
                os.rename(staging / entry, out_dir / entry)
                moved_new.append(entry)
    except BaseException:
        for name in moved_new:
            target = out_dir / name
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)
        for name in moved_old:
            os.rename(backup / name, out_dir / name)
        raise
    finally:
        shutil.rmtree(backup, ignore_errors=True)
