"""prepare() and rank_genes on an AnnData whose X is a Dask array (issue 12).

The Dask array comes from anndata's lazy readers (``read_elem_lazy``, ``read_lazy``), its gene
blocks are computed on the active scheduler (Dask's threads, or a ``LocalCluster`` with two
worker processes started here), and the export equals the in-memory export byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import cellucid
from _data import tree_bytes

pytest.importorskip("dask.array")
from anndata.experimental import read_elem_lazy
from anndata.io import read_elem

N, G = 1500, 45
CHUNK = 400  # rows per Dask chunk: four row chunks


def _adata(dense: bool = False) -> ad.AnnData:
    rng = np.random.default_rng(11)
    x = sp.random(N, G, density=0.2, format="csr", dtype=np.float32, random_state=11)
    x.data = np.round(x.data * 10, 1)
    obs = pd.DataFrame(
        {
            "cluster": pd.Categorical(rng.choice(["a", "b", "c"], N)),
            "score": rng.random(N),
        },
        index=[f"c{i}" for i in range(N)],
    )
    a = ad.AnnData(
        X=x.toarray() if dense else x,
        obs=obs,
        var=pd.DataFrame(index=[f"g{i}" for i in range(G)]),
    )
    a.obsm["X_umap"] = rng.normal(size=(N, 2))
    a.obsm["X_pca"] = rng.normal(size=(N, 6))
    a.layers["counts"] = sp.csr_matrix(np.floor(a.X if dense else x.toarray()))
    return a


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("dask")
    out: dict[str, object] = {"root": root}
    for kind, dense in (("sparse", False), ("dense", True)):
        a = _adata(dense)
        a.write_h5ad(root / f"{kind}.h5ad")
        out[kind] = a
        out[f"{kind}-export"] = cellucid.prepare(a, root / f"{kind}-memory", quiet=True)
    return out


def _lazy(path: Path, layer: str | None = None) -> ad.AnnData:
    """An AnnData whose X (or layer) is ``read_elem_lazy``'s Dask array, the rest in memory."""
    f = h5py.File(path, "r")
    element = f["X"] if layer is None else f["layers"][layer]
    x = read_elem_lazy(element, chunks=(CHUNK, G))
    return ad.AnnData(
        X=x,
        obs=read_elem(f["obs"]),
        var=read_elem(f["var"]),
        obsm={k: read_elem(f["obsm"][k]) for k in f["obsm"]},
    )


def _same_export(got: Path, want: Path) -> None:
    a, b = tree_bytes(got), tree_bytes(want)
    assert sorted(a) == sorted(b)
    different = [k for k in a if a[k] != b[k] and k != "dataset_identity.json"]
    assert different == [], different


@pytest.mark.parametrize("kind", ["sparse", "dense"])
def test_prepare_from_a_dask_x_equals_the_in_memory_export(data, tmp_path, kind):
    lazy = _lazy(data["root"] / f"{kind}.h5ad")
    assert type(lazy.X).__module__.startswith("dask")
    # small blocks: many blocks, each a pass over the four row chunks
    out = cellucid.prepare(lazy, tmp_path / "out", quiet=True, block_values=2000)
    _same_export(out, data[f"{kind}-export"])


def test_prepare_from_read_lazy_equals_the_in_memory_export(data, tmp_path):
    pytest.importorskip("xarray")
    from anndata.experimental import read_lazy

    lazy = read_lazy(data["root"] / "sparse.h5ad")
    out = cellucid.prepare(lazy, tmp_path / "out", quiet=True)
    _same_export(out, data["sparse-export"])


def test_a_dask_layer_is_exported_like_the_in_memory_one(data, tmp_path):
    a = data["sparse"]
    want = cellucid.prepare(a, tmp_path / "memory", layer="counts", quiet=True)
    lazy = _lazy(data["root"] / "sparse.h5ad", layer="counts")
    got = cellucid.prepare(lazy, tmp_path / "dask", quiet=True)
    _same_export(got, want)


def test_blocks_are_bounded_by_their_stored_values(data):
    from cellucid.storage.dask import DaskGenes

    lazy = _lazy(data["root"] / "sparse.h5ad")
    genes = DaskGenes(lazy.X)
    counts = genes.gene_counts()
    assert counts.tolist() == np.diff(data["sparse"].X.tocsc().indptr).tolist()
    columns = np.arange(G)
    budget = 3 * int(counts.max())
    sizes = [int(counts[columns[pos]].sum()) for pos in genes._batches(columns, budget)]
    assert max(sizes) <= budget and sum(sizes) == counts.sum()


def test_rank_genes_on_dask_data_equals_in_memory(data):
    a = data["sparse"]
    lazy = _lazy(data["root"] / "sparse.h5ad")
    for method in ("wilcoxon", "t-test"):
        want = cellucid.rank_genes(a, ("cluster", "b"), method=method, quiet=True)
        got = cellucid.rank_genes(lazy, ("cluster", "b"), method=method, quiet=True)
        pd.testing.assert_frame_equal(got, want)


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=40,
        ) as local,
        distributed.Client(local) as client,
    ):
        yield client


def test_prepare_and_rank_genes_run_on_a_local_cluster(data, tmp_path, cluster):
    from distributed import get_task_stream

    lazy = _lazy(data["root"] / "sparse.h5ad")
    with get_task_stream(cluster) as stream:
        out = cellucid.prepare(lazy, tmp_path / "cluster", quiet=True, block_values=2000)
    _same_export(out, data["sparse-export"])
    workers = {task["worker"] for task in stream.data}
    assert len(workers) == 2, "both worker processes computed gene blocks"
    want = cellucid.rank_genes(data["sparse"], ("cluster", "a"), quiet=True)
    got = cellucid.rank_genes(lazy, ("cluster", "a"), quiet=True)
    pd.testing.assert_frame_equal(got, want)


def test_a_dask_latent_space_is_read_in_row_chunks_never_whole(data, tmp_path, monkeypatch):
    """At atlas scale ``X_pca`` alone is gigabytes: prepare() reads a Dask latent space a row
    chunk at a time for the outlier quantiles, and the export is the in-memory one."""
    import dask.array as da

    from cellucid.export import encode

    a = data["sparse"]
    lazy = _lazy(data["root"] / "sparse.h5ad")
    lazy.obsm["X_pca"] = da.from_array(np.asarray(a.obsm["X_pca"]), chunks=(CHUNK, 6))
    whole = encode.as_latent

    def refuse_dask(latent, n):
        assert not type(latent).__module__.startswith("dask"), "the latent was loaded whole"
        return whole(latent, n)

    monkeypatch.setattr(encode, "as_latent", refuse_dask)
    reads: list[int] = []
    real = encode.compute
    monkeypatch.setattr(encode, "compute", lambda x: reads.append(x.shape[0]) or real(x))
    out = cellucid.prepare(lazy, tmp_path / "out", quiet=True)
    _same_export(out, data["sparse-export"])
    assert reads and max(reads) <= max(CHUNK, 65536) and sum(reads) >= N
