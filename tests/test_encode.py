"""The numeric rules of the export format (SPEC §2.5-§2.9), one encoder at a time.

Expected values come from the SPEC text and from loop-based reference implementations
written here, never from the exporter itself.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from _data import (
    assert_same,
    centroids_reference,
    dequantise,
    edges_reference,
    half_step,
    normalise,
    outliers_reference,
    rng,
    snapshot,
)
from cellucid.export.encode import (
    build_edges,
    centroids_use_kernel,
    classify_obs_column,
    codes_dtype_for,
    compute_centroids,
    compute_outlier_quantiles,
    dequantize,
    edge_index_dtype,
    edge_working_set,
    normalize_points,
    parse_vector_fields,
    quantize,
    trimmed_group_means_numpy,
)

MAXQ = {8: 254, 16: 65534}
MISSING = {8: 255, 16: 65535}


# =============================================================================== §2.5 points
@pytest.mark.parametrize("d", [1, 2, 3])
def test_normalize_matches_spec_formula(d):
    x = rng(d).normal(size=(40, d)) * np.array([3.0, 0.5, 7.0][:d]) + 100.0
    before = snapshot(x)
    out, scale = normalize_points(x, d)
    ref, ref_scale = normalise(x)
    assert out.dtype == np.float32 and out.shape == (40, d)
    assert scale == pytest.approx(ref_scale, rel=1e-15)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-7)
    assert_same(before, x, "coords")


def test_normalize_keeps_aspect_and_longest_axis_spans_unit_interval():
    x = np.array([[0.0, 0.0, 5.0], [10.0, 2.0, 5.0], [4.0, 1.0, 6.0]])
    out, scale = normalize_points(x, 3)
    assert scale == pytest.approx(2.0 / 10.0)
    assert out[:, 0].min() == -1.0 and out[:, 0].max() == 1.0
    # the other axes keep their size relative to the longest one, centred on 0
    np.testing.assert_allclose(out[:, 1], [-0.2, 0.2, 0.0], atol=1e-7)
    np.testing.assert_allclose(out[:, 2], [-0.1, -0.1, 0.1], atol=1e-7)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_constant_embedding_uses_span_one(d):
    x = np.full((7, d), 42.5)
    out, scale = normalize_points(x, d)
    assert scale == 2.0
    np.testing.assert_array_equal(out, np.zeros((7, d), dtype=np.float32))


def test_tiny_span_below_threshold_counts_as_constant():
    x = np.array([[1.0, 1.0], [1.0 + 5e-9, 1.0]])
    _, scale = normalize_points(x, 2)
    assert scale == 2.0


def test_normalize_computes_in_float64():
    # float32 arithmetic would lose these offsets next to 1e7 (its step there is 1.0)
    x = np.array([[1e7, 0.0], [1e7 + 0.25, 0.0], [1e7 + 0.5, 0.0], [1e7 + 1.0, 0.0]])
    out, scale = normalize_points(x, 2)
    assert scale == pytest.approx(2.0)
    np.testing.assert_allclose(out[:, 0], [-1.0, -0.5, 0.0, 1.0], atol=1e-7)


def test_single_cell_is_fine():
    out, scale = normalize_points(np.array([[3.0, 4.0]]), 2)
    np.testing.assert_array_equal(out, [[0.0, 0.0]])
    assert scale == 2.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_coordinates_name_rows(bad):
    x = rng(0).normal(size=(50, 2))
    x[13, 1] = bad
    x[42, 0] = bad
    with pytest.raises(ValueError) as exc:
        normalize_points(x, 2, "X_umap_2d")
    msg = str(exc.value)
    assert "13" in msg and "42" in msg
    assert "X_umap_2d" in msg


@pytest.mark.parametrize(
    ("shape", "d"), [((10, 3), 2), ((10, 1), 2), ((10, 2, 1), 2), ((10, 2), 3), ((0, 2), 2)]
)
def test_wrong_shape_or_empty_is_value_error(shape, d):
    with pytest.raises(ValueError):
        normalize_points(np.zeros(shape), d)


# =============================================================================== §2.6.6 quantisation
@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quantize_round_trip_within_half_step(bits, seed):
    v = rng(seed).normal(loc=3.0, scale=10.0, size=500)
    q = quantize(v, bits)
    assert q.codes.dtype == (np.uint8 if bits == 8 else np.uint16)
    assert q.codes.shape == v.shape
    assert isinstance(q.lo, float) and isinstance(q.hi, float)
    assert q.lo == v.min() and q.hi == v.max()
    # round to nearest: every code is within half a code of the exact position
    exact = (v - q.lo) * MAXQ[bits] / (q.hi - q.lo)
    assert np.all(np.abs(q.codes.astype(np.float64) - exact) <= 0.5 + 1e-9)
    decoded = dequantise(q.codes, q.lo, q.hi, bits)
    assert np.all(np.abs(decoded - v) <= half_step(q.lo, q.hi, bits) * (1 + 1e-9))
    # the package's own decoder agrees with the SPEC decoder (it returns float32)
    np.testing.assert_allclose(dequantize(q.codes, q.lo, q.hi, bits), decoded, rtol=1e-6)


@pytest.mark.parametrize("bits", [8, 16])
def test_quantize_end_points_and_not_truncation(bits):
    lo, hi = -2.0, 2.0
    step = (hi - lo) / MAXQ[bits]
    v = np.array([lo, hi, lo + 0.6 * step, hi - 0.6 * step, lo + 0.4 * step])
    q = quantize(v, bits)
    assert q.codes.tolist() == [0, MAXQ[bits], 1, MAXQ[bits] - 1, 0]


@pytest.mark.parametrize("bits", [8, 16])
def test_non_finite_values_get_the_missing_marker(bits):
    v = np.array([np.nan, 1.0, np.inf, 3.0, -np.inf, 2.0])
    q = quantize(v, bits)
    assert (q.lo, q.hi) == (1.0, 3.0)
    m, top = MISSING[bits], MAXQ[bits]
    assert q.codes.tolist() == [m, 0, m, top, m, top // 2]
    decoded = dequantise(q.codes, q.lo, q.hi, bits)
    assert np.isnan(decoded[[0, 2, 4]]).all()
    assert np.isnan(dequantize(q.codes, q.lo, q.hi, bits)[[0, 2, 4]]).all()


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("value", [0.0, -3.5, 7.0])
def test_constant_field(bits, value):
    q = quantize(np.full(10, value), bits)
    assert q.lo == value and q.hi == value + 1
    assert (q.codes == 0).all()
    np.testing.assert_array_equal(dequantise(q.codes, q.lo, q.hi, bits), np.full(10, value))


@pytest.mark.parametrize("bits", [8, 16])
def test_constant_field_where_plus_one_rounds_back(bits):
    value = 1e20  # 1e20 + 1 == 1e20 in float64
    q = quantize(np.array([value, value, np.nan]), bits)
    assert q.lo == value
    assert np.isfinite(q.hi) and q.hi > q.lo
    assert q.hi == np.nextafter(value, np.inf)
    assert q.codes.tolist() == [0, 0, MISSING[bits]]


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("values", [[np.nan, np.nan], [np.inf, -np.inf, np.nan]])
def test_no_finite_value_gives_zero_one(bits, values):
    q = quantize(np.array(values, dtype=np.float64), bits)
    assert (q.lo, q.hi) == (0.0, 1.0)
    assert (q.codes == MISSING[bits]).all()


@pytest.mark.parametrize("bits", [8, 16])
def test_codes_never_reach_the_missing_marker(bits):
    r = rng(3)
    v = np.concatenate([r.uniform(-1, 1, 10_000), [1.0, 1.0 - 1e-16, np.nextafter(1.0, 2.0)]])
    q = quantize(v, bits)
    assert q.codes.max() == MAXQ[bits]
    assert not (q.codes == MISSING[bits]).any()


def test_float32_input_is_accepted():
    v = rng(4).normal(size=100).astype(np.float32)
    q = quantize(v, 16)
    assert q.lo == float(v.min()) and q.hi == float(v.max())


@pytest.mark.parametrize("bits", [0, 4, 12, 32, None, True])
def test_other_bit_widths_are_rejected(bits):
    with pytest.raises(ValueError):
        quantize(np.arange(3.0), bits)


# =============================================================================== §2.6.1 obs kinds
def _cat(key, series):
    col = classify_obs_column(key, series)
    assert type(col).__name__ == "CategoricalColumn", f"{series.dtype} should be categorical"
    return list(col.categories), np.asarray(col.codes).tolist()


def _cont(key, series):
    col = classify_obs_column(key, series)
    assert type(col).__name__ == "ContinuousColumn", f"{series.dtype} should be continuous"
    assert col.values.dtype == np.float32
    return col.values


def test_categorical_keeps_order_and_unused_categories():
    s = pd.Series(pd.Categorical(["b", "a", "b", None], categories=["c", "b", "a"]))
    cats, codes = _cat("k", s)
    assert cats == ["c", "b", "a"]
    assert codes == [1, 2, 1, -1]


def test_categorical_labels_are_str_of_categories():
    s = pd.Series(pd.Categorical([10, 2, 10], categories=[10, 2, 5]))
    cats, codes = _cat("k", s)
    assert cats == ["10", "2", "5"]
    assert codes == [0, 1, 0]


def test_ordered_categorical():
    s = pd.Series(pd.Categorical(["lo", "hi"], categories=["lo", "mid", "hi"], ordered=True))
    assert _cat("k", s) == (["lo", "mid", "hi"], [0, 2])


@pytest.mark.parametrize("values", [[True, False, True], [True, True], [False]])
def test_bool_is_category_false_true(values):
    cats, codes = _cat("k", pd.Series(values, dtype=bool))
    assert cats == ["False", "True"]
    assert codes == [int(v) for v in values]


def test_nullable_boolean_with_na():
    s = pd.Series(pd.array([True, None, False, True], dtype="boolean"))
    assert _cat("k", s) == (["False", "True"], [1, -1, 0, 1])


@pytest.mark.parametrize("dtype", ["int8", "int32", "int64", "uint8", "uint16", "uint64"])
def test_integers_are_continuous(dtype):
    s = pd.Series(np.array([0, 3, 100, 7], dtype=dtype))
    np.testing.assert_array_equal(_cont("k", s), np.array([0, 3, 100, 7], dtype=np.float32))


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_floats_are_continuous_and_keep_nan_inf(dtype):
    values = np.array([1.5, np.nan, np.inf, -np.inf, -2.25], dtype=dtype)
    np.testing.assert_array_equal(_cont("k", pd.Series(values)), values.astype(np.float32))


@pytest.mark.parametrize("dtype", ["Int8", "Int64", "UInt32", "Float32", "Float64"])
def test_nullable_numbers_are_continuous_with_na_as_nan(dtype):
    s = pd.Series(pd.array([1, None, 3, None], dtype=dtype))
    np.testing.assert_array_equal(_cont("k", s), np.array([1, np.nan, 3, np.nan], np.float32))


def test_object_strings_with_none_are_sorted_categories():
    s = pd.Series(["beta", None, "alpha", "beta", np.nan, "gamma"], dtype=object)
    assert _cat("k", s) == (["alpha", "beta", "gamma"], [1, -1, 0, 1, -1, 2])


def test_object_values_are_stringified_before_inference():
    s = pd.Series([2.5, "a", 10, 2.5], dtype=object)
    cats, codes = _cat("k", s)
    assert cats == ["10", "2.5", "a"]
    assert codes == [1, 2, 0, 1]


def test_string_dtype_with_na():
    s = pd.Series(["x", pd.NA, "w"], dtype="string")
    assert _cat("k", s) == (["w", "x"], [1, -1, 0])


def test_datetime_is_category():
    stamps = pd.to_datetime(["2024-03-01", "2023-01-05", None, "2024-03-01"])
    cats, codes = _cat("k", pd.Series(stamps))
    assert len(cats) == 2 and len(set(cats)) == 2
    assert codes[2] == -1
    assert cats == sorted(cats)
    # each label is the stringified timestamp of its cells
    for i in (0, 1, 3):
        assert pd.Timestamp(cats[codes[i]]) == stamps[i]


@pytest.mark.parametrize(
    "series",
    [
        pd.Series(pd.Categorical(["a", ""], categories=["a", ""])),
        pd.Series(pd.Categorical(["a", "  "], categories=["a", "  "])),
        pd.Series(["a", "", "b"], dtype=object),
        pd.Series(["a", "\t"], dtype="string"),
    ],
)
def test_blank_label_is_value_error(series):
    with pytest.raises(ValueError) as exc:
        classify_obs_column("my_col", series)
    assert "my_col" in str(exc.value)


def test_blank_unused_category_is_value_error_too():
    s = pd.Series(pd.Categorical(["a"], categories=["a", " "]))
    with pytest.raises(ValueError):
        classify_obs_column("k", s)


@pytest.mark.parametrize("categories", [[1, "1"], [1.5, "1.5"], [True, "True"]])
def test_labels_equal_after_str_are_value_error(categories):
    s = pd.Series(pd.Categorical([categories[0]], categories=categories))
    with pytest.raises(ValueError) as exc:
        classify_obs_column("clash", s)
    assert "clash" in str(exc.value)


# =============================================================================== §2.6.7 codes dtype
@pytest.mark.parametrize(
    ("k", "setting", "expected"),
    [
        (0, "auto", "uint8"),
        (1, "auto", "uint8"),
        (255, "auto", "uint8"),
        (256, "auto", "uint16"),
        (65535, "auto", "uint16"),
        (255, "uint8", "uint8"),
        (2, "uint16", "uint16"),
        (65535, "uint16", "uint16"),
    ],
)
def test_codes_dtype_choice(k, setting, expected):
    assert codes_dtype_for("field", k, setting) == expected


@pytest.mark.parametrize(
    ("k", "setting"), [(65536, "auto"), (256, "uint8"), (65536, "uint16"), (70000, "uint8")]
)
def test_codes_dtype_limits(k, setting):
    with pytest.raises(ValueError) as exc:
        codes_dtype_for("big_field", k, setting)
    assert "big_field" in str(exc.value)
    assert str(k) in str(exc.value)


@pytest.mark.parametrize("setting", ["uint32", "UINT8", "", None, True, 8])
def test_codes_dtype_unknown_setting(setting):
    with pytest.raises(ValueError):
        codes_dtype_for("f", 3, setting)


# =============================================================================== §2.6.8 centroids
def _codes_with_sizes(sizes, n_missing, seed):
    codes = np.concatenate([np.full(s, i) for i, s in enumerate(sizes)] + [np.full(n_missing, -1)])
    return rng(seed).permutation(codes).astype(np.int64)


# category sizes: empty (unused), below, at and just above min_points=10, and large
SIZES = [0, 3, 9, 10, 11, 14, 25, 60]


@pytest.mark.parametrize("kernel", [True, False], ids=["numba", "numpy"])
@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("q", [None, 0.51, 0.6, 0.8, 0.95, 0.99])
@pytest.mark.parametrize("min_points", [1, 5, 10, 11])
def test_centroids_match_loop_reference(d, q, min_points, kernel):
    codes = _codes_with_sizes(SIZES, 7, seed=d)
    categories = [f"c{i}" for i in range(len(SIZES))]
    points, _ = normalise(rng(10 + d).normal(size=(codes.size, d)))
    before = snapshot(codes), snapshot(points)
    got = compute_centroids(codes, categories, points, q, min_points, kernel=kernel)
    want = centroids_reference(codes, categories, points, q, min_points)
    assert [c["category"] for c in got] == [c["category"] for c in want]
    assert [c["n_points"] for c in got] == [c["n_points"] for c in want]
    for g, w in zip(got, want, strict=True):
        assert set(g) == {"category", "position", "n_points"}
        assert isinstance(g["n_points"], int) and isinstance(g["category"], str)
        assert len(g["position"]) == d
        assert all(isinstance(v, float) for v in g["position"])
        np.testing.assert_allclose(g["position"], w["position"], rtol=0, atol=1e-9)
    assert_same(before[0], codes, "codes")
    assert_same(before[1], points, "points")


@pytest.mark.parametrize("trial", range(40))
def test_centroids_numpy_equals_the_kernel_bit_for_bit(trial):
    """A server computes centroids with numpy until numba pays for its loading, prepare()
    mostly with the kernel: the manifests must not depend on which one ran."""
    from cellucid.export.kernels import trimmed_group_means

    g = rng(100 + trial)
    n, k, d = int(g.integers(1, 2000)), int(g.integers(1, 40)), int(g.integers(1, 4))
    codes = g.integers(-1 if trial % 2 else 0, k, n).astype(
        (np.int8, np.int16, np.int32)[trial % 3]
    )
    if k > 2 and trial % 5 == 0:
        codes[codes == 1] = 2  # an empty category
    points = g.normal(size=(n, d)).astype(np.float32 if trial % 3 else np.float64)
    if trial % 4 == 0:
        points = np.round(points, 1)  # ties at the quantile
    q = float(g.choice([0.51, 0.6, 0.8, 0.95, 0.99]))
    min_points = int(g.choice([1, 5, 10, 11]))
    before = snapshot(codes), snapshot(points)
    want = trimmed_group_means(
        codes.astype(np.int32), np.ascontiguousarray(points), k, q, min_points
    )
    got = trimmed_group_means_numpy(codes, points, k, q, min_points)
    for name, a, b in zip(("means", "counts", "kept", "kept_counts"), want, got, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert np.array_equal(a.view(np.uint8), b.view(np.uint8)), name  # NaNs included
    assert_same(before[0], codes, "codes")
    assert_same(before[1], points, "points")


@pytest.mark.parametrize("case", ["one point per category", "all at one spot", "many"])
def test_centroids_numpy_equals_the_kernel_at_the_edges(case):
    """Zero distances (no spread to bin), categories at min_points, and so many categories
    that each gets few distance bins."""
    from cellucid.export.kernels import trimmed_group_means

    g = rng(7)
    k = {"one point per category": 50, "all at one spot": 3, "many": 5000}[case]
    n = {"one point per category": 50, "all at one spot": 400, "many": 60_000}[case]
    codes = np.arange(n) % k if case != "many" else g.integers(0, k, n)
    points = g.normal(size=(n, 2))
    if case == "all at one spot":
        points[:] = 0.25
    for q, min_points in ((0.95, 1), (0.6, 10), (0.51, 3)):
        want = trimmed_group_means(codes.astype(np.int32), points, k, q, min_points)
        got = trimmed_group_means_numpy(codes, points, k, q, min_points)
        for a, b in zip(want, got, strict=True):
            assert np.array_equal(a.view(np.uint8), b.view(np.uint8))


def test_centroids_use_numpy_until_numba_pays():
    assert not centroids_use_kernel(False, 20_000_000, 20)  # a 10M-cell start: two fields
    assert centroids_use_kernel(False, 200_000_000, 20)
    assert centroids_use_kernel(False, 1000, 5000)  # a Python step per category is slow
    assert centroids_use_kernel(True, 1000, 3)  # loaded: always faster


def test_centroids_trim_far_members():
    # nine points at the origin and one far away: q=0.9 of the distances trims the far one
    pts = np.zeros((10, 2))
    pts[9] = [1.0, 1.0]
    got = compute_centroids(np.zeros(10, dtype=np.int64), ["a"], pts, 0.8, 5)
    assert got == [{"category": "a", "position": [0.0, 0.0], "n_points": 9}]


def test_centroids_at_min_points_are_untrimmed_means():
    pts = np.zeros((10, 2))
    pts[9] = [1.0, 1.0]
    got = compute_centroids(np.zeros(10, dtype=np.int64), ["a"], pts, 0.8, 10)
    assert got == [{"category": "a", "position": [0.1, 0.1], "n_points": 10}]


def test_centroids_fall_back_when_too_few_members_remain():
    # m = 11 > min_points = 10, but q = 0.6 keeps only 7 members (< 10): untrimmed mean
    pts = np.arange(11, dtype=np.float64)[:, None]
    got = compute_centroids(np.zeros(11, dtype=np.int64), ["a"], pts, 0.6, 10)
    assert got == [{"category": "a", "position": [5.0], "n_points": 11}]


def test_centroids_all_missing_or_none_quantile():
    pts = rng(0).normal(size=(20, 2))
    assert compute_centroids(np.full(20, -1, dtype=np.int64), ["a", "b"], pts, 0.95, 1) == []
    assert compute_centroids(np.zeros(20, dtype=np.int64), ["a"], pts, None, 1) == []


# =============================================================================== §2.6.9 outliers
def test_outlier_ties_take_the_highest_rank():
    # mean exactly 0; distances 0, 1, 1, 1, 1, 2, 2 → ranks 1, 5, 5, 5, 5, 7, 7 (of 7)
    lat = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1], [2, 0], [-2, 0]], dtype=np.float64)
    got = compute_outlier_quantiles(np.zeros(7, dtype=np.int64), 1, lat, 1)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.array([1, 5, 5, 5, 5, 7, 7], np.float32) / 7)


@pytest.mark.parametrize("k", [0, 3])
def test_outliers_when_every_category_is_missing(k):
    """An all-missing column (e.g. object dtype, all None → no category at all) is all NaN."""
    got = compute_outlier_quantiles(
        np.full(6, -1, dtype=np.int64), k, rng(0).normal(size=(6, 2)), 1
    )
    assert got.shape == (6,) and np.isnan(got).all()


@pytest.mark.parametrize("k", [0, 3])
def test_centroids_when_every_category_is_missing(k):
    cats = [f"c{i}" for i in range(k)]
    assert (
        compute_centroids(np.full(6, -1, dtype=np.int64), cats, rng(0).normal(size=(6, 2)), 0.9, 1)
        == []
    )


@pytest.mark.parametrize("min_points", [1, 3, 10, 11, 100])
@pytest.mark.parametrize("k_dims", [1, 4])
def test_outliers_match_loop_reference(min_points, k_dims):
    codes = _codes_with_sizes(SIZES, 9, seed=min_points)
    lat = rng(min_points + k_dims).normal(size=(codes.size, k_dims))
    before = snapshot(lat)
    got = compute_outlier_quantiles(codes, len(SIZES), lat, min_points)
    want = outliers_reference(codes, len(SIZES), lat, min_points)
    assert got.shape == (codes.size,)
    np.testing.assert_array_equal(got, want)  # NaN positions equal too
    finite = got[np.isfinite(got)]
    assert ((finite > 0) & (finite <= 1)).all()
    assert np.isnan(got[codes < 0]).all()
    assert_same(before, lat, "latent")


# =============================================================================== §2.8 edges
def _random_graph(n, seed):
    r = rng(seed)
    a = np.where(r.random((n, n)) < 0.15, r.uniform(0.1, 1.0, (n, n)), 0.0)
    np.fill_diagonal(a, 0.7)
    return a


def _check_edges(e, n, dense):
    src, dst, w, max_nb = edges_reference(dense)
    assert e.src.dtype == np.uint16 and e.dst.dtype == np.uint16  # n <= 65536 here
    assert e.index_dtype == "uint16" and e.index_bytes == 2
    assert e.weights.dtype == np.float64
    np.testing.assert_array_equal(e.src, src)
    np.testing.assert_array_equal(e.dst, dst)
    np.testing.assert_array_equal(e.weights, w)
    assert e.n_edges == len(src)
    assert e.max_neighbors == max_nb
    assert (e.src.astype(np.int64) < e.dst).all()
    key = e.src.astype(np.int64) * n + e.dst
    assert (np.diff(key) > 0).all()  # strictly ascending by (src, dst)
    assert (e.weights > 0).all() and np.isfinite(e.weights).all()
    assert e.max_neighbors < n


FORMATS = {
    "dense": lambda a: a,
    "dense_f_order": lambda a: np.asfortranarray(a),
    "csr": sp.csr_matrix,
    "csc": sp.csc_matrix,
    "coo": sp.coo_matrix,
    "lil": sp.lil_matrix,
    "csr_array": sp.csr_array,
    "coo_array": sp.coo_array,
}


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("seed", [0, 1])
def test_build_edges_matches_reference(fmt, seed):
    n = 40
    dense = _random_graph(n, seed)
    m = FORMATS[fmt](dense)
    before = snapshot(m)
    e = build_edges(m, n)
    _check_edges(e, n, dense)
    assert_same(before, m, "connectivities")


def test_symmetric_input_keeps_stored_values():
    a = np.zeros((4, 4))
    a[0, 2] = a[2, 0] = 0.3
    a[1, 3] = a[3, 1] = 0.9
    e = build_edges(sp.csr_matrix(a), 4)
    assert e.src.tolist() == [0, 1] and e.dst.tolist() == [2, 3]
    assert e.weights.tolist() == [0.3, 0.9]
    assert e.max_neighbors == 1


def test_duplicates_are_summed_before_symmetrising():
    # (0,1) stored twice (0.25 + 0.25) against (1,0) = 0.4 → max(0.5, 0.4) = 0.5
    coo = sp.coo_matrix(([0.25, 0.25, 0.4], ([0, 0, 1], [1, 1, 0])), shape=(3, 3))
    before = snapshot(coo)
    e = build_edges(coo, 3)
    assert (e.src.tolist(), e.dst.tolist(), e.weights.tolist()) == ([0], [1], [0.5])
    assert_same(before, coo, "coo")


def test_unsorted_non_canonical_csr_is_not_modified():
    data = np.array([0.5, 0.2, 0.2, 0.7, 0.3])
    indices = np.array([2, 1, 1, 0, 0])  # row 0 unsorted and with a duplicate
    indptr = np.array([0, 4, 5, 5])
    m = sp.csr_matrix((data, indices, indptr), shape=(3, 3))
    before = snapshot(m)
    e = build_edges(m, 3)
    # C[0,1] = 0.4 (summed), C[0,2] = 0.5, C[1,0] = 0.3 → (0,1)=0.4, (0,2)=0.5; C[0,0] dropped
    assert list(zip(e.src.tolist(), e.dst.tolist(), e.weights.tolist(), strict=True)) == [
        (0, 1, pytest.approx(0.4)),
        (0, 2, 0.5),
    ]
    assert_same(before, m, "csr")


@pytest.mark.parametrize("fmt", ["dense", "csr"])
def test_booleans_become_weight_one(fmt):
    a = np.zeros((4, 4), dtype=bool)
    a[0, 1] = a[2, 1] = a[3, 3] = True
    e = build_edges(a if fmt == "dense" else sp.csr_matrix(a), 4)
    assert e.src.tolist() == [0, 1] and e.dst.tolist() == [1, 2]
    assert e.weights.dtype == np.float64 and e.weights.tolist() == [1.0, 1.0]
    assert e.max_neighbors == 2


def test_integer_weights_become_float64():
    a = np.array([[0, 3], [1, 0]], dtype=np.int32)
    e = build_edges(a, 2)
    assert e.weights.dtype == np.float64 and e.weights.tolist() == [3.0]


def test_max_neighbors_counts_emitted_edges_not_self_loops():
    a = np.zeros((7, 7))
    a[0, 1:6] = 1.0  # star 0 - 1..5
    a[0, 0] = 1.0  # self-loop, must not count
    a[3, 0] = 2.0  # reverse direction of an existing edge, same undirected edge
    e = build_edges(sp.csr_matrix(a), 7)
    assert e.n_edges == 5
    assert e.max_neighbors == 5
    assert e.weights.tolist() == [1.0, 1.0, 2.0, 1.0, 1.0]


@pytest.mark.parametrize("fmt", ["dense", "csr"])
@pytest.mark.parametrize("kind", ["zeros", "diagonal_only", "stored_zeros"])
def test_empty_graph(fmt, kind):
    n = 5
    a = np.zeros((n, n))
    if kind == "diagonal_only":
        np.fill_diagonal(a, 1.0)
    m = sp.csr_matrix(a) if fmt == "csr" else a
    if kind == "stored_zeros":
        m = sp.csr_matrix((np.zeros(3), ([0, 1, 2], [1, 2, 3])), shape=(n, n))
    e = build_edges(m, n)
    assert e.n_edges == 0 and e.max_neighbors == 0
    assert e.src.size == e.dst.size == e.weights.size == 0
    assert e.src.dtype == np.uint16 and e.weights.dtype == np.float64


@pytest.mark.parametrize(
    ("n", "dtype", "nbytes"), [(65_535, "uint16", 2), (65_536, "uint16", 2), (65_537, "uint32", 4)]
)
def test_index_width_is_the_smallest_that_fits(n, dtype, nbytes):
    m = sp.coo_matrix(([0.5, 0.25], ([0, n - 2], [1, n - 1])), shape=(n, n))
    e = build_edges(m, n)
    assert e.index_dtype == dtype and e.index_bytes == nbytes
    assert e.src.dtype == np.dtype(dtype) and e.dst.dtype == np.dtype(dtype)
    assert e.src.tolist() == [0, n - 2] and e.dst.tolist() == [1, n - 1]
    assert e.max_neighbors == 1


@pytest.mark.parametrize("bad", [-0.1, np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("fmt", ["dense", "csr"])
def test_negative_or_non_finite_weights_are_value_error(bad, fmt):
    a = np.zeros((4, 4))
    a[0, 1] = 0.5
    a[2, 3] = bad
    with pytest.raises(ValueError):
        build_edges(sp.csr_matrix(a) if fmt == "csr" else a, 4)


SHAPE_CASES = [
    *((fmt, shape) for fmt in ("dense", "csr") for shape in [(5, 6), (6, 5), (4, 4), (6, 6)]),
    ("dense", (5,)),
    ("dense", (5, 5, 1)),
]


@pytest.mark.parametrize(("fmt", "shape"), SHAPE_CASES, ids=lambda v: str(v))
def test_wrong_shape_is_value_error(fmt, shape):
    a = np.zeros(shape)
    with pytest.raises(ValueError) as exc:
        build_edges(sp.csr_matrix(a) if fmt == "csr" else a, 5)
    assert "5" in str(exc.value)


# =============================================================================== §2.9 vector fields
N = 12


def _vec(d, seed=0):
    return rng(seed).normal(size=(N, d)) if d else rng(seed).normal(size=N)


def test_explicit_and_implicit_keys():
    fields = {"velocity_umap_2d": _vec(2), "drift": _vec(3, 1), "one": _vec(0, 2)}
    out = parse_vector_fields(fields, N, [1, 2, 3])
    assert set(out) == {("velocity_umap", 2), ("drift", 3), ("one", 1)}
    np.testing.assert_array_equal(out[("velocity_umap", 2)], fields["velocity_umap_2d"])
    np.testing.assert_array_equal(out[("drift", 3)], fields["drift"])
    np.testing.assert_array_equal(out[("one", 1)].reshape(-1), fields["one"])
    assert out[("one", 1)].shape in ((N, 1), (N,))


def test_implicit_column_vector_is_dim_one():
    out = parse_vector_fields({"v": _vec(1)}, N, [1, 2])
    assert set(out) == {("v", 1)}


@pytest.mark.parametrize("explicit_first", [True, False])
def test_explicit_key_wins_over_implicit_same_dim(explicit_first):
    implicit, explicit = _vec(2, 1), _vec(2, 2)
    items = [("v_2d", explicit), ("v", implicit)]
    fields = dict(items if explicit_first else items[::-1])
    out = parse_vector_fields(fields, N, [2, 3])
    assert set(out) == {("v", 2)}
    np.testing.assert_array_equal(out[("v", 2)], explicit)


def test_implicit_fills_a_dim_no_explicit_key_gives():
    fields = {"v_2d": _vec(2, 1), "v": _vec(3, 2)}
    out = parse_vector_fields(fields, N, [2, 3])
    assert set(out) == {("v", 2), ("v", 3)}
    np.testing.assert_array_equal(out[("v", 3)], fields["v"])


def test_none_values_are_skipped():
    out = parse_vector_fields({"a_2d": None, "b": None, "c_2d": _vec(2)}, N, [2])
    assert set(out) == {("c", 2)}


def test_unavailable_dim_is_skipped_with_a_warning():
    with pytest.warns(UserWarning, match="velocity_umap_3d"):
        out = parse_vector_fields(
            {"velocity_umap_3d": _vec(3), "velocity_umap_2d": _vec(2)}, N, [2]
        )
    assert set(out) == {("velocity_umap", 2)}


def test_nothing_to_warn_when_all_dims_available():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parse_vector_fields({"v_2d": _vec(2)}, N, [2])


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("v_2d", np.zeros((N, 3))),  # explicit dim 2, three columns
        ("v_2d", np.zeros((N + 1, 2))),  # wrong n
        ("v_1d", np.zeros((N, 2))),
        ("v", np.zeros((N, 4))),  # implicit with 4 columns
        ("v", np.zeros((N, 2, 1))),  # 3-D
        ("v", np.zeros((N - 1, 2))),  # implicit with wrong n
    ],
)
def test_bad_shapes_are_value_error(key, value):
    with pytest.raises(ValueError) as exc:
        parse_vector_fields({key: value}, N, [1, 2, 3])
    assert key in str(exc.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("key", ["v_2d", "v"])
def test_non_finite_vectors_are_value_error(bad, key):
    value = _vec(2)
    value[4, 1] = bad
    with pytest.raises(ValueError) as exc:
        parse_vector_fields({key: value}, N, [2])
    assert key in str(exc.value)


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("my field_2d", "my_field"),
        ("vel/umap", "vel_umap"),
        ("_lead_2d", "lead"),
        ("Gène", "G_ne"),
        ("__2d", "field"),
    ],
)
def test_unsafe_field_id_suggests_the_safe_name(key, suggestion):
    value = _vec(2)
    with pytest.raises(ValueError) as exc:
        parse_vector_fields({key: value}, N, [2])
    assert repr(suggestion) in str(exc.value) or f'"{suggestion}"' in str(exc.value)


def test_empty_field_id_is_value_error():
    with pytest.raises(ValueError):
        parse_vector_fields({"": _vec(2)}, N, [2])


@pytest.mark.parametrize(
    "fields", [[("v_2d", np.zeros((N, 2)))], "v_2d", np.zeros((N, 2)), pd.Series([1])]
)
def test_non_dict_is_type_error(fields):
    with pytest.raises(TypeError):
        parse_vector_fields(fields, N, [2])


def test_parse_does_not_modify_inputs():
    fields = {"a_2d": _vec(2).astype(np.float32), "b": _vec(3), "c": sp.csr_matrix(_vec(2))}
    before = snapshot(fields)
    parse_vector_fields(fields, N, [2, 3])
    assert_same(before, fields, "vector_fields")


@pytest.mark.parametrize(
    ("n", "dtype"),
    [(1, "uint16"), (65_536, "uint16"), (65_537, "uint32"), (4_294_967_296, "uint32")],
)
def test_edge_index_dtype(n, dtype):
    assert edge_index_dtype(n) == dtype


def test_edge_index_dtype_beyond_uint32():
    with pytest.raises(ValueError):
        edge_index_dtype(4_294_967_297)


@pytest.mark.parametrize(("dtype", "per_edge"), [("uint16", 48), ("uint32", 44)])
def test_edge_working_set(dtype, per_edge):
    """SPEC §2.8: 44·E + 4·n bytes, 48·E + 4·n with uint16 indices."""
    assert edge_working_set(1000, 300, dtype) == per_edge * 1000 + 4 * 300


@pytest.mark.parametrize("q", [0.51, 0.9, 0.95])
def test_centroids_with_many_tied_distances_match_loop_reference(q):
    """Points on a small integer grid: many members share a distance, so the quantile's
    order statistics sit inside runs of equal values (the selection must still be exact)."""
    r = rng(42)
    codes = r.integers(-1, 4, 3000).astype(np.int64)
    points = r.integers(0, 3, size=(3000, 2)).astype(np.float32)
    categories = ["a", "b", "c", "d"]
    got = compute_centroids(codes, categories, points, q, 10)
    want = centroids_reference(codes, categories, points, q, 10)
    assert [c["n_points"] for c in got] == [c["n_points"] for c in want]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g["position"], w["position"], rtol=0, atol=1e-9)
