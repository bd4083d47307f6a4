"""Whole zarr v2 arrays read straight from their chunk files equal what zarr reads, and
everything the direct reader does not handle is left to zarr (issue 12)."""

from __future__ import annotations

import numcodecs
import numpy as np
import pytest
import zarr

from cellucid.storage.elements import read_elem
from cellucid.storage.zarr_direct import read_whole


def _array(tmp_path, data, chunks, **kwargs):
    root = zarr.open_group(str(tmp_path / "s.zarr"), mode="a", zarr_format=2)
    arr = root.create_array("a", shape=data.shape, dtype=data.dtype, chunks=chunks, **kwargs)
    arr[...] = data
    arr.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})  # as anndata
    return zarr.open_group(str(tmp_path / "s.zarr"), mode="r")["a"]


CASES = {
    "1-D, partial last chunk": (np.arange(10_007, dtype=np.float32), (1000,)),
    "codes int8": (np.random.default_rng(0).integers(-1, 20, 5000).astype(np.int8), (777,)),
    "an embedding in column chunks": (
        np.random.default_rng(1).normal(size=(3001, 2)).astype(np.float32),
        (500, 1),
    ),
    "row chunks, float64": (np.random.default_rng(2).normal(size=(999, 3)), (100, 3)),
    "one chunk": (np.arange(12, dtype=np.int64).reshape(4, 3), (4, 3)),
    "booleans": (np.random.default_rng(3).random(4097) > 0.5, (1000,)),
    "uint16 in 2-D blocks": (
        np.random.default_rng(4).integers(0, 60000, (301, 77)).astype(np.uint16),
        (64, 16),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize(
    "compressor", ["blosc", "zstd", None], ids=["blosc", "zstd", "uncompressed"]
)
def test_direct_reads_equal_zarr(tmp_path, case, compressor):
    data, chunks = CASES[case]
    codec = {"blosc": numcodecs.Blosc(), "zstd": numcodecs.Zstd(), None: None}[compressor]
    arr = _array(tmp_path, data, chunks, compressors=codec)
    got = read_whole(arr)
    assert got is not None, "a plain local v2 array is read directly"
    assert got.dtype == data.dtype and got.shape == data.shape
    np.testing.assert_array_equal(got, data)
    np.testing.assert_array_equal(got, arr[...])
    np.testing.assert_array_equal(read_elem(arr), data)  # what the server's reads use


def test_nested_chunk_keys(tmp_path):
    data = np.random.default_rng(5).normal(size=(120, 4)).astype(np.float32)
    arr = _array(tmp_path, data, (50, 2), chunk_key_encoding={"name": "v2", "separator": "/"})
    assert (tmp_path / "s.zarr" / "a" / "1" / "1").is_file()
    np.testing.assert_array_equal(read_whole(arr), data)


def test_a_missing_chunk_file_is_left_to_zarr(tmp_path):
    """zarr reads a missing chunk as the fill value (and the integrity checks decide whether
    that is acceptable): the direct reader never guesses."""
    data = np.arange(3000, dtype=np.float32) + 1
    arr = _array(tmp_path, data, (1000,), fill_value=0.0)
    (tmp_path / "s.zarr" / "a" / "1").unlink()
    assert read_whole(arr) is None
    want = data.copy()
    want[1000:2000] = 0
    np.testing.assert_array_equal(read_elem(arr), want)


def test_what_is_not_plain_is_left_to_zarr(tmp_path):
    data = np.arange(100, dtype=np.float32)
    root = zarr.open_group(str(tmp_path / "v3.zarr"), mode="w", zarr_format=3)
    v3 = root.create_array("a", shape=data.shape, dtype=data.dtype, chunks=(10,))
    v3[...] = data
    assert read_whole(v3) is None
    f_order = _array(tmp_path / "f", np.arange(60.0).reshape(6, 10), (3, 5), order="F")
    assert read_whole(f_order) is None
    np.testing.assert_array_equal(read_elem(f_order), np.arange(60.0).reshape(6, 10))
    big = _array(tmp_path / "be", np.arange(10, dtype=">f8"), (4,))
    assert read_whole(big) is None
    np.testing.assert_array_equal(read_elem(big), np.arange(10.0))
    filtered = _array(
        tmp_path / "d", np.arange(50, dtype=np.int32), (10,), filters=[numcodecs.Delta("<i4")]
    )
    assert read_whole(filtered) is None
    np.testing.assert_array_equal(read_elem(filtered), np.arange(50))
    names = zarr.open_group(str(tmp_path / "t.zarr"), mode="w", zarr_format=2)
    text = names.create_array("s", shape=(3,), dtype=str, chunks=(2,))
    text[...] = np.array(["a", "bb", "ccc"])
    assert read_whole(text) is None


def test_annotations_of_a_store_go_through_the_direct_reader(tmp_path, monkeypatch):
    import cellucid.storage.zarr_direct as direct

    calls = []
    real = direct.read_whole
    monkeypatch.setattr(direct, "read_whole", lambda node: calls.append(node) or real(node))
    data, chunks = CASES["an embedding in column chunks"]
    np.testing.assert_array_equal(read_elem(_array(tmp_path, data, chunks)), data)
    assert len(calls) == 1
