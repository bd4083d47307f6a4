"""Reading AnnData from a path or URL: whole (into memory) or lazily (annotations only).

:func:`load_anndata_lazy` is what the server and large exports use: ``obs`` (without cell
names), ``var``, the ``obsm`` entries asked for and ``obsp`` in memory, the expression matrix
left where it is as a :class:`~cellucid.storage.backed.BackedMatrix`. It reads elements with
:mod:`cellucid.storage.elements`, without importing anndata.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
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
            check_zarr(root, str(path))
            return read_elem(root)
        finally:
            if owner is not None:
                owner.close()
    p = local_path(path)
    if not p.exists():
        raise FileNotFoundError(f"Path not found: {p}")
    if is_zarr_store(p):
        check_zarr(require("zarr").open_group(str(p), mode="r"), str(p))
        return anndata.read_zarr(p)
    require("h5py")
    mode = ("r" if backed is True else backed) if backed else None
    return anndata.read_h5ad(p, backed=mode)


#: a file's expression matrix is read into memory for an export when it takes at most this
#: share of the memory available (faster); a larger one is read gene block by gene block
IN_MEMORY_SHARE = 0.25


def available_memory() -> int | None:
    """Bytes of memory available to this process now, or ``None`` when unknown."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def matrix_memory(matrix: BackedMatrix) -> int:
    """Bytes the matrix takes in memory as scipy/numpy holds it (values, indices, indptr)."""
    if matrix.format == "dense":
        return matrix.nnz * matrix.dtype.itemsize
    n_ptr = (matrix.n_cells if matrix.format == "csr" else matrix.n_genes) + 1
    return matrix.nnz * (matrix.dtype.itemsize + 4) + n_ptr * 8


def read_for_export(
    path: PathLike,
    *,
    layer: str | None = None,
    storage_options: StorageOptions | None = None,
    read: str = "auto",
) -> tuple[Any, Callable[[], None]]:
    """What ``prepare`` reads of an ``.h5ad``/``.zarr`` file, and a function that closes it.

    ``read="memory"`` loads the AnnData (fastest); ``"lazy"`` keeps the expression matrix in
    the file (``obs``, ``var``, ``obsm`` and ``obsp`` are read; genes are read a block at a
    time), so a file larger than the memory can be exported; ``"auto"`` loads it when the
    matrix takes at most :data:`IN_MEMORY_SHARE` of the available memory.
    """
    from .backed import BackedMatrix

    if read not in ("auto", "memory", "lazy"):
        raise ValueError(f"read must be 'auto', 'memory' or 'lazy'; got {read!r}")
    element = "X" if layer is None else f"layers/{layer}"
    if read == "auto":
        free = available_memory()
        try:
            with BackedMatrix.open(
                path, element, attach_cache=False, storage_options=storage_options
            ) as probe:
                need = matrix_memory(probe)
        except KeyError:
            need = 0  # no such matrix: the in-memory path reports it as prepare does
        read = "memory" if free is None or need <= IN_MEMORY_SHARE * free else "lazy"
    if read == "memory":
        return load_anndata(path, storage_options=storage_options), lambda: None
    lazy, matrix = load_anndata_lazy(path, layer=layer, storage_options=storage_options)
    if layer is None:
        lazy.X = matrix
    else:
        lazy.layers = {layer: matrix}
    return lazy, matrix.close


def check_zarr(
    root: Any,
    source: str,
    *,
    matrices: tuple[str, ...] = ("X",),
    embeddings: Callable[[str], bool] | None = None,
) -> None:
    """Refuse a zarr store that lost chunks which cannot be legitimately absent, and warn
    about those that may be (:mod:`cellucid.storage.integrity`); h5py files pass."""
    if not hasattr(root, "store_path"):
        return
    from .integrity import check_store

    check_store(root, matrices=matrices, embeddings=embeddings).raise_or_warn(source)


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
    #: the cell names, read from the store a slice at a time (:class:`FileObsNames`)
    obs_names: Any = None

    @property
    def n_obs(self) -> int:
        return len(self.obs)

    @property
    def n_vars(self) -> int:
        return len(self.var)


