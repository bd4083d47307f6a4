"""validate_export against hand-written exports (tests/_exports.py) and one mutation per rule.

Every mutation test breaks one rule of SPEC §2 in an otherwise valid export and asserts the
specific violation (file and key) is reported.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _exports import (
    gunzip_any,
    gzip_member,
    rewrite_json,
    rewrite_payload,
    write_dataset,
    write_root,
)
from cellucid.export.validate import Violation, format_report, validate_export

IDENTITY = "dataset_identity.json"
OBS = "obs_manifest.json"
VAR = "var_manifest.json"
CONN = "connectivity_manifest.json"
CODES = "obs/cell_type.codes.u8"
OUTLIERS = "obs/cell_type.outliers.f32"
SRC, DST = "connectivity/edges.src.bin", "connectivity/edges.dst.bin"
WEIGHTS = "connectivity/edges.weights.f64.bin"


def found(path: Path) -> set[tuple[str, str]]:
    return {(v.file, v.key) for v in validate_export(path)}


def assert_reports(path: Path, file: str, key: str, expected_part: str = "") -> None:
    violations = validate_export(path)
    hits = [v for v in violations if (v.file, v.key) == (file, key)]
    assert hits, f"no violation {file}: {key}; got:\n{format_report(violations)}"
    if expected_part:
        assert any(expected_part in v.expected for v in hits), format_report(hits)


# ---- JSON edit helpers -------------------------------------------------------------------
def _walk(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def put(*path: Any, value: Any) -> Callable[[Any], None]:
    """Set the value at ``path``."""

    def edit(doc: Any) -> None:
        _walk(doc, path[:-1])[path[-1]] = value

    return edit


def drop(*path: Any) -> Callable[[Any], None]:
    """Delete the key (or list item) at ``path``."""

    def edit(doc: Any) -> None:
        del _walk(doc, path[:-1])[path[-1]]

    return edit


def swap_first_keys(doc: dict[str, Any]) -> None:
    items = list(doc.items())
    items[0], items[1] = items[1], items[0]
    doc.clear()
    doc.update(items)


def rename(*path: Any, old: str, new: str) -> Callable[[Any], None]:
    """Rename a key of the object at ``path`` without moving it."""

    def edit(doc: Any) -> None:
        obj = _walk(doc, path)
        items = [(new if k == old else k, v) for k, v in obj.items()]
        obj.clear()
        obj.update(items)

    return edit


# ---- valid exports -----------------------------------------------------------------------
VARIANTS = [
    pytest.param({}, id="default"),
    pytest.param({"compression": 6}, id="gzip6"),
    pytest.param({"compression": 1, "obs_quantization": 8, "var_quantization": 16}, id="gz-q8"),
    pytest.param({"compression": 9, "obs_quantization": 16, "var_quantization": 8}, id="gz-q16"),
    pytest.param({"codes_dtype": "uint16"}, id="codes-u16"),
    pytest.param({"latent": False}, id="no-latent"),
    pytest.param({"latent": False, "obs_quantization": 8}, id="no-latent-q8"),
    pytest.param({"centroid_quantile": None}, id="no-centroids"),
    pytest.param({"dims": (1,)}, id="1d"),
    pytest.param({"dims": (1, 2, 3), "compression": 3}, id="123d-gz"),
    pytest.param({"connectivity": False, "vectors": False, "n_genes": 0}, id="bare"),
    pytest.param(
        {"continuous": False, "categorical": False, "n_genes": 0, "connectivity": False},
        id="no-fields",
    ),
    pytest.param({"continuous": False}, id="categorical-only"),
    pytest.param({"categorical": False, "compression": 6}, id="continuous-only-gz"),
    pytest.param({"n_pairs": 0}, id="no-edges"),
    pytest.param({"n_pairs": 0, "compression": 6}, id="no-edges-gz"),
    pytest.param({"n": 1, "connectivity": False, "categorical": False}, id="one-cell"),
]


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_valid_exports_have_no_violations(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    ex = write_dataset(tmp_path / "ds", **kwargs)
    violations = validate_export(ex.path)
    assert violations == [], format_report(violations)


def test_user_files_at_top_level_are_tolerated(tmp_path: Path) -> None:
    ex = write_dataset(tmp_path / "ds")
    (ex.path / "README.txt").write_text("mine")
    (ex.path / "notes").mkdir()
    (ex.path / "notes" / "a.bin").write_bytes(b"x")
    assert validate_export(ex.path) == []


def test_violation_str_and_report() -> None:
    v = Violation("a/obs_manifest.json", "stats.n_cells", "10", "9")
    assert str(v) == "a/obs_manifest.json: stats.n_cells: expected 10, found 9"
    report = format_report([v, Violation("b", "bytes", "8", "4")])
    assert report.splitlines() == [
        str(v),
        "b: bytes: expected 8, found 4",
        "2 violations in 2 files",
    ]
    assert format_report([]) == "no violations"
    with pytest.raises(AttributeError):
        v.file = "x"  # type: ignore[misc]


# ---- key sets and key order --------------------------------------------------------------
KEY_CASES = [
    # (write kwargs, file, edit, expected file, expected key)
    ({}, OBS, swap_first_keys, OBS, "key order"),
    ({}, CONN, swap_first_keys, CONN, "key order"),
    ({}, VAR, swap_first_keys, VAR, "key order"),
    ({}, OBS, put("extra", value=1), OBS, "extra"),
    ({}, OBS, drop("latent_key"), OBS, "latent_key"),
    ({}, CONN, put("weights", value=True), CONN, "weights"),
    ({}, CONN, drop("weight_bytes"), CONN, "weight_bytes"),
    ({}, VAR, drop("quantization"), VAR, "quantization"),
    ({}, VAR, put("n_genes", value=3), VAR, "n_genes"),
    ({}, IDENTITY, put("path", value="/data/x"), IDENTITY, "path"),
    ({}, IDENTITY, drop("description"), IDENTITY, "description"),
    ({}, IDENTITY, drop("obs_fields"), IDENTITY, "obs_fields"),
    ({}, IDENTITY, put("stats", "n_vars", value=3), IDENTITY, "stats.n_vars"),
    ({}, IDENTITY, drop("stats", "n_edges"), IDENTITY, "stats.n_edges"),
    ({}, IDENTITY, drop("embeddings", "files"), IDENTITY, "embeddings.files"),
    (
        {},
        IDENTITY,
        put("embeddings", "files", "4d", value="points_4d.bin"),
        IDENTITY,
        "embeddings.files.4d",
    ),
    ({}, IDENTITY, put("export_settings", "force", value=True), IDENTITY, "export_settings.force"),
    (
        {},
        IDENTITY,
        drop("export_settings", "obs_categorical_dtype"),
        IDENTITY,
        "export_settings.obs_categorical_dtype",
    ),
    ({}, IDENTITY, put("source", value={"url": "https://x.org"}), IDENTITY, "source.name"),
    ({}, IDENTITY, put("source", "doi", value="10.1/x"), IDENTITY, "source.doi"),
    (
        {},
        IDENTITY,
        put("obs_fields", 0, "n_categories", value=1),
        IDENTITY,
        "obs_fields[0].n_categories",
    ),
    ({}, IDENTITY, drop("obs_fields", 2, "n_categories"), IDENTITY, "obs_fields[2].n_categories"),
    (
        {},
        IDENTITY,
        put("vector_fields", "fields", "velocity_umap", "extra", value=1),
        IDENTITY,
        "vector_fields.fields.velocity_umap.extra",
    ),
    ({}, IDENTITY, drop("vector_fields", "default_field"), IDENTITY, "vector_fields.default_field"),
    ({}, OBS, put("_obsSchemas", "continuous", "foo", value=1), OBS, "_obsSchemas.continuous.foo"),
    (
        {},
        OBS,
        put("_obsSchemas", "continuous", "quantizationBits", value=8),
        OBS,
        "_obsSchemas.continuous.quantizationBits",
    ),
    (
        {"obs_quantization": 8},
        OBS,
        drop("_obsSchemas", "continuous", "quantizationBits"),
        OBS,
        "_obsSchemas.continuous.quantizationBits",
    ),
    (
        {},
        OBS,
        drop("_obsSchemas", "categorical", "outlierQuantized"),
        OBS,
        "_obsSchemas.categorical.outlierQuantized",
    ),
    ({}, OBS, drop("_obsSchemas", "categorical"), OBS, "_obsSchemas.categorical"),
    (
        {"categorical": False},
        OBS,
        put("_obsSchemas", "categorical", value={}),
        OBS,
        "_obsSchemas.categorical",
    ),
    ({}, VAR, drop("_varSchema", "kind"), VAR, "_varSchema.kind"),
    (
        {},
        OBS,
        put("_categoricalFields", 0, 4, "2", 0, "extra", value=1),
        OBS,
        "_categoricalFields[0][4].2[0].extra",
    ),
    (
        {},
        OBS,
        drop("_categoricalFields", 0, 4, "2", 0, "n_points"),
        OBS,
        "_categoricalFields[0][4].2[0].n_points",
    ),
    ({}, OBS, drop("_categoricalFields", 0, 4, "3"), OBS, "_categoricalFields[0][4].3"),
    ({}, OBS, put("_categoricalFields", 0, 4, "1", value=[]), OBS, "_categoricalFields[0][4].1"),
]


@pytest.mark.parametrize(("kwargs", "target", "edit", "file", "key"), KEY_CASES)
def test_key_sets_and_order(tmp_path, kwargs, target, edit, file, key) -> None:
    ex = write_dataset(tmp_path / "ds", **kwargs)
    rewrite_json(ex.path / target, edit)
    assert_reports(ex.path, file, key)


def test_identity_key_order_is_free(tmp_path: Path) -> None:
    """The identity has exact key *sets* (SPEC §2.10); only the manifests fix an order."""
    ex = write_dataset(tmp_path / "ds")

    def reverse(doc: dict[str, Any]) -> None:
        items = list(doc.items())[::-1]
        doc.clear()
        doc.update(items)

    rewrite_json(ex.path / IDENTITY, reverse)
    assert validate_export(ex.path) == []


# ---- values and types --------------------------------------------------------------------
VALUE_CASES = [
    ({}, IDENTITY, put("version", value=1), IDENTITY, "version"),
    ({}, IDENTITY, put("version", value="2"), IDENTITY, "version"),
    ({}, IDENTITY, put("id", value=" demo"), IDENTITY, "id"),
    ({}, IDENTITY, put("id", value=""), IDENTITY, "id"),
    ({}, IDENTITY, put("id", value="de\x07mo"), IDENTITY, "id"),
    ({}, IDENTITY, put("name", value="   "), IDENTITY, "name"),
    ({}, IDENTITY, put("description", value=None), IDENTITY, "description"),
    ({}, IDENTITY, put("cellucid_data_version", value=""), IDENTITY, "cellucid_data_version"),
    ({}, IDENTITY, put("stats", "has_connectivity", value=1), IDENTITY, "stats.has_connectivity"),
    ({}, IDENTITY, put("stats", "n_cells", value=0), IDENTITY, "stats.n_cells"),
    (
        {},
        IDENTITY,
        put("embeddings", "available_dimensions", value=[3, 2]),
        IDENTITY,
        "embeddings.available_dimensions",
    ),
    (
        {},
        IDENTITY,
        put("embeddings", "available_dimensions", value=[2, 3, 4]),
        IDENTITY,
        "embeddings.available_dimensions",
    ),
    (
        {},
        IDENTITY,
        put("embeddings", "default_dimension", value=2),
        IDENTITY,
        "embeddings.default_dimension",
    ),
    (
        {},
        IDENTITY,
        put("embeddings", "files", "2d", value="points_2D.bin"),
        IDENTITY,
        "embeddings.files.2d",
    ),
    (
        {},
        IDENTITY,
        put("export_settings", "compression", value=0),
        IDENTITY,
        "export_settings.compression",
    ),
    (
        {},
        IDENTITY,
        put("export_settings", "var_quantization", value=12),
        IDENTITY,
        "export_settings.var_quantization",
    ),
    (
        {},
        IDENTITY,
        put("export_settings", "obs_categorical_dtype", value="uint32"),
        IDENTITY,
        "export_settings.obs_categorical_dtype",
    ),
    ({}, IDENTITY, put("source", "name", value=" "), IDENTITY, "source.name"),
    (
        {},
        IDENTITY,
        put("source", "filename", value="/home/me/data.h5ad"),
        IDENTITY,
        "source.filename",
    ),
    ({}, IDENTITY, put("obs_fields", 0, "kind", value="numeric"), IDENTITY, "obs_fields[0].kind"),
    ({}, IDENTITY, put("obs_fields", 1, "key", value="age"), IDENTITY, "obs_fields[1].key"),
    ({}, OBS, put("_format", value="compact_v2"), OBS, "_format"),
    ({}, OBS, put("n_points", value="60"), OBS, "n_points"),
    ({}, OBS, put("centroid_outlier_quantile", value=1.0), OBS, "centroid_outlier_quantile"),
    ({}, OBS, put("centroid_outlier_quantile", value=0.5), OBS, "centroid_outlier_quantile"),
    ({}, OBS, put("latent_key", value=""), OBS, "latent_key"),
    ({}, OBS, put("compression", value=10), OBS, "compression"),
    (
        {"continuous": False, "categorical": False},
        OBS,
        put("_obsSchemas", value=[]),
        OBS,
        "_obsSchemas",
    ),
    ({}, OBS, put("_continuousFields", value={}), OBS, "_continuousFields"),
    ({}, VAR, put("_format", value="dense"), VAR, "_format"),
    ({}, VAR, put("var_gene_id_column", value=""), VAR, "var_gene_id_column"),
    ({}, VAR, put("quantization", value=8), VAR, "quantization"),
    ({"var_quantization": 8}, VAR, put("quantization", value=16), VAR, "quantization"),
    ({}, VAR, put("_varSchema", "kind", value="categorical"), VAR, "_varSchema.kind"),
    ({}, CONN, put("format", value="edges"), CONN, "format"),
    ({}, CONN, put("weight_dtype", value="float32"), CONN, "weight_dtype"),
    ({}, CONN, put("weight_bytes", value=4), CONN, "weight_bytes"),
    ({}, CONN, put("index_dtype", value="uint32"), CONN, "index_dtype"),
    ({}, CONN, put("sourcesPath", value="connectivity/src.bin"), CONN, "sourcesPath"),
    ({}, CONN, put("n_edges", value=-1), CONN, "n_edges"),
]


@pytest.mark.parametrize(("kwargs", "target", "edit", "file", "key"), VALUE_CASES)
def test_values_and_types(tmp_path, kwargs, target, edit, file, key) -> None:
    ex = write_dataset(tmp_path / "ds", **kwargs)
    rewrite_json(ex.path / target, edit)
    assert_reports(ex.path, file, key)


@pytest.mark.parametrize(
    "created_at",
    [
        "2024-05-01 12:00:00",
        "2024-05-01T12:00:00+00:00",
        "2024-05-01T12:00:00.123Z",
        "2024-13-01T12:00:00Z",
        "2024-5-1T12:00:00Z",
        "",
        1714564800,
        None,
    ],
)
def test_created_at_format(tmp_path: Path, created_at: Any) -> None:
    ex = write_dataset(tmp_path / "ds")
    rewrite_json(ex.path / IDENTITY, put("created_at", value=created_at))
    assert_reports(ex.path, IDENTITY, "created_at")


# ---- schemas and tuples (SPEC §2.6.3, §2.6.4, §2.7) ----------------------------------------
SCHEMA_CASES = [
    (
        {},
        put("_obsSchemas", "continuous", "pathPattern", value="obs/{key}.f32"),
        "_obsSchemas.continuous.pathPattern",
    ),
    (
        {},
        put("_obsSchemas", "continuous", "pathPattern", value="obs/age.values.f32"),
        "_obsSchemas.continuous.pathPattern",
    ),
    ({}, put("_obsSchemas", "continuous", "dtype", value="uint8"), "_obsSchemas.continuous.dtype"),
    ({}, put("_obsSchemas", "continuous", "ext", value="f64"), "_obsSchemas.continuous.ext"),
    (
        {},
        put("_obsSchemas", "continuous", "quantized", value=True),
        "_obsSchemas.continuous.quantized",
    ),
    (
        {"obs_quantization": 8},
        put("_obsSchemas", "continuous", "quantizationBits", value=16),
        "_obsSchemas.continuous.quantizationBits",
    ),
    (
        {"obs_quantization": 16},
        put("_obsSchemas", "continuous", "dtype", value="uint8"),
        "_obsSchemas.continuous.dtype",
    ),
    (
        {},
        put("_obsSchemas", "categorical", "codesPathPattern", value="obs/{key}.codes.u8"),
        "_obsSchemas.categorical.codesPathPattern",
    ),
    (
        {},
        put("_obsSchemas", "categorical", "outlierDtype", value="float64"),
        "_obsSchemas.categorical.outlierDtype",
    ),
    (
        {},
        put("_obsSchemas", "categorical", "outlierQuantized", value=True),
        "_obsSchemas.categorical.outlierQuantized",
    ),
    (
        {"latent": False},
        put("_obsSchemas", "categorical", "outlierExt", value="f32"),
        "_obsSchemas.categorical.outlierExt",
    ),
    (
        {"latent": False},
        put("_obsSchemas", "categorical", "outlierQuantized", value=None),
        "_obsSchemas.categorical.outlierQuantized",
    ),
    # tuples
    ({}, put("_continuousFields", 0, value=["age", 0.0, 1.0]), "_continuousFields[0]"),
    ({}, put("_continuousFields", 0, value=[7]), "_continuousFields[0][0]"),
    ({"obs_quantization": 8}, put("_continuousFields", 0, value=["age"]), "_continuousFields[0]"),
    (
        {"obs_quantization": 8},
        put("_continuousFields", 0, 1, value=99.0),
        "_continuousFields[0][1]",
    ),
    ({"obs_quantization": 8}, put("_continuousFields", 0, 2, value="1"), "_continuousFields[0][1]"),
    ({}, put("_categoricalFields", 0, 2, value="uint32"), "_categoricalFields[0][2]"),
    ({}, put("_categoricalFields", 0, 3, value=0), "_categoricalFields[0][3]"),
    (
        {"codes_dtype": "uint16"},
        put("_categoricalFields", 0, 3, value=255),
        "_categoricalFields[0][3]",
    ),
    (
        {},
        put("_categoricalFields", 0, 1, value=["B cell", "B cell", "NK", "rare"]),
        "_categoricalFields[0][1]",
    ),
    (
        {},
        put("_categoricalFields", 0, 1, value=["B cell", " ", "NK", "rare"]),
        "_categoricalFields[0][1]",
    ),
    (
        {},
        put("_categoricalFields", 0, 1, value=["B cell", 2, "NK", "rare"]),
        "_categoricalFields[0][1]",
    ),
    ({}, drop("_categoricalFields", 0, 4), "_categoricalFields[0]"),
    ({"obs_quantization": 8}, drop("_categoricalFields", 0, 6), "_categoricalFields[0]"),
    (
        {"obs_quantization": 8},
        put("_categoricalFields", 0, 5, value=0.0),
        "_categoricalFields[0][5]",
    ),
    (
        {"obs_quantization": 16},
        put("_categoricalFields", 0, 6, value=0.01),
        "_categoricalFields[0][5]",
    ),
    (
        {},
        put("_categoricalFields", 0, 4, "2", 0, "position", value=[0.1]),
        "_categoricalFields[0][4].2[0].position",
    ),
    (
        {},
        put("_categoricalFields", 0, 4, "2", 0, "n_points", value=0),
        "_categoricalFields[0][4].2[0].n_points",
    ),
    (
        {},
        put("_categoricalFields", 0, 4, "2", 0, "category", value="Mono"),
        "_categoricalFields[0][4].2[0].category",
    ),
    (
        {},
        put("_categoricalFields", 0, 4, "2", 0, "category", value="NK"),
        "_categoricalFields[0][4].2[1].category",
    ),
    (
        {},
        put("_categoricalFields", 0, 4, "2", 0, "position", value=[5.0, 5.0]),
        "_categoricalFields[0][4].2[0].position",
    ),
    (
        {},
        put("_categoricalFields", 0, 4, "3", 1, "n_points", value=59),
        "_categoricalFields[0][4].3[1].n_points",
    ),
    ({}, drop("_categoricalFields", 0, 4, "2", 2), "_categoricalFields[0][4].2"),
]


@pytest.mark.parametrize(("kwargs", "edit", "key"), SCHEMA_CASES)
def test_obs_schemas_and_tuples(tmp_path, kwargs, edit, key) -> None:
    ex = write_dataset(tmp_path / "ds", **kwargs)
    rewrite_json(ex.path / OBS, edit)
    assert_reports(ex.path, OBS, key)


def test_empty_centroid_lists_contradict_outliers(tmp_path: Path) -> None:
    """Empty lists with a quantile mean every category is below centroid_min_points, but
    then no cell may have an outlier quantile (SPEC §2.6.8, §2.6.9)."""
    ex = write_dataset(tmp_path / "ds", centroid_quantile=None)
    rewrite_json(ex.path / OBS, put("centroid_outlier_quantile", value=0.9))
    assert_reports(ex.path, OUTLIERS, "values", "categories that have centroids")


def test_null_centroid_quantile_needs_empty_lists(tmp_path: Path) -> None:
    ex = write_dataset(tmp_path / "ds")
    rewrite_json(ex.path / OBS, put("centroid_outlier_quantile", value=None))
    assert_reports(ex.path, OBS, "_categoricalFields[0][4].2", "empty list")


@pytest.mark.parametrize(
    ("kwargs", "edit", "key"),
    [
        ({}, put("_varSchema", "pathPattern", value="var/{key}.f32"), "_varSchema.pathPattern"),
        ({}, put("_varSchema", "ext", value="u8"), "_varSchema.quantizationBits"),
        (
            {"var_quantization": 16},
            put("_varSchema", "quantizationBits", value=8),
            "_varSchema.quantizationBits",
        ),
        ({}, put("fields", 0, value=["GENE0", 0.0, 1.0]), "fields[0]"),
        ({"var_quantization": 8}, put("fields", 1, value=["GENE1", 2.0, 2.0]), "fields[1][1]"),
        ({}, put("fields", 2, value=[None]), "fields[2][0]"),
    ],
)
def test_var_schema_and_tuples(tmp_path, kwargs, edit, key) -> None:
    ex = write_dataset(tmp_path / "ds", **kwargs)
    rewrite_json(ex.path / VAR, edit)
    assert_reports(ex.path, VAR, key)


# ---- payloads (SPEC §2.3, §2.12 items 6 and 7) -------------------------------------------
PAYLOADS = [
    ({}, "points_2d.bin"),
    ({}, "points_3d.bin"),
    ({}, "obs/age.values.f32"),
    ({"obs_quantization": 8}, "obs/pct_mito.values.u8"),
    ({"obs_quantization": 16}, "obs/age.values.u16"),
    ({}, CODES),
    ({"codes_dtype": "uint16"}, "obs/cell_type.codes.u16"),
    ({}, OUTLIERS),
    ({"obs_quantization": 8}, "obs/cell_type.outliers.u8"),
    ({}, "var/GENE0.values.f32"),
    ({"var_quantization": 16}, "var/GENE2.values.u16"),
    ({}, SRC),
    ({}, DST),
    ({}, WEIGHTS),
    ({}, "vectors/velocity_umap_3d.bin"),
]


@pytest.mark.parametrize("compression", [None, 6])
@pytest.mark.parametrize(("kwargs", "rel"), PAYLOADS)
@pytest.mark.parametrize("change", ["truncate", "extend"])
def test_payload_length(tmp_path, compression, kwargs, rel, change) -> None:
    ex = write_dataset(tmp_path / "ds", compression=compression, **kwargs)
    target = ex.file(rel)
    rewrite_payload(target, lambda b: b[:-1] if change == "truncate" else b + b"\0" * 8)
    assert_reports(ex.path, target.relative_to(ex.path).as_posix(), "bytes")


@pytest.mark.parametrize("compression", [None, 6])
@pytest.mark.parametrize(("kwargs", "rel"), PAYLOADS)
def test_payload_missing(tmp_path, compression, kwargs, rel) -> None:
    ex = write_dataset(tmp_path / "ds", compression=compression, **kwargs)
    target = ex.file(rel)
    target.unlink()
    assert_reports(ex.path, target.relative_to(ex.path).as_posix(), "file")


@pytest.mark.parametrize(
    ("kwargs", "rel", "value"),
    [
        ({}, CODES, 4),
        ({}, CODES, 254),
        ({"codes_dtype": "uint16"}, "obs/cell_type.codes.u16", 255),
        ({"codes_dtype": "uint16"}, "obs/cell_type.codes.u16", 65534),
    ],
)
def test_codes_out_of_range(tmp_path, kwargs, rel, value) -> None:
    ex = write_dataset(tmp_path / "ds", **kwargs)
    dtype = "<u2" if rel.endswith("u16") else "u1"

    def edit(data: bytes) -> bytes:
        codes = np.frombuffer(data, dtype=dtype).copy()
        codes[10] = value
        return codes.tobytes()

    rewrite_payload(ex.file(rel), edit)
    assert_reports(ex.path, rel, "values", "codes < 4")


@pytest.mark.parametrize("compression", [None, 6])
def test_quantised_bounds_must_come_from_the_data(tmp_path: Path, compression) -> None:
    """Bounds wider than the data (upstream's fixed 0, 1) leave codes short of 0 or maxq."""
    ex = write_dataset(
        tmp_path / "ds", obs_quantization=8, var_quantization=16, compression=compression
    )
    gz = ".gz" if compression else ""

    def halve(dtype: str):
        def edit(data: bytes) -> bytes:
            q = np.frombuffer(data, dtype).copy()
            missing = q == np.iinfo(dtype).max
            q = np.where(missing, q, q // 2 + 1)
            return q.astype(dtype).tobytes()

        return edit

    rewrite_payload(ex.path / f"obs/pct_mito.values.u8{gz}", halve("u1"))
    rewrite_payload(ex.path / f"var/GENE0.values.u16{gz}", halve("<u2"))
    assert_reports(ex.path, f"obs/pct_mito.values.u8{gz}", "values", "taken from the data")
    assert_reports(ex.path, f"var/GENE0.values.u16{gz}", "values", "taken from the data")


def test_constant_quantised_field_is_valid(tmp_path: Path) -> None:
    # GENE2 is constant zero: lo = 0, hi = 1, every code 0 (SPEC §2.6.6)
    ex = write_dataset(tmp_path / "ds", var_quantization=8)
    assert json.loads((ex.path / VAR).read_text())["fields"][2] == ["GENE2", 0.0, 1.0]
    assert validate_export(ex.path) == []


# ---- gzip framing (SPEC §2.3, §2.12 item 8) ----------------------------------------------
GZ_FILES = [
    "points_2d.bin",
    "obs/age.values.f32",
    CODES,
    "var/GENE1.values.f32",
    WEIGHTS,
    "vectors/velocity_umap_2d.bin",
]


def _second_member(data: bytes) -> bytes:
    return data + gzip_member(b"", 6)


def _trailing(data: bytes) -> bytes:
    return data + b"\0\0"


def _truncated(data: bytes) -> bytes:
    return data[:-5]


def _empty(data: bytes) -> bytes:
    return b""


def _not_gzip(data: bytes) -> bytes:
    return gunzip_any(data)


@pytest.mark.parametrize("rel", GZ_FILES)
@pytest.mark.parametrize(
    "corrupt",
    [_second_member, _trailing, _truncated, _empty, _not_gzip],
    ids=["two-members", "trailing-bytes", "truncated", "empty-file", "plain-bytes"],
)
def test_gzip_framing(tmp_path, rel, corrupt) -> None:
    ex = write_dataset(tmp_path / "ds", compression=6)
    target = ex.path / f"{rel}.gz"
    target.write_bytes(corrupt(target.read_bytes()))
    assert_reports(ex.path, f"{rel}.gz", "gzip")


@pytest.mark.parametrize(
    ("offset", "value", "expected"),
    [(3, 0x08, "file name"), (4, 0x01, "mtime"), (9, 0x03, "OS byte")],
)
def test_gzip_header(tmp_path, offset, value, expected) -> None:
    ex = write_dataset(tmp_path / "ds", compression=6)
    target = ex.path / "obs/age.values.f32.gz"
    data = bytearray(target.read_bytes())
    data[offset] = value
    if offset == 3:  # FNAME: a zero-terminated name follows the 10-byte header
        data[10:10] = b"age.values.f32\0"
    target.write_bytes(bytes(data))
    assert_reports(ex.path, "obs/age.values.f32.gz", "gzip", expected)


def test_empty_payload_must_still_be_a_gzip_member(tmp_path: Path) -> None:
    ex = write_dataset(tmp_path / "ds", compression=6, n_pairs=0)
    assert (ex.path / f"{SRC}.gz").read_bytes() != b""
    assert validate_export(ex.path) == []
    (ex.path / f"{SRC}.gz").write_bytes(b"")
    assert_reports(ex.path, f"{SRC}.gz", "gzip")


@pytest.mark.parametrize("rel", ["obs/age.values.f32", CODES, "var/GENE0.values.f32", DST])
def test_gz_missing_on_one_payload(tmp_path: Path, rel: str) -> None:
    ex = write_dataset(tmp_path / "ds", compression=6)
    gz = ex.path / f"{rel}.gz"
    (ex.path / rel).write_bytes(gunzip_any(gz.read_bytes()))
    gz.unlink()
    assert_reports(ex.path, f"{rel}.gz", "file")


@pytest.mark.parametrize("what", ["points", "vectors"])
def test_gz_missing_on_points_or_vectors(tmp_path: Path, what: str) -> None:
    ex = write_dataset(tmp_path / "ds", compression=6)
    rel = "points_2d.bin" if what == "points" else "vectors/velocity_umap_2d.bin"
    gz = ex.path / f"{rel}.gz"
    (ex.path / rel).write_bytes(gunzip_any(gz.read_bytes()))
    gz.unlink()
    path = (
        ("embeddings", "files", "2d")
        if what == "points"
        else ("vector_fields", "fields", "velocity_umap", "files", "2d")
    )
    rewrite_json(ex.path / IDENTITY, put(*path, value=rel))
    assert_reports(ex.path, rel, "file", "ending in .gz")
    assert_reports(ex.path, IDENTITY, ".".join(path))


def test_gz_on_an_uncompressed_export(tmp_path: Path) -> None:
    ex = write_dataset(tmp_path / "ds")
    rel = "obs/pct_mito.values.f32"
    (ex.path / f"{rel}.gz").write_bytes(gzip_member((ex.path / rel).read_bytes(), 6))
    (ex.path / rel).unlink()
    rewrite_json(ex.path / OBS, put("compression", value=6))
    rewrite_json(
        ex.path / OBS,
        put("_obsSchemas", "continuous", "pathPattern", value="obs/{key}.values.f32.gz"),
    )
    # the obs manifest sets the level: var, connectivity and the settings now disagree
    assert_reports(ex.path, VAR, "compression")
    assert_reports(ex.path, CONN, "compression")
    assert_reports(ex.path, IDENTITY, "export_settings.compression")
    assert_reports(ex.path, "obs/age.values.f32.gz", "file", "present")
    assert_reports(ex.path, "points_2d.bin", "file", "ending in .gz")
    assert_reports(ex.path, IDENTITY, "embeddings.files.2d")


@pytest.mark.parametrize("compression", [None, 6])
@pytest.mark.parametrize(
    "rel", ["points_3d.bin", "obs/age.values.f32", CODES, WEIGHTS, "vectors/velocity_umap_2d.bin"]
)
def test_plain_and_gz_side_by_side(tmp_path, compression, rel) -> None:
    ex = write_dataset(tmp_path / "ds", compression=compression)
    data = (ex.path / rel).read_bytes() if not compression else None
    twin = f"{rel}.gz" if not compression else rel
    if compression:
        (ex.path / rel).write_bytes(gunzip_any((ex.path / f"{rel}.gz").read_bytes()))
    else:
        (ex.path / twin).write_bytes(gzip_member(data, 6))
    assert_reports(ex.path, twin, "file", "absent")


# ---- files nobody references (SPEC §2.1) -------------------------------------------------
@pytest.mark.parametrize(
    "rel",
    [
        "obs/extra.values.f32",
        "obs/cell_type.codes.u16",
        "var/GENE9.values.f32",
        "connectivity/edges.src.u32.bin",
        "vectors/other_2d.bin",
        "points_1d.bin",
    ],
)
def test_unreferenced_files(tmp_path: Path, rel: str) -> None:
    ex = write_dataset(tmp_path / "ds")
    (ex.path / rel).write_bytes(b"\0" * 240)
    assert_reports(ex.path, rel, "file", "")


def test_outliers_without_latent_space_are_unreferenced(tmp_path: Path) -> None:
    ex = write_dataset(tmp_path / "ds", latent=False)
    (ex.path / OUTLIERS).write_bytes(b"\0" * 240)  # upstream wrote all-zero files
    assert_reports(ex.path, OUTLIERS, "file")


def test_directories(tmp_path: Path) -> None:
    ex = write_dataset(
        tmp_path / "ds",
        vectors=False,
        n_genes=0,
        continuous=False,
        categorical=False,
        connectivity=False,
    )
    (ex.path / "vectors").mkdir()
    (ex.path / "var").mkdir()
    (ex.path / "obs").rmdir()
    found_keys = found(ex.path)
    assert ("vectors/", "file") in found_keys
    assert ("var/", "file") in found_keys
    assert ("obs/", "file") in found_keys
    ex2 = write_dataset(tmp_path / "ds2")
    (ex2.path / "obs" / "nested").mkdir()
    assert ("obs/nested/", "file") in found(ex2.path)


# ---- connectivity (SPEC §2.8, §2.12 item 4) ----------------------------------------------
def _edit_edges(ex, edit) -> None:
    """Apply ``edit(src, dst, w) -> (src, dst, w)`` to the edge payloads."""
    arrays = {}
    for rel, dtype in ((SRC, "<u2"), (DST, "<u2"), (WEIGHTS, "<f8")):
        target = ex.file(rel)
        data = target.read_bytes()
        arrays[rel] = np.frombuffer(gunzip_any(data) if ex.compression else data, dtype).copy()
    src, dst, w = edit(arrays[SRC], arrays[DST], arrays[WEIGHTS])
    for rel, arr, dtype in ((SRC, src, "<u2"), (DST, dst, "<u2"), (WEIGHTS, w, "<f8")):
        raw = np.asarray(arr, dtype=dtype).tobytes()
        ex.file(rel).write_bytes(gzip_member(raw, 6) if ex.compression else raw)


def _swap_edges(src, dst, w):
    for a in (src, dst, w):
        a[[3, 4]] = a[[4, 3]]
    return src, dst, w


def _reverse_one(src, dst, w):
    src[5], dst[5] = dst[5], src[5]
    return src, dst, w


def _duplicate(src, dst, w):
    src[6], dst[6], w[6] = src[5], dst[5], w[5]
    return src, dst, w


def _out_of_range(src, dst, w):
    dst[-1] = 60
    return src, dst, w


@pytest.mark.parametrize("compression", [None, 6])
@pytest.mark.parametrize(
    ("edit", "rel"),
    [(_swap_edges, SRC), (_reverse_one, SRC), (_duplicate, SRC), (_out_of_range, DST)],
    ids=["unsorted", "src>dst", "duplicate", "index>=n"],
)
def test_edge_order_and_range(tmp_path, compression, edit, rel) -> None:
    ex = write_dataset(tmp_path / "ds", compression=compression)
    _edit_edges(ex, edit)
    assert_reports(ex.path, ex.file(rel).relative_to(ex.path).as_posix(), "values")


@pytest.mark.parametrize("bad", [np.nan, np.inf, 0.0, -0.5])
def test_weights_finite_positive(tmp_path: Path, bad: float) -> None:
    ex = write_dataset(tmp_path / "ds")

    def edit(src, dst, w):
        w[2] = bad
        return src, dst, w

    _edit_edges(ex, edit)
    assert_reports(ex.path, WEIGHTS, "values", "finite weights > 0")


@pytest.mark.parametrize("delta", [-1, 1])
def test_max_neighbors(tmp_path: Path, delta: int) -> None:
    ex = write_dataset(tmp_path / "ds")
    rewrite_json(ex.path / CONN, lambda m: m.update(max_neighbors=m["max_neighbors"] + delta))
    assert_reports(ex.path, CONN, "max_neighbors")


def test_uint32_index_for_small_n(tmp_path: Path) -> None:
    ex = write_dataset(tmp_path / "ds")
    for rel in (SRC, DST):
        data = np.frombuffer((ex.path / rel).read_bytes(), "<u2").astype("<u4")
        (ex.path / rel).write_bytes(data.tobytes())
    rewrite_json(ex.path / CONN, lambda m: m.update(index_bytes=4, index_dtype="uint32"))
    assert_reports(ex.path, CONN, "index_bytes", "smallest that fits")
    assert_reports(ex.path, CONN, "index_dtype")
    assert not any(v.key == "bytes" for v in validate_export(ex.path))


def test_uint16_holds_65536_cells(tmp_path: Path) -> None:
    ex = write_dataset(
        tmp_path / "ds", n=65536, n_pairs=50, categorical=False, n_genes=1, vectors=False, dims=(2,)
    )
    assert json.loads((ex.path / CONN).read_text())["index_dtype"] == "uint16"
    assert validate_export(ex.path) == []


def test_edge_count_limits(tmp_path: Path) -> None:
    ex = write_dataset(tmp_path / "ds")
    rewrite_json(ex.path / CONN, put("n_edges", value=12_000_000))
    rewrite_json(ex.path / IDENTITY, put("stats", "n_edges", value=12_000_000))
    assert_reports(ex.path, CONN, "n_edges", "browser budget")
    assert_reports(ex.path, CONN, "n_edges", "n(n-1)/2")


# ---- stats and cross-file invariants (SPEC §2.10, §2.12) ---------------------------------
STATS_CASES = [
    ({}, IDENTITY, put("stats", "n_cells", value=61), IDENTITY, "stats.n_cells"),
    ({}, IDENTITY, put("stats", "n_genes", value=2), IDENTITY, "stats.n_genes"),
    ({}, IDENTITY, put("stats", "n_genes", value=0), VAR, "file"),
    ({"n_genes": 0}, IDENTITY, put("stats", "n_genes", value=3), VAR, "file"),
    ({}, IDENTITY, put("stats", "n_obs_fields", value=4), IDENTITY, "stats.n_obs_fields"),
    (
        {},
        IDENTITY,
        put("stats", "n_categorical_fields", value=2),
        IDENTITY,
        "stats.n_categorical_fields",
    ),
    (
        {},
        IDENTITY,
        put("stats", "n_continuous_fields", value=1),
        IDENTITY,
        "stats.n_continuous_fields",
    ),
    ({}, IDENTITY, put("stats", "has_connectivity", value=False), IDENTITY, "stats.n_edges"),
    ({}, IDENTITY, put("stats", "n_edges", value=1), IDENTITY, "stats.n_edges"),
    (
        {"connectivity": False},
        IDENTITY,
        put("stats", "n_edges", value=0),
        IDENTITY,
        "stats.n_edges",
    ),
    ({"connectivity": False}, IDENTITY, put("stats", "has_connectivity", value=True), CONN, "file"),
    ({}, OBS, put("n_points", value=59), OBS, "n_points"),
    ({}, VAR, put("n_points", value=61), VAR, "n_points"),
    ({}, CONN, put("n_cells", value=61), CONN, "n_cells"),
    ({}, VAR, put("compression", value=6), VAR, "compression"),
    ({}, CONN, put("compression", value=6), CONN, "compression"),
    (
        {},
        IDENTITY,
        put("export_settings", "compression", value=6),
        IDENTITY,
        "export_settings.compression",
    ),
    (
        {},
        IDENTITY,
        put("export_settings", "var_quantization", value=8),
        IDENTITY,
        "export_settings.var_quantization",
    ),
    (
        {},
        IDENTITY,
        put("export_settings", "obs_continuous_quantization", value=16),
        IDENTITY,
        "export_settings.obs_continuous_quantization",
    ),
    (
        {},
        IDENTITY,
        put("export_settings", "obs_categorical_dtype", value="uint16"),
        OBS,
        "_categoricalFields[0][2]",
    ),
    (
        {"codes_dtype": "uint16"},
        IDENTITY,
        put("export_settings", "obs_categorical_dtype", value="auto"),
        OBS,
        "_categoricalFields[0][2]",
    ),
    # identity obs_fields mirror the manifest (§2.12 item 5)
    ({}, IDENTITY, lambda d: d["obs_fields"].reverse(), IDENTITY, "obs_fields"),
    (
        {},
        IDENTITY,
        lambda d: d["obs_fields"].insert(2, d["obs_fields"].pop(0)),
        IDENTITY,
        "obs_fields",
    ),
    (
        {},
        IDENTITY,
        lambda d: d["obs_fields"].insert(0, d["obs_fields"].pop(1)),
        IDENTITY,
        "obs_fields[0]",
    ),
    ({}, IDENTITY, put("obs_fields", 2, "n_categories", value=3), IDENTITY, "obs_fields[2]"),
    ({}, IDENTITY, put("obs_fields", 0, "key", value="Age"), IDENTITY, "obs_fields[0]"),
    ({}, IDENTITY, drop("obs_fields", 1), IDENTITY, "obs_fields"),
]


@pytest.mark.parametrize(("kwargs", "target", "edit", "file", "key"), STATS_CASES)
def test_stats_and_cross_file(tmp_path, kwargs, target, edit, file, key) -> None:
    ex = write_dataset(tmp_path / "ds", **kwargs)
    rewrite_json(ex.path / target, edit)
    assert_reports(ex.path, file, key)


def test_obs_fields_continuous_first(tmp_path: Path) -> None:
    ex = write_dataset(tmp_path / "ds")
    rewrite_json(ex.path / IDENTITY, lambda d: d["obs_fields"].reverse())
    assert_reports(ex.path, IDENTITY, "obs_fields", "continuous fields first")


def test_var_manifest_without_genes(tmp_path: Path) -> None:
    ex = write_dataset(tmp_path / "ds")
    rewrite_json(ex.path / VAR, put("fields", value=[]))
    rewrite_json(ex.path / IDENTITY, put("stats", "n_genes", value=0))
    assert_reports(ex.path, VAR, "file", "absent")


# ---- names and paths (SPEC §2.4, §2.12 item 9) -------------------------------------------
@pytest.mark.parametrize(
    ("group", "index", "new", "key"),
    [
        ("_continuousFields", 0, "pct_mito", "_continuousFields[1][0]"),
        ("_continuousFields", 0, "pct/mito", "_continuousFields[1][0]"),
        ("_categoricalFields", 0, "age", "_categoricalFields[0][0]"),
        ("_categoricalFields", 0, "__age__", "_categoricalFields[0][0]"),
        ("_continuousFields", 0, "★", "_continuousFields[0][0]"),
        ("_continuousFields", 0, "..", "_continuousFields[0][0]"),
        ("_categoricalFields", 0, "", "_categoricalFields[0][0]"),
    ],
)
def test_obs_safe_names(tmp_path, group, index, new, key) -> None:
    ex = write_dataset(tmp_path / "ds")
    rewrite_json(ex.path / OBS, put(group, index, 0, value=new))
    assert_reports(ex.path, OBS, key)


@pytest.mark.parametrize(("index", "new"), [(1, "GENE0"), (1, "GENE0 "), (2, "/GENE0/"), (0, "__")])
def test_gene_safe_names(tmp_path: Path, index: int, new: str) -> None:
    ex = write_dataset(tmp_path / "ds")
    rewrite_json(ex.path / VAR, put("fields", index, 0, value=new))
    assert_reports(ex.path, VAR, f"fields[{index}][0]")


@pytest.mark.parametrize(
    "bad",
    [
        "../points_2d.bin",
        "/tmp/points_2d.bin",
        "C:/points_2d.bin",
        "points 2d.bin",
        "points_2d.bin?x",
        "points_2d.bin#x",
        "sub\\points_2d.bin",
        "http://x/p.bin",
    ],
)
def test_path_rules(tmp_path: Path, bad: str) -> None:
    ex = write_dataset(tmp_path / "ds")
    rewrite_json(ex.path / IDENTITY, put("embeddings", "files", "2d", value=bad))
    rewrite_json(ex.path / CONN, put("weightsPath", value=bad))
    violations = validate_export(ex.path)
    for file, key in ((IDENTITY, "embeddings.files.2d"), (CONN, "weightsPath")):
        assert any(
            (v.file, v.key) == (file, key) and "relative path" in v.expected for v in violations
        ), format_report(violations)


# ---- vector fields (SPEC §2.9, §2.12 item 10) --------------------------------------------
VF = ("vector_fields", "fields", "velocity_umap")


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (put("vector_fields", "default_field", value="other"), "vector_fields.default_field"),
        (put("vector_fields", "default_field", value=None), "vector_fields.default_field"),
        (put(*VF, "label", value="Velocity (UMAP)"), "vector_fields.fields.velocity_umap.label"),
        (put(*VF, "basis", value="tsne"), "vector_fields.fields.velocity_umap.basis"),
        (
            put(*VF, "available_dimensions", value=[1, 2]),
            "vector_fields.fields.velocity_umap.available_dimensions",
        ),
        (
            put(*VF, "available_dimensions", value=[3, 2]),
            "vector_fields.fields.velocity_umap.available_dimensions",
        ),
        (
            put(*VF, "default_dimension", value=2),
            "vector_fields.fields.velocity_umap.default_dimension",
        ),
        (drop(*VF, "files", "3d"), "vector_fields.fields.velocity_umap.files.3d"),
        (
            put(*VF, "files", "3d", value="vectors/velocity_3d.bin"),
            "vector_fields.fields.velocity_umap.files.3d",
        ),
        (
            rename("vector_fields", "fields", old="velocity_umap", new="velocity umap"),
            "vector_fields.fields.velocity umap",
        ),
        (put("vector_fields", "fields", value={}), "vector_fields.fields"),
        (
            lambda d: d["vector_fields"]["fields"].update(
                {"a_umap": d["vector_fields"]["fields"]["velocity_umap"]}
            ),
            "vector_fields.fields",
        ),
    ],
)
def test_vector_fields(tmp_path, edit, key) -> None:
    ex = write_dataset(tmp_path / "ds")
    rewrite_json(ex.path / IDENTITY, edit)
    assert_reports(ex.path, IDENTITY, key)


