"""The aiohttp application: routes of SPEC §3.2 with thin handlers.

Handlers only translate HTTP: data comes from a :class:`~cellucid.sources.base.DataSource`
(run in a thread pool, never on the event loop), events go to a
:class:`~cellucid.server.registry.ViewerRegistry`. Errors are JSON with proper status codes;
CORS and ``Cache-Control`` are added to every response in one place.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from aiohttp import web
from yarl import URL

from .._version import __version__
from ..session.bundle import SessionBundleReader
from ..sources.base import DatasetEntry, DataSource, FileBody, clean_relpath, inside
from ..storage.integrity import IncompleteStoreError
from . import embeddings
from .bundles import MAX_BUNDLE_BYTES, BundleUpload
from .commands import CommandHubs
from .compare import (
    CompareRequestError,
    CompareService,
    comparison_event,
    find_dataset,
    max_body_bytes,
    parse_body,
)
from .default_session import DefaultSessionError
from .default_session import answer as default_session_answer
from .files import send_file
from .obs_names import ObsNamesError
from .obs_names import answer as obs_names_answer
from .registry import EventRequestError, ViewerRegistry
from .viewers import MAX_BODY as MAX_VIEWERS_BODY
from .viewers import PageViewers

log = logging.getLogger("cellucid.server")

MAX_EVENT_BYTES = 256 * 1024 * 1024
BUNDLE_CHUNK = 64 * 1024
UI_FILES = ("favicon.ico", "site.webmanifest", "browserconfig.xml")
_ASSET_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".xml": "application/xml",
    ".wasm": "application/wasm",
}
CORS_HEADERS = {
    "Access-Control-Allow-Methods": "GET, HEAD, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Range",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range",
}
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]"}


def default_ui_dir() -> Path:
    """The viewer bundled in the package (built from ``js/`` at install time)."""
    return Path(str(resources.files("cellucid") / "static" / "viewer"))


@dataclass
class ServerConfig:
    """Everything the handlers need besides the request."""

    source: DataSource
    registry: ViewerRegistry = field(default_factory=ViewerRegistry)
    ui_dir: Path = field(default_factory=default_ui_dir)
    host: str = "127.0.0.1"
    port: int = 0
    max_event_bytes: int = MAX_EVENT_BYTES
    max_bundle_bytes: int = MAX_BUNDLE_BYTES
    allowed_hosts: frozenset[str] | None = None
    #: data reads (gene columns can be slow); kept apart so they never queue events or UI
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(4, thread_name_prefix="cellucid-data")
    )
    #: event bodies, uploads and viewer assets
    fast_executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="cellucid-events")
    )
    #: compare groups (``/_cellucid/compare``): opened genes, the job worker, latest results
    comparisons: CompareService | None = None
    #: credentials of pages opened without any (``/_cellucid/viewers``)
    page_viewers: PageViewers | None = None
    #: commands to pages in plain browser tabs (``/_cellucid/commands``)
    command_hubs: CommandHubs | None = None
    #: the ``session=`` file the server was given (``/_cellucid/default_session``)
    session: SessionBundleReader | None = None

    def __post_init__(self) -> None:
        if self.comparisons is None:
            self.comparisons = CompareService(self.source)
        if self.page_viewers is None:
            self.page_viewers = PageViewers(self.registry)
        if self.command_hubs is None:
            self.command_hubs = CommandHubs(self.registry)

    def shutdown(self) -> None:
        for pool in (self.executor, self.fast_executor):
            pool.shutdown(wait=False, cancel_futures=True)
        if self.comparisons is not None:
            self.comparisons.close()


CONFIG = web.AppKey("cellucid_config", ServerConfig)
#: bounds how many event bodies without query credentials are read at once
UNCHECKED_GATE = web.AppKey("cellucid_unchecked_gate", asyncio.Semaphore)


# --------------------------------------------------------------------------- helpers
def json_response(payload: Any, status: int = 200, **headers: str) -> web.Response:
    """JSON with ``Content-Type: application/json`` exactly (no charset; SPEC §3.1)."""
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    return web.Response(
        status=status,
        body=body,
        headers={"Content-Type": "application/json", **headers},
    )


def error_response(status: int, message: str, **headers: str) -> web.Response:
    return json_response({"status": "error", "message": message}, status, **headers)


def origin_allowed(origin: str) -> bool:
    """Loopback origins (any port) and cellucid.com over https (SPEC §3.7)."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    if parts.scheme in ("http", "https") and host in {"localhost", "127.0.0.1", "::1"}:
        return True
    return parts.scheme == "https" and (host == "cellucid.com" or host.endswith(".cellucid.com"))


