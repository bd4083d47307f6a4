"""Read ``.cellucid-session`` bundles (SPEC §5): the container and the codecs of its chunks.

A bundle is a small container written by the viewer::

    b"CELLUCID_SESSION\\n" · u32 manifestLen · manifest (UTF-8 JSON)
    then per ``manifest["chunks"]`` entry, in order: u32 chunkLen · chunk (stored form)

All integers are little-endian. :class:`SessionBundleReader` indexes the container lazily and
reads chunks with ``seek``/``read``, so a large bundle is never loaded whole; ``gzip`` chunks are
inflated as a stream with a running limit, so a zip bomb is aborted long before it is inflated.

The codec helpers (uvarint, delta-varint cell lists, user-defined codes) are plain functions
of ``bytes`` and return numpy arrays; decoding is vectorised, so a list of millions of cells
decodes in milliseconds.

Example::

    >>> from cellucid.session import CellucidSessionBundle, decode_cell_list
    >>> bundle = CellucidSessionBundle("my.cellucid-session")  # doctest: +SKIP
    >>> bundle.list_chunk_ids()  # doctest: +SKIP
    ['core/state', 'core/field-overlays', 'highlights/meta', 'highlights/cells/group-1']
    >>> decode_cell_list(bundle.read_chunk_bytes("highlights/cells/group-1"))  # doctest: +SKIP
    array([ 0, 17, 99])
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

__all__ = [
    "MAGIC",
    "MAX_CHUNK_BYTES",
    "MAX_MANIFEST_BYTES",
    "SessionBundleReader",
    "SessionChunkRef",
    "decode_cell_list",
    "decode_user_codes",
    "decode_uvarint",
    "encode_cell_list",
    "encode_user_codes",
    "encode_uvarint",
    "gunzip_limited",
    "user_codes_length",
]

#: The 17 bytes that start every bundle.
MAGIC = b"CELLUCID_SESSION\n"
#: Largest manifest (SPEC §5.1: 1 … 16 MiB).
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
#: Largest stored chunk, and the gzip limit of a chunk without a positive ``uncompressedBytes``.
MAX_CHUNK_BYTES = 512 * 1024 * 1024
#: Largest uvarint, in bytes (9 × 7 = 63 bits, so every value fits an int64).
MAX_UVARINT_BYTES = 9

ENCODING_U8 = 0
ENCODING_U16 = 1
ENCODING_RLE = 2

_READ_PIECE = 1024 * 1024  # gzip chunks are read from the file in pieces of this size
_INT64_MAX = np.uint64(2**63 - 1)
_UVARINT_STEPS = np.array([2 ** (7 * k) for k in range(1, MAX_UVARINT_BYTES)], dtype=np.uint64)
_BAD_MAGIC = "Not a .cellucid-session file (invalid MAGIC header)"
_KINDS = ("json", "binary")
_CODECS = ("none", "gzip")

# ---- uvarint (LEB128) -------------------------------------------------------------------------


def encode_uvarint(value: int) -> bytes:
    """Encode a non-negative integer below ``2**63`` as a uvarint (LEB128, low groups first).

    >>> encode_uvarint(300).hex()
    'ac02'
    """
    value = int(value)
    if value < 0 or value > 2**63 - 1:
        raise ValueError(f"uvarint value must be in [0, 2**63), got {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_uvarint(data: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int]:
    """Decode one uvarint at ``data[pos:]``; return ``(value, position after it)``.

    More than 9 bytes (a value beyond 63 bits) or running off the end raises ``ValueError``.

    >>> decode_uvarint(bytes([0xAC, 0x02, 0x07]))
    (300, 2)
    """
    value = 0
    for i in range(MAX_UVARINT_BYTES):
        if pos + i >= len(data):
            raise ValueError("truncated uvarint")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            return value, pos + i + 1
    raise ValueError(f"uvarint longer than {MAX_UVARINT_BYTES} bytes (beyond 63 bits)")


def _encode_uvarints(values: np.ndarray) -> bytes:
    """Vectorised :func:`encode_uvarint` of a non-negative integer array, concatenated."""
    v = np.asarray(values)
    if v.size == 0:
        return b""
    if v.dtype.kind not in "iu":
        raise ValueError(f"uvarints need integers, got dtype {v.dtype}")
    if v.dtype.kind == "i" and v.min() < 0:
        raise ValueError("uvarints need non-negative integers")
    v = v.astype(np.uint64).ravel()
    if v.max() > _INT64_MAX:
        raise ValueError("uvarint values must be below 2**63")
    # bytes per value: 1 + how many of 2**7, 2**14, ... 2**56 it reaches
    n_bytes = 1 + np.searchsorted(_UVARINT_STEPS, v, side="right")
    owner = np.repeat(np.arange(v.size), n_bytes)
    first = np.cumsum(n_bytes) - n_bytes
    position = np.arange(owner.size) - first[owner]  # byte number within its uvarint
    groups = (v[owner] >> (position.astype(np.uint64) * np.uint64(7))) & np.uint64(0x7F)
    more = position < n_bytes[owner] - 1
    return (groups.astype(np.uint8) | (more.astype(np.uint8) << np.uint8(7))).tobytes()


def _decode_uvarints(buf: np.ndarray, pos: int, count: int, what: str) -> tuple[np.ndarray, int]:
    """Decode ``count`` consecutive uvarints of the uint8 array ``buf`` from ``pos``.

    Returns ``(uint64 values, position after the last one)``. Vectorised: bytes below 128 end a
    uvarint, so the boundaries come from one comparison and the 7-bit groups are combined with
    ``np.add.reduceat``.
    """
    if count == 0:
        return np.zeros(0, dtype=np.uint64), pos
    body = buf[pos:]
    if count > body.size:
        raise ValueError(f"{what}: truncated ({count} uvarints in {body.size} bytes)")
    ends = np.flatnonzero(body < 0x80)
    if ends.size < count:
        raise ValueError(f"{what}: truncated (found {ends.size} of {count} uvarints)")
    ends = ends[:count]
    starts = np.empty(count, dtype=np.int64)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    if int(lengths.max()) > MAX_UVARINT_BYTES:
        raise ValueError(f"{what}: uvarint longer than {MAX_UVARINT_BYTES} bytes (beyond 63 bits)")
    used = body[: int(ends[-1]) + 1]
    if used.size == count:  # every value fits one byte: the common case for small deltas
        return used.astype(np.uint64), pos + used.size
    position = np.arange(used.size, dtype=np.int64) - np.repeat(starts, lengths)
    groups = (used & 0x7F).astype(np.uint64) << (position.astype(np.uint64) * np.uint64(7))
    return np.add.reduceat(groups, starts), pos + used.size


def _as_u8(data: bytes | bytearray | memoryview) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8)


def _require_end(pos: int, size: int, what: str) -> None:
    if pos != size:
        raise ValueError(f"{what}: {size - pos} unexpected byte(s) after the data")


# ---- delta-varint cell lists ------------------------------------------------------------------


def encode_cell_list(cells: Iterable[int] | np.ndarray) -> bytes:
    """Encode cell indices as a delta-varint list (SPEC §5.3), sorted and de-duplicated first.

    >>> encode_cell_list([300, 5, 5, 0]).hex()
    '030005a702'
    """
    arr = np.asarray(cells if isinstance(cells, np.ndarray) else list(cells))
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"cell indices must be integers, got dtype {arr.dtype}")
    arr = np.sort(arr.astype(np.int64).ravel())
    if arr.size:
        arr = arr[np.concatenate(([True], arr[1:] != arr[:-1]))]  # de-duplicate
    if arr.size and arr[0] < 0:
        raise ValueError("cell indices must be non-negative")
    deltas = np.diff(arr, prepend=np.int64(0)) if arr.size else arr
    return encode_uvarint(arr.size) + _encode_uvarints(deltas)


def decode_cell_list(
    data: bytes | bytearray | memoryview, *, n_obs: int | None = None
) -> np.ndarray:
    """Decode a delta-varint cell list into an ``int64`` array of cell indices.

    ``count`` (uvarint) is followed by ``count`` uvarint deltas; the first is absolute. With
    ``n_obs``, ``count <= n_obs`` and every index ``<= n_obs - 1`` are enforced. Truncation,
    trailing bytes, a uvarint of more than 9 bytes or an index beyond ``2**63 - 1`` raise
    ``ValueError``.

    >>> decode_cell_list(bytes.fromhex("030005a702"), n_obs=301).tolist()
    [0, 5, 300]
    """
    what = "delta-varint cell list"
    count, pos = decode_uvarint(data, 0)
    if n_obs is not None and count > n_obs:
        raise ValueError(f"{what}: count {count} exceeds n_obs {n_obs}")
    buf = _as_u8(data)
    deltas, pos = _decode_uvarints(buf, pos, count, what)
    _require_end(pos, buf.size, what)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    # each delta is below 2**63, so a running sum cannot wrap before it first passes 2**63 - 1
    indices = np.cumsum(deltas, dtype=np.uint64)
    if bool((indices > _INT64_MAX).any()):
        raise ValueError(f"{what}: cell index beyond 2**63 - 1")
    last = int(indices[-1])  # deltas are non-negative: the last index is the largest
    if n_obs is not None and last > n_obs - 1:
        raise ValueError(f"{what}: cell index {last} is not below n_obs {n_obs}")
    return indices.astype(np.int64)


# ---- user-defined codes -----------------------------------------------------------------------


def _codes_header(data: bytes | bytearray | memoryview) -> tuple[int, int, int]:
    if len(data) == 0:
        raise ValueError("user-defined codes: empty chunk")
    encoding = data[0]
    if encoding not in (ENCODING_U8, ENCODING_U16, ENCODING_RLE):
        raise ValueError(f"user-defined codes: unknown encoding {encoding}")
    length, pos = decode_uvarint(data, 1)
    return encoding, length, pos


def user_codes_length(data: bytes | bytearray | memoryview) -> int:
    """The element count that a user-defined codes chunk declares, read from its header only.

    >>> user_codes_length(encode_user_codes([1, 1, 1, 2]))
    4
    """
    return _codes_header(data)[1]


def encode_user_codes(codes: Sequence[int] | np.ndarray, *, encoding: int | None = None) -> bytes:
    """Encode user-defined codes (SPEC §5.3).

    ``encoding`` ``0`` = raw uint8, ``1`` = raw uint16 LE, ``2`` = RLE of ``(value, runLength)``
    uvarint pairs. By default the smaller of RLE and raw is chosen, raw being uint8 when every
    code is below 256 (as the viewer does).

    >>> encode_user_codes([3] * 1000).hex()
    '02e8070103e807'
    """
    arr = np.asarray(codes)
    if arr.size and (arr.dtype.kind not in "iu" or arr.min() < 0 or arr.max() > 0xFFFF):
        raise ValueError("user-defined codes must be integers in [0, 65535]")
    arr = arr.astype(np.int64, copy=False).ravel()
    n = arr.size
    if n:
        starts = np.flatnonzero(np.diff(arr, prepend=arr[0] - 1))
        runs = np.diff(np.append(starts, n))
        pairs = np.column_stack([arr[starts], runs]).ravel()
    else:
        pairs = np.zeros(0, dtype=np.int64)
    rle = encode_uvarint(pairs.size // 2) + _encode_uvarints(pairs)
    wide = bool(n and arr.max() >= 256)
    if encoding is None:
        raw_size = n * (2 if wide else 1)
        encoding = ENCODING_RLE if len(rle) < raw_size else (ENCODING_U16 if wide else ENCODING_U8)
    head = bytes([encoding]) + encode_uvarint(n)
    if encoding == ENCODING_RLE:
        return head + rle
    if encoding == ENCODING_U16:
        return head + arr.astype("<u2").tobytes()
    if encoding == ENCODING_U8:
        if wide:
            raise ValueError("raw uint8 codes cannot hold values >= 256")
        return head + arr.astype(np.uint8).tobytes()
    raise ValueError(f"unknown user-defined codes encoding {encoding}")


def decode_user_codes(
    data: bytes | bytearray | memoryview, *, max_length: int = MAX_CHUNK_BYTES
) -> np.ndarray:
    """Decode user-defined codes into a ``uint8`` or ``uint16`` array.

    Raw encodings keep their width; RLE yields uint8 unless some value is ``>= 256``, skips
    zero-length runs and must fill exactly the declared length. A declared length above
    ``max_length``, an unknown encoding, truncation, trailing bytes or an RLE value above
    65535 raise ``ValueError``.

    >>> decode_user_codes(bytes([2, 3, 2, 4, 2, 5, 1])).tolist()
    [4, 4, 5]
    """
    what = "user-defined codes"
    encoding, length, pos = _codes_header(data)
    if length > max_length:
        raise ValueError(f"{what}: length {length} exceeds the limit {max_length}")
    buf = _as_u8(data)
    if encoding in (ENCODING_U8, ENCODING_U16):
        width = 1 if encoding == ENCODING_U8 else 2
        end = pos + width * length
        if end > buf.size:
            raise ValueError(f"{what}: truncated ({buf.size - pos} of {width * length} bytes)")
        _require_end(end, buf.size, what)
        if encoding == ENCODING_U8:
            return buf[pos:end].copy()
        return buf[pos:end].view("<u2").astype(np.uint16)
    n_pairs, pos = decode_uvarint(data, pos)
    pairs, pos = _decode_uvarints(buf, pos, 2 * n_pairs, what)
    _require_end(pos, buf.size, what)
    values, runs = pairs[0::2], pairs[1::2]
    keep = runs > 0
    values, runs = values[keep], runs[keep]
    if values.size and int(values.max()) > 0xFFFF:
        raise ValueError(f"{what}: value {int(values.max())} does not fit uint16")
    if runs.size and int(runs.max()) > length:
        raise ValueError(f"{what}: a run exceeds length {length}")
    total = int(runs.sum())  # each run <= length <= max_length: no overflow
    if total != length:
        raise ValueError(f"{what}: runs fill {total} of {length}")
    dtype = np.uint16 if values.size and int(values.max()) >= 256 else np.uint8
    return np.repeat(values.astype(dtype), runs.astype(np.int64))


# ---- gzip -------------------------------------------------------------------------------------


def gunzip_limited(pieces: bytes | Iterable[bytes], limit: int) -> bytes:
    """Inflate one gzip stream, aborting as soon as the output would exceed ``limit`` bytes.

    ``pieces`` is the compressed data, whole or as an iterable of pieces (read lazily). Output
    is produced with ``zlib.decompressobj(...).decompress(data, max_length)``, so at most
    ``limit + 1`` bytes are ever inflated. Exceeding the limit, a truncated or corrupt stream,
    and data after the stream raise ``ValueError``.

    >>> import gzip
    >>> gunzip_limited(gzip.compress(b"hello"), 5)
    b'hello'
    """
    if isinstance(pieces, (bytes, bytearray, memoryview)):
        pieces = (bytes(pieces),)
    inflater = zlib.decompressobj(wbits=31)  # gzip framing only
    out = bytearray()
    try:
        for piece in pieces:
            if inflater.eof:
                if piece:
                    raise ValueError("gzip chunk: data after the gzip stream")
                continue
            data = piece
            while data and not inflater.eof:
                out += inflater.decompress(data, limit - len(out) + 1)
                if len(out) > limit:
                    raise ValueError(f"gzip chunk inflates beyond its limit of {limit} bytes")
                data = inflater.unconsumed_tail
            if inflater.unused_data:
                raise ValueError("gzip chunk: data after the gzip stream")
    except zlib.error as exc:
        raise ValueError(f"gzip chunk: corrupt stream ({exc})") from exc
    if not inflater.eof:
        raise ValueError("gzip chunk: truncated stream")
    return bytes(out)


# ---- temporary bundles ------------------------------------------------------------------------

_TEMPORARY: set[Path] = set()
_TEMPORARY_LOCK = threading.Lock()


def _remove_temporary_bundles() -> None:
    with _TEMPORARY_LOCK:
        paths = list(_TEMPORARY)
        _TEMPORARY.clear()
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


atexit.register(_remove_temporary_bundles)


def remove_at_exit(path: str | Path) -> None:
    """Delete the file at ``path`` when the interpreter exits (a received bundle nobody
    opened); a :class:`CellucidSessionBundle` made ``temporary`` from it, then saved, keeps
    its copy."""
    with _TEMPORARY_LOCK:
        _TEMPORARY.add(Path(path).resolve())


# ---- the container ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionChunkRef:
    """Where one chunk is stored: ``offset`` of its stored bytes in the file, and their count."""

    id: str
    meta: dict[str, Any]
    offset: int
    stored_bytes: int


@dataclass(frozen=True)
class _Index:
    manifest: dict[str, Any]
    metas: dict[str, dict[str, Any]]  # chunk id -> manifest entry, manifest order
    refs: dict[str, SessionChunkRef]
    errors: dict[str, str]  # chunk id -> why it cannot be read (truncated container)


class SessionBundleReader:
    """A ``.cellucid-session`` bundle on disk (SPEC §5.4), read only: the container and its
    chunks. The public :class:`cellucid.session.CellucidSessionBundle` adds
    ``apply_to_anndata`` (:mod:`cellucid.session.reader`), so that this module, the codecs and
    :mod:`cellucid.session.apply` depend on nothing above them.

    The file is indexed on first need (magic, manifest length, manifest JSON, chunk ids and
    positions) and chunks are read with ``seek``/``read``; nothing reads the whole file.

    ``temporary=True`` marks a file this process created (e.g. a bundle uploaded by the viewer):
    it is deleted by :meth:`cleanup` or at interpreter exit, unless :meth:`save` keeps it.

    Example::

        >>> bundle = SessionBundleReader("analysis.cellucid-session")  # doctest: +SKIP
        >>> bundle.dataset_fingerprint  # doctest: +SKIP
        {'sourceType': 'cellucid-export', 'datasetId': 'pbmc', 'cellCount': 2638}
        >>> bundle.decode_chunk("highlights/meta")["pages"][0]["name"]  # doctest: +SKIP
        'Page 1'

    Raises:
        FileNotFoundError: ``path`` is not a file.
    """

    def __init__(self, path: str | os.PathLike[str], *, temporary: bool = False) -> None:
        self._path = Path(path)
        if not self._path.is_file():
            raise FileNotFoundError(f"No session bundle file at {str(self._path)!r}")
        self._index: _Index | None = None
        self._lock = threading.Lock()
        self._temporary = False
        if temporary:
            self._path = self._path.resolve()
            self._temporary = True
            with _TEMPORARY_LOCK:
                _TEMPORARY.add(self._path)

    def __repr__(self) -> str:
        flag = ", temporary=True" if self._temporary else ""
        return f"{type(self).__name__}({str(self._path)!r}{flag})"

    # ---- properties ---------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        """The bundle file (after :meth:`save` of a temporary bundle: the saved copy)."""
        return self._path

    @property
    def is_temporary(self) -> bool:
        """Whether the file is deleted by :meth:`cleanup` or at interpreter exit."""
        return self._temporary

    @property
    def manifest(self) -> dict[str, Any]:
        """The parsed manifest (treat as read-only)."""
        return self._get_index().manifest

    @property
    def dataset_fingerprint(self) -> dict[str, Any] | None:
        """``manifest["datasetFingerprint"]`` when it is an object, else ``None``."""
        fingerprint = self.manifest.get("datasetFingerprint")
        return fingerprint if isinstance(fingerprint, dict) else None

    # ---- chunks -------------------------------------------------------------------------------
    def list_chunk_ids(self) -> list[str]:
        """Chunk ids in manifest (and file) order."""
        return list(self._get_index().metas)

    def get_chunk_meta(self, chunk_id: str) -> dict[str, Any]:
        """The manifest entry of ``chunk_id``; ``KeyError`` names the id and lists those present."""
        meta = self._get_index().metas.get(chunk_id)
        if meta is None:
            raise KeyError(
                f"No chunk {chunk_id!r} in {self._path.name}; chunks: {self.list_chunk_ids()}"
            )
        return meta

    def has_chunk(self, chunk_id: str) -> bool:
        """Whether the manifest lists ``chunk_id``."""
        return chunk_id in self._get_index().metas

    def read_chunk_bytes(self, chunk_id: str) -> bytes:
        """The stored bytes of a chunk (before its codec). A truncated chunk raises ``ValueError``."""
        ref = self._ref(chunk_id)
        with self._path.open("rb") as fh:
            fh.seek(ref.offset)
            data = fh.read(ref.stored_bytes)
        if len(data) != ref.stored_bytes:
            raise ValueError(f"chunk {chunk_id!r}: truncated ({len(data)} of {ref.stored_bytes})")
        return data

    def decode_chunk(self, chunk_id: str) -> Any:
        """A chunk with its codec applied: parsed JSON for ``json`` chunks, ``bytes`` otherwise.

        ``gzip`` chunks are inflated while they are read, with a running limit of the meta's
        ``uncompressedBytes`` (when a positive int, else 512 MiB). An unknown ``codec`` or
        ``kind`` raises ``ValueError``.
        """
        return self._decode(self._ref(chunk_id))

    @overload
    def iter_chunks(self, decode: Literal[False] = ...) -> Iterator[SessionChunkRef]: ...
    @overload
    def iter_chunks(self, decode: Literal[True]) -> Iterator[tuple[SessionChunkRef, Any]]: ...
    def iter_chunks(self, decode: bool = False) -> Iterator[Any]:
        """Chunks in manifest order: ``SessionChunkRef`` or, with ``decode``, ``(ref, value)``.

        A truncated chunk raises ``ValueError`` when the iteration reaches it.
        """
        for chunk_id in self.list_chunk_ids():
            ref = self._ref(chunk_id)
            yield (ref, self._decode(ref)) if decode else ref

    # ---- files --------------------------------------------------------------------------------
    def save(self, dest: str | os.PathLike[str]) -> Path:
        """Copy the bundle to ``dest`` (parent folders are created) and return its path.

        A temporary bundle is kept from then on: it now refers to the saved copy (``path``
        becomes ``dest``), its temporary file is removed, and nothing is deleted at exit.

        >>> bundle.save("sessions/run1.cellucid-session")  # doctest: +SKIP
        PosixPath('sessions/run1.cellucid-session')
        """
        target = Path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        same = target.exists() and target.resolve() == self._path.resolve()
        if not same:
            shutil.copyfile(self._path, target)
        if self._temporary:
            old = self._path
            self._forget_temporary()
            self._path = target
            if not same:
                old.unlink(missing_ok=True)
        return target

    def cleanup(self) -> bool:
        """Delete the file of a temporary bundle now; returns whether a file was deleted.

        Idempotent, and a no-op (``False``) for a bundle that is not temporary.
        """
        if not self._temporary:
            return False
        self._forget_temporary()
        try:
            self._path.unlink()
        except FileNotFoundError:
            return False
        return True

    # ---- internals ----------------------------------------------------------------------------
    def _forget_temporary(self) -> None:
        self._temporary = False
        with _TEMPORARY_LOCK:
            _TEMPORARY.discard(self._path)

    def _ref(self, chunk_id: str) -> SessionChunkRef:
        index = self._get_index()
        ref = index.refs.get(chunk_id)
        if ref is not None:
            return ref
        if chunk_id in index.errors:
            raise ValueError(f"chunk {chunk_id!r}: {index.errors[chunk_id]}")
        self.get_chunk_meta(chunk_id)  # raises the KeyError
        raise AssertionError("unreachable")  # pragma: no cover

    def _stored_pieces(self, ref: SessionChunkRef) -> Iterator[bytes]:
        with self._path.open("rb") as fh:
            fh.seek(ref.offset)
            left = ref.stored_bytes
            while left:
                piece = fh.read(min(left, _READ_PIECE))
                if not piece:
                    raise ValueError(f"chunk {ref.id!r}: truncated")
                left -= len(piece)
                yield piece

    def _decode(self, ref: SessionChunkRef) -> Any:
        kind, codec = ref.meta.get("kind"), ref.meta.get("codec")
        if kind not in _KINDS:
            raise ValueError(f"chunk {ref.id!r}: unknown kind {kind!r} (expected json or binary)")
        if codec not in _CODECS:
            raise ValueError(f"chunk {ref.id!r}: unknown codec {codec!r} (expected none or gzip)")
        if codec == "gzip":
            limit = ref.meta.get("uncompressedBytes")
            if not (isinstance(limit, int) and not isinstance(limit, bool) and limit > 0):
                limit = MAX_CHUNK_BYTES
            try:
                data = gunzip_limited(self._stored_pieces(ref), limit)
            except ValueError as exc:
                raise ValueError(f"chunk {ref.id!r}: {exc}") from exc
        else:
            data = self.read_chunk_bytes(ref.id)
        if kind == "json":
            try:
                return json.loads(data.decode("utf-8"))
            except ValueError as exc:
                raise ValueError(f"chunk {ref.id!r}: invalid JSON ({exc})") from exc
        return data

    def _get_index(self) -> _Index:
        index = self._index
        if index is None:
            with self._lock:
                if self._index is None:
                    self._index = self._build_index()
                index = self._index
        return index

    def _build_index(self) -> _Index:
        with self._path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if fh.read(len(MAGIC)) != MAGIC:
                raise ValueError(_BAD_MAGIC)
            head = fh.read(4)
            if len(head) < 4:
                raise ValueError("truncated session bundle: no manifest length")
            (manifest_len,) = struct.unpack("<I", head)
            if not 1 <= manifest_len <= MAX_MANIFEST_BYTES:
                raise ValueError(f"manifest length {manifest_len} is outside 1 … 16 MiB")
            raw = fh.read(manifest_len)
            if len(raw) < manifest_len:
                raise ValueError("truncated session bundle: manifest cut short")
            manifest = _parse_manifest(raw)
            refs: dict[str, SessionChunkRef] = {}
            errors: dict[str, str] = {}
            pos = len(MAGIC) + 4 + manifest_len
            broken = ""
            for meta in manifest["chunks"]:
                chunk_id = meta["id"]
                if broken:
                    errors[chunk_id] = broken
                    continue
                fh.seek(pos)
                head = fh.read(4)
                if len(head) < 4:
                    broken = "truncated session bundle (the chunk is missing)"
                    errors[chunk_id] = broken
                    continue
                (length,) = struct.unpack("<I", head)
                if length > MAX_CHUNK_BYTES:
                    errors[chunk_id] = f"chunk length {length} exceeds 512 MiB"
                    broken = "follows a chunk with an invalid length"
                    continue
                if pos + 4 + length > size:
                    broken = "truncated session bundle (the chunk is cut short)"
                    errors[chunk_id] = broken
                    continue
                refs[chunk_id] = SessionChunkRef(chunk_id, meta, pos + 4, length)
                pos += 4 + length
        metas = {meta["id"]: meta for meta in manifest["chunks"]}
        return _Index(manifest, metas, refs, errors)


def _parse_manifest(raw: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise ValueError(f"session manifest is not valid UTF-8 JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise ValueError("session manifest is not a JSON object")
    chunks = manifest.get("chunks")
    if not isinstance(chunks, list):
        raise ValueError("session manifest has no 'chunks' list")
    seen: set[str] = set()
    for meta in chunks:
        chunk_id = meta.get("id") if isinstance(meta, dict) else None
        if not isinstance(chunk_id, str) or not chunk_id:
            raise ValueError(f"session manifest: chunk id must be a non-empty string: {meta!r}")
        if chunk_id in seen:
            raise ValueError(f"session manifest: duplicate chunk id {chunk_id!r}")
        seen.add(chunk_id)
    return manifest
