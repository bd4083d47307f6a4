"""The viewers of one server (SPEC §3.5, §3.6): ids, tokens, upload slots and the events route body.

:class:`ViewerRegistry` maps viewers by ``viewerId`` and turns a raw events body into a status
and JSON body; :class:`PendingRequests` holds the single-use session-bundle upload slots.
"""

from __future__ import annotations

import json
import math
import numbers
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from .cellsets import InvalidEventError
from .channel import ViewerChannel

MAX_EVENT_BYTES: Final = 256 * 1024 * 1024
"""Default size limit of a ``POST /_cellucid/events`` body (SPEC §3.5); the route enforces it."""


SERVER_EVENT_TYPES: Final = frozenset({"session_bundle"})
"""Event types only the server generates (SPEC §3.6, §4.3); a viewer may not POST them."""


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


class EventRequestError(Exception):
    """A bridge request that must be answered with an HTTP error (SPEC §3.1).

    Parameters
    ----------
    status
        The HTTP status: 400, 403 or 404.
    message
        Human-readable text. It never repeats a token.

    Examples
    --------
    >>> EventRequestError(403, "viewerToken does not match this viewer").body
    {'status': 'error', 'message': 'viewerToken does not match this viewer'}
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    @property
    def body(self) -> dict[str, str]:
        """The JSON error body ``{"status": "error", "message": …}``."""
        return error_body(self.message)


def error_body(message: str) -> dict[str, str]:
    """The JSON body of every bridge error response (SPEC §3.1).

    Examples
    --------
    >>> error_body("body is not valid JSON")
    {'status': 'error', 'message': 'body is not valid JSON'}
    """
    return {"status": "error", "message": message}


# --------------------------------------------------------------------------------------
# The viewers of one server
# --------------------------------------------------------------------------------------


class PendingRequests:
    """Single-use ``(viewerId, requestId)`` registrations with a TTL (SPEC §3.6).

    ``get_session_bundle()`` registers a request before asking the viewer to upload;
    the upload route consumes it. Expired entries are purged lazily.

    Parameters
    ----------
    clock
        Source of monotonic seconds (injectable for tests).

    Examples
    --------
    >>> pending = PendingRequests()
    >>> pending.register("a1b2", "req", ttl=60)
    >>> pending.consume("a1b2", "req"), pending.consume("a1b2", "req")
    (True, False)
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._expiry: dict[tuple[str, str], float] = {}

    def register(self, viewer_id: str, request_id: str, ttl: float) -> None:
        """Accept one upload for ``(viewer_id, request_id)`` during ``ttl`` seconds.

        Registering the same pair again renews its TTL.
        """
        if not isinstance(viewer_id, str) or not isinstance(request_id, str):
            raise TypeError("viewer_id and request_id must be strings")
        if isinstance(ttl, bool) or not isinstance(ttl, numbers.Real):
            raise TypeError("ttl must be a number of seconds")
        if not (math.isfinite(ttl) and ttl > 0):
            raise ValueError(f"ttl must be a positive finite number of seconds, got {ttl}")
        with self._lock:
            now = self._clock()
            self._purge(now)
            self._expiry[(viewer_id, request_id)] = now + float(ttl)

    def consume(self, viewer_id: str, request_id: str) -> bool:
        """``True`` once for a registered, unexpired pair (which is then removed)."""
        with self._lock:
            now = self._clock()
            self._purge(now)
            return self._expiry.pop((viewer_id, request_id), None) is not None

    def cancel(self, viewer_id: str, request_id: str) -> bool:
        """Forget a pair (for example after a timeout); ``True`` if it was pending."""
        return self.consume(viewer_id, request_id)

    def discard_viewer(self, viewer_id: str) -> int:
        """Forget every pending request of ``viewer_id``; returns how many there were."""
        with self._lock:
            keys = [key for key in self._expiry if key[0] == viewer_id]
            for key in keys:
                del self._expiry[key]
            return len(keys)

    def __len__(self) -> int:
        with self._lock:
            self._purge(self._clock())
            return len(self._expiry)

    def _purge(self, now: float) -> None:
        expired = [key for key, expiry in self._expiry.items() if expiry <= now]
        for key in expired:
            del self._expiry[key]


