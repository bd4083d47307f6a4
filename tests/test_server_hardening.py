"""Issue 13's server hardening: replies that leak nothing, errors that do not flood the console."""

from __future__ import annotations

import logging

import pytest

import cellucid
from _data import make_adata
from _server import serving
from cellucid.sources.export_folder import ExportFolderSource


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return cellucid.prepare(make_adata(40, 3), tmp_path_factory.mktemp("h") / "e", quiet=True)


@pytest.mark.parametrize(
    "target",
    [
        "/%3Cscript%3Ealert(1)%3C%2Fscript%3E.bin",
        "/obs/%3Cimg%20src%3Dx%3E.values.f32",
        "/_cellucid/%3Cb%3Ebold",
        "/assets/%3Cscript%3E.js",
    ],
)
def test_404_does_not_echo_the_decoded_path(export, target):
    with serving(ExportFolderSource(export)) as srv:
        resp = srv.get(target)
    assert resp.status == 404
    text = resp.body.decode()
    assert "<" not in text and "script" not in text and "img" not in text, text
    assert resp.json()["status"] == "error"


class Exploding(ExportFolderSource):
    def open(self, dataset, relpath):
        if relpath.endswith(".bin"):
            raise RuntimeError("boom: the source broke")
        return super().open(dataset, relpath)


def test_internal_errors_log_one_line_and_keep_the_traceback_for_debug(export, caplog):
    caplog.set_level(logging.DEBUG, logger="cellucid.server")
    with serving(Exploding(export)) as srv:
        resp = srv.get("/points_2d.bin")
    assert resp.status == 500 and resp.json()["message"] == "internal server error"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None  # no traceback on the console
    assert "RuntimeError" in errors[0].getMessage()
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG and r.exc_info]
    assert debug and "boom" in str(debug[0].exc_info[1])


# ---- strangers cost nothing: credentials before the body ----------------------------------
def _post_head(port, target, length):
    """Announce ``length`` body bytes, send none, and read the answer."""
    import http.client
    import json

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("POST", target)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(length))
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_events_with_bad_query_credentials_are_refused_before_the_body(export):
    from cellucid.server.events import ViewerChannel

    with serving(ExportFolderSource(export)) as srv:
        channel = ViewerChannel()
        srv.config.registry.add(channel)
        big = 100 * 1024 * 1024  # announced, never sent: an answer proves nothing was read
        status, body = _post_head(srv.port, "/_cellucid/events?viewerId=nope&viewerToken=x", big)
        assert status == 404 and body["status"] == "error"
        target = f"/_cellucid/events?viewerId={channel.viewer_id}&viewerToken=wrong"
        assert _post_head(srv.port, target, big)[0] == 403
        # credentials only in the body (the web app's form): a tight budget, answered at once
        status, body = _post_head(srv.port, "/_cellucid/events", 48 * 1024 * 1024)
        assert status == 413 and "exceeds" in body["message"]
        # our viewer's form: credentials in the query and the body, any size up to the limit
        import json

        event = {
            "type": "note",
            "viewerId": channel.viewer_id,
            "viewerToken": channel.token,
            "text": "x" * (2 * 1024 * 1024),
        }
        resp = srv.request(
            "POST",
            f"/_cellucid/events?viewerId={channel.viewer_id}&viewerToken={channel.token}",
            {"Content-Type": "application/json"},
            json.dumps(event).encode(),
        )
        assert resp.status == 200, resp
        assert channel.state.last_event_type == "note"
        assert channel.state.last_event["text"].startswith("xxx")
        channel.close()


def test_session_bundle_uploads_are_refused_before_the_body(export):
    with serving(ExportFolderSource(export)) as srv:
        big = 100 * 1024 * 1024
        target = "/_cellucid/session_bundle?viewerId=nope&viewerToken=x&requestId=r"
        status, body = _post_head(srv.port, target, big)
        assert status == 404 and body["status"] == "error"
        assert _post_head(srv.port, "/_cellucid/session_bundle", big)[0] == 400
