"""An AnnData file served while it is still being read (SPEC §3.1: health within a second).

Reading the annotations of a large ``.h5ad``/``.zarr`` and encoding them (points, codes,
centroids, the graph's edges) takes seconds at ten million cells. :class:`DeferredAnnData`
is the server's data source from the first instant: it knows the dataset's identity entry
and the shape of its matrix from metadata alone, so ``/_cellucid/health``,
``/_cellucid/info`` and ``/_cellucid/datasets`` answer at once, while the
:class:`~cellucid.sources.anndata.AnnDataAdapter` is built on a background thread. Data
requests wait for it; once it is ready every request goes straight to it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..export.naming import safe_name
from ..storage.anndata_io import peek_shape
from ..storage.stores import (
    StorageOptions,
    display_name,
    exists,
    is_url,
    is_zarr_store,
    local_path,
    url_name,
)
from .base import DatasetEntry, FileBody

if TYPE_CHECKING:
    from .anndata import AnnDataAdapter

#: seconds health waits for the matrix's shape (read from metadata once the server listens)
PEEK_TIMEOUT = 10.0


def default_names(
    path: str | Path | None, dataset_name: str | None, dataset_id: str | None
) -> tuple[str, str, str | None]:
    """``(id, name, file name)`` of an AnnData's identity (SPEC §6.5 "Defaults")."""
    file_name = None if path is None else url_name(str(path)) if is_url(path) else Path(path).name
    if dataset_name is None:
        dataset_name = display_name(path) if path is not None else "AnnData Dataset"
    ident = dataset_id if dataset_id is not None else safe_name(dataset_name)
    return ident, dataset_name, file_name


class DeferredAnnData:
    """Serve an ``.h5ad``/``.zarr`` (a path or a URL) while its adapter is being built.

    Parameters are those of :meth:`AnnDataAdapter.from_file
    <cellucid.sources.anndata.AnnDataAdapter.from_file>`. ``FileNotFoundError`` and format
    errors are raised here, at once; errors found while building are raised by :meth:`wait`
    (and make data requests fail).
    """

    kind: Literal["anndata"] = "anndata"

    def __init__(
        self,
        path: str | Path,
        backed: bool | str = "r",
        *,
        layer: str | None = None,
        storage_options: StorageOptions | None = None,
        **kwargs: Any,
    ) -> None:
        self.path: str | Path = str(path) if is_url(path) else local_path(path).resolve()
        self.storage_options = dict(storage_options or {})
        if not exists(self.path, self.storage_options):
            raise FileNotFoundError(f"Path not found: {self.path}")
        self.format: Literal["h5ad", "zarr"] = (
            "zarr" if is_zarr_store(self.path, self.storage_options) else "h5ad"
        )
        self.is_backed = bool(backed) or self.format == "zarr" or is_url(self.path)
        ident, name, _ = default_names(
            self.path, kwargs.get("dataset_name"), kwargs.get("dataset_id")
        )
        self._entry = DatasetEntry(id=ident, name=name, path="/")
        self._shape: tuple[int, int] | None = None
        self._peeked = threading.Event()
        self._adapter: AnnDataAdapter | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._thread = threading.Thread(
            target=self._build,
            args=(backed, layer, kwargs),
            name="cellucid-anndata-build",
            daemon=True,
        )
        self._started = False

    def start(self) -> None:
        """Start reading the file (idempotent). A server calls it once it listens, so that
        the reading does not compete with its own start-up for the interpreter."""
        with self._lock:
            if not self._started:
                self._started = True
                self._thread.start()

    def _build(self, backed: bool | str, layer: str | None, kwargs: dict[str, Any]) -> None:
        try:  # the matrix's shape first: health needs it (and importing h5py takes a while)
            self._shape = peek_shape(self.path, layer, self.storage_options)
        except Exception:  # building reports what is wrong with the file
            pass
        finally:
            self._peeked.set()
        try:
            from .anndata import AnnDataAdapter

            adapter = AnnDataAdapter.from_file(
                self.path,
                backed=backed,
                layer=layer,
                storage_options=self.storage_options,
                **kwargs,
            )
        except BaseException as exc:  # reported by wait() and every data request
            self._error = exc
        else:
            with self._lock:
                if self._closed:
                    adapter.close()
                else:
                    self._adapter = adapter
        finally:
            self._ready.set()

    # ----- state
    @property
    def ready(self) -> bool:
        """Whether building has finished (successfully or not)."""
        return self._ready.is_set()

    @property
    def error(self) -> BaseException | None:
        return self._error

    def wait(self, timeout: float | None = None) -> AnnDataAdapter:
        """The adapter once built; re-raises what made building fail."""
        self.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"{self.path} is still being read")
        if self._error is not None:
            raise self._error
        if self._adapter is None:
            raise RuntimeError("the data source was closed")
        return self._adapter

    def __getattr__(self, name: str) -> Any:
        # what the server's extensions ask of an AnnData source (dataset, embeddings, …)
        if name.startswith("__") or name in ("_adapter", "_ready", "_error"):
            raise AttributeError(name)
        return getattr(self.wait(), name)

    # ----- DataSource
    def datasets(self) -> list[DatasetEntry]:
        return [self._entry]

    def health(self) -> dict[str, Any]:
        adapter = self._adapter
        if adapter is not None:
            return adapter.health()
        self.start()
        self._peeked.wait(PEEK_TIMEOUT)
        if self._shape is None:  # no matrix to peek at: wait for the real answer
            return self.wait().health()
        return {
            "type": "anndata",
            "format": self.format,
            "is_backed": self.is_backed,
            "n_cells": self._shape[0],
            "n_genes": self._shape[1],
        }

    def status(self) -> dict[str, Any]:
        """The ``column_cache`` entry of ``/_cellucid/info`` (PROTOCOL.md)."""
        adapter = self._adapter
        if adapter is not None:
            return adapter.status()
        self.start()
        if self._error is not None:
            return {"state": "error", "progress": None, "error": str(self._error)}
        return {"state": "pending", "progress": None, "error": None}

    def open(self, dataset: DatasetEntry, relpath: str) -> FileBody | None:
        return self.wait().open(dataset, relpath)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            adapter, self._adapter = self._adapter, None
        if adapter is not None:
            adapter.close()
