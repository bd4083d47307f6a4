"""Binary data on the widget's Jupyter comm: cell-index traits and payloads in parts.

Per-cell data never travels as JSON numbers. The ``selection`` trait is serialised with
:func:`cells_to_json` / :func:`cells_from_json` (the smaller of a uint32 list and a bitset,
as raw bytes that ipywidgets sends as a binary buffer), and any large binary payload is
split into parts of at most :data:`MAX_PART` bytes, one buffer per message, because
notebook websockets cap browser → kernel messages at about 10 MB (SPEC §4.5). The front
end (``js/widget/src/parts.js``) follows the same rule.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import traitlets

from .server.cellsets import decode_cells, encode_cells

__all__ = [
    "MAX_PART",
    "CellIndices",
    "PartCollector",
    "as_cell_indices",
    "cells_from_json",
    "cells_to_json",
    "split_parts",
]

MAX_PART: Final = 4 * 1024 * 1024
"""Largest binary buffer of one comm message."""


def as_cell_indices(
    cells: object, n_cells: int, *, label: str = "cells", allow_empty: bool = True
) -> npt.NDArray[np.uint32]:
    """Sorted unique ``uint32`` indices from integer indices or a boolean mask of length n.

    Raises ``ValueError`` for negative, too large or non-integer indices, a mask of the
    wrong length, or (unless ``allow_empty``) no cells; the caller's array is not changed.

    Examples
    --------
    >>> as_cell_indices([3, 1, 3], 5).tolist()
    [1, 3]
    >>> as_cell_indices(np.array([True, False, True]), 3).tolist()
    [0, 2]
    """
    array = np.asarray(cells)
    if array.dtype == bool:
        if array.ndim != 1 or array.shape[0] != n_cells:
            raise ValueError(
                f"{label}: a boolean mask must have one entry per cell ({n_cells}), "
                f"not shape {array.shape}"
            )
        out = np.flatnonzero(array).astype(np.uint32)
    else:
        if array.ndim != 1:
            raise ValueError(f"{label} must be one-dimensional, not shape {array.shape}")
        if array.size and not np.issubdtype(array.dtype, np.integer):
            if not np.issubdtype(array.dtype, np.floating) or not np.all(
                np.isfinite(array) & (array == np.round(array))
            ):
                raise ValueError(f"{label} must be integer cell indices, not {array.dtype}")
            array = array.astype(np.int64)
        if array.size and int(array.min()) < 0:
            raise ValueError(f"{label} holds the negative index {int(array.min())}")
        if array.size and int(array.max()) >= n_cells:
            raise ValueError(
                f"{label} holds the index {int(array.max())}, but the dataset has {n_cells} "
                "cells (indices go from 0 to n_cells - 1)"
            )
        out = np.unique(array.astype(np.int64, copy=False)).astype(np.uint32)
    if not allow_empty and out.size == 0:
        raise ValueError(f"{label} must not be empty")
    out.flags.writeable = False
    return out


def cells_to_json(value: npt.NDArray[np.uint32] | None, widget: Any) -> dict[str, Any] | None:
    """ipywidgets serializer: the binary cell-set form of :func:`encode_cells`, raw bytes."""
    if value is None:
        return None
    n = int(getattr(widget, "n_cells", 0) or 0)
    if value.size and int(value.max()) >= n:
        n = int(value.max()) + 1
    encoded = encode_cells(value, n, raw=True, checked=True)  # trait values are validated
    encoded["data"] = memoryview(encoded["data"])
    return encoded


def cells_from_json(value: Any, widget: Any) -> npt.NDArray[np.uint32] | None:
    """ipywidgets deserializer: the inverse of :func:`cells_to_json` (read-only array)."""
    if value is None:
        return None
    if isinstance(value, Mapping) and isinstance(value.get("data"), memoryview):
        value = {**value, "data": value["data"].tobytes()}
    cells = decode_cells(value)
    cells.flags.writeable = False
    return cells


class CellIndices(traitlets.TraitType[npt.NDArray[np.uint32], Any]):
    """A trait holding a read-only ``uint32`` array of cell indices.

    Assigned values go through ``obj._validate_cells(value)`` when the owner defines it
    (the widget checks against its cell count), else through :func:`as_cell_indices`
    without an upper bound.
    """

    default_value = np.zeros(0, dtype=np.uint32)
    info_text = "cell indices (integers or a boolean mask)"

    def validate(self, obj: Any, value: Any) -> npt.NDArray[np.uint32]:
        check = getattr(obj, "_validate_cells", None)
        if check is not None:
            return check(value)
        return as_cell_indices(value, 2**32)

    def make_dynamic_default(self) -> npt.NDArray[np.uint32]:
        empty = np.zeros(0, dtype=np.uint32)
        empty.flags.writeable = False
        return empty


# ------------------------------------------------------------------------------ parts
def split_parts(
    message: Mapping[str, Any], data: bytes | bytearray | memoryview, max_part: int = MAX_PART
) -> Iterator[tuple[dict[str, Any], list[memoryview]]]:
    """``(message + {part, parts}, [buffer])`` for each part of ``data`` (at least one).

    Examples
    --------
    >>> [(m["part"], m["parts"], bytes(b[0])) for m, b in split_parts({"k": 1}, b"abcde", 2)]
    [(0, 3, b'ab'), (1, 3, b'cd'), (2, 3, b'e')]
    """
    view = memoryview(data).cast("B")
    parts = max(1, -(-len(view) // max_part))
    for i in range(parts):
        yield {**message, "part": i, "parts": parts}, [view[i * max_part : (i + 1) * max_part]]


class PartCollector:
    """Joins the parts of messages sent by :func:`split_parts` (or the front end's twin).

    ``add(key, message, buffers)`` returns ``None`` until the last part of ``key`` came,
    then ``(first message, all bytes)``. At most ``max_open`` payloads wait at once (the
    oldest is dropped) and one payload may not exceed ``max_bytes``.

    Examples
    --------
    >>> collector = PartCollector()
    >>> collector.add("a", {"part": 0, "parts": 2}, [b"he"]) is None
    True
    >>> collector.add("a", {"part": 1, "parts": 2}, [b"llo"])
    ({'part': 0, 'parts': 2}, b'hello')
    """

    def __init__(self, *, max_open: int = 64, max_bytes: int = 1 << 30) -> None:
        self._open: dict[str, tuple[dict[str, Any], list[bytes | None], int]] = {}
        self.max_open = max_open
        self.max_bytes = max_bytes

    def add(
        self, key: str, message: Mapping[str, Any], buffers: list[Any] | None
    ) -> tuple[dict[str, Any], bytes] | None:
        parts = message.get("parts", 1)
        part = message.get("part", 0)
        if not isinstance(parts, int) or not isinstance(part, int) or not 0 <= part < parts:
            raise ValueError(f"bad part {part!r} of {parts!r} for {key}")
        chunk = bytes(buffers[0]) if buffers else b""
        first, chunks, size = self._open.pop(key, (dict(message), [None] * parts, 0))
        if len(chunks) != parts or chunks[part] is not None:
            raise ValueError(f"part {part} of {key} came twice or with another count")
        chunks[part] = chunk
        size += len(chunk)
        if size > self.max_bytes:
            raise ValueError(f"{key} exceeds {self.max_bytes} bytes")
        if any(c is None for c in chunks):
            self._open[key] = (first, chunks, size)
            while len(self._open) > self.max_open:
                self._open.pop(next(iter(self._open)))
            return None
        return first, b"".join(c for c in chunks if c is not None)

    def clear(self) -> None:
        """Forget incomplete payloads."""
        self._open.clear()
