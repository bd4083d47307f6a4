"""A broken export is refused with an error screen that names the file and the key
(SPEC §2.12: the viewer checks what it reads), and no ready event is sent."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
from _browser import server_options

import cellucid


@pytest.fixture
def broken_export(tmp_path: Path, export_dir: Path):
    """A copy of the export, to break, served on its own port."""
    servers = []

    def make(edit) -> cellucid.CellucidServer:
        copy = tmp_path / f"broken{len(servers)}"
        shutil.copytree(export_dir, copy)
        edit(copy)
        server = cellucid.CellucidServer(copy, **server_options())
        server.start_background()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def _error_text(viewer, *needles: str, timeout: float = 10.0) -> str:
    page = viewer.page
    page.wait_for_function(
        "needles => needles.every(n => document.body.innerText.includes(n))",
        arg=list(needles),
        timeout=timeout * 1000,
    )
    return page.inner_text("body")


def test_unknown_obs_manifest_key_is_named(open_viewer, broken_export):
    def edit(root: Path) -> None:
        path = root / "obs_manifest.json"
        manifest = json.loads(path.read_text())
        manifest["bogus_key"] = 1
        path.write_text(json.dumps(manifest))

    server = broken_export(edit)
    viewer = open_viewer(server=server, wait_ready=False)
    text = _error_text(viewer, "obs_manifest.json", "bogus_key")
    assert "cannot be shown" in text.lower() or "error" in text.lower()
    time.sleep(0.3)
    assert viewer.channel.state.ready is None, "a broken dataset must not report ready"


def test_truncated_points_payload_is_named(open_viewer, broken_export):
    def edit(root: Path) -> None:
        path = root / "points_2d.bin"
        path.write_bytes(path.read_bytes()[:-4])

    server = broken_export(edit)
    viewer = open_viewer(server=server, wait_ready=False)
    # the loading line names the file too ("5 / 6 files · points_2d.bin"): wait for the error,
    # which names the file and the sizes (decode.js: "expected N bytes (...), found M")
    text = _error_text(viewer, "points_2d.bin", "bytes")
    assert re.search(r"points_2d\.bin.*expected \d+ bytes.*found \d+", text, re.S), text
    assert viewer.channel.state.ready is None


def test_identity_missing_a_stat_is_named(open_viewer, broken_export):
    def edit(root: Path) -> None:
        path = root / "dataset_identity.json"
        identity = json.loads(path.read_text())
        del identity["stats"]["n_genes"]
        path.write_text(json.dumps(identity, indent=2))

    server = broken_export(edit)
    viewer = open_viewer(server=server, wait_ready=False)
    _error_text(viewer, "dataset_identity.json", "n_genes")
    assert viewer.channel.state.ready is None
