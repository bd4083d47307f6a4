"""viewer.compare, viewer.last_comparison and the comparison event on CellucidWidget."""

from __future__ import annotations

import json
import struct
import threading
import urllib.request

import numpy as np
import pandas as pd
import pytest

import cellucid
from cellucid import CellucidWidget
from cellucid.session import encode_cell_list
from test_rank_genes import make_counts_adata
from test_session_bundle import write_bundle


@pytest.fixture(scope="module")
def adata():
    a = make_counts_adata()
    a.obsm["X_umap"] = np.random.default_rng(2).normal(size=(a.n_obs, 2)).astype(np.float32)
    return a


@pytest.fixture
def widget(adata):
    w = CellucidWidget(adata, port=0)
    yield w
    w.close()


def test_compare_matches_rank_genes_for_every_group_form(widget, adata):
    cluster = adata.obs["cluster"].to_numpy()
    expected = cellucid.rank_genes(adata, cluster == "c3", quiet=True)
    selection = np.flatnonzero(cluster == "c3").astype(np.uint32)  # what viewer.selection holds
    for group in (selection, cluster == "c3", ("cluster", "c3")):
        pd.testing.assert_frame_equal(widget.compare(group), expected)
    vs = widget.compare(("cluster", "c3"), ("cluster", ["c1", "c2"]), method="t-test", n_genes=4)
    pd.testing.assert_frame_equal(
        vs,
        cellucid.rank_genes(
            adata,
            ("cluster", "c3"),
            ("cluster", ["c1", "c2"]),
            method="t-test",
            n_genes=4,
            quiet=True,
        ),
    )


def test_compare_from_a_file_backed_and_an_export_widget(adata, tmp_path, monkeypatch):
    monkeypatch.setenv("CELLUCID_CACHE_DIR", str(tmp_path / "cache"))
    adata.write_h5ad(tmp_path / "d.h5ad")
    export = cellucid.prepare(adata, tmp_path / "export", quiet=True)
    expected = cellucid.rank_genes(adata, ("cluster", "c5"), quiet=True)
    for data in (tmp_path / "d.h5ad", export):
        w = CellucidWidget(data, port=0)
        try:
            got = w.compare(("cluster", "c5"))
        finally:
            w.close()
        pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-6)


def test_highlight_group_names(widget, adata, tmp_path, monkeypatch):
    cells = np.flatnonzero(adata.obs["cluster"].to_numpy() == "c2")
    meta = {
        "pages": [
            {
                "id": "p1",
                "name": "Page 1",
                "highlightedGroups": [{"id": "g1", "name": "my T cells", "color": "#ff0000"}],
            }
        ]
    }
    path = write_bundle(
        tmp_path / "s.cellucid-session",
        [
            {"id": "highlights/meta", "kind": "json", "data": meta},
            {"id": "highlights/cells/g1", "data": encode_cell_list(cells)},
        ],
        fingerprint={"sourceType": "test", "datasetId": "x", "cellCount": adata.n_obs},
    )
    monkeypatch.setattr(
        widget, "get_session_bundle", lambda timeout=60: cellucid.CellucidSessionBundle(path)
    )
    expected = cellucid.rank_genes(adata, cells, quiet=True)
    pd.testing.assert_frame_equal(widget.compare("my T cells"), expected)
    pd.testing.assert_frame_equal(widget.compare("g1"), expected)
    with pytest.raises(KeyError, match=r"no highlight group named 'nope'.*'my T cells'"):
        widget.compare("nope")


def test_comparison_started_in_the_viewer_reaches_python(widget, adata):
    """The viewer's Compare panel posts to the server; Python sees the event and the table."""
    assert widget.last_comparison is None
    seen: list[dict] = []
    done = threading.Event()

    @widget.on_message
    def got(event):
        if event["event"] == "comparison":
            seen.append(event)
            done.set()

    group = np.flatnonzero(adata.obs["cluster"].to_numpy() == "c4").astype("<u4").tobytes()
    header = json.dumps(
        {
            "method": "wilcoxon",
            "nGenes": 10,
            "group": {"encoding": "u32", "bytes": len(group), "label": "lasso"},
            "reference": "rest",
        }
    ).encode()
    url = (
        f"http://127.0.0.1:{widget.port}/_cellucid/compare?viewerId={widget.viewer_id}"
        f"&viewerToken={widget.viewer_token}"
    )
    body = struct.pack("<I", len(header)) + header + group
    with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=30) as resp:
        lines = [json.loads(x) for x in resp.read().splitlines()]
    assert lines[-1]["type"] == "result"
    assert done.wait(10)
    assert seen[0]["group"] == {"label": "lasso", "size": len(group) // 4}
    table = widget.last_comparison
    expected = cellucid.rank_genes(adata, ("cluster", "c4"), n_genes=10, quiet=True)
    pd.testing.assert_frame_equal(table.reset_index(drop=True), expected, check_like=False)
    assert table.attrs["cellucid"]["group"] == "lasso"
    assert list(table["names"]) == lines[-1]["names"]


def test_compare_after_close(adata):
    w = CellucidWidget(adata, port=0)
    w.close()
    with pytest.raises(RuntimeError, match="closed"):
        w.compare([0, 1, 2])
