"""The embedding switch's routes: every usable obsm embedding of an AnnData, as float32."""

from __future__ import annotations

import numpy as np
import pytest

import cellucid
from _data import make_adata
from _server import serving
from cellucid.export.encode import normalize_points
from cellucid.sources.anndata import AnnDataAdapter
from cellucid.sources.export_folder import ExportFolderSource


def rich_adata():
    adata = make_adata(120, 5)
    rng = np.random.default_rng(7)
    adata.obsm["X_tsne"] = rng.normal(size=(adata.n_obs, 2)) * 30
    adata.obsm["spatial"] = rng.uniform(0, 5000, size=(adata.n_obs, 2))
    adata.obsm["X_pca50"] = rng.normal(size=(adata.n_obs, 50))
    adata.obsm["cube"] = rng.normal(size=(adata.n_obs, 2, 2))  # not an embedding
    return adata


@pytest.fixture(params=["memory", "h5ad", "zarr"])
def adapter(request, tmp_path):
    adata = rich_adata()
    if request.param == "memory":
        return AnnDataAdapter(adata)
    path = tmp_path / ("d.h5ad" if request.param == "h5ad" else "d.zarr")
    adata.write_h5ad(path) if request.param == "h5ad" else adata.write_zarr(path)
    return AnnDataAdapter.from_file(path)


def test_lists_every_usable_embedding_and_serves_it_normalised(adapter):
    adata = rich_adata()
    with serving(adapter) as srv:
        listing = srv.get("/_cellucid/embeddings").json()
        keys = {e["key"]: e for e in listing["embeddings"]}
        assert set(keys) == {"X_umap", "X_umap_3d", "X_pca", "X_tsne", "spatial", "X_pca50"}
        assert keys["X_pca50"] == {"key": "X_pca50", "columns": 50, "dims": [1, 2, 3]}
        assert keys["X_tsne"]["dims"] == [1, 2]
        assert listing["current"] == {"2": "X_umap", "3": "X_umap_3d"}
        resp = srv.get("/_cellucid/embedding?key=spatial&dim=2")
        assert resp.status == 200 and resp.header("Content-Type") == "application/octet-stream"
        got = np.frombuffer(resp.body, "<f4").reshape(-1, 2)
        expected, _ = normalize_points(adata.obsm["spatial"], 2)
        np.testing.assert_array_equal(got, expected)
        pca = np.frombuffer(srv.get("/_cellucid/embedding?key=X_pca50&dim=3").body, "<f4")
        np.testing.assert_array_equal(
            pca.reshape(-1, 3), normalize_points(adata.obsm["X_pca50"][:, :3], 3)[0]
        )
        # the exported embedding and the switch agree byte for byte
        exported = srv.get("/points_2d.bin")
        assert exported.status == 200
        assert srv.get("/_cellucid/embedding?key=X_umap&dim=2").body == exported.body
        for target, status, text in [
            ("/_cellucid/embedding?key=nope&dim=2", 404, "no obsm embedding 'nope'"),
            ("/_cellucid/embedding?key=X_tsne&dim=3", 404, "cannot be shown in 3D"),
            ("/_cellucid/embedding?key=cube&dim=2", 404, "cannot be shown"),
            ("/_cellucid/embedding?key=X_tsne", 400, "dim=<1|2|3>"),
            ("/_cellucid/embedding?key=X_tsne&dim=2&dataset=other", 404, "no dataset"),
        ]:
            r = srv.get(target)
            assert r.status == status and text in r.json()["message"], (target, r)


def test_current_follows_the_embedding_option(tmp_path):
    adapter = AnnDataAdapter(rich_adata(), embedding=["X_tsne", "X_pca50:3"])
    with serving(adapter) as srv:
        assert srv.get("/_cellucid/embeddings").json()["current"] == {
            "2": "X_tsne",
            "3": "X_pca50:3",
        }


def test_export_folders_have_no_switch(tmp_path):
    out = cellucid.prepare(rich_adata(), tmp_path / "e", quiet=True)
    with serving(ExportFolderSource(out)) as srv:
        r = srv.get("/_cellucid/embeddings")
        assert r.status == 404 and "only the embeddings of its export" in r.json()["message"]
        assert srv.get("/_cellucid/embedding?key=X_tsne&dim=2").status == 404


def test_the_comm_transport_answers_the_same_bytes():
    """The widget's comm transport (no reachable port) serves the embedding switch too."""
    from cellucid.comm_transport import CommFiles

    with serving(AnnDataAdapter(rich_adata())) as srv:
        files = CommFiles(srv.config)
        listing = files.answer("GET", "_cellucid/embeddings", {}, b"")
        assert listing.status == 200
        assert listing.body == srv.get("/_cellucid/embeddings").body
        reply = files.answer("GET", "_cellucid/embedding?key=X_tsne&dim=2", {}, b"")
        assert reply.status == 200 and reply.headers["content-type"] == "application/octet-stream"
        assert reply.body == srv.get("/_cellucid/embedding?key=X_tsne&dim=2").body
        assert files.answer("GET", "_cellucid/embedding?key=nope&dim=2", {}, b"").status == 404
        assert files.answer("GET", "_cellucid/embedding?key=X_tsne", {}, b"").status == 400
        assert files.answer("POST", "_cellucid/embeddings", {}, b"").status == 405
