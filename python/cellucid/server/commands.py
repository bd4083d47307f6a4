"""Commands to viewer pages in plain browser tabs: ``GET /_cellucid/commands`` (PROTOCOL.md).

Inside the notebook widget, commands reach the viewer over the Jupyter comm and a
``postMessage`` from the widget's front end. A page opened in its own tab (a script or an
IPython terminal printed its URL, or a second tab on a notebook's viewer) has no such
parent: it opens a WebSocket to its data server instead, and the server relays Python's
commands over it.

* :func:`frame_command` turns a command into its frames: a JSON text frame with a
  sequence number, then (for commands with cells) one binary frame of little-endian
  ``uint32`` cell indices, as the comm carries them.
* :class:`CommandHub` (one per viewer) holds the attached pages and, while none is
  attached, an ordered, bounded queue. Python threads call :meth:`CommandHub.send`; the
  pages live on the server's event loop, reached with ``call_soon_threadsafe`` only, so
  Python never blocks on a browser and the loop never waits for Python.
* :class:`CommandHubs` (one per server) makes hubs on demand and serves the WebSocket of
  each page (:meth:`CommandHubs.serve`), after ``app.py`` checked the credentials.

Delivery rules: every attached page gets every command, in order, except requests that
want one answer (``ping``, ``debug_snapshot``, ``requestSessionBundle``), which go to one
page, the oldest that said it is ready. Pages acknowledge each command as they take it;
when the last page goes away, whatever it had not acknowledged is queued again, so nothing
is lost across a reload. There is no replay of state: a page that attaches gets the queued commands only.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import json
import logging
import threading
import time
import warnings
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from aiohttp import WSMsgType, web

from .registry import ViewerRegistry

__all__ = [
    "CLOSE_TOO_SLOW",
    "CLOSE_VIEWER_STOPPED",
    "HEARTBEAT_S",
    "MAX_QUEUED_BYTES",
    "MAX_QUEUED_COMMANDS",
    "REQUEST_TYPES",
    "CommandHub",
    "CommandHubs",
    "Outgoing",
    "ViewerNotOpenWarning",
    "frame_command",
]

log = logging.getLogger("cellucid.commands")

MAX_QUEUED_COMMANDS: Final = 10_000
"""Commands a hub keeps while no page is attached; the oldest goes beyond this."""
MAX_QUEUED_BYTES: Final = 256 * 1024 * 1024
"""The same limit in bytes (frames included)."""
MAX_BACKLOG_COMMANDS: Final = 10_000
"""Commands sent to one page and not yet acknowledged; a page beyond this is closed."""
MAX_BACKLOG_BYTES: Final = 256 * 1024 * 1024
HEARTBEAT_S: Final = 15.0
"""WebSocket ping interval; a page that does not answer within half of it is dropped."""
MAX_PAGE_MESSAGE: Final = 4096
"""Largest frame a page may send (acknowledgements are tiny)."""
SHUTDOWN_WAIT_S: Final = 1.0

CLOSE_VIEWER_STOPPED: Final = 4001
"""Close code: the viewer was stopped; the page must not reconnect."""
CLOSE_TOO_SLOW: Final = 4008
"""Close code: the page fell too far behind; it may reconnect."""
CLOSE_GOING_AWAY: Final = 1001

REQUEST_TYPES: Final = frozenset({"ping", "debug_snapshot", "requestSessionBundle"})
"""Commands that want one answer: sent to one page, not to all."""

_PACKAGE_DIRS: Final = tuple(
    {str(Path(__file__).parents[1]), str(Path(__file__).resolve().parents[1])}
)


class ViewerNotOpenWarning(UserWarning):
    """Commands are queued because no browser page shows the viewer (or the queue overflowed)."""


# ------------------------------------------------------------------------------ frames
@dataclass(frozen=True)
class Outgoing:
    """One command as it goes over the WebSocket: a text frame, then maybe a binary one."""

    seq: int
    type: str
    text: str
    data: bytes | None

    @property
    def nbytes(self) -> int:
        return len(self.text) + (0 if self.data is None else len(self.data))


def frame_command(
    seq: int, command: Mapping[str, Any], cells: npt.NDArray[np.uint32] | None = None
) -> Outgoing:
    """The frames of one command (PROTOCOL.md): ``{"kind": "command", "seq", "command"}``,
    plus ``"cells_bytes": true, "bytes": N`` and an ``N``-byte binary frame when it has cells.

    ``command`` is JSON-safe and carries no credentials (the page adds its own).

    Examples
    --------
    >>> out = frame_command(3, {"type": "highlight", "color": "#ff0000"}, np.array([2, 7]))
    >>> json.loads(out.text)
    {'kind': 'command', 'seq': 3, 'command': {'type': 'highlight', 'color': '#ff0000'}, 'cells_bytes': True, 'bytes': 8}
    >>> out.data
    b'\\x02\\x00\\x00\\x00\\x07\\x00\\x00\\x00'
    """
    header: dict[str, Any] = {"kind": "command", "seq": seq, "command": dict(command)}
    data = None
    if cells is not None:
        data = np.ascontiguousarray(cells, dtype="<u4").tobytes()
        header.update(cells_bytes=True, bytes=len(data))
    text = json.dumps(header, separators=(",", ":"), allow_nan=False)
    return Outgoing(seq, str(command["type"]), text, data)


# ------------------------------------------------------------------------------ pages
_PAGE_IDS = itertools.count(1)


class _Page:
    """One attached WebSocket. Lives on the server's event loop: call nothing from elsewhere
    except through ``loop.call_soon_threadsafe``."""

    def __init__(
        self, hub: CommandHub, ws: web.WebSocketResponse, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.hub = hub
        self.ws = ws
        self.loop = loop
        self.id = next(_PAGE_IDS)
        self.since = time.time()
        self.ready = False
        self.open = True
        self.sent = 0
        self.acked = 0
        self._outbox: deque[Outgoing] = deque()
        self._unacked: deque[Outgoing] = deque()
        self._bytes = 0
        self._wake = asyncio.Event()
        self._close: tuple[int, str] | None = None
        self.done = loop.create_future()

    # ---- on the loop
    def push(self, item: Outgoing) -> None:
        """Queue one command for writing (a page that went away hands it back to the hub)."""
        if not self.open:
            self.hub._orphaned(item)
            return
        self.enqueue((item,))

    def enqueue(self, items: tuple[Outgoing, ...] | list[Outgoing]) -> None:
        for item in items:
            self._outbox.append(item)
            self._bytes += item.nbytes
        backlog = len(self._outbox) + len(self._unacked)
        if backlog > self.hub.max_backlog or self._bytes > self.hub.max_backlog_bytes:
            self.close_soon(CLOSE_TOO_SLOW, "the page fell too far behind")
        self._wake.set()

    def close_soon(self, code: int, message: str) -> None:
        """Close once the commands already queued are written (the first code wins)."""
        if self._close is None:
            self._close = (code, message)
        self._wake.set()

    def ack(self, seq: int) -> None:
        while self._unacked and self._unacked[0].seq <= seq:
            self._bytes -= self._unacked.popleft().nbytes
        self.acked = max(self.acked, seq)

    def unfinished(self) -> list[Outgoing]:
        """What the page was sent or was to be sent but did not acknowledge, in order."""
        items = [*self._unacked, *self._outbox]
        self._unacked.clear()
        self._outbox.clear()
        self._bytes = 0
        return items

    @property
    def backlog(self) -> int:
        return len(self._outbox) + len(self._unacked)

    async def write(self) -> None:
        try:
            while True:
                while not self._outbox:
                    if self._close is not None:
                        await self.ws.close(code=self._close[0], message=self._close[1].encode())
                        return
                    self._wake.clear()
                    await self._wake.wait()
                item = self._outbox.popleft()
                self._unacked.append(item)
                await self.ws.send_str(item.text)
                if item.data is not None:
                    await self.ws.send_bytes(item.data)
                self.sent += 1
                self.hub._delivered(self, item)
        except (ConnectionError, RuntimeError) as exc:  # the page went away mid-write
            log.debug("cellucid: command page %s: %s", self.id, exc)
        finally:
            if not self.done.done():
                self.done.set_result(None)

    def describe(self) -> dict[str, Any]:
        return {
            "page": self.id,
            "since": self.since,
            "ready": self.ready,
            "sent": self.sent,
            "acked_seq": self.acked,
            "backlog": self.backlog,
        }


# ------------------------------------------------------------------------------ the hub
class CommandHub:
    """The command channel of one viewer: attached pages and a queue for when there are none.

    Thread-safe: :meth:`send`, :meth:`info` and :meth:`close` may be called from any thread;
    the other methods run on the server's event loop.

    Parameters
    ----------
    viewer_id
        The viewer this hub belongs to (for messages).
    max_queued, max_queued_bytes
        Bounds of the queue kept while no page is attached; beyond them the oldest command
        is dropped with a :class:`ViewerNotOpenWarning`.
    max_backlog, max_backlog_bytes
        Commands sent to one page and not acknowledged; a page beyond them is closed
        (close code 4008) and may reconnect.

    Attributes
    ----------
    page_url : str or None
        The URL to open, named in warnings (set by the viewer object that owns the hub).
    open_also : str
        Said after the URL in warnings (e.g. ", or display the viewer in this notebook").
    """

    def __init__(
        self,
        viewer_id: str,
        *,
        max_queued: int = MAX_QUEUED_COMMANDS,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
        max_backlog: int = MAX_BACKLOG_COMMANDS,
        max_backlog_bytes: int = MAX_BACKLOG_BYTES,
    ) -> None:
        self.viewer_id = viewer_id
        self.max_queued = max_queued
        self.max_queued_bytes = max_queued_bytes
        self.max_backlog = max_backlog
        self.max_backlog_bytes = max_backlog_bytes
        self.page_url: str | None = None
        self.open_also = ""
        self._lock = threading.Lock()
        self._pages: list[_Page] = []
        self._queue: list[Outgoing] = []  # sorted by seq
        self._queued_bytes = 0
        self._seq = 0
        self._closed = False
        self._ever_attached = False
        self._warned_detached = False
        self._warned_overflow = False
        self.dropped = 0
        self.attaches = 0
        self._last_command: dict[str, Any] | None = None
        self._last_delivery: dict[str, Any] | None = None

    def __repr__(self) -> str:
        with self._lock:
            pages, queued = len(self._pages), len(self._queue)
        return f"CommandHub({self.viewer_id!r}, pages={pages}, queued={queued})"

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pages(self) -> int:
        """How many pages are attached now."""
        with self._lock:
            return len(self._pages)

    # ---- from Python threads
    def send(
        self,
        command: Mapping[str, Any],
        cells: npt.NDArray[np.uint32] | None = None,
        *,
        retain: bool = True,
    ) -> str:
        """Send one command to the attached pages, or queue it when there are none.

        Parameters
        ----------
        command
            ``{"type": str, ...}``, JSON-safe, without credentials.
        cells
            The command's cell indices (sent as a binary frame), or ``None``.
        retain
            Queue the command when no page is attached. ``False`` when another front end
            (the notebook widget) gets it anyway.

        Returns
        -------
        str
            ``"pages"`` (handed to the attached pages), ``"queued"`` or ``"skipped"``
            (no page and ``retain=False``, or the hub is closed).
        """
        notices: list[str] = []
        with self._lock:
            if self._closed:
                return "skipped"
            self._seq += 1
            item = frame_command(self._seq, command, cells)
            if self._pages:
                targets = [self._pick()] if item.type in REQUEST_TYPES else self._pages
                for page in targets:
                    with contextlib.suppress(RuntimeError):  # its loop closed: it is going away
                        page.loop.call_soon_threadsafe(page.push, item)
                outcome = "pages"
            elif retain:
                self._insert(item)
                notices = self._notices()
                outcome = "queued"
            else:
                outcome = "skipped"
            self._last_command = {
                "seq": item.seq,
                "type": item.type,
                "at": time.time(),
                "outcome": outcome,
            }
        for notice in notices:
            _warn(notice)
        return outcome

    def info(self) -> dict[str, Any]:
        """What the channel holds now: attached pages, queued commands, the last delivery."""
        with self._lock:
            return {
                "route": "_cellucid/commands",
                "pages": [page.describe() for page in self._pages],
                "attached": len(self._pages),
                "queued": len(self._queue),
                "queued_bytes": self._queued_bytes,
                "dropped": self.dropped,
                "commands_sent": self._seq,
                "attaches": self.attaches,
                "last_command": None if self._last_command is None else dict(self._last_command),
                "last_delivery": None if self._last_delivery is None else dict(self._last_delivery),
                "closed": self._closed,
            }

    def close(self, code: int = CLOSE_VIEWER_STOPPED, message: str = "viewer stopped") -> None:
        """Stop: forget the queue and close every page once its pending commands are written.

        Idempotent; pages closed with :data:`CLOSE_VIEWER_STOPPED` do not reconnect.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pages = list(self._pages)
            self._queue.clear()
            self._queued_bytes = 0
        for page in pages:
            with contextlib.suppress(RuntimeError):  # the loop is closed already
                page.loop.call_soon_threadsafe(page.close_soon, code, message)

    # ---- on the loop
    def attach(self, page: _Page) -> bool:
        """A page connected: it gets the queued commands, then every new one."""
        with self._lock:
            if self._closed:
                return False
            self._pages.append(page)
            self.attaches += 1
            self._ever_attached = True
            self._warned_detached = self._warned_overflow = False
            backlog, self._queue, self._queued_bytes = self._queue, [], 0
            if backlog:
                page.enqueue(backlog)
        return True

    def detach(self, page: _Page) -> None:
        """A page went away: what it did not acknowledge goes to the queue (or, for requests,
        to another page). Python is told at its next command (:meth:`send`), not from here:
        a warning on the server's thread would point at nothing the user wrote."""
        with self._lock:
            page.open = False
            if page in self._pages:
                self._pages.remove(page)
            leftovers = page.unfinished()
            if self._closed:
                return
            if self._pages:
                for item in leftovers:
                    if item.type in REQUEST_TYPES:
                        self._pick().enqueue((item,))
            else:
                for item in leftovers:
                    self._insert(item)

    def page_message(self, page: _Page, text: str) -> None:
        """A text frame from a page: ``{"kind": "ready"}`` or ``{"kind": "ack", "seq": n}``."""
        try:
            message = json.loads(text)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        kind = message.get("kind")
        with self._lock:
            if kind == "ready":
                page.ready = True
            elif kind == "ack":
                seq = message.get("seq")
                if isinstance(seq, int) and not isinstance(seq, bool):
                    page.ack(seq)

    def _orphaned(self, item: Outgoing) -> None:
        # A command scheduled for a page that went away before it ran (on the loop).
        with self._lock:
            if self._closed:
                return
            if not self._pages:
                self._insert(item)
            elif item.type in REQUEST_TYPES:
                self._pick().enqueue((item,))

    def _delivered(self, page: _Page, item: Outgoing) -> None:
        with self._lock:
            self._last_delivery = {
                "seq": item.seq,
                "type": item.type,
                "at": time.time(),
                "page": page.id,
            }

    # ---- with the lock held
    def _pick(self) -> _Page:
        return next((page for page in self._pages if page.ready), self._pages[0])

    def _insert(self, item: Outgoing) -> None:
        if self._queue and item.seq < self._queue[-1].seq:
            bisect.insort(self._queue, item, key=lambda queued: queued.seq)
        else:
            self._queue.append(item)
        self._queued_bytes += item.nbytes
        while len(self._queue) > 1 and (
            len(self._queue) > self.max_queued or self._queued_bytes > self.max_queued_bytes
        ):
            self._queued_bytes -= self._queue.pop(0).nbytes
            self.dropped += 1

    def _notices(self) -> list[str]:
        open_it = f" Open {self.page_url} in a browser{self.open_also}." if self.page_url else ""
        notices = []
        if not self._warned_detached:
            self._warned_detached = True
            if self._ever_attached:
                notices.append(
                    f"cellucid: the browser page of viewer {self.viewer_id} went away (closed "
                    "or reloading); commands are queued until a page connects again." + open_it
                )
            else:
                notices.append(
                    f"cellucid: no browser page shows viewer {self.viewer_id} yet; commands "
                    "are queued until one connects." + open_it
                )
        if self.dropped and not self._warned_overflow:
            self._warned_overflow = True
            notices.append(
                f"cellucid: too many commands are queued for viewer {self.viewer_id} with no "
                f"page open ({self.max_queued} commands or {self.max_queued_bytes} bytes at "
                f"most); the oldest are dropped ({self.dropped} so far)." + open_it
            )
        return notices


