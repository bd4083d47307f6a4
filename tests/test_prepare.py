"""``prepare()`` end to end: what it writes, decoded independently, against SPEC §2 and §6.2/§6.5.

Expected file sets, manifests and payloads are derived here from the SPEC and from the
inputs (through the loop references in ``_data``), never from the exporter's own helpers.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import cellucid
from _data import (
    CLUSTER_ORDER,
    assert_same,
    centroids_reference,
    dequantise,
    dirs_under,
    edges_reference,
    embedding,
    expression,
    files_under,
    gene_var,
    gzip_header,
    half_step,
    knn_graph,
    latent,
    make_adata,
    mixed_obs,
    normalise,
    outliers_reference,
    read_array,
    read_bytes,
    read_json,
    rng,
    snapshot,
    tree_bytes,
    with_gz,
)
from cellucid.export.prepare import prepare

N = 80
G = 6
CONTINUOUS = ["n genes", "score", "n_counts"]  # obs order among the continuous columns
CATEGORICAL = ["cluster", "batch", "is_doublet", "maybe"]
SAFE = {"n genes": "n_genes"}

OBS_KEYS = [
    "_format",
    "n_points",
    "centroid_outlier_quantile",
    "latent_key",
    "compression",
    "_obsSchemas",
    "_continuousFields",
    "_categoricalFields",
]
VAR_KEYS = [
    "_format",
    "n_points",
    "var_gene_id_column",
    "compression",
    "quantization",
    "_varSchema",
    "fields",
]
CONN_KEYS = [
    "format",
    "n_cells",
    "n_edges",
    "max_neighbors",
    "index_bytes",
    "index_dtype",
    "sourcesPath",
    "destinationsPath",
    "weightsPath",
    "weight_dtype",
    "weight_bytes",
    "compression",
]
IDENTITY_ORDER = [
    "version",
    "id",
    "name",
    "description",
    "created_at",
    "cellucid_data_version",
    "stats",
    "embeddings",
    "obs_fields",
    "export_settings",
    "source",
    "vector_fields",
]
STATS_KEYS = [
    "n_cells",
    "n_genes",
    "n_obs_fields",
    "n_categorical_fields",
    "n_continuous_fields",
    "has_connectivity",
    "n_edges",
]
CREATED_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
EXT = {None: "f32", 8: "u8", 16: "u16"}
DTYPE = {"f32": "float32", "u8": "uint8", "u16": "uint16"}


def full_inputs(n: int = N, g: int = G, seed: int = 0) -> dict:
    """Every array-form input at once (SPEC §6.2)."""
    r = rng(seed + 50)
    return {
        "latent_space": latent(n, 5, seed),
        "obs": mixed_obs(n, seed),
        "var": gene_var(g),
        "gene_expression": sp.csr_matrix(expression(n, g, seed)),
        "connectivities": knn_graph(n, 4, seed),
        "X_umap_2d": embedding(n, 2, seed + 1),
        "X_umap_3d": embedding(n, 3, seed + 2),
        "vector_fields": {
            "velocity_umap_2d": r.normal(size=(n, 2)),
            "velocity_umap_3d": r.normal(size=(n, 3)),
            "drift": r.normal(size=(n, 2)).astype(np.float32),  # implicit, 2 columns
        },
    }


def run(out: Path, **kwargs) -> Path:
    kwargs.setdefault("quiet", True)
    return prepare(out_dir=out, **kwargs)


def minimal(n: int = 20, seed: int = 0, **extra) -> dict:
    kw = {"obs": pd.DataFrame({"v": np.arange(n, dtype=float)}), "X_umap_2d": embedding(n, 2, seed)}
    kw.update(extra)
    return kw


def continuous_schema(prefix: str, bits: int | None, gz: str) -> dict:
    """The continuous schema of SPEC §2.6.3, keys in the listed order."""
    ext = EXT[bits]
    schema = {
        "pathPattern": f"{prefix}/{{key}}.values.{ext}{gz}",
        "ext": ext,
        "dtype": DTYPE[ext],
        "quantized": bits is not None,
    }
    if bits:
        schema["quantizationBits"] = bits
    return schema


def assert_vectors(root: Path, rel: str, raw, points) -> None:
    """A vector payload equals the raw vectors times the embedding's scale (SPEC §2.9)."""
    raw = np.asarray(raw, dtype=np.float64)
    raw = raw if raw.ndim == 2 else raw[:, None]
    _, scale = normalise(points)
    got = read_array(root, rel, "float32", raw.shape)
    np.testing.assert_allclose(got, (raw * scale).astype(np.float32), rtol=1e-6, atol=1e-7)