@pytest.mark.parametrize("compression", [None, 6])
def test_vectors_and_points_finite(tmp_path: Path, compression) -> None:
    ex = write_dataset(tmp_path / "ds", compression=compression)

    def poison(data: bytes) -> bytes:
        arr = np.frombuffer(data, "<f4").copy()
        arr[7] = np.nan
        return arr.tobytes()

    for rel in ("vectors/velocity_umap_2d.bin", "points_3d.bin"):
        rewrite_payload(ex.file(rel), poison)
        assert_reports(ex.path, ex.file(rel).relative_to(ex.path).as_posix(), "values", "finite")


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_points_are_normalised(tmp_path: Path, factor: float) -> None:
    ex = write_dataset(tmp_path / "ds")
    rewrite_payload(
        ex.file("points_2d.bin"),
        lambda b: (np.frombuffer(b, "<f4") * factor).astype("<f4").tobytes(),
    )
    assert_reports(ex.path, "points_2d.bin", "values", "normalised")


# ---- centroids and outliers (SPEC §2.6.8, §2.6.9) ----------------------------------------
def test_outlier_values(tmp_path: Path) -> None:
    ex = write_dataset(tmp_path / "ds")
    codes = ex.codes["cell type"]

    def set_at(index: int, value: float):
        def edit(data: bytes) -> bytes:
            arr = np.frombuffer(data, "<f4").copy()
            arr[index] = value
            return arr.tobytes()

        return edit

    original = (ex.path / OUTLIERS).read_bytes()
    missing_cell = int(np.flatnonzero(codes == 255)[0])
    member = int(np.flatnonzero(codes == 0)[0])
    rare = int(np.flatnonzero(codes == 3)[0])
    for index, value, expected in (
        (member, 0.0, "(0, 1]"),
        (member, 1.5, "(0, 1]"),
        (missing_cell, 0.5, "missing category"),
        (member, np.nan, "all or none"),
        (rare, 0.5, "all or none"),
    ):
        (ex.path / OUTLIERS).write_bytes(original)
        rewrite_payload(ex.path / OUTLIERS, set_at(index, value))
        assert_reports(ex.path, OUTLIERS, "values", expected)


