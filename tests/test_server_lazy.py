"""AnnData mode stays lazy: X is never read whole, genes come from the column cache, and a
slow gene read never stalls the rest of the server (SPEC §3.1, §6.5; issue 3)."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import zarr

import cellucid
from cellucid.sources.anndata import AnnDataAdapter

N, G = 4000, 60


@pytest.fixture(scope="module")
def adata() -> ad.AnnData:
    rng = np.random.default_rng(7)
    X = sp.random(N, G, density=0.15, format="csr", dtype=np.float32, random_state=7)
    obs = pd.DataFrame(
        {"cluster": pd.Categorical(rng.choice(["a", "b", "c"], N)), "score": rng.random(N)},
        index=[f"c{i}" for i in range(N)],
    )
    a = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(G)]))
    a.obsm["X_umap"] = rng.normal(size=(N, 2))
    a.obsm["X_pca"] = rng.normal(size=(N, 6))
    return a


@pytest.fixture(scope="module")
def files(adata: ad.AnnData, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lazy")
    out = {"h5ad": root / "data.h5ad", "zarr": root / "data.zarr"}
    adata.write_h5ad(out["h5ad"])
    old = ad.settings.zarr_write_format
    ad.settings.zarr_write_format = 3
    try:
        adata.write_zarr(out["zarr"])
    finally:
        ad.settings.zarr_write_format = old
    out["export"] = cellucid.prepare(adata, root / "export", quiet=True)
    return out


pytestmark = pytest.mark.usefixtures("cache_dir")  # tests/conftest.py


def _x_reads(log: list[tuple[str, int]]) -> list[tuple[str, int]]:
    return [r for r in log if r[0].startswith("/X")]


def _payload(adapter: AnnDataAdapter, rel: str) -> bytes:
    body = adapter.open(adapter.datasets()[0], rel)
    assert body is not None, rel
    return body.read(0, body.size)


def test_backed_h5ad_opens_and_serves_annotations_without_reading_x(files, h5_reads):
    with AnnDataAdapter.from_file(files["h5ad"], cache_columns=False) as adapter:
        assert adapter.health()["is_backed"] is True
        for rel in ("dataset_identity.json", "obs_manifest.json", "var_manifest.json"):
            _payload(adapter, rel)
        for rel in ("points_2d.bin", "obs/cluster.codes.u8", "obs/score.values.f32"):
            assert _payload(adapter, rel) == (files["export"] / rel).read_bytes()
        assert _x_reads(h5_reads) == []


def test_a_gene_without_cache_is_read_in_chunks_never_whole(files, h5_reads, adata, monkeypatch):
    chunk = 5000  # stored values per read; the default is 4M, far below a real X
    import cellucid.storage.backed as backed

    original = backed.BackedMatrix.__init__

    def small_chunks(self, *args, **kwargs):
        kwargs["scan_values"] = chunk
        original(self, *args, **kwargs)

    monkeypatch.setattr(backed.BackedMatrix, "__init__", small_chunks)
    nnz = adata.X.nnz
    with AnnDataAdapter.from_file(files["h5ad"], cache_columns=False) as adapter:
        data = _payload(adapter, "var/g17.values.f32")
        assert data == (files["export"] / "var/g17.values.f32").read_bytes()
        reads = [r for r in _x_reads(h5_reads) if r[0] != "/X/indptr"]
        assert reads, "a gene must come from X"
        assert max(size for _, size in reads) <= chunk < nnz, "X was read in one piece"


def test_genes_come_from_the_column_cache_once_built(files, h5_reads, cache_dir):
    with AnnDataAdapter.from_file(files["h5ad"]) as adapter:
        cache = adapter.column_cache
        assert cache is not None, "a backed CSR matrix starts a column cache build"
        deadline = time.monotonic() + 30
        while not cache.ready and time.monotonic() < deadline:
            assert cache.error is None
            time.sleep(0.05)
        assert cache.ready
        h5_reads.clear()
        for g in (0, 31, 59):
            rel = f"var/g{g}.values.f32"
            assert _payload(adapter, rel) == (files["export"] / rel).read_bytes()
        assert _x_reads(h5_reads) == [], "with a ready cache genes must not touch X"
    assert any(cache_dir.rglob("meta.json")), "the cache lives in CELLUCID_CACHE_DIR"
    # reused across runs: a new adapter on the unchanged file finds it ready at once
    with AnnDataAdapter.from_file(files["h5ad"]) as again:
        assert again.column_cache is None  # nothing to build
        assert again.dataset.genes.cache_ready


def test_zarr_store_is_opened_lazily(files, monkeypatch):
    keys: list[str] = []
    orig = zarr.storage.LocalStore.get

    async def spy(self, key, *args, **kwargs):
        keys.append(key)
        return await orig(self, key, *args, **kwargs)

    monkeypatch.setattr(zarr.storage.LocalStore, "get", spy)
    with AnnDataAdapter.from_file(files["zarr"], cache_columns=False) as adapter:
        assert adapter.health() == {
            "type": "anndata",
            "format": "zarr",
            "is_backed": True,
            "n_cells": N,
            "n_genes": G,
        }
        _payload(adapter, "obs_manifest.json")
        x_chunks = [k for k in keys if k.startswith("X/") and not k.endswith(".json")]
        assert not [k for k in x_chunks if k.startswith(("X/data/", "X/indices/"))]
        rel = "var/g5.values.f32"
        assert _payload(adapter, rel) == (files["export"] / rel).read_bytes()
        assert [k for k in keys if k.startswith("X/data/")], "the gene came from X"


def test_health_answers_while_a_slow_gene_is_read(files, monkeypatch):
    release = threading.Event()
    started = threading.Event()
    original = AnnDataAdapter._load_gene

    def slow(self, index):
        started.set()
        release.wait(10)
        return original(self, index)

    monkeypatch.setattr(AnnDataAdapter, "_load_gene", slow)
    server = cellucid.AnnDataServer(files["h5ad"], port=0, quiet=True, cache_columns=False)
    with server:
        result: dict[str, bytes] = {}

        def fetch() -> None:
            result["gene"] = urllib.request.urlopen(f"{server.url}/var/g3.values.f32").read()

        worker = threading.Thread(target=fetch)
        worker.start()
        assert started.wait(10)
        t0 = time.perf_counter()
        health = json.loads(urllib.request.urlopen(f"{server.url}/_cellucid/health").read())
        assert time.perf_counter() - t0 < 1.0  # SPEC §3.1: health within a second
        assert health["status"] == "ok"
        points = urllib.request.urlopen(f"{server.url}/points_2d.bin").read()
        assert points == (files["export"] / "points_2d.bin").read_bytes()
        release.set()
        worker.join(10)
        assert result["gene"] == (files["export"] / "var/g3.values.f32").read_bytes()


def test_lazy_obs_reads_the_columns_not_the_cell_names(tmp_path):
    """Start-up does not turn millions of cell names into Python strings: obs comes back with
    a RangeIndex and exactly the file's columns (categories and order kept)."""
    import anndata as ad
    import pandas as pd

    from cellucid.storage.anndata_io import load_anndata_lazy

    n = 50
    rng = np.random.default_rng(0)
    obs = pd.DataFrame(
        {
            "cluster": pd.Categorical(rng.choice(["b", "a", "c"], n), categories=["c", "b", "a"]),
            "score": rng.normal(size=n),
            "flag": rng.integers(0, 2, n).astype(bool),
        },
        index=[f"barcode-{i}" for i in range(n)],
    )
    adata = ad.AnnData(X=np.ones((n, 3), np.float32), obs=obs)
    for name in ("d.h5ad", "d.zarr"):
        path = tmp_path / name
        adata.write_h5ad(path) if name.endswith("h5ad") else adata.write_zarr(path)
        lazy, matrix = load_anndata_lazy(path)
        try:
            assert isinstance(lazy.obs.index, pd.RangeIndex) and lazy.n_obs == n
            pd.testing.assert_frame_equal(lazy.obs, obs.reset_index(drop=True))
            assert list(lazy.var.index) == list(adata.var_names) and lazy.X is None
        finally:
            matrix.close()


def test_cell_names_of_a_file_are_read_a_block_at_a_time(tmp_path):
    """The hover tooltip's names come from the file on demand, equal to obs_names."""
    import anndata as ad
    import pandas as pd

    from cellucid.server.obs_names import answer, decode_block
    from cellucid.sources.anndata import AnnDataAdapter
    from cellucid.storage.anndata_io import FileObsNames

    n = 300
    adata = ad.AnnData(
        X=np.ones((n, 2), np.float32),
        obs=pd.DataFrame(index=[f"AAAC-{i}-ü" for i in range(n)]),
        obsm={"X_umap": np.random.default_rng(0).normal(size=(n, 2))},
    )
    for name in ("d.h5ad", "d.zarr"):
        path = tmp_path / name
        adata.write_h5ad(path) if name.endswith("h5ad") else adata.write_zarr(path)
        with AnnDataAdapter.from_file(path) as adapter:
            assert isinstance(adapter.obs_names(), FileObsNames)
            start, names = decode_block(answer(adapter, {"start": "250", "count": "10"}))
            assert start == 250 and names == list(adata.obs_names[250:260])
