"""Encoders: the numeric rules of the export format (SPEC §2.5-§2.9).

Pure, vectorised functions from arrays to arrays plus the metadata that describes them.
They never modify their inputs. Byte layout lives in :mod:`cellucid.export.binary`;
which file holds what lives in :mod:`cellucid.export.dataset`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..storage.dask import compute
from ..storage.lazy_sparse import sp
from .naming import safe_name

#: Quantisation: largest code and missing marker per bit width (SPEC §2.6.6).
QUANT_MAX = {8: 254, 16: 65534}
QUANT_MISSING = {8: 255, 16: 65535}
QUANT_EXT = {8: "u8", 16: "u16"}
#: Categorical codes: dtype name → (extension, missing marker, maximum categories).
CODES = {"uint8": ("u8", 255, 255), "uint16": ("u16", 65535, 65535)}
#: The Cellucid web app's limits (SPEC §2.5, §2.8).
POINTS_FILE_LIMIT = 512 * 1024 * 1024
EDGE_BUDGET = 536_870_912


# --------------------------------------------------------------------------- embeddings
#: rows per chunk of the row-wise float64 work below: temporaries stay a few MiB, where
#: whole-array float64 copies of ten million cells cost seconds of page faults
CHUNK_ROWS = 1 << 18


def _row_chunks(n: int, rows: int = CHUNK_ROWS) -> range:
    return range(0, n, rows)


def normalize_points(
    coords: Any, dim: int, name: str = "embedding", *, normalize: bool = True
) -> tuple[np.ndarray, float]:
    """Centre and scale an ``(n, dim)`` embedding so its longest axis spans [-1, 1].

    Returns the float32 points and the scale (reused for vector fields); with
    ``normalize=False`` the raw coordinates and a scale of 1. Raises
    ``ValueError`` for a wrong shape or non-finite coordinates. The arithmetic is float64,
    done in row chunks (no float64 copy of the whole embedding).

    >>> pts, scale = normalize_points(np.array([[0.0, 0.0], [4.0, 2.0]]), 2)
    >>> pts.tolist(), scale
    ([[-1.0, -0.5], [1.0, 0.5]], 0.5)
    """
    x = _as_2d_array(coords, dim, name)
    n = x.shape[0]
    if not np.isfinite(x).all():
        _require_finite(x.astype(np.float64), name)
    # column by column (a reduction along axis 0 of an (n, 2) array is ~20x slower), on the
    # stored dtype: converting to float64 is monotonic, so min and max commute with it
    lo = np.array([x[:, j].min() for j in range(dim)], dtype=np.float64)
    hi = np.array([x[:, j].max() for j in range(dim)], dtype=np.float64)
    if normalize:
        span = float((hi - lo).max())
        if span < 1e-8:
            span = 1.0
        center, scale = (lo + hi) / 2.0, 2.0 / span
    else:  # raw coordinates: (x - 0) * 1 is x
        center, scale = np.zeros(dim), 1.0
    out = np.empty((n, dim), dtype=np.float32)
    for a in _row_chunks(n):
        chunk = x[a : a + CHUNK_ROWS].astype(np.float64)
        chunk -= center
        chunk *= scale
        out[a : a + CHUNK_ROWS] = chunk
    return out, scale


def _as_2d_float64(coords: Any, dim: int, name: str, allow_1d: bool = False) -> np.ndarray:
    return _as_2d_array(coords, dim, name, allow_1d).astype(np.float64, copy=False)


def _as_2d_array(coords: Any, dim: int, name: str, allow_1d: bool = False) -> np.ndarray:
    """``coords`` as a numeric ``(n, dim)`` array (not copied), or a ``ValueError``."""
    if sp.issparse(coords):
        coords = coords.toarray()
    x = np.asarray(coords)
    if x.ndim == 1 and dim == 1 and allow_1d:
        x = x.reshape(-1, 1)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(
            f"{name} must have shape (n_cells, {dim}); got {x.shape}. "
            f"Pass a {dim}-column array for the {dim}D embedding."
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} has no cells; an export needs at least one cell.")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise ValueError(f"{name} must be numeric; got dtype {x.dtype}.")
    return x


def _require_finite(x: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1) if bad.ndim == 2 else bad)
        shown = ", ".join(str(r) for r in rows[:5])
        raise ValueError(
            f"{name} has non-finite values (NaN or inf) in {rows.size} cell(s), e.g. rows {shown}. "
            "Drop or impute these cells before exporting."
        )


# --------------------------------------------------------------------------- quantisation
@dataclass(frozen=True)
class Quantized:
    """Quantised values: codes plus the float range they decode into."""

    codes: np.ndarray
    lo: float
    hi: float
    bits: int


def quantize(values: Any, bits: int) -> Quantized:
    """Quantise to ``bits`` (8 or 16) with round-to-nearest; non-finite → missing marker.

    >>> q = quantize(np.array([0.0, 0.5, 1.0, np.nan]), 8)
    >>> q.codes.tolist(), q.lo, q.hi
    ([0, 127, 254, 255], 0.0, 1.0)
    """
    if bits not in QUANT_MAX:
        raise ValueError(f"quantisation must be 8 or 16 bits, got {bits!r}")
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    lo, hi = _finite_range(v, finite)
    maxq = QUANT_MAX[bits]
    dtype = np.uint8 if bits == 8 else np.uint16
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.rint((v - lo) * (maxq / (hi - lo)))
    codes = np.clip(np.where(finite, scaled, 0), 0, maxq).astype(dtype)
    codes[~finite] = QUANT_MISSING[bits]
    return Quantized(codes, lo, hi, bits)


def _finite_range(v: np.ndarray, finite: np.ndarray) -> tuple[float, float]:
    if finite.all():
        lo, hi = float(v.min()), float(v.max())
    elif finite.any():
        lo, hi = float(v[finite].min()), float(v[finite].max())
    else:
        lo, hi = 0.0, 1.0
    if hi == lo:
        hi = lo + 1.0
        if hi == lo:
            hi = float(np.nextafter(lo, np.inf))
    return lo, hi


def dequantize(codes: np.ndarray, lo: float, hi: float, bits: int) -> np.ndarray:
    """Decode quantised values into float32: ``NaN`` for the missing marker, else
    ``lo + q * (hi - lo) / maxq`` computed in float64 (SPEC §2.6.6).

    >>> dequantize(np.array([0, 127, 254, 255], dtype=np.uint8), 0.0, 2.0, 8)
    array([ 0.,  1.,  2., nan], dtype=float32)
    """
    if bits not in QUANT_MAX:
        raise ValueError(f"quantisation bits must be 8 or 16, got {bits!r}")
    c = np.asarray(codes)
    out = float(lo) + c.astype(np.float64) * ((float(hi) - float(lo)) / QUANT_MAX[bits])
    out[c == QUANT_MISSING[bits]] = np.nan
    return out.astype(np.float32)


# --------------------------------------------------------------------------- obs columns
@dataclass(frozen=True)
class ContinuousColumn:
    key: str
    values: np.ndarray  # float32, NaN for missing


@dataclass(frozen=True)
class CategoricalColumn:
    key: str
    codes: np.ndarray  # signed integers (pandas' codes: int8 for up to 127 categories), -1 missing
    categories: list[str]


def classify_obs_column(key: str, series: pd.Series) -> ContinuousColumn | CategoricalColumn:
    """Decide the kind of one obs column and extract its values (SPEC §2.6.1)."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cat = series.array
        categories = [str(c) for c in dtype.categories]
        codes = np.array(cat.codes)  # a copy in pandas' narrow dtype (8 times less than int64)
    elif pd.api.types.is_bool_dtype(dtype):
        mask = series.isna().to_numpy()
        vals = series.to_numpy(dtype=object)
        codes = np.where(mask, -1, 0).astype(np.int64)
        codes[~mask] = np.asarray(vals[~mask], dtype=bool).astype(np.int64)
        categories = ["False", "True"]
    elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        if pd.api.types.is_integer_dtype(dtype):
            exact = _integers_as_float32(key, series)
            if exact is not None:
                return ContinuousColumn(key, exact)
            return _integer_identifiers(key, series)
        if dtype == np.float32:  # one copy, and float32 cannot overflow float32
            return ContinuousColumn(key, np.array(series.to_numpy(), dtype=np.float32))
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        _check_float32_range(key, values)
        return ContinuousColumn(key, values.astype(np.float32))
    else:
        mask = series.isna().to_numpy()
        text = series.astype(object).where(~mask, None)
        text = text.map(lambda v: None if v is None else str(v))
        _warn_merged_labels(key, series[~mask], text[~mask])
        cat = pd.Categorical(text)
        categories = [str(c) for c in cat.categories]
        codes = np.asarray(cat.codes, dtype=np.int64)
    _check_labels(key, categories)
    return CategoricalColumn(key, codes, categories)