def test_outlier_maximum_is_one(tmp_path: Path) -> None:
    ex = write_dataset(tmp_path / "ds")
    rewrite_payload(
        ex.path / OUTLIERS, lambda b: (np.frombuffer(b, "<f4") * 0.5).astype("<f4").tobytes()
    )
    assert_reports(ex.path, OUTLIERS, "values", "quantile 1")


def test_centroids_need_their_categories(tmp_path: Path) -> None:
    ex = write_dataset(tmp_path / "ds")
    # NK has the most cells (20): omitting it while smaller categories are listed fails
    assert np.bincount(ex.codes["cell type"][ex.codes["cell type"] < 4]).argmax() == 2
    rewrite_json(ex.path / OBS, lambda m: m["_categoricalFields"][0][4]["2"].pop(2))
    assert_reports(ex.path, OBS, "_categoricalFields[0][4].2", "centroid_min_points")
    assert_reports(ex.path, OBS, "_categoricalFields[0][4]", "every dimension")


# ---- malformed input never raises --------------------------------------------------------
@pytest.mark.parametrize("name", [IDENTITY, OBS, VAR, CONN])
@pytest.mark.parametrize(
    "content",
    [b"{", b"[]", b'{"a": NaN}', b'{"a": 1, "a": 2}', b"\xff\xfe{}", b"", b"[" * 100000],
    ids=["syntax", "array", "nan", "duplicate-key", "not-utf8", "empty", "deep"],
)
def test_bad_json(tmp_path: Path, name: str, content: bytes) -> None:
    ex = write_dataset(tmp_path / "ds")
    (ex.path / name).write_bytes(content)
    assert_reports(ex.path, name, "json")


