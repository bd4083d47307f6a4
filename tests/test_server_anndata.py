"""AnnData mode over HTTP (SPEC §3.3, §3.4 "virtual files", §6.5, §7.17, §7.18).

The contract: every virtual file is byte for byte what ``prepare(adata, out,
compression=None)`` writes for the same AnnData, except the identity's name/id/description/
source/created_at. So each test fetches a file from a served AnnData and compares it with the
file ``prepare`` wrote. Backed ``.h5ad`` and ``.zarr`` stores are checked functionally only
(what they serve, not how lazily).
"""

from __future__ import annotations

import json
import re
import time
import warnings
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import cellucid
from _data import embedding, files_under, make_adata, mixed_obs, rng
from _server import (
    AppServer,
    assert_error,
    assert_head_matches,
    assert_json_response,
    gunzip_one_member,
    raw_get,
    request,
    serving,
    wait_port_free,
)
from cellucid.server.runner import AnnDataServer, serve_anndata
from cellucid.sources.anndata import AnnDataAdapter

N = 120
IDENTITY = "dataset_identity.json"
#: a client elsewhere, as a notebook proxy on this machine names it (transport gzip applies)
REMOTE = "203.0.113.7"
#: identity keys AnnData mode may set differently from prepare (SPEC §3.4)
IDENTITY_FREE = {"name", "id", "description", "source", "created_at"}
IDENTITY_KEYS = {
    "version",
    "id",
    "name",
    "description",
    "cellucid_data_version",
    "stats",
    "embeddings",
    "obs_fields",
    "created_at",
    "export_settings",
    "source",
    "vector_fields",
}
CREATED_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
#: gene ids, some of which need the safe-name rule of SPEC §2.4 in their file names
GENE_IDS = ["Gene0", "CD8A/B", "Gène", "HLA-DRB1", "MT-CO1", "x.y_z"]
GENES = ["Gene0", "CD8A_B", "G_ne", "HLA-DRB1", "MT-CO1", "x.y_z"]
#: every file prepare writes for ``_adata()`` (besides the identity), one of each kind
EXPECTED_FILES = [
    "obs_manifest.json",
    "var_manifest.json",
    "connectivity_manifest.json",
    "points_1d.bin",
    "points_2d.bin",
    "points_3d.bin",
    "obs/n_genes.values.f32",
    "obs/score.values.f32",
    "obs/n_counts.values.f32",
    "obs/cluster.codes.u8",
    "obs/cluster.outliers.f32",
    "obs/batch.codes.u8",
    "obs/batch.outliers.f32",
    "obs/is_doublet.codes.u8",
    "obs/is_doublet.outliers.f32",
    "obs/maybe.codes.u8",
    "obs/maybe.outliers.f32",
    "obs/many.codes.u16",
    "obs/many.outliers.f32",
    *[f"var/{g}.values.f32" for g in GENES],
    "connectivity/edges.src.bin",
    "connectivity/edges.dst.bin",
    "connectivity/edges.weights.f64.bin",
    "vectors/velocity_umap_2d.bin",
    "vectors/velocity_umap_3d.bin",
]
BINARIES = [f for f in EXPECTED_FILES if not f.endswith(".json")]


def _adata() -> ad.AnnData:
    """``make_adata`` plus a 1D embedding, a 300-category field (uint16 codes) and explicit
    3D vectors, so that every kind of virtual file exists."""
    adata = make_adata(N, len(GENES), seed=3)
    adata.var_names = GENE_IDS
    adata.obsm["X_umap_1d"] = embedding(N, 1, seed=11)
    adata.obsm["velocity_umap_3d"] = rng(12).normal(size=(N, 3))
    labels = [f"c{i}" for i in range(300)]
    adata.obs["many"] = pd.Categorical([labels[i % 300] for i in range(N)], categories=labels)
    return adata


def _bare() -> ad.AnnData:
    """2D only, no expression, no graph, no latent space, no vectors."""
    obs = mixed_obs(40, seed=1)[["cluster", "score"]]
    adata = ad.AnnData(obs=obs)
    adata.obsm["X_umap"] = embedding(40, 2, seed=2)
    return adata


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.fixture(scope="module")
def adata() -> ad.AnnData:
    return _adata()


