"""Cell indices and binary parts on the widget's comm (cellucid.serialization, SPEC §4.5)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import traitlets

from cellucid import serialization
from cellucid.serialization import (
    MAX_PART,
    CellIndices,
    PartCollector,
    as_cell_indices,
    split_parts,
)

# ------------------------------------------------------------------------ as_cell_indices


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        ([3, 1, 3, 0], [0, 1, 3]),
        ((4,), [4]),
        (range(2, 5), [2, 3, 4]),
        (np.array([9, 2], dtype=np.int8), [2, 9]),
        (np.array([7, 7, 1], dtype=np.uint64), [1, 7]),
        (np.array([2.0, 5.0, 2.0]), [2, 5]),
        ([1.0, 0.0], [0, 1]),
        (np.array([True, False, False, True, False, False, False, False, False, True]), [0, 3, 9]),
        ([], []),
        (np.array([], dtype=np.float64), []),
    ],
)
def test_as_cell_indices_accepts(cells: object, expected: list[int]) -> None:
    out = as_cell_indices(cells, 10)
    assert out.dtype == np.uint32
    assert out.tolist() == expected
    assert not out.flags.writeable


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        ([-1, 2], "negative index -1"),
        ([10], "index 10"),
        (np.array([2**40]), "index"),
        ([1.5], "integer cell indices"),
        ([np.nan], "integer cell indices"),
        ([np.inf], "integer cell indices"),
        (["a", "b"], "integer cell indices"),
        (np.array([[1, 2]]), "one-dimensional"),
        (np.ones(9, dtype=bool), "one entry per cell"),
        (np.ones((2, 5), dtype=bool), "one entry per cell"),
        (np.zeros(11, dtype=bool), "one entry per cell"),
    ],
)
def test_as_cell_indices_rejects(cells: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        as_cell_indices(cells, 10, label="cells")


def test_as_cell_indices_names_the_label_and_refuses_empty_when_asked() -> None:
    with pytest.raises(ValueError, match=r"^cell_indices must not be empty"):
        as_cell_indices([], 10, label="cell_indices", allow_empty=False)
    with pytest.raises(ValueError, match=r"^cell_indices must not be empty"):
        as_cell_indices(np.zeros(10, dtype=bool), 10, label="cell_indices", allow_empty=False)
    with pytest.raises(ValueError, match=r"^picked holds the index 12"):
        as_cell_indices([12], 10, label="picked")


def test_as_cell_indices_leaves_the_callers_array_alone() -> None:
    given = np.array([5, 1, 3], dtype=np.int64)
    out = as_cell_indices(given, 10)
    assert given.tolist() == [5, 1, 3]
    assert given.flags.writeable
    assert not np.shares_memory(given, out)


# ----------------------------------------------------------------- cells_to/from_json


def _owner(n_cells: int) -> SimpleNamespace:
    return SimpleNamespace(n_cells=n_cells)


def test_sparse_selection_travels_as_uint32_bytes() -> None:
    cells = np.array([7, 2, 900], dtype=np.uint32)
    encoded = serialization.cells_to_json(cells, _owner(1000))
    assert encoded["encoding"] == "u32-base64"
    assert encoded["count"] == 3
    assert isinstance(encoded["data"], memoryview)
    assert bytes(encoded["data"]) == np.array([7, 2, 900], dtype="<u4").tobytes()
    decoded = serialization.cells_from_json(encoded, None)
    assert decoded.dtype == np.uint32
    assert decoded.tolist() == [7, 2, 900]
    assert not decoded.flags.writeable


def test_dense_selection_travels_as_a_bitset() -> None:
    n = 1000
    cells = np.arange(0, n, 3, dtype=np.uint32)  # 334 cells: 1336 bytes as uint32, 125 as bits
    encoded = serialization.cells_to_json(cells, _owner(n))
    assert encoded["encoding"] == "bitset-base64"
    assert encoded["n"] == n
    assert encoded["count"] == cells.size
    assert len(encoded["data"]) == (n + 7) // 8
    bits = np.unpackbits(np.frombuffer(bytes(encoded["data"]), dtype=np.uint8), bitorder="little")
    assert np.flatnonzero(bits).tolist() == cells.tolist()
    np.testing.assert_array_equal(serialization.cells_from_json(encoded, None), cells)


def test_cells_json_round_trip_without_a_known_size_and_with_plain_bytes() -> None:
    cells = np.array([400, 3], dtype=np.uint32)
    encoded = serialization.cells_to_json(
        cells, object()
    )  # no n_cells: the size follows the largest index
    assert encoded["encoding"] == "u32-base64"
    with_bytes = {**encoded, "data": bytes(encoded["data"])}
    assert serialization.cells_from_json(with_bytes, None).tolist() == [400, 3]
    dense = np.arange(30, dtype=np.uint32)
    encoded = serialization.cells_to_json(
        dense, _owner(5)
    )  # the owner's size is too small: widened
    assert encoded["encoding"] == "bitset-base64" and encoded["n"] == 30
    assert serialization.cells_from_json(encoded, None).tolist() == list(range(30))


def test_cells_json_none_and_empty() -> None:
    assert serialization.cells_to_json(None, _owner(10)) is None
    assert serialization.cells_from_json(None, None) is None
    empty = serialization.cells_to_json(np.zeros(0, dtype=np.uint32), _owner(10))
    assert empty["count"] == 0
    assert serialization.cells_from_json(empty, None).size == 0


class _Holder(traitlets.HasTraits):
    cells = CellIndices()


def test_cell_indices_trait_without_an_owner_check() -> None:
    holder = _Holder()
    assert holder.cells.dtype == np.uint32 and holder.cells.size == 0
    assert not holder.cells.flags.writeable
    holder.cells = [2**32 - 1, 4, 4]
    assert holder.cells.tolist() == [4, 2**32 - 1]
    with pytest.raises(ValueError, match="negative"):
        holder.cells = [-3]


# ------------------------------------------------------------------------------ parts


def _split(data: bytes, max_part: int) -> list[tuple[dict, list[memoryview]]]:
    return list(split_parts({"kind": "x", "id": "a"}, data, max_part))


def test_split_parts_in_order_and_bounded() -> None:
    data = bytes(range(256)) * 40  # 10240 bytes
    parts = _split(data, 4096)
    assert [m["part"] for m, _ in parts] == [0, 1, 2]
    assert {m["parts"] for m, _ in parts} == {3}
    assert all(m["kind"] == "x" and m["id"] == "a" for m, _ in parts)
    assert [len(b[0]) for _, b in parts] == [4096, 4096, 2048]
    assert all(len(b) == 1 for _, b in parts)
    assert b"".join(bytes(b[0]) for _, b in parts) == data


def test_split_parts_exact_multiple_and_empty_payload() -> None:
    assert [len(b[0]) for _, b in _split(b"12345678", 4)] == [4, 4]
    (message, buffers), *rest = _split(b"", 4)
    assert rest == []
    assert (message["part"], message["parts"]) == (0, 1)
    assert bytes(buffers[0]) == b""


def test_split_parts_default_is_4_mib_and_message_is_not_changed() -> None:
    assert MAX_PART == 4 * 1024 * 1024
    message = {"kind": "page"}
    data = np.zeros(2 * MAX_PART + 5, dtype=np.uint8)
    parts = list(split_parts(message, data))
    assert message == {"kind": "page"}
    assert [len(b[0]) for _, b in parts] == [MAX_PART, MAX_PART, 5]
    assert all(len(b[0]) <= MAX_PART for _, b in parts)


def _feed(collector: PartCollector, key: str, parts, order):
    results = [collector.add(key, parts[i][0], parts[i][1]) for i in order]
    return results[:-1], results[-1]


def test_part_collector_joins_in_order_and_out_of_order() -> None:
    data = bytes(range(200))
    parts = _split(data, 64)  # 4 parts
    for order in ([0, 1, 2, 3], [3, 1, 0, 2]):
        collector = PartCollector()
        pending, done = _feed(collector, "k", parts, order)
        assert pending == [None] * 3
        assert done is not None
        message, joined = done
        assert joined == data
        assert message["kind"] == "x" and message["parts"] == 4
        assert message["part"] == order[0], "the first message received is returned"


def test_part_collector_single_message_without_part_keys() -> None:
    assert PartCollector().add("k", {"kind": "fetch"}, [b"abc"]) == ({"kind": "fetch"}, b"abc")
    assert PartCollector().add("k", {"kind": "fetch"}, []) == ({"kind": "fetch"}, b"")
    assert PartCollector().add("k", {"kind": "fetch"}, None) == ({"kind": "fetch"}, b"")


def test_part_collector_keeps_keys_apart() -> None:
    collector = PartCollector()
    assert collector.add("a", {"part": 0, "parts": 2}, [b"A1"]) is None
    assert collector.add("b", {"part": 0, "parts": 2}, [b"B1"]) is None
    assert collector.add("b", {"part": 1, "parts": 2}, [b"B2"])[1] == b"B1B2"
    assert collector.add("a", {"part": 1, "parts": 2}, [b"A2"])[1] == b"A1A2"


@pytest.mark.parametrize(
    "second",
    [
        {"part": 0, "parts": 3},  # the same part twice
        {"part": 1, "parts": 4},  # another part count
    ],
)
def test_part_collector_refuses_duplicates_and_count_changes(second: dict) -> None:
    collector = PartCollector()
    assert collector.add("k", {"part": 0, "parts": 3}, [b"x"]) is None
    with pytest.raises(ValueError, match="came twice or with another count"):
        collector.add("k", second, [b"y"])


@pytest.mark.parametrize(
    "message",
    [{"part": 2, "parts": 2}, {"part": -1, "parts": 2}, {"part": "0", "parts": 2}, {"parts": 0}],
)
def test_part_collector_refuses_bad_part_numbers(message: dict) -> None:
    with pytest.raises(ValueError, match="bad part"):
        PartCollector().add("k", message, [b"x"])


def test_part_collector_max_bytes_drops_the_payload() -> None:
    collector = PartCollector(max_bytes=5)
    assert collector.add("k", {"part": 0, "parts": 2}, [b"abc"]) is None
    with pytest.raises(ValueError, match="exceeds 5 bytes"):
        collector.add("k", {"part": 1, "parts": 2}, [b"def"])
    # the broken payload is forgotten: the key can start again
    assert collector.add("k", {"part": 0, "parts": 2}, [b"ab"]) is None
    assert collector.add("k", {"part": 1, "parts": 2}, [b"cd"])[1] == b"abcd"


def test_part_collector_max_open_and_clear() -> None:
    collector = PartCollector(max_open=2)
    for key in ("a", "b", "c"):
        assert collector.add(key, {"part": 0, "parts": 2}, [key.encode()]) is None
    # "a" was the oldest and was dropped: its second part starts a new payload
    assert collector.add("a", {"part": 1, "parts": 2}, [b"2"]) is None
    assert collector.add("c", {"part": 1, "parts": 2}, [b"2"])[1] == b"c2"
    collector.clear()
    assert collector.add("b", {"part": 1, "parts": 2}, [b"2"]) is None