def _host_ok(request: web.Request, config: ServerConfig) -> bool:
    """DNS-rebinding guard: off unless ``allowed_hosts`` is configured (SPEC §3.7)."""
    if config.allowed_hosts is None:
        return True
    try:
        host = (URL(f"http://{request.host}").host or "").lower()
    except ValueError:
        return False
    allowed = _LOOPBACK | {config.host.lower()} | {h.lower() for h in config.allowed_hosts}
    return host in allowed or f"[{host}]" in allowed


# --------------------------------------------------------------------------- middleware
@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every failure becomes a JSON error with a proper status; never a traceback."""
    config = request.app[CONFIG]
    if not _host_ok(request, config):
        return error_response(403, f"Host {request.host!r} is not allowed")
    if request.method == "OPTIONS":  # CORS preflight on any path (SPEC §3.2, §3.7)
        return web.Response(status=204)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
        return error_response(exc.status, exc.reason or "error", **headers)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except IncompleteStoreError as exc:  # a data file lost chunks: say which, never zeros
        log.error("%s %r: %s", request.method, request.path[:200], exc)
        return error_response(500, exc.public)
    except Exception:
        # one line for the console; the traceback only in the debug log (a malformed request
        # from anyone must not flood the terminal of the person running the server)
        exc = sys.exc_info()[1]
        log.error(
            "internal error for %s %r: %s", request.method, request.path[:200], type(exc).__name__
        )
        log.debug("traceback of that error", exc_info=True)
        return error_response(500, "internal server error")


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """CORS on every response; ``no-store`` on the API unless a handler chose otherwise."""
    response.headers.update(CORS_HEADERS)
    origin = request.headers.get("Origin")
    if origin and origin_allowed(origin):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers.add("Vary", "Origin")
        if request.headers.get("Access-Control-Request-Private-Network") == "true":
            response.headers["Access-Control-Allow-Private-Network"] = "true"
    if request.path.startswith("/_cellucid/") or response.status >= 400:
        response.headers.setdefault("Cache-Control", "no-store")


# --------------------------------------------------------------------------- discovery
# Plain functions: the routes below and the notebook widget's comm transport share them.
def health_body(config: ServerConfig) -> dict[str, Any]:
    """The ``/_cellucid/health`` payload (SPEC §3.3)."""
    body: dict[str, Any] = {"status": "ok", "type": config.source.kind, "version": __version__}
    if config.source.kind == "anndata":
        body.update(_anndata(config))
    return body


def _anndata(config: ServerConfig) -> dict[str, Any]:
    h = config.source.health()
    return {k: h[k] for k in ("format", "is_backed", "n_cells", "n_genes")}


def info_body(config: ServerConfig) -> dict[str, Any]:
    """The ``/_cellucid/info`` payload (SPEC §3.3)."""
    if config.source.kind == "exported":
        return {
            "version": __version__,
            "host": config.host,
            "port": config.port,
            "mode": "standalone",
        }
    h = _anndata(config)
    body = {
        "version": __version__,
        "type": "anndata",
        "format": h["format"],
        "host": config.host,
        "port": config.port,
        "n_cells": h["n_cells"],
        "n_genes": h["n_genes"],
        "is_backed": h["is_backed"],
    }
    status = getattr(config.source, "status", None)  # the column cache (PROTOCOL.md)
    if callable(status):
        body["column_cache"] = status()
    return body


def datasets_body(config: ServerConfig) -> dict[str, Any]:
    """The ``/_cellucid/datasets`` payload (SPEC §3.3)."""
    return {"datasets": [e.as_json() for e in config.source.datasets()]}


async def health(request: web.Request) -> web.Response:
    return json_response(health_body(request.app[CONFIG]))


async def info(request: web.Request) -> web.Response:
    return json_response(info_body(request.app[CONFIG]))


async def datasets(request: web.Request) -> web.Response:
    return json_response(datasets_body(request.app[CONFIG]))


# --------------------------------------------------------------------------- viewer UI
async def index(request: web.Request) -> web.StreamResponse:
    return await _ui_file(request, "index.html")


async def ui_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info.get("name")
    rel = f"assets/{request.match_info['tail']}" if name is None else name
    return await _ui_file(request, rel)


async def _ui_file(request: web.Request, rel: str) -> web.StreamResponse:
    config = request.app[CONFIG]
    clean = clean_relpath(rel)
    path = inside(config.ui_dir, clean) if clean else None
    if path is None:
        if rel == "index.html":
            return error_response(
                500, f"the viewer is missing from {config.ui_dir}; reinstall cellucid"
            )
        raise web.HTTPNotFound(reason="no such file")
    ctype = _ASSET_TYPES.get(path.suffix.lower(), "application/octet-stream")
    body = FileBody.from_path(path, ctype)
    return await send_file(request, body, cache_control="no-cache", executor=config.fast_executor)


# --------------------------------------------------------------------------- data files
def split_data_path(entries: list[DatasetEntry], path: str) -> tuple[DatasetEntry, str] | None:
    """Which dataset a URL path belongs to, and the file's path inside it."""
    for entry in entries:
        if entry.path == "/" or path.startswith(entry.path):
            return entry, path[len(entry.path) :]
    return None