def _paths(doc: Any, prefix: tuple[Any, ...] = ()):
    if isinstance(doc, dict):
        items = doc.items()
    elif isinstance(doc, list):
        items = enumerate(doc)
    else:
        return
    for key, value in items:
        yield (*prefix, key)
        yield from _paths(value, (*prefix, key))


JUNK = [None, "x", -1, 1.5, 10**30, [], {}, True, ["x"], {"x": None}]


@pytest.mark.parametrize("name", [IDENTITY, OBS, VAR, CONN])
@pytest.mark.parametrize("kwargs", [{}, {"compression": 6, "obs_quantization": 8}])
def test_never_crashes_on_wrong_types(tmp_path: Path, name: str, kwargs: dict) -> None:
    ex = write_dataset(tmp_path / "ds", n=30, n_genes=1, **kwargs)
    original = (ex.path / name).read_text()
    for path in list(_paths(json.loads(original)))[:80]:
        for junk in [*JUNK, "__drop__"]:
            doc = json.loads(original)
            if junk == "__drop__":
                del _walk(doc, path[:-1])[path[-1]]
            else:
                _walk(doc, path[:-1])[path[-1]] = junk
            (ex.path / name).write_text(json.dumps(doc))
            violations = validate_export(ex.path)
            assert all(isinstance(v, Violation) for v in violations)
            assert not [v for v in violations if "checkable" in v.expected], format_report(
                violations
            )


