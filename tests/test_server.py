"""The HTTP server of SPEC §3 in export mode, the event and upload routes, CORS, and the
runner of §6.4/§6.8, tested against a real socket.

Export folders come from ``_exports`` (hand-written from SPEC §2, not from the exporter), so
every byte the server sends can be compared with the file on disk. Requests are sent with
``http.client`` or a raw socket (``_server``), which never normalise ``..`` or decode
anything on the client side.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import tempfile
import threading
import time
import warnings
import webbrowser
from email.utils import formatdate
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _exports import write_dataset
from _server import (
    ALWAYS_CORS,
    AppServer,
    Response,
    assert_error,
    assert_head_matches,
    assert_json_response,
    gunzip_one_member,
    raw_get,
    request,
    serving,
    wait_port_free,
)
from cellucid import __version__
from cellucid.server import runner
from cellucid.server.app import ServerConfig, default_ui_dir
from cellucid.server.events import ViewerChannel, encode_cells
from cellucid.server.runner import CellucidServer, serve
from cellucid.sources.base import DatasetEntry, FileBody
from cellucid.sources.export_folder import ExportFolderSource

SECRET = b"TOP-SECRET-5f1c0e-never-served"
ROOT_NAMES = ("alpha", "beta")
INELIGIBLE = ("bad name", "assets", "CON")
BUNDLE_MAGIC = b"CELLUCID_SESSION\n"


# ---- data ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the secret (outside every dataset) and the exports."""
    base = tmp_path_factory.mktemp("server")
    (base / "secret.txt").write_bytes(SECRET)
    (base / "secret.f32").write_bytes(SECRET)
    return base


@pytest.fixture(scope="module")
def single(base: Path):
    """One dataset with every kind of file (1d/2d/3d, obs, outliers, genes, graph, vectors),
    plus traps: hidden files and symlinks leading out of the dataset."""
    ex = write_dataset(base / "single", dims=(1, 2, 3), n=70)
    root = ex.path
    (root / ".hidden").write_bytes(SECRET)
    (root / "obs" / ".secret.values.f32").write_bytes(SECRET)
    os.symlink(base / "secret.f32", root / "obs" / "leak.values.f32")
    os.symlink(base, root / "escape")
    os.symlink(base / "secret.txt", root / "points_9d.bin")
    # files the manifests do not name: never served (issue 13)
    (root / "notes.txt").write_text("my private notes")
    (root / "obs" / "stray.values.f32").write_bytes(np.random.default_rng(1).bytes(280))
    return ex


@pytest.fixture(scope="module")
def compressed(base: Path):
    return write_dataset(base / "compressed", compression=6, n=50, dataset_id="gz", name="GZ")


