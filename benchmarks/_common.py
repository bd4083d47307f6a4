"""Small pieces the benchmark scripts share: growable CSR groups in an .h5ad, the generated
atlas ``.h5ad`` (server.py, scale.py) and results files."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def create_csr_group(h5file: Any, n_cells: int, n_genes: int, chunk: int = 1 << 20):
    """An empty anndata CSR group ``X`` whose ``indices``/``data`` grow row chunk by row
    chunk; returns the ``indptr``, ``indices`` and ``data`` datasets (``indptr[0]`` set)."""
    g = h5file.create_group("X")
    g.attrs["encoding-type"] = "csr_matrix"
    g.attrs["encoding-version"] = "0.1.0"
    g.attrs["shape"] = np.array([n_cells, n_genes])
    indptr = g.create_dataset("indptr", shape=(n_cells + 1,), dtype=np.int64)
    grow = {"shape": (0,), "maxshape": (None,), "chunks": (chunk,)}
    indices = g.create_dataset("indices", dtype=np.int32, **grow)
    data = g.create_dataset("data", dtype=np.float32, **grow)
    indptr[0] = 0
    return indptr, indices, data


N_CLUSTERS = 20


def gene_name(j: int) -> str:
    return f"Gene{j:05d}"


def write_atlas_h5ad(
    path: Path, n_cells: int, n_genes: int, density: float, seed: int, pca_dims: int = 50
) -> dict[str, Any]:
    """Write a benchmark ``.h5ad``: annotations with anndata, then X appended in row chunks.

    20 clusters of unequal size (``obs['cluster']``), a batch, ``n_counts`` and ``pct_mito``;
    ``obsm['X_umap']`` (2-D) and ``obsm['X_pca']`` (``pca_dims``); genes with varied detection
    rates. The matrix is never in memory: each chunk of rows is drawn (a Bernoulli mask with a
    per-gene detection rate, counts 1 + Poisson), appended to the CSR datasets, and dropped.
    Returns ``{"nnz", "cluster", "rng"}``: the cluster codes and the random generator, for
    callers that add more.
    """
    import anndata as ad
    import h5py
    import pandas as pd

    rng = np.random.default_rng(seed)
    sizes = rng.dirichlet(np.full(N_CLUSTERS, 2.0))
    cluster = rng.choice(N_CLUSTERS, size=n_cells, p=sizes).astype(np.int8)
    centers = rng.uniform(-12, 12, size=(N_CLUSTERS, 2)).astype(np.float32)
    umap = centers[cluster] + rng.standard_normal((n_cells, 2), dtype=np.float32)
    pca_centers = rng.normal(0, 3, size=(N_CLUSTERS, pca_dims)).astype(np.float32)
    pca = np.empty((n_cells, pca_dims), dtype=np.float32)
    for a in range(0, n_cells, 100_000):
        b = min(n_cells, a + 100_000)
        pca[a:b] = pca_centers[cluster[a:b]]
        pca[a:b] += rng.standard_normal((b - a, pca_dims), dtype=np.float32)
    obs = pd.DataFrame(
        {
            "cluster": pd.Categorical.from_codes(
                cluster, categories=[f"cluster {i:02d}" for i in range(N_CLUSTERS)]
            ),
            "batch": pd.Categorical.from_codes(
                rng.integers(0, 4, n_cells), categories=["batch A", "batch B", "batch C", "D"]
            ),
            "n_counts": np.zeros(n_cells, dtype=np.float32),  # filled in once X is written
            "pct_mito": rng.gamma(2.0, 2.5, n_cells).astype(np.float32),
        },
        index=pd.Index([f"cell{i:07d}" for i in range(n_cells)]),
    )
    var = pd.DataFrame(index=pd.Index([gene_name(j) for j in range(n_genes)]))
    ad.AnnData(obs=obs, var=var, obsm={"X_umap": umap, "X_pca": pca}).write_h5ad(path)
    del obs, umap, pca

    weight = rng.gamma(1.0, 1.0, n_genes)
    p_gene = np.minimum(density * weight / weight.mean(), 0.9).astype(np.float32)
    rate = rng.gamma(0.8, 1.5, n_genes)
    n_counts = np.zeros(n_cells, dtype=np.float64)
    rows_per_chunk = max(1, 20_000_000 // n_genes)
    with h5py.File(path, "a") as f:
        indptr, indices, data = create_csr_group(f, n_cells, n_genes)
        indptr[0] = nnz = 0
        for r0 in range(0, n_cells, rows_per_chunk):
            r1 = min(n_cells, r0 + rows_per_chunk)
            mask = rng.random((r1 - r0, n_genes), dtype=np.float32) < p_gene
            rows, cols = np.nonzero(mask)  # row-major: sorted by row, then column
            del mask
            vals = (1.0 + rng.poisson(rate[cols])).astype(np.float32)
            indices.resize((nnz + cols.size,))
            data.resize((nnz + cols.size,))
            indices[nnz:] = cols.astype(np.int32)
            data[nnz:] = vals
            indptr[r0 + 1 : r1 + 1] = nnz + np.cumsum(np.bincount(rows, minlength=r1 - r0))
            n_counts[r0:r1] = np.bincount(rows, weights=vals, minlength=r1 - r0)
            nnz += cols.size
        f["obs"]["n_counts"][:] = n_counts.astype(np.float32)
    return {"nnz": int(nnz), "cluster": cluster, "rng": rng}


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus its time stamp) to ``benchmarks/results/<stamp>-<name>.json``."""
    RESULTS.mkdir(exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    dest = RESULTS / f"{stamp}-{name}.json"
    dest.write_text(json.dumps({"created": stamp, **payload}, indent=2), encoding="utf-8")
    return dest


def add_size_arguments(ap: Any, full: tuple[int, int], quick: tuple[int, int]) -> None:
    """``--cells``, ``--genes``, ``--density``, ``--quick`` and ``--seed`` of an argparse parser
    (cells and genes default to ``None``: the caller picks ``full`` or ``quick``)."""
    ap.add_argument("--cells", type=int, default=None, help=f"cells (default {full[0]:,})")
    ap.add_argument("--genes", type=int, default=None, help=f"genes (default {full[1]:,})")
    ap.add_argument("--density", type=float, default=0.05, help="mean fraction of non-zeros")
    ap.add_argument("--quick", action="store_true", help=f"{quick[0]:,} cells x {quick[1]:,} genes")
    ap.add_argument("--seed", type=int, default=0)


QUICK_NOTE = "--quick: the targets are for the full sizes; here they do not set the exit status"


def exit_status(checks: list[dict[str, Any]], quick: bool) -> int:
    """A benchmark's exit status: 1 when one of its checks failed, else 0. With ``--quick``
    the checks marked ``"target": True`` (speed, size and memory targets, set for the full
    sizes) do not count: a quick run has to work and get every byte right, and its timings
    on a small input and a busy machine say little."""
    for check in checks:
        failed = check.get("pass") is False or check.get("verdict") == "FAIL"
        if failed and not (quick and check.get("target")):
            return 1
    return 0
