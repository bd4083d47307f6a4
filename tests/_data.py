"""Small, seeded inputs for the exporter tests, and a decoder written from SPEC §2.

Nothing here imports the exporter: the generators build plain numpy / pandas / scipy /
AnnData objects, and the decoding helpers read an export folder with ``zlib`` and
``numpy`` only, following SPEC §2.3 (little-endian, headerless, one gzip member per
``.gz`` file). Tests compare what ``prepare`` wrote against these independent readings.
"""

from __future__ import annotations

import copy
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

# ---- generators -------------------------------------------------------------------------------
CLUSTER_ORDER = ["T cell", "B cell", "NK", "unused", "Mono"]  # deliberately not sorted


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def embedding(n: int, d: int, seed: int = 0) -> np.ndarray:
    """An anisotropic, off-centre ``(n, d)`` float64 embedding (axis ``j`` spans ~``3 * (j + 1)``)."""
    r = rng(seed)
    return r.normal(size=(n, d)) * np.arange(1, d + 1) + np.arange(d) * 10.0 - 5.0


def mixed_obs(n: int, seed: int = 0) -> pd.DataFrame:
    """One column per row of SPEC §2.6.1, in an order that mixes the two kinds.

    Every category of ``cluster`` except ``"unused"`` is large (at least ``n // 8`` cells), so
    centroids exist with the default ``centroid_min_points`` for ``n >= 80``.
    """
    r = rng(seed)
    cluster_values = np.array(["T cell", "B cell", "NK", "Mono"], dtype=object)[r.integers(0, 4, n)]
    cluster = pd.Categorical(cluster_values, categories=CLUSTER_ORDER)
    cluster[::17] = np.nan  # a few missing
    batch = r.choice(np.array(["b2", "b1", "b3"], dtype=object), n).astype(object)
    batch[::11] = None
    score = r.normal(size=n)
    score[::13] = np.nan
    score[5] = np.inf
    score[6] = -np.inf
    nullable_int = pd.array(r.integers(0, 50, n), dtype="Int64")
    nullable_int[::7] = pd.NA
    maybe = pd.array(r.integers(0, 2, n).astype(bool), dtype="boolean")
    maybe[::9] = pd.NA
    return pd.DataFrame(
        {
            "cluster": cluster,
            "n genes": r.integers(100, 5000, n),  # int → continuous, safe name n_genes
            "batch": batch,  # object strings with None → category, sorted
            "score": score,  # float with NaN and ±inf
            "is_doublet": r.random(n) < 0.2,  # bool → category False/True
            "maybe": maybe,  # nullable boolean with NA
            "n_counts": nullable_int,  # nullable Int with NA → continuous
        },
        index=[f"cell{i}" for i in range(n)],
    )


def expression(n: int, g: int, seed: int = 0, density: float = 0.3) -> np.ndarray:
    """A dense float32 ``(n, g)`` matrix with mostly zeros and non-integer values."""
    r = rng(seed)
    x = r.gamma(2.0, 1.5, size=(n, g)) * (r.random((n, g)) < density)
    x[:, 0] = 0.0  # one all-zero gene
    return x.astype(np.float32)


def gene_var(g: int) -> pd.DataFrame:
    """Gene ids in the index (``Gene0``, ...) plus a ``symbol`` column with other unique ids."""
    return pd.DataFrame(
        {"symbol": [f"SYM-{i}" for i in range(g)], "highly_variable": np.arange(g) % 2 == 0},
        index=pd.Index([f"Gene{i}" for i in range(g)]),
    )


def knn_graph(n: int, k: int = 4, seed: int = 0) -> sp.csr_matrix:
    """An asymmetric kNN-like CSR graph with a few self-loops and a stored zero."""
    r = rng(seed)
    rows = np.repeat(np.arange(n), k)
    cols = r.integers(0, n, n * k)
    vals = r.uniform(0.05, 1.0, n * k)
    m = sp.csr_matrix((vals, (rows, cols)), shape=(n, n)).tolil()
    m.setdiag(0.5)  # self-loops the exporter must drop
    m = m.tocsr()
    m.sum_duplicates()
    # a stored zero (explicit entry with value 0) that must not become an edge
    row1 = slice(m.indptr[1], m.indptr[2])
    if m.indptr[2] > m.indptr[1]:
        m.data[row1.start] = 0.0
    return m


def latent(n: int, k: int = 5, seed: int = 0) -> np.ndarray:
    return rng(seed).normal(size=(n, k))