@pytest.fixture(scope="module")
def export_root(base: Path) -> dict[str, Any]:
    """An export root: ``alpha`` (no genes, no graph) and ``beta`` (everything), three
    ineligible dataset directories, a non-dataset directory and a ``datasets.json``."""
    root = base / "root"
    alpha = write_dataset(
        root / "alpha", n=30, n_genes=0, connectivity=False, dataset_id="ds-a", name="Alpha"
    )
    beta = write_dataset(root / "beta", n=45, seed=1, dataset_id="ds-b", name="Beta")
    for i, name in enumerate(INELIGIBLE):
        write_dataset(root / name, n=20, seed=5 + i, dataset_id=f"bad{i}", name=f"Bad {i}")
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not a dataset")
    entries = [
        {"id": "ds-a", "path": "alpha/", "name": "Alpha", "n_cells": 30, "n_genes": 0},
        {"id": "ds-b", "path": "beta/", "name": "Beta", "n_cells": 45, "n_genes": 3},
    ]
    (root / "datasets.json").write_text(
        json.dumps({"version": 1, "default": "ds-a", "datasets": entries}, indent=2)
    )
    # a link from alpha into beta: one dataset's files never appear under another's path
    os.symlink(root / "beta" / "var_manifest.json", root / "alpha" / "obs" / "beta.values.f32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        source = ExportFolderSource(root)
    return {"root": root, "alpha": alpha, "beta": beta, "source": source, "warnings": caught}


@pytest.fixture(scope="module")
def srv(single) -> AppServer:
    with serving(ExportFolderSource(single.path)) as server:
        yield server


@pytest.fixture(scope="module")
def srv_gz(compressed) -> AppServer:
    with serving(ExportFolderSource(compressed.path)) as server:
        yield server


@pytest.fixture(scope="module")
def srv_root(export_root) -> AppServer:
    with serving(export_root["source"]) as server:
        yield server


def _rel_files(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and not p.name.startswith(".")
    )


# ---- §3.3 discovery ---------------------------------------------------------------------------
def test_health_export_mode_exact(srv: AppServer) -> None:
    resp = srv.get("/_cellucid/health")
    assert assert_json_response(resp) == {
        "status": "ok",
        "type": "exported",
        "version": __version__,
    }
    assert resp.header("Cache-Control") == "no-store"


def test_info_export_mode_exact(srv: AppServer) -> None:
    resp = srv.get("/_cellucid/info")
    body = assert_json_response(resp)
    assert set(body) == {"version", "host", "port", "mode"}
    assert body["version"] == __version__
    assert body["mode"] == "standalone"
    assert body["host"] == "127.0.0.1"
    assert isinstance(body["port"], int)
    assert "ws_port" not in resp.body.decode()
    assert resp.header("Cache-Control") == "no-store"


def test_version_identical_in_health_and_info(srv: AppServer, srv_root: AppServer) -> None:
    for server in (srv, srv_root):
        assert (
            server.get("/_cellucid/health").json()["version"]
            == (server.get("/_cellucid/info").json()["version"])
        )


def test_datasets_single_dataset(srv: AppServer) -> None:
    body = assert_json_response(srv.get("/_cellucid/datasets"))
    assert body == {"datasets": [{"id": "demo", "path": "/", "name": "Demo dataset"}]}


def test_datasets_export_root_lists_eligible_sorted(srv_root: AppServer, export_root) -> None:
    resp = srv_root.get("/_cellucid/datasets")
    body = assert_json_response(resp)
    assert body == {
        "datasets": [
            {"id": "ds-a", "path": "/alpha/", "name": "Alpha"},
            {"id": "ds-b", "path": "/beta/", "name": "Beta"},
        ]
    }
    assert [list(e) for e in body["datasets"]] == [["id", "path", "name"]] * 2
    assert resp.header("Cache-Control") == "no-store"


def test_export_root_warns_about_each_ineligible_dataset(export_root) -> None:
    messages = [str(w.message) for w in export_root["warnings"]]
    for name in INELIGIBLE:
        assert any(repr(name) in m or name in m for m in messages), (name, messages)
    assert not any("notes" in m for m in messages), "a non-dataset directory is not warned about"


def test_export_root_ineligible_datasets_not_served(srv_root: AppServer) -> None:
    # "bad name" and "CON" are not catalogued, so their files have no URL
    for target in ("/bad%20name/points_2d.bin", "/CON/points_2d.bin", "/CON/dataset_identity.json"):
        assert_error(srv_root.get(target), 404)


def test_ui_routes_take_precedence_over_a_dataset_named_assets(
    srv_root: AppServer, export_root
) -> None:
    resp = srv_root.get("/assets/points_2d.bin")
    assert resp.status == 404
    assert resp.body != (export_root["root"] / "assets" / "points_2d.bin").read_bytes()
    # the viewer's own assets are still there
    assert srv_root.get("/assets/viewer.js").status == 200


@pytest.mark.parametrize(
    "target",
    [
        "/_cellucid/health/",
        "/_cellucid/info/",
        "/_cellucid/datasets/",
        "/index.html/",
        "/obs",
        "/obs/",
        "/var/",
        "/connectivity",
        "/vectors/",
        "/points_2d.bin/",
    ],
)
def test_no_redirects_no_listings(srv: AppServer, target: str) -> None:
    resp = srv.get(target)
    assert_error(resp, 404)
    assert resp.header("Location") is None
    assert b"cell_type" not in resp.body and b"GENE0" not in resp.body


@pytest.mark.parametrize("target", ["/alpha", "/alpha/", "/beta/obs/", "/beta/var", "/"])
def test_export_root_directories_are_not_listed(srv_root: AppServer, target: str) -> None:
    resp = srv_root.get(target)
    if target == "/":  # the viewer page, not a listing
        assert resp.status == 200
        assert resp.header("Content-Type") == "text/html; charset=utf-8"
    else:
        assert_error(resp, 404)
        assert resp.header("Location") is None
    assert b"points_2d" not in resp.body and b"dataset_identity" not in resp.body


@pytest.mark.parametrize(
    "target",
    ["/_cellucid/nope", "/_cellucid/", "/_cellucid", "/nope.bin", "/obs/nope.values.f32", "/x/y/z"],
)
def test_unknown_routes_404_json(srv: AppServer, target: str) -> None:
    resp = srv.get(target)
    assert_error(resp, 404)
    assert resp.header("Cache-Control") == "no-store"


@pytest.mark.parametrize(
    ("method", "target", "allowed"),
    [
        ("POST", "/_cellucid/health", {"GET", "HEAD"}),
        ("PUT", "/_cellucid/info", {"GET", "HEAD"}),
        ("DELETE", "/_cellucid/datasets", {"GET", "HEAD"}),
        ("GET", "/_cellucid/events", {"POST"}),
        ("PUT", "/_cellucid/events", {"POST"}),
        ("GET", "/_cellucid/session_bundle", {"POST"}),
        ("POST", "/points_2d.bin", {"GET", "HEAD"}),
        ("PUT", "/obs/cell_type.codes.u8", {"GET", "HEAD"}),
        ("DELETE", "/dataset_identity.json", {"GET", "HEAD"}),
        ("POST", "/", {"GET", "HEAD"}),
        ("PATCH", "/assets/viewer.js", {"GET", "HEAD"}),
    ],
)
def test_wrong_method_405_with_allow(srv: AppServer, method: str, target: str, allowed) -> None:
    resp = srv.request(method, target, body=b"{}" if method in ("POST", "PUT", "PATCH") else None)
    assert_error(resp, 405)
    allow = {m.strip().upper() for m in (resp.header("Allow") or "").split(",") if m.strip()}
    assert allowed <= allow, (resp.header("Allow"), allowed)
    assert not allow & ({"POST", "PUT", "DELETE", "PATCH", "GET"} - allowed - {"HEAD"}), allow


def test_head_on_events_is_405_not_404(srv: AppServer) -> None:
    resp = srv.head("/_cellucid/events")
    assert resp.status == 405 and resp.body == b""
    assert "POST" in (resp.header("Allow") or "")


def test_server_fault_is_500_json_without_traceback(single) -> None:
    class Broken(ExportFolderSource):
        def open(self, dataset: DatasetEntry, relpath: str) -> FileBody | None:
            raise RuntimeError("disk on fire\nTraceback (most recent call last): ...")

    with serving(Broken(single.path)) as server:
        resp = server.get("/points_2d.bin")
        message = assert_error(resp, 500)
        assert "disk on fire" not in message
        # the server stays up
        assert server.get("/_cellucid/health").status == 200


# ---- §3.8 viewer page and assets ---------------------------------------------------------------
@pytest.mark.parametrize(
    "target", ["/", "/index.html", "/?anndata=true&x=1", "/index.html?jupyter=true"]
)
def test_viewer_page(srv: AppServer, target: str) -> None:
    resp = srv.get(target)
    assert resp.status == 200
    assert resp.all("Content-Type") == ["text/html; charset=utf-8"]
    assert resp.body == (default_ui_dir() / "index.html").read_bytes()
    assert resp.header("Content-Length") == str(len(resp.body))
    assert resp.header("Cache-Control") == "no-cache"


@pytest.mark.parametrize(
    ("target", "ctype"),
    [
        ("/assets/viewer.js", "text/javascript"),
        ("/assets/viewer.js?v=123", "text/javascript"),
        ("/assets/viewer.css", "text/css"),
    ],
)
def test_viewer_assets(srv: AppServer, target: str, ctype: str) -> None:
    resp = srv.get(target)
    assert resp.status == 200
    assert resp.header("Content-Type").split(";")[0].strip() == ctype
    rel = target.split("?")[0].lstrip("/")
    assert resp.body == (default_ui_dir() / rel).read_bytes()
    assert resp.header("Cache-Control") == "no-cache"


def test_missing_ui_file_is_404_json(srv: AppServer) -> None:
    for target in ("/assets/nope.js", "/assets/../index.html", "/assets/%2e%2e/index.html"):
        resp = srv.raw(target)
        assert resp.status == 404, (target, resp)


def test_custom_ui_dir(single, tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<p>custom viewer</p>", encoding="utf-8")
    (tmp_path / "assets" / "app.mjs").write_text("export {}", encoding="utf-8")
    (tmp_path / "favicon.ico").write_bytes(b"\x00\x00\x01\x00")
    with serving(ExportFolderSource(single.path), ui_dir=tmp_path) as server:
        assert server.get("/").body == b"<p>custom viewer</p>"
        js = server.get("/assets/app.mjs")
        assert js.status == 200 and js.header("Content-Type").startswith("text/javascript")
        ico = server.get("/favicon.ico")
        assert ico.status == 200 and ico.body == b"\x00\x00\x01\x00"
        # data files are still served next to the UI
        assert server.get("/points_2d.bin").body == (single.path / "points_2d.bin").read_bytes()


# ---- HEAD everywhere (§3.1, §3.4, §7.22) ------------------------------------------------------
HEAD_TARGETS = [
    "/",
    "/index.html",
    "/index.html?anndata=true",
    "/assets/viewer.js",
    "/assets/viewer.css",
    "/favicon.ico",
    "/_cellucid/health",
    "/_cellucid/info",
    "/_cellucid/datasets",
    "/_cellucid/nope",
    "/dataset_identity.json",
    "/obs_manifest.json",
    "/points_3d.bin",
    "/obs/cell_type.codes.u8",
    "/var/GENE0.values.f32",
    "/connectivity/edges.weights.f64.bin",
    "/nope.bin",
    "/obs/",
]


@pytest.mark.parametrize("target", HEAD_TARGETS)
def test_head_matches_get(srv: AppServer, target: str) -> None:
    resp = srv.raw(target)
    assert_head_matches(srv.port, target, resp)


@pytest.mark.parametrize(
    "headers",
    [{"Range": "bytes=4-11"}, {"Range": "bytes=99999-"}, {"Accept-Encoding": "gzip"}],
)
def test_head_matches_get_with_headers(srv: AppServer, headers: dict[str, str]) -> None:
    target = "/points_3d.bin"
    resp = raw_get(srv.port, target, **headers)
    assert_head_matches(srv.port, target, resp, **headers)


def test_head_matches_get_gz_and_root(srv_gz: AppServer, srv_root: AppServer) -> None:
    for server, target in (
        (srv_gz, "/points_2d.bin.gz"),
        (srv_gz, "/obs/cell_type.codes.u8.gz"),
        (srv_root, "/beta/var_manifest.json"),
        (srv_root, "/alpha/points_3d.bin"),
        (srv_root, "/_cellucid/datasets"),
    ):
        assert_head_matches(server.port, target, raw_get(server.port, target))


# ---- §3.4 data files ---------------------------------------------------------------------------
EXPORT_CACHE = {"public, max-age=3600", "no-cache"}


def _expected_type(rel: str) -> set[str]:
    if rel.endswith(".json"):
        return {"application/json"}
    if rel.endswith(".gz"):
        return {"application/gzip", "application/octet-stream"}
    return {"application/octet-stream"}


def test_every_export_file_is_served_exactly(srv: AppServer, single) -> None:
    strays = {"notes.txt", "obs/stray.values.f32"}  # test_files_the_manifests_do_not_name...
    files = [f for f in _rel_files(single.path) if f not in strays]
    kinds = {
        "dataset_identity.json",
        "obs_manifest.json",
        "var_manifest.json",
        "connectivity_manifest.json",
        "points_1d.bin",
        "points_2d.bin",
        "points_3d.bin",
        "obs/age.values.f32",
        "obs/pct_mito.values.f32",
        "obs/cell_type.codes.u8",
        "obs/cell_type.outliers.f32",
        "var/GENE0.values.f32",
        "connectivity/edges.src.bin",
        "connectivity/edges.dst.bin",
        "connectivity/edges.weights.f64.bin",
        "vectors/velocity_umap_1d.bin",
        "vectors/velocity_umap_3d.bin",
    }
    assert kinds <= set(files), kinds - set(files)
    for rel in files:
        resp = srv.get("/" + rel, Accept_Encoding="gzip")
        assert resp.status == 200, (rel, resp)
        assert resp.body == (single.path / rel).read_bytes(), rel
        assert resp.all("Content-Type")[0] in _expected_type(rel), (rel, resp.headers)
        assert len(resp.all("Content-Type")) == 1
        assert resp.header("Content-Length") == str(len(resp.body))
        assert resp.header("Content-Encoding") is None, rel
        assert resp.header("Cache-Control") in EXPORT_CACHE, (rel, resp.header("Cache-Control"))


def test_every_gz_file_is_raw_without_content_encoding(srv_gz: AppServer, compressed) -> None:
    files = [f for f in _rel_files(compressed.path) if f.endswith(".gz")]
    assert len(files) >= 10
    for rel in files:
        for accept in ("gzip", "gzip, deflate, br", "identity"):
            resp = srv_gz.get("/" + rel, Accept_Encoding=accept)
            assert resp.status == 200
            assert resp.header("Content-Encoding") is None, (rel, accept)
            assert resp.header("Content-Type") in _expected_type(rel)
            assert resp.body == (compressed.path / rel).read_bytes(), rel
            gunzip_one_member(resp.body)
    # the plain name of a compressed payload does not exist
    assert_error(srv_gz.get("/points_2d.bin"), 404)


def test_json_is_exact_content_type_in_export_mode(srv: AppServer, srv_root: AppServer) -> None:
    for server, target in (
        (srv, "/obs_manifest.json"),
        (srv, "/dataset_identity.json"),
        (srv_root, "/beta/connectivity_manifest.json"),
    ):
        resp = server.get(target)
        assert resp.all("Content-Type") == ["application/json"], target
        json.loads(resp.body)


def test_query_string_on_data_file_is_ignored(srv: AppServer, single) -> None:
    resp = srv.get("/points_2d.bin?v=1&cache=no")
    assert resp.status == 200
    assert resp.body == (single.path / "points_2d.bin").read_bytes()
    assert_error(srv.raw("/points_2d.bin%3Fv=1"), 404)


def test_large_file_streams_exactly(base: Path) -> None:
    """A file above the 1 MiB read chunk: full body, ranges across chunk boundaries, HEAD."""
    ex = write_dataset(
        base / "large",
        dims=(3,),
        n=270_000,
        n_genes=1,
        connectivity=False,
        vectors=False,
        latent=False,
    )
    data = (ex.path / "points_3d.bin").read_bytes()
    assert len(data) > 3 * 1024**2
    with serving(ExportFolderSource(ex.path)) as srv:
        resp = srv.get("/points_3d.bin")
        assert resp.status == 200 and resp.body == data
        assert resp.header("Content-Length") == str(len(data))
        for lo, hi in (
            (1024**2 - 5, 1024**2 + 5),
            (0, 2 * 1024**2),
            (len(data) - 10, len(data) - 1),
        ):
            part = srv.get("/points_3d.bin", Range=f"bytes={lo}-{hi}")
            assert part.status == 206 and part.body == data[lo : hi + 1], (lo, hi)
        assert_head_matches(srv.port, "/points_3d.bin", srv.raw("/points_3d.bin"))


def test_files_the_manifests_do_not_name_are_not_served(srv: AppServer, single) -> None:
    for rel in ("notes.txt", "obs/stray.values.f32"):
        assert (single.path / rel).is_file()
        assert_error(srv.get("/" + rel), 404)


def test_broken_exports_are_reported_at_start(tmp_path: Path, base: Path) -> None:
    """A missing payload or a corrupt manifest stops the server at start-up, by name."""
    ex = write_dataset(tmp_path / "missing", n=40)
    (ex.path / "obs" / "age.values.f32").unlink()
    with pytest.raises(ValueError, match=r"missing file\(s\): obs/age.values.f32.*validate"):
        ExportFolderSource(ex.path)
    bad = write_dataset(tmp_path / "corrupt", n=40)
    (bad.path / "obs_manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"corrupt.*cellucid validate"):
        ExportFolderSource(bad.path)
    # in a folder of exports, a broken one is skipped with a warning; the rest is served
    root = tmp_path / "root"
    good = write_dataset(root / "good", n=40, dataset_id="good")
    broken = write_dataset(root / "broken", n=40, dataset_id="broken")
    (broken.path / "points_2d.bin").unlink()
    with pytest.warns(UserWarning, match="skipping broken"):
        source = ExportFolderSource(root)
    assert [d.id for d in source.datasets()] == ["good"]
    assert good.path.is_dir()


# ---- Range, validators --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("range_", "start", "end"),
    [
        ("bytes=0-0", 0, 1),
        ("bytes=4-11", 4, 12),
        ("bytes=100-", 100, None),
        ("bytes=-16", -16, None),
        ("bytes=8-999999", 8, None),
        ("bytes=-999999", 0, None),
    ],
)
def test_single_range_206(srv: AppServer, single, range_: str, start: int, end) -> None:
    data = (single.path / "points_3d.bin").read_bytes()
    size = len(data)
    expected = data[start:end]
    first = start % size if start < 0 else start
    resp = srv.get("/points_3d.bin", Range=range_)
    assert resp.status == 206, resp
    assert resp.body == expected
    assert resp.header("Content-Range") == f"bytes {first}-{first + len(expected) - 1}/{size}"
    assert resp.header("Content-Length") == str(len(expected))
    assert resp.header("Content-Encoding") is None


def test_range_on_gz_file_is_raw_slice(srv_gz: AppServer, compressed) -> None:
    data = (compressed.path / "points_2d.bin.gz").read_bytes()
    resp = srv_gz.get("/points_2d.bin.gz", Range="bytes=0-9", Accept_Encoding="gzip")
    assert resp.status == 206
    assert resp.body == data[:10]
    assert resp.header("Content-Encoding") is None


@pytest.mark.parametrize("range_", ["bytes=100000-", "bytes=100000-100010", "bytes=-0"])
def test_unsatisfiable_range_416(srv: AppServer, single, range_: str) -> None:
    size = (single.path / "points_3d.bin").stat().st_size
    resp = srv.get("/points_3d.bin", Range=range_)
    assert resp.status == 416, resp
    assert resp.header("Content-Range") == f"bytes */{size}"
    assert SECRET not in resp.body


@pytest.mark.parametrize("range_", ["bytes=0-1,4-5", "bytes=0-3, 8-9", "items=0-3", "bytes=5-2"])
def test_multi_or_invalid_range_is_ignored(srv: AppServer, single, range_: str) -> None:
    resp = srv.get("/points_3d.bin", Range=range_)
    assert resp.status == 200
    assert resp.body == (single.path / "points_3d.bin").read_bytes()
    assert resp.header("Content-Range") is None


def test_etag_if_none_match_304(srv: AppServer) -> None:
    first = srv.get("/obs/cell_type.codes.u8")
    etag = first.header("ETag")
    assert etag and etag.startswith('"') and etag.endswith('"')
    again = srv.get("/obs/cell_type.codes.u8")
    assert again.header("ETag") == etag, "the ETag of an unchanged file is stable"
    resp = srv.get("/obs/cell_type.codes.u8", If_None_Match=etag)
    assert resp.status == 304 and resp.body == b""
    assert resp.header("ETag") == etag
    resp = srv.get("/obs/cell_type.codes.u8", If_None_Match=f'"other", {etag}')
    assert resp.status == 304
    resp = srv.get("/obs/cell_type.codes.u8", If_None_Match='"something-else"')
    assert resp.status == 200 and resp.body == first.body
    # another file has another ETag
    assert srv.get("/obs/age.values.f32").header("ETag") != etag


def test_last_modified_if_modified_since(srv: AppServer, single) -> None:
    resp = srv.get("/points_2d.bin")
    last = resp.header("Last-Modified")
    assert last and last.endswith("GMT")
    assert srv.get("/points_2d.bin", If_Modified_Since=last).status == 304
    future = formatdate(time.time() + 3600, usegmt=True)
    assert srv.get("/points_2d.bin", If_Modified_Since=future).status == 304
    past = formatdate((single.path / "points_2d.bin").stat().st_mtime - 3600, usegmt=True)
    resp = srv.get("/points_2d.bin", If_Modified_Since=past)
    assert resp.status == 200 and resp.body == (single.path / "points_2d.bin").read_bytes()


# ---- path safety (§3.1) --------------------------------------------------------------------------
TRAVERSALS = [
    "/../secret.txt",
    "/obs/../../secret.txt",
    "/obs/../obs/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/%2E%2E%2Fsecret.txt",
    "/obs/%2e%2e/%2e%2e/secret.txt",
    "/obs%2f..%2f..%2fsecret.txt",
    "/..%2fsecret.txt",
    "/..%2Fsecret.txt",
    "/.%2e/secret.txt",
    "/%252e%252e/secret.txt",
    "/..\\secret.txt",
    "/obs\\..\\..\\secret.txt",
    "/obs/..%5c..%5csecret.txt",
    "/secret.txt%00",
    "/points_2d.bin%00.txt",
    "/%00/../secret.txt",
    "//secret.txt",
    "/obs//../../secret.txt",
    "http://127.0.0.1/../secret.txt",
    "/escape/secret.txt",
    "/escape/secret.f32",
    "/obs/leak.values.f32",
    "/points_9d.bin",
    "/.hidden",
    "/obs/.secret.values.f32",
    "/./points_2d.bin/../../secret.txt",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_traversal_never_leaves_the_dataset(srv: AppServer, target: str) -> None:
    resp = srv.raw(target)
    assert resp.status in (403, 404), (target, resp)
    assert SECRET not in resp.body
    head = srv.raw(target, "HEAD")
    assert head.status in (403, 404) and SECRET not in head.body


def test_absolute_paths_are_not_files(srv: AppServer, base: Path) -> None:
    secret = (base / "secret.txt").as_posix()
    for target in ("/" + secret, "//" + secret.lstrip("/"), secret, "/%2F" + secret.lstrip("/")):
        resp = srv.raw(target)
        assert resp.status in (403, 404), (target, resp)
        assert SECRET not in resp.body


def test_double_slashes_and_dot_segments_in_root(srv_root: AppServer, export_root) -> None:
    beta_var = (export_root["root"] / "beta" / "var_manifest.json").read_bytes()
    for target in (
        "/alpha/../beta/var_manifest.json",
        "/alpha/%2e%2e/beta/var_manifest.json",
        "/alpha/%2E%2E%2Fbeta/var_manifest.json",
        "/alpha/..%2fbeta/var_manifest.json",
        "/alpha//beta/var_manifest.json",
        "/alpha/obs/beta.values.f32",  # a symlink from alpha into beta
        "/alpha/var_manifest.json",
        "/alpha/../datasets.json",
        "/alpha/../secret.txt",
        "/beta/../../secret.txt",
    ):
        resp = srv_root.raw(target)
        assert resp.status in (403, 404), (target, resp)
        assert beta_var not in resp.body and SECRET not in resp.body


def test_export_root_files_are_under_their_directory(srv_root: AppServer, export_root) -> None:
    root = export_root["root"]
    for name in ROOT_NAMES:
        for rel in _rel_files(root / name):
            resp = srv_root.get(f"/{name}/{rel}")
            assert resp.status == 200, (name, rel)
            assert resp.body == (root / name / rel).read_bytes()
    # the same file name resolves per dataset
    assert srv_root.get("/alpha/points_2d.bin").body != srv_root.get("/beta/points_2d.bin").body
    # files of a dataset are not reachable from the root itself
    assert_error(srv_root.get("/points_2d.bin"), 404)
    assert_error(srv_root.get("/var_manifest.json"), 404)


def test_secret_never_appears_anywhere(srv: AppServer, srv_root: AppServer) -> None:
    """One sweep over every trap with both methods and both servers."""
    targets = [*TRAVERSALS, "/alpha/../secret.txt", "/alpha/%2e%2e/%2e%2e/secret.txt"]
    for server in (srv, srv_root):
        for target in targets:
            for method in ("GET", "HEAD"):
                assert SECRET not in server.raw(target, method).body


# ---- §3.7 CORS ---------------------------------------------------------------------------------
ALLOWED_ORIGINS = [
    "http://localhost:1234",
    "http://localhost",
    "https://localhost:8443",
    "http://127.0.0.1:9",
    "http://[::1]:8",
    "https://cellucid.com",
    "https://www.cellucid.com",
    "https://x.cellucid.com",
]
FOREIGN_ORIGINS = [
    "http://evil.com",
    "https://cellucid.com.evil.com",
    "http://cellucid.com",
    "http://www.cellucid.com",
    "https://evilcellucid.com",
    "http://localhost.evil.com",
    "http://127.0.0.1.evil.com",
    "null",
    "ftp://localhost",
]


def _assert_always_cors(resp: Response) -> None:
    for name, value in ALWAYS_CORS.items():
        assert resp.header(name) == value, (name, resp.headers)


@pytest.mark.parametrize("origin", ALLOWED_ORIGINS)
@pytest.mark.parametrize("target", ["/_cellucid/health", "/points_2d.bin", "/", "/nope"])
def test_allowed_origin_is_echoed(srv: AppServer, origin: str, target: str) -> None:
    resp = srv.get(target, Origin=origin)
    assert resp.all("Access-Control-Allow-Origin") == [origin]
    vary = {v.strip().lower() for v in (resp.header("Vary") or "").split(",")}
    assert "origin" in vary
    _assert_always_cors(resp)


@pytest.mark.parametrize("origin", FOREIGN_ORIGINS)
def test_foreign_origin_gets_no_allow_header(srv: AppServer, origin: str) -> None:
    for target in ("/_cellucid/health", "/points_2d.bin"):
        resp = srv.get(target, Origin=origin)
        assert resp.status == 200  # the Origin is not used for authorisation
        assert resp.header("Access-Control-Allow-Origin") is None, (origin, target)
        _assert_always_cors(resp)
    pre = srv.request(
        "OPTIONS",
        "/_cellucid/events",
        {
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert pre.header("Access-Control-Allow-Origin") is None
    assert pre.header("Access-Control-Allow-Private-Network") is None


def test_no_origin_needs_nothing(srv: AppServer) -> None:
    resp = srv.get("/_cellucid/health")
    assert resp.header("Access-Control-Allow-Origin") is None
    _assert_always_cors(resp)


@pytest.mark.parametrize(
    "target",
    [
        "/_cellucid/events",
        "/_cellucid/session_bundle",
        "/_cellucid/health",
        "/_cellucid/datasets",
        "/_cellucid/nope",
        "/points_2d.bin",
        "/assets/viewer.js",
        "/",
        "/nope",
    ],
)
def test_options_preflight_204(srv: AppServer, target: str) -> None:
    resp = srv.request(
        "OPTIONS",
        target,
        {
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert resp.status == 204
    assert resp.body == b""
    assert resp.header("Access-Control-Allow-Origin") == "http://localhost:5173"
    _assert_always_cors(resp)


def test_private_network_preflight(srv: AppServer) -> None:
    resp = srv.request(
        "OPTIONS",
        "/_cellucid/health",
        {
            "Origin": "https://cellucid.com",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert resp.status == 204
    assert resp.header("Access-Control-Allow-Private-Network") == "true"
    assert resp.header("Access-Control-Allow-Origin") == "https://cellucid.com"
    plain = srv.request("OPTIONS", "/_cellucid/health", {"Origin": "https://cellucid.com"})
    assert plain.header("Access-Control-Allow-Private-Network") is None


def test_cors_headers_on_errors_and_posts(srv: AppServer) -> None:
    origin = "http://127.0.0.1:3000"
    for resp in (
        srv.get("/nope", Origin=origin),
        srv.request("POST", "/_cellucid/events", {"Origin": origin}, b"not json"),
        srv.request("DELETE", "/_cellucid/health", {"Origin": origin}),
    ):
        assert resp.status >= 400
        assert resp.header("Access-Control-Allow-Origin") == origin
        _assert_always_cors(resp)


@pytest.fixture(scope="module")
def srv_hosts(single) -> AppServer:
    with serving(
        ExportFolderSource(single.path), allowed_hosts=frozenset({"notebook.example.org"})
    ) as server:
        yield server


@pytest.mark.parametrize("host", ["evil.com", "evil.com:8765", "attacker.example.org", "10.0.0.1"])
def test_allowed_hosts_rejects_foreign_host(srv_hosts: AppServer, host: str) -> None:
    for method in ("GET", "POST", "OPTIONS"):
        target = "/_cellucid/events" if method == "POST" else "/_cellucid/health"
        resp = srv_hosts.request(
            method, target, {"Host": host}, b"{}" if method == "POST" else None
        )
        assert_error(resp, 403)
    data = srv_hosts.request("GET", "/points_2d.bin", {"Host": host})
    assert data.status == 403 and not data.body.startswith(b"\x00")


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}", "notebook.example.org"],
)
def test_allowed_hosts_accepts_loopback_and_listed(srv_hosts: AppServer, host: str) -> None:
    resp = srv_hosts.request("GET", "/_cellucid/health", {"Host": host.format(port=srv_hosts.port)})
    assert resp.status == 200, resp


def test_allowed_hosts_is_case_insensitive(single) -> None:
    """Host names are case-insensitive (RFC 3986 §3.2.2): a listed ``Notebook.Example.ORG``
    allows ``Host: notebook.example.org`` and vice versa."""
    with serving(
        ExportFolderSource(single.path), allowed_hosts=frozenset({"Notebook.Example.ORG"})
    ) as server:
        assert (
            server.request("GET", "/_cellucid/health", {"Host": "notebook.example.org"}).status
            == 200
        )
        assert (
            server.request("GET", "/_cellucid/health", {"Host": "NOTEBOOK.example.org"}).status
            == 200
        )


def test_foreign_host_allowed_by_default(srv: AppServer) -> None:
    resp = srv.request("GET", "/_cellucid/health", {"Host": "proxy.example.org"})
    assert resp.status == 200


# ---- §3.5 events over HTTP ---------------------------------------------------------------------
@pytest.fixture
def bridge(single):
    """A server with two registered viewers and a small event limit."""
    config = ServerConfig(source=ExportFolderSource(single.path), max_event_bytes=64 * 1024)
    a = ViewerChannel(name="a")
    b = ViewerChannel(name="b")
    config.registry.add(a)
    config.registry.add(b)
    with AppServer(config) as server:
        yield server, a, b
    a.close()
    b.close()


def _post_event(port: int, event: Any, **headers: str) -> Response:
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    return request(
        port, "POST", "/_cellucid/events", {"Content-Type": "application/json", **headers}, body
    )


def _ev(channel: ViewerChannel, type_: str = "ready", **payload: Any) -> dict[str, Any]:
    if type_ == "ready" and not payload:
        payload = {"n_cells": 70, "dimensions": 3}
    return {"type": type_, "viewerId": channel.viewer_id, "viewerToken": channel.token, **payload}


def test_event_accepted_exact_body(bridge) -> None:
    server, a, _b = bridge
    resp = _post_event(server.port, _ev(a))
    assert resp.status == 200
    assert resp.body == b'{"status":"ok","delivered":true}'
    assert resp.all("Content-Type") == ["application/json"]
    assert resp.header("Content-Length") == str(len(resp.body))
    assert resp.header("Cache-Control") == "no-store"
    assert a.state.ready == {"n_cells": 70, "dimensions": 3}
    assert a.state.last_event_type == "ready"


def test_event_reaches_only_its_viewer(bridge) -> None:
    server, a, b = bridge
    seen_a: list[dict] = []
    seen_b: list[dict] = []
    a.register_hook("click", seen_a.append)
    b.register_hook("click", seen_b.append)
    click = {"cell": 3, "button": 0, "shift": False, "ctrl": True}
    assert _post_event(server.port, _ev(b, "click", **click)).status == 200
    assert b.wait_idle() and a.wait_idle()
    assert seen_b == [click]
    assert seen_a == []
    assert a.state.click is None and b.state.click == click
    assert "viewerToken" not in b.recent_events()[-1]
    # the token of one viewer does not open another
    wrong = {**_ev(a, "click", **click), "viewerToken": b.token}
    assert_error(_post_event(server.port, wrong), 403)
    assert a.state.click is None


def test_event_for_a_viewer_of_another_server_is_404(bridge, single) -> None:
    _server, a, _ = bridge
    with serving(ExportFolderSource(single.path)) as other:
        assert_error(_post_event(other.port, _ev(a)), 404)
    assert a.state.ready is None


def test_event_unknown_viewer_404_and_bad_token_403(bridge) -> None:
    server, a, _ = bridge
    assert_error(_post_event(server.port, {**_ev(a), "viewerId": "0123456789abcdef"}), 404)
    assert_error(_post_event(server.port, {**_ev(a), "viewerToken": "f" * 32}), 403)
    assert_error(_post_event(server.port, {**_ev(a), "viewerToken": a.token[:-1]}), 403)
    assert a.state.last_event is None


def test_event_for_a_closed_viewer_is_404(bridge) -> None:
    server, _a, b = bridge
    b.close()
    assert_error(_post_event(server.port, _ev(b)), 404)


def test_event_content_type_is_not_required(bridge) -> None:
    """A page may post with ``text/plain`` (no CORS preflight); the body is what counts."""
    server, a, _ = bridge
    body = json.dumps(_ev(a)).encode()
    for ctype in ("text/plain;charset=UTF-8", "application/octet-stream"):
        resp = request(server.port, "POST", "/_cellucid/events", {"Content-Type": ctype}, body)
        assert resp.body == b'{"status":"ok","delivered":true}', ctype
    resp = request(server.port, "POST", "/_cellucid/events", {}, body)
    assert resp.status == 200


def test_event_declared_over_default_limit_is_413_without_reading(single) -> None:
    """A body declared larger than 256 MiB is refused at once (the server does not wait
    for 256 MiB to arrive)."""
    with serving(ExportFolderSource(single.path)) as server:
        t0 = time.monotonic()
        resp = request(
            server.port,
            "POST",
            "/_cellucid/events",
            {"Content-Type": "application/json", "Content-Length": str(256 * 1024**2 + 1)},
            iter([b'{"type": "ready"']),  # far less than announced
            timeout=10,
        )
        assert_error(resp, 413)
        assert time.monotonic() - t0 < 5


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"{",
        b"[1, 2]",
        b'"ready"',
        b"null",
        b"42",
        b"\xff\xfe{}",
        b'{"type": "ready", "viewerId": "x", "viewerToken": NaN}',
    ],
)
def test_malformed_event_body_400(bridge, body: bytes) -> None:
    server, a, _ = bridge
    assert_error(_post_event(server.port, body), 400)
    assert a.state.last_event is None


@pytest.mark.parametrize(
    "edit",
    [
        {"type": None},
        {"type": 5},
        {"viewerId": None},
        {"viewerId": 12345},
        {"viewerToken": None},
        {"viewerToken": ["t"]},
    ],
)
def test_event_fields_must_be_strings_400(bridge, edit: dict) -> None:
    server, a, _ = bridge
    assert_error(_post_event(server.port, {**_ev(a), **edit}), 400)


@pytest.mark.parametrize("missing", ["type", "viewerId", "viewerToken"])
def test_event_missing_field_400(bridge, missing: str) -> None:
    server, a, _ = bridge
    event = _ev(a)
    del event[missing]
    assert_error(_post_event(server.port, event), 400)
    assert a.state.last_event is None


def test_event_server_only_type_rejected(bridge) -> None:
    server, a, _ = bridge
    event = _ev(a, "session_bundle", requestId="r", status="ok", bytes=1, path="/etc/passwd")
    assert_error(_post_event(server.port, event), 400)
    assert a.state.last_event is None


def test_event_without_length_411(bridge) -> None:
    server, a, _ = bridge
    body = json.dumps(_ev(a)).encode()
    resp = request(
        server.port,
        "POST",
        "/_cellucid/events",
        {"Content-Type": "application/json"},
        iter([body[:10], body[10:]]),  # chunked, no Content-Length
    )
    assert_error(resp, 411)
    assert a.state.last_event is None


def test_event_over_limit_413(bridge) -> None:
    server, a, _ = bridge
    big = _ev(a, "custom_big", blob="x" * (64 * 1024))
    assert_error(_post_event(server.port, big), 413)
    assert a.state.last_event is None
    # just under the limit is fine
    pad = 64 * 1024 - len(json.dumps(_ev(a, "custom_big", blob=""))) - 1
    assert _post_event(server.port, _ev(a, "custom_big", blob="x" * pad)).status == 200


def test_rejected_bodies_do_not_poison_a_kept_alive_connection(bridge) -> None:
    """After 411/413/400 with an unread body, the next request on the same connection is
    parsed as a request (the body is never taken for one)."""
    server, a, _ = bridge
    smuggled = b"GET /_cellucid/info HTTP/1.1\r\nHost: x\r\n\r\n"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for body, status in (
            (iter([b'{"type": ', smuggled]), 411),
            (smuggled + b"x" * (64 * 1024), 413),
            (smuggled, 400),
        ):
            conn.request("POST", "/_cellucid/events", body=body)
            resp = conn.getresponse()
            assert resp.status == status
            resp.read()
            conn.request("GET", "/_cellucid/health")
            resp = conn.getresponse()
            assert resp.status == 200
            assert json.loads(resp.read())["type"] == "exported"
    finally:
        conn.close()
    assert a.state.last_event is None


def test_event_default_limit_is_256_mib(single) -> None:
    assert ServerConfig(source=ExportFolderSource(single.path)).max_event_bytes == 256 * 1024**2


def test_large_selections_arrive_intact(single) -> None:
    """No 1 MiB cap (§3.9, §7.1): a 1,000,000-cell binary selection (~5 MiB of JSON) and a
    300,000-cell plain list (~2.5 MiB) are recorded cell for cell."""
    channel = ViewerChannel(name="big")
    config = ServerConfig(source=ExportFolderSource(single.path))
    config.registry.add(channel)
    rng = np.random.default_rng(0)
    try:
        with AppServer(config) as server:
            million = rng.choice(40_000_000, 1_000_000, replace=False).astype(np.uint32)
            cells = encode_cells(million, 40_000_000)
            body = json.dumps(_ev(channel, "selection", cells=cells, source="lasso")).encode()
            assert len(body) > 4 * 1024**2
            resp = _post_event(server.port, body)
            assert resp.body == b'{"status":"ok","delivered":true}'
            got = channel.state.selection
            assert got["source"] == "lasso"
            np.testing.assert_array_equal(np.asarray(got["cells"]), million)

            plain = rng.permutation(2_000_000)[:300_000].tolist()
            body = json.dumps(_ev(channel, "selection", cells=plain, source="knn")).encode()
            assert len(body) > 2 * 1024**2
            assert _post_event(server.port, body).status == 200
            got = channel.state.selection
            assert got["source"] == "knn"
            assert np.asarray(got["cells"]).tolist() == plain
    finally:
        channel.close()


def test_slow_hook_delays_neither_the_post_nor_health(bridge) -> None:
    server, a, _ = bridge
    started = threading.Event()
    finished = threading.Event()

    def slow(event: dict) -> None:
        started.set()
        time.sleep(3.0)
        finished.set()

    a.register_hook("ready", slow)
    t0 = time.monotonic()
    resp = _post_event(server.port, _ev(a))
    post_time = time.monotonic() - t0
    assert resp.status == 200
    assert post_time < 1.0, f"the POST waited {post_time:.2f}s for the hook"
    assert started.wait(2.0), "the hook never ran"
    t1 = time.monotonic()
    health = server.get("/_cellucid/health")
    health_time = time.monotonic() - t1
    assert health.status == 200
    assert health_time < 1.0
    assert not finished.is_set(), "the hook was supposed to be still sleeping"
    # a second event during the slow hook is accepted at once too
    t2 = time.monotonic()
    assert _post_event(server.port, _ev(a, "pong", requestId="r1", t=1)).status == 200
    assert time.monotonic() - t2 < 1.0
    assert a.state.last_event_type == "pong"


class _SlowSource(ExportFolderSource):
    """An export whose ``points_3d.bin`` takes ``delay`` seconds to open (a slow gene read)."""

    delay = 2.0

    def open(self, dataset: DatasetEntry, relpath: str) -> FileBody | None:
        if relpath == "points_3d.bin":
            time.sleep(self.delay)
        return super().open(dataset, relpath)


def test_slow_data_read_does_not_block_health(single) -> None:
    with serving(_SlowSource(single.path)) as server:
        box: list[Response] = []
        t = threading.Thread(target=lambda: box.append(server.get("/points_3d.bin")))
        t.start()
        time.sleep(0.2)
        t0 = time.monotonic()
        assert server.get("/_cellucid/health").status == 200
        assert time.monotonic() - t0 < 1.0
        assert server.get("/points_2d.bin").status == 200
        assert time.monotonic() - t0 < 1.0
        t.join(10)
        assert box and box[0].status == 200


def test_many_slow_reads_do_not_starve_events_or_the_viewer(single) -> None:
    """§3.1/§7.2: a burst of slow data reads (the viewer fetches several gene columns at
    once) must not hold up event delivery, the viewer assets or health."""
    channel = ViewerChannel(name="starve")
    config = ServerConfig(source=_SlowSource(single.path))
    config.registry.add(channel)
    try:
        with AppServer(config) as server:
            threads = [
                threading.Thread(target=server.get, args=("/points_3d.bin",)) for _ in range(8)
            ]
            for t in threads:
                t.start()
            time.sleep(0.3)
            t0 = time.monotonic()
            assert server.get("/_cellucid/health").status == 200
            health = time.monotonic() - t0
            t0 = time.monotonic()
            resp = _post_event(server.port, _ev(channel))
            event = time.monotonic() - t0
            t0 = time.monotonic()
            asset = server.get("/assets/viewer.js")
            asset_time = time.monotonic() - t0
            for t in threads:
                t.join(20)
            assert resp.status == 200 and asset.status == 200
            assert health < 1.0, f"health took {health:.2f}s"
            assert event < 1.0, f"an event POST waited {event:.2f}s behind data reads"
            assert asset_time < 1.0, f"a viewer asset waited {asset_time:.2f}s behind data reads"
    finally:
        channel.close()


# ---- §3.6 session bundle upload --------------------------------------------------------------
@pytest.fixture
def upload(single, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A server with one viewer; temporary files go to a private directory."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    config = ServerConfig(source=ExportFolderSource(single.path), max_bundle_bytes=4096)
    channel = ViewerChannel(name="upload")
    config.registry.add(channel)
    with AppServer(config) as server:
        yield server, config, channel, tmp
    channel.close()


def _upload(port: int, query: str, body: Any, headers: dict[str, str] | None = None) -> Response:
    return request(
        port,
        "POST",
        f"/_cellucid/session_bundle?{query}" if query else "/_cellucid/session_bundle",
        {"Content-Type": "application/octet-stream", **(headers or {})},
        body,
    )


def _q(channel: ViewerChannel, request_id: str = "req1", **override: str) -> str:
    params = {"viewerId": channel.viewer_id, "viewerToken": channel.token, "requestId": request_id}
    params.update(override)
    return "&".join(f"{k}={v}" for k, v in params.items() if v is not None)


def _bundle_events(channel: ViewerChannel) -> list[dict[str, Any]]:
    return [e for e in channel.recent_events() if e["type"] == "session_bundle"]


BUNDLE = BUNDLE_MAGIC + (5).to_bytes(4, "little") + b'{"a":1}' + bytes(range(200))


def test_bundle_success(upload) -> None:
    server, config, channel, tmp = upload
    config.registry.pending.register(channel.viewer_id, "req1", ttl=60)
    resp = _upload(server.port, _q(channel), BUNDLE)
    assert resp.status == 200
    assert resp.body == f'{{"status":"ok","bytes":{len(BUNDLE)}}}'.encode()
    assert resp.all("Content-Type") == ["application/json"]
    events = _bundle_events(channel)
    assert len(events) == 1
    event = events[0]
    assert {k: event[k] for k in ("requestId", "status", "bytes")} == {
        "requestId": "req1",
        "status": "ok",
        "bytes": len(BUNDLE),
    }
    assert set(event) - {"received_at"} == {"type", "requestId", "status", "bytes", "path"}
    path = Path(event["path"])
    assert re.fullmatch(r"cellucid-session-.*\.cellucid-session", path.name), path.name
    assert path.parent == tmp
    assert path.read_bytes() == BUNDLE
    # nobody opened it: the file goes when the interpreter exits, not never
    from cellucid.session import bundle as bundle_module

    assert path.resolve() in bundle_module._TEMPORARY
    bundle_module._remove_temporary_bundles()
    assert not path.exists()


def test_bundle_large_body_streams_to_disk(single, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    config = ServerConfig(source=ExportFolderSource(single.path))
    channel = ViewerChannel(name="bigbundle")
    config.registry.add(channel)
    body = BUNDLE_MAGIC + os.urandom(3 * 1024 * 1024 + 17)
    try:
        with AppServer(config) as server:
            config.registry.pending.register(channel.viewer_id, "big", ttl=60)
            resp = _upload(server.port, _q(channel, "big"), body)
            assert resp.status == 200 and resp.json() == {"status": "ok", "bytes": len(body)}
            (event,) = _bundle_events(channel)
            assert Path(event["path"]).read_bytes() == body
    finally:
        channel.close()


@pytest.mark.parametrize("missing", ["viewerId", "viewerToken", "requestId"])
def test_bundle_missing_query_param_400(upload, missing: str) -> None:
    server, config, channel, tmp = upload
    config.registry.pending.register(channel.viewer_id, "req1", ttl=60)
    assert_error(_upload(server.port, _q(channel, **{missing: None}), BUNDLE), 400)
    assert_error(_upload(server.port, "", BUNDLE), 400)
    assert list(tmp.iterdir()) == []
    # the pending request is still usable
    assert _upload(server.port, _q(channel), BUNDLE).status == 200


def test_bundle_unknown_viewer_404_bad_token_403(upload) -> None:
    server, config, channel, tmp = upload
    config.registry.pending.register(channel.viewer_id, "req1", ttl=60)
    assert_error(_upload(server.port, _q(channel, viewerId="0123456789abcdef"), BUNDLE), 404)
    assert_error(_upload(server.port, _q(channel, viewerToken="0" * 32), BUNDLE), 403)
    assert list(tmp.iterdir()) == []
    assert _bundle_events(channel) == []
    # neither consumed the pending request (the token check comes first, §3.6 steps 1-2)
    assert _upload(server.port, _q(channel), BUNDLE).status == 200


def test_bundle_without_pending_request_404_and_single_use(upload) -> None:
    server, config, channel, tmp = upload
    assert_error(_upload(server.port, _q(channel), BUNDLE), 404)
    config.registry.pending.register(channel.viewer_id, "req1", ttl=60)
    assert _upload(server.port, _q(channel, "other"), BUNDLE).status == 404
    first = _upload(server.port, _q(channel), BUNDLE)
    assert first.status == 200
    assert_error(_upload(server.port, _q(channel), BUNDLE), 404)
    assert len(_bundle_events(channel)) == 1
    Path(_bundle_events(channel)[0]["path"]).unlink()
    assert list(tmp.iterdir()) == []


def test_bundle_pending_request_is_per_viewer(upload) -> None:
    server, config, channel, _tmp = upload
    other = ViewerChannel(name="other")
    config.registry.add(other)
    try:
        config.registry.pending.register(other.viewer_id, "req1", ttl=60)
        assert_error(_upload(server.port, _q(channel), BUNDLE), 404)
        assert _upload(server.port, _q(other), BUNDLE).status == 200
        (event,) = _bundle_events(other)
        assert event["status"] == "ok"
        assert _bundle_events(channel) == []
        Path(event["path"]).unlink()
    finally:
        other.close()


def test_bundle_pending_request_expires(upload) -> None:
    server, config, channel, tmp = upload
    config.registry.pending.register(channel.viewer_id, "req1", ttl=0.2)
    time.sleep(0.4)
    assert_error(_upload(server.port, _q(channel), BUNDLE), 404)
    assert list(tmp.iterdir()) == []


@pytest.mark.parametrize("how", ["chunked", "zero"])
def test_bundle_without_length_411(upload, how: str) -> None:
    server, config, channel, tmp = upload
    config.registry.pending.register(channel.viewer_id, "req1", ttl=60)
    if how == "chunked":
        resp = _upload(server.port, _q(channel), iter([BUNDLE[:20], BUNDLE[20:]]))
    else:
        resp = _upload(server.port, _q(channel), b"")
    assert_error(resp, 411)
    assert list(tmp.iterdir()) == []


def test_bundle_too_large_413(upload) -> None:
    server, config, channel, tmp = upload
    config.registry.pending.register(channel.viewer_id, "req1", ttl=60)
    body = BUNDLE_MAGIC + b"x" * 5000
    assert_error(_upload(server.port, _q(channel), body), 413)
    assert list(tmp.iterdir()) == []
    (event,) = _bundle_events(channel)
    assert event["status"] == "error" and event["requestId"] == "req1"


def test_bundle_default_limit_is_512_mib(single) -> None:
    assert ServerConfig(source=ExportFolderSource(single.path)).max_bundle_bytes == 512 * 1024**2


@pytest.mark.parametrize(
    "body",
    [
        b"NOT_A_SESSION_FILE_AT_ALL" + b"\x00" * 100,
        b"CELLUCID_SESSION\r" + b"\x00" * 100,
        b"cellucid_session\n" + b"\x00" * 100,
        b"\x00" * 17,
    ],
)
def test_bundle_bad_magic_400_and_error_event(upload, body: bytes) -> None:
    server, config, channel, tmp = upload
    config.registry.pending.register(channel.viewer_id, "req1", ttl=60)
    assert_error(_upload(server.port, _q(channel), body), 400)
    (event,) = _bundle_events(channel)
    assert event["status"] == "error"
    assert event["requestId"] == "req1"
    assert isinstance(event["error"], str) and event["error"]
    assert "path" not in event
    assert set(event) - {"received_at"} == {"type", "requestId", "status", "error"}
    assert list(tmp.iterdir()) == []


@pytest.mark.parametrize("body", [b"C", b"CELLUCID", BUNDLE_MAGIC[:-1]])
def test_bundle_short_body_400(upload, body: bytes) -> None:
    server, config, channel, tmp = upload
    config.registry.pending.register(channel.viewer_id, "req1", ttl=60)
    assert_error(_upload(server.port, _q(channel), body), 400)
    (event,) = _bundle_events(channel)
    assert event["status"] == "error"
    assert list(tmp.iterdir()) == []


def test_bundle_truncated_upload_leaves_no_file(upload) -> None:
    """The client promises more bytes than it sends and hangs up."""
    server, config, channel, tmp = upload
    config.registry.pending.register(channel.viewer_id, "req1", ttl=60)
    head = (
        f"POST /_cellucid/session_bundle?{_q(channel)} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\nContent-Type: application/octet-stream\r\n"
        "Content-Length: 3000\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + BUNDLE)
        sock.shutdown(socket.SHUT_WR)
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (list(tmp.iterdir()) or not _bundle_events(channel)):
        time.sleep(0.05)
    assert list(tmp.iterdir()) == []
    events = _bundle_events(channel)
    assert events and events[-1]["status"] == "error"


# ---- §6.4 / §6.8 runner ------------------------------------------------------------------------
def _free_port_pair() -> tuple[socket.socket, int]:
    """A listening socket on a port below 65000 (so that port+1… exist)."""
    for _ in range(50):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        if port < 65000:
            sock.listen(1)
            return sock, port
        sock.close()
    raise AssertionError("no usable port")


def test_port_fallback_reports_the_real_port(single, capsys) -> None:
    busy, port = _free_port_pair()
    try:
        server = CellucidServer(single.path, port=port, quiet=False)
        with server:
            assert port < server.port <= port + 100
            assert server.url == f"http://127.0.0.1:{server.port}"
            assert server.viewer_url == f"http://127.0.0.1:{server.port}/"
            info = request(server.port, "GET", "/_cellucid/info").json()
            assert info["port"] == server.port
            assert info["host"] == "127.0.0.1"
            assert "ws_port" not in info
        err = capsys.readouterr().err
        assert f"http://127.0.0.1:{server.port}/" in err
        assert f"http://127.0.0.1:{port}/" not in err
    finally:
        busy.close()


def test_port_zero_reports_the_bound_port(single) -> None:
    with CellucidServer(single.path, port=0, quiet=True) as server:
        assert server.port != 0
        assert server.url.endswith(f":{server.port}")
        body = request(server.port, "GET", "/_cellucid/info").json()
        assert body["port"] == server.port
        assert set(body) == {"version", "host", "port", "mode"}
        assert server.server_info["port"] == server.port


def test_no_free_port_in_range_is_runtime_error(single) -> None:
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        try:
            holder.bind(("127.0.0.1", 65535))
            holder.listen(1)
        except OSError:
            pass  # already busy: the server cannot have it either
        server = CellucidServer(single.path, port=65535, quiet=True)
        with pytest.raises(RuntimeError):
            server.start_background()
        assert not server.is_running()
    finally:
        holder.close()


def test_start_background_stop_idempotent_and_port_freed(single) -> None:
    server = CellucidServer(single.path, port=0, quiet=True)
    assert not server.is_running()
    result = server.start_background()
    assert result is server
    assert server.is_running()
    port = server.port
    assert server.start_background() is server and server.port == port
    assert request(port, "GET", "/_cellucid/health").status == 200
    server.stop()
    assert not server.is_running()
    server.stop()
    server.stop()
    assert wait_port_free(port), "the port is still bound after stop()"
    with pytest.raises(OSError):
        request(port, "GET", "/_cellucid/health", timeout=2)


def test_stop_without_start_is_harmless(single) -> None:
    server = CellucidServer(single.path, port=0, quiet=True)
    server.stop()
    server.stop()
    assert not server.is_running()


def test_context_manager(single) -> None:
    with CellucidServer(single.path, port=0, quiet=True) as server:
        assert isinstance(server, CellucidServer)
        assert server.is_running()
        port = server.port
        assert (
            request(port, "GET", "/points_2d.bin").body
            == (single.path / "points_2d.bin").read_bytes()
        )
    assert not server.is_running()
    assert wait_port_free(port)


def test_serve_non_blocking_returns_running_server(single) -> None:
    server = serve(single.path, port=0, open_browser=False, quiet=True, blocking=False)
    try:
        assert isinstance(server, CellucidServer)
        assert server.is_running()
        assert request(server.port, "GET", "/_cellucid/health").status == 200
    finally:
        server.stop()
    assert not server.is_running()


def test_blocking_start_returns_none_after_stop(single) -> None:
    server = CellucidServer(single.path, port=0, quiet=True)
    result: list[Any] = []
    t = threading.Thread(target=lambda: result.append(server.start(blocking=True)))
    t.start()
    deadline = time.monotonic() + 10
    while not server.is_running() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.is_running()
    assert t.is_alive(), "a blocking start() returned while the server was running"
    assert request(server.port, "GET", "/_cellucid/health").status == 200
    server.stop()
    t.join(10)
    assert result == [None]


def test_open_browser_opens_the_viewer_url(single, monkeypatch) -> None:
    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url, *a, **k: opened.append(url) or True)
    server = serve(single.path, port=0, quiet=True, blocking=False)  # open_browser=True default
    try:
        assert opened == [server.viewer_url]
    finally:
        server.stop()
    with CellucidServer(single.path, port=0, quiet=True):  # default open_browser=False
        pass
    assert len(opened) == 1


def test_wildcard_host_warns_and_prints_loopback(single, capsys) -> None:
    with pytest.warns(UserWarning):
        server = CellucidServer(single.path, port=0, host="0.0.0.0", quiet=False)
        server.start_background()
    try:
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.viewer_url.startswith("http://127.0.0.1:")
        assert request(server.port, "GET", "/_cellucid/health").status == 200
        info = request(server.port, "GET", "/_cellucid/info").json()
        assert info["port"] == server.port and info["host"] == "0.0.0.0"
    finally:
        server.stop()
    err = capsys.readouterr().err
    assert f"http://127.0.0.1:{server.port}/" in err
    assert "http://0.0.0.0" not in err
    assert "warning" in err.lower()


def test_not_a_dataset_folder_is_value_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "points_2d.bin").write_bytes(b"\x00" * 8)
    for folder in (tmp_path / "empty", tmp_path / "files"):
        with pytest.raises(ValueError):
            CellucidServer(folder, port=0, quiet=True)
        with pytest.raises(ValueError):
            serve(folder, port=0, open_browser=False, quiet=True, blocking=False)


def test_missing_folder_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        CellucidServer(tmp_path / "missing", port=0, quiet=True)
    with pytest.raises(FileNotFoundError):
        serve(tmp_path / "missing", port=0, open_browser=False, quiet=True, blocking=False)


def test_duplicate_identity_ids_in_root_refuse_to_start(tmp_path: Path) -> None:
    write_dataset(tmp_path / "one", n=20, dataset_id="same", n_genes=0, connectivity=False)
    write_dataset(tmp_path / "two", n=20, dataset_id="same", n_genes=0, connectivity=False)
    with pytest.raises(ValueError, match="same"):
        CellucidServer(tmp_path, port=0, quiet=True)


def test_repr(single) -> None:
    server = CellucidServer(single.path, port=0, quiet=True)
    with server:
        assert (
            repr(server) == f"CellucidServer('{single.path}', port={server.port}, status=running)"
        )
    assert repr(server) == f"CellucidServer('{single.path}', port={server.port}, status=stopped)"


def test_default_port_is_8765() -> None:
    assert runner.DEFAULT_PORT == 8765
    assert CellucidServer.__init__.__defaults__[0] == 8765
    assert serve.__defaults__[:4] == (8765, "127.0.0.1", True, False)


def test_unsatisfiable_range_carries_a_json_error(srv: AppServer, single) -> None:
    """§3.1: error statuses carry a JSON body; a 416 also says the real size."""
    size = (single.path / "points_2d.bin").stat().st_size
    resp = srv.get("/points_2d.bin", Range=f"bytes={size + 10}-")
    assert resp.status == 416
    assert resp.header("Content-Range") == f"bytes */{size}"
    assert resp.header("Content-Type") == "application/json"
    assert resp.json() == {"status": "error", "message": "range not satisfiable"}


def test_symlinked_dataset_leaving_the_root_is_not_served(base: Path, tmp_path: Path) -> None:
    """§3.1: a dataset directory that links outside the export root is refused (404)."""
    root = tmp_path / "root"
    root.mkdir()
    write_dataset(root / "inside", n=20, dataset_id="inside", name="Inside")
    outside = write_dataset(tmp_path / "elsewhere", n=20, dataset_id="outside", name="Out")
    os.symlink(outside.path, root / "linked")
    with pytest.warns(UserWarning, match="outside"):
        source = ExportFolderSource(root)
    assert [d.path for d in source.datasets()] == ["/inside/"]
    with serving(source) as server:
        assert server.get("/linked/dataset_identity.json").status == 404
        assert server.get("/inside/dataset_identity.json").status == 200


class _MemorySource:
    """One dataset whose files are bytes in memory (as an AnnData server's are)."""

    kind = "anndata"

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def datasets(self) -> list[DatasetEntry]:
        return [DatasetEntry(id="mem", name="Mem", path="/")]

    def health(self) -> dict[str, Any]:
        return {"type": "anndata"}

    def open(self, dataset: DatasetEntry, relpath: str) -> FileBody | None:
        data = self.files.get(relpath)
        if data is None:
            return None
        return FileBody.from_bytes(memoryview(data), "application/octet-stream", '"mem"')

    def close(self) -> None:
        pass


def test_a_body_in_memory_larger_than_a_chunk_is_sent_whole_and_in_ranges() -> None:
    """In-memory bodies above one CHUNK are written a chunk at a time (asyncio would copy
    and shift one large buffer); the bytes, lengths and ranges are those of the body."""
    from cellucid.server.files import CHUNK

    data = np.random.default_rng(4).bytes(3 * CHUNK + 12345)
    with serving(_MemorySource({"points_2d.bin": data})) as server:
        whole = server.get("/points_2d.bin")
        assert whole.status == 200 and whole.body == data
        assert whole.header("Content-Length") == str(len(data))
        lo, hi = CHUNK - 7, 2 * CHUNK + 9  # crosses two chunk boundaries
        part = server.get("/points_2d.bin", Range=f"bytes={lo}-{hi}")
        assert part.status == 206 and part.body == data[lo : hi + 1]
        assert part.header("Content-Range") == f"bytes {lo}-{hi}/{len(data)}"
        tail = server.get("/points_2d.bin", Range=f"bytes={CHUNK // 2}-")
        assert tail.status == 206 and tail.body == data[CHUNK // 2 :]
        head = server.head("/points_2d.bin")
        assert head.status == 200 and head.body == b""
        assert head.header("Content-Length") == str(len(data))
