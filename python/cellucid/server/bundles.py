"""Receiving a session-bundle upload (SPEC §3.6), whatever carries it.

``POST /_cellucid/session_bundle`` streams the body in chunks; the notebook widget's comm
transport delivers the same request in parts. Both feed a :class:`BundleUpload`, which
checks the credentials and the pending request, writes a temporary
``cellucid-session-*.cellucid-session`` file and routes the ``session_bundle`` event (or
its error event) to the viewer.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from ..session.bundle import remove_at_exit
from .registry import EventRequestError, ViewerRegistry, error_body

BUNDLE_MAGIC = b"CELLUCID_SESSION\n"
MAX_BUNDLE_BYTES = 512 * 1024 * 1024

Answer = tuple[int, dict[str, Any]]


class BundleUpload:
    """One upload: :meth:`start`, then :meth:`write` per chunk, then :meth:`finish`.

    Each step returns ``None`` to go on, or the final ``(status, json body)``; after a
    final answer the temporary file is gone (unless it was a success) and nothing else
    may be called. :meth:`abort` cleans up an upload that stopped half way.

    Examples
    --------
    >>> from cellucid.server.channel import ViewerChannel
    >>> registry = ViewerRegistry()
    >>> channel = ViewerChannel("v1", "t1")
    >>> registry.add(channel)
    >>> registry.pending.register("v1", "r1", ttl=60)
    >>> body = BUNDLE_MAGIC + b"{}"
    >>> upload = BundleUpload(registry, {"viewerId": "v1", "viewerToken": "t1",
    ...                                  "requestId": "r1"}, len(body))
    >>> upload.start() is None, upload.write(body) is None
    (True, True)
    >>> status, answer = upload.finish()
    >>> status, answer
    (200, {'status': 'ok', 'bytes': 19})
    >>> Path(channel.state.last_event["path"]).unlink()
    >>> channel.close()
    """

    def __init__(
        self,
        registry: ViewerRegistry,
        query: Mapping[str, str],
        length: int | None,
        *,
        max_bytes: int = MAX_BUNDLE_BYTES,
    ) -> None:
        self.registry = registry
        self.viewer_id = query.get("viewerId")
        self.token = query.get("viewerToken")
        self.request_id = query.get("requestId")
        self.length = length
        self.max_bytes = max_bytes
        self.received = 0
        self._head = b""
        self._file: IO[bytes] | None = None
        self._path: str | None = None

    def start(self) -> Answer | None:
        """Check the request (steps 1-3 of SPEC §3.6) and open the temporary file."""
        if not self.viewer_id or not self.token or not self.request_id:
            return 400, error_body("viewerId, viewerToken and requestId are required")
        try:
            self.registry.authenticate(self.viewer_id, self.token)
        except EventRequestError as exc:
            return exc.status, exc.body
        if not self.registry.pending.consume(self.viewer_id, self.request_id):
            return 404, error_body("no pending session bundle request with this id")
        if self.length is None or self.length <= 0:
            return self._fail(411, "Content-Length is required")
        if self.length > self.max_bytes:
            return self._fail(413, f"bundle of {self.length} bytes is too large")
        try:
            fd, self._path = tempfile.mkstemp(
                prefix="cellucid-session-", suffix=".cellucid-session"
            )
            self._file = os.fdopen(fd, "wb")
            remove_at_exit(self._path)  # also when no Python caller ever opens it
        except OSError as exc:
            return self._fail(500, f"could not store bundle: {exc}")
        return None

    def check(self, chunk: bytes) -> Answer | None:
        """Validate the next chunk (magic, size) before it is written."""
        if len(self._head) < len(BUNDLE_MAGIC):
            self._head += chunk[: len(BUNDLE_MAGIC) - len(self._head)]
            if not BUNDLE_MAGIC.startswith(self._head):
                return self._fail(400, "not a .cellucid-session file")
        self.received += len(chunk)
        if self.received > self.max_bytes:
            return self._fail(413, "bundle too large")
        return None

    def write(self, chunk: bytes) -> Answer | None:
        """Check and write one chunk (blocking file I/O: call it off the event loop)."""
        problem = self.check(chunk)
        if problem is not None:
            return problem
        return self.store(chunk)

    def store(self, chunk: bytes) -> Answer | None:
        """Write a chunk that :meth:`check` accepted."""
        assert self._file is not None
        try:
            self._file.write(chunk)
        except OSError as exc:
            return self._fail(500, f"could not store bundle: {exc}")
        return None

    def finish(self) -> Answer:
        """Close the file, check the length and route the ``session_bundle`` event."""
        assert self._file is not None and self._path is not None
        try:
            self._file.close()
        except OSError as exc:
            return self._fail(500, f"could not store bundle: {exc}")
        if self.received < len(BUNDLE_MAGIC) or self.received != self.length:
            return self._fail(400, "short bundle body")
        event = {
            "type": "session_bundle",
            "requestId": self.request_id,
            "status": "ok",
            "bytes": self.received,
            "path": self._path,
        }
        self._file = None
        self.registry.deliver_server_event(str(self.viewer_id), event)
        return 200, {"status": "ok", "bytes": self.received}

    def abort(self, reason: str = "the upload was interrupted") -> None:
        """Give up: delete the temporary file and tell the viewer's waiters."""
        if self._path is not None and self._file is not None:
            self._fail(400, reason)

    def _fail(self, status: int, message: str) -> Answer:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        if self._path is not None:
            Path(self._path).unlink(missing_ok=True)
            self._path = None
        event = {
            "type": "session_bundle",
            "requestId": self.request_id,
            "status": "error",
            "error": message,
        }
        self.registry.deliver_server_event(str(self.viewer_id), event)
        return status, error_body(message)
