"""ExportReader round trips on hand-written exports (tests/_exports.py)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from _exports import gzip_member, quantise, rewrite_payload, write_dataset
from cellucid.export.reader import (
    CategoricalField,
    ExportReader,
    decode_quantized,
    path_problem,
    payload_path,
)

VARIANTS = [
    pytest.param({}, id="plain"),
    pytest.param({"compression": 6}, id="gzip"),
    pytest.param({"obs_quantization": 8, "var_quantization": 8}, id="q8"),
    pytest.param({"obs_quantization": 16, "var_quantization": 16, "compression": 1}, id="q16-gz"),
    pytest.param({"codes_dtype": "uint16", "dims": (1, 2, 3)}, id="u16-codes"),
    pytest.param({"latent": False, "connectivity": False, "vectors": False}, id="lean"),
]


@pytest.fixture(params=VARIANTS)
def exported(request, tmp_path: Path):
    ex = write_dataset(tmp_path / "ds", **request.param)
    return ex, ExportReader(ex.path)


def test_manifests(exported) -> None:
    ex, reader = exported
    assert reader.identity["id"] == "demo"
    assert reader.obs_manifest["n_points"] == ex.n == reader.n_cells
    assert reader.compression == ex.compression
    assert reader.dimensions == list(ex.dims)
    assert (reader.var_manifest is None) == (not ex.genes)
    assert (reader.connectivity_manifest is None) == (ex.edges is None)


def test_points(exported) -> None:
    ex, reader = exported
    for d in ex.dims:
        pts = reader.points(d)
        assert pts.dtype == np.float32 and pts.shape == (ex.n, d)
        np.testing.assert_array_equal(pts, ex.points[d])
    with pytest.raises(KeyError):
        reader.points(4)


def test_continuous_fields(exported) -> None:
    ex, reader = exported
    for key, expected in ex.continuous.items():
        values = reader.obs_field(key)
        assert isinstance(values, np.ndarray) and values.dtype == np.float32
        np.testing.assert_array_equal(values, expected)  # NaN == NaN here


def test_categorical_field(exported) -> None:
    ex, reader = exported
    field = reader.obs_field("cell type")
    assert isinstance(field, CategoricalField)
    np.testing.assert_array_equal(field.codes, ex.codes["cell type"])
    assert field.codes.dtype == ex.codes["cell type"].dtype
    assert field.categories == ex.categories["cell type"]
    assert field.missing == (65535 if field.codes.dtype == np.uint16 else 255)
    assert sorted(field.centroids) == list(ex.dims)
    assert [c["category"] for c in field.centroids[ex.dims[0]]] == ["B cell", "T cell", "NK"]
    if ex.outliers:
        assert field.outliers is not None and field.outliers.dtype == np.float32
        np.testing.assert_array_equal(field.outliers, ex.outliers["cell type"])
    else:
        assert field.outliers is None


def test_obs_frame(exported) -> None:
    ex, reader = exported
    frame = reader.obs_frame()
    assert list(frame.columns) == ["age", "pct mito", "cell type"]
    assert isinstance(frame.index, pd.RangeIndex) and len(frame) == ex.n
    assert frame["age"].dtype == np.float32
    column = frame["cell type"]
    assert isinstance(column.dtype, pd.CategoricalDtype)
    assert list(column.cat.categories) == ex.categories["cell type"]
    missing = ex.codes["cell type"] == reader.obs_field("cell type").missing
    assert column.isna().to_numpy().tolist() == missing.tolist()
    present = ~missing
    expected = np.array(ex.categories["cell type"])[ex.codes["cell type"][present].astype(int)]
    assert column[present].astype(str).tolist() == expected.tolist()


def test_genes(exported) -> None:
    ex, reader = exported
    assert reader.gene_ids() == list(ex.genes)
    for gene_id, expected in ex.genes.items():
        values = reader.gene(gene_id)
        assert values.dtype == np.float32 and values.shape == (ex.n,)
        np.testing.assert_array_equal(values, expected)
    with pytest.raises(KeyError):
        reader.gene("nope")


def test_edges(exported) -> None:
    ex, reader = exported
    if ex.edges is None:
        with pytest.raises(LookupError):
            reader.edges()
        return
    src, dst, weights = reader.edges()
    assert src.dtype == np.uint16 and dst.dtype == np.uint16 and weights.dtype == np.float64
    for got, want in zip((src, dst, weights), ex.edges, strict=True):
        np.testing.assert_array_equal(got, want)


def test_vectors(exported) -> None:
    ex, reader = exported
    assert reader.vector_field_ids() == (["velocity_umap"] if ex.vectors else [])
    for (field_id, d), expected in ex.vectors.items():
        np.testing.assert_array_equal(reader.vectors(field_id, d), expected)
    with pytest.raises(KeyError):
        reader.vectors("nope", 2)


def test_unknown_obs_key(exported) -> None:
    _, reader = exported
    with pytest.raises(KeyError):
        reader.obs_field("nope")
    assert reader.obs_keys() == ["age", "pct mito", "cell type"]


# ---- quantisation ------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [8, 16])
def test_quantised_round_trip_error_is_half_a_step(tmp_path: Path, bits: int) -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(10, 3, 500)
    values[[4, 9]] = [np.nan, -np.inf]
    codes, lo, hi = quantise(values, bits)
    decoded = decode_quantized(codes, lo, hi, bits)
    step = (hi - lo) / ((1 << bits) - 2)
    finite = np.isfinite(values)
    assert np.isnan(decoded[~finite]).all()
    assert np.abs(decoded[finite] - values[finite]).max() <= step / 2 + 1e-5 * abs(hi)
    assert decoded[finite].min() == np.float32(lo) and decoded[finite].max() == np.float32(hi)


def test_decode_quantized_formula() -> None:
    codes = np.array([0, 1, 65534, 65535], dtype=np.uint16)
    out = decode_quantized(codes, -1.0, 1.0, 16)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[:3], np.float32([-1.0, -1.0 + 2.0 / 65534, 1.0]))
    assert np.isnan(out[3])
    with pytest.raises(ValueError):
        decode_quantized(codes, 0.0, 1.0, 12)


def test_upstream_truncated_codes_decode_the_same_way() -> None:
    # upstream truncates while we round; decoding is identical (SPEC §2.6.6)
    codes = np.array([0, 127, 253], dtype=np.uint8)
    np.testing.assert_allclose(decode_quantized(codes, 0.0, 254.0, 8), [0, 127, 253])


# ---- byte order and payload handling -----------------------------------------------------------
def test_payloads_are_little_endian(tmp_path: Path) -> None:
    ex = write_dataset(
        tmp_path / "ds",
        n=2,
        dims=(1,),
        continuous=False,
        categorical=False,
        n_genes=0,
        connectivity=False,
        vectors=False,
    )
    (ex.path / "points_1d.bin").write_bytes(struct.pack("<2f", -1.0, 0.75))
    reader = ExportReader(ex.path)
    np.testing.assert_array_equal(reader.points(1)[:, 0], [-1.0, 0.75])
    assert reader.points(1).dtype.isnative


def test_read_payload_gunzips_by_suffix_only(tmp_path: Path) -> None:
    ex = write_dataset(tmp_path / "ds", compression=6)
    reader = ExportReader(ex.path)
    raw = reader.read_payload("points_2d.bin.gz")
    assert len(raw) == ex.n * 2 * 4
    (ex.path / "blob.bin").write_bytes(gzip_member(b"abc", 6))
    assert reader.read_payload("blob.bin") == gzip_member(b"abc", 6)  # not gunzipped


@pytest.mark.parametrize("tail", [b"\0", gzip_member(b"x", 6)], ids=["trailing", "two-members"])
def test_read_payload_rejects_extra_gzip_data(tmp_path: Path, tail: bytes) -> None:
    ex = write_dataset(tmp_path / "ds", compression=6)
    target = ex.path / "obs/age.values.f32.gz"
    target.write_bytes(target.read_bytes() + tail)
    with pytest.raises(ValueError, match="after the gzip member"):
        ExportReader(ex.path).obs_field("age")


@pytest.mark.parametrize(
    "relpath",
    [
        "../x.bin",
        "obs/../../x.bin",
        "/etc/passwd",
        "C:/x.bin",
        "c:x.bin",
        "obs\\x.bin",
        "a b.bin",
        "x.bin?v=1",
        "x.bin#a",
        "",
        "https://example.org/x.bin",
    ],
)
def test_read_payload_rejects_unsafe_paths(tmp_path: Path, relpath: str) -> None:
    ex = write_dataset(tmp_path / "ds")
    with pytest.raises(ValueError, match="payload path"):
        ExportReader(ex.path).read_payload(relpath)


def test_wrong_length_raises(tmp_path: Path) -> None:
    ex = write_dataset(tmp_path / "ds")
    rewrite_payload(ex.path / "var/GENE1.values.f32", lambda b: b[:-4])
    reader = ExportReader(ex.path)
    with pytest.raises(ValueError, match="expected 240 bytes"):
        reader.gene("GENE1")
    np.testing.assert_array_equal(reader.gene("GENE0"), ex.genes["GENE0"])


def test_missing_directory_and_manifests(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ExportReader(tmp_path / "nope")
    reader = ExportReader(tmp_path)
    with pytest.raises(FileNotFoundError):
        _ = reader.identity
    assert reader.var_manifest is None and reader.connectivity_manifest is None


def test_lazy(tmp_path: Path) -> None:
    ex = write_dataset(tmp_path / "ds")
    reader = ExportReader(ex.path)
    (ex.path / "var_manifest.json").unlink()
    (ex.path / "obs" / "age.values.f32").unlink()
    # nothing was read at construction; other fields still decode
    assert reader.var_manifest is None
    assert reader.obs_field("pct mito").shape == (ex.n,)
    with pytest.raises(FileNotFoundError):
        reader.obs_field("age")
    assert "ExportReader(" in repr(reader)


# ---- helpers -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("obs/a..b.values.f32", None),
        ("vectors/velocity_umap_2d.bin.gz", None),
        ("..", "has a '..' segment"),
        ("a/../b", "has a '..' segment"),
        ("/a", "is absolute"),
        ("D:\\a", "has a backslash"),
        ("D:a", "is absolute"),
        ("a\tb", "has whitespace"),
        ("a\x00b", "has a control character"),
        (None, "is not a non-empty string"),
        (5, "is not a non-empty string"),
    ],
)
def test_path_problem(value: Any, problem: str | None) -> None:
    assert path_problem(value) == problem


def test_payload_path() -> None:
    assert payload_path("obs/{key}.values.f32", "pct mito") == "obs/pct_mito.values.f32"
    assert payload_path("obs/{key}.codes.{ext}.gz", "a/b", "u16") == "obs/a_b.codes.u16.gz"
    assert payload_path("var/{key}.values.f32", 7) == "var/7.values.f32"
    with pytest.raises(ValueError):
        payload_path("obs/{key}.values.f32", "★")
