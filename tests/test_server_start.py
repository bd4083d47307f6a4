"""An AnnData server answers at once and reads only what each request needs (issue 12).

Health answers while the file is still being read; data requests wait for it. Outlier
quantiles are computed when their file is asked for (the latent space stays on disk until
then), a kNN graph over the browser budget is not read whole, and ``/_cellucid/info`` reports
the column cache as it is built. Every served byte equals what ``prepare()`` writes.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import cellucid
from _data import knn_graph
from cellucid.sources.anndata import AnnDataAdapter
from cellucid.sources.deferred import DeferredAnnData

N, G = 3000, 40


@pytest.fixture(scope="module")
def adata() -> ad.AnnData:
    rng = np.random.default_rng(3)
    obs = pd.DataFrame(
        {
            "cluster": pd.Categorical(rng.choice(["a", "b", "c", "d"], N)),
            "batch": pd.Categorical(rng.choice(["x", "y"], N)),
            "score": rng.random(N).astype(np.float32),
        },
        index=[f"cell{i}" for i in range(N)],
    )
    a = ad.AnnData(
        X=sp.random(N, G, density=0.2, format="csr", dtype=np.float32, random_state=3),
        obs=obs,
        var=pd.DataFrame(index=[f"g{i}" for i in range(G)]),
    )
    a.obsm["X_umap"] = rng.normal(size=(N, 2)).astype(np.float32)
    a.obsm["X_pca"] = rng.normal(size=(N, 8)).astype(np.float32)
    a.obsp["connectivities"] = knn_graph(N, 6)
    return a


@pytest.fixture(scope="module")
def files(adata: ad.AnnData, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("start")
    out = {"h5ad": root / "data.h5ad", "zarr": root / "data.zarr"}
    adata.write_h5ad(out["h5ad"])
    adata.write_zarr(out["zarr"])
    out["export"] = cellucid.prepare(adata, root / "export", quiet=True)
    return out


pytestmark = pytest.mark.usefixtures("cache_dir")  # tests/conftest.py


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as answer:
        return answer.read()


def _payload(adapter: AnnDataAdapter, rel: str) -> bytes:
    body = adapter.open(adapter.datasets()[0], rel)
    assert body is not None, rel
    return body.read(0, body.size)


@pytest.mark.parametrize("fmt", ["h5ad", "zarr"])
def test_health_answers_while_the_file_is_read_and_data_waits(files, monkeypatch, fmt):
    release = threading.Event()
    original = AnnDataAdapter.from_file.__func__

    def slow(cls, *args, **kwargs):
        release.wait(30)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(AnnDataAdapter, "from_file", classmethod(slow))
    server = cellucid.AnnDataServer(files[fmt], port=0, quiet=True).start_background(wait=False)
    try:
        t0 = time.perf_counter()
        health = json.loads(_get(f"{server.url}/_cellucid/health"))
        assert time.perf_counter() - t0 < 1.0
        assert health["n_cells"] == N and health["n_genes"] == G and health["is_backed"]
        assert health["format"] == fmt
        info = json.loads(_get(f"{server.url}/_cellucid/info"))
        assert info["column_cache"] == {"state": "pending", "progress": None, "error": None}
        datasets = json.loads(_get(f"{server.url}/_cellucid/datasets"))["datasets"]
        assert datasets == [{"id": "data", "path": "/", "name": "data"}]
        got: dict[str, bytes] = {}
        worker = threading.Thread(
            target=lambda: got.setdefault("points", _get(f"{server.url}/points_2d.bin"))
        )
        worker.start()
        worker.join(0.5)
        assert worker.is_alive(), "a data request waits for the dataset"
        release.set()
        worker.join(30)
        assert got["points"] == (files["export"] / "points_2d.bin").read_bytes()
        identity = json.loads(_get(f"{server.url}/dataset_identity.json"))
        assert identity["stats"]["n_cells"] == N
    finally:
        release.set()
        server.stop()


def test_a_file_that_cannot_be_read_fails_the_start(tmp_path, adata):
    path = tmp_path / "bad.h5ad"
    adata.write_h5ad(path)
    with h5py.File(path, "a") as f:  # an embedding with a non-finite coordinate
        f["obsm"]["X_umap"][5, 0] = np.nan
    server = cellucid.AnnDataServer(path, port=0, quiet=True)
    with pytest.raises(ValueError, match="non-finite"):
        server.start_background()
    assert not server.is_running()
    source = DeferredAnnData(path)
    source.start()
    with pytest.raises(ValueError, match="non-finite"):
        source.wait(30)
    assert source.status()["state"] == "error"
    source.close()


def test_outlier_quantiles_are_computed_when_asked_for(files, h5_reads):
    with AnnDataAdapter.from_file(files["h5ad"], cache_columns=False) as adapter:
        for rel in ("obs_manifest.json", "points_2d.bin"):
            assert _payload(adapter, rel) == (files["export"] / rel).read_bytes()
        served = json.loads(_payload(adapter, "dataset_identity.json"))
        written = json.loads((files["export"] / "dataset_identity.json").read_text())
        for key in ("stats", "embeddings", "obs_fields"):  # name, id and dates differ
            assert served[key] == written[key]
        assert not [r for r in h5_reads if r[0].startswith("/obsm/X_pca")], "latent read at start"
        for key in ("cluster", "batch"):
            rel = f"obs/{key}.outliers.f32"
            assert _payload(adapter, rel) == (files["export"] / rel).read_bytes()
        latent_reads = [size for name, size in h5_reads if name == "/obsm/X_pca"]
        assert latent_reads, "the outliers come from the latent space on disk"


def _big_graph(path: Path, monkeypatch: pytest.MonkeyPatch) -> ad.AnnData:
    """An .h5ad at ``path`` whose kNN graph is over a browser budget lowered to 5,000 edges."""
    import cellucid.export.encode as enc

    n = 20_000
    rng = np.random.default_rng(5)
    big = ad.AnnData(
        X=sp.random(n, 3, density=0.3, format="csr", dtype=np.float32, random_state=5),
        obs=pd.DataFrame({"c": pd.Categorical(rng.choice(["a", "b"], n))}),
    )
    big.obsm["X_umap"] = rng.normal(size=(n, 2))
    big.obsp["connectivities"] = knn_graph(n, 10)
    big.write_h5ad(path)
    monkeypatch.setattr(enc, "EDGE_BUDGET", 44 * 5000 + 4 * n)  # room for 5,000 edges
    return big


def test_a_graph_over_the_browser_budget_is_not_read_whole(tmp_path, h5_reads, monkeypatch):
    big = _big_graph(tmp_path / "big.h5ad", monkeypatch)
    h5_reads.clear()
    with pytest.warns(UserWarning, match="connectivity not exported"):
        adapter = AnnDataAdapter.from_file(tmp_path / "big.h5ad", cache_columns=False)
    with adapter:
        identity = json.loads(_payload(adapter, "dataset_identity.json"))
        assert identity["stats"]["has_connectivity"] is False
        assert adapter.open(adapter.datasets()[0], "connectivity_manifest.json") is None
    graph = [r for r in h5_reads if r[0].startswith("/obsp/connectivities")]
    assert not [r for r in graph if r[0].endswith(("indices", "indptr"))]
    read = sum(size for _, size in graph)
    assert 0 < read < big.obsp["connectivities"].nnz / 2, "the graph's values were read whole"
    with pytest.warns(UserWarning, match="connectivity not exported"):
        out = cellucid.prepare(big, tmp_path / "export", quiet=True)
    assert json.loads((out / "dataset_identity.json").read_text())["stats"] == identity["stats"]


def test_info_reports_the_column_cache_until_ready(files):
    server = cellucid.AnnDataServer(files["h5ad"], port=0, quiet=True).start_background()
    try:
        states = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            cache = json.loads(_get(f"{server.url}/_cellucid/info"))["column_cache"]
            states.append(cache["state"])
            assert cache["error"] is None
            if cache["state"] == "ready":
                assert cache["progress"] == 1.0
                break
            # scheduled is "pending", not "idle": a viewer stops polling at idle, and would
            # never show the build that starts a moment later
            assert cache["state"] in ("pending", "building"), states
            if cache["state"] == "building":
                assert 0.0 <= cache["progress"] <= 1.0
            time.sleep(0.05)
        assert states[-1] == "ready"
        assert states[0] == "pending", states
        rel = "var/g7.values.f32"
        assert _get(f"{server.url}/{rel}") == (files["export"] / rel).read_bytes()
    finally:
        server.stop()


def test_the_cache_is_never_idle_between_scheduled_and_building(files, monkeypatch):
    """The moment the build starts, the state goes from "pending" to "building" with no
    "idle" in between (the viewer stops polling at "idle"; CI once saw it there)."""
    seen: list[str] = []
    adapter = AnnDataAdapter.from_file(files["h5ad"])
    cache = adapter.column_cache
    assert cache is not None
    start = cache.build_in_background

    def observed(*args, **kwargs):
        seen.append(adapter.status()["state"])  # the build is about to start
        thread = start(*args, **kwargs)
        seen.append(adapter.status()["state"])  # its thread runs (or it has finished)
        return thread

    monkeypatch.setattr(cache, "build_in_background", observed)
    with adapter:
        assert adapter.status()["state"] == "pending"
        _payload(adapter, "points_2d.bin")  # the viewer's points start the build
        assert seen[0] == "pending", seen
        assert seen[1] in ("building", "ready"), seen


def test_the_first_files_need_neither_numba_nor_scipy(adata, tmp_path):
    """Loading numba costs a starting server about half a second of one core (and slows
    its other threads), scipy.sparse a tenth: the first files of a file with few centroid
    jobs and a graph over the browser budget come from numpy alone (the centroids bit for
    bit as the numba kernel gives them, tests/test_encode.py) in a process that imports
    neither."""
    import os
    import subprocess
    import sys

    path = tmp_path / "data.h5ad"
    adata.write_h5ad(path)
    export = cellucid.prepare(adata, tmp_path / "export", connectivity=False, quiet=True)
    script = (
        "import sys\n"
        "import cellucid.export.encode as enc\n"
        "enc.EDGE_BUDGET = 1000  # the graph is over budget: proven without building it\n"
        "from cellucid.sources.deferred import DeferredAnnData\n"
        "source = DeferredAnnData(sys.argv[1])\n"
        "entry = source.datasets()[0]\n"
        "for rel in ('dataset_identity.json', 'obs_manifest.json', 'points_2d.bin'):\n"
        "    body = source.open(entry, rel)\n"
        "    if rel != 'dataset_identity.json':\n"
        "        sys.stdout.buffer.write(body.read(0, body.size))\n"
        "source.close()\n"
        "print(sorted(m for m in ('numba', 'scipy') if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        env={**os.environ, "CELLUCID_CACHE_DIR": str(tmp_path / "cache")},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stderr.decode().strip().splitlines()[-1] == "[]", done.stderr.decode()
    written = [(export / rel).read_bytes() for rel in ("obs_manifest.json", "points_2d.bin")]
    assert done.stdout == b"".join(written)


# ----------------------------------------------------------------- restarts (start-up memo)
def _count_centroid_runs(monkeypatch) -> list[str]:
    import cellucid.export.encode as enc

    runs: list[str] = []
    real = enc.compute_centroids
    monkeypatch.setattr(
        enc, "compute_centroids", lambda *a, **k: runs.append(a[1][0]) or real(*a, **k)
    )
    return runs


@pytest.mark.parametrize("fmt", ["h5ad", "zarr"])
def test_a_restart_takes_the_centroids_of_the_first_start(files, fmt, monkeypatch, cache_dir):
    runs = _count_centroid_runs(monkeypatch)
    served = []
    for _start in range(2):
        with AnnDataAdapter.from_file(files[fmt], cache_columns=False) as adapter:
            served.append(_payload(adapter, "obs_manifest.json"))
    assert len(runs) == 2, "two categorical fields in 2D at the first start, none after"
    want = (files["export"] / "obs_manifest.json").read_bytes()
    assert served == [want, want]
    assert len(list((cache_dir / "start").glob("data.*.json"))) == 1


def test_a_changed_file_is_started_afresh(adata, tmp_path, monkeypatch, cache_dir):
    changed = adata.copy()
    changed.obsm["X_umap"] = changed.obsm["X_umap"] * 2 + 1  # other centroids
    export = cellucid.prepare(changed, tmp_path / "export", quiet=True)
    runs = _count_centroid_runs(monkeypatch)
    path = tmp_path / "data.h5ad"
    adata.write_h5ad(path)
    with AnnDataAdapter.from_file(path, cache_columns=False) as adapter:
        before = _payload(adapter, "obs_manifest.json")
    changed.write_h5ad(path)
    with AnnDataAdapter.from_file(path, cache_columns=False) as adapter:
        after = _payload(adapter, "obs_manifest.json")
    assert after == (export / "obs_manifest.json").read_bytes() != before
    assert len(runs) == 4, "the rewritten file's centroids are computed, not remembered"
    # an unreadable memo counts as absent
    for memo in (cache_dir / "start").glob("*.json"):
        memo.write_text("{not json")
    with AnnDataAdapter.from_file(path, cache_columns=False) as adapter:
        assert _payload(adapter, "obs_manifest.json") == after
    assert len(runs) == 6


def test_a_restart_does_not_read_the_graph_again(tmp_path, h5_reads, monkeypatch, cache_dir):
    _big_graph(tmp_path / "big.h5ad", monkeypatch)
    identities = []
    for start in range(2):
        h5_reads.clear()
        with pytest.warns(UserWarning, match="connectivity not exported"):
            adapter = AnnDataAdapter.from_file(tmp_path / "big.h5ad", cache_columns=False)
        with adapter:
            identities.append(json.loads(_payload(adapter, "dataset_identity.json"))["stats"])
        graph = [r for r in h5_reads if r[0].startswith("/obsp/connectivities")]
        assert bool(graph) == (start == 0), graph
    assert identities[0] == identities[1]
    assert identities[0]["has_connectivity"] is False


def test_the_server_listens_before_pandas_is_imported():
    """What ``cellucid serve`` imports before it listens decides how soon health answers:
    pandas (0.2 s) is for reading the file, which starts once the server listens."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "import cellucid.cli, cellucid.sources.detect, cellucid.server.runner\n"
        "import cellucid.sources.deferred, cellucid.session.bundle, cellucid.session.defaults\n"
        "print(sorted(m for m in ('pandas', 'scipy', 'numba') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "[]"
    # the session package still offers every name at once, and from ... import *
    star = subprocess.run(
        [sys.executable, "-c", "from cellucid.session import *; print(CellucidSessionBundle)"],
        capture_output=True,
        timeout=60,
    )
    assert star.returncode == 0 and b"CellucidSessionBundle" in star.stdout, star.stderr
