"""Running the server: in a background thread (notebooks) or in the foreground (the shell).

The listening socket is bound once and handed to aiohttp, so the port printed is the port
served (no check-then-bind race). A busy port moves to the next free one (SPEC §6.8).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import sys
import threading
import warnings
import webbrowser
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .._signals import interrupt_on_signals
from .._version import __version__
from ..sources.base import DataSource
from .app import ServerConfig, create_app
from .registry import ViewerRegistry

if TYPE_CHECKING:
    from anndata import AnnData
    from typing_extensions import Unpack

    from ..sources.anndata import AnnDataAdapter
    from ..sources.options import AnnDataOptions

DEFAULT_PORT = 8765
PORT_TRIES = 101  # the requested port and the next 100
_WILDCARD = {"", "0.0.0.0", "::", "*"}


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``: ``port`` if free, else the next free one up to +100.

    ``port=0`` lets the OS choose. Raises ``RuntimeError`` when nothing in range binds.
    """
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    bind_host = host.strip("[]") or ("::" if family == socket.AF_INET6 else "0.0.0.0")
    candidates = [0] if port == 0 else range(port, min(port + PORT_TRIES, 65536))
    last: OSError | None = None
    for p in candidates:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((bind_host, p))
            sock.listen(128)
            sock.setblocking(False)
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
            last = exc
    raise RuntimeError(
        f"no free port on {host} from {port} to {port + PORT_TRIES - 1} ({last}); "
        "pass another port, or port=0 to let the system choose"
    )


def ensure_port_available(host: str, port: int, quiet: bool = False) -> int:
    """The first free port from ``port`` (up to +100) on ``host`` (upstream's helper).

    Nothing stays bound: a server started on the returned port may still find it taken
    by then, which it handles by moving on itself.
    """
    sock = bind_socket(host, port)
    try:
        free = int(sock.getsockname()[1])
    finally:
        sock.close()
    if free != port and not quiet:
        print(f"cellucid: port {port} is busy; using {free}", file=sys.stderr)
    return free


def client_host(host: str) -> str:
    """The host to put in a URL: loopback for a wildcard bind, brackets for IPv6."""
    h = host.strip("[]")
    if h in _WILDCARD:
        return "[::1]" if h == "::" else "127.0.0.1"
    return f"[{h}]" if ":" in h else h


