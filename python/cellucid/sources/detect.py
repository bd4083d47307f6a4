"""What a path on disk holds: an ``.h5ad`` file, a ``.zarr`` store, an export folder or a
folder of exports (SPEC §6.5 "Path format" and §6.7 detection order), and loading AnnData.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from anndata import AnnData

    from .backed import BackedMatrix

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


def require(module: str) -> Any:
    """Import ``zarr`` or ``h5py`` with an error that says how to install it (SPEC §6.5)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - both are dependencies
        what = ".zarr stores" if module == "zarr" else ".h5ad files"
        raise ImportError(f"reading {what} needs {module}: pip install {module}") from exc


def load_anndata(path: str | Path, backed: bool | str = False) -> AnnData:
    """Read an ``.h5ad`` (optionally backed, read-only) or a ``.zarr`` store into memory."""
    import anndata

    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"Path not found: {p}")
    if is_zarr_store(p):
        require("zarr")
        return anndata.read_zarr(p)
    require("h5py")
    mode = ("r" if backed is True else backed) if backed else None
    return anndata.read_h5ad(p, backed=mode)


def load_anndata_lazy(
    path: str | Path,
    layer: str | None = None,
    latent_key: str | None = None,
    embedding_keys: list[str] | None = None,
) -> tuple[AnnData, BackedMatrix]:
    """Cell and gene annotations in memory, the expression matrix left on disk.

    Returns an AnnData without ``X`` and the expression matrix (``X`` or
    ``layers/<layer>``) as a :class:`~cellucid.sources.backed.BackedMatrix`. Of ``obsm``
    only what an export uses is read: UMAP embeddings (and ``embedding_keys``), velocity-like
    ``*_umap`` vectors and the latent space (``latent_key``, else the known candidates);
    other embeddings may be large and stay on disk. Works for ``.h5ad`` files and ``.zarr`` stores (v2, v3).
    """
    import anndata
    from anndata.io import read_elem

    from .backed import BackedMatrix

    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"Path not found: {p}")
    element = "X" if layer is None else f"layers/{layer}"
    matrix = BackedMatrix.open(p, element)
    from ..export.inputs import LATENT_CANDIDATES

    root = matrix.root
    parts = {k: read_elem(root[k]) for k in ("obs", "var", "obsp") if k in root}
    obsm = {}
    if "obsm" in root:
        wanted = {latent_key} if latent_key else set(LATENT_CANDIDATES)
        extra = set(embedding_keys or ())
        for key in root["obsm"]:
            if key in wanted or key.startswith("X_umap") or "_umap" in key or key in extra:
                obsm[key] = read_elem(root["obsm"][key])
    adata = anndata.AnnData(
        obs=parts.get("obs"), var=parts.get("var"), obsm=obsm or None, obsp=parts.get("obsp")
    )
    return adata, matrix