#: the largest finite float32
_F32_MAX = float(np.finfo(np.float32).max)


def _integers_as_float32(key: str, series: pd.Series) -> np.ndarray | None:
    """The column as float32 when float32 holds every value exactly, else ``None``."""
    mask = series.isna().to_numpy()
    ints = series[~mask].to_numpy()
    out = np.full(len(series), np.nan, dtype=np.float32)
    as_f32 = ints.astype(np.float32)
    # compare in the integers' own type: float64 would hide differences above 2**53
    back = as_f32.astype(np.float64)
    fits = np.all(np.abs(back) < 2.0**63) and np.array_equal(back.astype(ints.dtype), ints)
    if not fits:
        return None
    out[~mask] = as_f32
    return out


def _integer_identifiers(key: str, series: pd.Series) -> CategoricalColumn:
    """Integers float32 cannot hold exactly (ids above 2**24): a categorical field of their
    decimal text when there are few enough distinct values, else a ``ValueError``."""
    mask = series.isna().to_numpy()
    ints = series[~mask].to_numpy()
    distinct = np.unique(ints)
    if distinct.size > CODES["uint16"][2]:
        raise ValueError(
            f"obs column {key!r} holds integers that float32 cannot store exactly (up to "
            f"{int(np.abs(distinct).max())}) and {distinct.size} distinct values, too many "
            "for a categorical field. If they are identifiers, leave the column out "
            "(obs_keys=[...]); if they are quantities, cast it yourself to accept rounding "
            f"(adata.obs[{key!r}] = adata.obs[{key!r}].astype('float32'))."
        )
    warnings.warn(
        f"obs column {key!r} holds integers that float32 cannot store exactly; exporting it "
        f"as a categorical field of {distinct.size} values (cast it to float32 yourself to "
        "export rounded numbers instead)",
        stacklevel=4,
    )
    codes = np.full(len(series), -1, dtype=np.int64)
    codes[~mask] = np.searchsorted(distinct, ints)
    return CategoricalColumn(key, codes, [str(int(v)) for v in distinct])


