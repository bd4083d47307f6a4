"""Byte-level conventions of the export format (SPEC §2.3).

Payloads are raw, headerless, little-endian arrays. Compressed payloads are exactly one gzip
member with mtime 0, no file name and OS byte 0xFF, so identical input gives identical bytes.
Compression uses libdeflate (through the ``deflate`` package): it writes that header, releases
the GIL, and is about three times faster than zlib at the same level.

In exports of at least ``prepare.COLUMN_WRITER_MIN_VALUES`` gene values, float32 gene columns
that are mostly zeros (:data:`COLUMN_MIN_ZERO_FRACTION`) are compressed by
:mod:`.deflate_columns` instead, a DEFLATE writer made for them (word-wise zero runs and
repeated values; ~3x faster than libdeflate there and ~5-10% smaller than zlib). What the
``compression`` level (1-9) means then: how many earlier occurrences of a value it tries as a
match (:data:`.deflate_columns.CHAIN_BY_LEVEL`), so higher is still slower and smaller; any
level is still a standard gzip member.

:func:`write_file` puts a payload on disk. Large payloads are written with ``O_DIRECT`` where
the OS has it: the bytes go from our buffer to the disk without being copied into the page
cache, which on an uncompressed export (gigabytes) costs more CPU than everything else and
ends in dirty-page throttling.
"""

from __future__ import annotations

import errno
import os
import threading
import zlib

import deflate
import numpy as np

#: little-endian dtypes of the format, by file extension
EXT_DTYPES: dict[str, np.dtype] = {
    "f32": np.dtype("<f4"),
    "u8": np.dtype("u1"),
    "u16": np.dtype("<u2"),
    "u32": np.dtype("<u4"),
    "f64": np.dtype("<f8"),
}
#: dtype names used in manifests, by file extension
EXT_DTYPE_NAMES = {
    "f32": "float32",
    "u8": "uint8",
    "u16": "uint16",
    "u32": "uint32",
    "f64": "float64",
}

_GZIP_HEADER = b"\x1f\x8b\x08"


def le_bytes(array: np.ndarray, dtype: str | np.dtype) -> bytes:
    """Return ``array`` as C-ordered little-endian bytes of ``dtype``."""
    return bytes(le_buffer(array, dtype))


def le_buffer(array: np.ndarray, dtype: str | np.dtype) -> memoryview:
    """A little-endian byte view of ``array`` as ``dtype``, copying only when it must."""
    target = np.dtype(dtype).newbyteorder("<")
    arr = np.asarray(array)
    if arr.dtype != target or not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr, dtype=target)
    return memoryview(arr).cast("B")


def gzip_bytes(data: bytes | memoryview, level: int) -> bytes:
    """Compress ``data`` into one reproducible gzip member at ``level`` (1-9)."""
    if not 1 <= int(level) <= 9:
        raise ValueError(f"gzip level must be 1-9, got {level!r}")
    return deflate.gzip_compress(data, int(level))


def gunzip_member(data: bytes) -> bytes:
    """Decompress a ``.gz`` payload, requiring exactly one gzip member and nothing after it.

    Raises ``ValueError`` for a non-gzip file, a truncated member, a second member or
    trailing bytes, since browsers' ``DecompressionStream`` rejects those.
    """
    if len(data) < 18 or not data.startswith(_GZIP_HEADER):
        raise ValueError("not a gzip member (bad magic or shorter than a gzip header)")
    decomp = zlib.decompressobj(wbits=31)
    try:
        out = decomp.decompress(data)
    except zlib.error as exc:
        raise ValueError(f"corrupt gzip data: {exc}") from exc
    if not decomp.eof:
        raise ValueError("truncated gzip member")
    if decomp.unused_data:
        raise ValueError(
            f"{len(decomp.unused_data)} byte(s) after the gzip member (a second member or trailing data)"
        )
    return out


#: a float32 column with at least this fraction of zero values is compressed by
#: :mod:`.deflate_columns`, below it by libdeflate: on values that never repeat the two cost
#: the same CPU and give the same size at ~70% zeros, and libdeflate wins below (at 0% zeros
#: it takes a third of the CPU)
COLUMN_MIN_ZERO_FRACTION = 0.7