@pytest.fixture(scope="module")
def prepared(adata, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("anndata") / "export"
    return Path(cellucid.prepare(adata, out, compression=None, quiet=True))


@pytest.fixture(scope="module")
def srv(adata) -> AppServer:
    with serving(AnnDataAdapter(adata)) as server:
        yield server


@pytest.fixture(scope="module")
def srv_bare() -> AppServer:
    with serving(AnnDataAdapter(_bare())) as server:
        yield server


def _get(server: AppServer, rel: str, **headers: str):
    headers.setdefault("Accept_Encoding", "identity")
    return server.get("/" + rel, **headers)


# ---- discovery (§3.3) -------------------------------------------------------------------------
def test_health_anndata_exact(srv: AppServer) -> None:
    resp = srv.get("/_cellucid/health")
    assert assert_json_response(resp) == {
        "status": "ok",
        "type": "anndata",
        "version": cellucid.__version__,
        "format": "in-memory",
        "is_backed": False,
        "n_cells": N,
        "n_genes": len(GENES),
    }
    assert resp.header("Cache-Control") == "no-store"


def test_info_anndata_exact(srv: AppServer) -> None:
    resp = srv.get("/_cellucid/info")
    body = assert_json_response(resp)
    assert set(body) == {
        "version",
        "type",
        "format",
        "host",
        "port",
        "n_cells",
        "n_genes",
        "is_backed",
        "column_cache",  # our extension (PROTOCOL.md); an in-memory AnnData needs no cache
    }
    assert body["column_cache"] == {"state": "none", "progress": None, "error": None}
    assert "ws_port" not in body
    assert body["type"] == "anndata" and body["host"] == "127.0.0.1"
    health = srv.get("/_cellucid/health").json()
    for key in ("format", "n_cells", "n_genes", "is_backed", "version"):
        assert body[key] == health[key], key
    assert resp.header("Cache-Control") == "no-store"


def test_datasets_anndata(srv: AppServer) -> None:
    body = assert_json_response(srv.get("/_cellucid/datasets"))
    identity = _get(srv, IDENTITY).json()
    assert body == {"datasets": [{"id": identity["id"], "path": "/", "name": identity["name"]}]}
    assert body["datasets"][0] == {"id": "AnnData_Dataset", "path": "/", "name": "AnnData Dataset"}


def test_bare_health_counts(srv_bare: AppServer) -> None:
    health = srv_bare.get("/_cellucid/health").json()
    assert health["n_genes"] == 0 and health["n_cells"] == 40
    info = srv_bare.get("/_cellucid/info").json()
    assert info["n_genes"] == 0 and info["n_cells"] == 40


# ---- virtual files == prepare output (§3.4) ----------------------------------------------------
def test_expected_file_list_is_what_prepare_writes(prepared: Path) -> None:
    assert files_under(prepared) == {*EXPECTED_FILES, IDENTITY}


@pytest.mark.parametrize("rel", EXPECTED_FILES)
def test_virtual_file_equals_prepare(srv: AppServer, prepared: Path, rel: str) -> None:
    resp = _get(srv, rel)
    assert resp.status == 200, resp
    assert resp.body == (prepared / rel).read_bytes(), rel
    expected_type = "application/json" if rel.endswith(".json") else "application/octet-stream"
    assert resp.all("Content-Type") == [expected_type]
    assert resp.header("Content-Length") == str(len(resp.body))
    assert resp.header("Content-Encoding") is None
    assert resp.header("Cache-Control") == "no-cache"


def test_identity_equals_prepare_except_free_keys(srv: AppServer, prepared: Path) -> None:
    served = _get(srv, IDENTITY).json()
    written = json.loads((prepared / IDENTITY).read_text())
    assert set(served) <= IDENTITY_KEYS, set(served) - IDENTITY_KEYS
    for key in sorted((set(served) | set(written)) - IDENTITY_FREE):
        assert served.get(key) == written.get(key), key
    assert served["export_settings"] == {
        "compression": None,
        "var_quantization": None,
        "obs_continuous_quantization": None,
        "obs_categorical_dtype": "auto",
    }
    # in-memory defaults (§6.5)
    assert served["name"] == "AnnData Dataset"
    assert served["id"] == "AnnData_Dataset"
    assert served["description"] == "Loaded directly from AnnData"
    assert "source" not in served
    assert CREATED_AT.match(served["created_at"])


def test_identity_is_pretty_json(srv: AppServer) -> None:
    resp = _get(srv, IDENTITY)
    assert resp.body.startswith(b'{\n  "version": 2,')
    assert resp.all("Content-Type") == ["application/json"]


def test_identity_built_once(srv: AppServer) -> None:
    first = _get(srv, IDENTITY).body
    assert _get(srv, IDENTITY).body == first
    time.sleep(2.0)
    later = _get(srv, IDENTITY)
    assert later.body == first, "the identity (created_at) changed between requests"
    assert later.header("ETag") == _get(srv, IDENTITY).header("ETag")


@pytest.mark.parametrize("rel", BINARIES)
def test_gz_virtual_file_is_raw_gzip(srv: AppServer, prepared: Path, rel: str) -> None:
    resp = _get(srv, rel + ".gz", Accept_Encoding="gzip, deflate")
    assert resp.status == 200, resp
    assert resp.header("Content-Encoding") is None
    assert resp.all("Content-Type")[0] in {"application/gzip", "application/octet-stream"}
    assert resp.header("Content-Length") == str(len(resp.body))
    assert gunzip_one_member(resp.body) == (prepared / rel).read_bytes()


def test_gz_of_empty_payload_is_a_member(tmp_path: Path) -> None:
    """A graph without edges has empty payloads; their .gz is still one gzip member."""
    adata = _bare()
    import scipy.sparse as sp

    adata.obsp["connectivities"] = sp.csr_matrix((40, 40), dtype=np.float64)
    with serving(AnnDataAdapter(adata)) as server:
        manifest = _get(server, "connectivity_manifest.json").json()
        assert manifest["n_edges"] == 0
        plain = _get(server, "connectivity/edges.src.bin")
        assert plain.status == 200 and plain.body == b""
        gz = _get(server, "connectivity/edges.src.bin.gz")
        assert gz.status == 200 and len(gz.body) > 0
        assert gunzip_one_member(gz.body) == b""


@pytest.mark.parametrize(
    "rel",
    [
        "obs_manifest.json.gz",
        "dataset_identity.json.gz",
        "var_manifest.json.gz",
        "points_2d.bin.gz.gz",
        "obs/cluster.codes.u16",  # u8 field
        "obs/many.codes.u8",  # u16 field
        "obs/cluster.codes.f32",
        "obs/score.values.u8",  # not quantised
        "obs/score.values.u16",
        "obs/score.codes.u8",  # continuous, not categorical
        "obs/cluster.values.f32",  # categorical, not continuous
        "obs/score.outliers.f32",  # continuous fields have no outliers
        "obs/cluster.outliers.u8",
        "obs/Cluster.codes.u8",
        "obs/n%20genes.values.f32",  # the key, not its safe name
        "obs/nope.values.f32",
        "var/Gene0.values.u8",
        "var/Gene0.values.f64",
        "var/gene0.values.f32",
        "var/Gene99.values.f32",
        "var/CD8A/B.values.f32",
        "var/CD8A%2FB.values.f32",
        "var/G%C3%A8ne.values.f32",
        "vectors/velocity_umap_1d.bin",  # no 1D vectors
        "vectors/velocity_umap.bin",
        "vectors/X_pca_2d.bin",
        "points_4d.bin",
        "points_2d.f32",
        "connectivity/edges.weights.f32.bin",
        "connectivity/edges.src.u16",
        "obs",
        "obs/",
        "var/",
        "points_2d.bin/",
    ],
)
def test_wrong_suffix_or_dtype_404(srv: AppServer, rel: str) -> None:
    assert_error(_get(srv, rel), 404)


@pytest.mark.parametrize(
    "rel",
    [
        "points_1d.bin",
        "points_3d.bin",
        "points_3d.bin.gz",
        "var_manifest.json",
        "connectivity_manifest.json",
        "connectivity/edges.src.bin",
        "obs/cluster.outliers.f32",  # no latent space: no outlier payloads
        "vectors/velocity_umap_2d.bin",
    ],
)
def test_absent_parts_404(srv_bare: AppServer, rel: str) -> None:
    assert_error(_get(srv_bare, rel), 404)


def test_bare_files_exist(srv_bare: AppServer) -> None:
    for rel in (
        "points_2d.bin",
        "obs/cluster.codes.u8",
        "obs/score.values.f32",
        "obs_manifest.json",
    ):
        assert _get(srv_bare, rel).status == 200, rel


def test_traversal_in_anndata_mode(srv: AppServer) -> None:
    for target in ("/../points_2d.bin", "/obs/../points_2d.bin", "/%2e%2e/obs_manifest.json"):
        resp = raw_get(srv.port, target)
        assert resp.status in (403, 404), target


# ---- transport compression (§3.4) ----------------------------------------------------------------
@pytest.mark.parametrize("rel", ["points_3d.bin", "obs_manifest.json", "var/CD8A_B.values.f32"])
def test_transport_gzip_on_virtual_files(srv: AppServer, prepared: Path, rel: str) -> None:
    """A client elsewhere (here: named by a local proxy) gets gzip, compressed once."""
    expected = (prepared / rel).read_bytes()
    assert len(expected) >= 400
    resp = _get(srv, rel, Accept_Encoding="gzip", X_Forwarded_For=REMOTE)
    again = _get(srv, rel, Accept_Encoding="gzip", X_Forwarded_For=REMOTE)
    assert again.body == resp.body
    assert resp.status == 200
    if len(expected) >= 1024:  # worth compressing: the server does it
        assert resp.header("Content-Encoding") == "gzip", resp.headers
    if resp.header("Content-Encoding") == "gzip":
        vary = {v.strip().lower() for v in (resp.header("Vary") or "").split(",")}
        assert "accept-encoding" in vary
        assert resp.header("Content-Length") == str(len(resp.body))
        assert gunzip_one_member(resp.body) == expected
    else:
        assert resp.body == expected
    plain = _get(srv, rel, Accept_Encoding="identity")
    assert plain.header("Content-Encoding") is None and plain.body == expected


def test_loopback_clients_get_identity_encoding(srv: AppServer, prepared: Path) -> None:
    """On this machine compressing costs more than it saves (issue 13: 87 vs 579 req/s)."""
    for forwarded in (None, "127.0.0.1", "::1, 127.0.0.2"):
        headers = {"Accept_Encoding": "gzip"}
        if forwarded is not None:
            headers["X_Forwarded_For"] = forwarded
        resp = _get(srv, "points_3d.bin", **headers)
        assert resp.status == 200 and resp.header("Content-Encoding") is None
        assert resp.body == (prepared / "points_3d.bin").read_bytes()


def test_transport_gzip_refused_with_q0(srv: AppServer, prepared: Path) -> None:
    """``gzip;q=0`` means the client does not accept gzip (RFC 9110 §12.5.3)."""
    resp = _get(srv, "points_3d.bin", Accept_Encoding="gzip;q=0, identity", X_Forwarded_For=REMOTE)
    assert resp.header("Content-Encoding") is None
    assert resp.body == (prepared / "points_3d.bin").read_bytes()


@pytest.mark.parametrize(
    ("range_", "sl"),
    [
        ("bytes=0-99", slice(0, 100)),
        ("bytes=-64", slice(-64, None)),
        ("bytes=10-", slice(10, None)),
    ],
)
def test_range_on_virtual_file_never_transport_gzipped(
    srv: AppServer, prepared: Path, range_: str, sl: slice
) -> None:
    data = (prepared / "points_3d.bin").read_bytes()
    resp = _get(srv, "points_3d.bin", Accept_Encoding="gzip", Range=range_, X_Forwarded_For=REMOTE)
    assert resp.status == 206
    assert resp.header("Content-Encoding") is None
    assert resp.body == data[sl]
    start = range(len(data))[sl][0]
    assert resp.header("Content-Range") == f"bytes {start}-{start + len(resp.body) - 1}/{len(data)}"


def test_range_on_virtual_gz_is_slice_of_the_gz(srv: AppServer) -> None:
    full = _get(srv, "points_3d.bin.gz").body
    resp = _get(srv, "points_3d.bin.gz", Range="bytes=0-19", Accept_Encoding="gzip")
    assert resp.status == 206 and resp.body == full[:20]
    assert resp.header("Content-Encoding") is None


def test_unsatisfiable_range_virtual_416(srv: AppServer, prepared: Path) -> None:
    size = (prepared / "points_2d.bin").stat().st_size
    resp = _get(srv, "points_2d.bin", Range=f"bytes={size}-")
    assert resp.status == 416
    assert resp.header("Content-Range") == f"bytes */{size}"


def test_etag_304_on_virtual_file(srv: AppServer) -> None:
    first = _get(srv, "obs/cluster.codes.u8")
    etag = first.header("ETag")
    assert etag
    resp = _get(srv, "obs/cluster.codes.u8", If_None_Match=etag)
    assert resp.status == 304 and resp.body == b""
    assert _get(srv, "obs/cluster.codes.u8", If_None_Match='"x"').status == 200
    assert _get(srv, "obs/batch.codes.u8").header("ETag") != etag


HEAD_TARGETS = [
    "/_cellucid/health",
    "/_cellucid/info",
    "/_cellucid/datasets",
    "/",
    "/?anndata=true",
    "/assets/viewer.js",
    "/dataset_identity.json",
    "/obs_manifest.json",
    "/points_3d.bin",
    "/points_3d.bin.gz",
    "/obs/many.codes.u16",
    "/var/G_ne.values.f32",
    "/connectivity/edges.dst.bin",
    "/vectors/velocity_umap_3d.bin",
    "/obs/many.codes.u8",
]


@pytest.mark.parametrize("target", HEAD_TARGETS)
@pytest.mark.parametrize("accept", ["identity", "gzip"])
def test_head_matches_get_anndata(srv: AppServer, target: str, accept: str) -> None:
    resp = raw_get(srv.port, target, Accept_Encoding=accept)
    assert_head_matches(srv.port, target, resp, Accept_Encoding=accept)


def test_concurrent_virtual_requests_are_consistent(srv: AppServer, prepared: Path) -> None:
    import concurrent.futures

    rels = [f"var/{g}.values.f32" for g in GENES] * 4 + BINARIES
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda r: (r, _get(srv, r)), rels))
    for rel, resp in results:
        assert resp.status == 200 and resp.body == (prepared / rel).read_bytes(), rel


