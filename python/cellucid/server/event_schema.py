"""What a viewer event may contain (SPEC §4.3): normalisation and payload checks.

:func:`normalize_event` splits an event into its type and a private copy of its payload;
:func:`validate_event_payload` checks the payload of a known event type.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt

from .cellsets import MAX_CELLS, InvalidEventError, _is_int, decode_cells

_CREDENTIAL_KEYS: Final = ("viewerId", "viewerToken")
_SCALAR_TYPES: Final = frozenset({str, int, float, bool, type(None)})

Payload = dict[str, Any]


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
