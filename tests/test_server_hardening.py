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