def test_large_virtual_file_streams(tmp_path: Path) -> None:
    """A payload above 1 MiB (150,000 cells in 2D): full body, a range across the 1 MiB
    mark, transport gzip, and the raw .gz form all carry the same bytes."""
    n = 150_000
    adata = ad.AnnData(obs=pd.DataFrame(index=[str(i) for i in range(n)]))
    adata.obsm["X_umap"] = embedding(n, 2, seed=5)
    expected = (
        Path(cellucid.prepare(adata, tmp_path / "big", compression=None, quiet=True))
        / "points_2d.bin"
    ).read_bytes()
    assert len(expected) == n * 8 > 1024**2
    with serving(AnnDataAdapter(adata)) as server:
        full = _get(server, "points_2d.bin")
        assert full.status == 200 and full.body == expected
        assert full.header("Content-Length") == str(len(expected))
        lo, hi = 1024**2 - 100, 1024**2 + 100
        part = _get(server, "points_2d.bin", Range=f"bytes={lo}-{hi}")
        assert part.status == 206 and part.body == expected[lo : hi + 1]
        zipped = _get(server, "points_2d.bin", Accept_Encoding="gzip", X_Forwarded_For=REMOTE)
        assert zipped.header("Content-Encoding") == "gzip"
        assert gunzip_one_member(zipped.body) == expected
        gz = _get(server, "points_2d.bin.gz", Accept_Encoding="gzip")
        assert gz.header("Content-Encoding") is None
        assert gunzip_one_member(gz.body) == expected
        assert_head_matches(server.port, "/points_2d.bin", raw_get(server.port, "/points_2d.bin"))


