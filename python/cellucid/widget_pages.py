"""Viewers driven from a script or an IPython terminal: commands to pages in browser tabs.

:class:`~cellucid.widget.CellucidWidget` (and the ``show``/``show_anndata`` viewers) send
every command to two places: the widget's comm, read by the notebook front end when the
widget is displayed, and the data server's command hub
(:mod:`cellucid.server.commands`), which relays it over a WebSocket to every page opened
in a plain tab (``viewer.page_url``). The page inside the widget's iframe never opens
that WebSocket, so no page runs a command twice.

When a notebook front end shows the widget, the hub keeps nothing for tabs that are not
open and requests that want one answer (``ping``, ``debug_snapshot``,
``requestSessionBundle``) go to the widget only. Otherwise (no kernel, or a kernel that
never displayed the widget), commands wait in the hub until a page connects, and Python
warns once, naming the URL to open.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .notebook_env import notebook_context
from .server.commands import REQUEST_TYPES, CommandHub

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from .server.runner import _BaseServer

__all__ = ["PageCommands"]


class PageCommands:
    """Mixin of :class:`~cellucid.widget.CellucidWidget`: its command channel to browser tabs.

    Uses the widget's ``viewer_url``, ``_channel``, ``_views``, ``_views_lock`` and
    ``_ever_displayed``.
    """

    _hub: CommandHub | None = None
    _display_requested = False

    def _init_pages(self, server: _BaseServer) -> None:
        config = server.config
        if config is None or config.command_hubs is None:
            return
        self._hub = config.command_hubs.hub(self._channel.viewer_id)  # type: ignore[attr-defined]
        self._hub.page_url = self.page_url
        if notebook_context()["in_jupyter"]:
            self._hub.open_also = ", or display the viewer in this notebook"

    @property
    def page_url(self) -> str:
        """The URL to open in a browser tab to see (and drive) this viewer from Python."""
        return self.viewer_url.replace("jupyter=true&", "")  # type: ignore[attr-defined]

    @property
    def command_channel(self) -> dict[str, Any]:
        """How commands reach pages in browser tabs (``_cellucid/commands``, PROTOCOL.md).

        ``attached`` pages (each with what it was ``sent`` and acknowledged), commands
        ``queued`` while no page is attached (and ``dropped`` beyond the limit), the
        ``last_command`` Python sent and where it went, the ``last_delivery`` to a page,
        and ``widget_shown`` (a notebook front end gets the commands over the comm).
        """
        hub = self._hub
        info: dict[str, Any] = {"closed": True} if hub is None else hub.info()
        info["widget_shown"] = self._widget_shown()
        return info

    def _widget_shown(self) -> bool:
        if not notebook_context()["in_jupyter"]:
            return False
        with self._views_lock:  # type: ignore[attr-defined]
            views = bool(self._views)  # type: ignore[attr-defined]
        return views or self._ever_displayed or self._display_requested  # type: ignore[attr-defined]

    def _send_to_pages(self, command: dict[str, Any], cells: npt.NDArray[np.uint32] | None) -> None:
        hub = self._hub
        if hub is None:
            return
        shown = self._widget_shown()
        if shown and command["type"] in REQUEST_TYPES:
            return  # the widget answers; a second answer from a tab would race it
        hub.send(command, cells, retain=not shown)

    def _pages_attached(self) -> bool:
        return self._hub is not None and self._hub.pages > 0

    def _page_hint(self) -> str:
        if notebook_context()["in_jupyter"] or self._pages_attached():
            return ""
        return (
            f" (the viewer is not displayed: no browser page is connected; open {self.page_url}"
            " in a browser, or call viewer.display() in a notebook)"
        )

    def _close_pages(self, server: _BaseServer | None) -> None:
        """Freeze the pages in tabs and close their channel (the viewer stops)."""
        hub, self._hub = self._hub, None
        if hub is None:
            return
        hub.send({"type": "freeze"}, retain=False)
        if server is not None and server.config is not None and server.config.command_hubs:
            server.config.command_hubs.discard(hub.viewer_id)
        hub.close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # IPython displays the widget (display(), or the last expression of a cell): its
        # front end will get the commands from now on.
        self._display_requested = True
        return super()._repr_mimebundle_(**kwargs)  # type: ignore[misc]