def make_adata(n: int = 80, g: int = 6, seed: int = 0, *, sparse: bool = True):
    """An AnnData with everything AnnData mode derives from (SPEC §6.5)."""
    import anndata

    x = expression(n, g, seed)
    adata = anndata.AnnData(
        X=sp.csr_matrix(x) if sparse else x,
        obs=mixed_obs(n, seed),
        var=gene_var(g),
    )
    adata.layers["counts"] = np.round(x * 3).astype(np.float32)
    adata.obsm["X_umap"] = embedding(n, 2, seed + 1)
    adata.obsm["X_umap_3d"] = embedding(n, 3, seed + 2)
    adata.obsm["X_pca"] = latent(n, 5, seed + 3)
    adata.obsm["velocity_umap"] = rng(seed + 4).normal(size=(n, 2))
    adata.obsp["connectivities"] = knn_graph(n, 4, seed + 5)
    return adata


# ---- spec reference computations ---------------------------------------------------------------
def normalise(points: Any) -> tuple[np.ndarray, float]:
    """SPEC §2.5 in float64; returns ``(float32 points, scale)``."""
    x = np.asarray(points, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    lo, hi = x.min(axis=0), x.max(axis=0)
    span = float((hi - lo).max())
    if span < 1e-8:
        span = 1.0
    scale = 2.0 / span
    return ((x - (lo + hi) / 2.0) * scale).astype(np.float32), scale


def dequantise(codes: np.ndarray, lo: float, hi: float, bits: int) -> np.ndarray:
    """SPEC §2.6.6 decode: ``NaN`` for the missing marker, else ``lo + q * (hi - lo) / maxq``."""
    maxq = 254 if bits == 8 else 65534
    c = np.asarray(codes).astype(np.float64)
    out = lo + c * (hi - lo) / maxq
    out[np.asarray(codes) == maxq + 1] = np.nan
    return out


def half_step(lo: float, hi: float, bits: int) -> float:
    return (hi - lo) / (254 if bits == 8 else 65534) / 2.0


def centroids_reference(codes, categories, points, q, min_points):
    """SPEC §2.6.8 with a plain loop over categories and ``np.quantile`` (linear)."""
    if q is None:
        return []
    pts = np.asarray(points, dtype=np.float64)
    out = []
    for i, name in enumerate(categories):
        members = pts[codes == i]
        m = len(members)
        if m < min_points:
            continue
        mean, count = members.mean(axis=0), m
        if m > min_points:
            dist = np.sqrt(((members - mean) ** 2).sum(axis=1))
            thr = np.quantile(dist, q)
            kept = members[dist <= thr]
            if len(kept) >= min_points:
                mean, count = kept.mean(axis=0), len(kept)
        out.append({"category": name, "position": [float(v) for v in mean], "n_points": count})
    return out


def outliers_reference(codes, k, latent, min_points):
    """SPEC §2.6.9 with plain loops: ``#{j : d_j <= d_i} / m``; NaN for small or missing."""
    out = np.full(len(codes), np.nan)
    for c in range(k):
        idx = np.flatnonzero(codes == c)
        m = len(idx)
        if m == 0 or m < min_points:
            continue
        center = latent[idx].mean(axis=0)
        d = np.sqrt(((latent[idx] - center) ** 2).sum(axis=1))
        for i, di in zip(idx, d, strict=True):
            out[i] = np.count_nonzero(d <= di) / m
    return out.astype(np.float32)


def edges_reference(dense):
    """SPEC §2.8 with loops: max-symmetrise, drop diagonal and zeros, src < dst sorted."""
    a = np.asarray(dense, dtype=np.float64)
    n = a.shape[0]
    src, dst, w = [], [], []
    for i in range(n):
        for j in range(i + 1, n):
            x = max(a[i, j], a[j, i])
            if x > 0:
                src.append(i)
                dst.append(j)
                w.append(x)
    degree = np.bincount(np.array(src + dst, dtype=np.int64), minlength=n)
    return np.array(src), np.array(dst), np.array(w), int(degree.max()) if src else 0


# ---- reading an export folder (SPEC §2.3) -------------------------------------------------------
def gunzip_one_member(data: bytes) -> bytes:
    """Decompress ``data``, asserting it is exactly one complete gzip member."""
    assert data[:3] == b"\x1f\x8b\x08", "not a gzip member"
    d = zlib.decompressobj(wbits=31)
    out = d.decompress(data)
    assert d.eof, "truncated gzip member"
    assert d.unused_data == b"", "bytes after the first gzip member"
    return out


def gzip_header(data: bytes) -> dict[str, int]:
    """The fixed 10-byte gzip header fields (RFC 1952)."""
    return {
        "flags": data[3],
        "mtime": int.from_bytes(data[4:8], "little"),
        "xfl": data[8],
        "os": data[9],
    }


def read_bytes(root: Path, rel: str) -> bytes:
    """A payload's raw bytes; ``.gz`` files are gunzipped (decided by the suffix alone)."""
    data = (Path(root) / rel).read_bytes()
    return gunzip_one_member(data) if rel.endswith(".gz") else data


_LE = {
    "float32": "<f4",
    "f32": "<f4",
    "uint8": "u1",
    "u8": "u1",
    "uint16": "<u2",
    "u16": "<u2",
    "uint32": "<u4",
    "float64": "<f8",
}


def read_array(root: Path, rel: str, dtype: str, shape: tuple[int, ...] | None = None):
    """Decode a little-endian payload; checks the byte length is a whole number of items."""
    raw = read_bytes(root, rel)
    dt = np.dtype(_LE.get(dtype, dtype))
    assert len(raw) % dt.itemsize == 0, f"{rel}: {len(raw)} bytes is not a multiple of {dt}"
    arr = np.frombuffer(raw, dtype=dt)
    if shape is not None:
        assert arr.size == int(np.prod(shape)), f"{rel}: {arr.size} items, expected {shape}"
        arr = arr.reshape(shape)
    return arr


def read_json(root: Path, rel: str) -> Any:
    return json.loads((Path(root) / rel).read_text(encoding="utf-8"))


def files_under(root: Path) -> set[str]:
    """Every file below ``root`` as a relative POSIX path."""
    root = Path(root)
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def dirs_under(root: Path) -> set[str]:
    root = Path(root)
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir()}


