"""Object storage: serving and exporting through a real S3-compatible server (issue 12).

``s3_server`` (tests/conftest.py) runs moto's server mode on 127.0.0.1; nothing is mocked:
s3fs talks HTTP to it. A ``.zarr`` store and an ``.h5ad`` are served from a bucket lazily
(the S3 requests show what is read), ``prepare()`` writes an export into a bucket with the
identity last (a reader polling during the upload never finds a half export), and that export
serves straight from the bucket, byte for byte the local one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import cellucid
from _data import knn_graph, tree_bytes
from cellucid.sources.anndata import AnnDataAdapter
from cellucid.storage.stores import parse_storage_options

pytest.importorskip("s3fs")
pytestmark = pytest.mark.usefixtures("cache_dir")  # tests/conftest.py

N, G = 2500, 30
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def adata() -> ad.AnnData:
    rng = np.random.default_rng(21)
    a = ad.AnnData(
        X=sp.random(N, G, density=0.25, format="csr", dtype=np.float32, random_state=21),
        obs=pd.DataFrame(
            {
                "cluster": pd.Categorical(rng.choice(["a", "b", "c"], N)),
                "score": rng.random(N).astype(np.float32),
            },
            index=[f"c{i}" for i in range(N)],
        ),
        var=pd.DataFrame(index=[f"g{i}" for i in range(G)]),
    )
    a.obsm["X_umap"] = rng.normal(size=(N, 2)).astype(np.float32)
    a.obsm["X_pca"] = rng.normal(size=(N, 5)).astype(np.float32)
    a.obsp["connectivities"] = knn_graph(N, 4)
    return a


@pytest.fixture(scope="module")
def local(adata, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("s3-local")
    out = {"h5ad": root / "atlas.h5ad", "zarr": root / "atlas.zarr"}
    adata.write_h5ad(out["h5ad"])
    adata.write_zarr(out["zarr"])
    out["export"] = cellucid.prepare(adata, root / "atlas", quiet=True)
    return out


@pytest.fixture(scope="module")
def bucket(s3_server, local) -> str:
    name = s3_server.bucket()
    s3_server.upload(local["zarr"], f"s3://{name}/atlas.zarr")
    s3_server.upload(local["h5ad"], f"s3://{name}/atlas.h5ad")
    return name


@pytest.fixture
def s3_gets(monkeypatch) -> list[str]:
    """The object keys of every S3 GET made in this process."""
    import s3fs

    keys: list[str] = []
    original = s3fs.S3FileSystem._call_s3

    async def spy(self, method, *args, **kwargs):
        if method == "get_object":
            keys.append(str(kwargs.get("Key")))
        return await original(self, method, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", spy)
    return keys


def _payload(adapter: AnnDataAdapter, rel: str) -> bytes:
    body = adapter.open(adapter.datasets()[0], rel)
    assert body is not None, rel
    return body.read(0, body.size)


def _get(url: str, headers: dict[str, str] | None = None) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {})) as r:
        return r.read()


def test_storage_options_from_the_command_line():
    assert parse_storage_options(
        ["key=k", "anon=false", "client_kwargs.endpoint_url=http://h:1", "retries=3"]
    ) == {"key": "k", "anon": False, "client_kwargs": {"endpoint_url": "http://h:1"}, "retries": 3}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_storage_options(["novalue"])


def test_a_zarr_store_in_s3_is_served_lazily(s3_server, bucket, local, s3_gets):
    url = f"s3://{bucket}/atlas.zarr"
    with AnnDataAdapter.from_file(url, storage_options=s3_server.options, cache_columns=False) as a:
        assert a.health() == {
            "type": "anndata",
            "format": "zarr",
            "is_backed": True,
            "n_cells": N,
            "n_genes": G,
        }
        for rel in ("obs_manifest.json", "points_2d.bin", "obs/cluster.codes.u8"):
            assert _payload(a, rel) == (local["export"] / rel).read_bytes(), rel
        identity = json.loads(_payload(a, "dataset_identity.json"))
        assert identity["stats"]["n_cells"] == N and identity["name"] == "atlas"
        first = list(s3_gets)
        assert not [k for k in first if "/X/" in k], "the first files read nothing of X"
        assert not [k for k in first if "/obsm/X_pca/" in k], "nor the latent space"
        rel = "var/g11.values.f32"
        assert _payload(a, rel) == (local["export"] / rel).read_bytes()
        assert [k for k in s3_gets[len(first) :] if "/X/" in k], "the gene came from X"
        rel = "obs/cluster.outliers.f32"
        assert _payload(a, rel) == (local["export"] / rel).read_bytes()


def test_an_h5ad_in_s3_is_served_and_cached_locally(s3_server, bucket, local, cache_dir):
    url = f"s3://{bucket}/atlas.h5ad"
    server = cellucid.AnnDataServer(
        url, port=0, quiet=True, storage_options=s3_server.options
    ).start_background()
    try:
        assert (
            _get(f"{server.url}/points_2d.bin") == (local["export"] / "points_2d.bin").read_bytes()
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = json.loads(_get(f"{server.url}/_cellucid/info"))["column_cache"]
            assert state["error"] is None
            if state["state"] == "ready":
                break
            time.sleep(0.1)
        assert state["state"] == "ready"
        assert list(cache_dir.rglob("meta.json")), "the cache of a remote file is local"
        for g in (0, 17, 29):
            rel = f"var/g{g}.values.f32"
            assert _get(f"{server.url}/{rel}") == (local["export"] / rel).read_bytes()
    finally:
        server.stop()


def test_prepare_writes_to_s3_and_the_export_serves_from_the_bucket(
    s3_server, adata, local, tmp_path
):
    bucket = s3_server.bucket()
    url = f"s3://{bucket}/exports/atlas"
    out = cellucid.prepare(adata, url, quiet=True, storage_options=s3_server.options)
    assert out == url
    fs = s3_server.filesystem()
    written = {
        p.split("/exports/atlas/", 1)[1]: fs.cat_file(p) for p in fs.find(f"{bucket}/exports/atlas")
    }
    want = tree_bytes(local["export"])
    assert sorted(written) == sorted(want)
    for rel, data in want.items():
        if rel != "dataset_identity.json":  # created_at may differ by a second
            assert written[rel] == data, rel
    ident = json.loads(written["dataset_identity.json"])
    assert (
        ident["id"] == "atlas"
        and ident["stats"] == json.loads(want["dataset_identity.json"])["stats"]
    )
    # served straight from the bucket: every file, byte for byte
    with cellucid.CellucidServer(url, port=0, quiet=True, storage_options=s3_server.options) as srv:
        datasets = json.loads(_get(f"{srv.url}/_cellucid/datasets"))["datasets"]
        assert datasets == [{"id": "atlas", "path": "/", "name": "atlas"}]
        for rel, data in written.items():
            assert _get(f"{srv.url}/{rel}") == data, rel
        part = _get(f"{srv.url}/points_2d.bin", {"Range": "bytes=8-23"})
        assert part == written["points_2d.bin"][8:24]
    # a second prepare keeps the export (as on disk); force replaces it
    with pytest.warns(UserWarning, match="already holds an export"):
        cellucid.prepare(adata, url, quiet=True, storage_options=s3_server.options)
    cellucid.prepare(adata, url, quiet=True, force=True, storage_options=s3_server.options)
    assert sorted(p.split("/exports/atlas/", 1)[1] for p in fs.find(url)) == sorted(want)


def test_a_reader_never_sees_a_half_export(s3_server, adata, monkeypatch):
    """While prepare() uploads (slowed down), a reader lists the prefix again and again:
    whenever it finds dataset_identity.json, every file of the export is already there."""
    from cellucid.export import remote

    bucket = s3_server.bucket()
    url = f"s3://{bucket}/exports/live"
    original = remote.RemoteFolder.put

    def slow_put(self, rel, data):
        time.sleep(0.01)
        original(self, rel, data)

    monkeypatch.setattr(remote.RemoteFolder, "put", slow_put)
    fs = s3_server.filesystem()
    snapshots: list[set[str]] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            listed = {p.rsplit("/exports/live/", 1)[-1] for p in fs.find(url, refresh=True)}
            if "dataset_identity.json" in listed:
                snapshots.append(listed)
            else:
                snapshots.append(set())

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for force in (False, True):  # a first export, then one that replaces it
            cellucid.prepare(adata, url, quiet=True, force=force, storage_options=s3_server.options)
    finally:
        done.set()
        reader.join(30)
    final = {p.rsplit("/exports/live/", 1)[-1] for p in fs.find(url, refresh=True)}
    seen = [s for s in snapshots if s]
    assert len(snapshots) > 10 and seen, "the reader polled during the uploads"
    assert all(s == final for s in seen), "an identity was visible before every payload"


def _run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **env, "PYTHONPATH": str(REPO / "python")}
    return subprocess.run(
        [sys.executable, "-m", "cellucid", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )


def _serve_cli(url: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    """``cellucid serve URL`` in a subprocess, and the port its banner names."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cellucid", "serve", url, "--port", "0", "--no-browser"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env, "PYTHONPATH": str(REPO / "python")},
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "Local URL" in line:
            return proc, int(line.rsplit(":", 1)[1].strip().rstrip("/"))
    proc.wait(30)
    raise AssertionError(f"cellucid serve {url} exited with {proc.returncode}")


