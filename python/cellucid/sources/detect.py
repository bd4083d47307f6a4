"""What a path on disk holds: an ``.h5ad`` file, a ``.zarr`` store, an export folder or a
folder of exports (SPEC §6.5 "Path format" and §6.7 detection order), and loading AnnData.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from anndata import AnnData

Kind = Literal["h5ad", "zarr", "export", "export_root"]

EXPECTED = (
    "expected an .h5ad file, a .zarr store (zarr v2: .zgroup/.zattrs, zarr v3: zarr.json), "
    "an export folder made by cellucid.prepare (dataset_identity.json, obs_manifest.json and "
    "points_<d>d.bin), or a folder whose subfolders are such exports"
)


@dataclass(frozen=True)
class Detected:
    kind: Kind
    path: Path


def is_zarr_store(path: Path) -> bool:
    """A directory ending in ``.zarr`` or holding zarr v2/v3 group metadata."""
    if not path.is_dir():
        return False
    if path.suffix.lower() == ".zarr":
        return True
    return any((path / marker).exists() for marker in (".zgroup", ".zattrs", "zarr.json"))


def detect(path: str | Path) -> Detected:
    """Classify ``path``; the first matching rule wins (SPEC §6.7).

    Raises ``FileNotFoundError`` for a missing path and ``ValueError`` (saying what was
    expected) for anything else that is not recognised.
    """
    from ..export.catalog import find_datasets, is_dataset_dir

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


def load_anndata(path: str | Path, backed: bool | str = False) -> AnnData:
    """Read an ``.h5ad`` (optionally backed, read-only) or a ``.zarr`` store."""
    import anndata

    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"Path not found: {p}")
    if is_zarr_store(p):
        try:
            import zarr  # noqa: F401
        except ImportError as exc:  # pragma: no cover - zarr is a dependency
            raise ImportError("reading .zarr stores needs zarr: pip install zarr") from exc
        return anndata.read_zarr(p)
    try:
        import h5py  # noqa: F401
    except ImportError as exc:  # pragma: no cover - h5py is a dependency
        raise ImportError("reading .h5ad files needs h5py: pip install h5py") from exc
    mode = ("r" if backed is True else backed) if backed else None
    return anndata.read_h5ad(p, backed=mode)