def resolve_data_path(config: ServerConfig, path: str) -> tuple[DatasetEntry, str] | None:
    """The dataset and clean relative path of a decoded URL path (``/…``), or ``None``.

    Dot segments are refused (``None``); ``path`` must already be percent-decoded.
    """
    if any(s in (".", "..") for s in path.split("/")):
        return None
    found = split_data_path(config.source.datasets(), path)
    rel = clean_relpath(found[1]) if found else None
    if found is None or rel is None:
        return None
    return found[0], rel


def data_cache_control(body: FileBody, rel: str) -> str:
    """``Cache-Control`` of a data file: generated files and manifests are revalidated."""
    return "no-cache" if body.virtual or rel.endswith(".json") else "public, max-age=3600"


async def data_file(request: web.Request) -> web.StreamResponse:
    if request.method not in ("GET", "HEAD"):
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD", "OPTIONS"])
    config = request.app[CONFIG]
    raw = request.raw_path.split("?", 1)[0]
    if "%2f" in raw.lower() or "%5c" in raw.lower() or "%00" in raw:
        raise web.HTTPNotFound(reason="no such file")
    found = None if _has_dot_segment(raw) else resolve_data_path(config, request.path)
    if found is None:
        raise web.HTTPNotFound(reason="no such file")
    entry, rel = found
    loop = asyncio.get_running_loop()
    body = await loop.run_in_executor(config.executor, config.source.open, entry, rel)
    if body is None:
        raise web.HTTPNotFound(reason="no such file")
    cache = data_cache_control(body, rel)
    compressible = body.virtual and not rel.endswith(".gz")
    return await send_file(
        request, body, cache_control=cache, executor=config.executor, compressible=compressible
    )


def _has_dot_segment(raw_path: str) -> bool:
    segments = unquote(raw_path).split("/")
    return any(s in (".", "..") for s in segments)