def _check_float32_range(key: str, values: np.ndarray) -> None:
    finite = values[np.isfinite(values)]
    if finite.size and float(np.abs(finite).max()) > _F32_MAX:
        raise ValueError(
            f"obs column {key!r} has values up to {float(np.abs(finite).max()):.3g}, beyond "
            f"float32's range ({_F32_MAX:.3g}): they would become infinite. Rescale the column "
            f"(e.g. np.log10) or leave it out with obs_keys=[...]."
        )


def _warn_merged_labels(key: str, originals: pd.Series, text: pd.Series) -> None:
    """Warn when values of different types become the same label (``1`` and ``"1"``)."""
    if originals.empty:
        return
    kinds = {type(v) for v in originals.to_numpy()}
    if len(kinds) < 2:
        return
    pairs = pd.DataFrame({"t": text.to_numpy(), "k": [type(v).__name__ for v in originals]})
    merged = pairs.drop_duplicates().groupby("t")["k"].nunique()
    merged = merged[merged > 1]
    if len(merged):
        shown = ", ".join(repr(t) for t in merged.index[:5])
        warnings.warn(
            f"obs column {key!r} mixes value types that read the same as text ({shown}); "
            "they are merged into one category. Convert the column to one type first "
            f"(adata.obs[{key!r}] = adata.obs[{key!r}].astype(str)) to silence this.",
            stacklevel=4,
        )


def _check_labels(key: str, categories: list[str]) -> None:
    blank = [c for c in categories if not c.strip()]
    if blank:
        raise ValueError(
            f"obs column {key!r} has a blank category label {blank[0]!r}. "
            "Rename it (e.g. to 'unknown') or set those cells to NaN."
        )
    if len(set(categories)) != len(categories):
        seen: set[str] = set()
        dups = sorted({c for c in categories if c in seen or seen.add(c)})
        raise ValueError(
            f"obs column {key!r} has categories that are equal as text: {dups[:5]}. "
            "Merge or rename them (e.g. 1 and '1') before exporting."
        )