class FileObsNames:
    """An AnnData store's ``obs_names`` read on demand: ``len()`` and slices only.

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


def load_anndata_lazy(
    path: PathLike,
    layer: str | None = None,
    obsm_keys: Callable[[str], bool] | None = None,
    *,
    storage_options: StorageOptions | None = None,
    lazy_obsp: bool = False,
    lazy_obsm: Callable[[str], bool] | None = None,
) -> tuple[LazyAnnData, BackedMatrix]:
    """Cell and gene annotations in memory, the expression matrix left where it is.

    Returns a :class:`LazyAnnData` (no ``X``, no cell names) and the expression matrix (``X``
    or ``layers/<layer>``) as a :class:`~cellucid.storage.backed.BackedMatrix`. Of ``obsm``
    only the keys ``obsm_keys(key)`` accepts are read (default: all); others may be large and
    stay on disk; of those, the dense arrays ``lazy_obsm(key)`` accepts are left in the file
    (h5py datasets / zarr arrays, sliced when read). With ``lazy_obsp`` the ``obsp`` entries
    are :class:`LazyElement` objects that read the matrix when called. Works for ``.h5ad`` files and ``.zarr`` stores (v2, v3), local
    or at a URL.
    """
    import pandas as pd

    from .backed import BackedMatrix
    from .elements import read_columns, read_elem

    if not exists(path, storage_options):
        raise FileNotFoundError(f"Path not found: {path}")
    element = "X" if layer is None else f"layers/{layer}"
    matrix = BackedMatrix.open(path, element, storage_options=storage_options)
    try:
        root = matrix.root
        check_zarr(root, str(path), matrices=(element,), embeddings=obsm_keys)
        obs = read_columns(root["obs"]) if "obs" in root else None
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
                    node = root["obsm"][key]
                    stored = lazy_obsm is not None and lazy_obsm(str(key)) and _is_array(node)
                    obsm[str(key)] = node if stored else read_elem(node)
        if obs is None:
            obs = pd.DataFrame(index=pd.RangeIndex(matrix.n_cells))
        if len(obs) != matrix.n_cells:
            raise ValueError(f"{path}: obs has {len(obs)} rows but {element} has {matrix.n_cells}")
        if len(var) != matrix.n_genes:
            raise ValueError(
                f"{path}: var has {len(var)} rows but {element} has {matrix.n_genes} columns"
            )
        names: Any = None
        if "obs" in root:
            index_key = root["obs"].attrs.get("_index")
            if index_key is not None and index_key in root["obs"]:
                names = FileObsNames(root["obs"][index_key])
        if names is None or len(names) != len(obs):
            names = pd.RangeIndex(len(obs)).astype(str)
        uns = _scanpy_colors(root, read_elem)
    except BaseException:
        matrix.close()
        raise
    return LazyAnnData(obs=obs, var=var, obsm=obsm, obsp=obsp, uns=uns, obs_names=names), matrix


def _scanpy_colors(root: Any, read_elem: Any) -> dict[str, Any]:
    """The ``uns["<key>_colors"]`` entries of a store (small string arrays: scanpy's category
    colours, which the viewer uses); the rest of ``uns`` is not read. Unreadable ones are left
    out (the viewer then uses its default colours)."""
    out: dict[str, Any] = {}
    if "uns" not in root or not hasattr(root["uns"], "keys"):
        return out
    for key in root["uns"]:
        if str(key).endswith("_colors"):
            try:
                value = read_elem(root["uns"][key])
            except Exception:
                continue
            out[str(key)] = value
    return out


def _is_array(node: Any) -> bool:
    """A stored dense numeric array (not a group: data frames and sparse matrices are)."""
    import numpy as np

    dtype = getattr(node, "dtype", None)
    return dtype is not None and not hasattr(node, "keys") and np.dtype(dtype).kind in "biuf"


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
        from .elements import read_elem

        return read_elem(self.node)

    def values(self, first: int = 1 << 16, most: int = 1 << 22) -> Iterator[Any]:
        """The stored values of a sparse element in chunks growing from ``first`` to
        ``most`` values (a reader that stops early has read little)."""
        import numpy as np

        data = self.node["data"]
        stored = getattr(data, "chunks", None)  # read whole storage chunks, each once
        if stored and stored[0]:
            first = max(first, int(stored[0]))
            most = max(most - most % int(stored[0]), first)
        a, n, chunk = 0, int(data.shape[0]), first
        while a < n:
            yield np.asarray(data[a : a + chunk])
            a += chunk
            chunk = min(2 * chunk, most)


def element_shape(root: Any, element: str) -> tuple[int, int] | None:
    """``(rows, columns)`` of a matrix element of an open h5py/zarr group (sparse groups by
    their ``shape`` attribute), or ``None`` when it is absent. Reads metadata only."""
    if element not in root:
        return None
    node = root[element]
    shape = node.attrs.get("shape", node.attrs.get("h5sparse_shape"))
    if shape is None:
        shape = getattr(node, "shape", None)
    if shape is None or len(shape) != 2:
        return None
    return int(shape[0]), int(shape[1])


def _json(path: Any) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _local_zarr_shape(store: Any, element: str) -> tuple[int, int] | None:
    """The shape of ``element`` from a local zarr store's metadata files, without zarr."""
    node = store / element
    for meta in (node / ".zattrs", node / ".zarray", node / "zarr.json"):
        doc = _json(meta)
        if doc is None:
            continue
        attrs = doc.get("attributes", doc) if meta.name == "zarr.json" else doc
        shape = attrs.get("shape") if isinstance(attrs, dict) else None
        if shape is None and meta.name != ".zattrs":
            shape = doc.get("shape")
        if shape is not None and len(shape) == 2:
            return int(shape[0]), int(shape[1])
    return None


def peek_shape(
    path: PathLike, layer: str | None = None, storage_options: StorageOptions | None = None
) -> tuple[int, int] | None:
    """``(n_cells, n_genes)`` of the expression matrix (``X`` or ``layers/<layer>``) of an
    ``.h5ad`` or ``.zarr``, from metadata alone (for a local zarr store without even importing
    zarr), or ``None`` when it has no such matrix. Fast: a server answers health with it
    while the dataset is still being read."""
    element = "X" if layer is None else f"layers/{layer}"
    if not is_url(path):
        p = local_path(path)
        if is_zarr_store(p):
            return _local_zarr_shape(p, element)
    from .stores import open_store

    root, owner = open_store(path, storage_options)
    try:
        return element_shape(root, element)
    finally:
        if owner is not None:
            owner.close()


def materialize(x: Any) -> Any:
    """An element of a lazily read AnnData (``anndata.experimental.read_lazy``) in memory:
    its ``obs``/``var`` (xarray-backed ``Dataset2D``) as a pandas DataFrame, a Dask array
    computed on the active scheduler; anything else unchanged. ``X`` is not passed here:
    genes are read block by block (:class:`~cellucid.storage.dask.DaskGenes`)."""
    from .dask import compute

    if type(x).__name__ == "Dataset2D" and hasattr(x, "to_memory"):
        return x.to_memory()
    return compute(x)
