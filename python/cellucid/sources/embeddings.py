"""Every usable embedding of an AnnData, for switching in the viewer without an export.

An export holds the embeddings it was made with (``points_{d}d.bin``). A server on an
AnnData can offer all of its ``obsm`` embeddings (UMAP, t-SNE, spatial, PCA's first
columns, force-directed layouts): :class:`ObsmEmbeddings` lists them from their shapes (no
data read) and produces one on request, normalised exactly as ``points_{d}d.bin`` is
(SPEC 2.5), as float32 bytes. Routes: ``/_cellucid/embeddings`` (PROTOCOL.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..storage.lru import ColumnLRU

#: embeddings kept in memory (bytes): a 1M-cell 3D one is 12 MB
CACHE_BYTES = 256 << 20


class EmbeddingError(LookupError):
    """An embedding that does not exist or does not fit (the message says which keys do)."""


class ObsmEmbeddings:
    """The ``obsm`` embeddings of one AnnData source.

    Parameters
    ----------
    n_cells
        Rows of the AnnData.
    shapes
        Called once: ``{key: shape}`` of every obsm entry (no data read).
    read
        ``read(key)`` returns the array of ``obsm[key]``.
    current
        ``{dim: "KEY" or "KEY:k"}``: what the dataset's ``points_{d}d.bin`` hold.
    normalize
        Normalise as the exported points are (``False``: raw float32 coordinates).
    """

    def __init__(
        self,
        n_cells: int,
        shapes: Callable[[], Mapping[str, tuple[int, ...]]],
        read: Callable[[str], Any],
        current: Mapping[int, str],
        *,
        normalize: bool = True,
    ) -> None:
        self.n_cells = int(n_cells)
        self._shapes_of = shapes
        self._shapes: dict[str, tuple[int, ...]] | None = None
        self._read = read
        self.current = {int(d): str(k) for d, k in current.items()}
        self.normalize = normalize
        self._lock = threading.Lock()
        self._cache = ColumnLRU(64, max_bytes=CACHE_BYTES)

    @classmethod
    def from_anndata(
        cls, adata: Any, current: Mapping[int, str], *, normalize: bool = True
    ) -> ObsmEmbeddings:
        obsm = adata.obsm
        return cls(
            adata.n_obs,
            lambda: {k: tuple(np.shape(obsm[k])) for k in obsm},
            lambda key: obsm[key],
            current,
            normalize=normalize,
        )

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        n_cells: int,
        current: Mapping[int, str],
        *,
        normalize: bool = True,
        storage_options: Mapping[str, Any] | None = None,
    ) -> ObsmEmbeddings:
        """Keys and shapes from an ``.h5ad``/``.zarr`` store's ``obsm`` group (a path or a
        URL); an embedding is read from the file when first asked for."""
        from ..storage.backed import BackedMatrix
        from ..storage.elements import read_elem

        def open_root() -> tuple[Any, Any]:
            matrix = BackedMatrix.open(path, attach_cache=False, storage_options=storage_options)
            return matrix, matrix.root

        def shapes() -> dict[str, tuple[int, ...]]:
            matrix, root = open_root()
            try:
                if "obsm" not in root:
                    return {}
                out = {}
                for key in root["obsm"]:
                    node = root["obsm"][key]
                    shape = getattr(node, "shape", None)  # arrays; dataframes are groups
                    if shape is not None:
                        out[str(key)] = tuple(int(x) for x in shape)
                return out
            finally:
                matrix.close()

        def read(key: str) -> Any:
            matrix, root = open_root()
            try:
                return read_elem(root["obsm"][key])
            finally:
                matrix.close()

        return cls(n_cells, shapes, read, current, normalize=normalize)

    # ----- listing
    def shapes(self) -> dict[str, tuple[int, ...]]:
        with self._lock:
            if self._shapes is None:
                self._shapes = dict(self._shapes_of())
            return self._shapes

    def listing(self) -> dict[str, Any]:
        """``{"embeddings": [{"key", "columns", "dims"}], "current": {"2": "X_umap"}}``:
        every obsm entry with ``n_cells`` rows and 1+ columns, except velocity-like
        displacements (``*_umap``); ``dims`` are the dimensions it can be shown in (its
        first 1, 2 or 3 columns)."""
        from ..export.inputs import is_vector_field_key

        items = []
        for key, shape in sorted(self.shapes().items()):
            if (
                is_vector_field_key(key)
                or len(shape) != 2
                or shape[0] != self.n_cells
                or shape[1] < 1
            ):
                continue
            items.append(
                {"key": key, "columns": shape[1], "dims": list(range(1, min(3, shape[1]) + 1))}
            )
        return {
            "embeddings": items,
            "current": {str(d): k for d, k in sorted(self.current.items())},
        }

    # ----- data
    def points(self, key: str, dim: int) -> bytes:
        """The first ``dim`` columns of ``obsm[key]``, normalised, as float32 LE bytes."""
        from ..export.encode import normalize_points
        from ..export.inputs import is_vector_field_key

        shape = None if is_vector_field_key(key) else self.shapes().get(key)
        usable = ", ".join(i["key"] for i in self.listing()["embeddings"]) or "none"
        if shape is None:
            raise EmbeddingError(f"no obsm embedding {key!r} (usable: {usable})")
        if dim not in (1, 2, 3) or len(shape) != 2 or shape[0] != self.n_cells or shape[1] < dim:
            raise EmbeddingError(
                f"obsm[{key!r}] has shape {shape}: it cannot be shown in {dim}D (usable: {usable})"
            )

        def load(_key: Any) -> bytes:
            arr = self._read(key)
            arr = arr.toarray() if hasattr(arr, "toarray") else np.asarray(arr)
            try:
                pts, _scale = normalize_points(
                    arr[:, :dim], dim, f"obsm[{key!r}]", normalize=self.normalize
                )
            except ValueError as exc:
                raise EmbeddingError(str(exc)) from None
            return pts.astype("<f4", copy=False).tobytes()

        return self._cache.get_or_load((key, dim), load)
