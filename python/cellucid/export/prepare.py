"""``prepare``: write a dataset in the export format (SPEC §2, §6.2).

Everything is validated before the first byte is written. Files go to a staging folder next
to ``out_dir`` and are moved into place only when complete, so an error or Ctrl+C leaves any
previous export untouched and no half-written one. Gene columns are streamed in blocks and
encoded, compressed and written by more threads than there are cores (libdeflate and file
writes release the GIL), so the cores stay busy while threads wait for the disk.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from ..session.palettes import scanpy_palettes
from ..storage.blocks import GeneBlock
from ..storage.stores import is_url, local_path
from .binary import aligned_empty, encode_payload, write_file
from .dataset import DatasetInfo, ExportDataset, ExportSettings, make_source
from .inputs import EmbeddingSpec, build_inputs, derive_from_anndata
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
from .remote import RemoteFolder, is_remote_dataset
from .sibling import write_sibling_local, write_sibling_remote

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
def prepare(
    latent_space: AnnData | Any = None,
    obs: pd.DataFrame | str | os.PathLike[str] | None = None,
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
    layer: str | None = None,
    latent_key: str | None = None,
    embedding: EmbeddingSpec | None = None,
    genes: bool = True,
    connectivity: bool = True,
    quiet: bool = False,
    overwrite: bool | None = None,
    workers: int | None = None,
    block_values: int | None = None,
    storage_options: dict[str, Any] | None = None,
    uns: Mapping[str, Any] | None = None,
    category_colors: bool = True,
) -> Path:
    """Export a dataset to a folder in the Cellucid export format.

    Either pass an AnnData (``prepare(adata, out_dir, ...)``), from which every input is
    derived, or the arrays themselves as keywords (upstream cellucid's form:
    ``prepare(latent_space=..., obs=..., X_umap_2d=..., out_dir=...)``). Array keywords given
    with an AnnData replace what would be derived.

    Parameters
    ----------
    latent_space
        **AnnData form**: the AnnData to export (``prepare(adata, out_dir, ...)``).
        Embeddings: ``embedding`` if given, else ``obsm["X_umap"]`` (2D, or 3D with three
        columns) and ``obsm["X_umap_1d"/"_2d"/"_3d"]``; latent space: ``latent_key`` or the
        first of ``scanvi, scvi, X_scvi, X_pca, harmony, X_harmony``; every ``obs`` column
        (or ``obs_keys``); genes from ``X`` (or ``layers[layer]``); ``obsp["connectivities"]``;
        velocity-like ``obsm["<name>_umap[_<d>d]"]`` vectors. **Array form**: the ``(n, k)``
        latent space, used for per-category outlier quantiles (optional).
    obs
        AnnData form: ``out_dir`` (the second positional argument). Array form: the cell
        annotations (a DataFrame with one row per cell; required).
    var, gene_expression
        Array form: gene annotations and the ``(n, n_genes)`` matrix (dense or sparse).
    var_gene_id_column
        The ``var`` column holding gene ids (``"index"``: the index).
    gene_identifiers
        A subset of genes to export (default: all).
    connectivities
        Array form: the ``(n, n)`` kNN graph drawn as edges.
    out_dir
        The export folder (default ``./exports``). It must be new, empty, or hold an export.
        An fsspec URL (``s3://bucket/exports/atlas``, ``gs://…``) writes to object storage:
        there is no rename there, so every payload is written first and
        ``dataset_identity.json`` last (a reader never finds a half export as a dataset);
        the URL is returned as a string.
    storage_options
        fsspec options for a URL ``out_dir`` (credentials, ``endpoint_url`` in
        ``client_kwargs``); by default the environment's (``AWS_ACCESS_KEY_ID``, …).
    genes, connectivity
        AnnData form: ``False`` leaves out the gene expression / the kNN graph that would be
        derived.
    obs_keys
        The obs columns to export, in order (default: all).
    compression
        gzip level 1-9 for every binary payload, or ``None``.
    var_quantization, obs_continuous_quantization
        ``None`` (float32), 8 or 16 bits for gene values / continuous obs fields.
    obs_categorical_dtype
        ``"auto"``, ``"uint8"`` or ``"uint16"`` category codes.
    centroid_outlier_quantile, centroid_min_points
        Category centroids (SPEC 2.6.8): trimming quantile (``None``: no centroids) and the
        smallest category that gets one.
    dataset_name, dataset_description, dataset_id
        Identity of the dataset (name defaults to the folder name, id to its safe form).
    source_name, source_url, source_citation
        Where the data comes from, shown by viewers.
    force
        Replace an existing export in ``out_dir`` (other files there are left alone). Without
        it, a complete export already there is kept: a warning says so and its path is
        returned, as upstream cellucid does; a partial one raises ``FileExistsError``.
    quiet
        No progress bars or messages.
    X_umap_1d, X_umap_2d, X_umap_3d
        Embeddings of the array form (one per dimension). ``X_umap_4d`` must be ``None``.
    vector_fields
        Array form: ``{field_id: (n, d) displacement}`` per embedding dimension (SPEC 2.9).
    obs_manifest_filename, obs_binary_dirname, var_manifest_filename, var_binary_dirname, \
connectivity_manifest_filename, connectivity_binary_dirname
        Upstream's file-name options; readers need the fixed names, so only the defaults
        are accepted.
    overwrite
        Alias of ``force``.
    uns
        Array form: a mapping like ``adata.uns``, read only for scanpy's category colours
        ``"<key>_colors"`` (AnnData form: the AnnData's ``uns`` unless given).
    category_colors
        Write the scanpy colours of the exported categorical fields into the session file
        NEXT TO the export, ``<out_dir>.cellucid-session`` (never inside it: the folder keeps
        to the format), which the viewer opens with the dataset. Written after the payloads,
        only when some field has valid colours; a palette of the wrong length or with a value
        that is not ``#rrggbb`` is skipped with a warning (default colours for that field).
        A sibling written by an earlier ``prepare()`` is replaced or removed; any other file
        of that name is left alone with a warning.
    workers, block_values
        Writer threads and stored values read per block of genes (tuning; by default 8
        million for a matrix in memory, 64 million for a Dask array).

    Returns
    -------
    pathlib.Path
        The resolved export folder.

    Raises
    ------
    ValueError, KeyError, TypeError
        Bad input, before anything is written (the message names the field and the fix).
    FileExistsError
        ``out_dir`` holds a partial export (without ``force``) or other files but no export.

    Examples
    --------
    >>> import scanpy as sc, cellucid
    >>> adata = sc.datasets.pbmc68k_reduced()
    >>> cellucid.prepare(adata, "exports/pbmc68k", compression=6, quiet=True)  # doctest: +SKIP
    PosixPath('.../exports/pbmc68k')
    >>> cellucid.prepare(adata, "exports/pca", embedding="X_pca:3")  # doctest: +SKIP
    """
    arrays: dict[str, Any] = {
        "obs": obs,
        "var": var,
        "gene_expression": gene_expression,
        "connectivities": connectivities,
        "vector_fields": vector_fields,
        "X_umap_1d": X_umap_1d,
        "X_umap_2d": X_umap_2d,
        "X_umap_3d": X_umap_3d,
    }
    options: dict[str, Any] = {
        "var_gene_id_column": var_gene_id_column,
        "gene_identifiers": gene_identifiers,
        "obs_keys": obs_keys,
        "centroid_outlier_quantile": centroid_outlier_quantile,
        "centroid_min_points": centroid_min_points,
        "obs_manifest_filename": obs_manifest_filename,
        "obs_binary_dirname": obs_binary_dirname,
        "var_manifest_filename": var_manifest_filename,
        "var_binary_dirname": var_binary_dirname,
        "connectivity_manifest_filename": connectivity_manifest_filename,
        "connectivity_binary_dirname": connectivity_binary_dirname,
        "force": force,
        "var_quantization": var_quantization,
        "obs_continuous_quantization": obs_continuous_quantization,
        "obs_categorical_dtype": obs_categorical_dtype,
        "compression": compression,
        "dataset_name": dataset_name,
        "dataset_description": dataset_description,
        "dataset_id": dataset_id,
        "source_name": source_name,
        "source_url": source_url,
        "source_citation": source_citation,
        "X_umap_4d": X_umap_4d,
        "quiet": quiet,
        "overwrite": overwrite,
        "workers": workers,
        "block_values": block_values,
        "storage_options": storage_options,
        "uns": uns,
        "category_colors": category_colors,
    }
    if _is_anndata(latent_space):
        if uns is None:
            options["uns"] = getattr(latent_space, "uns", None)
        if isinstance(obs, (str, os.PathLike)):  # prepare(adata, out_dir)
            if out_dir is not None:
                raise TypeError("out_dir given both positionally and as a keyword")
            out_dir, arrays["obs"] = obs, None
        given = {k: v for k, v in arrays.items() if v is not None}
        if not genes:
            if gene_expression is not None or layer is not None:
                raise TypeError("genes=False contradicts gene_expression=... / layer=...")
            given["gene_expression"] = None
        derived = derive_from_anndata(
            latent_space,
            layer=layer,
            latent_key=latent_key,
            connectivity=connectivity,
            overrides=given,
            embedding=embedding,
        )
        return _prepare_arrays(out_dir=out_dir, **derived, **options)
    if layer is not None or embedding is not None:
        raise TypeError("layer= and embedding= need an AnnData as the first argument")
    if isinstance(obs, (str, os.PathLike)):
        raise TypeError(
            "the second argument is obs (a DataFrame) unless the first is an AnnData; "
            "pass out_dir=... for the export folder"
        )
    return _prepare_arrays(
        latent_space=latent_space, out_dir=out_dir, latent_key=latent_key, **arrays, **options
    )


def _is_anndata(obj: Any) -> bool:
    """An :class:`anndata.AnnData`, or the :class:`~cellucid.storage.anndata_io.LazyAnnData`
    of a file read with its expression matrix left on disk."""
    from ..storage.anndata_io import LazyAnnData

    mod = sys.modules.get("anndata")
    return isinstance(obj, LazyAnnData) or (mod is not None and isinstance(obj, mod.AnnData))


def _prepare_arrays(out_dir: str | os.PathLike[str] | None, **p: Any) -> Path:
    """The array form, once :func:`prepare` has sorted its arguments (``p`` holds every
    parameter of :func:`prepare` but ``adata``/``layer``/``embedding``; absent arrays are
    ``None``)."""
    for param, fixed in _FIXED_NAMES.items():
        if p[param] != fixed:
            raise ValueError(
                f"{param}={p[param]!r} is not supported: readers require the fixed name "
                f"{fixed!r}; leave it at its default"
            )
    if p.get("X_umap_4d") is not None:
        raise NotImplementedError("4D embeddings are not supported (X_umap_4d must be None)")
    points = {d: p.get(f"X_umap_{d}d") for d in (1, 2, 3)}
    points = {d: a for d, a in points.items() if a is not None}
    remote = RemoteFolder(str(out_dir), p["storage_options"]) if is_url(out_dir) else None
    out = Path.cwd() / "exports" if out_dir is None else Path(local_path(out_dir))
    out = out.expanduser().resolve()
    settings = ExportSettings(
        compression=p["compression"],
        var_quantization=p["var_quantization"],
        obs_continuous_quantization=p["obs_continuous_quantization"],
        obs_categorical_dtype=p["obs_categorical_dtype"],
        centroid_outlier_quantile=p["centroid_outlier_quantile"],
        centroid_min_points=p["centroid_min_points"],
    )
    default_name = remote.name if remote is not None else out.name
    name = p["dataset_name"] if p["dataset_name"] is not None else default_name
    info = DatasetInfo(
        id=p["dataset_id"] if p["dataset_id"] is not None else safe_name(name),
        name=name,
        description=p["dataset_description"] or "",
        source=make_source(p["source_name"], p["source_url"], p["source_citation"]),
    )
    inputs = build_inputs(
        obs=p.get("obs"),
        obs_keys=p["obs_keys"],
        info=info,
        settings=settings,
        points=points,
        latent_space=p.get("latent_space"),
        latent_key=p.get("latent_key"),
        var=p.get("var"),
        gene_expression=p.get("gene_expression"),
        var_gene_id_column=p["var_gene_id_column"],
        gene_identifiers=p["gene_identifiers"],
        connectivities=p.get("connectivities"),
        vector_fields=p.get("vector_fields"),
    )
    force = bool(p["force"] or p["overwrite"])
    palettes = (
        scanpy_palettes(p["uns"] or {}, p.get("obs"), p["obs_keys"])
        if p["category_colors"] and isinstance(p.get("obs"), pd.DataFrame)
        else {}
    )
    if remote is not None:
        url = _prepare_remote(inputs, remote, force, p)
        if url is not None and p["category_colors"]:
            write_sibling_remote(remote, palettes, _fingerprint(remote.read_text(IDENTITY_FILE)))
        return url if url is not None else remote.url  # type: ignore[return-value]
    existing = existing_artifacts(out)
    if _keep_existing(str(out), existing, lambda: is_complete_export(out), force):
        return out
    if not existing:
        _refuse_foreign(str(out), foreign_entries(out))
    dataset = ExportDataset(inputs)
    written = write_dataset(
        dataset, out, quiet=p["quiet"], workers=p["workers"], block_values=p["block_values"]
    )
    if p["category_colors"]:
        identity = (written / IDENTITY_FILE).read_text(encoding="utf-8")
        write_sibling_local(written, palettes, _fingerprint(identity))
    return written


def _fingerprint(identity_text: str) -> dict[str, Any]:
    """The ``datasetFingerprint`` of the sibling session (SPEC §5.2), from the identity
    just written."""
    identity = json.loads(identity_text)
    stats = identity["stats"]
    return {
        "sourceType": "cellucid-export",
        "datasetId": identity["id"],
        "cellCount": stats["n_cells"],
        "varCount": stats["n_genes"],
    }


def _keep_existing(
    where: str, existing: list[str], complete: Callable[[], bool], force: bool, depth: int = 4
) -> bool:
    """Whether an export already at ``where`` is kept (a warning says so); a partial one
    without ``force`` is a ``FileExistsError``."""
    if not existing or force:
        return False
    if complete():
        warnings.warn(
            f"{where} already holds an export; skipping (pass force=True to replace it)",
            stacklevel=depth,  # the caller of prepare()
        )
        return True
    shown = ", ".join(existing[:10]) + (" …" if len(existing) > 10 else "")
    raise FileExistsError(
        f"{where} holds part of an export ({shown}); pass force=True (CLI: --force) to replace it"
    )


def _refuse_foreign(where: str, others: list[str]) -> None:
    """A folder with files that are no export is not written into."""
    if others:
        shown = ", ".join(others[:5]) + (" …" if len(others) > 5 else "")
        raise FileExistsError(
            f"{where} is not empty and holds no export ({len(others)} entries: {shown}); "
            "export into a new or empty folder, e.g. a subfolder named after the dataset"
        )


def _prepare_remote(
    inputs: Any, folder: RemoteFolder, force: bool, p: dict[str, Any]
) -> str | None:
    """The checks of a local export (complete, partial, foreign files), then the writing,
    for a folder in object storage; None when an existing export is kept."""
    existing = remote_artifacts(folder)
    if _keep_existing(folder.url, existing, lambda: is_remote_dataset(folder), force, 5):
        return None  # kept as it is (its sibling too)
    if not existing:
        names = set(ARTIFACT_FILES) | set(ARTIFACT_DIRS)
        _refuse_foreign(folder.url, sorted(n for n in folder.entries() if n not in names))
    dataset = ExportDataset(inputs)
    return write_dataset_remote(
        dataset,
        folder,
        replace=bool(existing),
        quiet=p["quiet"],
        workers=p["workers"],
        block_values=p["block_values"],
    )


# --------------------------------------------------------------------------- writing
def existing_artifacts(out_dir: Path) -> list[str]:
    """Export files and folders already present in ``out_dir`` (sorted names)."""
    if not out_dir.is_dir():
        if out_dir.exists():
            raise NotADirectoryError(f"out_dir {out_dir} exists and is not a directory")
        return []
    names = set(ARTIFACT_FILES) | set(ARTIFACT_DIRS)
    return sorted(p.name for p in out_dir.iterdir() if p.name in names)


def is_complete_export(out_dir: Path) -> bool:
    """Whether ``out_dir`` is a dataset directory (SPEC 2.2) with a readable identity.

    Exports are published atomically (staging folder, then a rename), so a dataset
    directory that ``prepare`` wrote is whole; ``cellucid validate`` checks every byte.
    """
    import json

    from .catalog import is_dataset_dir

    if not is_dataset_dir(out_dir):
        return False
    try:
        identity = json.loads((out_dir / IDENTITY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(identity, dict)


def foreign_entries(out_dir: Path) -> list[str]:
    """Entries of ``out_dir`` that are not export artefacts (dot files do not count)."""
    if not out_dir.is_dir():
        return []
    names = set(ARTIFACT_FILES) | set(ARTIFACT_DIRS)
    return sorted(
        p.name for p in out_dir.iterdir() if p.name not in names and not p.name.startswith(".")
    )


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
    block_values: int | None = None,
) -> Path:
    """Write every file of ``dataset`` into ``out_dir`` through a staging folder."""
    out_dir = Path(out_dir).resolve()
    progress = _Progress(quiet)
    t0 = time.perf_counter()
    progress.note(_summary(dataset, out_dir))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stale = remove_stale_staging(out_dir)
    if stale:
        progress.note(f"cellucid: removed {len(stale)} folder(s) left by an interrupted export")
    staging = _sibling_dir(out_dir, "staging")
    try:
        pool = ThreadPoolExecutor(
            max_workers=workers or max(os.cpu_count() or 1, MIN_WRITER_THREADS),
            thread_name_prefix="cellucid-export",
        )
        try:
            _write_payloads(dataset, _Folder(staging), pool, progress)
            _write_genes(dataset, _Folder(staging), pool, progress, block_values)
        finally:  # on an error or Ctrl+C, queued files are dropped; running ones finish
            pool.shutdown(wait=True, cancel_futures=True)
        (staging / OBS_DIR).mkdir(exist_ok=True)  # obs/ always exists
        for name, data in dataset.manifest_bytes().items():
            (staging / name).write_bytes(data)
        _publish(staging, out_dir)
    finally:
        _drop_sibling(staging)
    progress.note(
        f"cellucid: exported {dataset.n_cells} cells to {out_dir} in {time.perf_counter() - t0:.1f} s"
    )
    return out_dir


#: a staging folder without a writer file (made before they existed) is removed after this
STALE_UNMARKED_SECONDS = 24 * 3600
_WRITER_SUFFIX = ".writer"


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (``/proc``), to tell a reused pid from the writer."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _writer_alive(info: dict[str, Any]) -> bool:
    """Whether the process that wrote ``info`` (pid, host, start) still runs."""
    if info.get("host") != socket.gethostname():
        return True  # another machine's (shared file system): never ours to judge
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    start = info.get("start")
    return start is None or _process_start(pid) in (None, start)


def remove_stale_staging(out_dir: Path) -> list[str]:
    """Remove the staging/backup folders next to ``out_dir`` whose writer is gone (killed
    by SIGKILL, a power cut): each has a ``<folder>.writer`` file with the writer's pid, host
    and process start time. Unmarked ones (older versions) go after a day. Returns what was
    removed."""
    import json

    removed = []
    parent = out_dir.parent
    if not parent.is_dir():
        return removed
    for role in ("staging", "old"):
        for path in parent.glob(f".{out_dir.name}.cellucid-{role}-*"):
            if not path.is_dir():
                continue
            marker = path.with_name(path.name + _WRITER_SUFFIX)
            try:
                info = json.loads(marker.read_text(encoding="utf-8"))
                stale = not _writer_alive(info if isinstance(info, dict) else {})
            except FileNotFoundError:
                stale = time.time() - path.stat().st_mtime > STALE_UNMARKED_SECONDS
            except (OSError, ValueError):
                stale = False
            if stale:
                shutil.rmtree(path, ignore_errors=True)
                marker.unlink(missing_ok=True)
                removed.append(path.name)
    return removed


def write_dataset_remote(
    dataset: ExportDataset,
    folder: RemoteFolder,
    *,
    replace: bool = False,
    quiet: bool = False,
    workers: int | None = None,
    block_values: int | None = None,
) -> str:
    """Write every file of ``dataset`` into a folder of an object store, identity last
    (:mod:`cellucid.export.remote`); with ``replace`` the old export's identity goes first,
    then its other files."""
    progress = _Progress(quiet)
    t0 = time.perf_counter()
    progress.note(_summary(dataset, folder.url))
    if replace:
        old = remote_artifacts(folder)
        if IDENTITY_FILE in old:
            folder.remove([IDENTITY_FILE])  # no dataset here from now until the new identity
        folder.remove([rel for rel in old if rel != IDENTITY_FILE])
    bucket = _Bucket(folder)
    pool = ThreadPoolExecutor(
        max_workers=workers or max(os.cpu_count() or 1, MIN_WRITER_THREADS),
        thread_name_prefix="cellucid-export",
    )
    try:
        _write_payloads(dataset, bucket, pool, progress)
        _write_genes(dataset, bucket, pool, progress, block_values)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    manifests = dataset.manifest_bytes()
    for name, data in manifests.items():
        if name != IDENTITY_FILE:
            folder.put(name, data)
    folder.put(IDENTITY_FILE, manifests[IDENTITY_FILE])  # last: now it is a dataset
    progress.note(
        f"cellucid: exported {dataset.n_cells} cells to {folder.url} in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    return folder.url


def remote_artifacts(folder: RemoteFolder) -> list[str]:
    """Export files (relative paths) already in a folder of an object store."""
    names = set(ARTIFACT_FILES)
    dirs = tuple(f"{d}/" for d in ARTIFACT_DIRS)
    return [rel for rel in folder.files() if rel in names or rel.startswith(dirs)]


def _sibling_dir(out_dir: Path, role: str) -> Path:
    """A new hidden folder next to ``out_dir``, with a ``.writer`` file naming this process;
    unlike mkdtemp it keeps the umask's mode, because the staging folder becomes the export
    itself. :func:`_drop_sibling` removes both."""
    import json

    for _ in range(100):
        path = out_dir.parent / f".{out_dir.name}.cellucid-{role}-{secrets.token_hex(4)}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        writer = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "start": _process_start(os.getpid()),
        }
        path.with_name(path.name + _WRITER_SUFFIX).write_text(json.dumps(writer), encoding="utf-8")
        return path
    raise FileExistsError(f"could not create a {role} folder next to {out_dir}")


def _drop_sibling(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
    path.with_name(path.name + _WRITER_SUFFIX).unlink(missing_ok=True)


def _summary(ds: ExportDataset, out_dir: Path | str) -> str:
    s = ds.settings
    return (
        f"cellucid: exporting {ds.n_cells} cells, dims {ds.dims}, {len(ds.continuous)} continuous + "
        f"{len(ds.categorical)} categorical obs fields, {len(ds.gene_ids)} genes, "
        f"{ds.edges.n_edges if ds.edges else 0} edges, {len(ds.vectors)} vector files -> {out_dir}\n"
        f"          compression={s.compression} var_quantization={s.var_quantization} "
        f"obs_continuous_quantization={s.obs_continuous_quantization} "
        f"obs_categorical_dtype={s.obs_categorical_dtype} latent={ds.latent_key}"
    )


def _write_file(
    path: Path, raw: bytes | memoryview, compression: int | None, column: bool = False
) -> None:
    write_file(path, encode_payload(raw, compression, column))


class _Folder:
    """Where files go: a local folder (the staging folder of an export)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def make_dirs(self, rels: Iterable[str]) -> None:
        for parent in {(self.root / rel).parent for rel in rels}:
            parent.mkdir(parents=True, exist_ok=True)

    def put(
        self, rel: str, raw: bytes | memoryview, compression: int | None, column: bool = False
    ) -> None:
        """Write ``raw`` as ``rel`` (``column``: a float32 column, see ``encode_payload``)."""
        _write_file(self.root / rel, raw, compression, column)


class _Bucket:
    """Where files go: a folder in object storage (no folders to make)."""

    def __init__(self, folder: RemoteFolder) -> None:
        self.folder = folder

    def make_dirs(self, rels: Iterable[str]) -> None:
        pass

    def put(
        self, rel: str, raw: bytes | memoryview, compression: int | None, column: bool = False
    ) -> None:
        """Upload ``raw`` as ``rel`` (``column``: a float32 column, see ``encode_payload``)."""
        self.folder.put(rel, encode_payload(raw, compression, column))


def _write_payloads(
    ds: ExportDataset, target: _Folder | _Bucket, pool: ThreadPoolExecutor, progress: _Progress
) -> None:
    producers = ds.payload_producers()
    target.make_dirs(producers)
    comp = ds.compression
    with progress.bar(len(producers), "embeddings, obs, edges", "file") as bar:
        futures = [
            pool.submit(lambda r=rel, m=make: target.put(r, m(), comp))
            for rel, make in producers.items()
        ]
        for fut in futures:
            fut.result()
            bar.update(1)


#: exports with at least this many gene values (cells x genes) compress their mostly-zero
#: float32 gene columns with :mod:`.deflate_columns`; the first use per install compiles it
#: (about 20 s here), which a small export would notice and a large one does not
COLUMN_WRITER_MIN_VALUES = 50_000_000


def _write_genes(
    ds: ExportDataset,
    target: _Folder | _Bucket,
    pool: ThreadPoolExecutor,
    progress: _Progress,
    block_values: int | None,
) -> None:
    """Encode and write gene columns on the pool while the next block is being read."""
    if not ds.gene_ids:
        return
    target.make_dirs([f"{VAR_DIR}/x"])
    comp = ds.compression
    # quantised columns are u8/u16: libdeflate; so are the columns of a small export, which
    # would spend longer on the column writer's first compile (numba) than on its genes
    float32 = not ds.settings.var_quantization and (
        ds.n_cells * len(ds.gene_ids) >= COLUMN_WRITER_MIN_VALUES
    )
    per_task = 32
    local = threading.local()

    def write_some(block: GeneBlock, start: int, stop: int) -> int:
        buf = getattr(local, "buf", None)
        if buf is None:  # aligned, so an uncompressed column is written without a copy
            buf = local.buf = aligned_empty(ds.n_cells, np.float32)
        for i in range(start, stop):
            gi = int(block.positions[i])
            raw = ds.encode_gene(gi, block.column(i, buf))
            target.put(ds.gene_path(gi), raw, comp, float32)
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
        _drop_sibling(backup)
