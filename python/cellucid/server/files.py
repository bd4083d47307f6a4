"""Sending a data file: validators, a single byte range, HEAD, and optional transport gzip.

One function for files on disk and virtual files alike. ``.gz`` files are sent as the raw
bytes they are, never with ``Content-Encoding`` (SPEC §2.3, §3.4); transport compression
is applied only to virtual non-``.gz`` files and JSON, and never to range responses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import threading
from collections import OrderedDict
from concurrent.futures import Executor
from email.utils import formatdate, parsedate_to_datetime

from aiohttp import web

from ..export.binary import gzip_bytes
from ..sources.base import FileBody

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 1024 * 1024
#: gzip level for transport compression: cheap, and still 5-10x on sparse expression columns
TRANSPORT_GZIP_LEVEL = 1
MIN_COMPRESS = 1024


def _parse_range(header: str, size: int) -> tuple[int, int] | bool | None:
    """``(start, end_exclusive)`` for one satisfiable range, ``None`` to ignore the header
    (malformed or several ranges), ``False`` when unsatisfiable."""
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if first:
        start = int(first)
        end = min(int(last) + 1, size) if last else size
        if last and int(last) < start:
            return None
    else:  # suffix range: the last N bytes
        n = int(last)
        if n == 0:
            return False
        start, end = max(size - n, 0), size
    if start >= size:
        return False
    return start, end


def accepts_gzip(header: str) -> bool:
    """Whether an ``Accept-Encoding`` header accepts gzip (a ``q=0`` refuses it)."""
    accepted = False
    for item in header.lower().split(","):
        name, _, params = item.strip().partition(";")
        if name.strip() not in ("gzip", "*"):
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if name.strip() == "gzip":
            return q > 0
        accepted = q > 0  # "*" applies unless gzip is named
    return accepted


def _not_modified(request: web.Request, body: FileBody) -> bool:
    inm = request.headers.get("If-None-Match")
    if inm is not None:
        return any(tag.strip() in (body.etag, "*", f"W/{body.etag}") for tag in inm.split(","))
    ims = request.headers.get("If-Modified-Since")
    if ims and body.last_modified is not None:
        try:
            return int(body.last_modified) <= parsedate_to_datetime(ims).timestamp()
        except (TypeError, ValueError):
            return False
    return False


class _GzipCache:
    """Transport-gzipped bodies by ETag (a generated body's ETag changes with its bytes),
    least recently used dropped past ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            if key in self._items or len(data) > self.max_bytes:
                return
            self._items[key] = data
            self._size += len(data)
            while self._size > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._size -= len(old)


_GZIPPED = _GzipCache(256 * 1024**2)


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.strip().split("%")[0]).is_loopback
    except ValueError:
        return False


def is_loopback(request: web.Request) -> bool:
    """Whether the client is on this machine (127.0.0.0/8, ::1): compressing for it costs
    more CPU than the bytes it saves. A proxy on this machine that names a remote client in
    ``X-Forwarded-For`` (a notebook proxy for a remote browser) does not count: that client
    gets compressed bytes. (The header only decides compression, nothing else.)"""
    if not _loopback(request.remote or ""):
        return False
    forwarded = request.headers.get("X-Forwarded-For")
    return forwarded is None or all(_loopback(a) for a in forwarded.split(","))


async def send_file(
    request: web.Request,
    body: FileBody,
    *,
    cache_control: str,
    executor: Executor | None = None,
    compressible: bool = False,
) -> web.StreamResponse:
    """Answer a GET or HEAD for ``body``."""
    loop = asyncio.get_running_loop()
    headers = {
        "Content-Type": body.content_type,
        "Cache-Control": cache_control,
        "ETag": body.etag,
        "Accept-Ranges": "bytes",
    }
    if body.last_modified is not None:
        headers["Last-Modified"] = formatdate(body.last_modified, usegmt=True)
    if _not_modified(request, body):
        return web.Response(status=304, headers=headers)

    start, end, status = 0, body.size, 200
    range_header = request.headers.get("Range")
    if range_header is not None:
        parsed = _parse_range(range_header, body.size)
        if parsed is False:
            message = b'{"status":"error","message":"range not satisfiable"}'
            headers.update(
                {
                    "Content-Range": f"bytes */{body.size}",
                    "Content-Type": "application/json",
                    "Content-Length": str(len(message)),
                }
            )
            if request.method == "HEAD":
                return web.Response(status=416, headers=headers)
            return web.Response(status=416, body=message, headers=headers)
        if parsed:
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{body.size}"

    gzip_ok = (
        compressible
        and not is_loopback(request)
        and status == 200
        and body.size >= MIN_COMPRESS
        and accepts_gzip(request.headers.get("Accept-Encoding", ""))
    )
    if compressible:
        headers["Vary"] = "Accept-Encoding"
    if gzip_ok:
        data = _GZIPPED.get(body.etag)
        if data is None:  # compressed once per body, then kept
            read = body.view or body.read
            raw = await loop.run_in_executor(executor, read, 0, body.size)
            data = await loop.run_in_executor(executor, gzip_bytes, raw, TRANSPORT_GZIP_LEVEL)
            _GZIPPED.put(body.etag, data)
        headers["Content-Encoding"] = "gzip"
        if request.method == "HEAD":  # HEAD carries exactly the headers GET would send
            headers["Content-Length"] = str(len(data))
            return web.Response(status=200, headers=headers)
        return web.Response(status=200, body=data, headers=headers)

    length = end - start
    if request.method == "HEAD":
        headers["Content-Length"] = str(length)
        return web.Response(status=status, headers=headers)
    if body.view is not None:  # already in memory: views of it, no copy, no thread hop
        if length <= CHUNK:
            return web.Response(status=status, body=body.view(start, length), headers=headers)
        # written a CHUNK at a time: asyncio (3.11) buffers what a write does not send at once
        # in one bytearray and moves the rest forward after every send, which for an 80 MB
        # body (10M cells' points) costs several times the transfer itself
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = length
        await response.prepare(request)
        for offset in range(start, end, CHUNK):
            await response.write(body.view(offset, min(CHUNK, end - offset)))
        await response.write_eof()
        return response
    if body.virtual:
        return web.Response(status=status, body=body.read(start, length), headers=headers)
    if length <= CHUNK:
        data = await loop.run_in_executor(executor, body.read, start, length)
        return web.Response(status=status, body=data, headers=headers)
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = length
    await response.prepare(request)
    offset = start
    while offset < end:
        n = min(CHUNK, end - offset)
        chunk = await loop.run_in_executor(executor, body.read, offset, n)
        if not chunk:
            break
        await response.write(chunk)
        offset += len(chunk)
    await response.write_eof()
    return response
