"""Whole arrays of a local zarr v2 store, read straight from their chunk files.

zarr-python 3 reads through an asyncio pipeline that costs about a millisecond of Python
per chunk, which is most of the time a server starting on a ten-million-cell ``.zarr``
spends reading its annotations (a 2-D embedding in 312,500-row chunks: 64 chunks, 0.1 s for
26 ms of decompression). A v2 chunk file of a plain numeric array is the compressed bytes of
the whole C-ordered chunk (edge chunks padded), so :func:`read_whole` reads and decodes the
files on two threads (numcodecs releases the GIL) and places them. Anything else (v3, other
stores, filters, F order, non-numeric or big-endian dtypes, a missing chunk file, which
zarr reads as the fill value) is left to zarr: the function returns ``None``.
"""

from __future__ import annotations

import itertools
import math
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

#: threads decoding chunks (a 2-core machine; blosc decodes single-threaded off the main one)
THREADS = 2


def _plain_local_v2(node: Any) -> tuple[Path, Any, np.dtype] | None:
    """``(array folder, metadata, dtype)`` of an array this module reads, else ``None``."""
    meta = getattr(node, "metadata", None)
    if getattr(meta, "zarr_format", None) != 2 or meta.filters or meta.order != "C":
        return None
    store = getattr(getattr(node, "store_path", None), "store", None)
    if type(store).__name__ != "LocalStore" or getattr(store, "root", None) is None:
        return None
    dtype = np.dtype(node.dtype)
    native = "<" if sys.byteorder == "little" else ">"
    if dtype.kind not in "biuf" or dtype.byteorder not in ("=", "|", native):
        return None
    return Path(store.root) / node.store_path.path, meta, dtype


def read_whole(node: Any) -> np.ndarray | None:
    """``node[()]`` for a numeric array of a local zarr v2 store whose chunk files all exist
    (read and decoded without zarr's pipeline), or ``None``: read it with zarr."""
    found = _plain_local_v2(node)
    if found is None:
        return None
    folder, meta, dtype = found
    shape, chunks = tuple(int(s) for s in node.shape), tuple(int(c) for c in meta.chunks)
    if not shape or 0 in shape or len(chunks) != len(shape):
        return None
    out = np.empty(shape, dtype=dtype)
    codec = meta.compressor
    chunk_bytes = math.prod(chunks) * dtype.itemsize

    def place(coord: tuple[int, ...]) -> bool:
        try:
            raw = (folder / meta.encode_chunk_key(coord)).read_bytes()
        except FileNotFoundError:
            return False
        data = np.frombuffer(raw if codec is None else codec.decode(raw), dtype=np.uint8)
        if data.size != chunk_bytes:
            return False
        region = tuple(
            slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(coord, chunks, shape, strict=True)
        )
        used = tuple(slice(0, r.stop - r.start) for r in region)
        out[region] = data.view(dtype).reshape(chunks)[used]
        return True

    grid = list(itertools.product(*(range(-(-s // c)) for s, c in zip(shape, chunks, strict=True))))
    if len(grid) == 1:
        return out if place(grid[0]) else None
    with ThreadPoolExecutor(THREADS, thread_name_prefix="cellucid-zarr") as pool:
        ok = all(list(pool.map(place, grid)))
    return out if ok else None
