"""A ``.zarr`` store that lost chunk files is never served as plausible zeros (issue 13).

Zarr reads a missing chunk as the fill value. zarr-python 3 also *omits* chunks whose
values all equal the fill value, so an intact store may lack chunk files too: the tests
check both sides (a whole store opens without a word; a store that lost data refuses to
start, or answers an HTTP error naming the element, or warns where the absence may be
legitimate).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import zarr

import cellucid
from cellucid.sources.anndata import AnnDataAdapter
from cellucid.storage.anndata_io import load_anndata
from cellucid.storage.backed import BackedMatrix
from cellucid.storage.integrity import (
    IncompleteStoreError,
    IncompleteStoreWarning,
    check_indptr,
    check_store,
)

pytestmark = pytest.mark.usefixtures("cache_dir")  # tests/conftest.py

N, G = 6000, 12
REPO = Path(__file__).resolve().parent.parent


def _adata(*, sparse: bool) -> ad.AnnData:
    rng = np.random.default_rng(3)
    if sparse:
        x = sp.random(N, G, density=0.3, format="csr", dtype=np.float32, random_state=3)
    else:
        x = rng.random((N, G)).astype(np.float32)
        x[:, :4] = 0.0  # all-zero columns: zarr leaves those chunks unwritten
    a = ad.AnnData(
        X=x,
        obs=pd.DataFrame(
            {
                # sorted: the first rows are all category "a", whose code is the fill value
                "cell_type": pd.Categorical(["a"] * 3500 + ["b"] * (N - 3500)),
                "score": rng.random(N).astype(np.float32),
            },
            index=[f"cell{i}" for i in range(N)],
        ),
        var=pd.DataFrame(index=[f"g{i}" for i in range(G)]),
    )
    a.obsm["X_umap"] = rng.normal(size=(N, 2)).astype(np.float32)
    return a


def _write(a: ad.AnnData, path: Path, chunks: int = 1000) -> Path:
    """Write ``a`` with ``chunks`` rows (or values) per chunk, so each array has several."""
    a.write_zarr(path, chunks=(chunks, 4) if not sp.issparse(a.X) else None)
    root = zarr.open_group(path, mode="r+")

    def rechunk(key: str, size: int) -> None:
        values = root[key][:]
        attrs = dict(root[key].attrs)
        del root[key]
        arr = root.create_array(key, shape=values.shape, dtype=values.dtype, chunks=size)
        arr[:] = values
        arr.attrs.update(attrs)

    for key in ("obs/_index", "obs/cell_type/codes", "obs/score"):
        rechunk(key, (chunks,))
    values = root["obsm/X_umap"][:]
    del root["obsm/X_umap"]
    arr = root.create_array(
        "obsm/X_umap", shape=values.shape, dtype=values.dtype, chunks=(chunks, 2)
    )
    arr[:] = values
    arr.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
    if sp.issparse(a.X):
        for part in ("data", "indices", "indptr"):
            rechunk(f"X/{part}", (chunks,))
    zarr.consolidate_metadata(str(path))  # anndata reads the consolidated copy
    return path


def _chunk(store: Path, key: str, *coords: int) -> Path:
    """The file of one chunk (zarr format 2 or 3, default key encodings)."""
    node = store / key
    if (node / "zarr.json").exists():
        return node.joinpath("c", *map(str, coords))
    return node / ".".join(map(str, coords))


@pytest.fixture
def sparse_store(tmp_path: Path) -> tuple[ad.AnnData, Path]:
    a = _adata(sparse=True)
    return a, _write(a, tmp_path / "sparse.zarr")


def _expect_error(path: Path, *needles: str) -> None:
    with pytest.raises(IncompleteStoreError) as err:
        AnnDataAdapter.from_file(path, cache_columns=False)
    for needle in needles:
        assert needle in str(err.value)
    assert "Copy it again" in str(err.value)


def test_an_intact_store_with_omitted_chunks_opens_without_a_word(tmp_path):
    a = _adata(sparse=False)
    path = _write(a, tmp_path / "dense.zarr")
    # zarr did leave chunks out: the all-zero block of X and the codes of category "a"
    assert not _chunk(path, "X", 0, 0).exists()
    assert _chunk(path, "X", 0, 1).exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error", IncompleteStoreWarning)
        report = check_store(zarr.open_group(path, mode="r"))
        assert report.errors == []
        with AnnDataAdapter.from_file(path, cache_columns=False) as adapter:
            body = adapter.open(adapter.datasets()[0], "var/g0.values.f32")
            assert body is not None
            values = np.frombuffer(body.read(0, body.size), np.float32)
    assert values.shape == (N,) and not values.any()  # the omitted block is truly zero
    assert not _chunk(path, "obs/cell_type/codes", 0).exists()  # all "a": omitted
    assert report.warnings == []


def test_a_lost_chunk_of_sparse_x_refuses_to_open(sparse_store):
    _, path = sparse_store
    _chunk(path, "X/indices", 2).unlink()
    _expect_error(path, "X/indices", "entries 2,000-2,999")
    with pytest.raises(IncompleteStoreError, match="X/indices"):
        load_anndata(path)  # what prepare("x.zarr") reads


def test_a_lost_indptr_chunk_refuses_to_open(sparse_store):
    _, path = sparse_store
    _chunk(path, "X/indptr", 3).unlink()
    _expect_error(path, "X/indptr")


def test_lost_embedding_and_cell_names_refuse_to_open(sparse_store, tmp_path):
    a, path = sparse_store
    _chunk(path, "obsm/X_umap", 1, 0).unlink()
    _expect_error(path, "obsm/X_umap", "rows 1,000-1,999")
    other = _write(a, tmp_path / "names.zarr")
    _chunk(other, "obs/_index", 4).unlink()
    _expect_error(other, "obs/_index", "obs names")


def test_lost_codes_warn_naming_the_field_and_what_the_rows_read_as(sparse_store):
    _, path = sparse_store
    _chunk(path, "obs/cell_type/codes", 4).unlink()  # rows 4000-4999 are "b"
    with pytest.warns(
        IncompleteStoreWarning, match=r"obs/cell_type: rows 4,000-4,999 read as category 'a'"
    ):
        adapter = AnnDataAdapter.from_file(path, cache_columns=False)
    adapter.close()


def test_the_server_refuses_to_start_and_the_cli_says_why(sparse_store):
    _, path = sparse_store
    _chunk(path, "X/data", 0).unlink()
    server = cellucid.AnnDataServer(path, port=0, quiet=True)
    with pytest.raises(IncompleteStoreError, match="X/data"):
        server.start_background()
    assert not server.is_running()
    cli = subprocess.run(
        [sys.executable, "-m", "cellucid", "serve", str(path), "--port", "0", "--no-browser"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO / "python")},
    )
    assert cli.returncode != 0
    assert "X/data" in cli.stderr and "Copy it again" in cli.stderr
    assert "Traceback" not in cli.stderr


def _corrupt_indptr(path: Path) -> None:
    """Overwrite a middle stretch of indptr with zeros, as a lost chunk of an older writer
    (or a bad copy) would read, while every chunk file is still there."""
    root = zarr.open_group(path, mode="r+")
    root["X/indptr"][3000:3500] = 0


def test_a_bad_indptr_is_an_http_error_naming_the_element(sparse_store):
    _, path = sparse_store
    _corrupt_indptr(path)
    with cellucid.AnnDataServer(path, port=0, quiet=True) as server:
        server.start_background()
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{server.url.rstrip('/')}/var/g3.values.f32", timeout=60)
        body = json.loads(err.value.read())
    assert err.value.code == 500
    assert "X/indptr" in body["message"] and "decreases at position 3,000" in body["message"]
    assert str(path) not in body["message"]  # the server's folders stay private
    with (
        BackedMatrix.open(path, attach_cache=False) as matrix,
        pytest.raises(IncompleteStoreError, match="X/indptr"),
    ):
        matrix.read_rows(2900, 3100)


def test_check_indptr_rules():
    good = np.array([0, 0, 0, 2, 5, 5, 9])
    assert check_indptr(good, start=0, total=7, nnz=9, where="X/indptr") is good
    # a leading run of empty rows reads as zeros and is right
    check_indptr(good[:3], start=0, total=7, nnz=9, where="X/indptr")
    with pytest.raises(IncompleteStoreError, match="decreases at position 3"):
        check_indptr(np.array([0, 2, 5, 0, 0, 9]), start=0, total=6, nnz=9, where="X/indptr")
    with pytest.raises(IncompleteStoreError, match="ends at 5"):
        check_indptr(np.array([2, 5]), start=5, total=7, nnz=9, where="X/indptr")
    with pytest.raises(IncompleteStoreError, match=r"indptr\[0\] is 1"):
        check_indptr(np.array([1, 2]), start=0, total=7, nnz=9, where="X/indptr")


def test_a_lost_chunk_in_object_storage_is_found(s3_server, sparse_store):
    _, path = sparse_store
    _chunk(path, "X/indices", 1).unlink()
    bucket = s3_server.bucket()
    s3_server.upload(path, f"s3://{bucket}/broken.zarr")
    with pytest.raises(IncompleteStoreError, match="X/indices"):
        AnnDataAdapter.from_file(
            f"s3://{bucket}/broken.zarr", storage_options=s3_server.options, cache_columns=False
        )
