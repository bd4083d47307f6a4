"""Find datasets in an export folder and write the static-hosting catalog (SPEC §2.2, §2.11, §6.3).

A *dataset directory* holds ``dataset_identity.json``, ``obs_manifest.json`` and at least one
points file; an *export root* is not itself a dataset but has dataset subdirectories. Only
immediate subdirectories with an eligible name count, listed sorted by name.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from .naming import (
    DATASETS_FILE,
    IDENTITY_FILE,
    OBS_MANIFEST_FILE,
    is_eligible_dataset_dir_name,
)

__all__ = ["find_datasets", "generate_datasets_manifest", "is_dataset_dir", "is_export_root"]

#: points file names, plain and gzipped, that make a directory a dataset (SPEC §2.2)
POINTS_FILE_NAMES = tuple(f"points_{d}d.bin{gz}" for d in (1, 2, 3) for gz in ("", ".gz"))


def is_dataset_dir(path: str | Path) -> bool:
    """Whether ``path`` is a dataset directory (SPEC §2.2).

    It must contain ``dataset_identity.json``, ``obs_manifest.json`` and at least one of
    ``points_1d.bin``, ``points_2d.bin``, ``points_3d.bin`` (plain or ``.gz``). The files
    are not parsed: use :func:`cellucid.export.validate.validate_export` for that.

    Examples
    --------
    >>> is_dataset_dir("exports/pbmc")  # doctest: +SKIP
    True
    """
    p = Path(path)
    return (
        p.is_dir()
        and (p / IDENTITY_FILE).is_file()
        and (p / OBS_MANIFEST_FILE).is_file()
        and any((p / name).is_file() for name in POINTS_FILE_NAMES)
    )


def _subdirectories(root: Path) -> list[Path]:
    return sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name)


def is_export_root(path: str | Path) -> bool:
    """Whether ``path`` is an export root (SPEC §2.2).

    An export root is not itself a dataset (a dataset with dataset subdirectories counts as
    one dataset) but has at least one immediate subdirectory that is. Deeper levels are not
    scanned.

    Examples
    --------
    >>> is_export_root("exports")  # doctest: +SKIP
    True
    """
    p = Path(path)
    if not p.is_dir() or is_dataset_dir(p):
        return False
    return any(is_dataset_dir(sub) for sub in _subdirectories(p))


def find_datasets(root: str | Path) -> list[Path]:
    """The dataset subdirectories of an export root, sorted by directory name.

    Dataset subdirectories whose name is not eligible (SPEC §2.2: must match
    ``^[A-Za-z0-9][A-Za-z0-9._-]{0,179}$``, must not be a Windows device name, ``assets``
    or ``_cellucid``) are skipped with a warning. Non-dataset subdirectories are ignored.

    Examples
    --------
    >>> [p.name for p in find_datasets("exports")]  # doctest: +SKIP
    ['lung', 'pbmc']
    """
    found: list[Path] = []
    for sub in _subdirectories(Path(root)):
        if not is_dataset_dir(sub):
            continue
        if not is_eligible_dataset_dir_name(sub.name):
            warnings.warn(
                f"skipping dataset directory {sub.name!r}: a dataset directory name must match "
                "^[A-Za-z0-9][A-Za-z0-9._-]{0,179}$ and must not be a Windows device name, "
                "'assets' or '_cellucid'",
                stacklevel=2,
            )
            continue
        found.append(sub)
    return found


def _catalog_entry(directory: Path) -> dict[str, Any]:
    """The ``datasets.json`` entry of one dataset, from its identity (SPEC §2.11)."""
    try:
        identity = json.loads((directory / IDENTITY_FILE).read_text(encoding="utf-8"))
        stats = identity["stats"]
        entry = {
            "id": identity["id"],
            "path": f"{directory.name}/",
            "name": identity["name"],
            "n_cells": stats["n_cells"],
            "n_genes": stats["n_genes"],
        }
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"cannot list dataset {directory.name!r}: its {IDENTITY_FILE} is unreadable or "
            f"lacks id, name or stats ({type(exc).__name__}: {exc})"
        ) from exc
    for key in ("id", "name"):
        if not isinstance(entry[key], str) or not entry[key].strip():
            raise ValueError(
                f"dataset {directory.name!r}: identity {key} must be a non-blank string"
            )
    for key in ("n_cells", "n_genes"):
        if not isinstance(entry[key], int) or isinstance(entry[key], bool) or entry[key] < 0:
            raise ValueError(f"dataset {directory.name!r}: stats.{key} must be an integer >= 0")
    return entry


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def generate_datasets_manifest(
    exports_dir: str | Path | None = None,
    output_filename: str = DATASETS_FILE,
    default_dataset: str | None = None,
) -> Path | None:
    """Write ``datasets.json`` listing the datasets of an export root (SPEC §2.11, §6.3).

    Parameters
    ----------
    exports_dir : str or Path, optional
        The export root; ``Path.cwd() / "exports"`` (evaluated at call time) by default.
    output_filename : str
        Name of the catalog written inside ``exports_dir``.
    default_dataset : str, optional
        Identity id of the default dataset. An id that is not listed gives a warning and
        the first dataset becomes the default, as it does when None.

    Returns
    -------
    Path or None
        The written file, or None (nothing written) when no dataset was found.

    Raises
    ------
    FileNotFoundError
        ``exports_dir`` does not exist.
    ValueError
        Two datasets share an identity id, or an identity lacks id, name or stats.

    Examples
    --------
    >>> from cellucid.export.catalog import generate_datasets_manifest
    >>> generate_datasets_manifest("exports", default_dataset="pbmc")  # doctest: +SKIP
    PosixPath('exports/datasets.json')
    """
    root = Path.cwd() / "exports" if exports_dir is None else Path(exports_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"exports directory not found: {root}")
    entries: list[dict[str, Any]] = []
    owner: dict[str, str] = {}
    for directory in find_datasets(root):
        entry = _catalog_entry(directory)
        if entry["id"] in owner:
            raise ValueError(
                f"datasets {owner[entry['id']]!r} and {directory.name!r} have the same identity "
                f"id {entry['id']!r}; ids must be unique within an export root"
            )
        owner[entry["id"]] = directory.name
        entries.append(entry)
    if not entries:
        return None
    default = entries[0]["id"]
    if default_dataset is not None:
        if default_dataset in owner:
            default = default_dataset
        else:
            warnings.warn(
                f"default_dataset {default_dataset!r} is not a listed dataset id; "
                f"using {default!r}",
                stacklevel=2,
            )
    manifest = {"version": 1, "default": default, "datasets": entries}
    path = root / output_filename
    _write_atomically(path, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return path
