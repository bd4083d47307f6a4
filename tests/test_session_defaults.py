"""Issue 10's sessions on the Python side: the bundle writer, scanpy colours (uns) at export and
in AnnData mode, ``GET /_cellucid/default_session``, numeric user fields in
``apply_cellucid_session_to_anndata``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import cellucid
from _data import CLUSTER_ORDER, make_adata
from _server import serving
from cellucid.session import (
    CellucidSessionBundle,
    SessionBundleReader,
    apply_cellucid_session_to_anndata,
    write_session_bundle,
)
from cellucid.session.numeric_fields import numeric_field_chunks
from cellucid.sources.anndata import AnnDataAdapter
from cellucid.sources.export_folder import ExportFolderSource

PALETTE = ["#ff0000", "#00FF00", "#0000ff", "#123456", "#abcdefcc"]  # one per CLUSTER_ORDER
EXPECTED = ["#ff0000", "#00ff00", "#0000ff", "#123456", "#abcdef"]  # lower case, alpha dropped


def _adata(n=60, colors=PALETTE):
    adata = make_adata(n, 3)
    if colors is not None:
        adata.uns["cluster_colors"] = np.array(colors, dtype=object)
    return adata


def _bundle(tmp_path, data, name="s.cellucid-session"):
    path = tmp_path / name
    path.write_bytes(data)
    return CellucidSessionBundle(path)


# ---- the writer ------------------------------------------------------------------------------
def test_writer_round_trips_through_the_reader(tmp_path):
    big = {"x": ["y" * 50] * 200}  # above the gzip threshold
    data = write_session_bundle(
        [
            {"id": "a/json", "kind": "json", "data": {"k": [1, None]}},
            {"id": "b/big", "kind": "json", "data": big},
            {"id": "c/bin", "kind": "binary", "data": b"\x00\x01", "depends_on": "a/json"},
        ],
        dataset_fingerprint={"sourceType": "x", "datasetId": "d", "cellCount": 3},
        created_at="2025-01-01T00:00:00Z",
    )
    b = _bundle(tmp_path, data)
    assert b.list_chunk_ids() == ["a/json", "b/big", "c/bin"]
    assert b.get_chunk_meta("b/big")["codec"] == "gzip"
    assert b.decode_chunk("b/big") == big
    assert b.decode_chunk("c/bin") == b"\x00\x01"
    assert b.get_chunk_meta("c/bin")["dependsOn"] == ["a/json"]
    assert b.dataset_fingerprint["cellCount"] == 3
    with pytest.raises(ValueError, match="duplicate chunk id"):
        write_session_bundle([{"id": "a", "kind": "json", "data": 1}] * 2, dataset_fingerprint={})
    with pytest.raises(ValueError, match="kind"):
        write_session_bundle([{"id": "a", "kind": "text", "data": 1}], dataset_fingerprint={})


def _imports(module: str) -> set[str]:
    """The sibling modules of cellucid.session that ``module`` imports (anywhere in it)."""
    import ast
    from pathlib import Path

    import cellucid.session as pkg

    tree = ast.parse((Path(pkg.__file__).parent / f"{module}.py").read_text())
    return {
        node.module.lstrip(".")
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
    }


def test_session_modules_depend_one_way():
    """bundle imports no other session module; apply depends on bundle, never on the reader
    class; only reader (the public class) imports apply."""
    assert _imports("bundle") == set()
    assert "bundle" in _imports("apply") and "reader" not in _imports("apply")
    assert _imports("reader") == {"apply", "bundle"}
    assert issubclass(CellucidSessionBundle, SessionBundleReader)
    assert cellucid.CellucidSessionBundle is CellucidSessionBundle
    assert hasattr(CellucidSessionBundle, "apply_to_anndata")
    assert not hasattr(SessionBundleReader, "apply_to_anndata")


# ---- numeric user fields ---------------------------------------------------------------------
def test_numeric_user_fields_become_float_obs_columns(tmp_path):
    adata = make_adata(20, 2)
    values = np.linspace(-1, 1, 20, dtype=np.float32)
    values[3] = np.nan
    chunks = numeric_field_chunks({"my score": values, "short": np.zeros(5, np.float32)})
    data = write_session_bundle(chunks, dataset_fingerprint={"cellCount": 20})
    with pytest.warns(UserWarning, match="'short': 5 values for 20 cells"):
        out, summary = apply_cellucid_session_to_anndata(
            _bundle(tmp_path, data), adata, return_summary=True
        )
    assert summary.added_obs_columns == ["my_score"]
    col = out.obs["my_score"].to_numpy()
    assert col.dtype == np.float32
    np.testing.assert_array_equal(col, values)  # NaN in the same place
    assert "my_score" not in adata.obs  # not inplace
    # a session of another dataset adds nothing
    other = write_session_bundle(chunks, dataset_fingerprint={"cellCount": 21})
    with pytest.warns(UserWarning, match="does not match"):
        out2 = apply_cellucid_session_to_anndata(
            _bundle(tmp_path, other, "o.cellucid-session"), adata
        )
    assert "my_score" not in out2.obs


# ---- prepare: the sibling file -----------------------------------------------------------------
def test_prepare_writes_scanpy_colours_next_to_the_export(tmp_path):
    out = cellucid.prepare(_adata(), tmp_path / "pbmc", quiet=True)
    sibling = tmp_path / "pbmc.cellucid-session"
    assert sibling.is_file()
    assert not any(p.name.endswith(".cellucid-session") for p in out.rglob("*"))  # not inside
    b = CellucidSessionBundle(sibling)
    assert b.list_chunk_ids() == ["cellucid/palettes"]
    palettes = b.decode_chunk("cellucid/palettes")
    assert palettes == {"cluster": {"categories": CLUSTER_ORDER, "colors": EXPECTED}}
    fp = b.dataset_fingerprint
    assert fp["datasetId"] == "pbmc" and fp["cellCount"] == 60 and fp["varCount"] == 3
    # the export server serves it through the route, and not as a data file
    with serving(ExportFolderSource(out)) as srv:
        resp = srv.get("/_cellucid/default_session?dataset=pbmc")
        assert resp.status == 200 and resp.body == sibling.read_bytes()
        assert resp.header("Content-Type") == "application/octet-stream"
        assert srv.get("/_cellucid/default_session?dataset=nope").status == 404
        assert srv.get("/../pbmc.cellucid-session").status == 404


def test_prepare_without_valid_colours_writes_nothing_and_force_removes_a_stale_one(tmp_path):
    cellucid.prepare(_adata(), tmp_path / "d", quiet=True)
    sibling = tmp_path / "d.cellucid-session"
    assert sibling.is_file()
    bad = _adata(colors=PALETTE[:3])
    with pytest.warns(
        UserWarning, match=r"adata.uns\['cluster_colors'\] has 3 colours for 5 categories"
    ):
        cellucid.prepare(bad, tmp_path / "d", quiet=True, force=True)
    assert not sibling.exists()  # ours, stale: removed
    with pytest.warns(UserWarning, match=r"'red' is not a '#rrggbb' colour"):
        cellucid.prepare(_adata(colors=["red"] * 5), tmp_path / "e", quiet=True)
    assert not (tmp_path / "e.cellucid-session").exists()
    cellucid.prepare(_adata(), tmp_path / "f", quiet=True, category_colors=False)
    assert not (tmp_path / "f.cellucid-session").exists()


def test_prepare_leaves_a_session_it_did_not_write(tmp_path):
    mine = write_session_bundle([], dataset_fingerprint={"datasetId": "g"})
    (tmp_path / "g.cellucid-session").write_bytes(mine)
    with pytest.warns(UserWarning, match="not written by prepare"):
        cellucid.prepare(_adata(), tmp_path / "g", quiet=True)
    assert (tmp_path / "g.cellucid-session").read_bytes() == mine


def test_prepare_failure_writes_no_sibling(tmp_path):
    adata = _adata()
    with pytest.raises(KeyError):
        cellucid.prepare(adata, tmp_path / "h", obs_keys=["nope"], quiet=True)
    assert not (tmp_path / "h.cellucid-session").exists()


# ---- the export server's route -------------------------------------------------------------
def test_export_server_serves_default_inside_then_sibling_and_204(tmp_path):
    root = tmp_path / "exports"
    cellucid.prepare(_adata(colors=None), root / "a", quiet=True)
    cellucid.prepare(_adata(colors=None), root / "b", quiet=True)
    inside = write_session_bundle([], dataset_fingerprint={"datasetId": "a"}, created_at="in")
    sibling = write_session_bundle([], dataset_fingerprint={"datasetId": "a"}, created_at="sib")
    (root / "a.cellucid-session").write_bytes(sibling)
    (root / "b" / "notes.cellucid-session").write_bytes(sibling)  # another name: never served
    with serving(ExportFolderSource(root)) as srv:
        assert srv.get("/_cellucid/default_session?dataset=a").body == sibling
        (root / "a" / "default.cellucid-session").write_bytes(inside)
        assert srv.get("/_cellucid/default_session?dataset=a").body == inside  # inside first
        assert srv.get("/_cellucid/default_session?dataset=b").status == 204
        assert srv.get("/_cellucid/default_session").status == 400  # two datasets
        # the files themselves are not data files of the export
        assert srv.get("/a/default.cellucid-session").status == 404
        assert srv.get("/b/notes.cellucid-session").status == 404
        assert srv.get("/a.cellucid-session").status == 404


# ---- AnnData mode --------------------------------------------------------------------------------
def test_anndata_route_answers_a_bundle_of_the_uns_colours(tmp_path):
    adapter = AnnDataAdapter(_adata(), dataset_name="demo")
    with serving(adapter) as srv:
        resp = srv.get("/_cellucid/default_session?dataset=demo")
    assert resp.status == 200
    b = _bundle(tmp_path, resp.body)
    assert b.decode_chunk("cellucid/palettes")["cluster"]["colors"] == EXPECTED
    assert b.dataset_fingerprint == {
        "sourceType": "anndata",
        "datasetId": "demo",
        "cellCount": 60,
        "varCount": 3,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = AnnDataAdapter(_adata(colors=None), dataset_name="demo")
    with serving(plain) as srv:
        assert srv.get("/_cellucid/default_session?dataset=demo").status == 204


def test_anndata_invalid_palette_warns_and_is_left_out():
    with pytest.warns(UserWarning, match=r"cluster_colors.*default colours for 'cluster'"):
        adapter = AnnDataAdapter(_adata(colors=PALETTE[:2]), dataset_name="demo")
    assert adapter.palettes == {}


def test_anndata_user_session_is_merged_and_wins_per_field(tmp_path):
    user = tmp_path / "u.cellucid-session"
    theirs = {"cluster": {"categories": ["NK"], "colors": ["#010203"]}}
    user.write_bytes(
        write_session_bundle(
            [
                {"id": "core/state", "kind": "json", "data": {"dim": 3}},
                {"id": "cellucid/palettes", "kind": "json", "data": theirs},
            ],
            dataset_fingerprint={"datasetId": "demo", "cellCount": 60},
        )
    )
    adata = _adata()
    adata.obs["batch2"] = adata.obs["cluster"].astype(str).astype("category")
    cats = list(adata.obs["batch2"].cat.categories)
    adata.uns["batch2_colors"] = ["#111111"] * len(cats)
    server = cellucid.AnnDataServer(adata, port=0, quiet=True, session=user, dataset_name="demo")
    server.start_background()
    try:
        from _server import get

        resp = get(server.port, "/_cellucid/default_session?dataset=demo")
    finally:
        server.stop()
    b = _bundle(tmp_path, resp.body, "m.cellucid-session")
    assert b.decode_chunk("core/state") == {"dim": 3}
    palettes = b.decode_chunk("cellucid/palettes")
    assert palettes["cluster"] == theirs["cluster"]  # the user's file wins
    assert palettes["batch2"]["colors"] == ["#111111"] * len(cats)  # uns fills the rest
    with pytest.raises(FileNotFoundError, match="session file not found"):
        cellucid.AnnDataServer(adata, port=0, quiet=True, session=tmp_path / "missing")
    (tmp_path / "junk.cellucid-session").write_bytes(b"nope")
    with pytest.raises(ValueError, match=r"not a usable \.cellucid-session"):
        cellucid.AnnDataServer(
            adata, port=0, quiet=True, session=tmp_path / "junk.cellucid-session"
        )


# ---- the widget's comm transport and the CLI ---------------------------------------------------
def test_comm_transport_answers_the_default_session(tmp_path):
    from cellucid.comm_transport import CommFiles
    from cellucid.server.app import ServerConfig

    files = CommFiles(ServerConfig(source=AnnDataAdapter(_adata(), dataset_name="demo")))
    reply = files.answer("GET", "_cellucid/default_session?dataset=demo", {}, b"")
    assert reply.status == 200 and reply.headers["content-type"] == "application/octet-stream"
    colors = _bundle(tmp_path, reply.body).decode_chunk("cellucid/palettes")["cluster"]["colors"]
    assert colors == EXPECTED
    assert files.answer("GET", "_cellucid/default_session?dataset=x", {}, b"").status == 404
    assert files.answer("POST", "_cellucid/default_session?dataset=demo", {}, b"").status == 405
    plain = CommFiles(ServerConfig(source=AnnDataAdapter(_adata(colors=None), dataset_name="d")))
    assert plain.answer("GET", "_cellucid/default_session?dataset=d", {}, b"").status == 204


def test_cli_serve_passes_the_session_file(tmp_path, monkeypatch, capsys):
    import cellucid.server.runner as runner
    from cellucid.cli import main

    seen = {}

    class Recorder:
        def __init__(self, data, **kw):
            seen.update(kw, data=data)

        def start(self, blocking=True):
            return None

    monkeypatch.setattr(runner, "AnnDataServer", Recorder)
    path = tmp_path / "a.h5ad"
    _adata().write_h5ad(path)
    session = tmp_path / "s.cellucid-session"
    assert main(["serve", str(path), "--no-browser", "-q", "--session", str(session)]) == 0
    assert seen["session"] == session and seen["data"] == path


def test_notebook_viewers_take_a_session_file(tmp_path):
    from cellucid.viewer import AnnDataViewer, CellucidViewer

    session = tmp_path / "s.cellucid-session"
    session.write_bytes(write_session_bundle([], dataset_fingerprint={}))
    viewer = AnnDataViewer(_adata(), port=0, session=session)
    try:
        assert viewer._server.session.path == session
        assert viewer._server.config is None or viewer._server.config.session.path == session
    finally:
        viewer.close()
    export = cellucid.prepare(_adata(colors=None), tmp_path / "x", quiet=True)
    viewer = CellucidViewer(export, port=0, session=session)
    try:
        assert viewer._server.session.path == session
    finally:
        viewer.close()
