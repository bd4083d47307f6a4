"""What a path holds: an ``.h5ad`` file, a ``.zarr`` store, an export folder or a folder of
exports (SPEC §6.5 "Path format" and §6.7 detection order). Opening and reading them is
:mod:`cellucid.storage`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..storage.stores import ZARR_MARKERS, StorageOptions, exists, is_url, is_zarr_store

Kind = Literal["h5ad", "zarr", "export", "export_root"]

EXPECTED = (
    "expected an .h5ad file, a .zarr store (zarr v2: .zgroup/.zattrs, zarr v3: zarr.json), "
    "an export folder made by cellucid.prepare (dataset_identity.json, obs_manifest.json and "
    "points_<d>d.bin), or a folder whose subfolders are such exports"
)


@dataclass(frozen=True)
class Detected:
    kind: Kind
    path: Path | str  # a URL stays a string


def detect(path: str | Path, storage_options: StorageOptions | None = None) -> Detected:
    """Classify ``path`` (a local path or an fsspec URL); the first matching rule wins
    (SPEC §6.7).

    Raises ``FileNotFoundError`` for a missing path and ``ValueError`` (saying what was
    expected) for anything else that is not recognised.
    """
    from ..export.catalog import find_datasets, is_dataset_dir

    if is_url(path):
        return _detect_url(str(path).rstrip("/"), storage_options)
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"Path not found: {p}")
    if p.is_file() and p.name.lower().endswith(".h5ad"):
        return Detected("h5ad", p)
    if is_zarr_store(p):
        return Detected("zarr", p)
    if p.is_dir() and is_dataset_dir(p):
        return Detected("export", p)
    if p.is_dir() and find_datasets(p):
        return Detected("export_root", p)
    raise ValueError(f"Unable to detect format of {p}: {EXPECTED}")


def _detect_url(url: str, storage_options: StorageOptions | None) -> Detected:
    from ..export.remote import RemoteFolder, find_remote_datasets, is_remote_dataset

    if url.lower().endswith(".h5ad"):
        if not exists(url, storage_options):
            raise FileNotFoundError(f"Path not found: {url}")
        return Detected("h5ad", url)
    folder = RemoteFolder(url, storage_options)
    entries = folder.entries()
    if not entries:
        if exists(url, storage_options):
            raise ValueError(f"Unable to detect format of {url}: {EXPECTED}")
        raise FileNotFoundError(f"Path not found: {url}")
    if url.lower().endswith(".zarr") or any(m in entries for m in ZARR_MARKERS):
        return Detected("zarr", url)
    if is_remote_dataset(folder, entries):
        return Detected("export", url)
    if find_remote_datasets(folder):
        return Detected("export_root", url)
    raise ValueError(f"Unable to detect format of {url}: {EXPECTED}")