# ---- adapter options that reach the wire (§6.5) ------------------------------------------------
def test_dataset_name_and_id_options(adata) -> None:
    with serving(AnnDataAdapter(adata, dataset_name="My PBMC data")) as server:
        assert server.get("/_cellucid/datasets").json() == {
            "datasets": [{"id": "My_PBMC_data", "path": "/", "name": "My PBMC data"}]
        }
        identity = _get(server, IDENTITY).json()
        assert (identity["id"], identity["name"]) == ("My_PBMC_data", "My PBMC data")
    with serving(AnnDataAdapter(adata, dataset_name="X", dataset_id="pbmc-1")) as server:
        assert server.get("/_cellucid/datasets").json()["datasets"][0]["id"] == "pbmc-1"
        assert _get(server, IDENTITY).json()["id"] == "pbmc-1"


def test_connectivity_false_hides_the_graph(adata) -> None:
    with serving(AnnDataAdapter(adata, connectivity=False)) as server:
        assert_error(_get(server, "connectivity_manifest.json"), 404)
        assert_error(_get(server, "connectivity/edges.src.bin"), 404)
        stats = _get(server, IDENTITY).json()["stats"]
        assert stats["has_connectivity"] is False and stats["n_edges"] is None


def _edit(adata: ad.AnnData, what: str) -> ad.AnnData:
    adata = adata.copy()
    if what == "no_embedding":
        for key in ("X_umap", "X_umap_1d", "X_umap_3d"):
            del adata.obsm[key]
    elif what == "nan_embedding":
        adata.obsm["X_umap_3d"][4, 1] = np.nan
    elif what == "obs_collision":
        adata.obs["n_genes"] = 1.0  # 'n genes' has the same safe name
    elif what == "gene_duplicate":
        adata.var_names = ["A", "A", "B", "C", "D", "E"]
    elif what == "gene_collision":
        adata.var_names = ["CD8A/B", "CD8A_B", "B", "C", "D", "E"]
    return adata


