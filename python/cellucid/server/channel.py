"""One viewer's event channel (SPEC §4.4, §6.6): state, waiters and hook dispatch.

Both transports (``POST /_cellucid/events`` and the Jupyter comm) feed the same
:class:`ViewerChannel`. A callback never runs on the thread that delivered the event, so a
slow hook cannot stall the HTTP server.
"""

from __future__ import annotations

import hmac
import logging
import math
import numbers
import queue
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Final, TypeVar

from .event_schema import _copy, _copy_payload, normalize_event

logger = logging.getLogger("cellucid.events")

RING_SIZE: Final = 512
"""How many recent events a channel keeps (SPEC §4.4)."""

SEEN_IDS: Final = 4096
"""How many recent ``eventId`` values a channel remembers to drop duplicates."""


_CREDENTIAL_RE: Final = re.compile(r"[A-Za-z0-9_-]+")
_JOIN_TIMEOUT: Final = 1.0
_STOP: Final = object()

Payload = dict[str, Any]
HookCallback = Callable[[dict[str, Any]], object]
"""A hook receives one event dict; its return value is ignored."""
RecordCallback = Callable[[str, Payload], Callable[[], object] | None]
"""Called under the channel's lock when an event is recorded; may return a follow-up that
the dispatcher thread runs before the event's hooks."""
_Hook = TypeVar("_Hook", bound=HookCallback)


def new_viewer_id() -> str:
    """A fresh ``viewerId``: 16 lowercase hex characters (SPEC §4.1).

    Examples
    --------
    >>> len(new_viewer_id())
    16
    """
    return secrets.token_hex(8)


def new_viewer_token() -> str:
    """A fresh secret ``viewerToken``: 32 lowercase hex characters (SPEC §4.1).

    Examples
    --------
    >>> len(new_viewer_token())
    32
    """
    return secrets.token_hex(16)


# --------------------------------------------------------------------------------------
# One viewer's channel
# --------------------------------------------------------------------------------------


@dataclass
class ViewerState:
    """The latest viewer → Python events (SPEC §6.6 ``state``).

    Each event field holds the payload of the latest event of that type, without
    ``type``; ``selection["cells"]`` is a read-only ``numpy.uint32`` array.
    ``last_event`` is the payload of the latest event of any type, whose type is
    ``last_event_type``; ``last_updated_at`` is its :func:`time.monotonic` receipt time.

    Examples
    --------
    >>> ViewerState().ready is None
    True
    """

    ready: dict[str, Any] | None = None
    selection: dict[str, Any] | None = None
    hover: dict[str, Any] | None = None
    click: dict[str, Any] | None = None
    last_event_type: str | None = None
    last_event: dict[str, Any] | None = None
    last_updated_at: float | None = None


_STATE_FIELDS: Final = frozenset({"ready", "selection", "hover", "click"})


class _Waiter:
    """One ``wait_for_event`` call: the events of its types recorded since it started."""

    __slots__ = ("closed", "event", "events", "inbox", "signal")

    def __init__(self, events: tuple[str, ...]) -> None:
        self.events = frozenset(events)
        self.event = " or ".join(repr(e) for e in events)
        self.inbox: deque[tuple[str, Payload]] = deque()
        self.signal = threading.Event()
        self.closed = False