def _warn(message: str) -> None:
    """A :class:`ViewerNotOpenWarning` attributed to the first caller outside cellucid."""
    warnings.warn(message, ViewerNotOpenWarning, stacklevel=_user_stacklevel())


def _user_stacklevel() -> int:
    import sys

    inside = (*_PACKAGE_DIRS, *_library_dirs())
    frame = sys._getframe(2)  # the caller of _warn(), which is stacklevel=2
    level = 2
    while frame is not None and frame.f_code.co_filename.startswith(inside):
        frame = frame.f_back
        level += 1
    return level


def _library_dirs() -> tuple[str, ...]:
    """Where trait notifications run (a command sent by setting ``viewer.color_by``)."""
    import importlib

    dirs = []
    for name in ("traitlets", "ipywidgets", "anywidget"):
        with contextlib.suppress(ImportError):
            module = importlib.import_module(name)
            dirs.append(str(Path(module.__file__ or "").parent))
    return tuple(dirs)


# ------------------------------------------------------------------------------ per server
class CommandHubs:
    """The command hubs of one server's viewers, and the WebSocket route's work."""

    def __init__(self, registry: ViewerRegistry) -> None:
        self.registry = registry
        self._lock = threading.Lock()
        self._hubs: dict[str, CommandHub] = {}

    def hub(self, viewer_id: str) -> CommandHub:
        """The hub of ``viewer_id`` (made on first use; hubs of viewers gone are forgotten)."""
        with self._lock:
            hub = self._hubs.get(viewer_id)
            if hub is None or hub.closed:
                for other in [k for k, h in self._hubs.items() if k not in self.registry]:
                    if not self._hubs[other].pages:
                        del self._hubs[other]
                hub = self._hubs[viewer_id] = CommandHub(viewer_id)
            return hub

    def get(self, viewer_id: str) -> CommandHub | None:
        with self._lock:
            return self._hubs.get(viewer_id)

    def discard(self, viewer_id: str) -> None:
        """Close and forget the hub of a viewer that stopped."""
        with self._lock:
            hub = self._hubs.pop(viewer_id, None)
        if hub is not None:
            hub.close()

    async def serve(self, viewer_id: str, request: web.Request) -> web.StreamResponse:
        """Run one page's WebSocket until it closes (credentials already checked)."""
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=MAX_PAGE_MESSAGE)
        await ws.prepare(request)
        hub = self.hub(viewer_id)
        loop = asyncio.get_running_loop()
        page = _Page(hub, ws, loop)
        if not hub.attach(page):
            await ws.close(code=CLOSE_VIEWER_STOPPED, message=b"viewer stopped")
            return ws
        writer = loop.create_task(page.write())
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    hub.page_message(page, message.data)
        finally:
            hub.detach(page)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
        return ws

    async def shutdown(self) -> None:
        """Close every page (the server stops); waits a moment for pending writes."""
        with self._lock:
            hubs = list(self._hubs.values())
        pages = [page for hub in hubs for page in list(hub._pages)]
        for page in pages:
            page.close_soon(CLOSE_GOING_AWAY, "server stopping")
        if pages:
            await asyncio.wait([page.done for page in pages], timeout=SHUTDOWN_WAIT_S)