# --------------------------------------------------------------------------- events
async def read_limited(request: web.Request, limit: int) -> bytes | web.Response:
    """The whole body, or the 411/413 response (SPEC §3.5 step 1)."""
    if request.content_length is None:
        return error_response(411, "Content-Length is required")
    if request.content_length > limit:
        return error_response(413, f"body of {request.content_length} bytes exceeds {limit}")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.content.iter_chunked(BUNDLE_CHUNK):
        total += len(chunk)
        if total > limit:
            return error_response(413, f"body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


MAX_EVENT_ID = 128


def event_id_of(query: Mapping[str, str]) -> str | None:
    """The optional ``eventId`` query parameter; ``ValueError`` when it is unreasonable."""
    event_id = query.get("eventId")
    if event_id is not None and not 0 < len(event_id) <= MAX_EVENT_ID:
        raise ValueError(f"eventId must have 1 to {MAX_EVENT_ID} characters")
    return event_id


#: the body of an event whose credentials are only inside it (the Cellucid web app's form)
#: is read under a budget: at most this size (a 40M-cell selection bitset fits), and at most
#: two such bodies at once, so strangers cannot make the server hold large amounts
MAX_UNCHECKED_EVENT_BYTES = 32 * 1024 * 1024
_UNCHECKED_READS = 2


async def events(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    query = request.query
    try:
        event_id = event_id_of(query)
    except ValueError as exc:
        return error_response(400, str(exc))
    if "viewerId" in query or "viewerToken" in query:  # checked before the body is read
        try:
            config.registry.authenticate(query.get("viewerId"), query.get("viewerToken"))
        except EventRequestError as exc:
            return json_response(exc.body, exc.status)
        body = await read_limited(request, config.max_event_bytes)
    else:
        gate = request.app[UNCHECKED_GATE]
        async with gate:
            body = await read_limited(
                request, min(MAX_UNCHECKED_EVENT_BYTES, config.max_event_bytes)
            )
    if isinstance(body, web.Response):
        return body
    loop = asyncio.get_running_loop()
    status, payload = await loop.run_in_executor(
        config.fast_executor, config.registry.handle_event_body, body, event_id
    )
    return json_response(payload, status)


async def session_bundle(request: web.Request) -> web.Response:
    """Receive a session bundle upload into a temporary file (SPEC §3.6)."""
    config = request.app[CONFIG]
    upload = BundleUpload(
        config.registry, request.query, request.content_length, max_bytes=config.max_bundle_bytes
    )
    loop = asyncio.get_running_loop()
    answer = upload.start()
    try:
        if answer is None:
            async for chunk in request.content.iter_chunked(BUNDLE_CHUNK):
                answer = upload.check(chunk)
                if answer is None:
                    answer = await loop.run_in_executor(config.fast_executor, upload.store, chunk)
                if answer is not None:
                    break
        if answer is None:
            answer = await loop.run_in_executor(config.fast_executor, upload.finish)
    finally:
        if answer is None:  # the client went away (or the server stops)
            upload.abort()
    return json_response(answer[1], answer[0])


# --------------------------------------------------------------------------- extensions
async def page_viewer(request: web.Request) -> web.Response:
    """Credentials for a page opened without any (PROTOCOL.md)."""
    config = request.app[CONFIG]
    body = await read_limited(request, MAX_VIEWERS_BODY) if request.content_length else b""
    if isinstance(body, web.Response):
        return body
    assert config.page_viewers is not None
    return json_response(config.page_viewers.mint())


async def compare(request: web.Request) -> web.StreamResponse:
    """Compare two groups of cells; the answer streams as NDJSON (PROTOCOL.md)."""
    config = request.app[CONFIG]
    service = config.comparisons
    assert service is not None
    query = request.query
    try:  # credentials before the body is read
        channel = config.registry.authenticate(query.get("viewerId"), query.get("viewerToken"))
    except EventRequestError as exc:
        return json_response(exc.body, exc.status)
    loop = asyncio.get_running_loop()
    try:
        entry = find_dataset(config.source, query.get("dataset"))
        expr = await loop.run_in_executor(config.executor, service.expression, entry)
        body = await read_limited(request, max_body_bytes(expr.n_cells))
        if isinstance(body, web.Response):
            return body
        job = parse_body(body, expr.n_cells)
        groups = service.groups(job, expr.n_cells)
    except CompareRequestError as exc:
        return error_response(exc.status, exc.message)
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    lines: asyncio.Queue[bytes | None] = asyncio.Queue()
    cancel = threading.Event()

    def emit(data: bytes) -> None:
        loop.call_soon_threadsafe(lines.put_nowait, data)

    def run() -> Any:
        try:
            return service.run(channel.viewer_id, job, expr, groups, emit, cancel)
        finally:
            loop.call_soon_threadsafe(lines.put_nowait, None)

    future = loop.run_in_executor(service.executor, run)
    try:
        while (data := await lines.get()) is not None:
            await response.write(data)
    except BaseException:  # the client went away (or the server stops): stop computing
        cancel.set()
        raise
    stored = await future
    if stored is not None:
        await loop.run_in_executor(
            config.fast_executor,
            config.registry.deliver_server_event,
            channel.viewer_id,
            comparison_event(stored),
        )
    await response.write_eof()
    return response


async def commands(request: web.Request) -> web.StreamResponse:
    """The command channel of a page in a plain tab: a WebSocket (PROTOCOL.md)."""
    config = request.app[CONFIG]
    assert config.command_hubs is not None
    query = request.query
    try:  # credentials before the upgrade
        channel = config.registry.authenticate(query.get("viewerId"), query.get("viewerToken"))
    except EventRequestError as exc:
        return json_response(exc.body, exc.status)
    if not web.WebSocketResponse().can_prepare(request).ok:
        return error_response(400, "_cellucid/commands is a WebSocket: send an Upgrade request")
    return await config.command_hubs.serve(channel.viewer_id, request)


async def _close_command_pages(app: web.Application) -> None:
    hubs = app[CONFIG].command_hubs
    if hubs is not None:
        await hubs.shutdown()


async def obs_names(request: web.Request) -> web.Response:
    """A block of cell names for the hover tooltip, binary (PROTOCOL.md); no credentials:
    the names are public data of the dataset, like its files."""
    config = request.app[CONFIG]
    loop = asyncio.get_running_loop()
    try:
        body = await loop.run_in_executor(
            config.executor, obs_names_answer, config.source, request.query
        )
    except ObsNamesError as exc:
        return error_response(exc.status, exc.message)
    return web.Response(body=body, headers={"Content-Type": "application/octet-stream"})


async def default_session(request: web.Request) -> web.Response:
    """The session a viewer opens with a dataset (PROTOCOL.md "Default session"): the bundle,
    or 204 when there is none."""
    config = request.app[CONFIG]
    loop = asyncio.get_running_loop()
    try:
        body = await loop.run_in_executor(
            config.executor, default_session_answer, config.source, request.query, config.session
        )
    except DefaultSessionError as exc:
        return error_response(exc.status, exc.message)
    if body is None:
        return web.Response(status=204)
    return web.Response(body=body, headers={"Content-Type": "application/octet-stream"})


# --------------------------------------------------------------------------- app
def create_app(config: ServerConfig) -> web.Application:
    """Build the application for one data source."""
    app = web.Application(
        middlewares=[errors_middleware],
        client_max_size=max(config.max_event_bytes, config.max_bundle_bytes) + 1024,
    )
    app[CONFIG] = config
    app[UNCHECKED_GATE] = asyncio.Semaphore(_UNCHECKED_READS)
    app.on_response_prepare.append(_on_prepare)
    app.on_shutdown.append(_close_command_pages)
    r = app.router
    for path in ("/", "/index.html"):
        r.add_get(path, index)
    r.add_get("/assets/{tail:.+}", ui_asset)
    for name in UI_FILES:
        r.add_get(f"/{{name:{name.replace('.', '[.]')}}}", ui_asset)
    r.add_get("/_cellucid/health", health)
    r.add_get("/_cellucid/info", info)
    r.add_get("/_cellucid/datasets", datasets)
    r.add_post("/_cellucid/events", events)
    r.add_post("/_cellucid/session_bundle", session_bundle)
    r.add_post("/_cellucid/compare", compare)
    r.add_get("/_cellucid/embeddings", embeddings.listing)
    r.add_get("/_cellucid/embedding", embeddings.points)
    r.add_post("/_cellucid/viewers", page_viewer)
    r.add_get("/_cellucid/commands", commands)
    r.add_get("/_cellucid/obs_names", obs_names)
    r.add_get("/_cellucid/default_session", default_session)
    r.add_route("*", "/_cellucid/{tail:.*}", _unknown_api)
    r.add_route("*", "/{tail:.*}", data_file)
    return app


API_METHODS = {
    "/_cellucid/health": ["GET", "HEAD", "OPTIONS"],
    "/_cellucid/info": ["GET", "HEAD", "OPTIONS"],
    "/_cellucid/datasets": ["GET", "HEAD", "OPTIONS"],
    "/_cellucid/events": ["POST", "OPTIONS"],
    "/_cellucid/session_bundle": ["POST", "OPTIONS"],
    "/_cellucid/compare": ["POST", "OPTIONS"],
    "/_cellucid/embeddings": ["GET", "HEAD", "OPTIONS"],
    "/_cellucid/embedding": ["GET", "HEAD", "OPTIONS"],
    "/_cellucid/viewers": ["POST", "OPTIONS"],
    "/_cellucid/commands": ["GET", "HEAD", "OPTIONS"],
    "/_cellucid/obs_names": ["GET", "HEAD", "OPTIONS"],
    "/_cellucid/default_session": ["GET", "HEAD", "OPTIONS"],
}


async def _unknown_api(request: web.Request) -> web.Response:
    allowed = API_METHODS.get(request.path)
    if allowed is not None:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound(reason="unknown endpoint under /_cellucid/")
