"""What a path on disk holds: an ``.h5ad`` file, a ``.zarr`` store, an export folder or a
folder of exports (SPEC §6.5 "Path format" and §6.7 detection order), and loading AnnData.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd
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


@dataclass
class LazyAnnData:
    """What an export needs of an AnnData read lazily: the attributes the exporter reads
    (``obs`` with a plain RangeIndex, ``var``, a subset of ``obsm``, ``obsp``), no ``X``.

    Not an :class:`anndata.AnnData`: building one would turn millions of cell names into
    Python strings at start-up, which nothing here needs (hover labels read them on demand).
    """

    obs: pd.DataFrame
    var: pd.DataFrame
    obsm: dict[str, Any]
    obsp: dict[str, Any]
    uns: dict[str, Any] = field(default_factory=dict)
    layers: dict[str, Any] = field(default_factory=dict)
    X: Any = None
    isbacked: bool = False
    #: the cell names, read from the file a slice at a time (:class:`FileObsNames`)
    obs_names: Any = None

    @property
    def n_obs(self) -> int:
        return len(self.obs)

    @property
    def n_vars(self) -> int:
        return len(self.var)


class FileObsNames:
    """An AnnData file's ``obs_names`` read on demand: ``len()`` and slices only.

    The hover tooltip asks for names in blocks (``GET /_cellucid/obs_names``); reading all
    of them at start-up would cost seconds at millions of cells.
    """

    def __init__(self, dataset: Any) -> None:
        self._dataset = dataset  # the obs index: an h5py Dataset or a zarr Array
        self._n = int(dataset.shape[0])

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, key: slice) -> list[str]:
        if not isinstance(key, slice):
            raise TypeError("FileObsNames supports slices only")
        start, stop, step = key.indices(self._n)
        values = self._dataset[start:stop:step]
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def read_obs_columns(group: Any) -> pd.DataFrame:
    """An AnnData ``obs`` group's columns with a RangeIndex: the index (cell names) is not
    read. Legacy layouts (``__categories``) are read whole."""
    import pandas as pd
    from anndata.io import read_elem

    attrs = group.attrs
    index_key = attrs.get("_index")
    if "__categories" in group or index_key is None or index_key not in group:
        frame = read_elem(group)
        return frame.set_axis(pd.RangeIndex(len(frame)), axis=0)
    n = int(group[index_key].shape[0])
    order = [str(c) for c in attrs.get("column-order", [])]
    columns = {c: read_elem(group[c]) for c in order}
    return pd.DataFrame(columns, index=pd.RangeIndex(n), columns=order)


def load_anndata_lazy(
    path: str | Path,
    layer: str | None = None,
    latent_key: str | None = None,
    embedding_keys: list[str] | None = None,
) -> tuple[LazyAnnData, BackedMatrix]:
    """Cell and gene annotations in memory, the expression matrix left on disk.

    Returns a :class:`LazyAnnData` (no ``X``, no cell names) and the expression matrix (``X``
    or ``layers/<layer>``) as a :class:`~cellucid.sources.backed.BackedMatrix`. Of ``obsm``
    only what an export uses is read: UMAP embeddings (and ``embedding_keys``), velocity-like
    ``*_umap`` vectors and the latent space (``latent_key``, else the known candidates);
    other embeddings may be large and stay on disk. Works for ``.h5ad`` files and ``.zarr``
    stores (v2, v3).
    """
    import pandas as pd
    from anndata.io import read_elem

    from ..export.inputs import LATENT_CANDIDATES
    from .backed import BackedMatrix

    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"Path not found: {p}")
    element = "X" if layer is None else f"layers/{layer}"
    matrix = BackedMatrix.open(p, element)

    root = matrix.root
    obs = read_obs_columns(root["obs"]) if "obs" in root else None
    if "var" in root:
        var = read_elem(root["var"])
    else:
        var = pd.DataFrame(index=pd.RangeIndex(matrix.n_genes).astype(str))
    obsp = read_elem(root["obsp"]) if "obsp" in root else {}
    obsm = {}
    if "obsm" in root:
        wanted = {latent_key} if latent_key else set(LATENT_CANDIDATES)
        extra = set(embedding_keys or ())
        for key in root["obsm"]:
            if key in wanted or key.startswith("X_umap") or "_umap" in key or key in extra:
                obsm[key] = read_elem(root["obsm"][key])
    if obs is None:
        obs = pd.DataFrame(index=pd.RangeIndex(matrix.n_cells))
    if len(obs) != matrix.n_cells:
        raise ValueError(f"{p}: obs has {len(obs)} rows but {element} has {matrix.n_cells}")
    if len(var) != matrix.n_genes:
        raise ValueError(f"{p}: var has {len(var)} rows but {element} has {matrix.n_genes} columns")
    names: Any = None
    if "obs" in root:
        index_key = root["obs"].attrs.get("_index")
        if index_key is not None and index_key in root["obs"]:
            names = FileObsNames(root["obs"][index_key])
    if names is None or len(names) != len(obs):
        names = pd.RangeIndex(len(obs)).astype(str)
    lazy = LazyAnnData(obs=obs, var=var, obsm=obsm, obsp=dict(obsp), obs_names=names)
    return lazy, matrix
