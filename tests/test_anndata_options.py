"""The AnnData options of the entry points that view an AnnData (sources/options.py): one typed
definition that signatures show, kept equal to what the adapter takes, and a misspelt option
refused where it is given with the closest name."""

from __future__ import annotations

import inspect

import anndata as ad
import numpy as np
import pytest

import cellucid
from cellucid.sources.anndata import AnnDataAdapter
from cellucid.sources.options import OPTION_NAMES, AnnDataOptions

ENTRY_POINTS = [
    cellucid.show_anndata,
    cellucid.serve_anndata,
    cellucid.AnnDataServer,
    cellucid.AnnDataViewer,
    cellucid.CellucidWidget,
]


def _public(func) -> set[str]:
    return {
        name
        for name, p in inspect.signature(func).parameters.items()
        if not name.startswith("_")
        and name not in ("self", "cls", "adata", "path")
        and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }


def test_the_options_are_exactly_what_the_adapter_takes() -> None:
    taken = _public(AnnDataAdapter.__init__) | _public(AnnDataAdapter.from_file)
    assert set(OPTION_NAMES) == taken
    assert set(AnnDataOptions.__annotations__) == taken


@pytest.mark.parametrize("func", ENTRY_POINTS, ids=lambda f: f.__name__)
def test_signatures_show_the_typed_options(func) -> None:
    extra = [
        p
        for p in inspect.signature(func).parameters.values()
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
    assert len(extra) == 1 and extra[0].kind == extra[0].VAR_KEYWORD
    assert str(extra[0].annotation) == "Unpack[AnnDataOptions]"


@pytest.fixture
def small(tmp_path):
    adata = ad.AnnData(np.ones((30, 3), np.float32))
    adata.obsm["X_umap"] = np.random.default_rng(0).random((30, 2)).astype(np.float32)
    path = tmp_path / "small.h5ad"
    adata.write_h5ad(path)
    return adata, path


@pytest.mark.parametrize("kind", ["memory", "path"])
def test_a_misspelt_option_names_the_closest_one(small, kind) -> None:
    adata, path = small
    data = adata if kind == "memory" else path
    with pytest.raises(
        TypeError, match=r"unknown AnnData option 'latnet_key' \(did you mean 'latent_key'\?\)"
    ):
        cellucid.AnnDataServer(data, port=0, quiet=True, latnet_key="X_pca")
    with pytest.raises(TypeError, match=r"'datset_name' \(did you mean 'dataset_name'\?\)"):
        cellucid.CellucidWidget(data, port=0, datset_name="x")
    with pytest.raises(TypeError, match="the options are: backed, cache_columns"):
        cellucid.serve_anndata(data, port=0, blocking=False, zzz=1)


def test_the_viewer_takes_transport_and_session_by_name(small) -> None:
    adata, _ = small
    viewer = cellucid.AnnDataViewer(adata, port=0, transport="comm", dataset_name="named")
    try:
        assert viewer._server.adapter.dataset.info.name == "named"
    finally:
        viewer.close()