@pytest.mark.parametrize(
    ("what", "kwargs", "error", "fragment"),
    [
        ("no_embedding", {}, ValueError, "X_pca"),  # lists the obsm keys
        ("nan_embedding", {}, ValueError, "X_umap_3d"),
        ("obs_collision", {}, ValueError, "obs_keys"),
        ("gene_duplicate", {}, ValueError, "var_names_make_unique"),
        ("gene_collision", {}, ValueError, "CD8A/B"),
        (None, {"latent_key": "nope"}, KeyError, "nope"),
        (None, {"centroid_outlier_quantile": 1.5}, ValueError, "1.5"),
        (None, {"centroid_outlier_quantile": 0.5}, ValueError, "0.5"),
        (None, {"centroid_min_points": 0}, ValueError, "centroid_min_points"),
        (None, {"dataset_name": "   "}, ValueError, "dataset_name"),
        (None, {"dataset_id": " padded"}, ValueError, "dataset_id"),
    ],
)
def test_anndata_server_refuses_to_start(adata, what, kwargs, error, fragment: str) -> None:
    """§6.5: bad inputs fail the start with a helpful message, never a silent fix."""
    data = _edit(adata, what) if what else adata
    with pytest.raises(error, match=re.escape(fragment)):
        AnnDataServer(data, port=0, quiet=True, **kwargs)


