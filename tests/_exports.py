"""Hand-written, spec-valid export folders for the reader, validator and catalog tests.

Everything here follows /work/shared/SPEC.md §2 directly and deliberately does not import
the exporter (``cellucid.export.encode``/``dataset``/``prepare``), so the tests built on it
cross-check the exporter instead of repeating it. Gzip members are built by hand from
``zlib`` with the header of SPEC §2.3 (mtime 0, no file name, OS byte 0xFF).
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CREATED_AT = "2024-05-01T12:00:00Z"
CATEGORIES = ["B cell", "T cell", "NK", "rare"]


# ---- byte-level helpers (SPEC §2.3) ---------------------------------------------------------
def gzip_member(data: bytes, level: int) -> bytes:
    """One gzip member: magic, CM 8, no flags, mtime 0, XFL, OS 0xFF, raw deflate, CRC, size."""
    xfl = 2 if level == 9 else 4 if level == 1 else 0
    header = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + bytes([xfl, 0xFF])
    comp = zlib.compressobj(level, zlib.DEFLATED, -15)
    body = comp.compress(data) + comp.flush()
    return header + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


def gunzip_any(data: bytes) -> bytes:
    """Decompress the first gzip member (used by mutations, tolerant on purpose)."""
    return zlib.decompressobj(wbits=31).decompress(data)


def write_payload(root: Path, rel: str, array: np.ndarray, dtype: str, level: int | None) -> str:
    """Write ``array`` as little-endian ``dtype`` to ``rel`` (+ ``.gz`` when compressed)."""
    raw = np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()
    if level:
        rel += ".gz"
        raw = gzip_member(raw, level)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return rel


def dump_compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def rewrite_json(path: Path, edit: Callable[[Any], object]) -> None:
    """Load a JSON file, let ``edit`` change it in place (its return value is ignored), save it."""
    value = json.loads(path.read_text(encoding="utf-8"))
    edit(value)
    path.write_text(json.dumps(value, allow_nan=False, indent=2), encoding="utf-8")


def rewrite_payload(path: Path, edit: Callable[[bytes], bytes]) -> None:
    """Change the decoded bytes of a payload, re-gzipping it when its name ends in .gz."""
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        path.write_bytes(gzip_member(edit(gunzip_any(data)), 6))
    else:
        path.write_bytes(edit(data))


# ---- encoders straight from the spec ----------------------------------------------------------
def normalise(points: np.ndarray) -> tuple[np.ndarray, float]:
    """SPEC §2.5: centre each axis, scale the longest axis to [-1, 1]; returns (float32, scale)."""
    x = np.asarray(points, dtype=np.float64)
    lo, hi = x.min(axis=0), x.max(axis=0)
    span = float((hi - lo).max())
    if span < 1e-8:
        span = 1.0
    scale = 2.0 / span
    return ((x - (lo + hi) / 2) * scale).astype(np.float32), scale


def quantise(values: np.ndarray, bits: int) -> tuple[np.ndarray, float, float]:
    """SPEC §2.6.6 with rounding; returns (codes, lo, hi)."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    lo, hi = (float(v[finite].min()), float(v[finite].max())) if finite.any() else (0.0, 1.0)
    if hi == lo:
        hi = lo + 1 if lo + 1 != lo else float(np.nextafter(lo, np.inf))
    maxq = (1 << bits) - 2
    q = np.full(v.shape, maxq + 1, dtype=np.int64)
    q[finite] = np.clip(np.round((v[finite] - lo) * maxq / (hi - lo)), 0, maxq)
    return q.astype(np.uint8 if bits == 8 else np.uint16), lo, hi


def centroids(points: np.ndarray, codes: np.ndarray, k: int, q: float | None, min_points: int):
    """SPEC §2.6.8 for one field and one dimension."""
    out: list[dict[str, Any]] = []
    if q is None:
        return out
    pts = points.astype(np.float64)
    for c in range(k):
        members = pts[codes == c]
        m = len(members)
        if m < min_points:
            continue
        mean, count = members.mean(axis=0), m
        if m > min_points:
            dist = np.linalg.norm(members - mean, axis=1)
            kept = members[dist <= np.quantile(dist, q)]
            if len(kept) >= min_points:
                mean, count = kept.mean(axis=0), len(kept)
        out.append(
            {
                "category": CATEGORIES[c],
                "position": [float(x) for x in mean],
                "n_points": int(count),
            }
        )
    return out


