"""The viewer's requests answered over the comm (cellucid.comm_transport): the same answers
as the HTTP routes of SPEC §3 for the same server config."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from _exports import write_dataset
from _server import AppServer, serving
from cellucid.comm_transport import CommFiles, Reply, viewer_page
from cellucid.server.app import default_ui_dir
from cellucid.server.bundles import BUNDLE_MAGIC
from cellucid.server.events import ViewerChannel
from cellucid.sources.export_folder import ExportFolderSource

VIEWER_ID = "v0123456789abcde"
TOKEN = "t" * 32
PACKED = "packed/points_2d.bin.gz"
PLAIN = "plain/obs/cell_type.codes.u8"


@pytest.fixture(scope="module")
def export_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("comm") / "exports"
    write_dataset(root / "packed", compression=6, dataset_id="packed", n=50)
    write_dataset(root / "plain", dataset_id="plain", n=40, seed=1)
    return root


@pytest.fixture(scope="module")
def server(export_root: Path) -> Iterator[AppServer]:
    with serving(ExportFolderSource(export_root)) as srv:
        yield srv


@pytest.fixture(scope="module")
def files(server: AppServer) -> CommFiles:
    return CommFiles(server.config)


@pytest.fixture
def channel(server: AppServer) -> Iterator[ViewerChannel]:
    ch = ViewerChannel(VIEWER_ID, TOKEN, name="comm-test")
    server.config.registry.add(ch)
    yield ch
    server.config.registry.remove(VIEWER_ID)
    ch.close()


def _json(reply: Reply, status: int = 200) -> object:
    assert reply.status == status, reply
    assert reply.headers["content-type"] == "application/json"
    return json.loads(reply.body)


def _error(reply: Reply, status: int) -> str:
    body = _json(reply, status)
    assert set(body) == {"status", "message"} and body["status"] == "error", body
    return body["message"]


# ---------------------------------------------------------------------------- discovery


@pytest.mark.parametrize("route", ["_cellucid/health", "_cellucid/info", "_cellucid/datasets"])
def test_discovery_routes_match_http(files: CommFiles, server: AppServer, route: str) -> None:
    reply = files.answer("GET", route, {}, b"")
    assert reply.headers["cache-control"] == "no-store"
    assert _json(reply) == server.get("/" + route).json()


def test_datasets_list_both_exports(files: CommFiles) -> None:
    body = _json(files.answer("GET", "/_cellucid/datasets?x=1", {}, b""))
    assert [(d["id"], d["path"]) for d in body["datasets"]] == [
        ("packed", "/packed/"),
        ("plain", "/plain/"),
    ]


# --------------------------------------------------------------------------- data files


@pytest.mark.parametrize("rel", [PLAIN, "plain/dataset_identity.json", "plain/obs_manifest.json"])
def test_data_file_is_the_http_body(
    files: CommFiles, server: AppServer, export_root: Path, rel: str
) -> None:
    reply = files.answer("GET", rel, {}, b"")
    http = server.get("/" + rel, Accept_Encoding="identity")
    assert reply.status == http.status == 200
    assert reply.body == http.body == (export_root / rel).read_bytes()
    assert reply.headers["content-type"] == http.header("Content-Type")
    assert reply.headers["cache-control"] == http.header("Cache-Control")
    assert reply.headers["etag"] == http.header("ETag")


def test_gz_payload_is_raw_gzip(files: CommFiles, server: AppServer, export_root: Path) -> None:
    reply = files.answer("GET", PACKED, {}, b"")
    http = server.get("/" + PACKED, Accept_Encoding="gzip")
    assert reply.status == 200
    assert reply.body[:2] == b"\x1f\x8b"
    assert reply.body == http.body == (export_root / PACKED).read_bytes()
    assert "content-encoding" not in reply.headers
    assert http.header("Content-Encoding") is None
    assert reply.headers["content-type"] == http.header("Content-Type")


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [
        ("bytes=2-9", 2, 10),
        ("bytes=5-", 5, None),
        ("bytes=-4", -4, None),
        ("bytes=0-99999", 0, None),
    ],
)
def test_range_request(
    files: CommFiles,
    server: AppServer,
    export_root: Path,
    header: str,
    start: int,
    stop: int | None,
) -> None:
    data = (export_root / PLAIN).read_bytes()
    expected = data[start:stop]
    reply = files.answer("GET", PLAIN, {"range": header}, b"")
    http = server.get("/" + PLAIN, Range=header, Accept_Encoding="identity")
    assert reply.status == http.status == 206
    assert reply.body == http.body == expected
    first = len(data) + start if start < 0 else start
    assert (
        reply.headers["content-range"] == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"
    )
    assert reply.headers["content-range"] == http.header("Content-Range")


@pytest.mark.parametrize("header", ["bytes=99999-", "bytes=9-3", "bytes=-", "items=0-1"])
def test_unsatisfiable_range_is_416(files: CommFiles, header: str) -> None:
    assert "Range" in _error(files.answer("GET", PLAIN, {"range": header}, b""), 416)


def test_unsatisfiable_range_is_416_over_http_too(files: CommFiles, server: AppServer) -> None:
    http = server.get("/" + PLAIN, Range="bytes=99999-")
    assert http.status == files.answer("GET", PLAIN, {"range": "bytes=99999-"}, b"").status == 416


def test_head_has_the_get_headers_and_no_body(files: CommFiles) -> None:
    get = files.answer("GET", PLAIN, {}, b"")
    head = files.answer("head", PLAIN, {}, b"")
    assert head.status == 200
    assert head.body == b""
    assert head.headers == get.headers
    assert files.answer("HEAD", "_cellucid/health", {}, b"").status == 200


@pytest.mark.parametrize(
    "rel",
    [
        "plain/obs/nope.codes.u8",
        "nowhere/points_2d.bin",
        "plain/",
        "plain/obs",
        "_cellucid/nothing",
        "_cellucid/health/x",
    ],
)
def test_unknown_paths_are_404(files: CommFiles, server: AppServer, rel: str) -> None:
    _error(files.answer("GET", rel, {}, b""), 404)
    assert server.get("/" + rel).status == 404


@pytest.mark.parametrize(
    "rel",
    [
        "plain/obs/../dataset_identity.json",
        "plain/./dataset_identity.json",
        "plain/%2e%2e/plain/dataset_identity.json",
        "plain/obs/%2E%2E/obs_manifest.json",
        "../plain/dataset_identity.json",
        "plain\\dataset_identity.json",
        "plain/obs\\..\\dataset_identity.json",
        "plain/dataset_identity.json%00",
    ],
)
def test_dot_segments_backslashes_and_nul_are_refused(files: CommFiles, rel: str) -> None:
    _error(files.answer("GET", rel, {}, b""), 404)


@pytest.mark.parametrize(
    ("method", "route"),
    [
        ("POST", "_cellucid/health"),
        ("PUT", "_cellucid/datasets"),
        ("GET", "_cellucid/events"),
        ("GET", "_cellucid/session_bundle"),
        ("POST", PLAIN),
        ("DELETE", PLAIN),
    ],
)
def test_wrong_method_is_405(files: CommFiles, method: str, route: str) -> None:
    assert method in _error(files.answer(method, route, {}, b"x"), 405)


def test_a_failing_source_is_a_500_not_an_exception(
    server: AppServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object) -> None:
        raise OSError("disk on fire")

    files = CommFiles(server.config)
    monkeypatch.setattr(server.config.source, "open", broken)
    assert "disk on fire" in _error(files.answer("GET", PLAIN, {}, b""), 500)


# ------------------------------------------------------------------------------- events


def _event_body(**overrides: object) -> bytes:
    event = {"type": "hover", "viewerId": VIEWER_ID, "viewerToken": TOKEN, "cell": 3}
    event["position"] = {"x": 0.5, "y": 1, "z": 0}
    event.update(overrides)
    return json.dumps(event).encode()


def test_event_post_is_delivered_once_per_event_id(
    files: CommFiles, channel: ViewerChannel
) -> None:
    for _ in range(2):
        reply = files.answer("POST", "_cellucid/events?eventId=e-1", {}, _event_body())
        assert _json(reply) == {"status": "ok", "delivered": True}
    reply = files.answer("POST", "_cellucid/events?eventId=e-2", {}, _event_body(cell=4))
    assert _json(reply) == {"status": "ok", "delivered": True}
    assert [e["cell"] for e in channel.recent_events()] == [3, 4]
    assert channel.duplicates == 1
    assert channel.state.hover == {"cell": 4, "position": {"x": 0.5, "y": 1, "z": 0}}


def test_event_without_id_is_delivered_each_time(files: CommFiles, channel: ViewerChannel) -> None:
    for _ in range(2):
        _json(files.answer("POST", "_cellucid/events", {}, _event_body()))
    assert len(channel.recent_events()) == 2


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("_cellucid/events", _event_body(viewerToken="x" * 32), 403),
        ("_cellucid/events", _event_body(viewerId="ffffffffffffffff"), 404),
        ("_cellucid/events", b"{not json", 400),
        ("_cellucid/events", b"[1, 2]", 400),
        ("_cellucid/events", _event_body(cell=-1), 400),
        ("_cellucid/events?eventId=" + "e" * 129, _event_body(), 400),
        ("_cellucid/events", _event_body(type="session_bundle"), 400),
    ],
)
def test_bad_event_posts(
    files: CommFiles, channel: ViewerChannel, path: str, body: bytes, status: int
) -> None:
    _error(files.answer("POST", path, {}, body), status)
    assert channel.recent_events() == []


# ------------------------------------------------------------------------ session bundle


def _bundle_path(request_id: str, token: str = TOKEN) -> str:
    return (
        f"_cellucid/session_bundle?viewerId={VIEWER_ID}&viewerToken={token}&requestId={request_id}"
    )


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the uploads write their temporary files during the test."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_session_bundle_upload(
    files: CommFiles, server: AppServer, channel: ViewerChannel, temp_dir: Path
) -> None:
    server.config.registry.pending.register(VIEWER_ID, "req-1", ttl=60)
    body = BUNDLE_MAGIC + b'{"manifest": true}' + bytes(range(256))
    reply = files.answer("POST", _bundle_path("req-1"), {}, body)
    assert _json(reply) == {"status": "ok", "bytes": len(body)}
    event = channel.state.last_event
    assert channel.state.last_event_type == "session_bundle"
    path = Path(event["path"])
    try:
        assert event == {
            "requestId": "req-1",
            "status": "ok",
            "bytes": len(body),
            "path": str(path),
        }
        assert path.parent == temp_dir and path.name.startswith("cellucid-session-")
        assert path.name.endswith(".cellucid-session")
        assert path.read_bytes() == body
    finally:
        path.unlink(missing_ok=True)
    # the request was consumed: a second upload has nothing to answer
    _error(files.answer("POST", _bundle_path("req-1"), {}, body), 404)


def test_session_bundle_with_bad_magic(
    files: CommFiles, server: AppServer, channel: ViewerChannel, temp_dir: Path
) -> None:
    server.config.registry.pending.register(VIEWER_ID, "req-2", ttl=60)
    reply = files.answer("POST", _bundle_path("req-2"), {}, b"NOT_A_SESSION_FILE" + b"x" * 64)
    assert "cellucid-session" in _error(reply, 400)
    assert channel.state.last_event_type == "session_bundle"
    event = channel.state.last_event
    assert event["requestId"] == "req-2" and event["status"] == "error"
    assert "cellucid-session" in event["error"]
    assert list(temp_dir.iterdir()) == [], "the temporary file was not deleted"


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("_cellucid/session_bundle?viewerId=" + VIEWER_ID + "&requestId=r", BUNDLE_MAGIC, 400),
        (_bundle_path("req-3", token="x" * 32), BUNDLE_MAGIC, 403),
        (_bundle_path("never-registered"), BUNDLE_MAGIC, 404),
        (_bundle_path("req-3"), b"", 411),
        (_bundle_path("req-3"), BUNDLE_MAGIC[:5], 400),
    ],
)
def test_session_bundle_refusals(
    files: CommFiles,
    server: AppServer,
    channel: ViewerChannel,
    temp_dir: Path,
    path: str,
    body: bytes,
    status: int,
) -> None:
    server.config.registry.pending.register(VIEWER_ID, "req-3", ttl=60)
    _error(files.answer("POST", path, {}, body), status)
    assert list(temp_dir.iterdir()) == []


# ---------------------------------------------------------------------------- the page


def test_viewer_page_parts() -> None:
    ui = default_ui_dir()
    sizes, data = viewer_page(ui)
    assert set(sizes) == {"html", "css", "js"}
    assert sum(sizes.values()) == len(data)
    html = data[: sizes["html"]].decode("utf-8")
    css = data[sizes["html"] : sizes["html"] + sizes["css"]]
    js = data[sizes["html"] + sizes["css"] :]
    assert css == (ui / "assets" / "viewer.css").read_bytes()
    assert js == (ui / "assets" / "viewer.js").read_bytes()
    for placeholder in ("__CELLUCID_CSS_URL__", "<!--__CELLUCID_BOOT__-->", "__CELLUCID_JS_URL__"):
        assert html.count(placeholder) == 1, placeholder
    assert "Content-Security-Policy" in (ui / "index.html").read_text(encoding="utf-8")
    assert "Content-Security-Policy" not in html
    assert "./assets/viewer.css" not in html and "./assets/viewer.js" not in html
    assert html.index("<!--__CELLUCID_BOOT__-->") < html.index("__CELLUCID_JS_URL__")


def test_viewer_page_refuses_a_foreign_page(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    shutil.copy(default_ui_dir() / "assets" / "viewer.css", tmp_path / "assets" / "viewer.css")
    (tmp_path / "assets" / "viewer.js").write_text("1;", encoding="utf-8")
    (tmp_path / "index.html").write_text("<html><script src='x.js'></script></html>", "utf-8")
    with pytest.raises(RuntimeError, match="not the page cellucid builds"):
        viewer_page(tmp_path)
