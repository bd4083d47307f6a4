"""cellucid.rank_genes against scanpy.tl.rank_genes_groups on the same cells.

Every data form (in-memory CSR and dense, backed .h5ad through the column cache and its rank
index, .zarr, export folder) and every method must give scanpy's numbers to float precision.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp

import cellucid
from cellucid.analysis.rank_index import FILE as RANK_FILE

N, G = 420, 48
#: the columns of scanpy's rank_genes_groups_df for one group with pts (the contract)
SCANPY_COLUMNS = [
    "names",
    "scores",
    "logfoldchanges",
    "pvals",
    "pvals_adj",
    "pct_nz_group",
    "pct_nz_reference",
]
FLOAT_COLS = ["scores", "logfoldchanges"]
EXACT_COLS = ["pvals", "pvals_adj", "pct_nz_group", "pct_nz_reference"]
CASES = [
    ("wilcoxon", False),
    ("wilcoxon", True),
    ("t-test", False),
    ("t-test_overestim_var", False),
]


def make_counts_adata(seed: int = 0, n: int = N, g: int = G) -> ad.AnnData:
    """log1p-normalised sparse data with clusters, ties (values rounded), an all-zero gene,
    a gene expressed in every cell and marker genes per cluster."""
    r = np.random.default_rng(seed)
    cluster = r.integers(0, 6, n)
    counts = r.poisson(0.4, size=(n, g)).astype(np.float32)
    for c in range(6):  # gene c*3 marks cluster c
        counts[cluster == c, c * 3] += r.poisson(4, size=int((cluster == c).sum()))
    counts[:, 5] = 0  # all-zero gene
    counts[:, 6] += 1  # expressed everywhere
    lib = counts.sum(1, keepdims=True)
    lib[lib == 0] = 1
    x = np.log1p(np.round(counts / lib * 100, 1)).astype(np.float32)
    obs = pd.DataFrame(
        {"cluster": pd.Categorical([f"c{i}" for i in cluster]), "n": r.integers(0, 9, n)},
        index=[f"cell{i}" for i in range(n)],
    )
    var = pd.DataFrame(index=[f"G{j:02d}" for j in range(g)])
    return ad.AnnData(X=sp.csr_matrix(x), obs=obs, var=var)


def scanpy_table(adata, group_mask, reference_mask, method, tie_correct):
    """scanpy's table for group vs reference (None: rest), via a helper obs column."""
    b = ad.AnnData(X=adata.X.copy(), obs=adata.obs[[]].copy(), var=adata.var[[]].copy())
    labels = np.full(adata.n_obs, "other", dtype=object)
    labels[group_mask] = "A"
    if reference_mask is not None:
        labels[reference_mask] = "B"
    b.obs["cmp"] = pd.Categorical(labels)
    groups = ["A"] if reference_mask is None else ["A", "B"]
    sc.tl.rank_genes_groups(
        b,
        "cmp",
        groups=groups,
        reference="rest" if reference_mask is None else "B",
        method=method,
        tie_correct=tie_correct,
        use_raw=False,
        pts=True,
    )
    return sc.get.rank_genes_groups_df(b, "A")


def assert_matches(ours: pd.DataFrame, theirs: pd.DataFrame, *, rtol: float = 1e-6) -> None:
    assert list(ours.columns) == SCANPY_COLUMNS
    assert len(ours) == len(theirs)
    assert ours["scores"].dtype == np.float32 and ours["pvals"].dtype == np.float64
    assert np.all(np.diff(ours["scores"].to_numpy(np.float64)) <= 0), "not sorted by score"
    m = ours.merge(theirs, on="names", suffixes=("", "_sc"), validate="one_to_one")
    assert len(m) == len(ours)
    for col in FLOAT_COLS + EXACT_COLS:
        if col + "_sc" not in m:  # scanpy has no pct_nz_reference against a reference group
            continue
        np.testing.assert_allclose(
            m[col].to_numpy(np.float64),
            m[col + "_sc"].to_numpy(np.float64),
            rtol=rtol,
            atol=1e-300,
            err_msg=col,
        )


