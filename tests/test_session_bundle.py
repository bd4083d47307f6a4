"""The ``.cellucid-session`` reader and codecs (SPEC §5.1-§5.4).

Bundles come from two independent writers: ``build_bundle`` below (``struct``/``gzip``/``json``
only, written from the SPEC) and the viewer's own ``writeSessionBundle`` run under node
(``js/tools/make_session_bundle.mjs``). Known byte strings pin the codecs.
"""

from __future__ import annotations

import gzip
import json
import shutil
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cellucid.session import (
    MAGIC,
    CellucidSessionBundle,
    SessionChunkRef,
    decode_cell_list,
    decode_user_codes,
    decode_uvarint,
    encode_cell_list,
    encode_user_codes,
    encode_uvarint,
    gunzip_limited,
    user_codes_length,
)
from cellucid.session import bundle as bundle_module

REPO = Path(__file__).resolve().parents[1]
NODE_WRITER = REPO / "js" / "tools" / "make_session_bundle.mjs"
NODE = shutil.which("node")
BAD_MAGIC = "Not a .cellucid-session file (invalid MAGIC header)"


# ---- independent writers ----------------------------------------------------------------------
def build_bundle(
    chunks: list[dict[str, Any]],
    *,
    fingerprint: Any = None,
    manifest_extra: dict[str, Any] | None = None,
    trailing: bytes = b"",
) -> bytes:
    """A bundle from chunk specs ``{"id", "data", "kind"?, "codec"?, **meta overrides}``.

    ``data`` is a JSON value for kind ``json`` and bytes for kind ``binary``; the codec
    ``gzip`` compresses it; ``stored`` replaces the stored bytes. ``fingerprint`` defaults to a 10-cell, 4-gene dataset.
    """
    metas, stored_parts = [], []
    for spec in chunks:
        spec = dict(spec)
        data, stored = spec.pop("data"), spec.pop("stored", None)
        kind = spec.setdefault("kind", "binary")
        codec = spec.setdefault("codec", "none")
        raw = json.dumps(data).encode() if kind == "json" else bytes(data)
        if stored is None:
            stored = gzip.compress(raw, mtime=0) if codec == "gzip" else raw
        meta = {
            "contributorId": "test",
            "priority": "lazy",
            "label": spec["id"],
            "datasetDependent": True,
            "storedBytes": len(stored),
            "uncompressedBytes": len(raw),
        }
        meta.update(spec)
        metas.append(meta)
        stored_parts.append(stored)
    if fingerprint is None:
        fingerprint = {"sourceType": "test", "datasetId": "demo", "cellCount": 10, "varCount": 4}
    manifest = {
        "createdAt": "2024-05-01T12:00:00.000Z",
        "dataSource": None,
        "datasetFingerprint": fingerprint,
        "summary": None,
        "chunks": metas,
        **(manifest_extra or {}),
    }
    text = json.dumps(manifest).encode()
    out = [MAGIC, struct.pack("<I", len(text)), text]
    for stored in stored_parts:
        out += [struct.pack("<I", len(stored)), stored]
    return b"".join(out) + trailing


def write_bundle(path: Path, chunks: list[dict[str, Any]], **kwargs: Any) -> Path:
    path.write_bytes(build_bundle(chunks, **kwargs))
    return path


