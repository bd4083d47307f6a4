"""POST /_cellucid/compare and POST /_cellucid/viewers (python/cellucid/server/PROTOCOL.md)."""

from __future__ import annotations

import http.client
import json
import struct
import time

import numpy as np
import pytest

import cellucid
from _server import request, serving
from cellucid.server.compare import max_body_bytes
from cellucid.server.events import ViewerChannel
from cellucid.sources.anndata import AnnDataAdapter
from cellucid.sources.export_folder import ExportFolderSource
from test_rank_genes import make_counts_adata

N = 420


def body(group, reference="rest", *, encoding="u32", n=N, **header):
    """A request body of PROTOCOL.md."""

    def encode(cells):
        cells = np.asarray(cells)
        if encoding == "u32":
            return np.sort(cells).astype("<u4").tobytes()
        bits = np.zeros(n, np.uint8)
        bits[cells] = 1
        return np.packbits(bits, bitorder="little").tobytes()

    g = encode(group)
    head = {"method": "wilcoxon", "group": {"encoding": encoding, "bytes": len(g), "label": "A"}}
    parts = [g]
    if isinstance(reference, str):
        head["reference"] = reference
    else:
        r = encode(reference)
        head["reference"] = {"encoding": encoding, "bytes": len(r), "label": "B"}
        parts.append(r)
    head.update(header)
    text = json.dumps(head).encode()
    return struct.pack("<I", len(text)) + text + b"".join(parts)


def lines(resp):
    return [json.loads(x) for x in resp.body.decode().splitlines() if x]


@pytest.fixture(scope="module")
def adata():
    a = make_counts_adata()
    a.obsm["X_umap"] = np.random.default_rng(1).normal(size=(a.n_obs, 2)).astype(np.float32)
    return a


@pytest.fixture
def server(adata):
    with serving(AnnDataAdapter(adata)) as srv:
        yield srv


def credentials(srv):
    resp = srv.request("POST", "/_cellucid/viewers", {"Content-Length": "0"}, b"")
    assert resp.status == 200, resp
    return resp.json()


def post(srv, creds, data, **query):
    q = {"viewerId": creds["viewerId"], "viewerToken": creds["viewerToken"], **query}
    target = "/_cellucid/compare?" + "&".join(f"{k}={v}" for k, v in q.items())
    return srv.request("POST", target, {"Content-Type": "application/octet-stream"}, data)


@pytest.mark.parametrize("encoding", ["u32", "bitset"])
@pytest.mark.parametrize("method", ["wilcoxon", "t-test", "t-test_overestim_var"])
def test_streams_rows_then_the_python_table(server, adata, encoding, method):
    creds = credentials(server)
    group = np.flatnonzero(adata.obs["cluster"].to_numpy() == "c3")
    resp = post(server, creds, body(group, encoding=encoding, method=method, tieCorrect=True))
    assert resp.status == 200, resp
    assert resp.header("Content-Type") == "application/x-ndjson"
    msgs = lines(resp)
    assert msgs[0]["type"] == "start" and msgs[0]["groupSize"] == group.size
    assert msgs[0]["referenceSize"] == N - group.size and msgs[0]["nGenes"] == adata.n_vars
    assert "Benjamini-Hochberg" in msgs[0]["statistic"]
    rows = [m for m in msgs if m["type"] == "rows"]
    assert rows and rows[-1]["done"] == adata.n_vars
    assert sorted(g for r in rows for g in r["genes"]) == list(range(adata.n_vars))
    result = msgs[-1]
    assert result["type"] == "result"
    expected = cellucid.rank_genes(adata, group, method=method, tie_correct=True, quiet=True)
    assert result["names"] == list(expected["names"])
    for col in ("scores", "logfoldchanges"):
        np.testing.assert_array_equal(np.float32(result[col]), expected[col].to_numpy())
    for col in ("pvals", "pvals_adj", "pct_nz_group", "pct_nz_reference"):
        np.testing.assert_array_equal(result[col], expected[col].to_numpy())
    assert result["names"][0] == "G09"
    assert len(result["mean_group"]) == adata.n_vars


def test_reference_group_and_n_genes(server, adata):
    creds = credentials(server)
    cluster = adata.obs["cluster"].to_numpy()
    group, ref = np.flatnonzero(cluster == "c1"), np.flatnonzero(cluster == "c2")
    msgs = lines(post(server, creds, body(group, ref, nGenes=5)))
    result = msgs[-1]
    expected = cellucid.rank_genes(adata, group, ref, n_genes=5, quiet=True)
    assert result["names"] == list(expected["names"]) and len(result["genes"]) == 5
    assert msgs[0]["referenceSize"] == ref.size


def test_result_reaches_python_as_event_and_table(server, adata):
    channel = ViewerChannel(name="test")
    server.config.registry.add(channel)
    creds = {"viewerId": channel.viewer_id, "viewerToken": channel.token}
    group = np.flatnonzero(adata.obs["cluster"].to_numpy() == "c0")
    resp = post(server, creds, body(group))
    assert resp.status == 200
    deadline = time.monotonic() + 10
    while channel.state.last_event_type != "comparison" and time.monotonic() < deadline:
        time.sleep(0.02)
    event = channel.state.last_event
    assert event["group"] == {"label": "A", "size": group.size} and event["reference"] == "rest"
    stored = server.config.comparisons.latest(channel.viewer_id)
    assert stored.comparison_id == event["comparisonId"] == lines(resp)[0]["comparisonId"]
    frame = stored.comparison.to_frame()
    assert frame["names"].iloc[0] == "G00"
    channel.close()


