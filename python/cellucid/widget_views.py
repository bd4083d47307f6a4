"""The viewer's embedding switch and split view, driven from Python.

:class:`ViewCommands` is a mixin of :class:`~cellucid.widget.CellucidWidget` (so of every
``show``/``show_anndata`` viewer): :meth:`~ViewCommands.set_embedding` (and the
:attr:`~ViewCommands.embedding` property) shows another ``obsm`` embedding of an AnnData
viewer; :meth:`~ViewCommands.split` shows two to four panels of the dataset. Both are commands
of the bridge (``setEmbedding``, ``split``; PROTOCOL.md), carried over the widget's comm and
the command channel of plain browser tabs alike, and checked here first so that a bad name
fails in Python with the list of good ones.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .sources.embeddings import ObsmEmbeddings

__all__ = ["MAX_PANELS", "PanelSpec", "ViewCommands"]

#: panels of a split view at most
MAX_PANELS = 4

PanelSpec = str | Mapping[str, Any]
"""A panel: a field name (obs key or gene id), or ``{"field", "dimension", "embedding"}``."""

#: events of the viewer this mixin keeps (the latest of each)
VIEW_EVENTS = frozenset({"embedding", "panels"})


class ViewCommands:
    """Mixin: embedding switch and split view. Uses the widget's ``_send_command``,
    ``_user_fields``, ``fields`` and ``_server``."""

    _view_lock = threading.Lock()
    _embedding_event: dict[str, Any] | None = None
    _panels_event: dict[str, Any] | None = None

    # ------------------------------------------------------------------ embeddings
    def _obsm_embeddings(self) -> ObsmEmbeddings:
        from .sources.embeddings import ObsmEmbeddings

        server = self._server  # type: ignore[attr-defined]
        found = None if server is None else getattr(server.source, "embeddings", None)
        if not isinstance(found, ObsmEmbeddings):
            raise ValueError(
                "this viewer shows an export folder, which holds only the embeddings it was "
                "exported with (viewer.dimension switches between them); to choose among obsm "
                "embeddings, show the AnnData itself (cellucid.show_anndata, cellucid serve "
                "file.h5ad) or export it with prepare(..., embedding=...)"
            )
        return found

    @property
    def embeddings(self) -> dict[str, list[int]]:
        """Every obsm embedding this viewer can show, with its dimensions (AnnData viewers).

        Examples
        --------
        >>> viewer.embeddings                       # doctest: +SKIP
        {'X_umap': [1, 2], 'X_tsne': [1, 2], 'spatial': [1, 2], 'X_pca': [1, 2, 3]}
        """
        listing = self._obsm_embeddings().listing()
        return {e["key"]: list(e["dims"]) for e in listing["embeddings"]}

    def _check_embedding(self, key: str | None, dimension: int | None) -> None:
        if dimension is not None and dimension not in (1, 2, 3):
            raise ValueError(f"dimension must be 1, 2 or 3, not {dimension!r}")
        if key is None:
            dims = self.fields.dimensions  # type: ignore[attr-defined]
            if dimension is not None and dimension not in dims:
                raise ValueError(
                    f"the dataset's own embedding has no {dimension}D (it has "
                    f"{', '.join(f'{d}D' for d in dims)})"
                )
            return
        if not isinstance(key, str) or not key:
            raise ValueError(f"an embedding is an obsm key (a non-empty string), not {key!r}")
        usable = self.embeddings
        if key not in usable:
            raise ValueError(
                f"no usable obsm embedding {key!r}; this AnnData has: "
                f"{', '.join(usable) or 'none'} (an embedding needs one row per cell and 1 or "
                "more columns)"
            )
        if dimension is not None and dimension not in usable[key]:
            raise ValueError(
                f"{key!r} cannot be shown in {dimension}D; it has "
                f"{', '.join(f'{d}D' for d in usable[key])}"
            )

    def set_embedding(self, key: str | None, dimension: int | None = None) -> None:
        """Show another obsm embedding in the viewer (AnnData viewers).

        Fields, genes, filters, the selection and highlight groups stay; the camera fits the
        new embedding. Positions travel as binary float32 (``GET /_cellucid/embedding``).

        Parameters
        ----------
        key
            An obsm key listed by :attr:`embeddings` (``"X_tsne"``, ``"spatial"``, ...), or
            ``None`` for the embedding the viewer opened with.
        dimension
            1, 2 or 3; by default the current dimension when the embedding has it, else its
            largest.

        Raises
        ------
        ValueError
            For an export-folder viewer, an unknown key (the message lists the usable ones) or
            a dimension the embedding cannot fill.

        Examples
        --------
        >>> viewer.set_embedding("spatial")        # doctest: +SKIP
        >>> viewer.set_embedding("X_pca", 3)       # doctest: +SKIP
        """
        self._check_embedding(key, dimension)
        command: dict[str, Any] = {"type": "setEmbedding", "key": key}
        if dimension is not None:
            command["dimension"] = int(dimension)
        self._send_command(command)  # type: ignore[attr-defined]

    @property
    def embedding(self) -> str | None:
        """The obsm key the viewer's (first) panel shows, as it last reported it.

        ``None`` until the viewer switched (it shows the embedding it opened with). Setting it
        is :meth:`set_embedding` with the current dimension.
        """
        with self._view_lock:
            event = self._embedding_event
        return None if event is None else event.get("key")

    @embedding.setter
    def embedding(self, key: str | None) -> None:
        self.set_embedding(key)

    # ------------------------------------------------------------------ split view
    def _resolve_field(self, key: object) -> str:
        if isinstance(key, str) and key in self._user_fields:  # type: ignore[attr-defined]
            return key
        return self.fields.resolve(key)  # type: ignore[attr-defined,arg-type]

    def _panel(self, spec: PanelSpec, i: int) -> str | dict[str, Any]:
        if isinstance(spec, str):
            return self._resolve_field(spec)
        if not isinstance(spec, Mapping):
            raise TypeError(
                f"split: panel {i} must be a field name or a dict with field, dimension and "
                f"embedding, not {type(spec).__name__}"
            )
        unknown = set(spec) - {"field", "dimension", "dim", "embedding"}
        if unknown:
            raise ValueError(
                f"split: panel {i} does not take {', '.join(sorted(unknown))} "
                "(field, dimension, embedding)"
            )
        out: dict[str, Any] = {}
        if spec.get("field") is not None:
            out["field"] = self._resolve_field(spec["field"])
        dimension = spec.get("dimension", spec.get("dim"))
        if "embedding" in spec:
            self._check_embedding(spec["embedding"], dimension)
            out["embedding"] = spec["embedding"]
        elif dimension is not None:
            self._check_embedding(None, dimension)
        if dimension is not None:
            out["dimension"] = int(dimension)
        return out

    def split(
        self, panels: Sequence[PanelSpec] | None, *, link_cameras: bool | None = None
    ) -> None:
        """Show two to four panels of the dataset side by side, or one (``None``).

        Each panel has its own colouring, dimension and embedding; the selection, highlight
        groups and filters are shared (a lasso in one panel selects in all). The first entry
        is the viewer's main panel (its colouring becomes :attr:`color_by`).

        Parameters
        ----------
        panels
            A list of 1-4 entries, each a field name (obs key or gene id) or a dict
            ``{"field": ..., "dimension": 1|2|3, "embedding": obsm key}`` (any key may be
            left out: the main panel's is used); ``None`` goes back to a single view.
        link_cameras
            Move the panels' cameras together (the viewer's default: linked).

        Raises
        ------
        ValueError, TypeError
            For an unknown field or embedding, or a wrong number of panels.

        Examples
        --------
        >>> viewer.split(["cell_type", "CD3E"])                                   # doctest: +SKIP
        >>> viewer.split(["leiden", {"field": "leiden", "embedding": "spatial"}]) # doctest: +SKIP
        >>> viewer.split(None)                                                    # doctest: +SKIP
        """
        command: dict[str, Any] = {"type": "split"}
        if panels is None:
            command["panels"] = None
        else:
            if isinstance(panels, (str, Mapping)) or not isinstance(panels, Sequence):
                raise TypeError("split takes a list of panels (field names or dicts) or None")
            if not 1 <= len(panels) <= MAX_PANELS:
                raise ValueError(f"split takes 1 to {MAX_PANELS} panels, not {len(panels)}")
            command["panels"] = [self._panel(p, i) for i, p in enumerate(panels)]
        if link_cameras is not None:
            command["linked"] = bool(link_cameras)
        self._send_command(command)  # type: ignore[attr-defined]

    @property
    def panels(self) -> list[dict[str, Any]]:
        """The viewer's panels as it last reported them: ``[{"field", "dimension",
        "embedding"}]`` (one entry without a split view; empty before the first report)."""
        with self._view_lock:
            event = self._panels_event
        return [] if event is None else copy.deepcopy(list(event.get("panels", [])))

    def _record_view_event(self, event_type: str, payload: Mapping[str, Any]) -> None:
        """Keep the latest ``embedding`` / ``panels`` event (called under the channel's lock)."""
        with self._view_lock:
            if event_type == "embedding":
                self._embedding_event = dict(payload)
            else:
                self._panels_event = dict(payload)