def outlier_quantiles(latent: np.ndarray, codes: np.ndarray, k: int, min_points: int):
    """SPEC §2.6.9: rank of each member's latent distance within its category, in (0, 1]."""
    out = np.full(len(codes), np.nan)
    for c in range(k):
        idx = np.flatnonzero(codes == c)
        if len(idx) < min_points:
            continue
        d = np.linalg.norm(latent[idx] - latent[idx].mean(axis=0), axis=1)
        out[idx] = np.searchsorted(np.sort(d), d, side="right") / len(idx)
    return out


def build_edges(n: int, rng: np.random.Generator, n_pairs: int):
    """SPEC §2.8 from random directed pairs: symmetrise with max, drop self-loops, sort."""
    a = rng.integers(0, n, n_pairs)
    b = rng.integers(0, n, n_pairs)
    w = rng.uniform(0.1, 1.0, n_pairs)
    keep = a != b
    src, dst, w = np.minimum(a, b)[keep], np.maximum(a, b)[keep], w[keep]
    best: dict[tuple[int, int], float] = {}
    for s, d, x in zip(src.tolist(), dst.tolist(), w.tolist(), strict=True):
        best[(s, d)] = max(best.get((s, d), 0.0), x)
    pairs = sorted(best)
    src = np.array([p[0] for p in pairs], dtype=np.int64)
    dst = np.array([p[1] for p in pairs], dtype=np.int64)
    weights = np.array([best[p] for p in pairs], dtype=np.float64)
    degree = np.bincount(np.concatenate([src, dst]), minlength=n)
    return src, dst, weights, int(degree.max()) if len(src) else 0


# ---- a whole dataset -------------------------------------------------------------------------
@dataclass
class Exported:
    """What ``write_dataset`` exported, decoded the way a reader should see it."""

    path: Path
    n: int
    dims: tuple[int, ...]
    compression: int | None
    points: dict[int, np.ndarray] = field(default_factory=dict)
    continuous: dict[str, np.ndarray] = field(default_factory=dict)
    codes: dict[str, np.ndarray] = field(default_factory=dict)
    categories: dict[str, list[str]] = field(default_factory=dict)
    outliers: dict[str, np.ndarray] = field(default_factory=dict)
    genes: dict[str, np.ndarray] = field(default_factory=dict)
    edges: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    vectors: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def file(self, rel: str) -> Path:
        """Absolute path of a payload given without ``.gz`` (added when compressed)."""
        return self.path / (rel + ".gz" if self.compression and rel.endswith(tuple(_BIN)) else rel)


_BIN = (".bin", ".f32", ".u8", ".u16")