class ViewerRegistry:
    """Viewers known to one server; events are routed by viewerId to their channel only
    (no process-wide fallback, SPEC §3.5 step 5).

    Attributes
    ----------
    pending : PendingRequests
        The session-bundle upload slots of this server's viewers.

    Examples
    --------
    >>> registry = ViewerRegistry()
    >>> channel = ViewerChannel("a1b2", "t0k3n")
    >>> registry.add(channel)
    >>> body = b'{"type": "ready", "viewerId": "a1b2", "viewerToken": "t0k3n", "n_cells": 3, "dimensions": 2}'
    >>> registry.handle_event_body(body)
    (200, {'status': 'ok', 'delivered': True})
    >>> registry.handle_event_body(body.replace(b"t0k3n", b"wrong"))[0]
    403
    >>> channel.close()
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._channels: dict[str, ViewerChannel] = {}
        self.pending = PendingRequests()

    def add(self, channel: ViewerChannel) -> None:
        """Route events for ``channel.viewer_id`` to ``channel``.

        Raises
        ------
        ValueError
            When another channel already has this id, or ``channel`` is closed.
        """
        if not isinstance(channel, ViewerChannel):
            raise TypeError(f"expected a ViewerChannel, not {type(channel).__name__}")
        if channel.closed:
            raise ValueError(f"viewer {channel.viewer_id} is closed")
        with self._lock:
            known = self._channels.get(channel.viewer_id)
            if known is not None and known is not channel:
                raise ValueError(f"another viewer already uses id {channel.viewer_id}")
            self._channels[channel.viewer_id] = channel

    def remove(self, viewer_id: str) -> ViewerChannel | None:
        """Stop routing to ``viewer_id`` and drop its pending requests; returns its channel."""
        with self._lock:
            channel = self._channels.pop(viewer_id, None)
        self.pending.discard_viewer(viewer_id)
        return channel

    def get(self, viewer_id: str) -> ViewerChannel | None:
        """The channel of ``viewer_id``, or ``None``."""
        with self._lock:
            return self._channels.get(viewer_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._channels)

    def __contains__(self, viewer_id: object) -> bool:
        with self._lock:
            return viewer_id in self._channels

    def authenticate(self, viewer_id: object, token: object) -> ViewerChannel:
        """The open channel of ``viewer_id`` if ``token`` is its token (SPEC §3.5, §3.6).

        Raises
        ------
        EventRequestError
            400 for a non-string id or token, 404 for an unknown or closed viewer, 403 for
            a wrong token.
        """
        if not isinstance(viewer_id, str) or not isinstance(token, str):
            raise EventRequestError(400, "viewerId and viewerToken must be strings")
        channel = self.get(viewer_id)
        if channel is None or channel.closed:
            raise EventRequestError(
                404,
                "unknown viewerId: no such viewer on this server "
                "(a page left open after its viewer stopped?)",
            )
        if not channel.check_token(token):
            raise EventRequestError(403, "viewerToken does not match this viewer")
        return channel

    def handle_event_body(
        self, body: bytes, event_id: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Answer a size-checked ``POST /_cellucid/events`` body (SPEC §3.5 steps 2-5).

        Parameters
        ----------
        body
            The raw request body (UTF-8 JSON).
        event_id
            The ``eventId`` query parameter our viewer adds (see
            :meth:`ViewerChannel.deliver`); ``None`` for other viewers.

        Returns
        -------
        tuple
            ``(200, {"status": "ok", "delivered": True})`` once the event is recorded and
            queued for the hooks; otherwise ``(status, {"status": "error", "message": …})``
            with 400 (not UTF-8 JSON, not an object, ``type``/``viewerId``/``viewerToken``
            missing or not strings, a structurally broken known event, or a server-only
            type such as ``session_bundle``), 404 (unknown viewer) or 403 (wrong token).
        """
        try:
            event = _parse_event_body(body)
            event_type = event["type"]
            channel = self.authenticate(event["viewerId"], event["viewerToken"])
            if event_type in SERVER_EVENT_TYPES:
                raise EventRequestError(
                    400, f"{event_type!r} events are generated by the server, not posted"
                )
            if not channel.deliver(event, event_id=event_id, via="http"):
                raise EventRequestError(404, "unknown viewerId: the viewer was stopped")
        except EventRequestError as error:
            return error.status, error.body
        except InvalidEventError as error:
            return 400, error_body(f"invalid event: {error}")
        return 200, {"status": "ok", "delivered": True}

    def deliver_server_event(self, viewer_id: str, event: Mapping[str, Any]) -> bool:
        """Deliver a server-generated event (such as ``session_bundle``, SPEC §3.6).

        Returns
        -------
        bool
            ``False`` when no open viewer has this id.

        Raises
        ------
        InvalidEventError
            When the event is malformed (a bug in the caller).
        """
        channel = self.get(viewer_id)
        if channel is None:
            return False
        return channel.deliver(event)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_event_body(body: bytes | bytearray | memoryview) -> dict[str, Any]:
    """Steps 2 of SPEC §3.5: a JSON object with string ``type``, ``viewerId``, ``viewerToken``."""
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        raise EventRequestError(400, "body is not valid UTF-8") from None
    try:
        event = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise EventRequestError(400, "body is not valid JSON") from None
    if not isinstance(event, dict):
        raise EventRequestError(400, "body must be a JSON object")
    for key in ("type", "viewerId", "viewerToken"):
        if key not in event:
            raise EventRequestError(400, f"body is missing {key!r}")
        if not isinstance(event[key], str):
            raise EventRequestError(400, f"{key!r} must be a string")
    if not event["type"]:
        raise EventRequestError(400, "'type' must not be empty")
    return event
