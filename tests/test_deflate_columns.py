"""The DEFLATE writer for float32 gene columns (``export.deflate_columns``) and its use by
``prepare``: exact round trips (zlib and our ``gunzip_member``), the SPEC §2.3 header,
deterministic bytes, output no larger than zlib level 6 on benchmark-like counts and
log-normalised columns, and a compressed export that validates and loads back.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import scipy.sparse as sp

from cellucid.export import binary
from cellucid.export.deflate_columns import GZIP_HEADER, gzip_float32_column

SIZES = (0, 1, 2, 3, 4, 5, 63, 64, 65, 257, 258, 259, 32768 + 5, 100_000, 1_000_000)


def _fuzz_columns(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    def sparse(values: np.ndarray, density: float) -> np.ndarray:
        x = np.zeros(n, np.float32)
        m = rng.random(n) < density
        x[m] = values[: m.sum()] if values.size >= m.sum() else rng.choice(values, m.sum())
        return x

    special = np.array([np.nan, np.inf, -np.inf, -0.0, 1e-45, 1e-40, -3.5, 1.0], np.float32)
    bits = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    low = bits.copy()
    low[rng.random(n) < 0.8] = 0
    low[rng.random(n) < 0.3] &= 0xFF  # values with leading (and trailing) zero bytes
    return {
        "zeros": np.zeros(n, np.float32),
        "ones": np.ones(n, np.float32),
        "dense normal": rng.normal(size=n).astype(np.float32),
        "random bits": bits.view(np.float32),
        "counts": sparse((rng.poisson(2, n) + 1).astype(np.float32), 0.1),
        "negative": sparse(-rng.random(n).astype(np.float32) * 100, 0.2),
        "special": sparse(special, 0.05),
        "periodic": np.where(np.arange(n) % 300 == 0, 1.0, 0.0).astype(np.float32),
        "alternating": np.where(np.arange(n) % 2 == 0, 2.0, 0.0).astype(np.float32),
        "low bytes": low.view(np.float32),
    }


@pytest.mark.parametrize("n", SIZES)
def test_round_trip_header_and_determinism_on_fuzz_columns(n: int) -> None:
    rng = np.random.default_rng(n)
    for name, x in _fuzz_columns(n, rng).items():
        raw = x.tobytes()
        for level in (1, 6, 9):
            out = gzip_float32_column(raw, level)
            assert zlib.decompress(out, wbits=31) == raw, (name, n, level)
            assert binary.gunzip_member(out) == raw, (name, n, level)
            assert out[:10] == GZIP_HEADER == bytes.fromhex("1f8b08000000000000ff")
            assert out[-4:] == (len(raw) & 0xFFFFFFFF).to_bytes(4, "little")
            assert out[-8:-4] == zlib.crc32(raw).to_bytes(4, "little")
            assert gzip_float32_column(raw, level) == out, "not deterministic"


def test_bad_input_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match=r"multiple of 4.*gzip_bytes"):
        gzip_float32_column(b"\x00" * 6)
    with pytest.raises(ValueError, match="1-9"):
        gzip_float32_column(b"\x00" * 8, level=0)


def _benchmark_columns(kind: str, n_cells: int, n_genes: int) -> list[bytes]:
    """Columns generated like benchmarks/run.py's ``make_h5ad``: counts (10% non-zero) or
    ``log1p(count / cell total * 1e4)`` (5%)."""
    rng = np.random.default_rng(0)
    density = 0.1 if kind == "counts" else 0.05
    rate = rng.gamma(0.8, 1.5, size=n_genes).astype(np.float32)
    rows, cols = np.nonzero(rng.random((n_cells, n_genes), dtype=np.float32) < density)
    values = rng.poisson(rate[cols]).astype(np.float32) + 1.0
    if kind == "lognorm":
        totals = np.bincount(rows, weights=values, minlength=n_cells)
        values = np.log1p(values / totals[rows] * 1e4).astype(np.float32)
    x = sp.csc_matrix((values, (rows, cols)), shape=(n_cells, n_genes))
    return [x[:, j].toarray().astype(np.float32).ravel().tobytes() for j in range(n_genes)]


@pytest.mark.parametrize("kind", ["counts", "lognorm"])
def test_no_larger_than_zlib_level_6(kind: str) -> None:
    columns = _benchmark_columns(kind, 100_000, 24)
    ours = sum(len(gzip_float32_column(c, 6)) for c in columns)
    zlib6 = 0
    for c in columns:
        z = zlib.compressobj(6, zlib.DEFLATED, 31)
        zlib6 += len(z.compress(c) + z.flush())
    assert ours <= zlib6, f"{kind}: {ours} bytes vs zlib level 6 {zlib6}"
    assert sum(len(gzip_float32_column(c, 9)) for c in columns) <= ours  # level still means more


def test_gzip_column_picks_the_encoder_by_zero_fraction() -> None:
    rng = np.random.default_rng(3)
    dense = rng.normal(size=10_000).astype(np.float32).tobytes()
    sparse = np.where(rng.random(10_000) < 0.1, 1.0, 0.0).astype(np.float32).tobytes()
    assert binary.gzip_column(dense, 6) == binary.gzip_bytes(dense, 6)  # libdeflate
    assert binary.gzip_column(sparse, 6) == gzip_float32_column(sparse, 6)
    assert binary.gzip_column(sparse, 6) != binary.gzip_bytes(sparse, 6)
    assert binary.encode_payload(sparse, None, True) == sparse


def test_compressed_export_validates_and_reads_back(tmp_path, monkeypatch) -> None:
    import anndata
    import pandas as pd

    import cellucid
    from cellucid.export.validate import validate_export

    rng = np.random.default_rng(11)
    n, g = 3_000, 12
    x = np.where(rng.random((n, g)) < 0.1, rng.poisson(2.0, (n, g)) + 1, 0).astype(np.float32)
    adata = anndata.AnnData(
        X=sp.csr_matrix(x),
        obs=pd.DataFrame(index=[f"c{i}" for i in range(n)]),
        var=pd.DataFrame(index=[f"G{j}" for j in range(g)]),
    )
    adata.obsm["X_umap"] = rng.normal(size=(n, 2)).astype(np.float32)
    from cellucid.export import prepare as prepare_module

    # a small export keeps libdeflate (no compile for a quick start) ...
    small = cellucid.prepare(adata, tmp_path / "small", quiet=True, compression=6)
    some = next(small.rglob("*.values.f32.gz"))
    j0 = int(some.name.split(".")[0].lstrip("G"))
    assert some.read_bytes() == binary.gzip_bytes(x[:, j0].tobytes(), 6)
    # ... a large one (here: the threshold lowered) uses the column writer
    monkeypatch.setattr(prepare_module, "COLUMN_WRITER_MIN_VALUES", 1)
    out = cellucid.prepare(adata, tmp_path / "exp", quiet=True, compression=6)
    assert validate_export(out) == []
    files = sorted((tmp_path / "exp").rglob("*.values.f32.gz"))
    assert len(files) == g
    for path in files:
        column = np.frombuffer(binary.gunzip_member(path.read_bytes()), "<f4")
        j = int(path.name.split(".")[0].lstrip("G"))
        np.testing.assert_array_equal(column, x[:, j])
        assert path.read_bytes() == gzip_float32_column(x[:, j].tobytes(), 6)  # ours wrote it