def node_bundle(path: Path, session: dict[str, Any]) -> Path:
    """Write ``session`` with the viewer's ``writeSessionBundle`` (see make_session_bundle.mjs)."""
    if NODE is None:
        pytest.fail("node is not on PATH: `make setup` needs Node.js 20 for the JS build")
    subprocess.run(
        [NODE, str(NODE_WRITER), str(path)],
        input=json.dumps(session),
        text=True,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return path


# ---- uvarint ----------------------------------------------------------------------------------
KNOWN_UVARINTS = [
    (0, "00"),
    (1, "01"),
    (127, "7f"),
    (128, "8001"),
    (300, "ac02"),
    (16383, "ff7f"),
    (16384, "808001"),
    (2**63 - 1, "ff" * 8 + "7f"),
]


@pytest.mark.parametrize(("value", "hexed"), KNOWN_UVARINTS)
def test_uvarint_known_bytes(value: int, hexed: str) -> None:
    assert encode_uvarint(value).hex() == hexed
    assert decode_uvarint(bytes.fromhex(hexed)) == (value, len(hexed) // 2)


def test_uvarint_boundaries_round_trip_and_positions() -> None:
    values = [2 ** (7 * k) + d for k in range(1, 9) for d in (-1, 0, 1)] + [2**62, 2**63 - 1]
    blob = b"\x05" + b"".join(encode_uvarint(v) for v in values)
    pos, decoded = 1, []
    for _ in values:
        value, pos = decode_uvarint(blob, pos)
        decoded.append(value)
    assert decoded == values
    assert pos == len(blob)
    assert len(encode_uvarint(2**56 - 1)) == 8
    assert len(encode_uvarint(2**56)) == 9


def test_uvarint_errors() -> None:
    with pytest.raises(ValueError, match=r"2\*\*63"):
        encode_uvarint(2**63)
    with pytest.raises(ValueError):
        encode_uvarint(-1)
    with pytest.raises(ValueError, match="truncated"):
        decode_uvarint(b"\x80\x80")
    with pytest.raises(ValueError, match="truncated"):
        decode_uvarint(b"\x01", 1)
    with pytest.raises(ValueError, match="9 bytes"):
        decode_uvarint(b"\xff" * 9 + b"\x01")  # a 10th byte: beyond 63 bits


# ---- delta-varint cell lists ------------------------------------------------------------------
def reference_cell_list(cells: list[int]) -> bytes:
    """The SPEC's cell list, one uvarint at a time (the vectorised encoder must agree)."""
    ordered = sorted(set(cells))
    deltas = [b - a for a, b in zip([0, *ordered], ordered, strict=False)]
    return encode_uvarint(len(ordered)) + b"".join(encode_uvarint(d) for d in deltas)


def test_cell_list_known_bytes_and_empty() -> None:
    assert encode_cell_list([300, 5, 5, 0]).hex() == "030005a702"
    assert decode_cell_list(bytes.fromhex("030005a702")).tolist() == [0, 5, 300]
    assert encode_cell_list([]) == b"\x00"
    empty = decode_cell_list(b"\x00", n_obs=0)
    assert empty.dtype == np.int64
    assert empty.size == 0


def test_cell_list_round_trip_large_and_wide_values() -> None:
    rng = np.random.default_rng(3)
    cells = rng.choice(3_000_000, size=1_000_000, replace=False)
    data = encode_cell_list(cells)
    decoded = decode_cell_list(data, n_obs=3_000_000)
    np.testing.assert_array_equal(decoded, np.sort(cells))
    wide = [0, 127, 128, 16384, 2**35 + 3, 2**62, 2**63 - 1]
    assert encode_cell_list(wide) == reference_cell_list(wide)
    assert decode_cell_list(encode_cell_list(wide)).tolist() == wide
    sample = rng.integers(0, 2**40, 500).tolist()
    assert encode_cell_list(sample) == reference_cell_list(sample)


def test_cell_list_bounds() -> None:
    data = encode_cell_list([0, 4])
    assert decode_cell_list(data, n_obs=5).tolist() == [0, 4]
    with pytest.raises(ValueError, match="not below n_obs 4"):
        decode_cell_list(data, n_obs=4)
    with pytest.raises(ValueError, match="count 3 exceeds n_obs 2"):
        decode_cell_list(encode_cell_list([0, 1, 2]), n_obs=2)
    with pytest.raises(ValueError, match="2\\*\\*63 - 1"):
        decode_cell_list(b"\x02" + encode_uvarint(2**63 - 1) + b"\x01")


def test_cell_list_malformed() -> None:
    with pytest.raises(ValueError, match="truncated"):
        decode_cell_list(b"\x02\x01")  # two cells, one delta
    with pytest.raises(ValueError, match="truncated"):
        decode_cell_list(b"\x01\x80\x80")  # the delta never ends
    with pytest.raises(ValueError, match="truncated"):
        decode_cell_list(b"")
    with pytest.raises(ValueError, match="9 bytes"):
        decode_cell_list(b"\x02\x00" + b"\xff" * 9 + b"\x01")
    with pytest.raises(ValueError, match="unexpected byte"):
        decode_cell_list(b"\x01\x05\x07")
    huge_count = encode_uvarint(10**12) + b"\x01"  # must fail without allocating 10**12 cells
    with pytest.raises(ValueError, match="truncated"):
        decode_cell_list(huge_count)
    with pytest.raises(ValueError, match="non-negative"):
        encode_cell_list([3, -1])


# ---- user-defined codes -----------------------------------------------------------------------
def test_user_codes_known_bytes() -> None:
    assert encode_user_codes([0, 1, 2, 3, 4]).hex() == "00050001020304"  # raw u8
    assert encode_user_codes([300, 1, 65535, 2]).hex() == "01042c0101 00ffff0200".replace(" ", "")
    assert encode_user_codes([3] * 1000).hex() == "02e8070103e807"  # RLE
    raw = decode_user_codes(bytes.fromhex("00050001020304"))
    assert raw.dtype == np.uint8
    assert raw.tolist() == [0, 1, 2, 3, 4]
    wide = decode_user_codes(bytes.fromhex("01042c010100ffff0200"))
    assert wide.dtype == np.uint16
    assert wide.tolist() == [300, 1, 65535, 2]
    runs = decode_user_codes(bytes.fromhex("02e8070103e807"))
    assert runs.dtype == np.uint8
    assert runs.tolist() == [3] * 1000


@pytest.mark.parametrize("encoding", [None, 0, 1, 2])
@pytest.mark.parametrize(
    "codes", [[], [7], [0, 0, 0, 1, 1, 255], list(range(256)) * 3, [5] * 70000]
)
def test_user_codes_round_trip(encoding: int | None, codes: list[int]) -> None:
    data = encode_user_codes(codes, encoding=encoding)
    if encoding is not None:
        assert data[0] == encoding
    assert user_codes_length(data) == len(codes)
    assert decode_user_codes(data).tolist() == codes


def test_user_codes_rle_widths_and_zero_runs() -> None:
    wide = decode_user_codes(encode_user_codes([1000] * 50 + [2] * 50, encoding=2))
    assert wide.dtype == np.uint16
    assert wide.tolist() == [1000] * 50 + [2] * 50
    # pairs (4, 2) (0, 0) (5, 1): the zero run is skipped, and does not widen the output
    assert decode_user_codes(bytes([2, 3, 3, 4, 2, 0, 0, 5, 1])).tolist() == [4, 4, 5]
    assert decode_user_codes(bytes([2, 2, 2, 2, 2, 0xAC, 0x02, 0])).dtype == np.uint8


def test_user_codes_malformed() -> None:
    with pytest.raises(ValueError, match="fill 2 of 3"):
        decode_user_codes(bytes([2, 3, 1, 4, 2]))
    with pytest.raises(ValueError, match="exceeds length"):
        decode_user_codes(bytes([2, 1, 1, 4, 2]))
    with pytest.raises(ValueError, match="unknown encoding 9"):
        decode_user_codes(bytes([9, 0]))
    with pytest.raises(ValueError, match="truncated"):
        decode_user_codes(bytes([0, 3, 1]))
    with pytest.raises(ValueError, match="truncated"):
        decode_user_codes(bytes([1, 2, 1, 0, 1]))
    with pytest.raises(ValueError, match="truncated"):
        decode_user_codes(bytes([2, 3, 2, 4]))
    with pytest.raises(ValueError, match="unexpected byte"):
        decode_user_codes(bytes([0, 1, 1, 1]))
    with pytest.raises(ValueError, match="uint16"):
        decode_user_codes(bytes([2, 1, 1]) + encode_uvarint(65536) + b"\x01")
    with pytest.raises(ValueError, match="empty"):
        decode_user_codes(b"")
    with pytest.raises(ValueError, match="limit 10"):
        decode_user_codes(bytes([2, 11, 1, 0, 11]), max_length=10)
    with pytest.raises(ValueError, match="9 bytes"):
        decode_user_codes(bytes([2, 1, 1]) + b"\xff" * 10 + b"\x01\x01")
    with pytest.raises(ValueError, match="65535"):
        encode_user_codes([70000])
    with pytest.raises(ValueError, match="256"):
        encode_user_codes([300], encoding=0)


# ---- gzip -------------------------------------------------------------------------------------
class CountingInflater:
    """Wraps ``zlib.decompressobj`` and counts every byte it inflates."""

    produced = 0
    original = staticmethod(zlib.decompressobj)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._inner = CountingInflater.original(*args, **kwargs)

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        out = self._inner.decompress(data, max_length)
        CountingInflater.produced += len(out)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture
def counting_inflater(monkeypatch: pytest.MonkeyPatch) -> type[CountingInflater]:
    CountingInflater.produced = 0
    monkeypatch.setattr(bundle_module.zlib, "decompressobj", CountingInflater)
    return CountingInflater


BOMB = gzip.compress(bytes(32 * 1024 * 1024), compresslevel=9, mtime=0)  # ~32 KiB → 32 MiB


def test_gunzip_limited_ok_in_pieces_and_errors() -> None:
    payload = bytes(range(256)) * 40
    packed = gzip.compress(payload, mtime=0)
    assert gunzip_limited(packed, len(payload)) == payload
    assert gunzip_limited((packed[i : i + 1] for i in range(len(packed))), 10**6) == payload
    with pytest.raises(ValueError, match="limit of 100 bytes"):
        gunzip_limited(packed, 100)
    with pytest.raises(ValueError, match="truncated"):
        gunzip_limited(packed[:-5], 10**6)
    with pytest.raises(ValueError, match="after the gzip stream"):
        gunzip_limited(packed + packed, 10**6)
    with pytest.raises(ValueError, match="after the gzip stream"):
        gunzip_limited([packed, b"x"], 10**6)
    with pytest.raises(ValueError, match="corrupt"):
        gunzip_limited(b"not gzip at all", 10**6)
    zlib_framed = zlib.compress(payload)  # not gzip framing
    with pytest.raises(ValueError, match="corrupt"):
        gunzip_limited(zlib_framed, 10**6)


def test_zip_bomb_aborts_early(counting_inflater: type[CountingInflater]) -> None:
    assert len(BOMB) < 100_000
    with pytest.raises(ValueError, match="limit of 4096 bytes"):
        gunzip_limited(BOMB, 4096)
    assert counting_inflater.produced <= 4097  # never more than limit + 1 bytes inflated


def test_zip_bomb_chunk_in_a_bundle(
    tmp_path: Path, counting_inflater: type[CountingInflater], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bomb.cellucid-session"

    def bomb_bundle(limit: Any) -> CellucidSessionBundle:
        spec = {"id": "bomb", "codec": "gzip", "data": b"", "stored": BOMB}
        counting_inflater.produced = 0
        return CellucidSessionBundle(write_bundle(path, [{**spec, "uncompressedBytes": limit}]))

    with pytest.raises(ValueError, match=r"chunk 'bomb'.*limit of 1000 bytes"):
        bomb_bundle(1000).decode_chunk("bomb")
    assert counting_inflater.produced <= 1001
    assert len(bomb_bundle(32 * 1024 * 1024).decode_chunk("bomb")) == 32 * 1024 * 1024  # exact fit
    # without a positive uncompressedBytes the limit is MAX_CHUNK_BYTES (512 MiB; 1 MiB here)
    monkeypatch.setattr(bundle_module, "MAX_CHUNK_BYTES", 1024 * 1024)
    for limit in (None, 0, -5, True, "big"):
        with pytest.raises(ValueError, match="limit of 1048576 bytes"):
            bomb_bundle(limit).decode_chunk("bomb")
        assert counting_inflater.produced <= 1024 * 1024 + 1


# ---- the container ----------------------------------------------------------------------------
def sample_chunks() -> list[dict[str, Any]]:
    return [
        {"id": "core/state", "kind": "json", "data": {"camera": {"zoom": 2}}},
        {"id": "big/json", "kind": "json", "codec": "gzip", "data": {"x": "y" * 10000}},
        {"id": "highlights/cells/g1", "data": encode_cell_list([1, 4, 9])},
        {"id": "blob", "codec": "gzip", "data": b"\x00\x01binary" * 100},
        {"id": "empty", "data": b""},
    ]


def test_reads_chunks_in_manifest_order(tmp_path: Path) -> None:
    path = write_bundle(tmp_path / "s.cellucid-session", sample_chunks(), trailing=b"ignored")
    bundle = CellucidSessionBundle(str(path))
    assert bundle.path == path
    assert bundle.list_chunk_ids() == [
        "core/state",
        "big/json",
        "highlights/cells/g1",
        "blob",
        "empty",
    ]
    assert bundle.manifest["createdAt"] == "2024-05-01T12:00:00.000Z"
    assert bundle.dataset_fingerprint == {
        "sourceType": "test",
        "datasetId": "demo",
        "cellCount": 10,
        "varCount": 4,
    }
    assert bundle.decode_chunk("core/state") == {"camera": {"zoom": 2}}
    assert bundle.decode_chunk("big/json") == {"x": "y" * 10000}
    assert bundle.decode_chunk("blob") == b"\x00\x01binary" * 100
    assert bundle.decode_chunk("empty") == b""
    cells = bundle.read_chunk_bytes("highlights/cells/g1")
    assert decode_cell_list(cells, n_obs=10).tolist() == [1, 4, 9]
    assert bundle.read_chunk_bytes("big/json")[:2] == b"\x1f\x8b"  # stored form
    file_bytes = path.read_bytes()
    refs = list(bundle.iter_chunks())
    assert [r.id for r in refs] == bundle.list_chunk_ids()
    for ref in refs:
        assert isinstance(ref, SessionChunkRef)
        assert ref.meta is bundle.get_chunk_meta(ref.id)
        assert struct.unpack_from("<I", file_bytes, ref.offset - 4)[0] == ref.stored_bytes
        stored = file_bytes[ref.offset : ref.offset + ref.stored_bytes]
        assert stored == bundle.read_chunk_bytes(ref.id)
    decoded = list(bundle.iter_chunks(decode=True))
    assert [ref.id for ref, _ in decoded] == bundle.list_chunk_ids()
    assert decoded[0][1] == {"camera": {"zoom": 2}}
    assert decoded[3][1] == b"\x00\x01binary" * 100


def test_missing_chunk_key_error_lists_existing(tmp_path: Path) -> None:
    bundle = CellucidSessionBundle(write_bundle(tmp_path / "s.cellucid-session", sample_chunks()))
    for call in (bundle.get_chunk_meta, bundle.read_chunk_bytes, bundle.decode_chunk):
        with pytest.raises(KeyError) as info:
            call("nope/missing")
        assert "nope/missing" in str(info.value)
        assert "core/state" in str(info.value)
    assert bundle.has_chunk("blob")
    assert not bundle.has_chunk("nope/missing")


def test_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        CellucidSessionBundle(tmp_path / "missing.cellucid-session")
    with pytest.raises(FileNotFoundError):
        CellucidSessionBundle(tmp_path)


@pytest.mark.parametrize(
    "content", [b"", b"CELLUCID", b"NOT_A_SESSION_FILE_AT_ALL", b"cellucid_session\n" + b"\0" * 20]
)
def test_bad_magic_is_reported_lazily(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.cellucid-session"
    path.write_bytes(content)
    bundle = CellucidSessionBundle(path)  # indexing is lazy: no error yet
    with pytest.raises(ValueError) as info:
        bundle.list_chunk_ids()
    assert str(info.value) == BAD_MAGIC


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (struct.pack("<I", 0), "outside 1"),
        (struct.pack("<I", 16 * 1024 * 1024 + 1), "outside 1"),
        (b"\x01\x00", "no manifest length"),
        (struct.pack("<I", 50) + b"{}", "manifest cut short"),
        (struct.pack("<I", 3) + b"{x}", "not valid UTF-8 JSON"),
        (struct.pack("<I", 2) + b"\xff\xfe", "not valid UTF-8 JSON"),
        (struct.pack("<I", 2) + b"[]", "not a JSON object"),
        (struct.pack("<I", 2) + b"{}", "no 'chunks' list"),
        (struct.pack("<I", 14) + b'{"chunks": {}}', "no 'chunks' list"),
    ],
)
def test_bad_manifest(tmp_path: Path, body: bytes, message: str) -> None:
    path = tmp_path / "bad.cellucid-session"
    path.write_bytes(MAGIC + body)
    with pytest.raises(ValueError, match=message):
        CellucidSessionBundle(path).manifest  # noqa: B018


def test_manifest_of_16_mib_is_accepted(tmp_path: Path) -> None:
    text = b'{"chunks": []}'
    text += b" " * (16 * 1024 * 1024 - len(text))  # JSON whitespace up to the limit
    path = tmp_path / "big.cellucid-session"
    path.write_bytes(MAGIC + struct.pack("<I", len(text)) + text)
    assert CellucidSessionBundle(path).list_chunk_ids() == []


@pytest.mark.parametrize(
    ("ids", "message"),
    [(["a", "a"], "duplicate chunk id 'a'"), (["a", ""], "non-empty"), (["a", 5], "non-empty")],
)
def test_bad_chunk_ids(tmp_path: Path, ids: list[Any], message: str) -> None:
    path = write_bundle(tmp_path / "s.cellucid-session", [{"id": i, "data": b"x"} for i in ids])
    with pytest.raises(ValueError, match=message):
        CellucidSessionBundle(path).list_chunk_ids()


def test_chunk_meta_that_is_not_an_object(tmp_path: Path) -> None:
    text = json.dumps({"chunks": ["core/state"]}).encode()
    path = tmp_path / "s.cellucid-session"
    path.write_bytes(MAGIC + struct.pack("<I", len(text)) + text)
    with pytest.raises(ValueError, match="non-empty"):
        CellucidSessionBundle(path).list_chunk_ids()


def test_truncated_chunks_fail_only_when_read(tmp_path: Path) -> None:
    path = tmp_path / "cut.cellucid-session"
    chunks = [*sample_chunks()[:-1], {"id": "last", "data": b"0123456789"}]
    path.write_bytes(build_bundle(chunks)[:-3])
    bundle = CellucidSessionBundle(path)
    assert bundle.list_chunk_ids()[-1] == "last"
    assert bundle.get_chunk_meta("last")["storedBytes"] == 10
    assert bundle.decode_chunk("core/state") == {"camera": {"zoom": 2}}
    with pytest.raises(ValueError, match=r"'last'.*cut short"):
        bundle.read_chunk_bytes("last")
    with pytest.raises(ValueError, match="'last'"):
        bundle.decode_chunk("last")
    with pytest.raises(ValueError, match="'last'"):
        list(bundle.iter_chunks())
    # a missing length prefix: that chunk and every later one are unreadable
    two = [{"id": "a", "data": b"abc"}, {"id": "b", "data": b"d"}, {"id": "c", "data": b"e"}]
    raw = build_bundle(two)
    path.write_bytes(raw[: len(raw) - 8])  # "a" intact, then 2 bytes of the length of "b"
    bundle = CellucidSessionBundle(path)
    assert bundle.read_chunk_bytes("a") == b"abc"
    for chunk_id in ("b", "c"):
        with pytest.raises(ValueError, match="missing"):
            bundle.read_chunk_bytes(chunk_id)


def test_chunk_length_above_512_mib(tmp_path: Path) -> None:
    raw = bytearray(build_bundle([{"id": "a", "data": b"abc"}, {"id": "b", "data": b"d"}]))
    offset = len(raw) - 12  # the length prefix of chunk "a": [4][abc][4][d]
    assert struct.unpack_from("<I", raw, offset)[0] == 3
    struct.pack_into("<I", raw, offset, 512 * 1024 * 1024 + 1)
    path = tmp_path / "s.cellucid-session"
    path.write_bytes(bytes(raw))
    bundle = CellucidSessionBundle(path)
    assert bundle.list_chunk_ids() == ["a", "b"]
    with pytest.raises(ValueError, match="exceeds 512 MiB"):
        bundle.read_chunk_bytes("a")
    with pytest.raises(ValueError, match="invalid length"):
        bundle.read_chunk_bytes("b")


def test_unknown_codec_or_kind(tmp_path: Path) -> None:
    chunks = [
        {"id": "zstd", "codec": "zstd", "data": b"abc"},
        {"id": "text", "kind": "text", "data": b"abc"},
        {"id": "nocodec", "codec": None, "data": b"abc"},
        {"id": "badjson", "kind": "json", "data": None, "stored": b"{oops"},
    ]
    path = write_bundle(tmp_path / "s.cellucid-session", chunks)
    bundle = CellucidSessionBundle(path)
    with pytest.raises(ValueError, match="unknown codec 'zstd'"):
        bundle.decode_chunk("zstd")
    with pytest.raises(ValueError, match="unknown kind 'text'"):
        bundle.decode_chunk("text")
    with pytest.raises(ValueError, match="unknown codec None"):
        bundle.decode_chunk("nocodec")
    assert bundle.read_chunk_bytes("zstd") == b"abc"  # stored bytes need no codec
    with pytest.raises(ValueError, match="invalid JSON"):
        bundle.decode_chunk("badjson")


@pytest.mark.parametrize("fingerprint", [[1, 2], "demo", 5])
def test_fingerprint_that_is_not_an_object(tmp_path: Path, fingerprint: Any) -> None:
    path = write_bundle(tmp_path / "s.cellucid-session", [], fingerprint=fingerprint)
    assert CellucidSessionBundle(path).dataset_fingerprint is None


def test_reads_without_loading_the_whole_file(tmp_path: Path) -> None:
    big = bytes(24 * 1024 * 1024)
    chunks = [{"id": "big", "data": big}, {"id": "small", "kind": "json", "data": [1, 2]}]
    path = write_bundle(tmp_path / "s.cellucid-session", chunks)
    del big
    tracemalloc.start()
    try:
        bundle = CellucidSessionBundle(path)
        assert bundle.decode_chunk("small") == [1, 2]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024


# ---- save and temporary bundles ---------------------------------------------------------------
def test_save_copies_and_creates_parents(tmp_path: Path) -> None:
    path = write_bundle(tmp_path / "s.cellucid-session", sample_chunks())
    bundle = CellucidSessionBundle(path)
    dest = bundle.save(tmp_path / "a" / "b" / "copy.cellucid-session")
    assert dest == tmp_path / "a" / "b" / "copy.cellucid-session"
    assert dest.read_bytes() == path.read_bytes()
    assert path.exists()
    assert bundle.path == path  # a regular bundle keeps pointing at its own file
    assert bundle.cleanup() is False  # not temporary: never deleted
    assert path.exists()
    assert CellucidSessionBundle(dest).decode_chunk("core/state") == {"camera": {"zoom": 2}}


def test_temporary_cleanup_is_idempotent(tmp_path: Path) -> None:
    path = write_bundle(tmp_path / "t.cellucid-session", sample_chunks())
    bundle = CellucidSessionBundle(path, temporary=True)
    assert bundle.is_temporary
    assert "temporary=True" in repr(bundle)
    assert bundle.path in bundle_module._TEMPORARY
    assert bundle.cleanup() is True
    assert not path.exists()
    assert bundle.path not in bundle_module._TEMPORARY
    assert bundle.cleanup() is False
    assert not bundle.is_temporary


def test_saving_a_temporary_bundle_keeps_it(tmp_path: Path) -> None:
    path = write_bundle(tmp_path / "t.cellucid-session", sample_chunks())
    original = path.read_bytes()
    bundle = CellucidSessionBundle(path, temporary=True)
    assert bundle.list_chunk_ids()[0] == "core/state"  # indexed before the move
    dest = bundle.save(tmp_path / "kept" / "s.cellucid-session")
    assert not path.exists()  # the temporary file is gone ...
    assert dest.read_bytes() == original  # ... and the bundle now is the saved copy
    assert bundle.path == dest
    assert not bundle.is_temporary
    assert bundle.decode_chunk("big/json") == {"x": "y" * 10000}
    assert bundle.cleanup() is False
    assert dest.exists()
    # saving onto itself keeps the file as well
    other = CellucidSessionBundle(bundle.save(tmp_path / "self.cellucid-session"), temporary=True)
    assert other.save(other.path) == other.path
    assert other.path.exists()
    assert not other.is_temporary


def test_temporary_bundles_are_removed_at_exit_unless_saved(tmp_path: Path) -> None:
    data = build_bundle(sample_chunks())
    dropped, kept, plain = (tmp_path / f"{n}.cellucid-session" for n in ("drop", "keep", "plain"))
    for path in (dropped, kept, plain):
        path.write_bytes(data)
    saved = tmp_path / "saved" / "s.cellucid-session"
    script = textwrap.dedent(
        f"""
        import gc
        import os
        from cellucid.session import CellucidSessionBundle
        a = CellucidSessionBundle({str(dropped)!r}, temporary=True)
        b = CellucidSessionBundle({str(kept)!r}, temporary=True)
        b.save({str(saved)!r})
        CellucidSessionBundle({str(plain)!r})
        del a
        gc.collect()
        assert os.path.exists({str(dropped)!r})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert not dropped.exists()  # deleted at exit (not when garbage-collected: asserted above)
    assert not kept.exists()  # moved by save()
    assert saved.read_bytes() == data
    assert plain.exists()


# ---- bundles written by the viewer ------------------------------------------------------------
def test_reads_bundles_written_by_the_viewer(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    n = 200_000
    lasso = np.unique(rng.integers(0, n, 60_000))
    runs = np.repeat(np.array([0, 1, 255, 1], dtype=np.uint8), [80_000, 70_000, 30_000, 20_000])
    noisy = rng.integers(0, 700, n)
    session = {
        "createdAt": "2024-05-01T12:00:00.000Z",
        "datasetFingerprint": {"sourceType": "export", "datasetId": "pbmc", "cellCount": n},
        "highlightPages": [
            {
                "id": "page-1",
                "name": "Page 1",
                "groups": [
                    {"id": "g1", "name": "three", "color": "#f00", "cells": [n - 1, 0, 17, 17]},
                    {"id": "g2", "name": "lasso", "color": "#0f0", "cells": lasso.tolist()},
                ],
            },
            {
                "id": "p2",
                "name": "Empty",
                "groups": [{"id": "g3", "name": "none", "color": "#00f", "cells": []}],
            },
        ],
        "userDefinedFields": [
            {
                "id": "f1",
                "key": "runs",
                "kind": "category",
                "categories": ["a", "b"],
                "source": "obs",
                "codes": runs.tolist(),
            },
            {
                "id": "f2",
                "key": "noisy",
                "kind": "category",
                "categories": [],
                "source": "obs",
                "codes": noisy.tolist(),
            },
            {
                "id": "f3",
                "key": "few",
                "kind": "category",
                "categories": ["x"],
                "source": "obs",
                "codes": [3] * 10 + [0] * (n - 10),
            },
        ],
        "coreState": {"camera": {"zoom": 2}, "big": "x" * 10000},
    }
    bundle = CellucidSessionBundle(node_bundle(tmp_path / "v.cellucid-session", session))
    groups = [g["id"] for page in session["highlightPages"] for g in page["groups"]]
    fields = [f["id"] for f in session["userDefinedFields"]]
    assert bundle.list_chunk_ids() == [
        "core/state",
        "core/field-overlays",
        "highlights/meta",
        *(f"highlights/cells/{g}" for g in groups),
        *(f"user-defined/codes/{f}" for f in fields),
    ]
    assert bundle.get_chunk_meta("core/state")["codec"] == "gzip"  # > 4 KiB of JSON
    assert bundle.decode_chunk("core/state") == session["coreState"]
    assert bundle.dataset_fingerprint == session["datasetFingerprint"]

    def cells(group: str) -> list[int]:
        data = bundle.decode_chunk(f"highlights/cells/{group}")
        return decode_cell_list(data, n_obs=n).tolist()

    assert cells("g1") == [0, 17, n - 1]
    assert cells("g2") == lasso.tolist()
    assert cells("g3") == []
    encodings, decoded = {}, {}
    for field in ("f1", "f2", "f3"):
        data = bundle.decode_chunk(f"user-defined/codes/{field}")
        encodings[field], decoded[field] = data[0], decode_user_codes(data)
    assert encodings == {"f1": 2, "f2": 1, "f3": 2}  # RLE, raw uint16, RLE
    assert decoded["f1"].dtype == np.uint8
    np.testing.assert_array_equal(decoded["f1"], runs)
    assert decoded["f2"].dtype == np.uint16
    np.testing.assert_array_equal(decoded["f2"], noisy)
    assert decoded["f3"].tolist() == [3] * 10 + [0] * (n - 10)
    meta = bundle.decode_chunk("highlights/meta")
    assert [g["id"] for p in meta["pages"] for g in p["highlightedGroups"]] == ["g1", "g2", "g3"]
    overlays = bundle.decode_chunk("core/field-overlays")["userDefinedFields"]
    assert overlays[0] == {
        "id": "f1",
        "key": "runs",
        "kind": "category",
        "categories": ["a", "b"],
        "source": "obs",
        "isDeleted": False,
    }