def codes_dtype_for(key: str, n_categories: int, setting: str) -> str:
    """Choose ``uint8`` or ``uint16`` codes for a categorical field (SPEC §2.6.7)."""
    if setting == "auto":
        if n_categories <= 255:
            return "uint8"
        if n_categories <= 65535:
            return "uint16"
    elif setting in CODES:
        if n_categories <= CODES[setting][2]:
            return setting
    else:
        raise ValueError(
            f"obs_categorical_dtype must be 'auto', 'uint8' or 'uint16'; got {setting!r}"
        )
    limit = CODES.get(setting, CODES["uint16"])[2]
    fix = (
        "use obs_categorical_dtype='uint16' or 'auto'"
        if setting == "uint8" and n_categories <= 65535
        else "leave this column out with obs_keys=[...] or store it as a continuous/numeric id"
    )
    raise ValueError(
        f"obs column {key!r} has {n_categories} categories, more than {setting!r} codes allow "
        f"({limit}); {fix}."
    )


def encode_codes(codes: np.ndarray, dtype_name: str) -> np.ndarray:
    """Map int codes (-1 = missing) to the stored dtype with its missing marker."""
    missing = CODES[dtype_name][1]
    out = codes.astype(np.uint8 if dtype_name == "uint8" else np.uint16)
    out[codes < 0] = missing
    return out


# --------------------------------------------------------------------------- centroids
def _group_sorted(codes: np.ndarray, dist: np.ndarray, k: int):
    """Sort members by (code, distance); return order, group starts and sizes."""
    order = np.lexsort((dist, codes))
    counts = np.bincount(codes, minlength=k)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return order, starts, counts


#: cell passes (cells x (field, dimension) jobs) from which centroids use the numba kernel
#: even when numba is not loaded yet: loading it costs about 0.4 s of one core (imports and
#: its type registries, which also slow every other thread of a starting server), and the
#: kernel saves only ~6 of numpy's ~30 ns per cell pass
CENTROID_KERNEL_MIN_WORK = 100_000_000
#: categories from which a field's centroids use the kernel (numpy takes a Python step each)
CENTROID_KERNEL_MIN_CATEGORIES = 2048


def centroid_kernel_loaded() -> bool:
    """Whether the numba centroid kernel is loaded in this process (a call made it ready)."""
    import sys

    kernels = sys.modules.get(f"{__package__}.kernels")
    return kernels is not None and bool(kernels.trimmed_group_means.signatures)


def centroids_use_kernel(loaded: bool, work: int, n_categories: int) -> bool:
    """Whether centroids are computed with the numba kernel (True) or numpy (False): the
    kernel when it is ``loaded``, or when the ``work`` (cell passes) or the categories are
    many enough to pay for loading it. Both give the same bits."""
    return (
        loaded or work >= CENTROID_KERNEL_MIN_WORK or n_categories >= CENTROID_KERNEL_MIN_CATEGORIES
    )


#: rows per chunk of the numpy centroid passes: temporaries stay in the CPU's caches
_CENTROID_CHUNK = 1 << 15