def test_folder_problems(tmp_path: Path) -> None:
    assert found(tmp_path / "missing") == {(".", "file")}
    (tmp_path / "file.txt").write_text("x")
    assert found(tmp_path / "file.txt") == {(".", "file")}
    (tmp_path / "empty").mkdir()
    assert found(tmp_path / "empty") == {(".", "file")}


def test_points_file_of_other_dimension_only(tmp_path: Path) -> None:
    ex = write_dataset(tmp_path / "ds", dims=(2,))
    (ex.path / "points_2d.bin").rename(ex.path / "points_3d.bin")
    keys = found(ex.path)
    assert ("points_2d.bin", "file") in keys
    assert ("points_3d.bin", "file") in keys


def test_little_endian_payload_is_checked_as_such(tmp_path: Path) -> None:
    ex = write_dataset(
        tmp_path / "ds",
        n=4,
        categorical=False,
        continuous=False,
        n_genes=0,
        connectivity=False,
        vectors=False,
        dims=(1,),
    )
    values = (-1.0, 1.0, 0.0, -0.8909955024719238)  # read big-endian as little: 156050.98
    (ex.path / "points_1d.bin").write_bytes(struct.pack(">4f", *values))
    assert_reports(ex.path, "points_1d.bin", "values")
    (ex.path / "points_1d.bin").write_bytes(struct.pack("<4f", *values))
    assert validate_export(ex.path) == []


