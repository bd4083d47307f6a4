"""Cell names for the viewer's hover tooltip: ``GET /_cellucid/obs_names`` (PROTOCOL.md).

The export format (SPEC §2) has no payload for ``obs_names`` and SPEC §8 forbids adding one
inside a dataset folder, so the names come from the server, from the data source itself: an
AnnData source keeps its ``obs_names``; an export folder has none (404, and the viewer shows
the row number only). The viewer asks for one block of cells at a time, the block holding
the hovered cell, on the first hover there: nothing is fetched at load time.

The answer is binary and bounded: at most :data:`MAX_BLOCK` cells, each name at most
:data:`MAX_NAME_BYTES` bytes of UTF-8::

    u32 LE   start                 first cell of the block
    u32 LE   count                 cells in the block (fewer than asked at the end)
    u32 LE   offsets[count + 1]    offsets[0] = 0; name i = names[offsets[i]:offsets[i + 1]]
    bytes    names                 UTF-8, offsets[count] bytes
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .compare import CompareRequestError, find_dataset

#: the most cells one answer holds (and the default block size)
MAX_BLOCK = 65536
#: longer names are cut (at a character boundary) to this many UTF-8 bytes
MAX_NAME_BYTES = 256


class ObsNamesError(Exception):
    """A request to answer with a JSON error (``status``, ``message``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _utf8(name: object) -> bytes:
    data = str(name).encode("utf-8", "replace")
    if len(data) > MAX_NAME_BYTES:
        data = data[:MAX_NAME_BYTES].decode("utf-8", "ignore").encode("utf-8")
    return data


def encode_block(names: Sequence[Any], start: int, count: int) -> bytes:
    """The binary answer for cells ``start`` … ``start + count - 1`` of ``names``."""
    encoded = [_utf8(n) for n in names[start : start + count]]
    offsets = np.zeros(len(encoded) + 1, dtype="<u4")
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return struct.pack("<II", start, len(encoded)) + offsets.tobytes() + b"".join(encoded)


def decode_block(data: bytes) -> tuple[int, list[str]]:
    """``(start, names)`` of an answer (the inverse of :func:`encode_block`; for tests)."""
    start, count = struct.unpack_from("<II", data, 0)
    offsets = np.frombuffer(data, dtype="<u4", count=count + 1, offset=8)
    base = 8 + 4 * (count + 1)
    blob = data[base:]
    return start, [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(count)]


def _int(query: Mapping[str, str], key: str, default: int) -> int:
    text = query.get(key)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise ObsNamesError(400, f"{key} must be an integer, not {text!r}") from None


def answer(source: Any, query: Mapping[str, str]) -> bytes:
    """The answer to ``GET /_cellucid/obs_names?dataset=&start=&count=`` for ``source``.

    Raises :class:`ObsNamesError` for a bad query (400), an unknown dataset (404) or a source
    without cell names (404).
    """
    try:
        entry = find_dataset(source, query.get("dataset"))
    except CompareRequestError as exc:
        raise ObsNamesError(exc.status, exc.message) from None
    names_of = getattr(source, "obs_names", None)
    names = names_of(entry) if callable(names_of) else None
    if names is None:
        raise ObsNamesError(
            404, "this dataset has no cell names (an export folder does not store obs_names)"
        )
    start = _int(query, "start", 0)
    count = _int(query, "count", MAX_BLOCK)
    n = len(names)
    if not 0 <= start < n:
        raise ObsNamesError(400, f"start must be in [0, {n}), not {start}")
    if not 1 <= count <= MAX_BLOCK:
        raise ObsNamesError(400, f"count must be in [1, {MAX_BLOCK}], not {count}")
    return encode_block(names, start, min(count, n - start))