def expected_labels(series: pd.Series) -> tuple[list[str], list[str | None]]:
    """Categories and per-cell labels of a categorical obs column, per SPEC §2.6.1."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        cats = [str(c) for c in series.cat.categories]
        labels = [None if pd.isna(v) else str(v) for v in series]
    elif pd.api.types.is_bool_dtype(series.dtype):
        cats = ["False", "True"]
        labels = [None if pd.isna(v) else str(bool(v)) for v in series]
    else:
        labels = [None if pd.isna(v) else str(v) for v in series]
        cats = sorted({x for x in labels if x is not None})
    return cats, labels


def expected_files(
    *, compression, obs_q, var_q, genes, dims, latent_on=True, edges=True, vectors=()
) -> set[str]:
    """The file set of SPEC §2.1 for the ``full_inputs`` obs columns."""
    ext = EXT[obs_q]
    files = {"dataset_identity.json", "obs_manifest.json"}
    binaries = [f"points_{d}d.bin" for d in dims]
    binaries += [f"obs/{SAFE.get(k, k)}.values.{ext}" for k in CONTINUOUS]
    for k in CATEGORICAL:
        binaries.append(f"obs/{k}.codes.u8")
        if latent_on:
            binaries.append(f"obs/{k}.outliers.{ext}")
    if genes:
        files.add("var_manifest.json")
        binaries += [f"var/{g}.values.{EXT[var_q]}" for g in genes]
    if edges:
        files.add("connectivity_manifest.json")
        binaries += [f"connectivity/edges.{x}.bin" for x in ("src", "dst", "weights.f64")]
    binaries += [f"vectors/{fid}_{d}d.bin" for fid, d in vectors]
    return files | {with_gz(b, compression) for b in binaries}


# ============================================================================ one full export
CONFIGS = {
    "plain": {"compression": None, "obs_q": None, "var_q": None},
    "gzip6": {"compression": 6, "obs_q": None, "var_q": None},
    "quant_8_16": {"compression": None, "obs_q": 8, "var_q": 16},
    "gzip9_quant_16_8": {"compression": 9, "obs_q": 16, "var_q": 8},
    "gzip1_quant_8_8": {"compression": 1, "obs_q": 8, "var_q": 8},
}
VECTORS = [("velocity_umap", 2), ("velocity_umap", 3), ("drift", 2)]


class Export:
    def __init__(self, root: Path, inputs: dict, config: dict):
        self.root = root
        self.inputs = inputs
        self.cfg = config
        self.gz = config["compression"]

    def json(self, name):
        return read_json(self.root, name)

    def path(self, rel):
        return with_gz(rel, self.gz)


@pytest.fixture(scope="module", params=list(CONFIGS))
def full(request, tmp_path_factory) -> Export:
    cfg = CONFIGS[request.param]
    inputs = full_inputs()
    root = tmp_path_factory.mktemp(request.param) / "My Dataset"
    out = run(
        root,
        compression=cfg["compression"],
        obs_continuous_quantization=cfg["obs_q"],
        var_quantization=cfg["var_q"],
        **inputs,
    )
    assert out == root.resolve()
    return Export(out, inputs, cfg)


def test_file_set_is_exactly_the_spec_layout(full):
    cfg = full.cfg
    want = expected_files(
        compression=cfg["compression"],
        obs_q=cfg["obs_q"],
        var_q=cfg["var_q"],
        genes=[f"Gene{i}" for i in range(G)],
        dims=[2, 3],
        vectors=VECTORS,
    )
    got = files_under(full.root)
    assert got - want == set(), "unexpected files"
    assert want - got == set(), "missing files"
    assert dirs_under(full.root) == {"obs", "var", "connectivity", "vectors"}


def test_every_binary_is_gz_iff_compressed_with_a_reproducible_header(full):
    for rel in files_under(full.root):
        if rel.endswith(".json"):
            assert not rel.endswith(".gz")
            continue
        assert rel.endswith(".gz") == bool(full.gz), rel
        if full.gz:
            data = (full.root / rel).read_bytes()
            h = gzip_header(data)
            assert h["mtime"] == 0, rel
            assert h["flags"] & 0x08 == 0, f"{rel}: FNAME set"
            assert h["flags"] & 0x10 == 0, f"{rel}: FCOMMENT set"
            assert h["os"] == 0xFF, rel
            read_bytes(full.root, rel)  # exactly one member, nothing after it


def test_points_are_normalised_per_spec(full):
    for d in (2, 3):
        pts = read_array(full.root, full.path(f"points_{d}d.bin"), "float32", (N, d))
        ref, _ = normalise(full.inputs[f"X_umap_{d}d"])
        np.testing.assert_allclose(pts, ref, rtol=0, atol=1e-7)


def test_obs_manifest_keys_and_schemas(full):
    m = full.json("obs_manifest.json")
    assert list(m) == OBS_KEYS
    assert m["_format"] == "compact_v1"
    assert m["n_points"] == N
    assert m["centroid_outlier_quantile"] == 0.95
    assert m["latent_key"] == "latent_space"
    assert m["compression"] == full.gz
    gz = ".gz" if full.gz else ""
    bits = full.cfg["obs_q"]
    ext = EXT[bits]
    cont = continuous_schema("obs", bits, gz)
    cat = {
        "codesPathPattern": f"obs/{{key}}.codes.{{ext}}{gz}",
        "outlierPathPattern": f"obs/{{key}}.outliers.{ext}{gz}",
        "outlierExt": ext,
        "outlierDtype": DTYPE[ext],
        "outlierQuantized": bits is not None,
    }
    assert m["_obsSchemas"] == {"continuous": cont, "categorical": cat}
    assert list(m["_obsSchemas"]["continuous"]) == list(cont)
    assert list(m["_obsSchemas"]["categorical"]) == list(cat)
    assert [t[0] for t in m["_continuousFields"]] == CONTINUOUS
    assert [t[0] for t in m["_categoricalFields"]] == CATEGORICAL


def test_obs_json_files_are_compact_and_identity_is_indented(full):
    for name in ("obs_manifest.json", "var_manifest.json", "connectivity_manifest.json"):
        text = (full.root / name).read_text(encoding="utf-8")
        assert "\n" not in text.rstrip("\n"), f"{name} must be a single line"
        assert text.rstrip("\n") in (
            json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False),
            json.dumps(json.loads(text), separators=(",", ":")),
        )
        assert "NaN" not in text and "Infinity" not in text
    text = (full.root / "dataset_identity.json").read_text(encoding="utf-8")
    obj = json.loads(text)
    assert text.rstrip("\n") in (
        json.dumps(obj, indent=2, ensure_ascii=False),
        json.dumps(obj, indent=2),
    )


def test_continuous_values(full):
    tuples = {t[0]: t for t in full.json("obs_manifest.json")["_continuousFields"]}
    bits = full.cfg["obs_q"]
    for key in CONTINUOUS:
        src = full.inputs["obs"][key].to_numpy(dtype=np.float64, na_value=np.nan)
        rel = full.path(f"obs/{SAFE.get(key, key)}.values.{EXT[bits]}")
        if bits is None:
            assert tuples[key] == [key]
            got = read_array(full.root, rel, "float32", (N,))
            np.testing.assert_array_equal(got, src.astype(np.float32))  # NaN/±inf as is
        else:
            _, lo, hi = tuples[key]
            finite = src[np.isfinite(src)]
            assert lo < hi
            assert lo == pytest.approx(finite.min(), rel=1e-6)
            assert hi == pytest.approx(finite.max(), rel=1e-6)
            codes = read_array(full.root, rel, DTYPE[EXT[bits]], (N,))
            dec = dequantise(codes, lo, hi, bits)
            assert np.array_equal(np.isnan(dec), ~np.isfinite(src))
            ok = np.isfinite(src)
            tol = half_step(lo, hi, bits) + 1e-6 * np.abs(src[ok]) + 1e-12
            assert (np.abs(dec[ok] - src[ok]) <= tol).all(), key


def test_categorical_codes_and_tuples(full):
    m = full.json("obs_manifest.json")
    bits = full.cfg["obs_q"]
    for t in m["_categoricalFields"]:
        key, cats, codes_dtype, missing, centroids = t[:5]
        want_cats, labels = expected_labels(full.inputs["obs"][key])
        assert cats == want_cats, key
        assert (codes_dtype, missing) == ("uint8", 255)
        assert len(t) == (7 if bits else 5)
        codes = read_array(full.root, full.path(f"obs/{key}.codes.u8"), "uint8", (N,))
        got = [None if c == 255 else cats[c] for c in codes]
        assert got == labels, key
        assert ((codes < len(cats)) | (codes == 255)).all()
        assert list(centroids) == ["2", "3"]


def test_unused_category_is_kept(full):
    t = {t[0]: t for t in full.json("obs_manifest.json")["_categoricalFields"]}["cluster"]
    assert t[1] == CLUSTER_ORDER
    assert "unused" not in [c["category"] for c in t[4]["2"]]


def test_centroids_match_reference(full):
    m = full.json("obs_manifest.json")
    for t in m["_categoricalFields"]:
        key, cats, _, _, by_dim = t[:5]
        _, labels = expected_labels(full.inputs["obs"][key])
        codes = np.array([-1 if x is None else cats.index(x) for x in labels])
        for d in (2, 3):
            pts = read_array(full.root, full.path(f"points_{d}d.bin"), "float32", (N, d))
            want = centroids_reference(codes, cats, pts, 0.95, 10)
            got = by_dim[str(d)]
            assert [c["category"] for c in got] == [c["category"] for c in want], key
            assert [c["n_points"] for c in got] == [c["n_points"] for c in want], key
            for g, w in zip(got, want, strict=True):
                assert list(g) == ["category", "position", "n_points"]
                np.testing.assert_allclose(g["position"], w["position"], atol=1e-6)


def test_outlier_quantiles_match_reference(full):
    m = full.json("obs_manifest.json")
    bits = full.cfg["obs_q"]
    lat = full.inputs["latent_space"]
    for t in m["_categoricalFields"]:
        key, cats = t[0], t[1]
        _, labels = expected_labels(full.inputs["obs"][key])
        codes = np.array([-1 if x is None else cats.index(x) for x in labels])
        want = outliers_reference(codes, len(cats), lat, 10)
        rel = full.path(f"obs/{key}.outliers.{EXT[bits]}")
        if bits is None:
            got = read_array(full.root, rel, "float32", (N,))
            np.testing.assert_array_equal(got, want)
        else:
            lo, hi = t[5], t[6]
            finite = want[np.isfinite(want)]
            assert np.isfinite(lo) and np.isfinite(hi) and lo < hi
            assert finite.size and finite.min() < finite.max()  # true for these inputs
            # data-derived bounds (§2.6.4), not a fixed [0, 1]
            assert lo == pytest.approx(finite.min(), rel=1e-6)
            assert hi == pytest.approx(finite.max(), rel=1e-6)
            q = read_array(full.root, rel, DTYPE[EXT[bits]], (N,))
            dec = dequantise(q, lo, hi, bits)
            assert np.array_equal(np.isnan(dec), np.isnan(want))
            ok = ~np.isnan(want)
            assert (np.abs(dec[ok] - want[ok]) <= half_step(lo, hi, bits) + 1e-6).all()


def test_var_manifest_and_gene_payloads(full):
    m = full.json("var_manifest.json")
    bits = full.cfg["var_q"]
    ext = EXT[bits]
    gz = ".gz" if full.gz else ""
    assert list(m) == VAR_KEYS
    assert m["_format"] == "compact_v1"
    assert m["n_points"] == N
    assert m["var_gene_id_column"] == "index"
    assert m["compression"] == full.gz
    assert m["quantization"] == bits
    schema = {"kind": "continuous", **continuous_schema("var", bits, gz)}
    assert m["_varSchema"] == schema and list(m["_varSchema"]) == list(schema)
    dense = full.inputs["gene_expression"].toarray().astype(np.float64)
    assert [f[0] for f in m["fields"]] == [f"Gene{i}" for i in range(G)]
    for i, field in enumerate(m["fields"]):
        rel = full.path(f"var/Gene{i}.values.{ext}")
        col = dense[:, i]
        if bits is None:
            assert field == [f"Gene{i}"]
            got = read_array(full.root, rel, "float32", (N,))
            np.testing.assert_array_equal(got, col.astype(np.float32))
        else:
            _, lo, hi = field
            assert lo < hi and np.isfinite([lo, hi]).all()
            assert lo == pytest.approx(col.min(), rel=1e-6, abs=1e-12)
            if col.max() > col.min():
                assert hi == pytest.approx(col.max(), rel=1e-6)
            q = read_array(full.root, rel, DTYPE[ext], (N,))
            dec = dequantise(q, lo, hi, bits)
            assert (np.abs(dec - col) <= half_step(lo, hi, bits) + 1e-6 * np.abs(col)).all()


def test_connectivity_manifest_and_edges(full):
    m = full.json("connectivity_manifest.json")
    src, dst, w, max_nb = edges_reference(full.inputs["connectivities"].toarray())
    gz = ".gz" if full.gz else ""
    assert list(m) == CONN_KEYS
    assert m == {
        "format": "edge_pairs",
        "n_cells": N,
        "n_edges": len(src),
        "max_neighbors": max_nb,
        "index_bytes": 2,
        "index_dtype": "uint16",
        "sourcesPath": f"connectivity/edges.src.bin{gz}",
        "destinationsPath": f"connectivity/edges.dst.bin{gz}",
        "weightsPath": f"connectivity/edges.weights.f64.bin{gz}",
        "weight_dtype": "float64",
        "weight_bytes": 8,
        "compression": full.gz,
    }
    np.testing.assert_array_equal(read_array(full.root, m["sourcesPath"], "uint16"), src)
    np.testing.assert_array_equal(read_array(full.root, m["destinationsPath"], "uint16"), dst)
    np.testing.assert_array_equal(read_array(full.root, m["weightsPath"], "float64"), w)


def test_vectors_are_scaled_by_the_points_scale(full):
    for fid, d in VECTORS:
        key = f"{fid}_{d}d" if fid != "drift" else "drift"
        rel = full.path(f"vectors/{fid}_{d}d.bin")
        assert_vectors(
            full.root, rel, full.inputs["vector_fields"][key], full.inputs[f"X_umap_{d}d"]
        )


def test_identity(full):
    ident = full.json("dataset_identity.json")
    gz = ".gz" if full.gz else ""
    assert list(ident) == [k for k in IDENTITY_ORDER if k != "source"]
    assert ident["version"] == 2
    assert ident["name"] == "My Dataset"  # the resolved out_dir's name
    assert ident["id"] == "My_Dataset"  # safe(out_dir.name)
    assert ident["description"] == ""
    assert CREATED_AT.match(ident["created_at"])
    assert ident["cellucid_data_version"] == cellucid.__version__ != ""
    n_edges = full.json("connectivity_manifest.json")["n_edges"]
    assert list(ident["stats"]) == STATS_KEYS
    assert ident["stats"] == {
        "n_cells": N,
        "n_genes": G,
        "n_obs_fields": 7,
        "n_categorical_fields": 4,
        "n_continuous_fields": 3,
        "has_connectivity": True,
        "n_edges": n_edges,
    }
    assert ident["embeddings"] == {
        "available_dimensions": [2, 3],
        "default_dimension": 3,
        "files": {"2d": f"points_2d.bin{gz}", "3d": f"points_3d.bin{gz}"},
    }
    assert list(ident["embeddings"]) == ["available_dimensions", "default_dimension", "files"]
    m = full.json("obs_manifest.json")
    want_fields = [{"key": k, "kind": "continuous"} for k in CONTINUOUS] + [
        {"key": t[0], "kind": "category", "n_categories": len(t[1])}
        for t in m["_categoricalFields"]
    ]
    assert ident["obs_fields"] == want_fields
    assert [list(f) for f in ident["obs_fields"]] == [list(f) for f in want_fields]
    assert ident["export_settings"] == {
        "compression": full.gz,
        "var_quantization": full.cfg["var_q"],
        "obs_continuous_quantization": full.cfg["obs_q"],
        "obs_categorical_dtype": "auto",
    }
    assert list(ident["export_settings"]) == [
        "compression",
        "var_quantization",
        "obs_continuous_quantization",
        "obs_categorical_dtype",
    ]
    vf = ident["vector_fields"]
    assert list(vf) == ["default_field", "fields"]
    assert vf["default_field"] == "velocity_umap"
    assert list(vf["fields"]) == ["drift", "velocity_umap"]  # ids sorted
    assert vf["fields"]["velocity_umap"] == {
        "label": "velocity_umap",
        "basis": "umap",
        "available_dimensions": [2, 3],
        "default_dimension": 3,
        "files": {
            "2d": f"vectors/velocity_umap_2d.bin{gz}",
            "3d": f"vectors/velocity_umap_3d.bin{gz}",
        },
    }
    assert list(vf["fields"]["drift"]) == [
        "label",
        "basis",
        "available_dimensions",
        "default_dimension",
        "files",
    ]
    assert vf["fields"]["drift"]["files"] == {"2d": f"vectors/drift_2d.bin{gz}"}
    assert vf["fields"]["drift"]["default_dimension"] == 2


def test_export_is_reproducible(full, tmp_path):
    """Identical inputs give identical bytes; the identity differs at most in created_at."""
    again = run(
        tmp_path / "My Dataset",
        compression=full.cfg["compression"],
        obs_continuous_quantization=full.cfg["obs_q"],
        var_quantization=full.cfg["var_q"],
        **full_inputs(),
    )
    a, b = tree_bytes(full.root), tree_bytes(again)
    assert a.keys() == b.keys()
    for rel in a:
        if rel == "dataset_identity.json":
            ia, ib = json.loads(a[rel]), json.loads(b[rel])
            ia.pop("created_at")
            ib.pop("created_at")
            assert ia == ib
        else:
            assert a[rel] == b[rel], rel


def test_inputs_are_not_modified(full):
    fresh = full_inputs()
    for key, value in fresh.items():
        assert_same(value, full.inputs[key], key)


# ============================================================================ smaller exports
def test_return_value_is_the_resolved_out_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = prepare(out_dir="rel/../ds", quiet=True, **minimal())
    assert out == (tmp_path / "ds").resolve()
    assert out.is_absolute()
    assert (out / "dataset_identity.json").is_file()


def test_default_out_dir_is_evaluated_at_call_time(tmp_path, monkeypatch):
    for sub in ("first", "second"):
        (tmp_path / sub).mkdir()
        monkeypatch.chdir(tmp_path / sub)
        out = prepare(quiet=True, **minimal())
        assert out == (tmp_path / sub / "exports").resolve()
        assert read_json(out, "dataset_identity.json")["name"] == "exports"
        assert read_json(out, "dataset_identity.json")["id"] == "exports"


def test_out_dir_parents_are_created(tmp_path):
    out = run(tmp_path / "a" / "b" / "c", **minimal())
    assert (out / "obs_manifest.json").is_file()


def test_quiet_prints_nothing(tmp_path, capfd):
    run(tmp_path / "q", quiet=True, **minimal())
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


def test_positional_parameter_order(tmp_path):
    """SPEC §6.2 lists the positional order of the array form."""
    n = 15
    obs = pd.DataFrame({"c": pd.Categorical(["a", "b", "c"] * 5)})
    x = expression(n, 3)
    var = gene_var(3)
    conn = knn_graph(n, 2)
    emb = embedding(n, 2)
    args = [
        latent(n, 3),  # latent_space
        obs,  # obs
        var,  # var
        x,  # gene_expression
        "symbol",  # var_gene_id_column
        ["SYM-2", "SYM-0"],  # gene_identifiers
        conn,  # connectivities
        tmp_path / "pos",  # out_dir
        ["c"],  # obs_keys
        0.9,  # centroid_outlier_quantile
        2,  # centroid_min_points
        "obs_manifest.json",
        "obs",
        "var_manifest.json",
        "var",
        "connectivity_manifest.json",
        "connectivity",
        False,  # force
        16,  # var_quantization
        8,  # obs_continuous_quantization
        "uint16",  # obs_categorical_dtype
        3,  # compression
        "Positional",  # dataset_name
        "desc",  # dataset_description
        "pos-id",  # dataset_id
        "src",  # source_name
        "https://example.org",  # source_url
        "cite me",  # source_citation
        None,  # X_umap_1d
        emb,  # X_umap_2d
        None,  # X_umap_3d
        None,  # X_umap_4d
        {"v_2d": np.ones((n, 2))},  # vector_fields
    ]
    out = prepare(*args, quiet=True)
    ident = read_json(out, "dataset_identity.json")
    assert ident["id"] == "pos-id" and ident["name"] == "Positional"
    assert ident["description"] == "desc"
    assert ident["source"] == {"name": "src", "url": "https://example.org", "citation": "cite me"}
    assert ident["export_settings"] == {
        "compression": 3,
        "var_quantization": 16,
        "obs_continuous_quantization": 8,
        "obs_categorical_dtype": "uint16",
    }
    assert ident["stats"]["n_genes"] == 2 and ident["stats"]["has_connectivity"]
    assert [f[0] for f in read_json(out, "var_manifest.json")["fields"]] == ["SYM-2", "SYM-0"]
    obs_m = read_json(out, "obs_manifest.json")
    assert obs_m["centroid_outlier_quantile"] == 0.9
    assert obs_m["_categoricalFields"][0][2] == "uint16"
    assert "vectors/v_2d.bin.gz" in files_under(out)


def test_obs_without_columns(tmp_path):
    out = run(tmp_path / "empty_obs", obs=pd.DataFrame(index=range(12)), X_umap_2d=embedding(12, 2))
    m = read_json(out, "obs_manifest.json")
    assert m["_obsSchemas"] == {}
    assert m["_continuousFields"] == [] and m["_categoricalFields"] == []
    assert (out / "obs").is_dir() and list((out / "obs").iterdir()) == []
    ident = read_json(out, "dataset_identity.json")
    assert ident["obs_fields"] == []
    assert ident["stats"]["n_obs_fields"] == 0
    assert files_under(out) == {"dataset_identity.json", "obs_manifest.json", "points_2d.bin"}
    assert dirs_under(out) == {"obs"}
    assert ident["stats"]["n_genes"] == 0
    assert ident["stats"]["has_connectivity"] is False and ident["stats"]["n_edges"] is None
    assert "vector_fields" not in ident and "source" not in ident


@pytest.mark.parametrize("kind", ["continuous", "categorical"])
def test_schemas_only_for_present_kinds(tmp_path, kind):
    col = np.arange(10.0) if kind == "continuous" else pd.Categorical(list("ab") * 5)
    out = run(tmp_path / kind, obs=pd.DataFrame({"x": col}), X_umap_2d=embedding(10, 2))
    assert list(read_json(out, "obs_manifest.json")["_obsSchemas"]) == [kind]


@pytest.mark.parametrize("obs_q", [None, 8])
def test_without_latent_space_there_are_no_outliers(tmp_path, obs_q):
    inputs = full_inputs()
    del inputs["latent_space"]
    out = run(tmp_path / "nolat", obs_continuous_quantization=obs_q, **inputs)
    m = read_json(out, "obs_manifest.json")
    assert m["latent_key"] is None
    cat_schema = m["_obsSchemas"]["categorical"]
    assert cat_schema["outlierPathPattern"] is None
    assert cat_schema["outlierExt"] is None and cat_schema["outlierDtype"] is None
    assert cat_schema["outlierQuantized"] is False
    assert all(len(t) == 5 for t in m["_categoricalFields"])
    assert not [f for f in files_under(out) if ".outliers." in f]
    assert files_under(out) == expected_files(
        compression=None,
        obs_q=obs_q,
        var_q=None,
        genes=[f"Gene{i}" for i in range(G)],
        dims=[2, 3],
        latent_on=False,
        vectors=VECTORS,
    )


def test_sparse_latent_space(tmp_path):
    inputs = full_inputs()
    dense = tmp_path / "dense"
    run(dense, **inputs)
    inputs["latent_space"] = sp.csr_matrix(inputs["latent_space"])
    sparse = run(tmp_path / "sparse", **inputs)
    for key in CATEGORICAL:
        rel = f"obs/{key}.outliers.f32"
        assert read_bytes(dense, rel) == read_bytes(sparse, rel)


def test_centroid_quantile_none(tmp_path):
    out = run(tmp_path / "noq", centroid_outlier_quantile=None, **full_inputs())
    m = read_json(out, "obs_manifest.json")
    assert m["centroid_outlier_quantile"] is None
    for t in m["_categoricalFields"]:
        assert t[4] == {"2": [], "3": []}


@pytest.mark.parametrize(("q", "min_points"), [(0.6, 1), (0.99, 25)])
def test_centroid_settings_are_applied(tmp_path, q, min_points):
    inputs = full_inputs()
    out = run(tmp_path / "c", centroid_outlier_quantile=q, centroid_min_points=min_points, **inputs)
    m = read_json(out, "obs_manifest.json")
    assert m["centroid_outlier_quantile"] == q
    t = {t[0]: t for t in m["_categoricalFields"]}["cluster"]
    _, labels = expected_labels(inputs["obs"]["cluster"])
    codes = np.array([-1 if x is None else t[1].index(x) for x in labels])
    pts = read_array(out, "points_2d.bin", "float32", (N, 2))
    want = centroids_reference(codes, t[1], pts, q, min_points)
    assert [(c["category"], c["n_points"]) for c in t[4]["2"]] == [
        (c["category"], c["n_points"]) for c in want
    ]
    outl = read_array(out, "obs/cluster.outliers.f32", "float32", (N,))
    np.testing.assert_array_equal(
        outl, outliers_reference(codes, len(t[1]), inputs["latent_space"], min_points)
    )


@pytest.mark.parametrize(
    ("dims", "default"), [((1,), 1), ((3,), 3), ((1, 2), 2), ((1, 3), 3), ((1, 2, 3), 3)]
)
@pytest.mark.parametrize("compression", [None, 2])
def test_available_and_default_dimensions(tmp_path, dims, default, compression):
    n = 25
    kw = {f"X_umap_{d}d": embedding(n, d, d) for d in dims}
    out = run(tmp_path / "dims", obs=pd.DataFrame(index=range(n)), compression=compression, **kw)
    ident = read_json(out, "dataset_identity.json")
    assert ident["embeddings"]["available_dimensions"] == list(dims)
    assert ident["embeddings"]["default_dimension"] == default
    gz = ".gz" if compression else ""
    assert ident["embeddings"]["files"] == {f"{d}d": f"points_{d}d.bin{gz}" for d in dims}
    for d in dims:
        raw = read_bytes(out, f"points_{d}d.bin{gz}")
        assert len(raw) == n * d * 4
        np.testing.assert_allclose(
            np.frombuffer(raw, "<f4").reshape(n, d), normalise(kw[f"X_umap_{d}d"])[0], atol=1e-7
        )


def test_codes_dtype_is_chosen_per_field(tmp_path):
    n = 300
    obs = pd.DataFrame(
        {
            "many": pd.Categorical([f"c{i:03d}" for i in range(n)][:256] * 2)[:n],
            "few": pd.Categorical(["x", "y", None] * 100),
        }
    )
    out = run(tmp_path / "u16", obs=obs, X_umap_2d=embedding(n, 2), compression=4)
    m = read_json(out, "obs_manifest.json")
    t = {t[0]: t for t in m["_categoricalFields"]}
    assert t["many"][2:4] == ["uint16", 65535] and len(t["many"][1]) == 256
    assert t["few"][2:4] == ["uint8", 255]
    assert {"obs/many.codes.u16.gz", "obs/few.codes.u8.gz"} <= files_under(out)
    codes = read_array(out, "obs/many.codes.u16.gz", "uint16", (n,))
    assert [t["many"][1][c] for c in codes] == [str(v) for v in obs["many"]]
    few = read_array(out, "obs/few.codes.u8.gz", "uint8", (n,))
    assert few[:3].tolist() == [0, 1, 255]


def test_obs_categorical_dtype_uint16_for_every_field(tmp_path):
    obs = pd.DataFrame({"a": pd.Categorical(list("xyz") * 4), "b": [True, False] * 6})
    out = run(
        tmp_path / "all16", obs=obs, X_umap_2d=embedding(12, 2), obs_categorical_dtype="uint16"
    )
    m = read_json(out, "obs_manifest.json")
    assert [t[2:4] for t in m["_categoricalFields"]] == [["uint16", 65535]] * 2
    assert {"obs/a.codes.u16", "obs/b.codes.u16"} <= files_under(out)
    assert read_array(out, "obs/b.codes.u16", "uint16").tolist() == [1, 0] * 6
    ident = read_json(out, "dataset_identity.json")
    assert ident["export_settings"]["obs_categorical_dtype"] == "uint16"


def test_obs_keys_select_and_order(tmp_path):
    inputs = full_inputs()
    out = run(tmp_path / "keys", obs_keys=["score", "batch", "n genes"], **inputs)
    m = read_json(out, "obs_manifest.json")
    assert [t[0] for t in m["_continuousFields"]] == ["score", "n genes"]
    assert [t[0] for t in m["_categoricalFields"]] == ["batch"]
    ident = read_json(out, "dataset_identity.json")
    assert [f["key"] for f in ident["obs_fields"]] == ["score", "n genes", "batch"]
    assert not [f for f in files_under(out) if f.startswith("obs/cluster")]


@pytest.mark.parametrize("obs_q", [None, 8, 16])
def test_degenerate_obs_columns(tmp_path, obs_q):
    n = 12
    obs = pd.DataFrame(
        {
            "no_categories": pd.Categorical([None] * n, categories=[]),
            "object_all_none": pd.Series([None] * n, dtype=object),
            "all_missing": pd.Categorical([None] * n, categories=["a", "b"]),
            "all_nan": np.full(n, np.nan),
            "constant": np.full(n, 4.0),
        }
    )
    out = run(
        tmp_path / "degenerate",
        obs=obs,
        X_umap_2d=embedding(n, 2),
        latent_space=latent(n),
        obs_continuous_quantization=obs_q,
    )
    m = read_json(out, "obs_manifest.json")
    cats = {t[0]: t for t in m["_categoricalFields"]}
    assert cats["no_categories"][1:4] == [[], "uint8", 255]
    assert cats["all_missing"][1] == ["a", "b"]
    assert cats["object_all_none"][1] == []
    for key in ("no_categories", "object_all_none", "all_missing"):
        assert cats[key][4] == {"2": []}
        assert (read_array(out, f"obs/{key}.codes.u8", "uint8") == 255).all()
    ident = read_json(out, "dataset_identity.json")
    assert ident["obs_fields"][2] == {"key": "no_categories", "kind": "category", "n_categories": 0}
    assert ident["obs_fields"][3]["n_categories"] == 0
    cont = {t[0]: t for t in m["_continuousFields"]}
    if obs_q is None:
        assert np.isnan(read_array(out, "obs/all_nan.values.f32", "float32")).all()
        assert (read_array(out, "obs/constant.values.f32", "float32") == 4.0).all()
    else:
        ext = EXT[obs_q]
        assert cont["all_nan"] == ["all_nan", 0.0, 1.0]
        assert cont["constant"] == ["constant", 4.0, 5.0]
        missing = 255 if obs_q == 8 else 65535
        assert (read_array(out, f"obs/all_nan.values.{ext}", DTYPE[ext]) == missing).all()
        assert (read_array(out, f"obs/constant.values.{ext}", DTYPE[ext]) == 0).all()
        for key in ("no_categories", "object_all_none", "all_missing"):
            lo, hi = cats[key][5:7]  # all outliers NaN: no finite value → [0, 1]
            assert (lo, hi) == (0.0, 1.0)
            assert (read_array(out, f"obs/{key}.outliers.{ext}", DTYPE[ext]) == missing).all()


def test_non_string_obs_column_names(tmp_path):
    obs = pd.DataFrame({0: np.arange(6.0), ("a", "b"): pd.Categorical(list("xy") * 3)})
    out = run(tmp_path / "names", obs=obs, X_umap_2d=embedding(6, 2))
    m = read_json(out, "obs_manifest.json")
    assert m["_continuousFields"] == [["0"]]
    assert m["_categoricalFields"][0][0] == "('a', 'b')"
    assert {"obs/0.values.f32", "obs/a_b.codes.u8"} <= files_under(out)


# ---------------------------------------------------------------------------- genes
def test_gene_identifiers_subset_keeps_order_and_drops_unknown(tmp_path):
    inputs = full_inputs()
    wanted = ["Gene4", "nope1", "Gene1", "nope2", "nope3", "nope4", "nope5", "nope6", "Gene5"]
    with pytest.warns(UserWarning) as record:
        out = run(tmp_path / "subset", gene_identifiers=wanted, **inputs)
    msg = " ".join(str(w.message) for w in record)
    for name in ("nope1", "nope2", "nope3", "nope4", "nope5"):
        assert name in msg
    assert "nope6" not in msg, "only the first five unknown ids are listed"
    m = read_json(out, "var_manifest.json")
    assert [f[0] for f in m["fields"]] == ["Gene4", "Gene1", "Gene5"]
    ident = read_json(out, "dataset_identity.json")
    assert ident["stats"]["n_genes"] == 3
    assert {f for f in files_under(out) if f.startswith("var/")} == {
        "var/Gene4.values.f32",
        "var/Gene1.values.f32",
        "var/Gene5.values.f32",
    }
    dense = inputs["gene_expression"].toarray()
    got = read_array(out, "var/Gene4.values.f32", "float32", (N,))
    np.testing.assert_array_equal(got, dense[:, 4])


def test_gene_identifiers_all_unknown_means_no_genes(tmp_path):
    with pytest.warns(UserWarning):
        out = run(tmp_path / "none", gene_identifiers=["x", "y"], **full_inputs())
    assert not (out / "var_manifest.json").exists()
    assert not (out / "var").exists()
    assert read_json(out, "dataset_identity.json")["stats"]["n_genes"] == 0


def test_gene_identifiers_can_avoid_a_collision(tmp_path):
    n = 10
    var = pd.DataFrame(index=["CD8A/B", "CD8A_B", "X"])
    x = rng(1).random((n, 3)).astype(np.float32)
    out = run(
        tmp_path / "avoid",
        var=var,
        gene_expression=x,
        gene_identifiers=["X", "CD8A/B"],
        **minimal(n),
    )
    assert [f[0] for f in read_json(out, "var_manifest.json")["fields"]] == ["X", "CD8A/B"]
    np.testing.assert_array_equal(read_array(out, "var/CD8A_B.values.f32", "float32"), x[:, 0])


@pytest.mark.parametrize("column", [None, "index"])
def test_var_index_ids(tmp_path, column):
    out = run(tmp_path / "idx", var_gene_id_column=column, **full_inputs())
    assert read_json(out, "var_manifest.json")["var_gene_id_column"] == "index"


def test_var_gene_id_column(tmp_path):
    inputs = full_inputs()
    out = run(tmp_path / "sym", var_gene_id_column="symbol", **inputs)
    m = read_json(out, "var_manifest.json")
    assert m["var_gene_id_column"] == "symbol"
    assert [f[0] for f in m["fields"]] == [f"SYM-{i}" for i in range(G)]
    np.testing.assert_array_equal(
        read_array(out, "var/SYM-3.values.f32", "float32"),
        inputs["gene_expression"].toarray()[:, 3],
    )


def test_non_string_gene_ids_are_written_as_strings(tmp_path):
    n = 8
    x = rng(2).random((n, 2))
    out = run(tmp_path / "ints", var=pd.DataFrame(index=[10, 20]), gene_expression=x, **minimal(n))
    assert read_json(out, "var_manifest.json")["fields"] == [["10"], ["20"]]
    assert {"var/10.values.f32", "var/20.values.f32"} <= files_under(out)


@pytest.mark.parametrize("var_q", [8, 16])
def test_all_zero_and_constant_genes_quantise(tmp_path, var_q):
    n = 10
    x = np.zeros((n, 3))
    x[:, 1] = 2.5
    x[:, 2] = np.arange(n)
    out = run(
        tmp_path / "const",
        var=pd.DataFrame(index=["z", "c", "r"]),
        gene_expression=x,
        var_quantization=var_q,
        **minimal(n),
    )
    fields = read_json(out, "var_manifest.json")["fields"]
    assert fields[0] == ["z", 0.0, 1.0]
    assert fields[1] == ["c", 2.5, 3.5]
    assert fields[2] == ["r", 0.0, 9.0]
    ext = EXT[var_q]
    dec = dequantise(read_array(out, f"var/r.values.{ext}", DTYPE[ext]), 0.0, 9.0, var_q)
    np.testing.assert_allclose(dec, np.arange(n), atol=half_step(0, 9, var_q))


# ---------------------------------------------------------------------------- connectivity
@pytest.mark.parametrize("compression", [None, 5])
def test_empty_graph_is_still_written(tmp_path, compression):
    n = 9
    conn = sp.csr_matrix((n, n))
    conn.setdiag(1.0)  # only self-loops
    out = run(tmp_path / "g0", connectivities=conn, compression=compression, **minimal(n))
    m = read_json(out, "connectivity_manifest.json")
    assert (m["n_edges"], m["max_neighbors"]) == (0, 0)
    for key in ("sourcesPath", "destinationsPath", "weightsPath"):
        raw = (out / m[key]).read_bytes()
        if compression:
            assert len(raw) > 0, "an empty payload is a gzip member, never an empty file"
            assert read_bytes(out, m[key]) == b""
            assert gzip_header(raw)["mtime"] == 0 and gzip_header(raw)["os"] == 0xFF
        else:
            assert raw == b""
    stats = read_json(out, "dataset_identity.json")["stats"]
    assert stats["has_connectivity"] is True and stats["n_edges"] == 0


@pytest.mark.parametrize(("n", "dtype", "nbytes"), [(65_536, "uint16", 2), (65_537, "uint32", 4)])
def test_index_width_in_the_export(tmp_path, n, dtype, nbytes):
    conn = sp.coo_matrix(([0.5, 0.25, 1.0], ([0, n - 1, 7], [n - 2, 3, 7])), shape=(n, n))
    out = run(
        tmp_path / "wide",
        obs=pd.DataFrame(index=range(n)),
        X_umap_1d=np.arange(n, dtype=np.float64)[:, None],
        connectivities=conn,
    )
    m = read_json(out, "connectivity_manifest.json")
    assert (m["index_dtype"], m["index_bytes"], m["n_edges"]) == (dtype, nbytes, 2)
    assert len(read_bytes(out, m["sourcesPath"])) == 2 * nbytes
    np.testing.assert_array_equal(read_array(out, m["sourcesPath"], dtype), [0, 3])
    np.testing.assert_array_equal(read_array(out, m["destinationsPath"], dtype), [n - 2, n - 1])
    np.testing.assert_array_equal(read_array(out, m["weightsPath"], "float64"), [0.5, 0.25])


@pytest.mark.parametrize(("slack", "exported"), [(0, True), (-1, False)])
def test_browser_edge_budget(tmp_path, monkeypatch, slack, exported):
    """SPEC §2.8: above 48·E + 4·n bytes (uint16 indices) no connectivity is written."""
    import cellucid.export.encode as enc

    n = 30
    conn = knn_graph(n, 3)
    src, _, _, _ = edges_reference(conn.toarray())
    monkeypatch.setattr(enc, "EDGE_BUDGET", 48 * len(src) + 4 * n + slack)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        out = run(tmp_path / "budget", connectivities=conn, **minimal(n))
    stats = read_json(out, "dataset_identity.json")["stats"]
    assert stats["has_connectivity"] is exported
    assert (out / "connectivity_manifest.json").exists() is exported
    assert (out / "connectivity").exists() is exported
    if exported:
        assert stats["n_edges"] == len(src)
    else:
        assert stats["n_edges"] is None
        msg = " ".join(str(w.message) for w in record)
        assert str(len(src)) in msg and str(n) in msg


# ---------------------------------------------------------------------------- vector fields
def test_vector_default_field_without_velocity_is_alphabetical(tmp_path):
    n = 12
    vf = {"zeta": np.ones((n, 2)), "alpha_2d": np.ones((n, 2)), "mid": np.ones(n)}
    out = run(tmp_path / "vf", vector_fields=vf, X_umap_1d=embedding(n, 1), **minimal(n))
    ident = read_json(out, "dataset_identity.json")["vector_fields"]
    assert ident["default_field"] == "alpha"
    assert list(ident["fields"]) == ["alpha", "mid", "zeta"]
    assert ident["fields"]["mid"]["available_dimensions"] == [1]


def test_vector_for_unavailable_dim_is_skipped(tmp_path):
    n = 12
    vf = {"only3_3d": np.ones((n, 3)), "both_2d": np.ones((n, 2)), "both_3d": np.ones((n, 3))}
    with pytest.warns(UserWarning):
        out = run(tmp_path / "vf3", vector_fields=vf, **minimal(n))
    ident = read_json(out, "dataset_identity.json")["vector_fields"]
    assert list(ident["fields"]) == ["both"]
    assert ident["fields"]["both"]["available_dimensions"] == [2]
    assert {f for f in files_under(out) if f.startswith("vectors/")} == {"vectors/both_2d.bin"}


def test_no_vector_written_means_no_key_and_no_dir(tmp_path):
    n = 12
    with pytest.warns(UserWarning):
        out = run(tmp_path / "vf0", vector_fields={"v_3d": np.ones((n, 3))}, **minimal(n))
    assert "vector_fields" not in read_json(out, "dataset_identity.json")
    assert not (out / "vectors").exists()


def test_empty_vector_fields_dict(tmp_path):
    out = run(tmp_path / "vfe", vector_fields={}, **minimal())
    assert "vector_fields" not in read_json(out, "dataset_identity.json")


# ---------------------------------------------------------------------------- identity
@pytest.mark.parametrize(
    ("name", "expected_id"), [("Gène X", "G_ne_X"), ("pbmc3k", "pbmc3k"), ("★", "field")]
)
def test_dataset_name_gives_the_default_id(tmp_path, name, expected_id):
    out = run(tmp_path / "dir name", dataset_name=name, **minimal())
    ident = read_json(out, "dataset_identity.json")
    assert (ident["name"], ident["id"]) == (name, expected_id)


@pytest.mark.parametrize("dataset_id", ["my id", "x", "Ünï", "a/b"])
def test_dataset_id_may_be_any_trimmed_printable_string(tmp_path, dataset_id):
    out = run(tmp_path / "ids", dataset_id=dataset_id, **minimal())
    assert read_json(out, "dataset_identity.json")["id"] == dataset_id


def test_dataset_id_and_description(tmp_path):
    out = run(tmp_path / "d", dataset_id="my-id.v2", dataset_description="Some words", **minimal())
    ident = read_json(out, "dataset_identity.json")
    assert (ident["id"], ident["name"], ident["description"]) == ("my-id.v2", "d", "Some words")


@pytest.mark.parametrize(
    ("kwargs", "source"),
    [
        ({"source_name": "GEO"}, {"name": "GEO"}),
        (
            {"source_name": "GEO", "source_url": "https://x.org/a", "source_citation": "Doe 2024"},
            {"name": "GEO", "url": "https://x.org/a", "citation": "Doe 2024"},
        ),
        ({"source_name": "GEO", "source_url": "  ", "source_citation": ""}, {"name": "GEO"}),
        ({"source_name": "GEO", "source_citation": "C"}, {"name": "GEO", "citation": "C"}),
        ({"source_name": " "}, None),
        ({}, None),
    ],
)
def test_source(tmp_path, kwargs, source):
    out = run(tmp_path / "src", **kwargs, **minimal())
    ident = read_json(out, "dataset_identity.json")
    if source is None:
        assert "source" not in ident
    else:
        assert ident["source"] == source
        assert list(ident["source"]) == list(source)
        assert list(ident)[-1] == "source"


@pytest.mark.parametrize(("compression", "written"), [(0, None), (None, None), (9, 9)])
def test_compression_off_values(tmp_path, compression, written):
    out = run(tmp_path / "c0", compression=compression, **minimal())
    assert read_json(out, "dataset_identity.json")["export_settings"]["compression"] == written
    assert read_json(out, "obs_manifest.json")["compression"] == written
    assert ("points_2d.bin.gz" in files_under(out)) is bool(written)


@pytest.mark.parametrize("quant", [np.int64(16), np.uint8(8)])
def test_numpy_integer_settings_are_written_as_json_ints(tmp_path, quant):
    """A numpy 8/16 is the setting 8/16: it must be accepted (or refused with ValueError),
    and the manifests must hold the plain JSON integer."""
    n = 10
    try:
        out = run(
            tmp_path / "npint",
            var=pd.DataFrame(index=["a", "b"]),
            gene_expression=rng(0).random((n, 2)),
            var_quantization=quant,
            obs_continuous_quantization=quant,
            **minimal(n),
        )
    except ValueError:
        return
    assert read_json(out, "var_manifest.json")["quantization"] == int(quant)
    text = (out / "var_manifest.json").read_text()
    assert f'"quantization":{int(quant)},' in text


@pytest.mark.parametrize("quant", [8.0, 16.0])
def test_float_quantisation_setting_is_refused_or_written_as_int(tmp_path, quant):
    try:
        out = run(tmp_path / "fq", obs_continuous_quantization=quant, **minimal())
    except ValueError:
        return
    schema = read_json(out, "obs_manifest.json")["_obsSchemas"]["continuous"]
    assert type(schema["quantizationBits"]) is int
    settings = read_json(out, "dataset_identity.json")["export_settings"]
    assert type(settings["obs_continuous_quantization"]) is int


def test_overwrite_is_an_alias_of_force(tmp_path):
    out = run(tmp_path / "ow", **minimal())
    run(out, overwrite=True, dataset_name="Second", **minimal())
    assert read_json(out, "dataset_identity.json")["name"] == "Second"


# ---------------------------------------------------------------------------- caller's objects
def _non_canonical(m: sp.spmatrix) -> sp.spmatrix:
    m = m.tocsr().copy()
    # reverse every row's indices: unsorted, same values
    for i in range(m.shape[0]):
        s, e = m.indptr[i], m.indptr[i + 1]
        m.indices[s:e] = m.indices[s:e][::-1].copy()
        m.data[s:e] = m.data[s:e][::-1].copy()
    m.has_sorted_indices = False
    return m


@pytest.mark.parametrize("expr_kind", ["csr_non_canonical", "csc", "dense_f32", "coo"])
def test_array_form_leaves_every_input_unchanged(tmp_path, expr_kind):
    inputs = full_inputs()
    x = inputs["gene_expression"]
    inputs["gene_expression"] = {
        "csr_non_canonical": _non_canonical(x),
        "csc": x.tocsc(),
        "dense_f32": np.asfortranarray(x.toarray()),
        "coo": x.tocoo(),
    }[expr_kind]
    inputs["connectivities"] = _non_canonical(inputs["connectivities"])
    inputs["X_umap_2d"] = inputs["X_umap_2d"].astype(np.float32)
    inputs["vector_fields"]["velocity_umap_2d"] = np.asfortranarray(
        inputs["vector_fields"]["velocity_umap_2d"]
    )
    before = snapshot(inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = run(tmp_path / "same", var_quantization=8, obs_continuous_quantization=16, **inputs)
    for key in inputs:
        assert_same(before[key], inputs[key], key)
    # the payloads do not depend on the storage form of the expression matrix
    dense = x.toarray()
    for i in range(G):
        field = read_json(out, "var_manifest.json")["fields"][i]
        codes = read_array(out, f"var/Gene{i}.values.u8", "uint8", (N,))
        dec = dequantise(codes, field[1], field[2], 8)
        assert (np.abs(dec - dense[:, i]) <= half_step(field[1], field[2], 8) + 1e-6).all()


# ============================================================================ AnnData form
def _payloads(root: Path) -> dict[str, bytes]:
    return {k: v for k, v in tree_bytes(root).items() if not k.endswith(".json")}


@pytest.mark.parametrize("compression", [None, 6])
def test_anndata_form_equals_the_array_form(tmp_path, compression):
    adata = make_adata(N, G)
    a = prepare(adata, tmp_path / "a" / "ds", compression=compression, quiet=True)
    b = run(
        tmp_path / "b" / "ds",
        compression=compression,
        latent_space=adata.obsm["X_pca"],
        obs=adata.obs,
        var=adata.var,
        gene_expression=adata.X,
        connectivities=adata.obsp["connectivities"],
        X_umap_2d=adata.obsm["X_umap"],
        X_umap_3d=adata.obsm["X_umap_3d"],
        vector_fields={"velocity_umap_2d": adata.obsm["velocity_umap"]},
    )
    pa, pb = _payloads(a), _payloads(b)
    assert pa.keys() == pb.keys()
    for rel in pa:
        assert pa[rel] == pb[rel], rel
    assert with_gz("vectors/velocity_umap_2d.bin", compression) in pa
    ma, mb = read_json(a, "obs_manifest.json"), read_json(b, "obs_manifest.json")
    assert ma.pop("latent_key") == "X_pca"  # the obsm key (§2.6.2)
    assert mb.pop("latent_key") == "latent_space"
    assert ma == mb
    for name in ("var_manifest.json", "connectivity_manifest.json"):
        assert read_json(a, name) == read_json(b, name)
    ia, ib = read_json(a, "dataset_identity.json"), read_json(b, "dataset_identity.json")
    for ident in (ia, ib):
        ident.pop("created_at")
    assert ia == ib


def test_anndata_form_leaves_the_anndata_unchanged(tmp_path):
    adata = make_adata(N, G)
    adata.X = _non_canonical(adata.X)
    adata.obsp["connectivities"] = _non_canonical(adata.obsp["connectivities"])
    adata.obsm["velocity_umap"] = adata.obsm["velocity_umap"].astype(np.float32)
    before = snapshot(adata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepare(adata, tmp_path / "ad", quiet=True, var_quantization=16)
    assert_same(before, adata, "adata")


def _ad(n=30, **obsm):
    import anndata

    obs = pd.DataFrame(
        {"c": pd.Categorical(list("ab") * (n // 2))}, index=[f"c{i}" for i in range(n)]
    )
    ad = anndata.AnnData(obs=obs)
    for k, v in obsm.items():
        ad.obsm[k] = v
    return ad


@pytest.mark.parametrize(("cols", "dims"), [(1, [1]), (2, [2]), (3, [3])])
def test_anndata_x_umap_by_column_count(tmp_path, cols, dims):
    ad = _ad(X_umap=embedding(30, cols))
    out = prepare(ad, tmp_path / "u", quiet=True)
    assert read_json(out, "dataset_identity.json")["embeddings"]["available_dimensions"] == dims
    np.testing.assert_allclose(
        read_array(out, f"points_{cols}d.bin", "float32", (30, cols)),
        normalise(ad.obsm["X_umap"])[0],
        atol=1e-7,
    )


def test_anndata_explicit_keys_win_over_x_umap(tmp_path):
    ad = _ad(X_umap=embedding(30, 2, 1), X_umap_2d=embedding(30, 2, 2), X_umap_3d=embedding(30, 3))
    out = prepare(ad, tmp_path / "e", quiet=True)
    ident = read_json(out, "dataset_identity.json")
    assert ident["embeddings"]["available_dimensions"] == [2, 3]
    np.testing.assert_allclose(
        read_array(out, "points_2d.bin", "float32", (30, 2)),
        normalise(ad.obsm["X_umap_2d"])[0],
        atol=1e-7,
    )


def test_anndata_x_umap_fills_another_dim(tmp_path):
    ad = _ad(X_umap=embedding(30, 2), X_umap_3d=embedding(30, 3, 5), X_umap_1d=embedding(30, 1))
    out = prepare(ad, tmp_path / "f", quiet=True)
    assert read_json(out, "dataset_identity.json")["embeddings"]["available_dimensions"] == [
        1,
        2,
        3,
    ]


@pytest.mark.parametrize(
    ("present", "expected"),
    [
        (["X_harmony", "harmony", "X_pca", "X_scvi", "scvi", "scanvi"], "scanvi"),
        (["X_harmony", "harmony", "X_pca", "X_scvi", "scvi"], "scvi"),
        (["X_harmony", "harmony", "X_pca", "X_scvi"], "X_scvi"),
        (["X_harmony", "harmony", "X_pca"], "X_pca"),
        (["X_harmony", "harmony"], "harmony"),
        (["X_harmony"], "X_harmony"),
        (["X_tsne", "X_diffmap", "velocity_umap", "X_umap_3d"], None),
    ],
)
def test_anndata_latent_candidates(tmp_path, present, expected):
    n = 30
    obsm = {
        k: rng(i).normal(size=(n, 2 if k == "velocity_umap" else 3)) for i, k in enumerate(present)
    }
    ad = _ad(n, X_umap=embedding(n, 2), **obsm)
    out = prepare(ad, tmp_path / "lat", quiet=True, centroid_min_points=2)
    m = read_json(out, "obs_manifest.json")
    assert m["latent_key"] == expected
    outliers = [f for f in files_under(out) if ".outliers." in f]
    if expected is None:
        assert outliers == []
        assert m["_obsSchemas"]["categorical"]["outlierPathPattern"] is None
    else:
        codes = np.array([0, 1] * (n // 2))
        want = outliers_reference(codes, 2, ad.obsm[expected], 2)
        np.testing.assert_array_equal(read_array(out, "obs/c.outliers.f32", "float32"), want)


def test_anndata_latent_key_argument(tmp_path):
    n = 30
    ad = _ad(n, X_umap=embedding(n, 2), X_pca=latent(n, 3), custom=latent(n, 4, 9))
    out = prepare(ad, tmp_path / "lk", latent_key="custom", quiet=True, centroid_min_points=2)
    assert read_json(out, "obs_manifest.json")["latent_key"] == "custom"
    want = outliers_reference(np.array([0, 1] * 15), 2, ad.obsm["custom"], 2)
    np.testing.assert_array_equal(read_array(out, "obs/c.outliers.f32", "float32"), want)


def test_anndata_layer_and_gene_id_column(tmp_path):
    adata = make_adata(N, G)
    out = prepare(
        adata, tmp_path / "layer", layer="counts", var_gene_id_column="symbol", quiet=True
    )
    m = read_json(out, "var_manifest.json")
    assert m["var_gene_id_column"] == "symbol"
    assert [f[0] for f in m["fields"]] == list(adata.var["symbol"])
    for i, sym in enumerate(adata.var["symbol"]):
        got = read_array(out, f"var/{sym}.values.f32", "float32", (N,))
        np.testing.assert_array_equal(got, adata.layers["counts"][:, i])


def test_anndata_without_x_has_no_genes(tmp_path):
    ad = _ad(X_umap=embedding(30, 2))
    out = prepare(ad, tmp_path / "nox", quiet=True)
    assert read_json(out, "dataset_identity.json")["stats"]["n_genes"] == 0
    assert not (out / "var_manifest.json").exists()


def test_anndata_connectivities_from_obsp(tmp_path):
    adata = make_adata(N, G)
    out = prepare(adata, tmp_path / "conn", quiet=True)
    src, _, w, max_nb = edges_reference(adata.obsp["connectivities"].toarray())
    m = read_json(out, "connectivity_manifest.json")
    assert (m["n_edges"], m["max_neighbors"]) == (len(src), max_nb)
    np.testing.assert_array_equal(read_array(out, m["sourcesPath"], "uint16"), src)
    np.testing.assert_array_equal(read_array(out, m["weightsPath"], "float64"), w)


def test_anndata_without_obsp_has_no_connectivity(tmp_path):
    ad = _ad(X_umap=embedding(30, 2))
    out = prepare(ad, tmp_path / "noconn", quiet=True)
    assert read_json(out, "dataset_identity.json")["stats"]["has_connectivity"] is False


def test_anndata_vector_fields(tmp_path):
    n = 30
    r = rng(3)
    ad = _ad(
        n,
        X_umap=embedding(n, 2),
        X_umap_3d=embedding(n, 3, 1),
        velocity_umap=r.normal(size=(n, 2)),  # implicit → 2D
        velocity_umap_3d=r.normal(size=(n, 3)),  # explicit
        drift_umap=r.normal(size=(n, 3)),  # implicit → 3D
        X_pca_umap_2d=r.normal(size=(n, 2)),  # starts with X_: not a vector field
        velocity_pca=r.normal(size=(n, 2)),  # does not end in _umap
        other_umap_1d=r.normal(size=(n, 1)),  # no 1D embedding
    )
    out = prepare(ad, tmp_path / "vec", quiet=True)
    vecs = {f for f in files_under(out) if f.startswith("vectors/")}
    assert vecs == {
        "vectors/velocity_umap_2d.bin",
        "vectors/velocity_umap_3d.bin",
        "vectors/drift_umap_3d.bin",
    }
    ident = read_json(out, "dataset_identity.json")["vector_fields"]
    assert ident["default_field"] == "velocity_umap"
    assert list(ident["fields"]) == ["drift_umap", "velocity_umap"]
    obsm = ad.obsm
    assert_vectors(out, "vectors/velocity_umap_2d.bin", obsm["velocity_umap"], obsm["X_umap"])
    assert_vectors(out, "vectors/velocity_umap_3d.bin", obsm["velocity_umap_3d"], obsm["X_umap_3d"])
    assert_vectors(out, "vectors/drift_umap_3d.bin", obsm["drift_umap"], obsm["X_umap_3d"])


def test_anndata_explicit_vector_key_wins_over_implicit(tmp_path):
    n = 30
    r = rng(4)
    ad = _ad(n, X_umap=embedding(n, 2), velocity_umap=r.normal(size=(n, 2)))
    ad.obsm["velocity_umap_2d"] = r.normal(size=(n, 2))
    out = prepare(ad, tmp_path / "vx", quiet=True)
    assert_vectors(
        out, "vectors/velocity_umap_2d.bin", ad.obsm["velocity_umap_2d"], ad.obsm["X_umap"]
    )


def test_anndata_array_options_replace_derived_inputs(tmp_path):
    n = 30
    ad = _ad(n, X_umap=embedding(n, 2), X_pca=latent(n, 3))
    mine = embedding(n, 3, 8)
    out = prepare(ad, tmp_path / "rep", X_umap_3d=mine, obs_keys=["c"], quiet=True)
    ident = read_json(out, "dataset_identity.json")
    assert ident["embeddings"]["available_dimensions"] == [3]
    np.testing.assert_allclose(
        read_array(out, "points_3d.bin", "float32", (n, 3)), normalise(mine)[0], atol=1e-7
    )


def test_anndata_out_dir_keyword_and_default(tmp_path, monkeypatch):
    ad = _ad(X_umap=embedding(30, 2))
    out = prepare(ad, out_dir=tmp_path / "kw", quiet=True)
    assert out == (tmp_path / "kw").resolve()
    monkeypatch.chdir(tmp_path)
    out = prepare(ad, quiet=True)
    assert out == (tmp_path / "exports").resolve()


# ============================================================================ more edges
def test_single_cell_export(tmp_path):
    out = run(
        tmp_path / "one",
        obs=pd.DataFrame({"c": pd.Categorical(["a"]), "v": [1.5]}),
        X_umap_2d=np.array([[3.0, 4.0]]),
        latent_space=np.array([[1.0, 2.0]]),
        connectivities=sp.csr_matrix(np.array([[1.0]])),
        centroid_min_points=1,
    )
    np.testing.assert_array_equal(read_array(out, "points_2d.bin", "float32"), [0.0, 0.0])
    m = read_json(out, "obs_manifest.json")
    assert m["_categoricalFields"][0][4] == {
        "2": [{"category": "a", "position": [0.0, 0.0], "n_points": 1}]
    }
    np.testing.assert_array_equal(read_array(out, "obs/c.outliers.f32", "float32"), [1.0])
    conn = read_json(out, "connectivity_manifest.json")
    assert (conn["n_edges"], conn["max_neighbors"]) == (0, 0)


def test_points_file_above_the_web_app_cap_warns(tmp_path, monkeypatch):
    """SPEC §2.5: warn above 512 MiB per points file (the limit is lowered to test it)."""
    import cellucid.export.encode as enc

    n = 50
    monkeypatch.setattr(enc, "POINTS_FILE_LIMIT", n * 3 * 4 - 1)
    with pytest.warns(UserWarning, match="points_3d"):
        out = run(
            tmp_path / "big",
            obs=pd.DataFrame(index=range(n)),
            X_umap_2d=embedding(n, 2),
            X_umap_3d=embedding(n, 3),
        )
    assert (out / "points_3d.bin").stat().st_size == n * 3 * 4


def test_not_quiet_reports_progress(tmp_path, capfd):
    prepare(out_dir=tmp_path / "loud", quiet=False, **full_inputs())
    captured = capfd.readouterr()
    assert str(N) in captured.out + captured.err


def test_backed_anndata_gives_the_same_payloads(tmp_path):
    import anndata

    adata = make_adata(N, G)
    path = tmp_path / "data.h5ad"
    adata.write_h5ad(path)
    backed = anndata.read_h5ad(path, backed="r")
    try:
        a = prepare(backed, tmp_path / "backed" / "ds", compression=4, quiet=True)
    finally:
        backed.file.close()
    b = prepare(adata, tmp_path / "memory" / "ds", compression=4, quiet=True)
    assert _payloads(a) == _payloads(b)


def test_var_without_expression_exports_no_genes(tmp_path):
    out = run(tmp_path / "varonly", var=gene_var(3), **minimal())
    assert read_json(out, "dataset_identity.json")["stats"]["n_genes"] == 0
    assert not (out / "var_manifest.json").exists()


def test_anndata_wrong_shaped_explicit_embedding_is_not_used(tmp_path):
    ad = _ad(X_umap=embedding(30, 2), X_umap_2d=embedding(30, 3, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = prepare(ad, tmp_path / "ws", quiet=True)
    assert read_json(out, "dataset_identity.json")["embeddings"]["available_dimensions"] == [2]
    np.testing.assert_allclose(
        read_array(out, "points_2d.bin", "float32", (30, 2)),
        normalise(ad.obsm["X_umap"])[0],
        atol=1e-7,
    )


def test_anndata_vector_fields_that_do_not_qualify_are_skipped(tmp_path):
    n = 30
    r = rng(6)
    ad = _ad(
        n,
        X_umap=embedding(n, 2),
        velocity_umap_2d=r.normal(size=(n, 3)),  # explicit key with the wrong shape
        drift_umap=r.normal(size=(n, 2)),  # fine
    )
    ad.obsm["bad name_umap"] = r.normal(size=(n, 2))  # not a safe id
    with pytest.warns(UserWarning, match="bad name_umap"):
        out = prepare(ad, tmp_path / "skip", quiet=True)
    vf = read_json(out, "dataset_identity.json")["vector_fields"]
    assert list(vf["fields"]) == ["drift_umap"]
    assert vf["default_field"] == "drift_umap"


def test_anndata_vector_fields_option_replaces_derived(tmp_path):
    n = 30
    ad = _ad(n, X_umap=embedding(n, 2), velocity_umap=rng(7).normal(size=(n, 2)))
    mine = rng(8).normal(size=(n, 2))
    out = prepare(ad, tmp_path / "vopt", vector_fields={"mine_2d": mine}, quiet=True)
    vf = read_json(out, "dataset_identity.json")["vector_fields"]
    assert list(vf["fields"]) == ["mine"]
    assert_vectors(out, "vectors/mine_2d.bin", mine, ad.obsm["X_umap"])


# ---- embedding=, the explicit signature ---------------------------------------------------
def _embedding_adata(n: int = 40):
    import anndata as ad

    rng = np.random.default_rng(3)
    obs = pd.DataFrame(
        {"c": pd.Categorical(["a", "b"] * (n // 2))}, index=[f"cell{i}" for i in range(n)]
    )
    return ad.AnnData(
        obs=obs,
        obsm={
            "X_tsne": rng.normal(size=(n, 2)),
            "spatial": rng.normal(size=(n, 2)) * 100,
            "X_pca": rng.normal(size=(n, 10)),
            "X_umap_3d": rng.normal(size=(n, 3)),
            "bad": rng.normal(size=(n, 2, 2)),
        },
    )


@pytest.mark.parametrize(
    ("embedding", "dims", "source"),
    [
        ("X_tsne", [2], {2: ("X_tsne", 2)}),
        ("X_pca:3", [3], {3: ("X_pca", 3)}),
        (["spatial", "X_umap_3d"], [2, 3], {2: ("spatial", 2), 3: ("X_umap_3d", 3)}),
        ({"2d": "X_pca:2", "1d": "X_pca:1"}, [1, 2], {1: ("X_pca", 1), 2: ("X_pca", 2)}),
        ({2: "X_tsne"}, [2], {2: ("X_tsne", 2)}),
    ],
)
def test_embedding_chooses_any_obsm_key(tmp_path, embedding, dims, source):
    adata = _embedding_adata()
    out = prepare(adata, tmp_path / "e", embedding=embedding, quiet=True)
    ident = read_json(out, "dataset_identity.json")
    assert ident["embeddings"]["available_dimensions"] == dims
    for d, (key, cols) in source.items():
        got = read_array(out, f"points_{d}d.bin", "<f4", (adata.n_obs, d))
        expected, _ = normalise(np.asarray(adata.obsm[key])[:, :cols])
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("embedding", "error", "match"),
    [
        ("X_umap", KeyError, r"'X_umap' is not in obsm; usable obsm keys: 'X_tsne' \(2 columns\)"),
        ("X_pca", ValueError, r"'X_pca:2' / 'X_pca:3'.*wider ones need"),
        ("X_tsne:3", ValueError, "has 2 columns"),
        ("bad", ValueError, r"has shape \(40, 2, 2\)"),
        (["X_tsne", "spatial"], ValueError, "two embeddings for 2D"),
        ({"4d": "X_pca:4"}, ValueError, "must be 1, 2 or 3"),
        ({"3d": "X_tsne"}, ValueError, "has 2 columns"),
        ([], ValueError, "names no obsm key"),
    ],
)
def test_embedding_errors_list_the_usable_keys(tmp_path, embedding, error, match):
    with pytest.raises(error, match=match):
        prepare(_embedding_adata(), tmp_path / "e", embedding=embedding, quiet=True)
    assert not (tmp_path / "e").exists()


def test_without_umap_the_error_suggests_embedding(tmp_path):
    adata = _embedding_adata()
    del adata.obsm["X_umap_3d"]
    with pytest.raises(ValueError, match=r"embedding='KEY'.*'X_tsne' \(2 columns\)"):
        prepare(adata, tmp_path / "e", quiet=True)


def test_prepare_signature_shows_its_parameters():
    import inspect

    params = inspect.signature(prepare).parameters
    spec_order = [
        "latent_space",
        "obs",
        "var",
        "gene_expression",
        "var_gene_id_column",
        "gene_identifiers",
        "connectivities",
        "out_dir",
        "obs_keys",
        "centroid_outlier_quantile",
        "centroid_min_points",
        "obs_manifest_filename",
        "obs_binary_dirname",
        "var_manifest_filename",
        "var_binary_dirname",
        "connectivity_manifest_filename",
        "connectivity_binary_dirname",
        "force",
        "var_quantization",
        "obs_continuous_quantization",
        "obs_categorical_dtype",
        "compression",
        "dataset_name",
        "dataset_description",
        "dataset_id",
        "source_name",
        "source_url",
        "source_citation",
        "X_umap_1d",
        "X_umap_2d",
        "X_umap_3d",
        "X_umap_4d",
        "vector_fields",
    ]
    assert list(params)[: len(spec_order)] == spec_order
    for name in ("layer", "latent_key", "embedding", "genes", "connectivity", "quiet"):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
    assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in params.values())
    doc = prepare.__doc__
    for name in ("embedding", "force", "out_dir", "compression", "Returns"):
        assert name in doc


def test_anndata_form_genes_and_connectivity_switches(tmp_path):
    import anndata as ad
    import scipy.sparse as sp

    n = 30
    adata = ad.AnnData(
        X=sp.random(n, 4, density=0.5, format="csr", random_state=0, dtype=np.float32),
        obs=pd.DataFrame({"c": pd.Categorical(["a", "b", "c"] * 10)}),
        obsm={"X_umap": np.random.default_rng(0).normal(size=(n, 2))},
        obsp={"connectivities": knn_graph(n, 2)},
    )
    full = read_json(prepare(adata, tmp_path / "full", quiet=True), "dataset_identity.json")
    assert full["stats"]["n_genes"] == 4 and full["stats"]["has_connectivity"] is True
    out = prepare(adata, tmp_path / "bare", genes=False, connectivity=False, quiet=True)
    bare = read_json(out, "dataset_identity.json")
    assert bare["stats"]["n_genes"] == 0 and bare["stats"]["has_connectivity"] is False
    with pytest.raises(TypeError, match="genes=False contradicts"):
        prepare(adata, tmp_path / "x", genes=False, layer="counts", quiet=True)
    with pytest.raises(TypeError, match="need an AnnData"):
        prepare(
            out_dir=tmp_path / "y", obs=adata.obs, X_umap_2d=adata.obsm["X_umap"], embedding="X"
        )
    with pytest.raises(TypeError, match="pass out_dir="):
        prepare(None, tmp_path / "z")
