"""Reading AnnData from a path or URL: whole (into memory) or lazily (annotations only).

:func:`load_anndata_lazy` is what the server and large exports use: ``obs`` (without cell
names), ``var``, the ``obsm`` entries asked for and ``obsp`` in memory, the expression matrix
left where it is as a :class:`~cellucid.storage.backed.BackedMatrix`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .stores import PathLike, StorageOptions, exists, is_url, is_zarr_store, local_path, require

if TYPE_CHECKING:
    import pandas as pd
    from anndata import AnnData

    from .backed import BackedMatrix


def load_anndata(
    path: PathLike, backed: bool | str = False, storage_options: StorageOptions | None = None
) -> AnnData:
    """Read an ``.h5ad`` (optionally backed, read-only) or a ``.zarr`` store into memory.

    URLs are read through :func:`~cellucid.storage.stores.open_store` (never backed).
    """
    import anndata

    if is_url(path):
        from anndata.io import read_elem

        from .stores import open_store

        if not exists(path, storage_options):
            raise FileNotFoundError(f"Path not found: {path}")
        root, owner = open_store(path, storage_options)
        try:
            return read_elem(root)
        finally:
            if owner is not None:
                owner.close()
    p = local_path(path)
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
    ``obsp`` values may be callables that read the matrix when called (see
    :func:`load_anndata_lazy`).
    """

    obs: pd.DataFrame
    var: pd.DataFrame
    obsm: dict[str, Any]
    obsp: dict[str, Any]
    uns: dict[str, Any] = field(default_factory=dict)
    layers: dict[str, Any] = field(default_factory=dict)
    X: Any = None
    isbacked: bool = False

    @property
    def n_obs(self) -> int:
        return len(self.obs)

    @property
    def n_vars(self) -> int:
        return len(self.var)


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
    path: PathLike,
    layer: str | None = None,
    obsm_keys: Callable[[str], bool] | None = None,
    *,
    storage_options: StorageOptions | None = None,
    lazy_obsp: bool = False,
) -> tuple[LazyAnnData, BackedMatrix]:
    """Cell and gene annotations in memory, the expression matrix left where it is.

    Returns a :class:`LazyAnnData` (no ``X``, no cell names) and the expression matrix (``X``
    or ``layers/<layer>``) as a :class:`~cellucid.storage.backed.BackedMatrix`. Of ``obsm``
    only the keys ``obsm_keys(key)`` accepts are read (default: all); others may be large and
    stay on disk. With ``lazy_obsp`` the ``obsp`` entries are :class:`LazyElement` objects that
    read the matrix when called. Works for ``.h5ad`` files and ``.zarr`` stores (v2, v3), local
    or at a URL.
    """
    import pandas as pd
    from anndata.io import read_elem

    from .backed import BackedMatrix

    if not exists(path, storage_options):
        raise FileNotFoundError(f"Path not found: {path}")
    element = "X" if layer is None else f"layers/{layer}"
    matrix = BackedMatrix.open(path, element, storage_options=storage_options)
    try:
        root = matrix.root
        obs = read_obs_columns(root["obs"]) if "obs" in root else None
        if "var" in root:
            var = read_elem(root["var"])
        else:
            var = pd.DataFrame(index=pd.RangeIndex(matrix.n_genes).astype(str))
        obsp: dict[str, Any] = {}
        if "obsp" in root:
            for key in root["obsp"]:
                node = root["obsp"][key]
                obsp[str(key)] = LazyElement(node) if lazy_obsp else read_elem(node)
        obsm = {}
        if "obsm" in root:
            for key in root["obsm"]:
                if obsm_keys is None or obsm_keys(str(key)):
                    obsm[str(key)] = read_elem(root["obsm"][key])
        if obs is None:
            obs = pd.DataFrame(index=pd.RangeIndex(matrix.n_cells))
        if len(obs) != matrix.n_cells:
            raise ValueError(f"{path}: obs has {len(obs)} rows but {element} has {matrix.n_cells}")
        if len(var) != matrix.n_genes:
            raise ValueError(
                f"{path}: var has {len(var)} rows but {element} has {matrix.n_genes} columns"
            )
    except BaseException:
        matrix.close()
        raise
    return LazyAnnData(obs=obs, var=var, obsm=obsm, obsp=obsp), matrix


class LazyElement:
    """A stored element (an ``obsp`` matrix) read when called; its ``shape`` and stored
    value count are known without reading it."""

    def __init__(self, node: Any) -> None:
        self.node = node
        attrs = node.attrs
        shape = attrs.get("shape", getattr(node, "shape", None))
        self.shape = tuple(int(s) for s in shape) if shape is not None else None
        self.is_sparse = "data" in node if hasattr(node, "keys") else False
        self.nnz = int(node["data"].shape[0]) if self.is_sparse else None

    def __call__(self) -> Any:
        from anndata.io import read_elem

        return read_elem(self.node)