def test_normalize_embeddings_false_serves_raw_float32(adata) -> None:
    with serving(AnnDataAdapter(adata, normalize_embeddings=False)) as server:
        raw = np.frombuffer(_get(server, "points_3d.bin").body, dtype="<f4").reshape(N, 3)
        np.testing.assert_array_equal(raw, adata.obsm["X_umap_3d"].astype(np.float32))


# ---- runner: serve_anndata / AnnDataServer (§6.5) --------------------------------------------------
def test_serve_anndata_non_blocking(adata, prepared: Path) -> None:
    server = serve_anndata(adata, port=0, open_browser=False, quiet=True, blocking=False)
    try:
        assert isinstance(server, AnnDataServer)
        assert server.is_running()
        assert server.port != 0
        assert server.viewer_url == f"http://127.0.0.1:{server.port}/?anndata=true"
        assert server.viewer_url.endswith("/?anndata=true")
        assert repr(server) == f"AnnDataServer(port={server.port}, status=running)"
        info = request(server.port, "GET", "/_cellucid/info").json()
        assert info["port"] == server.port and info["format"] == "in-memory"
        resp = request(server.port, "GET", "/points_2d.bin")
        assert resp.body == (prepared / "points_2d.bin").read_bytes()
    finally:
        server.stop()
        server.stop()
    assert repr(server) == f"AnnDataServer(port={server.port}, status=stopped)"
    assert wait_port_free(server.port)


