"""Cell sets on the wire: a JSON list of indices, or one of two binary forms (SPEC §4.3, PROTOCOL.md).

:func:`decode_cells` turns any accepted form into a read-only ``numpy.uint32`` array;
:func:`encode_cells` makes the compact binary form for large sets.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Final, TypeGuard

import numpy as np
import numpy.typing as npt

U32_ENCODING: Final = "u32-base64"
BITSET_ENCODING: Final = "bitset-base64"


MAX_CELLS: Final = 2**32
"""Cell indices are stored as uint32, so they must be below this."""


class InvalidEventError(ValueError):
    """An event (or its cell list) is structurally broken; the message says what is wrong."""


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


def _is_int(value: object) -> TypeGuard[int | np.integer[Any]]:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)