def tree_bytes(root: Path) -> dict[str, bytes]:
    root = Path(root)
    return {rel: (root / rel).read_bytes() for rel in sorted(files_under(root))}


def with_gz(rel: str, compression: int | None) -> str:
    return rel + ".gz" if compression else rel


# ---- "the caller's objects are never modified" --------------------------------------------------
def snapshot(obj: Any) -> Any:
    """A deep copy to compare against later with :func:`assert_same`."""
    return copy.deepcopy(obj)


def assert_same(before: Any, after: Any, where: str = "value") -> None:
    """Assert two objects hold the same data, including dtypes and sparse structure."""
    import anndata

    if isinstance(before, anndata.AnnData):
        assert isinstance(after, anndata.AnnData)
        assert_same(before.obs, after.obs, f"{where}.obs")
        assert_same(before.var, after.var, f"{where}.var")
        assert_same(before.X, after.X, f"{where}.X")
        for attr in ("obsm", "obsp", "layers"):
            b, a = getattr(before, attr), getattr(after, attr)
            assert sorted(b.keys()) == sorted(a.keys()), f"{where}.{attr} keys changed"
            for k in b:
                assert_same(b[k], a[k], f"{where}.{attr}[{k!r}]")
    elif isinstance(before, pd.DataFrame):
        pd.testing.assert_frame_equal(before, after, check_exact=True, obj=where)
    elif isinstance(before, pd.Series):
        pd.testing.assert_series_equal(before, after, check_exact=True, obj=where)
    elif sp.issparse(before):
        assert sp.issparse(after), where
        assert type(before) is type(after), f"{where}: type changed"
        assert before.format == after.format, f"{where}: format changed"
        assert before.dtype == after.dtype, f"{where}: dtype changed"
        assert before.shape == after.shape, f"{where}: shape changed"
        if before.format in ("csr", "csc"):
            np.testing.assert_array_equal(before.indptr, after.indptr, err_msg=where)
            np.testing.assert_array_equal(before.indices, after.indices, err_msg=where)
        elif before.format == "coo":
            np.testing.assert_array_equal(before.row, after.row, err_msg=where)
            np.testing.assert_array_equal(before.col, after.col, err_msg=where)
        np.testing.assert_array_equal(before.data, after.data, err_msg=where)
    elif isinstance(before, np.ndarray):
        assert isinstance(after, np.ndarray), where
        assert before.dtype == after.dtype, f"{where}: dtype changed"
        assert before.flags.c_contiguous == after.flags.c_contiguous, f"{where}: order changed"
        np.testing.assert_array_equal(before, after, err_msg=where)
    elif isinstance(before, dict):
        assert list(before) == list(after), f"{where}: keys changed"
        for k in before:
            assert_same(before[k], after[k], f"{where}[{k!r}]")
    else:
        assert before == after, where
