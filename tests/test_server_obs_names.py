"""GET /_cellucid/obs_names: cell names for the hover tooltip (server/PROTOCOL.md)."""

from __future__ import annotations

import struct
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest

from _exports import write_dataset
from _server import assert_error, serving
from cellucid.comm_transport import CommFiles
from cellucid.server.obs_names import MAX_BLOCK, MAX_NAME_BYTES, decode_block, encode_block
from cellucid.sources.anndata import AnnDataAdapter
from cellucid.sources.export_folder import ExportFolderSource

N = 70_000  # more than one block


@pytest.fixture(scope="module")
def names() -> list[str]:
    out = [f"AAAC{i:06d}-1" for i in range(N)]
    out[3] = "Zelle-Ä-😀"  # multi-byte UTF-8
    out[4] = "x" * 300 + "é"  # longer than MAX_NAME_BYTES
    return out


@pytest.fixture(scope="module")
def server(names):
    adata = anndata.AnnData(obs=pd.DataFrame(index=names))
    adata.obsm["X_umap"] = np.random.default_rng(0).normal(size=(N, 2)).astype(np.float32)
    with serving(AnnDataAdapter(adata)) as srv:
        yield srv


def test_first_block_is_binary_and_names_every_cell(server, names):
    resp = server.get("/_cellucid/obs_names")
    assert resp.status == 200, resp
    assert resp.header("Content-Type") == "application/octet-stream"
    assert resp.header("Cache-Control") == "no-store"
    start, got = decode_block(resp.body)
    assert start == 0 and len(got) == MAX_BLOCK
    assert got[:4] == names[:4]
    assert got[5:] == names[5:MAX_BLOCK]
    # the long name is cut at a character boundary, within the byte budget
    assert names[4].startswith(got[4]) and len(got[4].encode()) <= MAX_NAME_BYTES
    # layout: start, count, count + 1 offsets, then exactly the names' bytes
    count = struct.unpack_from("<I", resp.body, 4)[0]
    offsets = np.frombuffer(resp.body, "<u4", count + 1, 8)
    assert offsets[0] == 0 and np.all(np.diff(offsets.astype(np.int64)) >= 0)
    assert len(resp.body) == 8 + 4 * (count + 1) + int(offsets[-1])


def test_a_block_in_the_middle_and_the_short_last_block(server, names):
    start, got = decode_block(server.get("/_cellucid/obs_names?start=1000&count=10").body)
    assert (start, got) == (1000, names[1000:1010])
    resp = server.get(f"/_cellucid/obs_names?start={MAX_BLOCK}")
    start, got = decode_block(resp.body)
    assert start == MAX_BLOCK and got == names[MAX_BLOCK:]
    dataset = server.get("/_cellucid/datasets").json()["datasets"][0]["id"]
    ok = server.get(f"/_cellucid/obs_names?dataset={dataset}&start={N - 1}&count=1")
    assert decode_block(ok.body) == (N - 1, [names[-1]])


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("start=-1", 400),
        (f"start={N}", 400),
        ("start=x", 400),
        ("count=0", 400),
        (f"count={MAX_BLOCK + 1}", 400),
        ("dataset=nope", 404),
    ],
)
def test_bad_queries_are_json_errors(server, query, status):
    assert_error(server.get(f"/_cellucid/obs_names?{query}"), status)


def test_head_and_other_methods(server):
    head = server.head("/_cellucid/obs_names?count=5")
    assert head.status == 200 and head.body == b""
    resp = server.request("POST", "/_cellucid/obs_names", {"Content-Length": "0"}, b"")
    assert resp.status == 405


def test_an_export_folder_has_no_names(tmp_path: Path):
    write_dataset(tmp_path / "ds", dataset_id="ds", n=30)
    with serving(ExportFolderSource(tmp_path / "ds")) as srv:
        message = assert_error(srv.get("/_cellucid/obs_names"), 404)
        assert "no cell names" in message
        # the comm transport answers the same
        reply = CommFiles(srv.config).answer("GET", "_cellucid/obs_names", {}, b"")
        assert reply.status == 404


def test_comm_transport_serves_the_same_bytes(server):
    files = CommFiles(server.config)
    reply = files.answer("GET", "_cellucid/obs_names?start=2&count=3", {}, b"")
    assert reply.status == 200
    assert reply.body == server.get("/_cellucid/obs_names?start=2&count=3").body
    assert files.answer("POST", "_cellucid/obs_names", {}, b"").status == 405


def test_encode_block_round_trip():
    names = ["a", "", "ß", "漢字"]
    assert decode_block(encode_block(names, 0, 4)) == (0, names)
    assert decode_block(encode_block(pd.Index(names), 1, 2)) == (1, ["", "ß"])