@pytest.fixture(scope="module")
def adata() -> ad.AnnData:
    return make_counts_adata()


def masks(adata):
    cluster = adata.obs["cluster"].to_numpy()
    big = cluster == "c2"
    tiny = np.zeros(adata.n_obs, bool)
    tiny[[3, 40, 41]] = True
    ref = cluster == "c4"
    return {
        "cluster": (big, None),
        "tiny": (tiny, None),
        "vs_group": (big, ref),
        "tiny_vs": (tiny, ref & ~tiny),
    }


@pytest.mark.parametrize(("method", "tie_correct"), CASES)
@pytest.mark.parametrize("case", ["cluster", "tiny", "vs_group", "tiny_vs"])
def test_in_memory_sparse_matches_scanpy(adata, method, tie_correct, case):
    group, ref = masks(adata)[case]
    ours = cellucid.rank_genes(
        adata,
        group,
        "rest" if ref is None else ref,
        method=method,
        tie_correct=tie_correct,
        quiet=True,
    )
    assert_matches(ours, scanpy_table(adata, group, ref, method, tie_correct))


@pytest.mark.parametrize(("method", "tie_correct"), CASES)
def test_dense_with_negative_values_matches_scanpy(adata, method, tie_correct):
    """Scaled data: negatives, zeros in the middle of the order, dense storage."""
    dense = adata.copy()
    x = adata.X.toarray()
    x = (x - x.mean(0)) / (x.std(0) + 1)
    x[:, 7] = np.round(x[:, 7], 1)  # ties among negatives and positives
    x[x.__abs__() < 0.05] = 0
    dense.X = x.astype(np.float32)
    for case in ("cluster", "vs_group"):
        group, ref = masks(adata)[case]
        ours = cellucid.rank_genes(
            dense,
            group,
            "rest" if ref is None else ref,
            method=method,
            tie_correct=tie_correct,
            quiet=True,
        )
        assert_matches(ours, scanpy_table(dense, group, ref, method, tie_correct))


def test_group_forms_are_equivalent(adata):
    group = adata.obs["cluster"].to_numpy() == "c1"
    by_mask = cellucid.rank_genes(adata, group, quiet=True)
    by_index = cellucid.rank_genes(adata, np.flatnonzero(group).astype(np.uint32), quiet=True)
    by_key = cellucid.rank_genes(adata, ("cluster", "c1"), quiet=True)
    by_list = cellucid.rank_genes(adata, ("cluster", ["c1"]), quiet=True)
    by_series = cellucid.rank_genes(adata, adata.obs["cluster"] == "c1", quiet=True)
    for other in (by_index, by_key, by_list, by_series):
        pd.testing.assert_frame_equal(by_mask, other)
    two = cellucid.rank_genes(adata, ("cluster", ["c1", "c2"]), ("cluster", "c3"), quiet=True)
    assert two.attrs["cellucid"]["n_group"] == int(adata.obs["cluster"].isin(["c1", "c2"]).sum())
    assert two.attrs["cellucid"]["reference"] == "cluster: c3"


def test_marker_gene_on_top_and_n_genes(adata):
    table = cellucid.rank_genes(adata, ("cluster", "c3"), n_genes=5, quiet=True)
    assert len(table) == 5
    assert table["names"].iloc[0] == "G09"  # gene 3*3 marks c3
    assert table["logfoldchanges"].iloc[0] > 1


@pytest.fixture(scope="module")
def h5ad_path(adata, tmp_path_factory):
    path = tmp_path_factory.mktemp("rank") / "data.h5ad"
    adata.write_h5ad(path)
    return path