# ---- files on disk: backed .h5ad, zarr v2 and v3 (functional) -----------------------------------
@pytest.fixture(scope="module")
def stores(adata, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("stores")
    h5ad = base / "pbmc_small.h5ad"
    _quiet(adata.write_h5ad, h5ad)
    v2 = base / "cells_v2.zarr"
    v3 = base / "store_v3"  # no .zarr suffix: detected by zarr.json
    with ad.settings.override(zarr_write_format=2):
        _quiet(adata.write_zarr, v2)
    with ad.settings.override(zarr_write_format=3):
        _quiet(adata.write_zarr, v3)
    assert (v2 / ".zgroup").exists() and (v3 / "zarr.json").exists()
    exports = {}
    for key, path, reader in (
        ("h5ad", h5ad, ad.read_h5ad),
        ("zarr2", v2, ad.read_zarr),
        ("zarr3", v3, ad.read_zarr),
    ):
        loaded = _quiet(reader, path)
        exports[key] = Path(
            cellucid.prepare(loaded, base / f"export_{key}", compression=None, quiet=True)
        )
    return {"base": base, "h5ad": h5ad, "zarr2": v2, "zarr3": v3, "exports": exports}


def _check_served_store(server: AnnDataServer, export: Path, path: Path, fmt: str) -> None:
    port = server.port
    health = request(port, "GET", "/_cellucid/health").json()
    info = request(port, "GET", "/_cellucid/info").json()
    assert health["format"] == fmt and info["format"] == fmt
    for key in ("format", "n_cells", "n_genes", "is_backed"):
        assert health[key] == info[key], key
    assert isinstance(health["is_backed"], bool)
    assert (health["n_cells"], health["n_genes"]) == (N, len(GENES))
    for rel in EXPECTED_FILES:
        resp = request(port, "GET", "/" + rel)
        assert resp.status == 200, (rel, resp)
        assert resp.body == (export / rel).read_bytes(), rel
    gz = request(port, "GET", "/var/MT-CO1.values.f32.gz", {"Accept-Encoding": "gzip"})
    assert gz.header("Content-Encoding") is None
    assert gunzip_one_member(gz.body) == (export / "var/MT-CO1.values.f32").read_bytes()
    # identity defaults for a file: name without suffix, safe id, source = file name (§6.5)
    ident_resp = request(port, "GET", "/dataset_identity.json")
    identity = ident_resp.json()
    stem = path.name[: -len(path.suffix)] if path.suffix in (".h5ad", ".zarr") else path.name
    assert identity["name"] == stem
    assert identity["id"] == re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")
    assert identity["source"] == {"name": path.name, "filename": path.name}
    assert identity["description"] == "Loaded directly from AnnData"
    assert str(path.parent) not in ident_resp.body.decode(), "absolute server path exposed"
    datasets = request(port, "GET", "/_cellucid/datasets").json()
    assert datasets == {"datasets": [{"id": identity["id"], "path": "/", "name": stem}]}
    written = json.loads((export / IDENTITY).read_text())
    for key in set(written) - IDENTITY_FREE:
        assert identity[key] == written[key], key


def _fds_open_on(path: Path) -> list[str]:
    """File descriptors of this process that point at ``path`` (Linux /proc)."""
    target = str(path.resolve())
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            if Path(fd).readlink().as_posix() == target:
                found.append(fd.name)
        except OSError:
            pass
    return found


def test_backed_h5ad_served(stores) -> None:
    server = AnnDataServer(stores["h5ad"], port=0, quiet=True)
    with server:
        health = request(server.port, "GET", "/_cellucid/health").json()
        assert health["is_backed"] is True
        _check_served_store(server, stores["exports"]["h5ad"], stores["h5ad"], "h5ad")
    assert _fds_open_on(stores["h5ad"]) == [], "stop() must close the backed file"


def test_h5ad_not_backed(stores) -> None:
    with AnnDataServer(stores["h5ad"], port=0, quiet=True, backed=False) as server:
        health = request(server.port, "GET", "/_cellucid/health").json()
        assert health["is_backed"] is False and health["format"] == "h5ad"
        resp = request(server.port, "GET", "/var/HLA-DRB1.values.f32")
        assert resp.body == (stores["exports"]["h5ad"] / "var/HLA-DRB1.values.f32").read_bytes()


@pytest.mark.parametrize("key", ["zarr2", "zarr3"])
def test_zarr_served(stores, key: str) -> None:
    with AnnDataServer(stores[key], port=0, quiet=True) as server:
        _check_served_store(server, stores["exports"][key], stores[key], "zarr")


def test_serve_anndata_path_non_blocking(stores) -> None:
    server = serve_anndata(
        stores["h5ad"], port=0, open_browser=False, quiet=True, blocking=False, latent_key="X_pca"
    )
    try:
        assert isinstance(server, AnnDataServer) and server.is_running()
        assert server.viewer_url.endswith("/?anndata=true")
        manifest = request(server.port, "GET", "/obs_manifest.json").json()
        assert manifest["latent_key"] == "X_pca"
    finally:
        server.stop()


def test_missing_anndata_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        AnnDataServer(tmp_path / "nope.h5ad", port=0, quiet=True)