class _BaseServer:
    """A data source served over HTTP, with its viewer registry."""

    _viewer_query = ""

    def __init__(
        self,
        source: DataSource,
        port: int | None = DEFAULT_PORT,
        host: str = "127.0.0.1",
        open_browser: bool = False,
        quiet: bool = False,
        *,
        ui_dir: Path | None = None,
        session: str | Path | None = None,
    ) -> None:
        from ..session.defaults import read_user_session

        #: the ``session=`` file (checked now), answered by ``/_cellucid/default_session``
        self.session = None if session is None else read_user_session(session)
        self.source = source
        self.host = host
        self.requested_port = DEFAULT_PORT if port is None else int(port)
        self.open_browser = open_browser
        self.quiet = quiet
        self.registry = ViewerRegistry()
        self._ui_dir = ui_dir
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._sock: socket.socket | None = None
        self._port: int | None = None
        self._stopped = False
        #: what the handlers use (source, registry, executors); set when serving starts
        self.config: ServerConfig | None = None

    # ----- public state
    @property
    def port(self) -> int:
        """The port actually bound (the requested one until the server starts)."""
        return self._port if self._port is not None else self.requested_port

    @property
    def url(self) -> str:
        return f"http://{client_host(self.host)}:{self.port}"

    @property
    def viewer_url(self) -> str:
        return f"{self.url}/{self._viewer_query}"

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._started.is_set()

    @property
    def server_info(self) -> dict[str, Any]:
        return {"version": __version__, "host": self.host, "port": self.port, "url": self.url}

    # ----- lifecycle
    def start_background(self) -> _BaseServer:
        """Start serving in a daemon thread and return once the socket is bound."""
        if not self.is_running():
            self._serve()
            self._announce()
        return self

    def _serve(self) -> None:
        """Bind the socket and start the server thread."""
        if self._stopped:
            raise RuntimeError("this server was stopped; create a new one")
        self._sock = bind_socket(self.host, self.requested_port)
        self._port = self._sock.getsockname()[1]
        self.config = ServerConfig(
            source=self.source, registry=self.registry, host=self.host, port=self._port
        )
        self.config.session = self.session
        if self._ui_dir is not None:
            self.config.ui_dir = self._ui_dir
        if self.host.strip("[]") not in ("127.0.0.1", "localhost", "::1"):
            warnings.warn(
                f"serving on {self.host}: anyone who can reach this machine can read the data",
                stacklevel=2,
            )
        self._thread = threading.Thread(
            target=self._run, name=f"cellucid-server-{self._port}", daemon=True
        )
        self._thread.start()
        self._started.wait(30)
        if self._error is not None:
            raise RuntimeError(f"server failed to start: {self._error}") from self._error

    def _announce(self) -> None:
        """Print the URLs and open the browser: the data is ready."""
        self._banner()
        if self.open_browser:
            webbrowser.open(self.viewer_url)

    def start(self, blocking: bool = True) -> _BaseServer | None:
        """Serve; with ``blocking=True`` until Ctrl+C (then return None), else in the background."""
        if not blocking:
            return self.start_background()
        restore = interrupt_on_signals()
        try:
            self.start_background()  # an AnnData server waits for its dataset here
            self.wait()
        except KeyboardInterrupt:
            if not self.quiet:
                print("\ncellucid: stopping", file=sys.stderr)
        finally:
            self.stop()
            restore()
        return None

    def wait(self, timeout: float | None = None) -> None:
        """Block until the server stops (wakes up regularly so Ctrl+C gets through)."""
        thread = self._thread
        while thread is not None and thread.is_alive():
            thread.join(0.25 if timeout is None else min(0.25, timeout))
            if timeout is not None:
                timeout -= 0.25
                if timeout <= 0:
                    return

    def stop(self) -> None:
        """Stop serving, free the port and release the data source (idempotent)."""
        self._stopped = True
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self.source.close()

    def __enter__(self) -> _BaseServer:
        return self.start_background()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        status = "running" if self.is_running() else "stopped"
        return f"{type(self).__name__}(port={self.port}, status={status})"

    # ----- the server thread
    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start_background
            self._error = exc
            self._started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        config = self.config
        assert config is not None
        runner = web.AppRunner(
            create_app(config), access_log=None, handle_signals=False, shutdown_timeout=2.0
        )
        await runner.setup()
        try:
            assert self._sock is not None
            await web.SockSite(runner, self._sock).start()
            self._started.set()
            await self._stop_event.wait()
        finally:
            await runner.cleanup()
            config.shutdown()

    def _banner(self) -> None:
        if self.quiet:
            return
        lines = [
            f"cellucid v{__version__}",
            f"  Local URL:  {self.url}/",
            f"  Viewer URL: {self.viewer_url}",
        ]
        if self.host.strip("[]") in _WILDCARD:
            lines.append(f"  Warning: bound to {self.host}: reachable from other machines")
        if self.port != self.requested_port and self.requested_port != 0:
            lines.append(f"  (port {self.requested_port} was busy; using {self.port})")
        print("\n".join(lines), file=sys.stderr, flush=True)