@pytest.mark.parametrize(("method", "tie_correct"), CASES)
def test_backed_h5ad_uses_column_cache_and_matches(
    adata, h5ad_path, tmp_path, monkeypatch, method, tie_correct
):
    monkeypatch.setenv("CELLUCID_CACHE_DIR", str(tmp_path / "cache"))
    group, ref = masks(adata)["cluster"]
    ours_path = cellucid.rank_genes(
        h5ad_path, group, method=method, tie_correct=tie_correct, quiet=True
    )
    caches = list((tmp_path / "cache" / "columns").iterdir())
    cache_dirs = [c for c in caches if c.is_dir()]
    assert len(cache_dirs) == 1, caches  # the server's column cache, built once
    assert (cache_dirs[0] / RANK_FILE).is_file() == (method == "wilcoxon")
    backed = ad.read_h5ad(h5ad_path, backed="r")
    try:
        ours_backed = cellucid.rank_genes(
            backed, group, method=method, tie_correct=tie_correct, quiet=True
        )
    finally:
        backed.file.close()
    theirs = scanpy_table(adata, group, ref, method, tie_correct)
    assert_matches(ours_path, theirs)
    pd.testing.assert_frame_equal(ours_path, ours_backed)
    # and against a reference group, from the warm cache
    group, ref = masks(adata)["tiny_vs"]
    warm = cellucid.rank_genes(
        h5ad_path, group, ref, method=method, tie_correct=tie_correct, quiet=True
    )
    assert_matches(warm, scanpy_table(adata, group, ref, method, tie_correct))