def trimmed_group_means_numpy(
    codes: np.ndarray, points: np.ndarray, k: int, quantile: float, min_points: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`~cellucid.export.kernels.trimmed_group_means` in numpy, bit for bit.

    The same float64 operations in the same order: sums per category accumulate one cell
    at a time in cell order (``np.add.at``), distances are ``sqrt((x0 - m0)**2 + (x1 -
    m1)**2 + ...)``, each threshold interpolates between two exact order statistics of its
    category's distances (:func:`_quantile_thresholds`), and the trimmed means subtract the
    sums of the cells cut. Five passes over the cells in cache-sized row chunks; the only
    whole-length array is the distances.
    """
    d = points.shape[1]
    if codes.size and codes.min() < 0:  # cells without a category: left out once
        keep = codes >= 0
        codes, points = codes[keep], points[keep]
    n = codes.shape[0]
    spans = [(a, min(n, a + _CENTROID_CHUNK)) for a in range(0, n, _CENTROID_CHUNK)]

    def column(a: int, b: int, j: int, rows: np.ndarray | None = None) -> np.ndarray:
        x = points[a:b, j]
        return (x if rows is None else x[rows]).astype(np.float64)

    counts = np.zeros(k, dtype=np.int64)
    sums = np.zeros((d, k))
    for a, b in spans:
        cc = codes[a:b]
        counts += np.bincount(cc, minlength=k)
        for j in range(d):
            np.add.at(sums[j], cc, column(a, b, j))
    has = counts > 0
    means = np.full((d, k), np.nan)
    means[:, has] = sums[:, has] / counts[has]
    dist = np.empty(n)
    top = 0.0
    for a, b in spans:
        cc, out = codes[a:b], dist[a:b]
        for j in range(d):
            diff = column(a, b, j)
            diff -= means[j][cc]
            diff *= diff
            if j == 0:
                out[:] = diff
            else:
                out += diff
        np.sqrt(out, out=out)
        top = max(top, float(out.max()))
    thr = _quantile_thresholds(codes, dist, counts, quantile, min_points, spans, top)
    cut_counts = np.zeros(k, dtype=np.int64)
    cut_sums = np.zeros((d, k))
    for a, b in spans:
        cut = dist[a:b] > thr[codes[a:b]]  # NaN thresholds cut nothing
        if cut.any():
            gone = codes[a:b][cut]
            cut_counts += np.bincount(gone, minlength=k)
            for j in range(d):
                np.add.at(cut_sums[j], gone, column(a, b, j, cut))
    kept_counts = counts - cut_counts
    kept = np.full((d, k), np.nan)
    left = kept_counts > 0
    kept[:, left] = (sums[:, left] - cut_sums[:, left]) / kept_counts[left]
    return means.T.copy(), counts, kept.T.copy(), kept_counts


def _quantile_thresholds(
    codes: np.ndarray,
    dist: np.ndarray,
    counts: np.ndarray,
    quantile: float,
    min_points: int,
    spans: list[tuple[int, int]],
    top: float,
) -> np.ndarray:
    """Per category with more than ``min_points`` members, numpy's linear ``quantile`` of
    its members' ``dist`` (NaN for the others; ``top`` is the largest distance), from exact
    order statistics found without sorting: a histogram of (category, distance bin) tells
    which bin holds each wanted rank (binning is monotonic in the distance), and only the
    members of those bins are gathered and partitioned."""
    k = counts.size
    thr = np.full(k, np.nan)
    groups = np.flatnonzero(counts > min_points)
    if groups.size == 0:
        return thr
    bins = int(max(16, min(1 << 10, (1 << 20) // k)))
    scale = (bins - 1) / top if top > 0 else 0.0

    def keys(a: int, b: int) -> np.ndarray:
        binned = np.multiply(dist[a:b], scale)
        np.minimum(binned, bins - 1, out=binned)
        key = binned.astype(np.int64)  # truncation: the floor of a non-negative value
        key += codes[a:b] * np.int64(bins)
        return key

    hist = np.zeros(k * bins, dtype=np.int64)
    for a, b in spans:
        np.add.at(hist, keys(a, b), 1)
    cum = np.cumsum(hist.reshape(k, bins), axis=1)
    plan = []
    for g in groups.tolist():
        m = int(counts[g])
        pos = quantile * (m - 1)
        lo = int(np.floor(pos))
        asks = []  # (key of the bin holding rank r, rank of r within that bin)
        for r in (lo, lo + 1) if lo + 1 < m else (lo,):
            b = int(np.searchsorted(cum[g], r, side="right"))
            asks.append((g * bins + b, r - (int(cum[g, b - 1]) if b else 0)))
        plan.append((g, pos, lo, asks))
    pick = np.zeros(k * bins, dtype=bool)
    pick[[kk for *_, asks in plan for kk, _r in asks]] = True
    found_keys, found_dist = [], []
    for a, b in spans:
        key = keys(a, b)
        hit = pick[key]
        if hit.any():
            found_keys.append(key[hit])
            found_dist.append(dist[a:b][hit])
    sel_key, sel_dist = np.concatenate(found_keys), np.concatenate(found_dist)
    order = np.argsort(sel_key, kind="stable")
    sel_key, sel_dist = sel_key[order], sel_dist[order]

    def value(kk: int, r: int) -> float:
        a, b = np.searchsorted(sel_key, [kk, kk + 1])
        return np.partition(sel_dist[a:b], r)[r]

    for g, pos, lo, asks in plan:
        v_lo = value(*asks[0])
        v_hi = value(*asks[1]) if len(asks) > 1 else v_lo
        thr[g] = v_lo + (pos - lo) * (v_hi - v_lo)
    return thr


def compute_centroids(
    codes: np.ndarray,
    categories: list[str],
    points: np.ndarray,
    quantile: float | None,
    min_points: int,
    *,
    kernel: bool = True,
) -> list[dict[str, Any]]:
    """Trimmed category centroids in one dimension's normalised coordinates (SPEC §2.6.8).

    With ``kernel``, three fused passes over the cells for all categories of the field
    (:func:`~cellucid.export.kernels.trimmed_group_means`, numba), in float64 arithmetic on
    the float32 points: no float64 copy of the embedding. Without, the same numbers from
    numpy (:func:`trimmed_group_means_numpy`): slower per cell, but it needs no numba, whose
    loading costs a server's start-up about a second (see
    :meth:`~cellucid.export.dataset.ExportDataset._compute_centroids`).
    """
    if quantile is None:
        return []
    k = len(categories)
    if not (codes >= 0).any():
        return []
    points = np.asarray(points)
    if points.dtype not in (np.float32, np.float64):
        points = points.astype(np.float64)
    if kernel:
        from .kernels import trimmed_group_means

        codes = np.ascontiguousarray(codes, dtype=np.int32)  # one compiled kernel per dtype
        means, counts, kept_means, kept_counts = trimmed_group_means(
            codes, np.ascontiguousarray(points), k, float(quantile), int(min_points)
        )
    else:
        means, counts, kept_means, kept_counts = trimmed_group_means_numpy(
            codes, points, k, float(quantile), int(min_points)
        )
    out: list[dict[str, Any]] = []
    for i, name in enumerate(categories):
        m = int(counts[i])
        if m < min_points:
            continue
        if m > min_points and kept_counts[i] >= min_points:
            pos_i, n_i = kept_means[i], int(kept_counts[i])
        else:
            pos_i, n_i = means[i], m
        out.append({"category": name, "position": [float(v) for v in pos_i], "n_points": n_i})
    return out


def compute_outlier_quantiles(
    codes: np.ndarray,
    n_categories: int,
    latent: np.ndarray,
    min_points: int,
    chunk_rows: int = 65536,
) -> np.ndarray:
    """Per-cell distance rank within its category in the latent space (SPEC §2.6.9).

    ``quantile_i = #{j in category : d_j <= d_i} / m`` (ties take the highest rank); cells of
    categories smaller than ``min_points`` or with a missing category get NaN. The latent
    space is read in row chunks (float64 arithmetic), so memory stays at a few per-cell
    vectors however wide it is.
    """
    n = codes.shape[0]
    out = np.full(n, np.nan, dtype=np.float32)
    k = n_categories
    present = codes >= 0
    if k == 0 or not present.any():
        return out
    counts_all = np.bincount(codes[present], minlength=k)
    valid = present & (counts_all[np.maximum(codes, 0)] >= min_points)
    if not valid.any():
        return out
    stored = is_stored_array(latent)
    chunk_rows = _stored_chunk_rows(latent, chunk_rows) if stored else chunk_rows

    def rows_of(a: int) -> np.ndarray:  # a Dask slice is computed on the active scheduler
        block = np.asarray(compute(latent[a : a + chunk_rows]), dtype=np.float64)
        if stored:  # validated here, chunk by chunk, rather than read whole at start
            _require_finite(block, "latent_space")
        return block

    sums = np.zeros((k, latent.shape[1]), dtype=np.float64)
    for a in range(0, n, chunk_rows):
        ok = valid[a : a + chunk_rows]
        rows = np.flatnonzero(ok)
        if rows.size:
            member = sp.csr_matrix(
                (np.ones(rows.size), (codes[a : a + chunk_rows][ok], rows)),
                shape=(k, ok.size),
            )
            sums += member @ rows_of(a)
    counts = np.bincount(codes[valid], minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts[:, None]
    dist_all = np.zeros(n, dtype=np.float64)
    for a in range(0, n, chunk_rows):
        block = rows_of(a)
        cc = np.maximum(codes[a : a + chunk_rows], 0)
        dist_all[a : a + block.shape[0]] = np.sqrt(((block - means[cc]) ** 2).sum(axis=1))
    idx = np.flatnonzero(valid)
    c = codes[idx]
    dist = dist_all[idx]
    order, starts, _ = _group_sorted(c, dist, k)
    sc, sd = c[order], dist[order]
    last = np.ones(sc.shape[0], dtype=bool)
    last[:-1] = (sc[1:] != sc[:-1]) | (sd[1:] != sd[:-1])
    last_idx = np.flatnonzero(last)
    run_end = last_idx[np.searchsorted(last_idx, np.arange(sc.shape[0]))]
    rank = run_end - starts[sc] + 1
    q = np.empty(sc.shape[0], dtype=np.float64)
    q[order] = rank / counts[sc]
    out[idx] = q.astype(np.float32)
    return out


def is_stored_array(x: Any) -> bool:
    """Whether ``x`` is an array left in a file or store (an h5py dataset, a zarr array) or
    a Dask array: it has a shape and a dtype and is sliced to be read, but is not in memory."""
    return (
        not isinstance(x, np.ndarray)
        and not sp.issparse(x)
        and hasattr(x, "shape")
        and hasattr(x, "dtype")
        and hasattr(x, "__getitem__")
        and type(x).__module__.split(".")[0] in ("h5py", "zarr", "dask")
    )


def _stored_chunk_rows(x: Any, rows: int) -> int:
    """Rows per read of a stored array: whole storage chunks, at least ``rows``."""
    chunks = getattr(x, "chunks", None)
    first = chunks[0] if chunks else None
    if isinstance(first, tuple):  # Dask: the row chunks' sizes
        first = max(first) if first else None
    if first and rows % int(first):
        return max(int(first), rows - rows % int(first))
    return rows


def check_latent_shape(latent: Any, n: int) -> Any:
    """Validate the shape and dtype of a latent space left on disk (its values are checked
    when read, :func:`compute_outlier_quantiles`)."""
    shape = tuple(latent.shape)
    if len(shape) != 2 or shape[0] != n or shape[1] == 0:
        raise ValueError(
            f"latent_space must have shape (n_cells={n}, k>=1); got {shape}. "
            "Pass e.g. adata.obsm['X_pca']."
        )
    if not (np.issubdtype(latent.dtype, np.number) or latent.dtype == bool):
        raise ValueError(f"latent_space must be numeric; got dtype {latent.dtype}.")
    return latent


def as_latent(latent: Any, n: int) -> np.ndarray:
    """Validate a latent space and return it as a float ``(n, k)`` array, without copying
    float32/float64 input (outlier distances are computed in float64 chunks anyway)."""
    x = latent.toarray() if sp.issparse(latent) else np.asarray(latent)
    if x.ndim == 1:
        x = x.reshape(-1, 1)
    if x.ndim != 2 or x.shape[0] != n or x.shape[1] == 0:
        raise ValueError(
            f"latent_space must have shape (n_cells={n}, k>=1); got {x.shape}. "
            "Pass e.g. adata.obsm['X_pca']."
        )
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    _require_finite(x, "latent_space")
    return x


# --------------------------------------------------------------------------- connectivity
@dataclass(frozen=True)
class Edges:
    """Undirected edges, each once with src < dst, sorted by (src, dst) (SPEC §2.8)."""

    src: np.ndarray
    dst: np.ndarray
    weights: np.ndarray  # float64
    max_neighbors: int
    index_dtype: str  # "uint16" | "uint32"

    @property
    def n_edges(self) -> int:
        return int(self.src.shape[0])

    @property
    def index_bytes(self) -> int:
        return 2 if self.index_dtype == "uint16" else 4


def edge_index_dtype(n: int) -> str:
    """Smallest index dtype that fits ``n`` cells."""
    if n <= 65_536:
        return "uint16"
    if n <= 4_294_967_296:
        return "uint32"
    raise ValueError(f"{n} cells do not fit 32-bit edge indices")


def edge_working_set(n_edges: int, n: int, index_dtype: str) -> int:
    """Bytes the Cellucid web app needs for a graph; above EDGE_BUDGET it rejects it."""
    return (48 if index_dtype == "uint16" else 44) * n_edges + 4 * n


def edges_lower_bound(values: Iterable[np.ndarray], n: int) -> int | None:
    """A lower bound on the undirected edges of an ``(n, n)`` graph that proves it exceeds
    the browser budget (SPEC §2.8), from its stored values alone, or ``None``.

    Each undirected edge comes from at most two stored entries and at most ``n`` entries are
    on the diagonal, so ``E >= (nonzero entries - n) / 2``. ``values`` yields the stored
    values in chunks; reading stops as soon as the bound is over the budget.
    """
    dtype = edge_index_dtype(n)
    nonzero = 0
    for chunk in values:
        nonzero += int(np.count_nonzero(chunk))
        bound = max(0, (nonzero - n) // 2)
        if edge_working_set(bound, n, dtype) > EDGE_BUDGET:
            return bound
    return None


def build_edges(matrix: Any, n: int) -> Edges:
    """Turn an ``(n, n)`` connectivity matrix into the edge list of SPEC §2.8."""
    if sp.issparse(matrix):
        shape = matrix.shape
        dtype = matrix.dtype
    else:
        matrix = np.asarray(matrix)
        shape, dtype = matrix.shape, matrix.dtype
    if len(shape) != 2 or shape[0] != n or shape[1] != n:
        raise ValueError(
            f"connectivities must be an (n_cells, n_cells) = ({n}, {n}) matrix; got {shape}. "
            "Pass adata.obsp['connectivities']."
        )
    if np.dtype(dtype).kind != "b" and not np.issubdtype(dtype, np.number):
        raise ValueError(f"connectivities must be numeric or boolean; got dtype {dtype}")
    c = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    c.sum_duplicates()
    if c.data.size and not np.isfinite(c.data).all():
        raise ValueError("connectivities contain NaN or inf weights; fix or drop them.")
    if c.data.size and (c.data < 0).any():
        raise ValueError("connectivities contain negative weights; edge weights must be >= 0.")
    c.setdiag(0)
    c.eliminate_zeros()
    s = c.maximum(c.T.tocsr())
    upper = sp.triu(s, k=1, format="csr")
    upper.eliminate_zeros()
    upper.sort_indices()
    counts = np.diff(upper.indptr)
    index_dtype = edge_index_dtype(n)
    src = np.repeat(np.arange(n, dtype=np.int64), counts)
    dst = upper.indices.astype(np.int64)
    weights = upper.data.astype(np.float64)
    if src.size:
        degree = np.bincount(src, minlength=n) + np.bincount(dst, minlength=n)
        max_neighbors = int(degree.max())
    else:
        max_neighbors = 0
    np_dtype = np.uint16 if index_dtype == "uint16" else np.uint32
    return Edges(src.astype(np_dtype), dst.astype(np_dtype), weights, max_neighbors, index_dtype)


# --------------------------------------------------------------------------- vector fields
_EXPLICIT_VECTOR_KEY = re.compile(r"^(.+)_([123])d$")


def parse_vector_fields(
    fields: Any, n: int, available_dims: list[int]
) -> dict[tuple[str, int], np.ndarray]:
    """Resolve vector-field keys into ``{(field_id, dim): float64 (n, dim)}`` (SPEC §2.9)."""
    if not isinstance(fields, dict):
        raise TypeError(
            f"vector_fields must be a dict of name -> (n_cells, dim) array; got {type(fields).__name__}"
        )
    explicit: dict[tuple[str, int], tuple[str, Any]] = {}
    implicit: dict[tuple[str, int], tuple[str, Any]] = {}
    for key, value in fields.items():
        if value is None:
            continue
        key = str(key)
        m = _EXPLICIT_VECTOR_KEY.match(key)
        if m:
            explicit[(m.group(1), int(m.group(2)))] = (key, value)
            continue
        shape = value.shape if hasattr(value, "shape") else np.asarray(value).shape
        if len(shape) == 1:
            dim = 1
        elif len(shape) == 2 and 1 <= shape[1] <= 3:
            dim = int(shape[1])
        else:
            raise ValueError(
                f"vector field {key!r} has shape {tuple(shape)}; expected (n_cells, 1|2|3). "
                "Name it '<field>_<d>d' or pass one array per dimension."
            )
        implicit[(key, dim)] = (key, value)
    chosen = dict(implicit)
    chosen.update(explicit)
    out: dict[tuple[str, int], np.ndarray] = {}
    for (field_id, dim), (key, value) in sorted(chosen.items()):
        if not field_id or safe_name(field_id) != field_id:
            raise ValueError(
                f"vector field id {field_id!r} (from key {key!r}) is not a safe file name; "
                f"rename it to {safe_name(field_id)!r}."
            )
        if dim not in available_dims:
            warnings.warn(
                f"vector field {key!r} is {dim}D but no {dim}D embedding is exported; skipped.",
                stacklevel=3,
            )
            continue
        arr = _as_2d_float64(value, dim, f"vector field {key!r}", allow_1d=True)
        if arr.shape[0] != n:
            raise ValueError(f"vector field {key!r} has {arr.shape[0]} rows; expected n_cells={n}.")
        _require_finite(arr, f"vector field {key!r}")
        out[(field_id, dim)] = arr
    return out