# ---- export roots and datasets.json (SPEC §2.2, §2.11, §2.12 item 1) ----------------------
def test_valid_root(tmp_path: Path) -> None:
    root = write_root(tmp_path / "root", names=("alpha", "beta", "gamma"), compression=6)
    assert validate_export(root) == []


def test_violations_inside_a_root_are_prefixed(tmp_path: Path) -> None:
    root = write_root(tmp_path / "root")
    rewrite_json(root / "beta" / OBS, put("n_points", value=1))
    assert_reports(root, f"beta/{OBS}", "n_points")


ROOT_CASES = [
    (put("version", value=2), "version"),
    (put("default", value="nope"), "default"),
    (put("default", value=None), "default"),
    (put("datasets", value=[]), "datasets"),
    (put("extra", value=1), "extra"),
    (drop("default"), "default"),
    (put("datasets", 0, "id", value="alpha"), "datasets[0].id"),
    (put("datasets", 1, "name", value="Beta"), "datasets[1].name"),
    (put("datasets", 1, "n_cells", value=30), "datasets[1].n_cells"),
    (put("datasets", 0, "n_genes", value=0), "datasets[0].n_genes"),
    (put("datasets", 0, "path", value="alpha"), "datasets[0].path"),
    (put("datasets", 0, "path", value="/alpha/"), "datasets[0].path"),
    (put("datasets", 0, "path", value="delta/"), "datasets[0].path"),
    (put("datasets", 0, "extra", value=1), "datasets[0].extra"),
    (drop("datasets", 0, "name"), "datasets[0].name"),
    (drop("datasets", 1), "datasets"),
    (lambda d: d["datasets"].reverse(), "datasets"),
    (lambda d: d["datasets"].append(dict(d["datasets"][0])), "datasets[2].id"),
    (lambda d: d["datasets"].append(dict(d["datasets"][0], id="x")), "datasets[2].path"),
]