def test_zarr_store_and_obs_keys(adata, tmp_path, monkeypatch):
    monkeypatch.setenv("CELLUCID_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "data.zarr"
    adata.write_zarr(path)
    ours = cellucid.rank_genes(path, ("cluster", "c2"), ("cluster", ["c4", "c5"]), quiet=True)
    group = adata.obs["cluster"].to_numpy() == "c2"
    ref = adata.obs["cluster"].isin(["c4", "c5"]).to_numpy()
    assert_matches(ours, scanpy_table(adata, group, ref, "wilcoxon", False))


def test_export_folder_matches_unquantised(adata, tmp_path):
    out = tmp_path / "export"
    e = adata.copy()
    e.obsm["X_umap"] = np.random.default_rng(1).normal(size=(e.n_obs, 2)).astype(np.float32)
    cellucid.prepare(e, out, quiet=True)
    group = adata.obs["cluster"].to_numpy() == "c0"
    ours = cellucid.rank_genes(out, ("cluster", "c0"), method="t-test", quiet=True)
    assert ours.attrs["cellucid"]["quantized"] is False
    assert_matches(ours, scanpy_table(adata, group, None, "t-test", False))
    quantised = tmp_path / "q"
    cellucid.prepare(e, quantised, var_quantization=8, quiet=True)
    approx = cellucid.rank_genes(quantised, ("cluster", "c0"), quiet=True)
    assert approx.attrs["cellucid"]["quantized"] is True
    assert "approximate" in approx.attrs["cellucid"]["statistic"]
    assert approx["names"].iloc[0] == ours["names"].iloc[0]


def test_log1p_base_is_respected(adata):
    b = adata.copy()
    b.uns["log1p"] = {"base": 2.0}
    group = b.obs["cluster"].to_numpy() == "c1"
    ours = cellucid.rank_genes(b, group, quiet=True)
    bb = b.copy()
    bb.obs["cmp"] = pd.Categorical(np.where(group, "A", "other"))
    sc.tl.rank_genes_groups(bb, "cmp", groups=["A"], use_raw=False, pts=True, method="wilcoxon")
    assert_matches(ours, sc.get.rank_genes_groups_df(bb, "A"))


def test_layer(adata):
    b = adata.copy()
    b.layers["scaled"] = b.X.toarray() * 2
    group = b.obs["cluster"].to_numpy() == "c5"
    ours = cellucid.rank_genes(b, group, layer="scaled", method="t-test", quiet=True)
    c = b.copy()
    c.X = c.layers["scaled"]
    assert_matches(ours, scanpy_table(c, group, None, "t-test", False))


@pytest.mark.parametrize(
    ("group", "reference", "error", "match"),
    [
        (np.zeros(N, bool), "rest", ValueError, "group is empty"),
        (np.ones(N, bool), "rest", ValueError, "rest.* is empty"),
        ([7], "rest", ValueError, "at least 2"),
        ([1, 2, 3], [3, 4, 5], ValueError, "share 1 cells"),
        (("nope", "c1"), "rest", KeyError, "no column 'nope'"),
        (("cluster", "c9"), "rest", ValueError, "'c9' is not a category.*'c0'"),
        ([0, N + 5], "rest", IndexError, "out of range"),
        (np.ones(N - 1, bool), "rest", ValueError, "one value per cell"),
        ("c1", "rest", TypeError, r"\(obs_key, 'c1'\)"),
        ([1.5, 2.5], "rest", TypeError, "boolean mask, integer cell indices"),
    ],
)
def test_bad_groups_say_what_to_do(adata, group, reference, error, match):
    with pytest.raises(error, match=match):
        cellucid.rank_genes(adata, group, reference, quiet=True)


def test_bad_arguments(adata, tmp_path):
    group = adata.obs["cluster"].to_numpy() == "c1"
    with pytest.raises(ValueError, match="method 'logreg' is not supported"):
        cellucid.rank_genes(adata, group, method="logreg", quiet=True)
    with pytest.raises(KeyError, match="layer 'counts' not found"):
        cellucid.rank_genes(adata, group, layer="counts", quiet=True)
    with pytest.raises(ValueError, match="n_genes must be a positive integer"):
        cellucid.rank_genes(adata, group, n_genes=0, quiet=True)
    with pytest.raises(TypeError, match="cannot compare genes of a dict"):
        cellucid.rank_genes({}, group, quiet=True)
    with pytest.raises(FileNotFoundError):
        cellucid.rank_genes(tmp_path / "missing.h5ad", group, quiet=True)
    nan = adata.copy()
    x = nan.X.toarray()
    x[5, 11] = np.nan
    nan.X = sp.csr_matrix(x)
    with pytest.raises(ValueError, match="gene 'G11' has 1 NaN values"):
        cellucid.rank_genes(nan, group, quiet=True)


def test_signature_is_public():
    import inspect

    params = inspect.signature(cellucid.rank_genes).parameters
    assert list(params) == [
        "data",
        "group",
        "reference",
        "method",
        "layer",
        "tie_correct",
        "n_genes",
        "quiet",
        "storage_options",
    ]
    assert params["storage_options"].kind is inspect.Parameter.KEYWORD_ONLY
    assert "Returns" in cellucid.rank_genes.__doc__


def test_the_public_name_stays_the_function_after_the_server_imports_the_engine():
    import cellucid.analysis.ranking  # what the server and the widget import
    import cellucid.server.compare

    assert callable(cellucid.rank_genes) and cellucid.rank_genes.__name__ == "rank_genes"
    from cellucid.analysis import rank_genes

    assert rank_genes is cellucid.analysis.ranking.rank_genes


def test_the_table_layout_is_scanpys():
    from cellucid.analysis.table import COLUMNS

    assert COLUMNS == SCANPY_COLUMNS


def test_warm_comparisons_leave_no_file_open(adata, h5ad_path, tmp_path, monkeypatch):
    import os

    monkeypatch.setenv("CELLUCID_CACHE_DIR", str(tmp_path / "cache"))
    group = adata.obs["cluster"].to_numpy() == "c1"
    cellucid.rank_genes(h5ad_path, group, quiet=True)  # builds the cache and the rank index
    fds = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        cellucid.rank_genes(h5ad_path, group, quiet=True)
    assert len(os.listdir("/proc/self/fd")) <= fds