def write_dataset(
    out: Path,
    *,
    n: int = 60,
    seed: int = 0,
    dims: Sequence[int] = (2, 3),
    compression: int | None = None,
    obs_quantization: int | None = None,
    var_quantization: int | None = None,
    codes_dtype: str = "auto",
    continuous: bool = True,
    categorical: bool = True,
    latent: bool = True,
    n_genes: int = 3,
    connectivity: bool = True,
    n_pairs: int = 150,
    vectors: bool = True,
    centroid_quantile: float | None = 0.95,
    min_points: int = 10,
    dataset_id: str = "demo",
    name: str = "Demo dataset",
) -> Exported:
    """Write a small, fully spec-valid dataset directory at ``out`` by hand (SPEC §2).

    Obs: continuous ``age`` (with NaN and +Inf) and ``pct mito`` (safe name ``pct_mito``),
    categorical ``cell type`` (4 categories, one below ``min_points``, a few missing cells);
    genes ``GENE0``…, the last one constant zero; a random graph; ``velocity_umap`` vectors.
    """
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    level = compression or None
    gz = ".gz" if level else ""
    ex = Exported(path=out, n=n, dims=tuple(dims), compression=level)

    def payload(rel: str, array: np.ndarray, dtype: str) -> str:
        rel = write_payload(out, rel, array, dtype, level)
        ex.files.append(rel)
        return rel

    def values_payload(stem: str, values: np.ndarray, bits: int | None) -> tuple[list, np.ndarray]:
        """Write float32 or quantised values; return the tuple tail and the decoded values."""
        if not bits:
            payload(f"{stem}.f32", values, "<f4")
            return [], values.astype(np.float32)
        q, lo, hi = quantise(values, bits)
        payload(f"{stem}.u{bits}", q, q.dtype.str)
        maxq = (1 << bits) - 2
        decoded = lo + q.astype(np.float64) * (hi - lo) / maxq
        decoded[q == maxq + 1] = np.nan
        return [lo, hi], decoded.astype(np.float32)

    # embeddings (§2.5)
    scales: dict[int, float] = {}
    for d in dims:
        raw = rng.normal(size=(n, d)) * np.arange(1, d + 1) + 5
        ex.points[d], scales[d] = normalise(raw)
        payload(f"points_{d}d.bin", ex.points[d], "<f4")

    # obs (§2.6)
    (out / "obs").mkdir(exist_ok=True)
    obs_ext = {None: "f32", 8: "u8", 16: "u16"}[obs_quantization]
    continuous_fields: list[list[Any]] = []
    if continuous:
        age = rng.uniform(20, 80, n)
        if n > 5:
            age[3] = np.nan
            age[5] = np.inf
        mito = rng.uniform(0, 0.2, n)
        for key, safe, values in (("age", "age", age), ("pct mito", "pct_mito", mito)):
            bounds, ex.continuous[key] = values_payload(
                f"obs/{safe}.values", values, obs_quantization
            )
            continuous_fields.append([key, *bounds])

    categorical_fields: list[list[Any]] = []
    latent_space = rng.normal(size=(n, 5)) if latent else None
    if categorical:
        k = len(CATEGORIES)
        codes = rng.integers(0, k - 1, n)
        codes[:3] = k - 1  # "rare": 3 cells, fewer than min_points
        codes[rng.permutation(np.arange(3, n))[:4]] = -1  # 4 missing cells
        dtype = "uint16" if codes_dtype == "uint16" else "uint8"
        missing = 65535 if dtype == "uint16" else 255
        stored = np.where(codes < 0, missing, codes)
        ext = "u16" if dtype == "uint16" else "u8"
        payload(f"obs/cell_type.codes.{ext}", stored, "<u2" if ext == "u16" else "u1")
        ex.codes["cell type"] = stored.astype(np.uint16 if ext == "u16" else np.uint8)
        ex.categories["cell type"] = list(CATEGORIES)
        by_dim = {
            str(d): centroids(ex.points[d], codes, k, centroid_quantile, min_points) for d in dims
        }
        entry: list[Any] = ["cell type", list(CATEGORIES), dtype, missing, by_dim]
        if latent_space is not None:
            quantiles = outlier_quantiles(latent_space, codes, k, min_points)
            bounds, ex.outliers["cell type"] = values_payload(
                "obs/cell_type.outliers", quantiles, obs_quantization
            )
            entry += bounds
        categorical_fields.append(entry)

    schemas: dict[str, Any] = {}
    if continuous_fields:
        schemas["continuous"] = {
            "pathPattern": f"obs/{{key}}.values.{obs_ext}{gz}",
            "ext": obs_ext,
            "dtype": {"f32": "float32", "u8": "uint8", "u16": "uint16"}[obs_ext],
            "quantized": bool(obs_quantization),
        }
        if obs_quantization:
            schemas["continuous"]["quantizationBits"] = obs_quantization
    if categorical_fields:
        if latent_space is not None:
            schemas["categorical"] = {
                "codesPathPattern": f"obs/{{key}}.codes.{{ext}}{gz}",
                "outlierPathPattern": f"obs/{{key}}.outliers.{obs_ext}{gz}",
                "outlierExt": obs_ext,
                "outlierDtype": {"f32": "float32", "u8": "uint8", "u16": "uint16"}[obs_ext],
                "outlierQuantized": bool(obs_quantization),
            }
        else:
            schemas["categorical"] = {
                "codesPathPattern": f"obs/{{key}}.codes.{{ext}}{gz}",
                "outlierPathPattern": None,
                "outlierExt": None,
                "outlierDtype": None,
                "outlierQuantized": False,
            }
    obs_manifest = {
        "_format": "compact_v1",
        "n_points": n,
        "centroid_outlier_quantile": centroid_quantile,
        "latent_key": "X_pca" if latent_space is not None else None,
        "compression": level,
        "_obsSchemas": schemas,
        "_continuousFields": continuous_fields,
        "_categoricalFields": categorical_fields,
    }
    (out / "obs_manifest.json").write_text(dump_compact(obs_manifest), encoding="utf-8")

    # var (§2.7)
    if n_genes:
        var_ext = {None: "f32", 8: "u8", 16: "u16"}[var_quantization]
        gene_fields: list[list[Any]] = []
        for g in range(n_genes):
            gene_id = f"GENE{g}"
            values = rng.poisson(2.0, n).astype(np.float64) * 0.5
            if g == n_genes - 1:
                values = np.zeros(n)
            bounds, ex.genes[gene_id] = values_payload(
                f"var/{gene_id}.values", values, var_quantization
            )
            gene_fields.append([gene_id, *bounds])
        var_schema: dict[str, Any] = {
            "kind": "continuous",
            "pathPattern": f"var/{{key}}.values.{var_ext}{gz}",
            "ext": var_ext,
            "dtype": {"f32": "float32", "u8": "uint8", "u16": "uint16"}[var_ext],
            "quantized": bool(var_quantization),
        }
        if var_quantization:
            var_schema["quantizationBits"] = var_quantization
        var_manifest = {
            "_format": "compact_v1",
            "n_points": n,
            "var_gene_id_column": "index",
            "compression": level,
            "quantization": var_quantization,
            "_varSchema": var_schema,
            "fields": gene_fields,
        }
        (out / "var_manifest.json").write_text(dump_compact(var_manifest), encoding="utf-8")

    # connectivity (§2.8)
    n_edges: int | None = None
    if connectivity:
        src, dst, weights, max_neighbors = build_edges(n, rng, n_pairs)
        index_dtype, index_bytes = ("uint16", 2) if n <= 65536 else ("uint32", 4)
        idx = "<u2" if index_bytes == 2 else "<u4"
        paths = [
            payload("connectivity/edges.src.bin", src, idx),
            payload("connectivity/edges.dst.bin", dst, idx),
            payload("connectivity/edges.weights.f64.bin", weights, "<f8"),
        ]
        ex.edges = (src, dst, weights)
        n_edges = len(src)
        conn = {
            "format": "edge_pairs",
            "n_cells": n,
            "n_edges": n_edges,
            "max_neighbors": max_neighbors,
            "index_bytes": index_bytes,
            "index_dtype": index_dtype,
            "sourcesPath": paths[0],
            "destinationsPath": paths[1],
            "weightsPath": paths[2],
            "weight_dtype": "float64",
            "weight_bytes": 8,
            "compression": level,
        }
        (out / "connectivity_manifest.json").write_text(dump_compact(conn), encoding="utf-8")

    # vector fields (§2.9)
    vector_fields = None
    if vectors:
        files = {}
        for d in dims:
            raw = rng.normal(size=(n, d))
            scaled = (raw * scales[d]).astype(np.float32)
            ex.vectors[("velocity_umap", d)] = scaled
            files[f"{d}d"] = payload(f"vectors/velocity_umap_{d}d.bin", scaled, "<f4")
        vector_fields = {
            "default_field": "velocity_umap",
            "fields": {
                "velocity_umap": {
                    "label": "velocity_umap",
                    "basis": "umap",
                    "available_dimensions": list(dims),
                    "default_dimension": max(dims),
                    "files": files,
                }
            },
        }

    # identity (§2.10)
    obs_fields = [{"key": e[0], "kind": "continuous"} for e in continuous_fields]
    obs_fields += [
        {"key": e[0], "kind": "category", "n_categories": len(e[1])} for e in categorical_fields
    ]
    identity: dict[str, Any] = {
        "version": 2,
        "id": dataset_id,
        "name": name,
        "description": "hand-written test export",
        "created_at": CREATED_AT,
        "cellucid_data_version": "0.0.0-test",
        "stats": {
            "n_cells": n,
            "n_genes": n_genes,
            "n_obs_fields": len(obs_fields),
            "n_categorical_fields": len(categorical_fields),
            "n_continuous_fields": len(continuous_fields),
            "has_connectivity": bool(connectivity),
            "n_edges": n_edges,
        },
        "embeddings": {
            "available_dimensions": list(dims),
            "default_dimension": max(dims),
            "files": {f"{d}d": f"points_{d}d.bin{gz}" for d in dims},
        },
        "obs_fields": obs_fields,
        "export_settings": {
            "compression": level,
            "var_quantization": var_quantization,
            "obs_continuous_quantization": obs_quantization,
            "obs_categorical_dtype": codes_dtype,
        },
        "source": {"name": "synthetic", "url": "https://example.org/data"},
    }
    if vector_fields is not None:
        identity["vector_fields"] = vector_fields
    (out / "dataset_identity.json").write_text(
        json.dumps(identity, indent=2, allow_nan=False), encoding="utf-8"
    )
    return ex


def write_root(root: Path, names: Sequence[str] = ("alpha", "beta"), **kwargs: Any) -> Path:
    """An export root with one small dataset per name and a hand-written ``datasets.json``."""
    entries = []
    for i, dir_name in enumerate(names):
        n = 30 + 10 * i
        write_dataset(
            root / dir_name,
            n=n,
            seed=i,
            dataset_id=f"ds-{dir_name}",
            name=f"Dataset {dir_name}",
            **kwargs,
        )
        entries.append(
            {
                "id": f"ds-{dir_name}",
                "path": f"{dir_name}/",
                "name": f"Dataset {dir_name}",
                "n_cells": n,
                "n_genes": kwargs.get("n_genes", 3),
            }
        )
    manifest = {"version": 1, "default": entries[0]["id"], "datasets": entries}
    (root / "datasets.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return root
