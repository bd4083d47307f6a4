"""The Python side of a viewer's event bridge (SPEC §3.5, §3.6, §4.3, §4.4, §6.6).

A browser viewer reports what the user does (``ready``, ``selection``, ``hover``,
``click``, custom events …) either by ``POST /_cellucid/events`` or over the Jupyter
comm. Both transports feed the same :class:`ViewerChannel`, which

1. records the event under a lock: the latest payload per type in :attr:`ViewerChannel.state`,
   a ring buffer of the last :data:`RING_SIZE` events, and the ``wait_for_event`` callers
   whose event type matches are woken;
2. queues it for a per-viewer daemon thread that runs the user's hook callbacks in
   arrival order. A callback never runs on the thread that delivered the event, so a slow
   hook cannot stall the HTTP server, and a hook may itself call
   :meth:`ViewerChannel.wait_for_event` without deadlocking.

:class:`ViewerRegistry` maps the viewers of one server by ``viewerId`` and turns a raw
``POST /_cellucid/events`` body into a status and JSON body; :class:`PendingRequests`
holds the single-use session-bundle upload slots.

Selections can hold millions of cells, so ``selection.cells`` may arrive as a JSON list
(small selections) or in one of two binary forms (see :func:`decode_cells`); the recorded
payload always holds a read-only ``numpy.uint32`` array.

Examples
--------
>>> channel = ViewerChannel(name="demo")
>>> seen = []
>>> _ = channel.on_selection(lambda event: seen.append(event["source"]))
>>> channel.deliver({"type": "selection", "cells": [3, 1], "source": "lasso"})
True
>>> channel.state.selection["cells"].tolist()
[3, 1]
>>> channel.wait_idle()
True
>>> seen
['lasso']
>>> channel.close()
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
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
from typing import Any, Final, TypeGuard, TypeVar, cast

import numpy as np
import numpy.typing as npt

__all__ = [
    "BITSET_ENCODING",
    "MAX_EVENT_BYTES",
    "RING_SIZE",
    "SERVER_EVENT_TYPES",
    "U32_ENCODING",
    "EventRequestError",
    "HookCallback",
    "InvalidEventError",
    "PendingRequests",
    "ViewerChannel",
    "ViewerRegistry",
    "ViewerState",
    "decode_cells",
    "encode_cells",
    "error_body",
    "new_viewer_id",
    "new_viewer_token",
    "normalize_event",
    "validate_event_payload",
]

logger = logging.getLogger("cellucid.events")

RING_SIZE: Final = 512
"""How many recent events a channel keeps (SPEC §4.4)."""

SEEN_IDS: Final = 4096
"""How many recent ``eventId`` values a channel remembers to drop duplicates."""

MAX_EVENT_BYTES: Final = 256 * 1024 * 1024
"""Default size limit of a ``POST /_cellucid/events`` body (SPEC §3.5); the route enforces it."""

U32_ENCODING: Final = "u32-base64"
BITSET_ENCODING: Final = "bitset-base64"

SERVER_EVENT_TYPES: Final = frozenset({"session_bundle"})
"""Event types only the server generates (SPEC §3.6, §4.3); a viewer may not POST them."""

MAX_CELLS: Final = 2**32
"""Cell indices are stored as uint32, so they must be below this."""

_CREDENTIAL_KEYS: Final = ("viewerId", "viewerToken")
_CREDENTIAL_RE: Final = re.compile(r"[A-Za-z0-9_-]+")
_JOIN_TIMEOUT: Final = 1.0
_SCALAR_TYPES: Final = frozenset({str, int, float, bool, type(None)})
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
# Errors
# --------------------------------------------------------------------------------------


class InvalidEventError(ValueError):
    """An event (or its cell list) is structurally broken; the message says what is wrong."""


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
# Cell lists: a JSON list, or one of two binary forms
# --------------------------------------------------------------------------------------


def decode_cells(value: object) -> npt.NDArray[np.uint32]:
    """Decode and validate a cell-index list as a new ``uint32`` array.

    Accepted forms:

    * a JSON list of unique non-negative integers below ``2**32`` (order kept);
    * a 1-D integer ``numpy`` array with the same constraints (order kept);
    * ``{"encoding": "u32-base64", "count": N, "data": D}``: ``D`` holds ``N``
      little-endian uint32 indices, unique (order kept);
    * ``{"encoding": "bitset-base64", "n": n, "count": N, "data": D}``: ``D`` holds
      ``ceil(n / 8)`` bytes, bit ``i`` (little-endian bit order: bit ``i % 8`` of byte
      ``i // 8``) set when cell ``i`` is selected; ``N`` bits are set, none at or beyond
      ``n``. The result is sorted.

    ``D`` is standard base64 text (with padding), or a bytes-like object holding the raw
    bytes (for transports that carry binary buffers, such as the Jupyter comm). An
    encoded object must have exactly the keys listed. Decoding is vectorised.

    Parameters
    ----------
    value
        One of the forms above.

    Returns
    -------
    numpy.ndarray
        The indices as a writable ``uint32`` array owned by the caller.

    Raises
    ------
    InvalidEventError
        When ``value`` is not one of the forms above: bad base64, a byte length or
        ``count`` that does not match, a set bit beyond ``n``, a duplicate index, a
        negative or non-integer index.

    Examples
    --------
    >>> decode_cells([5, 2]).tolist()
    [5, 2]
    >>> decode_cells({"encoding": "bitset-base64", "n": 10, "count": 2, "data": "JAA="}).tolist()
    [2, 5]
    """
    if isinstance(value, Mapping):
        return _decode_encoded_cells(value)
    if isinstance(value, np.ndarray):
        return _cells_from_array(value)
    if isinstance(value, list):
        return _cells_from_list(value)
    raise InvalidEventError(
        f"cells must be a list of cell indices or an object with an 'encoding' of "
        f"{U32_ENCODING!r} or {BITSET_ENCODING!r}, not {type(value).__name__}"
    )


def encode_cells(
    indices: object, n_cells: int, *, raw: bool = False, checked: bool = False
) -> dict[str, Any]:
    """Encode cell indices in the smaller of the two binary forms of :func:`decode_cells`.

    ``u32-base64`` costs 4 bytes per cell, ``bitset-base64`` costs ``ceil(n_cells / 8)``
    bytes whatever the selection; ties go to ``u32-base64``, which keeps the given order
    (the bitset form decodes sorted).

    Parameters
    ----------
    indices
        Unique non-negative integer indices below ``n_cells`` (a list or an integer array).
    n_cells
        Number of cells of the dataset.
    raw
        Put the raw bytes in ``"data"`` instead of base64 text (for binary transports).
    checked
        ``indices`` is a ``uint32`` array already known to be unique (it came from
        :func:`decode_cells` or equivalent validation): skip the uniqueness check, which
        sorts (tens of milliseconds for a million cells).

    Returns
    -------
    dict
        ``{"encoding": "u32-base64", "count", "data"}`` or
        ``{"encoding": "bitset-base64", "n", "count", "data"}``.

    Raises
    ------
    ValueError
        When an index is invalid, duplicated or not below ``n_cells``.
    TypeError
        When ``n_cells`` is not an integer.

    Examples
    --------
    >>> encode_cells([1, 3], 1000)
    {'encoding': 'u32-base64', 'count': 2, 'data': 'AQAAAAMAAAA='}
    >>> encode_cells(range(0, 1000, 2), 1000)["encoding"]
    'bitset-base64'
    """
    if not _is_int(n_cells):
        raise TypeError(f"n_cells must be an integer, not {type(n_cells).__name__}")
    n = int(n_cells)
    if not 0 <= n <= MAX_CELLS:
        raise ValueError(f"n_cells must be between 0 and 2**32, got {n}")
    if isinstance(indices, range | tuple):
        indices = list(indices)
    if checked and isinstance(indices, np.ndarray) and indices.dtype == np.uint32:
        cells = indices.ravel()
    else:
        cells = decode_cells(indices)
    if cells.size and int(cells.max()) >= n:
        raise ValueError(f"cell index {int(cells.max())} is not below n_cells={n}")
    count = int(cells.size)
    bitset_bytes = (n + 7) // 8
    if 4 * count <= bitset_bytes:
        data = cells.astype("<u4", copy=False).tobytes()
        out: dict[str, Any] = {"encoding": U32_ENCODING, "count": count}
    else:
        bits = np.zeros(bitset_bytes * 8, dtype=bool)
        bits[cells] = True
        data = np.packbits(bits, bitorder="little").tobytes()
        out = {"encoding": BITSET_ENCODING, "n": n, "count": count}
    out["data"] = data if raw else base64.b64encode(data).decode("ascii")
    return out


def _cells_from_list(values: list[Any]) -> npt.NDArray[np.uint32]:
    if not values:
        return np.empty(0, dtype=np.uint32)
    # set(map(type, …)) walks the list in C; it rejects bools, floats, strings and nulls.
    if set(map(type, values)) != {int}:
        raise InvalidEventError("cells must be a list of integers")
    try:
        array = np.array(values, dtype=np.int64)
    except OverflowError:
        raise InvalidEventError("cells holds an index of 2**63 or more") from None
    return _checked_indices(array)


def _cells_from_array(array: np.ndarray) -> npt.NDArray[np.uint32]:
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise InvalidEventError("cells must be a 1-D integer array")
    return _checked_indices(array)


def _checked_indices(array: np.ndarray) -> npt.NDArray[np.uint32]:
    if array.size:
        if int(array.min()) < 0:
            raise InvalidEventError("cells must be non-negative")
        if int(array.max()) >= MAX_CELLS:
            raise InvalidEventError("cells must be below 2**32")
    cells = array.astype(np.uint32)  # always a copy
    _require_unique(cells)
    return cells


def _require_unique(cells: npt.NDArray[np.uint32]) -> None:
    if cells.size > 1:
        ordered = np.sort(cells)
        if bool(np.any(ordered[1:] == ordered[:-1])):
            raise InvalidEventError("cells must not contain duplicate indices")


def _decode_encoded_cells(value: Mapping[Any, Any]) -> npt.NDArray[np.uint32]:
    encoding = value.get("encoding")
    if encoding == U32_ENCODING:
        expected = {"encoding", "count", "data"}
    elif encoding == BITSET_ENCODING:
        expected = {"encoding", "n", "count", "data"}
    else:
        raise InvalidEventError(f"cells.encoding must be {U32_ENCODING!r} or {BITSET_ENCODING!r}")
    if set(value) != expected:
        raise InvalidEventError(
            f"{encoding} cells must have exactly the keys {', '.join(sorted(expected))}"
        )
    count = value["count"]
    if not _is_int(count) or count < 0:
        raise InvalidEventError("cells.count must be a non-negative integer")
    count = int(count)
    raw = _decode_data(value["data"])
    if encoding == U32_ENCODING:
        if len(raw) != 4 * count:
            raise InvalidEventError(
                f"cells.data holds {len(raw)} bytes, but count={count} needs {4 * count}"
            )
        cells = np.frombuffer(raw, dtype="<u4").astype(np.uint32)
        _require_unique(cells)
        return cells
    n = value["n"]
    if not _is_int(n) or not 0 <= n <= MAX_CELLS:
        raise InvalidEventError("cells.n must be an integer between 0 and 2**32")
    n = int(n)
    if len(raw) != (n + 7) // 8:
        raise InvalidEventError(
            f"cells.data holds {len(raw)} bytes, but a bitset of n={n} cells needs {(n + 7) // 8}"
        )
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")
    if bool(bits[n:].any()):
        raise InvalidEventError(f"cells bitset has a bit set at or beyond n={n}")
    cells = np.flatnonzero(bits).astype(np.uint32)
    if cells.size != count:
        raise InvalidEventError(f"cells.count is {count}, but the bitset has {cells.size} bits set")
    return cells


def _decode_data(data: object) -> bytes:
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if not isinstance(data, str):
        raise InvalidEventError("cells.data must be base64 text")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidEventError("cells.data is not valid base64") from None


# --------------------------------------------------------------------------------------
# Event validation
# --------------------------------------------------------------------------------------


def normalize_event(event: Mapping[str, Any]) -> tuple[str, Payload]:
    """Split an event into its type and a private, validated payload.

    ``viewerId`` and ``viewerToken`` are dropped if present; every other key except
    ``type`` goes into the payload, deep-copied so that the caller's objects are never
    shared. Known types are checked by :func:`validate_event_payload` and
    ``selection.cells`` becomes a read-only ``uint32`` array.

    Parameters
    ----------
    event
        ``{"type": str, **payload}``.

    Returns
    -------
    tuple
        ``(event_type, payload)``.

    Raises
    ------
    InvalidEventError
        For a missing or empty ``type``, a non-string key, or a structurally broken
        payload of a known type.

    Examples
    --------
    >>> normalize_event({"type": "click", "cell": 4, "button": 0, "shift": False, "ctrl": True})
    ('click', {'cell': 4, 'button': 0, 'shift': False, 'ctrl': True})
    """
    if not isinstance(event, Mapping):
        raise InvalidEventError("an event must be a JSON object")
    event_type = event.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise InvalidEventError("type must be a non-empty string")
    payload: Payload = {}
    for key, value in event.items():
        if not isinstance(key, str):
            raise InvalidEventError("event keys must be strings")
        if key != "type" and key not in _CREDENTIAL_KEYS:
            payload[key] = _own(value)
    _check_known_payload(event_type, payload)
    return event_type, payload


def validate_event_payload(event_type: str, payload: Mapping[str, Any]) -> str | None:
    """Check the payload of a known event type (SPEC §4.3); ``None`` when acceptable.

    Only structural breakage of the types below is rejected. Extra keys are accepted
    everywhere (older viewers send more), ``selection.source`` may be any string, and
    custom types may carry any payload.

    ========================  ============================================================
    type                      required keys
    ========================  ============================================================
    ``ready``                 ``n_cells``: int ≥ 0; ``dimensions``: 1, 2 or 3
    ``selection``             ``cells``: see :func:`decode_cells`; ``source``: str
    ``hover``                 ``cell``: int ≥ 0 or null; ``position``: ``{x, y, z}``
                              finite numbers, or null
    ``click``                 ``cell``: int ≥ 0; ``button``: 0, 1 or 2; ``shift``,
                              ``ctrl``: bool
    ``pong``                  ``requestId``: str
    ``debug_snapshot``        ``requestId``: str
    ``command_error``         ``command``: str; ``reason``: str
    ``session_bundle``        ``requestId``: str; ``status`` ``"ok"`` with ``bytes``
                              int ≥ 0 and ``path`` str, or ``"error"`` with ``error`` str
    ``groups``                ``groups``: list of ``{id, name, color: str, visible: bool,
                              cells}`` (``cells`` as for ``selection``)
    ``user_fields``           ``fields``: list of ``{key: str, kind: "category" |
                              "continuous", categories: list of str or null}``
    ========================  ============================================================

    Parameters
    ----------
    event_type
        The event's ``type``.
    payload
        The event without ``type``, ``viewerId`` and ``viewerToken``; it is not modified.

    Returns
    -------
    str or None
        What is wrong, or ``None``.

    Examples
    --------
    >>> validate_event_payload("ready", {"n_cells": 10, "dimensions": 4})
    'ready.dimensions must be 1, 2 or 3'
    >>> validate_event_payload("my_custom_event", {"anything": [1, "x"]}) is None
    True
    """
    try:
        _check_known_payload(event_type, dict(payload))
    except InvalidEventError as error:
        return str(error)
    return None


def _check_known_payload(event_type: str, payload: Payload) -> None:
    """Validate ``payload`` in place (normalising ``selection.cells``) for known types."""
    check = _PAYLOAD_CHECKS.get(event_type)
    if check is not None:
        check(payload)


def _require_keys(payload: Payload, event_type: str, *keys: str) -> None:
    missing = [key for key in keys if key not in payload]
    if missing:
        raise InvalidEventError(f"{event_type} event is missing {', '.join(missing)}")


def _is_int(value: object) -> TypeGuard[int | np.integer[Any]]:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_number(value: object) -> bool:
    return (
        isinstance(value, int | float | np.integer | np.floating)
        and not isinstance(value, bool | np.bool_)
        and math.isfinite(value)
    )


def _cell_index(value: object, label: str) -> int:
    if not _is_int(value) or not 0 <= value < MAX_CELLS:
        raise InvalidEventError(f"{label} must be a non-negative integer cell index")
    return int(value)


def _require_str(payload: Payload, label: str, key: str) -> None:
    if not isinstance(payload[key], str):
        raise InvalidEventError(f"{label}.{key} must be a string")


def _check_ready(payload: Payload) -> None:
    _require_keys(payload, "ready", "n_cells", "dimensions")
    n_cells = payload["n_cells"]
    if not _is_int(n_cells) or n_cells < 0:
        raise InvalidEventError("ready.n_cells must be a non-negative integer")
    payload["n_cells"] = int(n_cells)
    dimensions = payload["dimensions"]
    if not _is_int(dimensions) or dimensions not in (1, 2, 3):
        raise InvalidEventError("ready.dimensions must be 1, 2 or 3")
    payload["dimensions"] = int(dimensions)


def _check_selection(payload: Payload) -> None:
    _require_keys(payload, "selection", "cells", "source")
    payload["cells"] = _read_only_cells(payload["cells"], "selection")
    _require_str(payload, "selection", "source")


def _read_only_cells(value: object, label: str) -> npt.NDArray[np.uint32]:
    try:
        cells = decode_cells(value)
    except InvalidEventError as error:
        raise InvalidEventError(f"{label}.{error}") from None
    cells.flags.writeable = False
    return cells


def _check_hover(payload: Payload) -> None:
    _require_keys(payload, "hover", "cell", "position")
    if payload["cell"] is not None:
        payload["cell"] = _cell_index(payload["cell"], "hover.cell")
    position = payload["position"]
    if position is not None and not (
        isinstance(position, Mapping) and all(_is_number(position.get(axis)) for axis in "xyz")
    ):
        raise InvalidEventError("hover.position must be null or {x, y, z} with finite numbers")


def _check_click(payload: Payload) -> None:
    _require_keys(payload, "click", "cell", "button", "shift", "ctrl")
    payload["cell"] = _cell_index(payload["cell"], "click.cell")
    button = payload["button"]
    if not _is_int(button) or button not in (0, 1, 2):
        raise InvalidEventError("click.button must be 0, 1 or 2")
    payload["button"] = int(button)
    for key in ("shift", "ctrl"):
        if not isinstance(payload[key], bool):
            raise InvalidEventError(f"click.{key} must be true or false")


def _check_request_reply(event_type: str) -> Callable[[Payload], None]:
    def check(payload: Payload) -> None:
        _require_keys(payload, event_type, "requestId")
        _require_str(payload, event_type, "requestId")

    return check


def _check_command_error(payload: Payload) -> None:
    _require_keys(payload, "command_error", "command", "reason")
    _require_str(payload, "command_error", "command")
    _require_str(payload, "command_error", "reason")


def _check_session_bundle(payload: Payload) -> None:
    _require_keys(payload, "session_bundle", "requestId", "status")
    _require_str(payload, "session_bundle", "requestId")
    status = payload["status"]
    if status == "ok":
        _require_keys(payload, "session_bundle", "bytes", "path")
        if not _is_int(payload["bytes"]) or payload["bytes"] < 0:
            raise InvalidEventError("session_bundle.bytes must be a non-negative integer")
        _require_str(payload, "session_bundle", "path")
    elif status == "error":
        _require_keys(payload, "session_bundle", "error")
        _require_str(payload, "session_bundle", "error")
    else:
        raise InvalidEventError("session_bundle.status must be 'ok' or 'error'")


def _objects(payload: Payload, label: str, key: str, *required: str) -> list[tuple[str, Payload]]:
    """``(label, item)`` of the list ``payload[key]`` whose items are objects with ``required``."""
    _require_keys(payload, label, key)
    items = payload[key]
    if not isinstance(items, list):
        raise InvalidEventError(f"{label}.{key} must be a list")
    out = []
    for i, item in enumerate(items):
        item_label = f"{label}.{key}[{i}]"
        if not isinstance(item, dict):
            raise InvalidEventError(f"{item_label} must be an object")
        _require_keys(item, item_label, *required)
        out.append((item_label, item))
    return out


def _check_groups(payload: Payload) -> None:
    for label, group in _objects(
        payload, "groups", "groups", "id", "name", "color", "visible", "cells"
    ):
        for key in ("id", "name", "color"):
            _require_str(group, label, key)
        if not isinstance(group["visible"], bool):
            raise InvalidEventError(f"{label}.visible must be true or false")
        group["cells"] = _read_only_cells(group["cells"], label)


def _check_user_fields(payload: Payload) -> None:
    for label, entry in _objects(payload, "user_fields", "fields", "key", "kind", "categories"):
        _require_str(entry, label, "key")
        if entry["kind"] not in ("category", "continuous"):
            raise InvalidEventError(f"{label}.kind must be 'category' or 'continuous'")
        categories = entry["categories"]
        if categories is not None and not (
            isinstance(categories, list) and all(isinstance(c, str) for c in categories)
        ):
            raise InvalidEventError(f"{label}.categories must be a list of strings or null")


_PAYLOAD_CHECKS: Final[dict[str, Callable[[Payload], None]]] = {
    "ready": _check_ready,
    "selection": _check_selection,
    "hover": _check_hover,
    "click": _check_click,
    "pong": _check_request_reply("pong"),
    "debug_snapshot": _check_request_reply("debug_snapshot"),
    "command_error": _check_command_error,
    "session_bundle": _check_session_bundle,
    "groups": _check_groups,
    "user_fields": _check_user_fields,
}


def _own(value: Any) -> Any:
    """Deep copy of a JSON-like value; arrays become read-only copies."""
    if isinstance(value, dict):
        return {key: _own(item) for key, item in value.items()}
    if isinstance(value, list):
        if set(map(type, value)) <= _SCALAR_TYPES:
            return list(value)
        return [_own(item) for item in value]
    if isinstance(value, np.ndarray):
        array = value.copy()
        array.flags.writeable = False
        return array
    return value


def _copy_payload(payload: Payload) -> Payload:
    """A copy of a recorded payload for a caller (hook, waiter, snapshot)."""
    return cast(Payload, _copy(payload))


def _copy(value: Any) -> Any:
    """Copy the containers of a recorded payload; read-only arrays are shared."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        if set(map(type, value)) <= _SCALAR_TYPES:
            return list(value)
        return [_copy(item) for item in value]
    return value


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