class CellucidServer(_BaseServer):
    """Serve an export folder, or a folder of exports, over HTTP (SPEC §6.4).

    ``session`` is a ``.cellucid-session`` file the viewer opens with the dataset it belongs to,
    instead of a default session placed with the export (PROTOCOL.md "Default session").

    Examples
    --------
    >>> with CellucidServer("exports/pbmc68k", port=0, quiet=True) as server:  # doctest: +SKIP
    ...     print(server.url)
    http://127.0.0.1:40123
    """

    def __init__(
        self,
        data_dir: str | Path,
        port: int | None = DEFAULT_PORT,
        host: str = "127.0.0.1",
        open_browser: bool = False,
        quiet: bool = False,
        *,
        storage_options: dict[str, Any] | None = None,
        session: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        from ..sources.export_folder import ExportFolderSource, RemoteExportSource
        from ..storage.stores import is_url

        source: ExportFolderSource | RemoteExportSource
        if is_url(data_dir):  # object storage: s3://bucket/exports/...
            self.data_dir: Path | str = str(data_dir)
            source = RemoteExportSource(str(data_dir), storage_options)
        else:
            self.data_dir = Path(data_dir)
            source = ExportFolderSource(data_dir)
        super().__init__(source, port, host, open_browser, quiet, session=session, **kwargs)

    def __repr__(self) -> str:
        status = "running" if self.is_running() else "stopped"
        return f"CellucidServer('{self.data_dir}', port={self.port}, status={status})"


class AnnDataServer(_BaseServer):
    """Serve an AnnData (in memory, ``.h5ad`` or ``.zarr``, local or at an fsspec URL) as
    virtual export files (SPEC §6.5).

    ``adapter_kwargs`` are the :class:`~cellucid.sources.options.AnnDataOptions`
    (``backed``, ``layer``, ``embedding``, ``latent_key``, ``obs_keys``, ``dataset_name``,
    ``storage_options`` for URLs, ...); a misspelt one raises ``TypeError`` naming the closest. ``session`` is a ``.cellucid-session`` file the viewer opens with the data,
    merged with the AnnData's scanpy colours (PROTOCOL.md "Default session"). A path is read
    on a background thread
    (:class:`~cellucid.sources.deferred.DeferredAnnData`): the server answers health at once;
    :meth:`start_background` returns when the dataset is ready (``wait=False``: at once) and
    raises what made reading it fail.
    """

    _viewer_query = "?anndata=true"

    def __init__(
        self,
        data: AnnData | str | Path,
        port: int | None = DEFAULT_PORT,
        host: str = "127.0.0.1",
        open_browser: bool = False,
        quiet: bool = False,
        *,
        ui_dir: Path | None = None,
        session: str | Path | None = None,
        **adapter_kwargs: Unpack[AnnDataOptions],
    ) -> None:
        from ..sources.deferred import DeferredAnnData
        from ..sources.options import check_options

        check_options(adapter_kwargs)

        source: AnnDataAdapter | DeferredAnnData
        if isinstance(data, (str, Path)):  # read once the server listens
            source = DeferredAnnData(data, **adapter_kwargs)
        else:
            from ..sources.anndata import AnnDataAdapter

            options: dict[str, Any] = dict(adapter_kwargs)
            options.pop("backed", None)  # an AnnData object is used as it is
            source = AnnDataAdapter(data, **options)
        super().__init__(source, port, host, open_browser, quiet, ui_dir=ui_dir, session=session)

    @property
    def adapter(self) -> AnnDataAdapter:
        """The data source (waits until a file has been read)."""
        source = self.source
        return source.wait() if hasattr(source, "wait") else source  # type: ignore[return-value]

    def start_background(self, wait: bool = True) -> AnnDataServer:
        """Serve in a daemon thread; with ``wait`` return once the dataset is ready (health
        answers meanwhile), stopping the server and raising if reading it failed."""
        if self.is_running():
            return self
        self._serve()
        if hasattr(self.source, "start"):  # reading a file starts once the server listens
            self.source.start()
        if wait and hasattr(self.source, "wait"):
            try:
                self.source.wait()
            except BaseException:
                self.stop()
                raise
        self._announce()
        return self


def serve(
    data_dir: str | Path,
    port: int = DEFAULT_PORT,
    host: str = "127.0.0.1",
    open_browser: bool = True,
    quiet: bool = False,
    *,
    blocking: bool = True,
    storage_options: dict[str, Any] | None = None,
    session: str | Path | None = None,
) -> CellucidServer | None:
    """Serve an export folder (a path, or a URL in object storage with its fsspec
    ``storage_options``). Blocks until Ctrl+C and returns None, or with ``blocking=False``
    returns the running :class:`CellucidServer`. ``session``: a ``.cellucid-session`` file the
    viewer opens with its dataset (instead of a default session placed with the export)."""
    server = CellucidServer(
        data_dir, port, host, open_browser, quiet, storage_options=storage_options, session=session
    )
    result = server.start(blocking=blocking)
    return server if result is not None else None


def serve_anndata(
    data: AnnData | str | Path,
    port: int = DEFAULT_PORT,
    host: str = "127.0.0.1",
    open_browser: bool = True,
    quiet: bool = False,
    *,
    blocking: bool = True,
    session: str | Path | None = None,
    **adapter_kwargs: Unpack[AnnDataOptions],
) -> AnnDataServer | None:
    """Serve an AnnData or an ``.h5ad``/``.zarr`` path; like :func:`serve`. ``session``: a
    ``.cellucid-session`` file the viewer opens with the data, merged with the AnnData's scanpy
    colours. ``adapter_kwargs``: the :class:`~cellucid.sources.options.AnnDataOptions`."""
    server = AnnDataServer(data, port, host, open_browser, quiet, session=session, **adapter_kwargs)
    result = server.start(blocking=blocking)
    return server if result is not None else None