@pytest.mark.parametrize(
    ("query", "status"),
    [({}, 400), ({"viewerId": "nope", "viewerToken": "x"}, 404)],
)
def test_credentials_are_checked_before_the_body(server, query, status):
    target = "/_cellucid/compare?" + "&".join(f"{k}={v}" for k, v in query.items())
    # announce a huge body and send none: an unauthenticated request must be refused at once
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.putrequest("POST", target)
        conn.putheader("Content-Length", str(200 << 20))
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status == status
        assert json.loads(resp.read())["status"] == "error"
    finally:
        conn.close()


def test_wrong_token_is_403(server):
    creds = credentials(server)
    creds["viewerToken"] = "wrong"
    assert post(server, creds, body([1, 2, 3])).status == 403


@pytest.mark.parametrize(
    ("data", "status", "match"),
    [
        (b"", 400, "too short"),
        (struct.pack("<I", 5) + b"{nope", 400, "not valid UTF-8 JSON"),
        (body([1, 2, 3], method="logreg"), 400, "method must be one of"),
        (body([1, 2, 3], [3, 4]), 400, "share 1 cells"),
        (body([1]), 400, "at least 2"),
        (body([1, 2, N + 3]), 400, ">= n_cells"),
        (body([1, 2], encoding="bitset", n=N + 8), 400, "a bitset of 420 cells"),
        (body([1, 2], layer="counts"), 400, "layer: null"),
        (body([1, 2]) + b"xx", 400, "bytes after the cell sets"),
        (body([1, 2], nGenes=0), 400, "nGenes"),
    ],
)
def test_bad_bodies_get_clear_errors(server, data, status, match):
    resp = post(server, credentials(server), data)
    assert resp.status == status, resp
    assert match in resp.json()["message"]


def test_body_size_limit(server):
    creds = credentials(server)
    big = b"\0" * (max_body_bytes(N) + 1)
    assert post(server, creds, big).status == 413


def test_export_folder_dataset(adata, tmp_path):
    cellucid.prepare(adata, tmp_path / "one", quiet=True)
    cellucid.prepare(adata, tmp_path / "two", quiet=True, var_quantization=8)
    with serving(ExportFolderSource(tmp_path)) as srv:
        creds = credentials(srv)
        group = np.flatnonzero(adata.obs["cluster"].to_numpy() == "c3")
        assert post(srv, creds, body(group)).status == 400  # two datasets: name one
        ids = [d["id"] for d in srv.get("/_cellucid/datasets").json()["datasets"]]
        for dataset_id in ids:
            msgs = lines(post(srv, creds, body(group), dataset=dataset_id))
            assert msgs[-1]["type"] == "result" and msgs[-1]["names"][0] == "G09"
        statistics = {lines(post(srv, creds, body(group), dataset=i))[0]["statistic"] for i in ids}
        assert any("approximate" in s for s in statistics)
        assert post(srv, creds, body(group), dataset="nope").status == 404


def test_page_viewers_are_bounded(server):
    pages = server.config.page_viewers
    pages.limit = 3
    made = [credentials(server) for _ in range(5)]
    assert len(pages) == 3
    registry = server.config.registry
    assert registry.get(made[0]["viewerId"]) is None
    assert registry.get(made[-1]["viewerId"]) is not None
    resp = request(
        server.port, "POST", "/_cellucid/viewers", {"Content-Length": "5000"}, b"x" * 5000
    )
    assert resp.status == 413


def test_comm_transport_answers_the_same_ndjson_in_one_piece(server, adata):
    """The widget's comm transport (no streaming): the same lines as HTTP, errors as JSON."""
    from cellucid.comm_transport import CommFiles

    files = CommFiles(server.config)
    creds = credentials(server)
    group = np.flatnonzero(adata.obs["cluster"].to_numpy() == "c3")
    query = f"viewerId={creds['viewerId']}&viewerToken={creds['viewerToken']}"
    reply = files.answer("POST", f"_cellucid/compare?{query}", {}, body(group, nGenes=3))
    assert reply.status == 200 and reply.headers["content-type"] == "application/x-ndjson"
    msgs = [json.loads(x) for x in reply.body.decode().splitlines()]
    http = lines(post(server, creds, body(group, nGenes=3)))
    assert msgs[-1] == http[-1] and msgs[-1]["names"][0] == "G09"
    assert [m["type"] for m in msgs] == [m["type"] for m in http]
    bad = files.answer("POST", "_cellucid/compare?viewerId=x&viewerToken=y", {}, body(group))
    assert bad.status == 404 and json.loads(bad.body)["status"] == "error"
    wrong = files.answer("POST", f"_cellucid/compare?{query}", {}, body([1]))
    assert wrong.status == 400 and "at least 2" in json.loads(wrong.body)["message"]
    assert files.answer("GET", f"_cellucid/compare?{query}", {}, b"").status == 405
