"""``CellucidWidget``: the cellucid viewer in a notebook (an anywidget, SPEC §6.6).

The widget starts a data server for its data in a background thread, shows the viewer
(served by that server) in an iframe, and connects the two sides:

* **Python → viewer**: commands (``highlight_cells``, ``set_color_by``, setting the
  ``selection``, ``color_by`` or ``dimension`` traits, ...) are validated here, queued
  until the viewer is ready, then sent over the widget's comm; the front end
  (``js/widget``) posts them into the iframe. Cell lists travel as binary buffers.
* **viewer → Python**: events (``ready``, ``selection``, ``hover``, ``click``, ``view``,
  custom ones) reach one :class:`~cellucid.server.channel.ViewerChannel` by two paths: the
  comm (relayed by the front end) and ``POST /_cellucid/events`` from the viewer page
  itself. The comm is only read between cells; the HTTP server answers at once, so
  :meth:`~CellucidWidget.wait_for_event` works inside a running cell. Each event carries
  an id and is recorded once, whichever path is first. With ``transport="comm"`` (no
  reachable port) everything, the viewer's files included, goes over the comm.

Traits show the latest events as soon as they are recorded; trait observers and hooks run
in event order on the channel's dispatcher thread, never on the server's event loop.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import re
import secrets
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anywidget
import numpy as np
import numpy.typing as npt
import traitlets

from .annotation import check_name, fill_group_cells
from .comm_transport import CommFiles, viewer_page
from .notebook_env import client_base_url, notebook_context
from .serialization import (
    CellIndices,
    PartCollector,
    as_cell_indices,
    cells_from_json,
    cells_to_json,
    split_parts,
)
from .server.cellsets import InvalidEventError
from .server.channel import HookCallback, ViewerChannel, ViewerState
from .server.runner import DEFAULT_PORT, AnnDataServer, CellucidServer, _BaseServer
from .sources.fields import DatasetFields, read_fields
from .widget_pages import PageCommands
from .widget_views import VIEW_EVENTS, ViewCommands

if TYPE_CHECKING:
    import pandas as pd
    from anndata import AnnData
    from typing_extensions import Unpack

    from .session import CellucidSessionBundle
    from .sources.options import AnnDataOptions

__all__ = ["CellucidWidget", "Transport"]

log = logging.getLogger("cellucid.widget")

Transport = Literal["auto", "http", "comm"]
_Hook = TypeVar("_Hook", bound=HookCallback)

_ESM = Path(__file__).parent / "static" / "widget.js"
_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")
#: after the last view of a widget closed (output cleared, cell re-run), free its server
#: and threads unless a view comes back within this many seconds
RELEASE_AFTER_S = 5.0
#: commands kept while the viewer is not ready; older ones are dropped beyond this
MAX_QUEUED_COMMANDS = 10_000
_ANNDATA_NOTE = (
    "AnnData mode: the viewer's files are computed from the AnnData on demand, which is "
    "slower than an export made with cellucid.prepare()."
)


class CellucidWidget(PageCommands, ViewCommands, anywidget.AnyWidget):
    """The cellucid viewer as a notebook widget.

    Parameters
    ----------
    data
        An AnnData, a path to an ``.h5ad`` file or ``.zarr`` store, an export folder made
        by :func:`cellucid.prepare`, or a folder of such exports.
    height
        Height of the viewer in pixels.
    port
        Port of the data server; ``None`` tries 8765 and the next 100, ``0`` lets the
        system choose. :attr:`port` is always the bound port.
    transport
        How the browser reaches the data: ``"http"`` (the iframe loads the viewer from the
        server, through jupyter-server-proxy when it answers), ``"comm"`` (everything over
        the Jupyter comm, for front ends that cannot reach any port) or ``"auto"`` (http
        when the server answers, else comm). :attr:`transport_in_use` says what was used.
    anndata
        Force AnnData mode (``True``) or export mode (``False``); by default detected.
    host
        Interface the server binds (loopback by default).
    session
        A ``.cellucid-session`` file the viewer opens with the data (colouring, filters,
        groups, ...); for an AnnData it is merged with the scanpy colours of ``adata.uns``.
    **adapter_kwargs
        For AnnData: the :class:`~cellucid.sources.options.AnnDataOptions` (``backed``,
        ``layer``, ``embedding``, ``latent_key``, ``obs_keys``, ``dataset_name``, ...); a
        misspelt one raises ``TypeError`` naming the closest.

    Examples
    --------
    >>> import scanpy as sc                                           # doctest: +SKIP
    >>> viewer = CellucidWidget(sc.datasets.pbmc68k_reduced())        # doctest: +SKIP
    >>> viewer                                                        # doctest: +SKIP
    >>> viewer.wait_for_ready()                                       # doctest: +SKIP
    {'n_cells': 700, 'dimensions': 2}
    >>> viewer.color_by = "bulk_labels"                               # doctest: +SKIP
    >>> @viewer.on_selection                                          # doctest: +SKIP
    ... def chosen(event):
    ...     print(len(event["cells"]), "cells from", event["source"])
    >>> viewer.selection                                              # doctest: +SKIP
    array([ 3, 17, 42], dtype=uint32)
    >>> viewer.highlight_cells(viewer.selection, color="#ff8800")     # doctest: +SKIP
    """

    _esm = _ESM

    # ---- fixed at creation (synced so the front end can build the iframe) ----------
    viewer_id = traitlets.Unicode(read_only=True).tag(sync=True)
    viewer_token = traitlets.Unicode(read_only=True).tag(sync=True)
    viewer_url = traitlets.Unicode(read_only=True).tag(sync=True)
    url_fixed = traitlets.Bool(False, read_only=True).tag(sync=True)
    port = traitlets.Int(0, read_only=True).tag(sync=True)
    transport = traitlets.Enum(("auto", "http", "comm"), "auto", read_only=True).tag(sync=True)
    # ---- layout -------------------------------------------------------------------
    height = traitlets.Int(600).tag(sync=True)
    note = traitlets.Unicode("").tag(sync=True)
    # ---- both directions ------------------------------------------------------------
    selection = CellIndices().tag(sync=True, to_json=cells_to_json, from_json=cells_from_json)
    """Indices of the selected cells (read-only ``uint32``). Set it to select cells."""
    # None until the viewer reports a view; Python can only set real values (no allow_none)
    color_by = traitlets.Unicode().tag(sync=True)
    """The obs key or gene colouring the cells. Set it to recolour."""
    dimension = traitlets.Int().tag(sync=True)
    """The embedding dimension shown (1, 2 or 3). Set it to switch."""
    # ---- viewer → Python only --------------------------------------------------------
    hover = traitlets.Any(None, read_only=True).tag(sync=True)
    """The latest hover event ``{"cell", "position"}`` (``None`` before any)."""
    click = traitlets.Any(None, read_only=True).tag(sync=True)
    """The latest click event ``{"cell", "button", "shift", "ctrl"}``."""
    ready = traitlets.Bool(False, read_only=True).tag(sync=True)
    """Whether a viewer reported ``ready``."""
    groups = traitlets.Dict(read_only=True)
    """The viewer's highlight groups: ``{name: uint32 cells}`` in its list order (observable;
    updated whenever a group is made, renamed, recoloured, shown, hidden or deleted)."""

    def __init__(
        self,
        data: AnnData | str | Path,
        height: int = 600,
        *,
        port: int | None = None,
        transport: Transport = "auto",
        anndata: bool | None = None,
        host: str = "127.0.0.1",
        session: str | Path | None = None,
        **adapter_kwargs: Unpack[AnnDataOptions],
    ) -> None:
        self._closed = True  # until construction succeeds (Widget.__del__ calls close())
        if not _ESM.is_file():
            raise RuntimeError(
                f"the widget's front end is missing ({_ESM}); reinstall cellucid "
                "(`pip install` builds it from js/)"
            )
        if transport not in ("auto", "http", "comm"):
            raise ValueError(f"transport must be 'auto', 'http' or 'comm', not {transport!r}")
        server = _make_server(data, port, host, anndata, adapter_kwargs, session)
        self._server: _BaseServer | None = server
        self._data_label = str(data) if isinstance(data, (str, Path)) else None
        self._is_anndata = isinstance(server, AnnDataServer)
        self._command_lock = threading.RLock()
        self._commands_open = False  # a viewer reported ready: commands go out at once
        self._queued: deque[tuple[dict[str, Any], npt.NDArray[np.uint32] | None]] = deque()
        self._seq = 0
        self._views: dict[str, dict[str, Any]] = {}
        self._views_lock = threading.Lock()
        self._ever_displayed = False
        self._release_timer: threading.Timer | None = None
        self._frontend_log: deque[dict[str, Any]] = deque(maxlen=500)
        self._parts = PartCollector()
        self._pool: ThreadPoolExecutor | None = None
        self._notifying = threading.local()
        self._fields: DatasetFields | None = None
        self._user_fields: dict[str, str] = {}  # user-defined field name -> kind
        try:
            server.start_background()
            self._entry = server.source.datasets()[0]
            self._channel = ViewerChannel(name=type(self).__name__, on_record=self._on_record)
            server.registry.add(self._channel)
        except BaseException:
            server.stop()
            raise
        self._config = server.config
        self._files = CommFiles(server.config) if server.config is not None else None
        base, origin_kind = client_base_url(server.port, host)
        query = (
            f"?jupyter=true&viewerId={self._channel.viewer_id}&viewerToken={self._channel.token}"
        )
        if self._is_anndata:
            query += "&anndata=true"
        self._base_url = base
        # Unknown until the viewer reports its view (the traits refuse None from Python).
        self._trait_values.update(color_by=None, dimension=None)
        super().__init__(height=height, note=_ANNDATA_NOTE if self._is_anndata else "")
        for name, value in {
            "viewer_id": self._channel.viewer_id,
            "viewer_token": self._channel.token,
            "viewer_url": f"{base}/{query}",
            "url_fixed": origin_kind != "local",
            "port": server.port,
            "transport": transport,
        }.items():
            self.set_trait(name, value)
        self.on_msg(self._on_frontend_message)
        self._init_pages(server)  # commands to pages in browser tabs (widget_pages.py)
        self._finalizer = weakref.finalize(self, _shutdown, server, self._channel)
        self._closed = False
        _OPEN_VIEWERS.add(self)

    # ------------------------------------------------------------------ properties
    @property
    def server_url(self) -> str:
        """The data server's base URL as the browser sees it (no trailing ``/``)."""
        return self._base_url

    @property
    def viewer_origin(self) -> str:
        """The origin of :attr:`viewer_url`."""
        from urllib.parse import urlsplit

        parts = urlsplit(self.viewer_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def fields(self) -> DatasetFields:
        """The served dataset's cells, dimensions, obs keys and gene ids."""
        if self._fields is None:
            if self._server is None:
                raise RuntimeError("this viewer is stopped")
            self._fields = read_fields(self._server.source, self._entry)
        return self._fields

    @property
    def n_cells(self) -> int:
        """Number of cells of the shown dataset."""
        return self.fields.n_cells

    @property
    def state(self) -> ViewerState:
        """The latest ``ready``/``selection``/``hover``/``click`` events and the last event."""
        return self._channel.state

    @property
    def transport_in_use(self) -> str | None:
        """``"http"`` or ``"comm"`` as the front end chose (the latest view), else ``None``.

        The front end's report comes over the comm, so inside the displaying cell it is not
        there yet; an event that reached the server over HTTP then says ``"http"``.
        """
        with self._views_lock:
            used = [v.get("transport") for v in self._views.values() if v.get("transport")]
        if used:
            return used[-1]
        return "http" if self._channel.delivered_via.get("http") else None

    @property
    def is_running(self) -> bool:
        """Whether the data server runs (until :meth:`close`)."""
        return self._server is not None and self._server.is_running()

    # ------------------------------------------------------------------ commands
    def highlight_cells(
        self, cell_indices: object, color: str = "#ff0000", name: str | None = None
    ) -> None:
        """Make a highlight group of cells in the viewer.

        Parameters
        ----------
        cell_indices
            Cell indices or a boolean mask of length n.
        color
            The group's colour, ``"#RRGGBB"``.
        name
            The group's name (the key in :attr:`groups`); the viewer adds `` (2)``, ... when
            another group has it. By default ``"Python selection (N cells)"``.

        Examples
        --------
        >>> viewer.highlight_cells([0, 5, 9], color="#00aa00")                  # doctest: +SKIP
        >>> viewer.highlight_cells(adata.obs.louvain == "3", "#ff8800", "L3")   # doctest: +SKIP
        """
        if not isinstance(color, str) or not _COLOR.match(color):
            raise ValueError(f'color must look like "#RRGGBB", not {color!r}')
        command = {"type": "highlight", "color": color}
        if name is not None:
            command["name"] = check_name(name, "name")
        cells = as_cell_indices(cell_indices, self.n_cells, label="cell_indices", allow_empty=False)
        self._send_command(command, cells)

    def clear_highlights(self) -> None:
        """Remove every highlight."""
        self._send_command({"type": "clearHighlights"})

    def set_color_by(self, field: str) -> None:
        """Colour the cells by an obs key or a gene id (same as setting :attr:`color_by`)."""
        self.color_by = field

    def set_visibility(self, cell_indices: object = None, visible: bool = True) -> None:
        """Show or hide cells; ``None`` means every cell.

        Examples
        --------
        >>> viewer.set_visibility(visible=False)                    # doctest: +SKIP
        >>> viewer.set_visibility(viewer.selection, visible=True)   # doctest: +SKIP
        """
        if not isinstance(visible, (bool, np.bool_)):
            raise ValueError(f"visible must be True or False, not {visible!r}")
        cells = (
            None
            if cell_indices is None
            else as_cell_indices(cell_indices, self.n_cells, label="cell_indices")
        )
        command: dict[str, Any] = {"type": "setVisibility", "visible": bool(visible)}
        if cells is None:
            command["cells"] = None  # null = every cell (SPEC §4.2)
        self._send_command(command, cells)

    def add_field(self, name: str, values: object) -> None:
        """Send a per-cell field into the running viewer, which can colour by it at once.

        The field joins the viewer's field list (and its Compare panel when categorical);
        ``viewer.color_by = name`` colours by it. Sending a name again replaces that field.
        Values travel as binary (``uint8``/``uint16`` codes or ``float32``).

        Parameters
        ----------
        name
            The field's name; it must not be an obs key or a gene id of the dataset.
        values
            One value per cell, in the order of ``obs_names``: categorical (a pandas
            ``Categorical``, a categorical ``Series``, strings or booleans; missing values
            stay missing) or numeric (continuous; NaN is missing). A ``Series`` indexed by the
            obs names is put in their order.

        Raises
        ------
        ValueError, TypeError
            For a bad or taken name, a wrong length, or values of another kind.

        Examples
        --------
        >>> viewer.add_field("leiden_py", adata.obs["leiden"])     # doctest: +SKIP
        >>> viewer.add_field("n_counts_log", np.log1p(adata.obs["n_counts"]))   # doctest: +SKIP
        >>> viewer.color_by = "leiden_py"                          # doctest: +SKIP
        """
        from .annotation import field_command

        if name in self.fields.obs_keys or name in set(self.fields.gene_ids):
            raise ValueError(
                f"{name!r} is already an obs key or a gene id of this dataset; pick another name"
            )
        command, data = field_command(name, values, self.n_cells, self._obs_names)
        self._send_command(command, data)
        self._user_fields[name] = command["kind"]

    def to_obs(self, field: str | None = None, *, timeout: float = 60.0) -> pd.Series:
        """A categorical column for ``adata.obs``: a user-defined field of the viewer, or its
        groups.

        Parameters
        ----------
        field
            The name of a categorical user-defined field of the viewer (made with Annotate, or
            sent with :meth:`add_field`), read from the viewer's session. ``None``: the current
            :attr:`groups`, as Annotate would make them (categories: the group names, then
            ``"unassigned"``; a cell in several groups gets the first).
        timeout
            Seconds to wait for the viewer's session (only for a named field).

        Returns
        -------
        pandas.Series
            Categorical, indexed by the dataset's ``obs_names`` (a ``RangeIndex`` for an export
            folder, which stores no cell names), ready for ``adata.obs[...] = ...``.

        Raises
        ------
        KeyError
            When the viewer has no such field; the message lists the ones it has.

        Examples
        --------
        >>> adata.obs["cell_type"] = viewer.to_obs("annotation")   # doctest: +SKIP
        >>> adata.obs["picked"] = viewer.to_obs()                   # doctest: +SKIP
        """
        from .annotation import categorical_from_groups, categorical_from_session

        if field is None:
            return categorical_from_groups(self.groups, self.n_cells, self._obs_names(), "groups")
        check_name(field, "field")
        bundle = self.get_session_bundle(timeout)
        try:
            return categorical_from_session(bundle, field, self.n_cells, self._obs_names())
        finally:
            bundle.cleanup()

    def _obs_names(self) -> pd.Index:
        """The served dataset's obs names (a RangeIndex for an export, which stores none)."""
        import pandas as pd

        names = None
        if self._is_anndata and self._server is not None:
            adata = getattr(self._server.source, "adata", None)
            if adata is not None:
                names = adata.obs_names
            elif self._config is not None and self._config.comparisons is not None:
                obs = self._config.comparisons.obs(self._entry)  # a file: reads its obs
                names = None if obs is None else obs.index
        if names is None or len(names) != self.n_cells:
            return pd.RangeIndex(self.n_cells)
        return pd.Index(names)

    def reset_view(self) -> None:
        """Reset the camera."""
        self._send_command({"type": "resetCamera"})

    def send_message(self, message: dict[str, Any]) -> None:
        """Send a custom command (a JSON-safe dict with a string ``type``) to the viewer.

        ``viewerId``/``viewerToken`` are added; queued until the viewer is ready.
        """
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise ValueError("message must be a dict with a string 'type'")
        if not message["type"]:
            raise ValueError("message['type'] must not be empty")
        for key in ("viewerId", "viewerToken"):
            if key in message:
                raise ValueError(f"message must not contain {key!r}: it is added for you")
        try:
            safe = json.loads(json.dumps(message, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"message must be plain JSON: {exc}") from None
        self._send_command(safe)

    # ------------------------------------------------------------------ events
    @property
    def on_ready(self) -> Callable[[_Hook], _Hook]:
        """Decorator: call ``f(event)`` on each ``ready`` event."""
        return self._channel.on_ready

    @property
    def on_selection(self) -> Callable[[_Hook], _Hook]:
        """Decorator: call ``f(event)`` on each ``selection`` (``event["cells"]``: uint32)."""
        return self._channel.on_selection

    @property
    def on_hover(self) -> Callable[[_Hook], _Hook]:
        """Decorator: call ``f(event)`` on each ``hover``."""
        return self._channel.on_hover

    @property
    def on_click(self) -> Callable[[_Hook], _Hook]:
        """Decorator: call ``f(event)`` on each ``click``."""
        return self._channel.on_click

    @property
    def on_message(self) -> Callable[[_Hook], _Hook]:
        """Decorator: call ``f({"event": type, **payload})`` on every event."""
        return self._channel.on_message

    def register_hook(self, event: str, callback: _Hook) -> _Hook:
        """Call ``callback(payload)`` on every ``event`` (any name); returns the callback."""
        return self._channel.register_hook(event, callback)

    def unregister_hook(self, event: str, callback: HookCallback) -> bool:
        """Remove a hook; ``True`` if it was registered."""
        return self._channel.unregister_hook(event, callback)

    def clear_hooks(self, event: str | None = None) -> None:
        """Remove the hooks of ``event``, or every hook."""
        self._channel.clear_hooks(event)

    def wait_for_event(
        self,
        event: str,
        timeout: float | None = 30.0,
        *,
        predicate: Callable[[dict[str, Any]], object] | None = None,
    ) -> dict[str, Any]:
        """The first ``event`` recorded after this call (matching ``predicate``).

        Works in the same cell as the display: events also arrive through the data
        server, which does not wait for the cell to end. Raises ``TimeoutError``.

        Examples
        --------
        >>> viewer.wait_for_event("selection", timeout=120)["cells"]   # doctest: +SKIP
        array([ 4,  8, 15], dtype=uint32)
        """
        self._check_can_wait(event)
        try:
            return self._channel.wait_for_event(event, timeout, predicate=predicate)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}{self._wait_hint()}") from None

    def wait_for_ready(self, timeout: float | None = 30.0) -> dict[str, Any]:
        """The ``ready`` payload (``{"n_cells", "dimensions"}``); at once if already ready."""
        ready = self._channel.state.ready
        if ready is not None:
            return ready
        self._check_can_wait("ready")
        try:
            return self._channel.wait_for_ready(timeout)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}{self._wait_hint()}") from None

    def wait_idle(self, timeout: float | None = 5.0) -> bool:
        """Wait until the hooks and observers ran for every event recorded so far.

        For scripts and tests; ``False`` on timeout. Do not call it from a hook.
        """
        return self._channel.wait_idle(timeout)

    def _check_can_wait(self, event: str) -> None:
        if self.transport != "comm" and self.transport_in_use != "comm":
            return
        if (
            threading.current_thread() is threading.main_thread()
            and (notebook_context()["in_jupyter"])
        ):
            raise RuntimeError(
                f"cannot wait for {event!r} in a notebook cell: with the comm transport the "
                "viewer reaches Python only between cells, so nothing can arrive while a cell "
                "blocks. React with a hook instead (e.g. @viewer.on_selection), read the traits "
                "(viewer.selection) in a later cell, or use transport='http' when the browser "
                "can reach the server."
            )

    def _wait_hint(self) -> str:
        with self._views_lock:
            views = dict(self._views)
        if not views and not self._ever_displayed and not self._pages_attached():
            return self._page_hint() or (
                " (the viewer is not displayed: show it first, e.g. make it the last "
                "expression of a cell, or call viewer.display())"
            )
        return " (run viewer.debug_connection() to see what the browser reached)"

    # ------------------------------------------------------------------ sessions
    def get_session_bundle(self, timeout: float = 60.0) -> CellucidSessionBundle:
        """Ask the viewer for its session (highlights, user fields, ...) as a bundle.

        No browser download: the viewer uploads the bundle to this widget's server. The
        temporary file is deleted at interpreter exit unless you ``save()`` it.
        """
        from .session import CellucidSessionBundle

        if self._closed:
            raise RuntimeError("this viewer is closed")
        self._check_can_wait("session_bundle")
        deadline = time.monotonic() + timeout
        if not self._views and not self._ever_displayed and not self._pages_attached():
            self.display()
        self.wait_for_ready(max(0.0, deadline - time.monotonic()))
        request_id = secrets.token_hex(16)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no time left for a session bundle within {timeout} s")
        assert self._server is not None
        self._server.registry.pending.register(self._channel.viewer_id, request_id, remaining)

        def answers(event: dict[str, Any]) -> bool:
            if event.get("requestId") == request_id:
                return True
            return event.get("command") == "requestSessionBundle" and request_id in str(
                event.get("reason", "")
            )

        try:
            event_type, event = self._channel.wait_for_any(
                ("session_bundle", "command_error"),
                remaining,
                predicate=answers,
                start=lambda: self._send_command(
                    {"type": "requestSessionBundle", "requestId": request_id}
                ),
            )
        except TimeoutError:
            self._server.registry.pending.cancel(self._channel.viewer_id, request_id)
            raise TimeoutError(f"no session bundle from the viewer within {timeout} s") from None
        if event_type == "command_error" or event.get("status") != "ok":
            detail = event.get("reason") or event.get("error") or event
            raise RuntimeError(f"the viewer could not send its session bundle: {detail}")
        return CellucidSessionBundle(event["path"], temporary=True)

    def apply_session_to_anndata(
        self,
        adata: AnnData,
        *,
        inplace: bool = False,
        timeout: float = 60.0,
        cleanup_bundle: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Capture the session and write its highlights and user fields into ``adata``.

        ``kwargs`` go to :func:`cellucid.apply_cellucid_session_to_anndata`;
        ``expected_dataset_id`` defaults to the served dataset's id.
        """
        from .session import apply_cellucid_session_to_anndata

        bundle = self.get_session_bundle(timeout)
        kwargs.setdefault("expected_dataset_id", self.fields.dataset_id)
        try:
            return apply_cellucid_session_to_anndata(bundle, adata, inplace=inplace, **kwargs)
        finally:
            if cleanup_bundle:
                bundle.cleanup()

    # ------------------------------------------------------------------ compare groups
    def compare(
        self,
        group: Any,
        reference: Any = "rest",
        *,
        method: str = "wilcoxon",
        tie_correct: bool = False,
        n_genes: int | None = None,
        timeout: float = 60.0,
    ) -> pd.DataFrame:
        """Rank the genes of this viewer's data between two groups of cells.

        The statistics of :func:`cellucid.rank_genes` (scanpy's ``rank_genes_groups``),
        computed in Python on the data this viewer serves (through the same column cache).

        Parameters
        ----------
        group, reference
            A boolean mask, cell indices (e.g. :attr:`selection`), ``(obs_key, category)`` /
            ``(obs_key, [categories])``, or the **name of a highlight group** of the viewer
            (read from its session, so the viewer must be open). ``reference="rest"`` means
            every cell not in ``group``.
        method, tie_correct, n_genes
            As in :func:`cellucid.rank_genes`.
        timeout
            Seconds to wait for the viewer's highlight groups (only for group names).

        Returns
        -------
        pandas.DataFrame
            The columns of ``scanpy.get.rank_genes_groups_df`` after
            ``scanpy.tl.rank_genes_groups(..., pts=True)``.

        Examples
        --------
        >>> table = viewer.compare(viewer.selection)               # doctest: +SKIP
        >>> table = viewer.compare("my group", ("louvain", "3"))    # doctest: +SKIP
        """
        from .analysis.groups import resolve_groups
        from .analysis.ranking import compare_expression

        if self._closed or self._config is None:
            raise RuntimeError("this viewer is closed")
        service = self._config.comparisons
        assert service is not None
        names = [spec for spec in (group, reference) if _is_group_name(spec)]
        named = self._highlight_groups(timeout) if names else {}
        for spec in names:
            if spec not in named:
                shown = ", ".join(map(repr, named)) or "none"
                raise KeyError(f"no highlight group named {spec!r} in the viewer (groups: {shown})")
        group = named.get(group, group) if _is_group_name(group) else group
        reference = named.get(reference, reference) if _is_group_name(reference) else reference
        expr = service.expression(self._entry)
        groups = resolve_groups(group, reference, expr.n_cells, lambda: service.obs(self._entry))
        comparison = compare_expression(expr, groups, method=method, tie_correct=tie_correct)
        return comparison.to_frame(n_genes)

    @property
    def last_comparison(self) -> pd.DataFrame | None:
        """The table of the last comparison run in the viewer's Compare panel (computed by
        this widget's server), or ``None``. Its ``attrs["cellucid"]`` says what was compared.
        The viewer also sends a ``comparison`` event (``on_message`` hooks)."""
        if self._config is None or self._config.comparisons is None:
            return None
        stored = self._config.comparisons.latest(self._channel.viewer_id)
        return None if stored is None else stored.comparison.to_frame(stored.n_genes)

    def _highlight_groups(self, timeout: float) -> dict[str, npt.NDArray[np.uint32]]:
        """The viewer's highlight groups by name (and by id), from its session bundle."""
        from .session.apply import highlight_groups

        bundle = self.get_session_bundle(timeout)
        try:
            return highlight_groups(bundle, self.n_cells)
        finally:
            bundle.cleanup()

    # ------------------------------------------------------------------ diagnostics
    def debug_connection(
        self, timeout: float = 5.0, *, max_console_events: int = 50
    ) -> dict[str, Any]:
        """A report on every link between Python, the server and the browser.

        Includes the transport in use, server probes, a ping round trip (its time in
        ``ping_rtt_ms``), the recent events and what the front end logged.
        """
        from .debug import connection_report

        return connection_report(self, timeout, max_console_events)

    # ------------------------------------------------------------------ display
    def display(self) -> None:
        """Show the viewer: the widget in a notebook, else print the URL to open."""
        if notebook_context()["in_jupyter"]:
            from IPython.display import display

            display(self)
        else:
            print(f"cellucid viewer: open {self.page_url} in a browser")

    def close(self) -> None:
        """Freeze the viewer, stop the server, hooks and threads, and close the widget.

        Idempotent; also runs at interpreter exit and when the last view has been gone
        for :data:`RELEASE_AFTER_S` seconds.
        """
        if getattr(self, "_closed", True):
            return
        self._closed = True
        if self.comm is not None:
            with self._command_lock, contextlib.suppress(Exception):  # the front end may be gone
                self._emit({"type": "freeze"}, None)
        with self._views_lock:
            if self._release_timer is not None:
                self._release_timer.cancel()
        self._close_pages(self._server)
        self._finalizer()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._server = None
        self._parts.clear()
        super().close()

    stop = close

    def __repr__(self) -> str:
        status = "running" if self.is_running else "stopped"
        name = type(self).__name__
        if self._data_label is not None and not self._is_anndata:
            return f"{name}('{self._data_label}', port={self.port}, status={status})"
        return f"{name}(port={self.port}, status={status})"

    # ------------------------------------------------------------------ traits
    def _validate_cells(self, value: object) -> npt.NDArray[np.uint32]:
        return as_cell_indices(value, self.n_cells, label="selection")

    @traitlets.validate("color_by")
    def _check_color_by(self, proposal: dict[str, Any]) -> str:
        value = proposal["value"]
        if value is None:
            raise traitlets.TraitError("color_by can only be set to a field name")
        if value in self._user_fields:
            return value
        return self.fields.resolve(value)

    @traitlets.validate("dimension")
    def _check_dimension(self, proposal: dict[str, Any]) -> int:
        value = proposal["value"]
        if value not in self.fields.dimensions:
            raise ValueError(
                f"dimension {value!r} is not available; this dataset has "
                f"{', '.join(f'{d}D' for d in self.fields.dimensions)}"
            )
        return int(value)

    @traitlets.observe("selection", "color_by", "dimension")
    def _user_changed(self, change: dict[str, Any]) -> None:
        if getattr(self._notifying, "change", None) is change:
            return  # the viewer reported this change: nothing to send back
        name, new = change["name"], change["new"]
        if name == "selection":
            self._send_command({"type": "setSelection"}, new)
        elif name == "color_by":
            self._send_command({"type": "setColorBy", "field": new})
        else:
            self._send_command({"type": "setDimension", "dimension": new})

    def _on_record(self, event_type: str, payload: dict[str, Any]) -> Callable[[], None] | None:
        # On the delivering thread, under the channel's lock: new values become visible at
        # once (wait_for_event may return right now); observers run later, on the
        # dispatcher thread, in event order.
        updates: dict[str, Any] = {}
        if event_type == "ready":
            updates["ready"] = True
        elif event_type == "selection":
            updates["selection"] = payload["cells"]
        elif event_type in ("hover", "click"):
            updates[event_type] = copy.deepcopy(payload)
        elif event_type == "groups":
            from .annotation import groups_by_name

            updates["groups"] = groups_by_name(payload)
        elif event_type == "user_fields":
            self._user_fields.update({f["key"]: f["kind"] for f in payload["fields"]})
        elif event_type in VIEW_EVENTS:  # embedding switch, split view (widget_views.py)
            self._record_view_event(event_type, payload)
        elif event_type == "view":
            if isinstance(payload.get("color_by"), str):
                updates["color_by"] = payload["color_by"]
            if payload.get("dimension") in (1, 2, 3):
                updates["dimension"] = payload["dimension"]
        if not updates:
            return None
        old = {name: self._trait_values.get(name) for name in updates}
        self._trait_values.update(updates)

        def notify() -> None:
            try:
                for name, new in updates.items():
                    if not _same(old[name], new):
                        self._notify_from_viewer(name, old[name], new)
            finally:
                if event_type == "ready":
                    self._open_commands()

        return notify

    def _notify_from_viewer(self, name: str, old: Any, new: Any) -> None:
        """Run the observers (and sync the front end) for a change the viewer reported; an
        observer's exception is logged, like a hook's."""
        change = traitlets.Bunch(name=name, old=old, new=new, owner=self, type="change")
        self._notifying.change = change
        try:
            self.notify_change(change)
        except Exception:
            log.exception("cellucid: an observer of %r raised; the error is ignored", name)
        finally:
            self._notifying.change = None

    # ------------------------------------------------------------------ command queue
    def _send_command(
        self, command: dict[str, Any], cells: npt.NDArray[np.uint32] | None = None
    ) -> None:
        if self._closed:
            raise RuntimeError("this viewer is closed")
        with self._command_lock:
            self._send_to_pages(command, cells)  # tabs: queued until a page is ready there
            if not self._commands_open:
                if len(self._queued) >= MAX_QUEUED_COMMANDS:
                    dropped = self._queued.popleft()
                    log.warning("cellucid: too many commands before ready; dropped %s", dropped[0])
                self._queued.append((command, cells))
                return
            self._emit(command, cells)

    def _open_commands(self) -> None:
        with self._command_lock:
            self._commands_open = True
            while self._queued:
                self._emit(*self._queued.popleft())

    def _emit(self, command: dict[str, Any], binary: npt.NDArray[Any] | None) -> None:
        """Send a command; ``binary`` (cell indices, or addField's values) goes as buffers."""
        self._seq += 1
        message: dict[str, Any] = {"kind": "command", "seq": self._seq, "command": command}
        if binary is None:
            self.send(message)
            return
        if command["type"] == "addField":  # uint8/uint16 codes or float32 values
            data = np.ascontiguousarray(binary, dtype=binary.dtype.newbyteorder("<"))
            message["values_dtype"] = binary.dtype.name
        else:
            data = np.ascontiguousarray(binary, dtype="<u4")
            message["cells_bytes"] = True
        for part, buffers in split_parts(message, data):
            self.send(part, buffers)

    # ------------------------------------------------------------------ front end messages
    def _on_frontend_message(self, _widget: Any, content: Any, buffers: list[Any]) -> None:
        if not isinstance(content, dict) or self._closed:
            return
        kind = content.get("kind")
        view = str(content.get("view", ""))
        try:
            if kind == "event":
                self._frontend_event(view, content, buffers)
            elif kind == "fetch":
                self._frontend_fetch(view, content, buffers)
            elif kind == "page_request":
                self._run_in_pool(self._send_page, str(content.get("id", "")))
            elif kind == "view":
                self._frontend_view(view, content)
            elif kind == "log":
                self._frontend_log.append(
                    {
                        "level": str(content.get("level", "info")),
                        "message": str(content.get("message", "")),
                        "view": view,
                        "ts": time.time(),
                    }
                )
        except (InvalidEventError, ValueError) as exc:
            log.warning("cellucid: ignored a %s message from the front end: %s", kind, exc)

    def _frontend_event(self, view: str, content: dict[str, Any], buffers: list[Any]) -> None:
        event_id = content.get("eventId")
        done = self._parts.add(f"event:{view}:{event_id}", content, buffers)
        if done is None:
            return
        message, data = done
        event = dict(message.get("event") or {})
        cells = event.get("cells")
        if isinstance(cells, dict) and cells.get("data") is None:
            event["cells"] = {**cells, "data": data}
        if event.get("type") == "groups" and "group_bytes" in message:
            event = fill_group_cells(event, message["group_bytes"], data)
        self._channel.deliver(
            event, event_id=event_id if isinstance(event_id, str) else None, via="comm"
        )

    def _frontend_fetch(self, view: str, content: dict[str, Any], buffers: list[Any]) -> None:
        request_id = str(content.get("id", ""))
        done = self._parts.add(f"fetch:{request_id}", content, buffers)
        if done is None:
            return
        message, body = done
        self._run_in_pool(self._answer_fetch, request_id, message, body)

    def _answer_fetch(self, request_id: str, message: dict[str, Any], body: bytes) -> None:
        assert self._files is not None
        headers = {str(k).lower(): str(v) for k, v in (message.get("headers") or {}).items()}
        reply = self._files.answer(
            str(message.get("method", "GET")), str(message.get("path", "")), headers, body
        )
        head = {
            "kind": "fetch_reply",
            "id": request_id,
            "status": reply.status,
            "headers": reply.headers,
        }
        for part, part_buffers in split_parts(head, reply.body):
            self.send(part, part_buffers)

    def _send_page(self, page_id: str) -> None:
        assert self._config is not None
        sizes, data = viewer_page(self._config.ui_dir)
        for part, buffers in split_parts({"kind": "page", "id": page_id, "sizes": sizes}, data):
            self.send(part, buffers)

    def _run_in_pool(self, fn: Callable[..., None], *args: Any) -> None:
        # Reads can be slow (a gene of a backed AnnData): never on the kernel's thread.
        if self._pool is None:
            self._pool = ThreadPoolExecutor(2, thread_name_prefix="cellucid-comm")

        def run() -> None:
            try:
                fn(*args)
            except Exception:
                log.exception("cellucid: answering the front end failed")

        self._pool.submit(run)

    def _frontend_view(self, view: str, content: dict[str, Any]) -> None:
        action = content.get("action")
        with self._views_lock:
            if action == "closed":
                self._views.pop(view, None)
                if not self._views and self._release_timer is None:
                    timer = threading.Timer(RELEASE_AFTER_S, self._release_if_unused)
                    timer.daemon = True
                    self._release_timer = timer
                    timer.start()
                return
            info = self._views.setdefault(view, {"since": time.time()})
            self._ever_displayed = True
            if self._release_timer is not None:
                self._release_timer.cancel()
                self._release_timer = None
            if action == "transport":
                for key in ("transport", "via", "url", "error"):
                    info[key] = content.get(key)
            elif action == "connected":
                info["connected"] = True

    def _release_if_unused(self) -> None:
        with self._views_lock:
            self._release_timer = None
            unused = not self._views
        if unused and not self._closed:
            log.info("cellucid: the viewer's last view closed; releasing its server")
            self.close()


# ---------------------------------------------------------------------- helpers
#: every open viewer of this process, for close_all_viewers()
_OPEN_VIEWERS: weakref.WeakSet[CellucidWidget] = weakref.WeakSet()


def close_all_viewers() -> int:
    """Close every open viewer of this process (their servers stop); returns how many.

    Upstream's ``cellucid.jupyter.cleanup_all``.
    """
    viewers = [v for v in list(_OPEN_VIEWERS) if not v._closed]
    for viewer in viewers:
        viewer.close()
    return len(viewers)


def _is_group_name(spec: Any) -> bool:
    return isinstance(spec, str) and spec != "rest"


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, dict) and isinstance(new, dict):
        return list(old) == list(new) and all(_same(old[k], new[k]) for k in old)
    if isinstance(old, np.ndarray) or isinstance(new, np.ndarray):
        return (
            isinstance(old, np.ndarray) and isinstance(new, np.ndarray) and np.array_equal(old, new)
        )
    return bool(old == new)


def _make_server(
    data: Any,
    port: int | None,
    host: str,
    anndata: bool | None,
    adapter_kwargs: dict[str, Any],
    session: str | Path | None = None,
) -> _BaseServer:
    from .sources.detect import detect
    from .sources.options import check_options

    check_options(adapter_kwargs)
    requested = DEFAULT_PORT if port is None else int(port)
    if isinstance(data, (str, Path)):
        kind = detect(data).kind
        exported = kind in ("export", "export_root")
        if anndata is not None and anndata == exported:
            raise ValueError(
                f"{data} is {'an export folder' if exported else 'an AnnData file'}; "
                f"anndata={anndata} does not match"
            )
        if exported:
            if adapter_kwargs:
                raise TypeError(
                    f"{', '.join(sorted(adapter_kwargs))}: AnnData options do not apply to an "
                    "export folder"
                )
            return CellucidServer(data, requested, host, quiet=True, session=session)
        return AnnDataServer(data, requested, host, quiet=True, session=session, **adapter_kwargs)
    if not hasattr(data, "obs") or not hasattr(data, "obsm"):
        raise TypeError(
            "data must be an AnnData, a path to an .h5ad file or a .zarr store, or an export "
            f"folder, not {type(data).__name__}"
        )
    return AnnDataServer(data, requested, host, quiet=True, session=session, **adapter_kwargs)


def _shutdown(server: _BaseServer, channel: ViewerChannel) -> None:
    """Stop a viewer's server and channel (close(), garbage collection or exit)."""
    channel.close()
    server.registry.remove(channel.viewer_id)
    server.stop()
