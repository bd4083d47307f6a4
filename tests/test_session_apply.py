"""Applying a session bundle to AnnData (SPEC §5.5)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from cellucid.session import (
    ApplySummary,
    CellucidSessionBundle,
    apply_cellucid_session_to_anndata,
    column_key,
    encode_cell_list,
    encode_user_codes,
    uns_key,
)
from test_rank_genes import SCANPY_COLUMNS
from test_session_bundle import build_bundle, node_bundle, write_bundle

N_OBS, N_VARS = 10, 4
HL = "cellucid_highlight__"
FINGERPRINT = {"sourceType": "test", "datasetId": "demo", "cellCount": N_OBS, "varCount": N_VARS}
F1_CODES = [0, 1, 0, 1, 7, 0, 1, 255, 0, 1]  # 7 and 255 are out of range for ["a", "b"]
F3_CODES = [5, 5, 5, 300, 0, 1, 2, 3, 4, 65535]


def make_adata() -> ad.AnnData:
    rng = np.random.default_rng(0)
    adata = ad.AnnData(
        rng.normal(size=(N_OBS, N_VARS)).astype(np.float32),
        obs=pd.DataFrame({"batch": ["b1", "b2"] * 5}, index=[f"cell{i}" for i in range(N_OBS)]),
        var=pd.DataFrame(index=[f"gene{j}" for j in range(N_VARS)]),
    )
    adata.uns["other"] = {"kept": "yes"}
    return adata


def field(field_id: str, key: str, categories: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": field_id,
        "key": key,
        "kind": "category",
        "categories": categories,
        "source": "obs",
        "isDeleted": False,
        **extra,
    }


HIGHLIGHTS_META = {
    "pages": [
        {
            "id": "p1",
            "name": "Page 1",
            "highlightedGroups": [
                {"id": "group-1", "name": "three cells", "color": "#f00", "cellCount": 3},
                {"id": "Weird id/2!", "name": "one", "color": None, "cellCount": 1},
                {"id": "no-cells", "name": "its chunk is missing"},
                {"id": "", "name": "empty id: ignored"},
                {"name": "no id: ignored"},
                "not a group",
            ],
        },
        {"id": "p2", "name": None, "highlightedGroups": [{"id": "9 lives", "tags": [1, "a"]}]},
    ]
}
OVERLAYS = {
    "userDefinedFields": [
        field("f1", "my clusters", ["a", "b"]),
        field("f2", "gene set", ["x", "y", "z"], source="var"),
        field("f3", "", []),
        field("f4", "old", ["q"], isDeleted=True),
        field("f5", "short", ["a"]),
        {**field("f6", "score", []), "kind": "continuous"},
        field("f7", "no codes", ["a"]),
        field("f8", "dup cats", ["a", 1, "a"]),
        field("f9", "elsewhere", ["a"], source="uns"),
    ]
}


def session_chunks(meta: Any = HIGHLIGHTS_META, overlays: Any = OVERLAYS) -> list[dict[str, Any]]:
    return [
        {"id": "core/state", "kind": "json", "data": {"camera": None, "mixed": [1, "a", None]}},
        {"id": "core/field-overlays", "kind": "json", "codec": "gzip", "data": overlays},
        {"id": "highlights/meta", "kind": "json", "data": meta},
        {"id": "highlights/cells/group-1", "data": encode_cell_list([0, 3, 9])},
        {"id": "highlights/cells/Weird id/2!", "data": encode_cell_list([1])},
        {"id": "highlights/cells/9 lives", "data": encode_cell_list([])},
        {"id": "user-defined/codes/f1", "data": encode_user_codes(F1_CODES)},
        {"id": "user-defined/codes/f2", "data": encode_user_codes([2, 1, 0, 2])},
        {"id": "user-defined/codes/f3", "data": encode_user_codes(F3_CODES)},
        {"id": "user-defined/codes/f4", "data": encode_user_codes([0] * N_OBS)},
        {"id": "user-defined/codes/f5", "data": encode_user_codes([0, 0, 0])},
        {"id": "user-defined/codes/f6", "data": encode_user_codes([0] * N_OBS)},
        {"id": "user-defined/codes/f8", "data": encode_user_codes([0, 1, 2, 3] + [2] * 6)},
        {"id": "user-defined/codes/f9", "data": encode_user_codes([0] * N_OBS)},
        {"id": "analysis/artifacts/x", "data": b"\x00opaque"},
    ]


@pytest.fixture
def bundle_path(tmp_path: Path) -> Path:
    return write_bundle(tmp_path / "s.cellucid-session", session_chunks(), fingerprint=FINGERPRINT)


def apply_quietly(bundle: Any, adata: ad.AnnData, **kwargs: Any) -> Any:
    """Apply, expecting only the warnings about f5 (wrong length) and f9 (unknown source)."""
    with pytest.warns(UserWarning) as record:
        result = apply_cellucid_session_to_anndata(bundle, adata, **kwargs)
    messages = sorted(str(w.message) for w in record if "user-defined field" in str(w.message))
    assert len(messages) == 2
    assert "'f5': 3 codes for 10 obs rows; skipped" in messages[0]
    assert "'f9': unknown source 'uns'" in messages[1]
    return result


# ---- K(s) and uns keys ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("my clusters", "my_clusters"),
        ("a--b__c", "a_b_c"),
        ("__x__", "x"),
        ("Weird id/2!", "Weird_id_2"),
        ("9 lives", "_9_lives"),
        ("_9", "_9"),
        ("", "cellucid"),
        ("!!!", "cellucid"),
        ("___", "cellucid"),
        ("Zellen ä ö", "Zellen"),
        ("ok_Name_1", "ok_Name_1"),
        (42, "_42"),
    ],
)
def test_column_key(raw: Any, key: str) -> None:
    assert column_key(raw) == key


@pytest.mark.parametrize("raw", ["highlights/meta", "group-1", ".", "a b/ä%", "..", ".zattrs"])
def test_uns_key_is_safe_and_reversible(raw: str) -> None:
    escaped = uns_key(raw)
    assert unquote(escaped) == raw
    assert set(escaped) <= set("0123456789ABCDEFabcdefghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ_-%")
    if raw == "group-1":
        assert escaped == raw


# ---- highlights and user-defined fields -------------------------------------------------------
def test_highlights_become_bool_obs_columns(bundle_path: Path) -> None:
    result, summary = apply_quietly(bundle_path, make_adata(), return_summary=True)
    expected = {
        f"{HL}group_1": [0, 3, 9],
        f"{HL}Weird_id_2": [1],
        f"{HL}no_cells": [],
        f"{HL}_9_lives": [],
    }
    for name, cells in expected.items():
        column = result.obs[name]
        assert column.dtype == bool, name
        assert np.flatnonzero(column.to_numpy()).tolist() == cells, name
    assert summary.added_obs_columns[:4] == list(expected)
    assert isinstance(summary, ApplySummary)
    assert summary.skipped_due_to_mismatch is False
    assert summary.mismatch_reasons == []


def test_category_fields_become_categoricals(bundle_path: Path) -> None:
    result, summary = apply_quietly(bundle_path, make_adata(), return_summary=True)
    clusters = result.obs["my_clusters"]
    assert isinstance(clusters.dtype, pd.CategoricalDtype)
    assert list(clusters.cat.categories) == ["a", "b"]
    values = clusters.astype(object).where(clusters.notna(), None).tolist()
    assert values == ["a", "b", "a", "b", None, "a", "b", None, "a", "b"]  # 7 and 255 → NaN
    dup = result.obs["dup_cats"]  # categories ["a", 1, "a"]: strings, made unique
    assert list(dup.cat.categories) == ["a", "1"]
    assert dup.astype(object).where(dup.notna(), None).tolist() == ["a", "1", "a", None] + ["a"] * 6
    assert summary.added_obs_columns[4:] == ["my_clusters", "f3", "dup_cats"]
    assert summary.added_var_columns == ["gene_set"]


def test_var_field_goes_to_var(bundle_path: Path) -> None:
    result = apply_quietly(bundle_path, make_adata())
    genes = result.var["gene_set"]
    assert isinstance(genes.dtype, pd.CategoricalDtype)
    assert genes.astype(str).tolist() == ["z", "y", "x", "z"]
    assert "gene_set" not in result.obs


def test_field_without_categories_keeps_integer_codes(bundle_path: Path) -> None:
    result = apply_quietly(bundle_path, make_adata())
    codes = result.obs["f3"]  # key "" → the id names the column
    assert codes.dtype.kind in "iu"
    assert codes.notna().all()
    assert codes.tolist() == F3_CODES


def test_deleted_fields_only_when_included(bundle_path: Path) -> None:
    result = apply_quietly(bundle_path, make_adata())
    assert "old" not in result.obs
    result = apply_quietly(bundle_path, make_adata(), include_deleted_user_defined_fields=True)
    assert result.obs["old"].astype(str).tolist() == ["q"] * N_OBS


def test_what_is_not_added(bundle_path: Path) -> None:
    result = apply_quietly(bundle_path, make_adata())
    for absent in ("short", "score", "no_codes", "elsewhere"):
        assert absent not in result.obs
        assert absent not in result.var
    assert [c for c in result.obs if c.startswith(HL)] == [
        f"{HL}group_1",
        f"{HL}Weird_id_2",
        f"{HL}no_cells",
        f"{HL}_9_lives",
    ]


@pytest.mark.parametrize(
    ("kwargs", "obs", "var"),
    [
        (
            {"add_highlights": False, "user_defined_prefix": "ud_"},
            ["ud_my_clusters", "ud_f3", "ud_dup_cats"],
            ["ud_gene_set"],
        ),
        (
            {"add_user_defined_fields": False, "highlights_prefix": "hl."},
            ["hl.group_1", "hl.Weird_id_2", "hl.no_cells", "hl._9_lives"],
            [],
        ),
    ],
)
def test_switches_and_prefixes(
    bundle_path: Path, kwargs: dict[str, Any], obs: list[str], var: list[str]
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warnings about f5 and f9 when fields are added
        result, summary = apply_cellucid_session_to_anndata(
            bundle_path, make_adata(), return_summary=True, **kwargs
        )
    assert summary.added_obs_columns == obs
    assert summary.added_var_columns == var
    assert list(result.obs.columns) == ["batch", *obs]
    assert list(result.var.columns) == var


# ---- dataset mismatch -------------------------------------------------------------------------
MISMATCHES = [
    ({**FINGERPRINT, "cellCount": 11}, None, "cellCount 11 != n_obs 10"),
    ({**FINGERPRINT, "varCount": 5}, None, "varCount 5 != n_vars 4"),
    (FINGERPRINT, "other", "datasetId 'demo' != expected_dataset_id 'other'"),
]


@pytest.mark.parametrize(("fingerprint", "expected_id", "reason"), MISMATCHES)
def test_mismatch_error(tmp_path: Path, fingerprint: Any, expected_id: Any, reason: str) -> None:
    path = write_bundle(tmp_path / "m.cellucid-session", session_chunks(), fingerprint=fingerprint)
    adata = make_adata()
    with pytest.raises(ValueError, match=reason):
        apply_cellucid_session_to_anndata(
            path, adata, dataset_mismatch="error", expected_dataset_id=expected_id, inplace=True
        )
    assert list(adata.obs.columns) == ["batch"]
    assert "cellucid" not in adata.uns


@pytest.mark.parametrize(("fingerprint", "expected_id", "reason"), MISMATCHES)
@pytest.mark.parametrize("policy", ["warn_skip", "skip"])
def test_mismatch_skips_dataset_dependent_columns(
    tmp_path: Path, fingerprint: Any, expected_id: Any, reason: str, policy: str
) -> None:
    path = write_bundle(tmp_path / "m.cellucid-session", session_chunks(), fingerprint=fingerprint)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result, summary = apply_cellucid_session_to_anndata(
            path,
            make_adata(),
            dataset_mismatch=policy,
            expected_dataset_id=expected_id,
            return_summary=True,
        )
    mismatch_warnings = [str(w.message) for w in record if "does not match" in str(w.message)]
    if policy == "warn_skip":
        assert len(mismatch_warnings) == 1
        assert reason in mismatch_warnings[0]
    else:
        assert mismatch_warnings == []
    assert not any("user-defined field '" in str(w.message) for w in record)  # nothing decoded
    assert list(result.obs.columns) == ["batch"]
    assert list(result.var.columns) == []
    assert summary.skipped_due_to_mismatch is True
    assert summary.mismatch_reasons == [reason]
    assert summary.added_obs_columns == summary.added_var_columns == []
    applied = result.uns["cellucid"]["session"]["applied"]
    assert applied["skip_dataset_dependent"] is True
    assert applied["dataset_mismatch_policy"] == policy
    assert result.uns["cellucid"]["session"]["highlights"]["groups"] == {}


def test_matching_ids_and_missing_counts_are_no_mismatch(tmp_path: Path) -> None:
    fingerprint = {"sourceType": "test", "datasetId": "demo", "cellCount": "10", "varCount": None}
    path = write_bundle(tmp_path / "m.cellucid-session", session_chunks(), fingerprint=fingerprint)
    result, summary = apply_quietly(
        path,
        make_adata(),
        expected_dataset_id="demo",
        dataset_mismatch="error",
        return_summary=True,
    )
    assert summary.mismatch_reasons == []
    assert f"{HL}group_1" in result.obs
    no_fingerprint = write_bundle(tmp_path / "n.cellucid-session", session_chunks(), fingerprint=[])
    result = apply_quietly(no_fingerprint, make_adata(), expected_dataset_id="x")
    assert result.uns["cellucid"]["session"]["dataset_fingerprint"] == "null"
    assert f"{HL}group_1" in result.obs


@pytest.mark.parametrize(
    "kwargs",
    [{"dataset_mismatch": "warn"}, {"dataset_mismatch": None}, {"column_conflict": "skip"}],
)
def test_unknown_policies(bundle_path: Path, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be one of"):
        apply_cellucid_session_to_anndata(bundle_path, make_adata(), **kwargs)


# ---- column conflicts -------------------------------------------------------------------------
def conflicted_adata() -> ad.AnnData:
    adata = make_adata()
    adata.obs[f"{HL}group_1"] = "old"
    adata.obs[f"{HL}group_1__2"] = "old too"
    adata.var["gene_set"] = 1.5
    return adata


def test_conflict_suffix(bundle_path: Path) -> None:
    result, summary = apply_quietly(bundle_path, conflicted_adata(), return_summary=True)
    assert (result.obs[f"{HL}group_1"] == "old").all()
    assert (result.obs[f"{HL}group_1__2"] == "old too").all()
    assert result.obs[f"{HL}group_1__3"].sum() == 3
    assert summary.added_obs_columns[0] == f"{HL}group_1__3"
    assert result.var["gene_set__2"].astype(str).tolist() == ["z", "y", "x", "z"]
    groups = result.uns["cellucid"]["session"]["highlights"]["groups"]
    assert groups["group-1"]["obs_column"] == f"{HL}group_1__3"


def test_conflict_overwrite(bundle_path: Path) -> None:
    result, summary = apply_quietly(
        bundle_path, conflicted_adata(), column_conflict="overwrite", return_summary=True
    )
    assert result.obs[f"{HL}group_1"].dtype == bool
    assert result.obs[f"{HL}group_1"].sum() == 3
    assert (result.obs[f"{HL}group_1__2"] == "old too").all()
    assert isinstance(result.var["gene_set"].dtype, pd.CategoricalDtype)
    assert summary.added_obs_columns[0] == f"{HL}group_1"
    assert summary.added_var_columns == ["gene_set"]


def test_conflict_error_changes_nothing(bundle_path: Path) -> None:
    adata = conflicted_adata()
    before = adata.obs.copy()
    with pytest.raises(ValueError, match=r"Column already exists: .*group_1"):
        apply_quietly(bundle_path, adata, column_conflict="error", inplace=True)
    pd.testing.assert_frame_equal(adata.obs, before)
    assert "cellucid" not in adata.uns


def test_session_columns_never_overwrite_each_other(tmp_path: Path) -> None:
    meta = {
        "pages": [{"id": "p", "name": "P", "highlightedGroups": [{"id": "a-b"}, {"id": "a b"}]}]
    }
    chunks = [
        {"id": "highlights/meta", "kind": "json", "data": meta},
        {"id": "highlights/cells/a-b", "data": encode_cell_list([1])},
        {"id": "highlights/cells/a b", "data": encode_cell_list([2])},
    ]
    path = write_bundle(tmp_path / "c.cellucid-session", chunks, fingerprint=FINGERPRINT)
    for policy in ("overwrite", "error", "suffix"):
        result = apply_cellucid_session_to_anndata(path, make_adata(), column_conflict=policy)
        assert np.flatnonzero(result.obs[f"{HL}a_b"]).tolist() == [1]
        assert np.flatnonzero(result.obs[f"{HL}a_b__2"]).tolist() == [2]


# ---- inplace, uns and writing -----------------------------------------------------------------
def test_not_inplace_leaves_the_caller_alone(bundle_path: Path) -> None:
    adata = make_adata()
    adata.uns["cellucid"] = {"mine": "stays"}
    obs_before, uns_before = adata.obs.copy(), json.dumps(adata.uns, sort_keys=True)
    result = apply_quietly(bundle_path, adata)
    assert result is not adata
    pd.testing.assert_frame_equal(adata.obs, obs_before)
    assert json.dumps(adata.uns, sort_keys=True) == uns_before
    assert result.uns["cellucid"]["mine"] == "stays"
    assert "session" in result.uns["cellucid"]


def test_inplace_returns_the_same_object(bundle_path: Path) -> None:
    adata = make_adata()
    result = apply_quietly(bundle_path, adata, inplace=True)
    assert result is adata
    assert adata.obs[f"{HL}group_1"].sum() == 3
    assert "session" in adata.uns["cellucid"]


def test_store_uns_content(bundle_path: Path) -> None:
    bundle = CellucidSessionBundle(bundle_path)
    result = apply_quietly(bundle, make_adata(), expected_dataset_id="demo")
    session = result.uns["cellucid"]["session"]
    assert set(session) == {"manifest", "dataset_fingerprint", "applied", "chunks", "highlights"}
    assert json.loads(session["manifest"]) == bundle.manifest
    assert json.loads(session["dataset_fingerprint"]) == FINGERPRINT
    assert session["applied"] == {
        "dataset_mismatch_policy": "warn_skip",
        "expected_dataset_id": "demo",
        "skip_dataset_dependent": False,
    }
    assert {unquote(k) for k in session["chunks"]} == {"highlights/meta", "core/field-overlays"}
    assert json.loads(session["chunks"][uns_key("highlights/meta")]) == HIGHLIGHTS_META
    assert json.loads(session["chunks"][uns_key("core/field-overlays")]) == OVERLAYS
    groups = session["highlights"]["groups"]
    assert {unquote(k) for k in groups} == {"group-1", "Weird id/2!", "no-cells", "9 lives"}
    weird = groups[uns_key("Weird id/2!")]
    assert weird == {
        "obs_column": f"{HL}Weird_id_2",
        "page_id": "p1",
        "page_name": "Page 1",
        "group": json.dumps(HIGHLIGHTS_META["pages"][0]["highlightedGroups"][1]),
    }
    lives = groups[uns_key("9 lives")]
    assert (lives["page_id"], lives["page_name"]) == ("p2", "")  # a null name is stored as ""
    for group in groups.values():
        assert all(isinstance(v, str) for v in group.values())
    no_expected = apply_quietly(bundle, make_adata())
    assert no_expected.uns["cellucid"]["session"]["applied"]["expected_dataset_id"] == ""


def test_store_uns_off(bundle_path: Path) -> None:
    adata = make_adata()
    adata.uns["cellucid"] = "not a dict, but not looked at either"
    result = apply_quietly(bundle_path, adata, store_uns=False)
    assert result.uns["cellucid"] == "not a dict, but not looked at either"
    assert f"{HL}group_1" in result.obs


@pytest.mark.parametrize("value", ["text", ["a"], {"session": "text"}, {"session": [1, 2]}])
def test_uns_that_is_not_a_dict(bundle_path: Path, value: Any) -> None:
    adata = make_adata()
    adata.uns["cellucid"] = value
    with pytest.raises(TypeError, match="must be a dict"):
        apply_cellucid_session_to_anndata(bundle_path, adata, inplace=True)
    assert list(adata.obs.columns) == ["batch"]  # checked before anything changed


def test_an_old_session_entry_is_replaced(bundle_path: Path) -> None:
    adata = make_adata()
    adata.uns["cellucid"] = {"session": {"stale": "yes"}, "other": 1}
    result = apply_quietly(bundle_path, adata)
    assert "stale" not in result.uns["cellucid"]["session"]
    assert result.uns["cellucid"]["other"] == 1


def test_written_files_round_trip(bundle_path: Path, tmp_path: Path) -> None:
    result = apply_quietly(bundle_path, make_adata())
    result.write_h5ad(tmp_path / "out.h5ad")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr's notes about v2/v3 defaults
        with ad.settings.override(zarr_write_format=2):
            result.write_zarr(tmp_path / "out.zarr")
        with ad.settings.override(zarr_write_format=3):
            result.write_zarr(tmp_path / "out3.zarr")
    readers = [(ad.read_h5ad, "out.h5ad"), (ad.read_zarr, "out.zarr"), (ad.read_zarr, "out3.zarr")]
    for read, name in readers:
        back = read(tmp_path / name)
        pd.testing.assert_frame_equal(back.obs, result.obs)
        pd.testing.assert_frame_equal(back.var, result.var)
        session = back.uns["cellucid"]["session"]
        assert json.loads(session["manifest"])["chunks"][0]["id"] == "core/state"
        groups = session["highlights"]["groups"]
        assert {unquote(k) for k in groups} == {"group-1", "Weird id/2!", "no-cells", "9 lives"}
        assert bool(session["applied"]["skip_dataset_dependent"]) is False
        assert back.uns["other"] == {"kept": "yes"}


def test_corrupt_chunk_raises_and_changes_nothing(tmp_path: Path) -> None:
    chunks = session_chunks()
    chunks[3] = {"id": "highlights/cells/group-1", "data": encode_cell_list([0, N_OBS])}
    path = write_bundle(tmp_path / "bad.cellucid-session", chunks, fingerprint=FINGERPRINT)
    adata = make_adata()
    with pytest.raises(ValueError, match="not below n_obs 10"):
        apply_cellucid_session_to_anndata(path, adata, inplace=True)
    assert list(adata.obs.columns) == ["batch"]
    assert "cellucid" not in adata.uns


def test_bundle_method_and_minimal_bundles(bundle_path: Path, tmp_path: Path) -> None:
    bundle = CellucidSessionBundle(bundle_path)
    result = apply_quietly(bundle, make_adata(), user_defined_prefix="u_")
    assert "u_my_clusters" in result.obs
    with pytest.warns(UserWarning):
        via_method = bundle.apply_to_anndata(make_adata(), user_defined_prefix="u_")
    pd.testing.assert_frame_equal(via_method.obs, result.obs)
    empty = CellucidSessionBundle(write_bundle(tmp_path / "e.cellucid-session", []))
    result, summary = apply_cellucid_session_to_anndata(empty, make_adata(), return_summary=True)
    assert summary == ApplySummary()
    assert result.uns["cellucid"]["session"]["chunks"][uns_key("highlights/meta")] == "null"
    with pytest.raises(FileNotFoundError):
        apply_cellucid_session_to_anndata(tmp_path / "nope.cellucid-session", make_adata())
    assert build_bundle([])[:17] == b"CELLUCID_SESSION\n"


# ---- a bundle written by the viewer -----------------------------------------------------------
def test_apply_a_bundle_written_by_the_viewer(tmp_path: Path) -> None:
    n_obs, n_vars = 3000, 6
    rng = np.random.default_rng(5)
    lasso = np.unique(rng.integers(0, n_obs, 700))
    clusters = np.repeat(np.arange(4), n_obs // 4)
    clusters[::97] = 9  # out of range for 4 categories
    wide = rng.integers(0, 1000, n_obs)
    session = {
        "datasetFingerprint": {
            "sourceType": "anndata",
            "datasetId": "pbmc",
            "cellCount": n_obs,
            "varCount": n_vars,
        },
        "highlightPages": [
            {
                "id": "page-1",
                "name": "Page 1",
                "groups": [
                    {"id": "group-1", "name": "lasso", "color": "#f00", "cells": lasso.tolist()},
                    {"id": "group-2", "name": "two", "color": "#0f0", "cells": [5, n_obs - 1]},
                ],
            }
        ],
        "userDefinedFields": [
            {
                "id": "f-1",
                "key": "manual clusters",
                "kind": "category",
                "categories": ["T", "B", "NK", "Mono"],
                "source": "obs",
                "codes": clusters.tolist(),
            },
            {
                "id": "f-2",
                "key": "wide",
                "kind": "category",
                "categories": [],
                "source": "obs",
                "codes": wide.tolist(),
            },
            {
                "id": "f-3",
                "key": "gene flags",
                "kind": "category",
                "categories": ["off", "on"],
                "source": "var",
                "codes": [0, 1, 1, 0, 0, 1],
            },
        ],
    }
    path = node_bundle(tmp_path / "viewer.cellucid-session", session)
    adata = ad.AnnData(np.zeros((n_obs, n_vars), dtype=np.float32))
    result, summary = apply_cellucid_session_to_anndata(
        path, adata, expected_dataset_id="pbmc", dataset_mismatch="error", return_summary=True
    )
    assert summary.added_obs_columns == [
        f"{HL}group_1",
        f"{HL}group_2",
        "manual_clusters",
        "wide",
    ]
    assert summary.added_var_columns == ["gene_flags"]
    assert np.flatnonzero(result.obs[f"{HL}group_1"]).tolist() == lasso.tolist()
    assert np.flatnonzero(result.obs[f"{HL}group_2"]).tolist() == [5, n_obs - 1]
    manual = result.obs["manual_clusters"]
    assert list(manual.cat.categories) == ["T", "B", "NK", "Mono"]
    np.testing.assert_array_equal(
        manual.cat.codes.to_numpy(), np.where(clusters == 9, -1, clusters)
    )
    np.testing.assert_array_equal(result.obs["wide"].to_numpy(), wide)
    assert result.var["gene_flags"].astype(str).tolist() == ["off", "on", "on", "off", "off", "on"]
    groups = result.uns["cellucid"]["session"]["highlights"]["groups"]
    assert json.loads(groups["group-2"]["group"]) == {
        "id": "group-2",
        "name": "two",
        "color": "#0f0",
        "cellCount": 2,
    }
    result.write_h5ad(tmp_path / "viewer.h5ad")
    back = ad.read_h5ad(tmp_path / "viewer.h5ad")
    assert back.obs[f"{HL}group_1"].sum() == lasso.size


# ---- comparisons (PROTOCOL.md: analysis/comparisons) ------------------------------------------
COMPARISONS = {
    "version": 1,
    "comparisons": [
        {
            "id": "cmp-1",
            "name": "A vs rest",
            "createdAt": "2026-12-07T00:00:00Z",
            "method": "wilcoxon",
            "tieCorrect": False,
            "statistic": "Wilcoxon rank-sum test",
            "group": {"label": "lasso", "cellsChunk": "analysis/comparisons/cells/cmp-1/group"},
            "reference": "rest",
            "result": {
                "names": ["gene2", "gene0"],
                "scores": [3.5, -1.25],
                "logfoldchanges": [2.0, None],
                "pvals": [0.001, 0.2],
                "pvals_adj": [0.002, 0.2],
                "pct_nz_group": [1.0, 0.5],
                "pct_nz_reference": [0.1, 0.5],
            },
        },
        {
            "id": "cmp/2",
            "method": "t-test",
            "group": {"label": "b1", "cellsChunk": "analysis/comparisons/cells/cmp/2/group"},
            "reference": {
                "label": "b2",
                "cellsChunk": "analysis/comparisons/cells/cmp/2/reference",
            },
            "result": {"names": []},
        },
        "not a comparison",
    ],
}


def comparison_chunks() -> list[dict[str, Any]]:
    return [
        {"id": "analysis/comparisons", "kind": "json", "codec": "gzip", "data": COMPARISONS},
        {"id": "analysis/comparisons/cells/cmp-1/group", "data": encode_cell_list([1, 4, 7])},
        {"id": "analysis/comparisons/cells/cmp/2/group", "data": encode_cell_list([0, 2])},
        {"id": "analysis/comparisons/cells/cmp/2/reference", "data": encode_cell_list([1, 3])},
    ]


def test_comparisons_go_to_uns_and_survive_write(tmp_path: Path) -> None:
    path = write_bundle(
        tmp_path / "c.cellucid-session", comparison_chunks(), fingerprint=FINGERPRINT
    )
    out = apply_cellucid_session_to_anndata(path, make_adata())
    comparisons = out.uns["cellucid"]["comparisons"]
    assert sorted(comparisons) == ["cmp%2F2", "cmp-1"]
    first = comparisons["cmp-1"]
    assert first["name"] == "A vs rest" and first["method"] == "wilcoxon"
    assert first["group"] == "lasso" and first["reference"] == "rest"
    np.testing.assert_array_equal(first["group_cells"], [1, 4, 7])
    assert first["reference_cells"].size == 0
    table = first["table"]
    assert list(table.columns) == SCANPY_COLUMNS
    assert table["scores"].dtype == np.float32 and np.isnan(table["logfoldchanges"].iloc[1])
    second = comparisons["cmp%2F2"]
    np.testing.assert_array_equal(second["reference_cells"], [1, 3])
    assert second["reference"] == "b2" and len(second["table"]) == 0
    for writer, reader, name in (
        ("write_h5ad", ad.read_h5ad, "x.h5ad"),
        ("write_zarr", ad.read_zarr, "x.zarr"),
    ):
        getattr(out, writer)(tmp_path / name)
        back = reader(tmp_path / name).uns["cellucid"]["comparisons"]
        np.testing.assert_array_equal(back["cmp-1"]["group_cells"], [1, 4, 7])
        pd.testing.assert_frame_equal(
            back["cmp-1"]["table"].reset_index(drop=True), table, check_dtype=False
        )


def test_comparisons_without_cells_on_mismatch_and_opt_out(tmp_path: Path) -> None:
    path = write_bundle(
        tmp_path / "c.cellucid-session",
        comparison_chunks(),
        fingerprint={**FINGERPRINT, "cellCount": N_OBS + 1},
    )
    out = apply_cellucid_session_to_anndata(path, make_adata(), dataset_mismatch="skip")
    entry = out.uns["cellucid"]["comparisons"]["cmp-1"]
    assert "group_cells" not in entry and len(entry["table"]) == 2
    out = apply_cellucid_session_to_anndata(path, make_adata(), add_comparisons=False)
    assert "comparisons" not in out.uns.get("cellucid", {})


# ---- category colours (cellucid/palettes, PROTOCOL.md) -> scanpy's uns["<column>_colors"] ----
def test_session_colours_become_scanpy_uns_colours(tmp_path: Path) -> None:
    overlays = {"userDefinedFields": [field("f1", "my clusters", ["a", "b"])]}
    palettes = {
        "my clusters": {"categories": ["b", "a"], "colors": ["#445566", "#123"]},  # by name
        "batch": {"categories": ["b2"], "colors": ["#ABCDEF"]},  # one of two: the other kept
        "cell type": {"categories": ["T"], "colors": ["#00ff00"]},  # no uns for "B": skipped
        "bad": {"categories": ["x"], "colors": ["red"]},  # not a colour: skipped
        "n_genes": {"categories": ["1"], "colors": ["#000000"]},  # not categorical: ignored
        "absent": {"categories": ["1"], "colors": ["#000000"]},  # no such column: ignored
    }
    path = write_bundle(
        tmp_path / "c.cellucid-session",
        [
            {"id": "core/field-overlays", "kind": "json", "data": overlays},
            {"id": "user-defined/codes/f1", "data": encode_user_codes(F1_CODES)},
            {"id": "cellucid/palettes", "kind": "json", "data": palettes},
        ],
        fingerprint=FINGERPRINT,
    )
    adata = make_adata()
    adata.obs["batch"] = adata.obs["batch"].astype("category")
    adata.uns["batch_colors"] = np.array(["#000000", "#ffffff"], dtype=object)
    adata.obs["cell type"] = pd.Categorical(["T", "B"] * 5)
    adata.obs["bad"] = pd.Categorical(["x"] * N_OBS)
    adata.obs["n_genes"] = np.arange(N_OBS)
    with pytest.warns(UserWarning) as record:
        out, summary = apply_cellucid_session_to_anndata(path, adata, return_summary=True)
    messages = [str(w.message) for w in record]
    assert any("'cell type'" in m and "1 of the 2 categories" in m for m in messages), messages
    assert any("'bad' skipped: 'red' is not a '#rrggbb' colour" in m for m in messages), messages
    assert summary.colors == ["my_clusters", "batch"]
    assert list(out.uns["my_clusters_colors"]) == ["#112233", "#445566"]  # in category order
    assert list(out.uns["batch_colors"]) == ["#000000", "#abcdef"]
    assert "cell type_colors" not in out.uns and "bad_colors" not in out.uns
    assert list(adata.uns["batch_colors"]) == ["#000000", "#ffffff"], "the caller's copy"
    # scanpy reads them back as it wrote them (written files keep them too)
    out.write_h5ad(tmp_path / "c.h5ad")
    back = ad.read_h5ad(tmp_path / "c.h5ad")
    assert list(back.uns["my_clusters_colors"]) == ["#112233", "#445566"]
    # switched off: nothing written
    quiet = apply_cellucid_session_to_anndata(path, make_adata(), add_colors=False)
    assert not [k for k in quiet.uns if k.endswith("_colors")]