class ViewerChannel:
    """The Python end of one viewer's event bridge (SPEC §4.4, §6.6).

    Transport-agnostic: the HTTP route (through :class:`ViewerRegistry`) and the Jupyter
    comm both call :meth:`deliver`. All methods are thread-safe.

    Parameters
    ----------
    viewer_id
        The ``viewerId``; a new one (:func:`new_viewer_id`) when ``None``. Non-empty,
        only ``A-Z a-z 0-9 _ -`` (it goes into URLs).
    token
        The secret ``viewerToken``; a new one (:func:`new_viewer_token`) when ``None``.
        Same character rule.
    name
        A label for logs and the dispatcher thread's name.
    on_record
        Optional. Called as ``on_record(type, payload)`` (a read-only view: do not keep or
        change it) on the delivering thread, under the channel's lock, after the event is
        recorded and before waiters wake: it must be quick and must not call back into the
        channel. It may return a callable, which the dispatcher thread runs before the
        event's hooks. The notebook widget uses this to make its traits show an event as
        soon as ``wait_for_event`` can return it, while trait observers run on the
        dispatcher thread like hooks.

    Attributes
    ----------
    viewer_id : str
    token : str

    Notes
    -----
    Hooks receive, in arrival order and on the channel's own daemon thread, a fresh copy
    of the payload: every ``message`` hook gets ``{"event": <type>, **payload}`` (the
    ``"event"`` key is always the type, even if a custom payload had its own), then every
    hook registered for ``<type>`` gets the payload. An event whose type is ``"message"``
    reaches the ``message`` hooks once. Exceptions are logged to ``cellucid.events`` and
    swallowed.

    Examples
    --------
    >>> channel = ViewerChannel()
    >>> sizes = []
    >>> @channel.on_ready
    ... def remember(event):
    ...     sizes.append(event["n_cells"])
    >>> channel.deliver({"type": "ready", "n_cells": 100, "dimensions": 2})
    True
    >>> channel.wait_idle(), sizes
    (True, [100])
    >>> channel.close()
    """

    def __init__(
        self,
        viewer_id: str | None = None,
        token: str | None = None,
        *,
        name: str = "viewer",
        on_record: RecordCallback | None = None,
    ) -> None:
        self.viewer_id: str = (
            new_viewer_id() if viewer_id is None else _check_credential(viewer_id, "viewer_id")
        )
        self.token: str = new_viewer_token() if token is None else _check_credential(token, "token")
        self.name = name
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._state = ViewerState()
        self._ring: deque[tuple[str, Payload, float]] = deque(maxlen=RING_SIZE)
        self._waiters: list[_Waiter] = []
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._enqueued = 0
        self._dispatched = 0
        self._hooks_lock = threading.Lock()
        self._hooks: dict[str, tuple[HookCallback, ...]] = {}
        self._on_record = on_record
        self._seen_ids: dict[str, None] = {}  # insertion-ordered: oldest first
        self.duplicates = 0
        #: recorded events per transport that delivered them first ("http", "comm", ...)
        self.delivered_via: dict[str, int] = {}

    def __repr__(self) -> str:
        status = "closed" if self._closed else "open"
        return f"ViewerChannel({self.name!r}, viewer_id={self.viewer_id!r}, {status})"

    # ---- state --------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def state(self) -> ViewerState:
        """A consistent snapshot of the latest events (copies; arrays are read-only).

        Examples
        --------
        >>> channel = ViewerChannel()
        >>> _ = channel.deliver({"type": "hover", "cell": None, "position": None})
        >>> channel.state.last_event_type
        'hover'
        >>> channel.close()
        """
        with self._lock:
            return ViewerState(
                **{
                    field.name: _copy(getattr(self._state, field.name))
                    for field in fields(ViewerState)
                }
            )

    def recent_events(self) -> list[dict[str, Any]]:
        """The last :data:`RING_SIZE` events, oldest first.

        Each is a copy ``{"type": <type>, **payload, "received_at": <monotonic s>}``
        (a payload key named ``received_at`` is overwritten).

        Examples
        --------
        >>> channel = ViewerChannel()
        >>> _ = channel.deliver({"type": "ping_me"})
        >>> [event["type"] for event in channel.recent_events()]
        ['ping_me']
        >>> channel.close()
        """
        with self._lock:
            recorded = list(self._ring)
        return [
            {"type": event_type, **_copy_payload(payload), "received_at": received_at}
            for event_type, payload, received_at in recorded
        ]

    def check_token(self, token: object) -> bool:
        """Compare ``token`` with this viewer's token in constant time.

        Examples
        --------
        >>> channel = ViewerChannel(token="secret")
        >>> channel.check_token("secret"), channel.check_token("guess"), channel.check_token(None)
        (True, False, False)
        """
        if not isinstance(token, str):
            return False
        return hmac.compare_digest(token.encode("utf-8"), self.token.encode("utf-8"))

    # ---- receiving ----------------------------------------------------------------

    def deliver(
        self, event: Mapping[str, Any], *, event_id: str | None = None, via: str | None = None
    ) -> bool:
        """Record one event and queue it for the hooks; never runs or waits for a hook.

        Parameters
        ----------
        event
            ``{"type": str, **payload}``; ``viewerId``/``viewerToken`` keys, if any, are
            dropped. The event is validated and copied by :func:`normalize_event`.
        event_id
            The viewer's ``eventId`` when the event may arrive by two paths (the notebook
            widget's comm and ``POST /_cellucid/events``): the first delivery of an id is
            recorded, later ones are dropped (counted in :attr:`duplicates`). The last
            :data:`SEEN_IDS` ids are remembered.
        via
            The transport that carried it (``"http"``, ``"comm"``), counted in
            :attr:`delivered_via` when the event is recorded.

        Returns
        -------
        bool
            ``True`` when recorded or a duplicate, ``False`` when the channel is closed
            (nothing is recorded then).

        Raises
        ------
        InvalidEventError
            When the event is structurally broken; nothing is recorded.

        Examples
        --------
        >>> channel = ViewerChannel()
        >>> channel.deliver({"type": "click", "cell": 7, "button": 0, "shift": False, "ctrl": False})
        True
        >>> channel.state.click["cell"]
        7
        >>> channel.close()
        """
        event_type, payload = normalize_event(event)
        received_at = time.monotonic()
        with self._lock:
            if self._closed:
                return False
            if event_id is not None:
                if event_id in self._seen_ids:
                    self.duplicates += 1
                    return True
                self._seen_ids[event_id] = None
                if len(self._seen_ids) > SEEN_IDS:
                    del self._seen_ids[next(iter(self._seen_ids))]
            if via is not None:
                self.delivered_via[via] = self.delivered_via.get(via, 0) + 1
            follow_up = None if self._on_record is None else self._on_record(event_type, payload)
            if event_type in _STATE_FIELDS:
                setattr(self._state, event_type, payload)
            self._state.last_event_type = event_type
            self._state.last_event = payload
            self._state.last_updated_at = received_at
            self._ring.append((event_type, payload, received_at))
            for waiter in self._waiters:
                if event_type in waiter.events:
                    waiter.inbox.append((event_type, payload))
                    waiter.signal.set()
            # Enqueued under the lock, so hooks run in the order events were recorded.
            self._enqueued += 1
            self._queue.put((event_type, payload, follow_up))
            if self._thread is None:
                thread = threading.Thread(
                    target=self._run, name=f"cellucid-events-{self.viewer_id}", daemon=True
                )
                thread.start()
                self._thread = thread
        return True

    # ---- waiting ------------------------------------------------------------------

    def wait_for_event(
        self,
        event: str,
        timeout: float | None = 30.0,
        *,
        predicate: Callable[[dict[str, Any]], object] | None = None,
    ) -> dict[str, Any]:
        """Block until an event of type ``event`` is recorded after this call started.

        Safe to call from a hook: events are recorded before hooks run.

        Parameters
        ----------
        event
            The event type, e.g. ``"selection"`` or ``"session_bundle"``.
        timeout
            Seconds to wait; ``None`` waits until the event comes or the channel closes.
        predicate
            Called (on the waiting thread) with a copy of each candidate payload; the
            first payload for which it is true is returned. Its exceptions propagate.

        Returns
        -------
        dict
            A copy of the payload, without ``type`` (like the hooks and :attr:`state`).

        Raises
        ------
        TimeoutError
            When the deadline passes first.
        RuntimeError
            When the channel is or becomes closed.

        Examples
        --------
        >>> import threading
        >>> channel = ViewerChannel()
        >>> event = {"type": "pong", "requestId": "r1", "t": 0}
        >>> threading.Timer(0.05, channel.deliver, [event]).start()
        >>> channel.wait_for_event("pong", timeout=5, predicate=lambda e: e["requestId"] == "r1")
        {'requestId': 'r1', 't': 0}
        >>> channel.close()
        """
        _check_event_name(event)
        deadline = _deadline(timeout)
        with self._lock:
            waiter = self._add_waiter((event,))
        return self._await(waiter, deadline, timeout, predicate)[1]

    def wait_for_any(
        self,
        events: tuple[str, ...],
        timeout: float | None = 30.0,
        *,
        predicate: Callable[[dict[str, Any]], object] | None = None,
        start: Callable[[], object] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Like :meth:`wait_for_event` for several types; returns ``(type, payload)``.

        ``start``, if given, is called once the wait is registered: a request sent from it
        cannot be answered before the wait sees the answer.

        Examples
        --------
        >>> channel = ViewerChannel()
        >>> answer = {"type": "command_error", "command": "x", "reason": "no"}
        >>> channel.wait_for_any(("pong", "command_error"), 5,
        ...                      start=lambda: channel.deliver(answer))
        ('command_error', {'command': 'x', 'reason': 'no'})
        >>> channel.close()
        """
        for event in events:
            _check_event_name(event)
        deadline = _deadline(timeout)
        with self._lock:
            waiter = self._add_waiter(tuple(events))
        if start is not None:
            try:
                start()
            except BaseException:
                with self._lock:
                    self._waiters.remove(waiter)
                raise
        return self._await(waiter, deadline, timeout, predicate)

    def wait_for_ready(self, timeout: float | None = 30.0) -> dict[str, Any]:
        """The ``ready`` payload: :attr:`state` ``.ready`` at once if set, else the next one.

        Raises
        ------
        TimeoutError
            When no ``ready`` comes in time.
        RuntimeError
            When the channel is closed before a ``ready``.

        Examples
        --------
        >>> channel = ViewerChannel()
        >>> _ = channel.deliver({"type": "ready", "n_cells": 5, "dimensions": 3})
        >>> channel.wait_for_ready(timeout=0)
        {'n_cells': 5, 'dimensions': 3}
        >>> channel.close()
        """
        deadline = _deadline(timeout)
        with self._lock:
            if self._state.ready is not None:
                return _copy_payload(self._state.ready)
            waiter = self._add_waiter(("ready",))
        return self._await(waiter, deadline, timeout, None)[1]

    def wait_idle(self, timeout: float | None = 5.0) -> bool:
        """Wait until the hooks have run for every event delivered so far.

        Meant for tests and scripts; a hook must not call it (it would wait for itself).

        Returns
        -------
        bool
            ``True`` when idle, ``False`` on timeout or when the channel closed first.
        """
        if threading.current_thread() is self._thread:
            raise RuntimeError("wait_idle() cannot be called from a hook")
        deadline = _deadline(timeout)
        with self._idle:
            target = self._enqueued
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._idle.wait_for(lambda: self._dispatched >= target or self._closed, remaining)
            return self._dispatched >= target

    def _add_waiter(self, events: tuple[str, ...]) -> _Waiter:
        # Called with self._lock held.
        if self._closed:
            raise RuntimeError(f"viewer {self.viewer_id} is closed")
        waiter = _Waiter(events)
        self._waiters.append(waiter)
        return waiter

    def _await(
        self,
        waiter: _Waiter,
        deadline: float | None,
        timeout: float | None,
        predicate: Callable[[dict[str, Any]], object] | None,
    ) -> tuple[str, dict[str, Any]]:
        try:
            while True:
                with self._lock:
                    candidates = list(waiter.inbox)
                    waiter.inbox.clear()
                    waiter.signal.clear()
                    closed = waiter.closed
                for event_type, payload in candidates:
                    if predicate is None or predicate(_copy_payload(payload)):
                        return event_type, _copy_payload(payload)
                if closed:
                    raise RuntimeError(
                        f"viewer {self.viewer_id} was closed while waiting for {waiter.event}"
                    )
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(
                        f"no {waiter.event} event from viewer {self.viewer_id} "
                        f"within {_seconds(timeout)} s"
                    )
                waiter.signal.wait(remaining)
        finally:
            with self._lock:
                self._waiters.remove(waiter)

    # ---- hooks --------------------------------------------------------------------

    def register_hook(self, event: str, callback: _Hook) -> _Hook:
        """Call ``callback(payload)`` for every event of type ``event``.

        ``event="message"`` receives every event as ``{"event": <type>, **payload}``.
        Registering the same callback twice calls it twice.

        Returns
        -------
        callable
            ``callback``, so this works as a decorator helper.

        Examples
        --------
        >>> channel = ViewerChannel()
        >>> def show(event):
        ...     print(event)
        >>> channel.register_hook("my_event", show) is show
        True
        >>> channel.close()
        """
        _check_event_name(event)
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        with self._hooks_lock:
            self._hooks[event] = (*self._hooks.get(event, ()), callback)
        return callback

    def unregister_hook(self, event: str, callback: HookCallback) -> bool:
        """Remove one registration of ``callback`` for ``event``; ``False`` if none.

        Examples
        --------
        >>> channel = ViewerChannel()
        >>> callback = channel.register_hook("click", print)
        >>> channel.unregister_hook("click", print), channel.unregister_hook("click", print)
        (True, False)
        >>> channel.close()
        """
        with self._hooks_lock:
            callbacks = list(self._hooks.get(event, ()))
            if callback not in callbacks:
                return False
            callbacks.remove(callback)
            if callbacks:
                self._hooks[event] = tuple(callbacks)
            else:
                del self._hooks[event]
            return True

    def clear_hooks(self, event: str | None = None) -> None:
        """Remove every hook of ``event``, or all hooks when ``event`` is ``None``."""
        with self._hooks_lock:
            if event is None:
                self._hooks.clear()
            else:
                self._hooks.pop(event, None)

    def _decorator(self, event: str) -> Callable[[_Hook], _Hook]:
        def register(callback: _Hook) -> _Hook:
            return self.register_hook(event, callback)

        register.__doc__ = f"Register a hook for {event!r} events; returns the callback."
        return register

    @property
    def on_ready(self) -> Callable[[_Hook], _Hook]:
        """Decorator registering a ``ready`` hook (``{n_cells, dimensions}``)."""
        return self._decorator("ready")

    @property
    def on_selection(self) -> Callable[[_Hook], _Hook]:
        """Decorator registering a ``selection`` hook (``{cells: uint32 array, source}``)."""
        return self._decorator("selection")

    @property
    def on_hover(self) -> Callable[[_Hook], _Hook]:
        """Decorator registering a ``hover`` hook (``{cell, position}``)."""
        return self._decorator("hover")

    @property
    def on_click(self) -> Callable[[_Hook], _Hook]:
        """Decorator registering a ``click`` hook (``{cell, button, shift, ctrl}``)."""
        return self._decorator("click")

    @property
    def on_message(self) -> Callable[[_Hook], _Hook]:
        """Decorator registering a hook for every event (``{"event": <type>, **payload}``)."""
        return self._decorator("message")

    # ---- dispatch -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP or self._closed:
                return
            event_type, payload, follow_up = item
            if follow_up is not None:
                self._call(follow_up, event_type, None)
            self._dispatch(event_type, payload)
            with self._idle:
                self._dispatched += 1
                self._idle.notify_all()

    def _dispatch(self, event_type: str, payload: Payload) -> None:
        with self._hooks_lock:
            message_hooks = self._hooks.get("message", ())
            typed_hooks = () if event_type == "message" else self._hooks.get(event_type, ())
        for callback in message_hooks:
            message = {"event": event_type, **_copy_payload(payload)}
            message["event"] = event_type
            self._call(callback, "message", message)
        for callback in typed_hooks:
            self._call(callback, event_type, _copy_payload(payload))

    def _call(self, callback: Callable[..., object], event: str, argument: Payload | None) -> None:
        if self._closed:
            return
        try:
            callback() if argument is None else callback(argument)
        except BaseException:  # a hook must never stop the dispatcher
            logger.exception(
                "cellucid: %r hook %r of viewer %s (%s) raised; the error is ignored",
                event,
                callback,
                self.viewer_id,
                self.name,
            )

    # ---- shutdown -----------------------------------------------------------------

    def close(self) -> None:
        """Stop dispatching, wake every waiter with ``RuntimeError``, clear the hooks.

        Idempotent. Queued events whose hooks have not run are dropped. The dispatcher
        thread is joined for up to a second; a hook still running after that finishes on
        its own and no further hook runs. Close every channel you are done with: its
        dispatcher thread keeps it alive until then.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for waiter in self._waiters:
                waiter.closed = True
                waiter.signal.set()
            self._idle.notify_all()
            thread = self._thread
        self._queue.put(_STOP)
        self.clear_hooks()
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT)


def _seconds(timeout: float | None) -> str:
    return "∞" if timeout is None else f"{float(timeout):.3g}"


def _check_credential(value: object, label: str) -> str:
    if not isinstance(value, str) or not _CREDENTIAL_RE.fullmatch(value):
        raise ValueError(f"{label} must be a non-empty string of A-Z, a-z, 0-9, '_' or '-'")
    return value


def _check_event_name(event: object) -> None:
    if not isinstance(event, str) or not event:
        raise TypeError("event must be a non-empty string")


def _deadline(timeout: object) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(
            f"timeout must be a number of seconds or None, not {type(timeout).__name__}"
        )
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"timeout must be >= 0 seconds or None, got {timeout}")
    if math.isinf(timeout):
        return None
    return time.monotonic() + float(timeout)
