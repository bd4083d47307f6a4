"""``prepare()`` refuses bad input with the right exception, a useful message, and no output.

Every case checks three things: the exception type (SPEC §2.4-§2.10, §6.2, §6.5), that the
message names the field or problem and how to fix it, and that nothing was left behind
(neither the output folder nor a staging folder next to it): SPEC §2.13 validates
everything before the first byte is written.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import cellucid
from _data import embedding, expression, gene_var, knn_graph, latent, make_adata, rng
from cellucid.export.prepare import prepare

N = 20


def base(**extra) -> dict:
    kw = {
        "obs": pd.DataFrame({"cluster": pd.Categorical(list("ab") * (N // 2)), "x": np.arange(N)}),
        "X_umap_2d": embedding(N, 2),
    }
    kw.update(extra)
    return kw


def with_genes(var_index, **extra) -> dict:
    g = len(var_index)
    return base(
        var=pd.DataFrame(index=pd.Index(var_index, dtype=object)),
        gene_expression=rng(1).random((N, g)),
        **extra,
    )


def nan_embedding(d: int, bad: float) -> np.ndarray:
    x = embedding(N, d)
    x[3, 0] = bad
    x[17, d - 1] = bad
    return x


def expect_error(
    tmp_path: Path, exc: type[BaseException], patterns, call: Callable[[Path], object]
):
    """Run ``call(out_dir)``; check the exception, its message, and that nothing was written."""
    out = tmp_path / "out"
    with pytest.raises(exc) as info:
        call(out)
    msg = str(info.value.args[0]) if exc is KeyError and info.value.args else str(info.value)
    for pattern in patterns:
        assert re.search(pattern, msg, re.IGNORECASE), f"{pattern!r} not in message: {msg}"
    assert not out.exists(), "a failed export must not create out_dir"
    assert list(tmp_path.iterdir()) == [], "nothing may be left next to out_dir"
    return msg


# (id, exception, message patterns, prepare kwargs)
ARRAY_CASES = [
    # ---- embeddings (§2.5, §6.2)
    (
        "2d_three_columns",
        ValueError,
        ["X_umap_2d", r"\(20, 3\)|3 col"],
        base(X_umap_2d=embedding(N, 3)),
    ),
    ("3d_two_columns", ValueError, ["X_umap_3d", r"3"], base(X_umap_3d=embedding(N, 2))),
    ("2d_one_dim_array", ValueError, ["X_umap_2d"], base(X_umap_2d=np.arange(N * 2.0))),
    ("2d_three_dim_array", ValueError, ["X_umap_2d"], base(X_umap_2d=np.zeros((N, 2, 1)))),
    (
        "1d_not_2d",
        ValueError,
        ["X_umap_1d", r"2-D|\(n(_cells)?, 1\)|column"],
        base(X_umap_1d=np.arange(N * 1.0)),
    ),
    (
        "dims_disagree_on_n",
        ValueError,
        [r"\b20\b", r"\b21\b"],
        base(X_umap_3d=embedding(N + 1, 3)),
    ),
    ("no_embedding", ValueError, ["X_umap_1d", "X_umap_2d", "X_umap_3d"], base(X_umap_2d=None)),
    (
        "nan_2d",
        ValueError,
        ["X_umap_2d", r"\b3\b", r"\b17\b"],
        base(X_umap_2d=nan_embedding(2, np.nan)),
    ),
    (
        "inf_3d",
        ValueError,
        ["X_umap_3d", r"\b3\b", r"\b17\b"],
        base(X_umap_3d=nan_embedding(3, np.inf)),
    ),
    ("neg_inf_1d", ValueError, ["X_umap_1d"], base(X_umap_1d=nan_embedding(1, -np.inf))),
    ("4d", NotImplementedError, ["4D|X_umap_4d"], base(X_umap_4d=embedding(N, 4))),
    (
        "4d_alone",
        NotImplementedError,
        ["4D|X_umap_4d"],
        base(X_umap_2d=None, X_umap_4d=embedding(N, 4)),
    ),
    (
        "zero_cells",
        ValueError,
        [r"no cells|0 cells|empty|at least one"],
        {"obs": pd.DataFrame(), "X_umap_2d": np.zeros((0, 2))},
    ),
    # ---- obs (§2.4, §2.6)
    ("obs_missing", ValueError, ["obs"], base(obs=None)),
    (
        "obs_too_short",
        ValueError,
        ["obs", r"\b19\b", r"\b20\b"],
        base(obs=pd.DataFrame(index=range(N - 1))),
    ),
    (
        "obs_too_long",
        ValueError,
        ["obs", r"\b21\b", r"\b20\b"],
        base(obs=pd.DataFrame(index=range(N + 1))),
    ),
    (
        "obs_collision_across_kinds",
        ValueError,
        ["'pct mito'", "'pct_mito'", "obs_keys"],
        base(obs=pd.DataFrame({"pct mito": np.ones(N), "pct_mito": pd.Categorical(["a"] * N)})),
    ),
    (
        "obs_collision_three",
        ValueError,
        ["'a b'", "'a/b'", "'a_b'"],
        base(obs=pd.DataFrame({"a b": np.ones(N), "a/b": np.ones(N), "a_b": np.ones(N)})),
    ),
    (
        "obs_duplicate_after_str",
        ValueError,
        ["'1'"],
        base(obs=pd.DataFrame({1: np.ones(N), "1": np.zeros(N)})),
    ),
    (
        "obs_duplicate_columns",
        ValueError,
        ["'dup'"],
        base(obs=pd.DataFrame(np.ones((N, 2)), columns=["dup", "dup"])),
    ),
    ("obs_key_star", ValueError, ["'★'"], base(obs=pd.DataFrame({"★": np.ones(N)}))),
    ("obs_key_dots", ValueError, ["'\\.\\.'"], base(obs=pd.DataFrame({"..": np.ones(N)}))),
    ("obs_key_empty", ValueError, ["''"], base(obs=pd.DataFrame({"": np.ones(N)}))),
    (
        "obs_key_underscores",
        ValueError,
        ["'__'"],
        base(obs=pd.DataFrame({"__": pd.Categorical(["a"] * N)})),
    ),
    (
        "obs_keys_missing",
        KeyError,
        ["'nope'", "'gone'"],
        base(obs_keys=["cluster", "nope", "gone"]),
    ),
    (
        "blank_category_label",
        ValueError,
        ["'lbl'"],
        base(obs=pd.DataFrame({"lbl": pd.Categorical(["a", " "] * (N // 2))})),
    ),
    (
        "labels_equal_after_str",
        ValueError,
        ["'mixed'"],
        base(obs=pd.DataFrame({"mixed": pd.Categorical([1, "1"] * (N // 2), categories=[1, "1"])})),
    ),
    (
        "uint8_too_many_categories",
        ValueError,
        ["'many'", r"\b256\b", "uint16"],
        {
            "obs": pd.DataFrame({"many": pd.Categorical([f"c{i}" for i in range(256)])}),
            "X_umap_2d": embedding(256, 2),
            "obs_categorical_dtype": "uint8",
        },
    ),
    # ---- genes (§2.4, §2.7, §6.2)
    ("gene_collision", ValueError, ["'CD8A/B'", "'CD8A_B'"], with_genes(["CD8A/B", "CD8A_B", "X"])),
    (
        "gene_duplicate",
        ValueError,
        ["'A'", r"unique|duplicate|more than once|appears"],
        with_genes(["A", "B", "A"]),
    ),
    ("gene_no_safe_name", ValueError, ["'★'"], with_genes(["ok", "★"])),
    (
        "gene_identifiers_duplicate",
        ValueError,
        ["'g1'", "gene_identifiers"],
        with_genes(["g0", "g1", "g2"], gene_identifiers=["g1", "g2", "g1"]),
    ),
    (
        "gene_identifiers_pick_a_duplicated_id",
        ValueError,
        ["'g1'"],
        with_genes(["g0", "g1", "g1"], gene_identifiers=["g1"]),
    ),
    (
        "gene_identifiers_pick_colliding_ids",
        ValueError,
        ["'a b'", "'a_b'"],
        with_genes(["a b", "a_b", "c"], gene_identifiers=["a_b", "a b"]),
    ),
    (
        "var_too_long",
        ValueError,
        ["var", r"\b4\b", r"\b3\b"],
        base(var=pd.DataFrame(index=list("abcd")), gene_expression=np.ones((N, 3))),
    ),
    (
        "var_too_short",
        ValueError,
        ["var", r"\b2\b", r"\b3\b"],
        base(var=pd.DataFrame(index=list("ab")), gene_expression=np.ones((N, 3))),
    ),
    ("var_missing", ValueError, ["var"], base(gene_expression=np.ones((N, 3)))),
    (
        "expression_rows",
        ValueError,
        ["gene_expression", r"\b21\b", r"\b20\b"],
        base(var=pd.DataFrame(index=list("abc")), gene_expression=np.ones((N + 1, 3))),
    ),
    (
        "var_gene_id_column_missing",
        KeyError,
        ["'nosuch'", "symbol"],
        base(var=gene_var(3), gene_expression=np.ones((N, 3)), var_gene_id_column="nosuch"),
    ),
    # ---- latent space, connectivity, vector fields
    ("latent_rows", ValueError, ["latent"], base(latent_space=latent(N + 1, 3))),
    (
        "connectivities_shape",
        ValueError,
        ["connectivit", r"\b20\b"],
        base(connectivities=sp.csr_matrix((N, N + 1))),
    ),
    (
        "connectivities_negative",
        ValueError,
        ["connectivit", "negative"],
        base(connectivities=-knn_graph(N, 3)),
    ),
    (
        "connectivities_nan",
        ValueError,
        ["connectivit", r"nan|finite"],
        base(connectivities=np.full((N, N), np.nan)),
    ),
    (
        "vector_fields_not_dict",
        TypeError,
        ["vector_fields"],
        base(vector_fields=[("v_2d", np.ones((N, 2)))]),
    ),
    (
        "vector_field_unsafe_id",
        ValueError,
        ["'my vel'", "'my_vel'"],
        base(vector_fields={"my vel_2d": np.ones((N, 2))}),
    ),
    ("vector_field_shape", ValueError, ["'v_2d'"], base(vector_fields={"v_2d": np.ones((N, 3))})),
    ("vector_field_nan", ValueError, ["'v'"], base(vector_fields={"v": np.full((N, 2), np.nan)})),
    # ---- identity (§2.10)
    (
        "source_url_without_name",
        ValueError,
        ["source_url", "source_name"],
        base(source_url="https://x.org"),
    ),
    (
        "source_citation_without_name",
        ValueError,
        ["source_citation", "source_name"],
        base(source_citation="Doe"),
    ),
    (
        "source_blank_name_with_url",
        ValueError,
        ["source_name"],
        base(source_name="  ", source_url="https://x.org"),
    ),
    *(
        (f"dataset_name_{i}", ValueError, ["dataset_name"], base(dataset_name=name))
        for i, name in enumerate(["", "   ", "\t\n", 5])
    ),
    *(
        (f"dataset_id_{i}", ValueError, ["dataset_id"], base(dataset_id=value))
        for i, value in enumerate(["", " x", "x ", "a\nb", "a\x00b", "del\x7f", " ", 5])
    ),
]


@pytest.mark.parametrize(
    ("exc", "patterns", "kwargs"), [c[1:] for c in ARRAY_CASES], ids=[c[0] for c in ARRAY_CASES]
)
def test_array_form_errors(tmp_path, exc, patterns, kwargs):
    expect_error(tmp_path, exc, patterns, lambda out: prepare(out_dir=out, quiet=True, **kwargs))


def test_too_many_categories_for_uint16(tmp_path):
    n = 65_536
    obs = pd.DataFrame({"ids": pd.Categorical(np.arange(n).astype(str))})
    expect_error(
        tmp_path,
        ValueError,
        ["'ids'", r"65536|65,536", r"obs_keys|continuous|numeric"],
        lambda out: prepare(
            out_dir=out, obs=obs, X_umap_1d=np.arange(n, dtype=float)[:, None], quiet=True
        ),
    )


# ---- option values (§6.2): every invalid value, bools included, is a ValueError
OPTION_CASES = [
    *(
        ("compression", v, [r"compression", r"1\s*[-–]\s*9|1 to 9"])
        for v in [10, -1, 1.5, "6", True, False, 100]
    ),
    *(
        ("var_quantization", v, ["var_quantization", r"\b8\b", r"\b16\b"])
        for v in [0, 4, 12, 32, "8", True, False, 8.5]
    ),
    *(
        ("obs_continuous_quantization", v, ["obs_continuous_quantization", r"\b8\b", r"\b16\b"])
        for v in [0, 1, 12, 24, "16", True]
    ),
    *(
        ("centroid_outlier_quantile", v, ["centroid_outlier_quantile", r"0\.5", r"\b1\b"])
        for v in [0.5, 1.0, 1, 0.3, 1.5, -0.9, float("nan"), True, "0.9"]
    ),
    *(
        ("centroid_min_points", v, ["centroid_min_points", r"1"])
        for v in [0, -3, 1.5, True, "10", None]
    ),
    *(
        ("obs_categorical_dtype", v, ["obs_categorical_dtype", "auto", "uint8", "uint16"])
        for v in ["uint32", "int8", "AUTO", None, True]
    ),
]


@pytest.mark.parametrize(
    ("option", "value", "patterns"),
    OPTION_CASES,
    ids=[f"{o}={v!r}" for o, v, _ in OPTION_CASES],
)
def test_invalid_option_values(tmp_path, option, value, patterns):
    expect_error(
        tmp_path,
        ValueError,
        patterns,
        lambda out: prepare(out_dir=out, quiet=True, **{option: value}, **base()),
    )


FIXED_NAMES = {
    "obs_manifest_filename": "obs_manifest.json",
    "obs_binary_dirname": "obs",
    "var_manifest_filename": "var_manifest.json",
    "var_binary_dirname": "var",
    "connectivity_manifest_filename": "connectivity_manifest.json",
    "connectivity_binary_dirname": "connectivity",
}


@pytest.mark.parametrize("param", list(FIXED_NAMES))
def test_non_default_file_names_are_refused(tmp_path, param):
    expect_error(
        tmp_path,
        ValueError,
        [param, re.escape(FIXED_NAMES[param])],
        lambda out: prepare(out_dir=out, quiet=True, **{param: "custom"}, **base()),
    )


@pytest.mark.parametrize("param", list(FIXED_NAMES))
def test_default_file_names_are_accepted(tmp_path, param):
    out = prepare(out_dir=tmp_path / "ok", quiet=True, **{param: FIXED_NAMES[param]}, **base())
    assert (out / "obs_manifest.json").is_file()


# ---- AnnData form (§6.5)
def _adata(**obsm):
    import anndata

    ad = anndata.AnnData(
        obs=pd.DataFrame(
            {"c": pd.Categorical(list("ab") * (N // 2))}, index=[f"c{i}" for i in range(N)]
        )
    )
    for k, v in obsm.items():
        ad.obsm[k] = v
    return ad


def _no_cells():
    import anndata

    ad = anndata.AnnData(obs=pd.DataFrame(index=pd.Index([], dtype=str)))
    ad.obsm["X_umap"] = np.zeros((0, 2))
    return ad


def _collision():
    ad = _adata(X_umap=embedding(N, 2))
    ad.obs["pct mito"] = 1.0
    ad.obs["pct_mito"] = 2.0
    return ad


def _duplicate_var_names():
    import anndata

    with warnings.catch_warnings():  # anndata's own "not unique" warning
        warnings.simplefilter("ignore")
        ad = anndata.AnnData(X=expression(N, 3), var=pd.DataFrame(index=["g", "h", "g"]))
    ad.obs_names = [f"c{i}" for i in range(N)]
    ad.obsm["X_umap"] = embedding(N, 2)
    return ad


# (id, exception, message patterns, AnnData builder, prepare options)
ANNDATA_CASES = [
    (
        "no_embedding_lists_obsm_keys",
        ValueError,
        ["X_pca", "X_tsne", "X_umap"],
        lambda: _adata(X_pca=latent(N, 3), X_tsne=embedding(N, 2), X_umap=embedding(N, 4)),
        {},
    ),
    ("empty_obsm", ValueError, ["obsm", "X_umap"], _adata, {}),
    ("no_cells", ValueError, [r"no cells|n_obs|0 cells|empty"], _no_cells, {}),
    (
        "nan_embedding",
        ValueError,
        [r"\b3\b", r"\b17\b"],
        lambda: _adata(X_umap=nan_embedding(2, np.nan)),
        {},
    ),
    (
        "unknown_latent_key",
        KeyError,
        ["'scvi'", "X_pca", "X_umap"],
        lambda: _adata(X_umap=embedding(N, 2), X_pca=latent(N, 3)),
        {"latent_key": "scvi"},
    ),
    ("unknown_layer", KeyError, ["'raw'", "counts"], lambda: make_adata(N, 3), {"layer": "raw"}),
    (
        "obs_collision_suggests_obs_keys",
        ValueError,
        ["'pct mito'", "'pct_mito'", "obs_keys"],
        _collision,
        {},
    ),
    (
        "duplicate_var_names_hint",
        ValueError,
        ["'g'", "var_names_make_unique"],
        _duplicate_var_names,
        {},
    ),
    (
        "4d_option",
        NotImplementedError,
        ["4D|X_umap_4d"],
        lambda: _adata(X_umap=embedding(N, 2)),
        {"X_umap_4d": embedding(N, 4)},
    ),
    (
        "bad_option_value",
        ValueError,
        ["compression"],
        lambda: _adata(X_umap=embedding(N, 2)),
        {"compression": 11},
    ),
]


@pytest.mark.parametrize(
    ("exc", "patterns", "build", "options"),
    [c[1:] for c in ANNDATA_CASES],
    ids=[c[0] for c in ANNDATA_CASES],
)
def test_anndata_form_errors(tmp_path, exc, patterns, build, options):
    ad = build()
    expect_error(tmp_path, exc, patterns, lambda out: prepare(ad, out, quiet=True, **options))


# ---- issue 13: no silent wrong data ---------------------------------------------------------
def _obs_frame(n, **columns):
    return pd.DataFrame(columns, index=[f"c{i}" for i in range(n)])


def _export_obs(tmp_path, obs):
    n = len(obs)
    return cellucid.prepare(
        obs=obs,
        X_umap_2d=np.random.default_rng(0).normal(size=(n, 2)),
        out_dir=tmp_path / "o",
        quiet=True,
    )


def test_large_integer_ids_become_a_categorical_not_merged_floats(tmp_path):
    ids = np.array([2**53 + 1, 2**53 + 2, 2**53 + 3, 7] * 5, dtype=np.int64)
    with pytest.warns(UserWarning, match=r"'cell_id' holds integers that float32 cannot store"):
        out = _export_obs(tmp_path, _obs_frame(len(ids), cell_id=ids))
    from cellucid.export.reader import ExportReader

    field = ExportReader(out).obs_field("cell_id")
    labels = np.asarray(field.categories, dtype=object)[field.codes]
    assert [int(v) for v in labels] == ids.tolist()  # every id kept exactly


def test_uint64_ids_and_too_many_distinct_large_integers(tmp_path):
    big = np.arange(70_000, dtype=np.uint64) + np.uint64(2**63)
    with pytest.raises(
        ValueError, match=r"'uid' holds integers that float32 cannot store exactly.*70000 distinct"
    ):
        _export_obs(tmp_path, _obs_frame(len(big), uid=big))
    assert not (tmp_path / "o").exists()


def test_small_integers_stay_continuous(tmp_path):
    from cellucid.export.reader import ExportReader

    counts = np.array([0, 5, 2**24, 123_456] * 5, dtype=np.int64)
    out = _export_obs(tmp_path, _obs_frame(len(counts), n_counts=counts))
    np.testing.assert_array_equal(
        ExportReader(out).obs_field("n_counts"), counts.astype(np.float32)
    )


def test_float64_beyond_float32_is_refused(tmp_path):
    values = np.array([1.0, 2.5, 1e300, np.nan] * 5)
    with pytest.raises(ValueError, match=r"'weird' has values up to 1e\+300, beyond float32"):
        _export_obs(tmp_path, _obs_frame(len(values), weird=values))


def test_mixed_types_that_read_the_same_warn(tmp_path):
    values = pd.Series([1, "1", "a", None] * 5, dtype=object).to_numpy()
    with pytest.warns(
        UserWarning, match=r"'batch' mixes value types that read the same as text \('1'\)"
    ):
        _export_obs(tmp_path, _obs_frame(len(values), batch=values))


@pytest.mark.parametrize("what", ["obs", "genes"])
def test_names_that_differ_only_in_case_collide(tmp_path, what):
    import scipy.sparse as sp

    n = 20
    rng = np.random.default_rng(1)
    obs = _obs_frame(n, a=rng.normal(size=n))
    kwargs = {}
    if what == "obs":
        obs["Score"] = rng.normal(size=n)
        obs["score"] = rng.normal(size=n)
        match = r"obs keys 'Score', 'score' map to file names that differ only in case"
    else:
        kwargs = {
            "gene_expression": sp.random(n, 3, density=0.5, format="csr", random_state=0),
            "var": pd.DataFrame(index=["Gene1", "GENE1", "Other"]),
        }
        match = r"gene ids 'Gene1', 'GENE1' map to file names that differ only in case"
    with pytest.raises(ValueError, match=match):
        cellucid.prepare(
            obs=obs, X_umap_2d=rng.normal(size=(n, 2)), out_dir=tmp_path / "o", quiet=True, **kwargs
        )
    assert not (tmp_path / "o").exists()