def gzip_column(raw: bytes | memoryview, level: int) -> bytes:
    """Compress the little-endian bytes of a float32 column into one reproducible gzip member
    at ``level`` (1-9): with :mod:`.deflate_columns` when it is mostly zeros, else libdeflate.
    """
    words = np.frombuffer(raw, dtype=np.uint8)
    if words.size == 0 or words.size % 4:
        return gzip_bytes(raw, level)
    zeros = 1.0 - np.count_nonzero(words.view(np.uint32)) / (words.size // 4)
    if zeros < COLUMN_MIN_ZERO_FRACTION:
        return gzip_bytes(raw, level)
    from .deflate_columns import gzip_float32_column  # numba: imported when first needed

    return gzip_float32_column(words, level)


def encode_payload(
    raw: bytes | memoryview, compression: int | None, float32_column: bool = False
) -> bytes | memoryview:
    """The stored form of a payload: ``raw`` itself, or its gzip member when compressed
    (by :func:`gzip_column` when ``float32_column``, else :func:`gzip_bytes`)."""
    if not compression:
        return raw
    return gzip_column(raw, compression) if float32_column else gzip_bytes(raw, compression)


# --------------------------------------------------------------------------- writing files
#: payloads at least this big bypass the page cache (``O_DIRECT``, Linux and some BSDs)
DIRECT_MIN_BYTES = 1 << 17
#: offset, length and memory alignment that every file system accepts for ``O_DIRECT``
DIRECT_ALIGN = 4096
#: bytes copied at a time when a direct write's source is not aligned
DIRECT_CHUNK = 1 << 22
_O_DIRECT = getattr(os, "O_DIRECT", 0)
_OPEN_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_TRUNC
    | getattr(os, "O_BINARY", 0)  # Windows: no newline translation
    | getattr(os, "O_CLOEXEC", 0)
)
_local = threading.local()


def aligned_empty(n: int, dtype: str | np.dtype) -> np.ndarray:
    """An uninitialised 1-D array of ``n`` items whose data starts on a :data:`DIRECT_ALIGN`
    boundary, so it can be written with ``O_DIRECT`` without a copy."""
    dtype = np.dtype(dtype)
    nbytes = n * dtype.itemsize
    raw = np.empty(nbytes + DIRECT_ALIGN, dtype=np.uint8)
    start = -raw.ctypes.data % DIRECT_ALIGN
    return raw[start : start + nbytes].view(dtype)


def write_file(path: str | os.PathLike[str], data: bytes | memoryview) -> None:
    """Create or truncate ``path`` and write ``data`` to it.

    Payloads of :data:`DIRECT_MIN_BYTES` or more are opened with ``O_DIRECT``: their aligned
    head is written straight from memory (through a small per-thread aligned copy when
    ``data`` is not aligned) and the rest through the page cache. Where the file system
    refuses direct I/O (tmpfs, some network or FUSE file systems) the write simply goes
    through the page cache; the bytes on disk are the same either way.
    """
    src = np.frombuffer(data, dtype=np.uint8)
    if _O_DIRECT and src.size >= DIRECT_MIN_BYTES:
        try:
            fd = os.open(path, _OPEN_FLAGS | _O_DIRECT, 0o666)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
        else:
            try:
                _write_direct(fd, src)
            finally:
                os.close(fd)
            return
    fd = os.open(path, _OPEN_FLAGS, 0o666)
    try:
        view = memoryview(src)
        done = 0
        while done < src.size:
            done += os.write(fd, view[done:])
    finally:
        os.close(fd)


def _write_direct(fd: int, src: np.ndarray) -> None:
    """Write ``src`` at the start of ``fd`` (opened with ``O_DIRECT``)."""
    import fcntl  # POSIX only, like O_DIRECT

    head = src.size - src.size % DIRECT_ALIGN
    pos = 0
    try:
        if src.ctypes.data % DIRECT_ALIGN == 0:
            pos = _pwrite_all(fd, src[:head], 0)
        else:
            scratch = getattr(_local, "scratch", None)
            if scratch is None or scratch.size < min(DIRECT_CHUNK, head):
                scratch = _local.scratch = aligned_empty(min(DIRECT_CHUNK, head), np.uint8)
            while pos < head:
                n = min(scratch.size, head - pos)
                scratch[:n] = src[pos : pos + n]
                _pwrite_all(fd, scratch[:n], pos)
                pos += n
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        pos = 0  # this write was refused (alignment rules): write everything buffered
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~_O_DIRECT)  # for the tail
    _pwrite_all(fd, src[pos:], pos)


def _pwrite_all(fd: int, src: np.ndarray, offset: int) -> int:
    """``pwrite`` all of ``src`` at ``offset``; returns the offset after it."""
    view = memoryview(src)
    done = 0
    while done < src.size:
        done += os.pwrite(fd, view[done:], offset + done)
    return offset + done
