"""Upstream cellucid's ``cellucid.session_codecs``: the session bundle's binary codecs."""

from __future__ import annotations

import numpy as np

from .session.bundle import decode_cell_list, decode_user_codes, decode_uvarint

__all__ = ["decode_delta_uvarint", "decode_user_defined_codes", "decode_uvarint"]


def decode_delta_uvarint(
    data: bytes | bytearray | memoryview,
    *,
    max_count: int | None = None,
    max_index: int | None = None,
) -> np.ndarray:
    """A delta-varint cell list (SPEC 5.3) as an ``int64`` array.

    ``max_count`` bounds the count and ``max_index`` every index (``ValueError`` beyond);
    upstream's signature, on :func:`cellucid.session.decode_cell_list`.
    """
    cells = decode_cell_list(data)
    if max_count is not None and cells.size > max_count:
        raise ValueError(f"cell list holds {cells.size} entries, more than {max_count}")
    if max_index is not None and cells.size and int(cells.max()) > max_index:
        raise ValueError(f"cell index {int(cells.max())} exceeds {max_index}")
    return cells


def decode_user_defined_codes(data: bytes | bytearray | memoryview) -> np.ndarray:
    """User-defined codes (SPEC 5.3) as ``uint8``/``uint16``; see
    :func:`cellucid.session.decode_user_codes`."""
    return decode_user_codes(data)
