"""compute_transition_drift / add_transition_drift_to_obsm (SPEC §6.9)."""

from __future__ import annotations

import anndata
import numpy as np
import pytest
import scipy.sparse as sp

from cellucid import add_transition_drift_to_obsm, compute_transition_drift


def _data(n: int = 6, d: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    T = rng.random((n, n)) * (rng.random((n, n)) < 0.5)
    T[2] = 0.0  # a row without transitions
    return T, rng.normal(size=(n, d))


@pytest.mark.parametrize("kind", [np.asarray, sp.csr_matrix, sp.csr_array, sp.coo_matrix])
def test_drift_matches_the_formula_for_dense_and_sparse(kind):
    T, X = _data()
    sums = T.sum(axis=1)
    expected = (T @ X) / np.where(sums == 0, 1, sums)[:, None] - X
    T_in, X_before = kind(T), X.copy()
    got = compute_transition_drift(T_in, X)
    assert got.dtype == np.float32 and got.shape == X.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got[2], -X[2].astype(np.float32))  # zero row: divides by 1
    np.testing.assert_array_equal(X, X_before)
    raw = compute_transition_drift(T_in, X, normalize_rows=False)
    np.testing.assert_allclose(raw, T @ X - X, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("T", "X", "message"),
    [
        (np.eye(3), np.zeros((4, 2)), "square"),
        (np.ones((3, 4)), np.zeros((3, 2)), "square"),
        (np.eye(3), np.zeros((3, 4)), "1-3"),
        (np.eye(3), np.zeros(3), "1-3"),
    ],
)
def test_bad_shapes_are_refused(T, X, message):
    with pytest.raises(ValueError, match=message):
        compute_transition_drift(T, X)


def test_add_to_obsm_picks_the_highest_dimension_and_refuses_to_overwrite():
    T, X2 = _data(d=2)
    adata = anndata.AnnData(obs={"i": range(6)})
    adata.obsm["X_umap"] = X2
    adata.obsm["X_umap_3d"] = np.c_[X2, X2[:, :1]]
    key = add_transition_drift_to_obsm(adata, sp.csr_matrix(T))
    assert key == "T_fwd_umap_3d"
    np.testing.assert_allclose(
        adata.obsm[key], compute_transition_drift(T, adata.obsm["X_umap_3d"])
    )
    with pytest.raises(KeyError, match="overwrite=True"):
        add_transition_drift_to_obsm(adata, T)
    assert add_transition_drift_to_obsm(adata, T, overwrite=True) == key
    assert add_transition_drift_to_obsm(adata, T, dim=2, field_prefix="V") == "V_umap_2d"
    assert (
        add_transition_drift_to_obsm(adata, T, dim=2, field_prefix="W", explicit_dim_suffix=False)
        == "W_umap"
    )


def test_add_to_obsm_says_what_is_missing():
    T, _ = _data()
    adata = anndata.AnnData(obs={"i": range(6)})
    adata.obsm["X_pca"] = np.zeros((6, 5))
    with pytest.raises(KeyError, match=r"X_umap_3d.*obsm has X_pca"):
        add_transition_drift_to_obsm(adata, T)
    adata.obsm["X_umap"] = np.zeros((6, 2))
    with pytest.raises(ValueError, match="not dim=3"):
        add_transition_drift_to_obsm(adata, T, dim=3)