def test_cli_prepares_into_s3_and_serves_from_it(s3_server, bucket, local, tmp_path):
    out = f"s3://{s3_server.bucket()}/cli/atlas"
    options = [
        "--storage-option",
        "key=testing",
        "--storage-option",
        "secret=testing",
        "--storage-option",
        f"client_kwargs.endpoint_url={s3_server.endpoint}",
    ]
    done = _run_cli("prepare", str(local["h5ad"]), out, "-q", *options, env={})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == out
    # serve the export and the .zarr with the credentials of the usual environment variables
    env = {**s3_server.env, "CELLUCID_CACHE_DIR": str(tmp_path / "cache")}
    for url, kind in ((out, "exported"), (f"s3://{bucket}/atlas.zarr", "anndata")):
        proc, port = _serve_cli(url, env)
        try:
            got = _get(f"http://127.0.0.1:{port}/points_2d.bin")
            assert got == (local["export"] / "points_2d.bin").read_bytes()
            health = json.loads(_get(f"http://127.0.0.1:{port}/_cellucid/health"))
            assert health["type"] == kind
        finally:
            proc.terminate()
            proc.wait(30)


def test_rank_genes_reads_a_store_in_s3(s3_server, bucket, local, adata):
    """Compare groups on an atlas in object storage: the same table as from local disk."""
    group = ("cluster", "a")
    url = f"s3://{bucket}/atlas.zarr"
    remote = cellucid.rank_genes(url, group, quiet=True, storage_options=s3_server.options)
    here = cellucid.rank_genes(local["zarr"], group, quiet=True)
    pd.testing.assert_frame_equal(remote, here)
    assert remote["names"].tolist()[:3] == here["names"].tolist()[:3]
    with pytest.raises(ValueError, match="local disk"):
        s3_server.upload(local["export"], f"s3://{bucket}/atlas-export")
        cellucid.rank_genes(
            f"s3://{bucket}/atlas-export", group, quiet=True, storage_options=s3_server.options
        )


def test_prepare_writes_scanpy_colours_next_to_an_export_in_s3(s3_server, adata):
    """The sibling session of issue 10 in object storage: written after the payloads next to
    the folder, served by the route from the bucket, removed by force when the colours go."""
    coloured = adata.copy()
    coloured.uns["cluster_colors"] = ["#aa0000", "#00aa00", "#0000aa"]
    bucket = s3_server.bucket()
    url = f"s3://{bucket}/exports/atlas"
    cellucid.prepare(coloured, url, quiet=True, storage_options=s3_server.options)
    fs = s3_server.filesystem()
    sibling = f"{bucket}/exports/atlas.cellucid-session"
    data = fs.cat_file(sibling)
    assert not [p for p in fs.find(url) if p.endswith(".cellucid-session")]  # not inside
    with cellucid.CellucidServer(url, port=0, quiet=True, storage_options=s3_server.options) as srv:
        assert _get(f"{srv.url}/_cellucid/default_session?dataset=atlas") == data
    assert b'"colors":["#aa0000","#00aa00","#0000aa"]' in data
    cellucid.prepare(adata, url, quiet=True, force=True, storage_options=s3_server.options)
    assert not fs.exists(sibling)