@pytest.mark.parametrize(("edit", "key"), ROOT_CASES)
def test_datasets_json(tmp_path, edit, key) -> None:
    root = write_root(tmp_path / "root")
    rewrite_json(root / "datasets.json", edit)
    assert_reports(root, "datasets.json", key)


def test_root_without_datasets_json(tmp_path: Path) -> None:
    root = write_root(tmp_path / "root")
    (root / "datasets.json").unlink()
    assert found(root) == {("datasets.json", "file")}


def test_duplicate_identity_ids(tmp_path: Path) -> None:
    root = write_root(tmp_path / "root")
    rewrite_json(root / "beta" / IDENTITY, put("id", value="ds-alpha"))
    assert_reports(root, f"beta/{IDENTITY}", "id", "no other dataset")


@pytest.mark.parametrize("name", ["assets", "_cellucid", "CON", "nul.txt", "-x", "a b", "x" * 181])
def test_ineligible_dataset_dir(tmp_path: Path, name: str) -> None:
    root = write_root(tmp_path / "root")
    write_dataset(root / name, dataset_id="other")
    assert_reports(root, f"{name}/", "name")


def test_root_ignores_non_dataset_subdirectories(tmp_path: Path) -> None:
    root = write_root(tmp_path / "root")
    (root / "images").mkdir()
    (root / "images" / "a.png").write_bytes(b"x")
    assert validate_export(root) == []


