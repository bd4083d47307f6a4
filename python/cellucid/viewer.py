"""The notebook entry points :func:`show` and :func:`show_anndata` (SPEC §6.6).

The widget itself is :class:`cellucid.widget.CellucidWidget`; :class:`CellucidViewer`
and :class:`AnnDataViewer` are the upstream names for the same object.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .notebook_env import client_base_url, notebook_context
from .widget import CellucidWidget, Transport

if TYPE_CHECKING:
    from anndata import AnnData
    from typing_extensions import Unpack

    from .sources.options import AnnDataOptions

__all__ = [
    "AnnDataViewer",
    "CellucidViewer",
    "client_base_url",
    "notebook_context",
    "show",
    "show_anndata",
]


def show(
    data_dir: str | Path,
    height: int = 600,
    *,
    transport: Transport = "auto",
    port: int | None = None,
    session: str | Path | None = None,
) -> CellucidViewer:
    """Open an export folder (or a folder of exports) in a notebook viewer and display it.

    Outside a notebook the viewer URL is printed instead. Returns the viewer. ``session``: a
    ``.cellucid-session`` file the viewer opens with its dataset (instead of a default session
    placed with the export).

    Examples
    --------
    >>> viewer = show("exports/pbmc68k")                 # doctest: +SKIP
    >>> viewer.wait_for_ready()["n_cells"]               # doctest: +SKIP
    700
    """
    viewer = CellucidViewer(
        data_dir, port=port, height=height, transport=transport, session=session
    )
    viewer.display()
    return viewer


def show_anndata(
    data: AnnData | str | Path,
    height: int = 600,
    *,
    transport: Transport = "auto",
    port: int | None = None,
    session: str | Path | None = None,
    **adapter_kwargs: Unpack[AnnDataOptions],
) -> AnnDataViewer:
    """Open an AnnData (in memory, ``.h5ad`` or ``.zarr``) in a notebook viewer and display it.

    ``adapter_kwargs`` are the :class:`~cellucid.sources.options.AnnDataOptions` (``backed``,
    ``layer``, ``embedding``, ``latent_key``, ``obs_keys``, ``dataset_name``, ...). ``session``: a
    ``.cellucid-session`` file the viewer opens with the data, merged with the scanpy colours
    of ``adata.uns`` (the file wins for the fields it colours). Returns the viewer.

    Examples
    --------
    >>> import scanpy as sc                                        # doctest: +SKIP
    >>> viewer = show_anndata(sc.datasets.pbmc68k_reduced())       # doctest: +SKIP
    """
    viewer = AnnDataViewer(
        data, port=port, height=height, transport=transport, session=session, **adapter_kwargs
    )
    viewer.display()
    return viewer


class CellucidViewer(CellucidWidget):
    """A notebook viewer of an export folder (upstream's name; see :class:`CellucidWidget`).

    ``auto_open`` is accepted for compatibility; the server always starts at once.
    """

    def __init__(
        self,
        data_dir: str | Path,
        port: int | None = None,
        height: int = 600,
        auto_open: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(Path(data_dir), port=port, height=height, **kwargs)
        self._data_dir = Path(data_dir)

    @property
    def data_dir(self) -> Path:
        """The export folder (or folder of exports) this viewer shows (upstream's name)."""
        return self._data_dir


class AnnDataViewer(CellucidWidget):
    """A notebook viewer of an AnnData (upstream's name; see :class:`CellucidWidget`)."""

    def __init__(
        self,
        data: AnnData | str | Path,
        port: int | None = None,
        height: int = 600,
        auto_open: bool = True,
        *,
        transport: Transport = "auto",
        session: str | Path | None = None,
        **adapter_kwargs: Unpack[AnnDataOptions],
    ) -> None:
        super().__init__(
            data,
            port=port,
            height=height,
            transport=transport,
            anndata=True,
            session=session,
            **adapter_kwargs,
        )
        self._data = data

    @property
    def data(self) -> AnnData | str | Path:
        """The AnnData (or the path of the ``.h5ad``/``.zarr``) this viewer shows (upstream's
        name). An in-memory AnnData is the same object, not a copy."""
        return self._data
