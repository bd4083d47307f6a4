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

This module gathers the bridge's public names; the code lives by concern in
:mod:`~cellucid.server.cellsets` (cell-set codecs), :mod:`~cellucid.server.event_schema`
(event validation), :mod:`~cellucid.server.channel` (one viewer's channel) and
:mod:`~cellucid.server.registry` (the viewers of one server and the events route).
"""

from __future__ import annotations

from .cellsets import BITSET_ENCODING, U32_ENCODING, InvalidEventError, decode_cells, encode_cells
from .channel import (
    RING_SIZE,
    HookCallback,
    ViewerChannel,
    ViewerState,
    new_viewer_id,
    new_viewer_token,
)
from .event_schema import normalize_event, validate_event_payload
from .registry import (
    MAX_EVENT_BYTES,
    SERVER_EVENT_TYPES,
    EventRequestError,
    PendingRequests,
    ViewerRegistry,
    error_body,
)

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