def test_old_nine_key_connectivity_manifest(tmp_path: Path) -> None:
    """Upstream's manifest without weights (SPEC §7.15): keys reported, edges still checked."""
    ex = write_dataset(tmp_path / "ds")
    _edit_edges(ex, _swap_edges)
    (ex.path / WEIGHTS).unlink()
    for key in ("weightsPath", "weight_dtype", "weight_bytes"):
        rewrite_json(ex.path / CONN, drop(key))
    keys = found(ex.path)
    assert {(CONN, "weightsPath"), (CONN, "weight_dtype"), (CONN, "weight_bytes")} <= keys
    assert (SRC, "values") in keys
    assert not any(file.startswith("connectivity/") and key == "file" for file, key in keys)


@pytest.mark.parametrize("bits", [None, 8, 16])
def test_no_category_large_enough(tmp_path: Path, bits) -> None:
    """centroid_min_points above every category: no centroids, all-NaN outliers whose
    quantised bounds are the default 0, 1 (SPEC §2.6.6, §2.6.8, §2.6.9)."""
    ex = write_dataset(tmp_path / "ds", min_points=100, obs_quantization=bits)
    assert np.isnan(ex.outliers["cell type"]).all()
    assert validate_export(ex.path) == []


def test_fixed_outlier_bounds_with_data(tmp_path: Path) -> None:
    """Upstream appended fixed 0.0, 1.0 outlier bounds (SPEC §7.16)."""
    ex = write_dataset(tmp_path / "ds", obs_quantization=8)
    rewrite_json(ex.path / OBS, put("_categoricalFields", 0, 5, value=0.0))
    assert_reports(ex.path, OBS, "_categoricalFields[0][5]", "only when no cell")
