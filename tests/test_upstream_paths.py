"""Upstream cellucid's import paths and public names work here (drop-in for its users)."""

from __future__ import annotations

import importlib
import inspect
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest

import cellucid
from _data import make_adata
from cellucid._compat import UpstreamOnlyError

# module -> names its users call (upstream cellucid 0.0.9)
UPSTREAM = {
    "jupyter": [
        "show",
        "show_anndata",
        "CellucidViewer",
        "AnnDataViewer",
        "BaseViewer",
        "ViewerState",
        "cleanup_all",
        "CELLUCID_WEB_URL",
        "DEFAULT_PORT",
        "CellucidServer",
        "register_event_callback",
        "unregister_event_callback",
        "register_session_bundle_request",
    ],
    "server": ["serve", "CellucidServer", "ensure_port_available", "DEFAULT_HOST", "DEFAULT_PORT"],
    "anndata_server": ["serve_anndata", "AnnDataServer", "AnnDataAdapter", "DEFAULT_PORT"],
    "anndata_adapter": ["AnnDataAdapter"],
    "prepare_data": [
        "prepare",
        "generate_datasets_manifest",
        "DEFAULT_EXPORT_DIR",
        "DEFAULT_OBS_DIRNAME",
        "DEFAULT_VAR_DIRNAME",
        "DEFAULT_CONNECTIVITY_DIRNAME",
        "MANIFEST_FORMAT_VERSION",
    ],
    "session_bundle": [
        "CellucidSessionBundle",
        "SessionChunkRef",
        "SESSION_BUNDLE_MAGIC",
        "MAX_MANIFEST_BYTES",
        "DEFAULT_MAX_UNCOMPRESSED_CHUNK_BYTES",
        "U32_BYTES",
    ],
    "session_codecs": ["decode_delta_uvarint", "decode_user_defined_codes", "decode_uvarint"],
    "anndata_session": [
        "apply_cellucid_session_to_anndata",
        "ApplySummary",
        "CellucidSessionBundle",
        "ColumnConflictPolicy",
        "DatasetMismatchPolicy",
    ],
    "vector_fields": ["compute_transition_drift", "add_transition_drift_to_obsm"],
    "web_cache": ["clear_web_cache", "get_web_cache_dir"],
}


@pytest.mark.parametrize("module", sorted(UPSTREAM))
def test_every_upstream_path_imports_with_its_names(module):
    mod = importlib.import_module(f"cellucid.{module}")
    for name in UPSTREAM[module]:
        assert getattr(mod, name) is not None, f"cellucid.{module}.{name}"
    assert (mod.__doc__ and "upstream" in mod.__doc__.lower()) or module in ("vector_fields",)


def test_same_objects_as_ours():
    from cellucid import anndata_server, jupyter, prepare_data, server, session_bundle

    assert jupyter.show is cellucid.show and jupyter.AnnDataViewer is cellucid.AnnDataViewer
    assert jupyter.BaseViewer is cellucid.CellucidWidget
    assert server.serve is cellucid.serve and server.CellucidServer is cellucid.CellucidServer
    assert anndata_server.serve_anndata is cellucid.serve_anndata
    assert prepare_data.prepare is cellucid.prepare
    assert session_bundle.CellucidSessionBundle is cellucid.CellucidSessionBundle
    assert session_bundle.SESSION_BUNDLE_MAGIC == b"CELLUCID_SESSION\n"
    assert (
        prepare_data.DEFAULT_OBS_DIRNAME == "obs"
        and prepare_data.MANIFEST_FORMAT_VERSION == "compact_v1"
    )


@pytest.mark.parametrize(
    ("module", "name", "advice"),
    [
        ("jupyter", "HookRegistry", "viewer.on_message"),
        ("server", "CORSRequestHandler", "aiohttp"),
        ("anndata_server", "AnnDataRequestHandler", "serve_anndata"),
    ],
)
def test_names_without_meaning_say_what_to_use(module, name, advice):
    mod = importlib.import_module(f"cellucid.{module}")
    with pytest.raises(UpstreamOnlyError, match=advice):
        getattr(mod, name)
    with pytest.raises(AttributeError):  # hasattr() and getattr(..., default) keep working
        getattr(mod, name)
    assert getattr(mod, name, None) is None
    with pytest.raises(AttributeError, match="has no attribute 'nonsense'"):
        mod.nonsense  # noqa: B018


@pytest.mark.parametrize(
    "name",
    ["register_event_callback", "unregister_event_callback", "register_session_bundle_request"],
)
def test_global_registries_raise_with_advice(name):
    from cellucid import jupyter

    func = getattr(jupyter, name)
    assert "not available here" in func.__doc__
    with pytest.raises(NotImplementedError, match=r"has no equivalent here: .*viewer"):
        func("viewer-id", lambda event: None)


def test_session_codecs_match_ours():
    from cellucid.session import encode_cell_list, encode_user_codes
    from cellucid.session_codecs import decode_delta_uvarint, decode_user_defined_codes

    data = encode_cell_list([0, 5, 300])
    assert decode_delta_uvarint(data).tolist() == [0, 5, 300]
    assert decode_delta_uvarint(data, max_count=3, max_index=300).tolist() == [0, 5, 300]
    with pytest.raises(ValueError, match="more than 2"):
        decode_delta_uvarint(data, max_count=2)
    with pytest.raises(ValueError, match="exceeds 299"):
        decode_delta_uvarint(data, max_index=299)
    assert decode_user_defined_codes(encode_user_codes([1, 1, 2])).tolist() == [1, 1, 2]


def test_ensure_port_available_moves_past_a_busy_port(capsys):
    from cellucid.server import ensure_port_available

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        free = ensure_port_available("127.0.0.1", port)
        assert free != port
        assert f"port {port} is busy" in capsys.readouterr().err
    assert ensure_port_available("127.0.0.1", free, quiet=True) == free


def test_web_cache_is_a_no_op():
    from cellucid.web_cache import clear_web_cache, get_web_cache_dir

    assert (get_web_cache_dir() / "index.html").is_file()
    assert clear_web_cache() == get_web_cache_dir()


def test_viewer_data_and_data_dir_and_cleanup_all(tmp_path):
    from cellucid.jupyter import cleanup_all

    adata = make_adata(60, 4)
    export = cellucid.prepare(adata, tmp_path / "export", quiet=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = cellucid.AnnDataViewer(adata, port=0)
        e = cellucid.CellucidViewer(export, port=0)
    assert a.data is adata
    assert isinstance(e.data_dir, Path) and e.data_dir == Path(export)
    assert a.is_running and e.is_running
    assert cleanup_all() >= 2
    assert not a.is_running and not e.is_running
    assert cleanup_all() == 0


def test_prepare_data_prepare_keeps_upstream_keyword_call(tmp_path):
    """A notebook written for upstream: keyword arrays, re-run without force."""
    from cellucid.prepare_data import prepare

    adata = make_adata(50, 3)
    kwargs = {
        "latent_space": np.asarray(adata.obsm["X_pca"]) if "X_pca" in adata.obsm else None,
        "obs": adata.obs,
        "X_umap_2d": np.asarray(adata.obsm["X_umap"])[:, :2],
        "out_dir": tmp_path / "up",
        "quiet": True,
    }
    first = prepare(**kwargs)
    with pytest.warns(UserWarning, match="skipping"):
        assert prepare(**kwargs) == first
    assert "out_dir" in inspect.signature(prepare).parameters
