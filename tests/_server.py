"""Helpers for the HTTP server tests: a real server on an OS-chosen port, and a client that
sends exactly the bytes it is given.

The server tests talk to a real socket with :mod:`http.client` (or a raw socket) rather than
an HTTP library that normalises URLs: ``/obs/../x`` must reach the server as written, and
HEAD responses must be checked for stray body bytes. Nothing here imports the exporter.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import http.client
import json
import socket
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from cellucid.server.app import ServerConfig, create_app

#: headers that legitimately differ between two responses to the same request
VOLATILE_HEADERS = frozenset({"date"})
#: CORS headers SPEC §3.7 requires on every response
ALWAYS_CORS = {
    "Access-Control-Allow-Methods": "GET, HEAD, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Range",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range",
}


@dataclass
class Response:
    """One HTTP response: status, headers (multi-valued, case-insensitive) and raw body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The value of ``name`` (the values joined with ``, `` when it occurs twice)."""
        values = self.all(name)
        return ", ".join(values) if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def header_names(self) -> set[str]:
        return {k.lower() for k, _ in self.headers}

    def comparable_headers(self) -> dict[str, list[str]]:
        """Headers as a dict of lower-case name -> values, without ``Date``."""
        out: dict[str, list[str]] = {}
        for k, v in self.headers:
            if k.lower() not in VOLATILE_HEADERS:
                out.setdefault(k.lower(), []).append(v)
        return out

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self) -> str:
        return f"Response({self.status}, {self.headers!r}, {self.body[:120]!r})"


def request(
    port: int,
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes | Iterable[bytes] | None = None,
    *,
    timeout: float = 30.0,
) -> Response:
    """Send one request with :mod:`http.client` (no URL normalisation, no decompression).

    ``http.client`` adds ``Accept-Encoding: identity`` unless ``headers`` names one, a
    ``Content-Length`` for a bytes body, and ``Transfer-Encoding: chunked`` (no length) for
    an iterable body.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, list(resp.getheaders()), data)
    finally:
        conn.close()


def get(port: int, target: str, **headers: str) -> Response:
    return request(port, "GET", target, {k.replace("_", "-"): v for k, v in headers.items()})


def raw_request(port: int, data: bytes, *, timeout: float = 30.0) -> Response:
    """Write ``data`` as is on a fresh connection and read until the server closes it.

    The request should carry ``Connection: close``. The body is everything after the
    header block, so a HEAD response that leaks body bytes shows them here.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return Response(status, headers, body)


def raw_get(port: int, target: str, method: str = "GET", **headers: str) -> Response:
    """A request whose target is sent byte for byte (``..``, ``%2e``, backslashes …)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return raw_request(port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))


def gunzip_one_member(data: bytes) -> bytes:
    """Decompress ``data``, asserting it is exactly one complete gzip member (SPEC §2.3)."""
    assert data[:3] == b"\x1f\x8b\x08", f"not a gzip member: {data[:10]!r}"
    d = zlib.decompressobj(wbits=31)
    out = d.decompress(data)
    assert d.eof, "truncated gzip member"
    assert d.unused_data == b"", "bytes after the first gzip member"
    assert gzip.decompress(data) == out
    return out


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``port`` can be bound (and listened on) right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(1)
        except OSError:
            return False
    return True


def wait_port_free(port: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_is_free(port):
            return True
        time.sleep(0.05)
    return port_is_free(port)


class AppServer:
    """``create_app(config)`` served on ``127.0.0.1:<OS port>`` from a background thread.

    This is the application under test without :mod:`cellucid.server.runner`, so each test
    can choose its own :class:`ServerConfig` (small limits, ``allowed_hosts`` …).
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="test-app-server", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._runner = web.AppRunner(create_app(self.config), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def __enter__(self) -> AppServer:
        self._thread.start()
        assert self._ready.wait(30), "test server did not start"
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
            with contextlib.suppress(Exception):
                fut.result(15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(15)
        self.config.executor.shutdown(wait=False, cancel_futures=True)

    # convenience wrappers
    def get(self, target: str, **headers: str) -> Response:
        return get(self.port, target, **headers)

    def head(self, target: str, **headers: str) -> Response:
        return raw_get(self.port, target, "HEAD", **headers)

    def request(self, method: str, target: str, headers=None, body=None) -> Response:
        return request(self.port, method, target, headers, body)

    def raw(self, target: str, method: str = "GET", **headers: str) -> Response:
        return raw_get(self.port, target, method, **headers)


@contextlib.contextmanager
def serving(source: Any, **config: Any) -> Iterator[AppServer]:
    """Serve ``source`` with a fresh :class:`ServerConfig` (``config`` overrides fields)."""
    with AppServer(ServerConfig(source=source, **config)) as server:
        yield server


def assert_json_response(resp: Response, status: int = 200) -> Any:
    """SPEC §3.1: exact ``application/json``, a correct ``Content-Length``, UTF-8 JSON."""
    assert resp.status == status, resp
    assert resp.all("Content-Type") == ["application/json"], resp
    assert resp.header("Content-Length") == str(len(resp.body)), resp
    return resp.json()


def assert_error(resp: Response, status: int) -> str:
    """A JSON error of SPEC §3.1: ``{"status": "error", "message": <text>}``."""
    body = assert_json_response(resp, status)
    assert set(body) == {"status", "message"}, body
    assert body["status"] == "error"
    assert isinstance(body["message"], str) and body["message"].strip()
    assert "Traceback" not in body["message"]
    return body["message"]


def assert_head_matches(server_port: int, target: str, get_resp: Response, **headers: str) -> None:
    """HEAD gives the status and headers GET gave, and no body bytes (SPEC §3.1, §3.4)."""
    head = raw_get(server_port, target, "HEAD", **headers)
    assert head.status == get_resp.status, (target, head, get_resp)
    assert head.body == b"", f"HEAD {target} sent a body: {head.body[:80]!r}"
    g = get_resp.comparable_headers()
    h = head.comparable_headers()
    g.pop("connection", None)
    h.pop("connection", None)
    assert h == g, f"HEAD {target}: headers differ\n GET:  {g}\n HEAD: {h}"
