"""Column cache benchmark: gene reads from a large backed CSR ``.h5ad``.

One command::

    python benchmarks/column_cache.py                      # 1,000,000 x 2,000, 5% non-zero
    python benchmarks/column_cache.py --quick              # 200,000 x 1,000, 32 MiB budget
    python benchmarks/column_cache.py --cells 100000       # smaller, quicker
    python benchmarks/column_cache.py --keep               # keep the .h5ad for the next run

The input (CSR float32, a 2D UMAP, two obs columns) is generated row chunk by row chunk in a
child process (a few hundred MB of memory) and written to ``--workdir`` (default: a temp
folder). Then, in this process:

1. open it with ``anndata.read_h5ad(path, backed="r")`` and wrap ``X`` in a ``BackedMatrix``;
2. build the column cache (``ColumnCache.build``), measuring the time and the peak RSS of
   the build (VmHWM, reset before the build when the kernel allows it);
3. read 50 random genes from the cache: *cold* with the cache files evicted from the page
   cache (``posix_fadvise(DONTNEED)``, so they come from disk), then *warm* (same genes again);
4. read 3 genes with the batched CSR scan and no cache (one pass over the rows each).

The source file is evicted from the page cache before it is opened, so the open and the build
read it from disk. Results go to stdout as a table and to ``--json`` when given.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import create_csr_group  # benchmarks/_common.py (this script's folder)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))

MB = 1e6
FULL = (1_000_000, 2_000)
QUICK = (200_000, 1_000)


def log(msg: str) -> None:
    print(f"[column-cache {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def status_kb(field: str) -> int:
    """A ``/proc/self/status`` field in kB (0 where there is no procfs)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    if field == "VmHWM":
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return 0


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def evict(path: Path) -> None:
    """Drop a file's (or a folder's files') pages from the page cache, after syncing them."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for p in files:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------- generation
def generate(path: Path, n_cells: int, n_genes: int, density: float, seed: int) -> None:
    """Write a backed-readable CSR ``.h5ad`` without ever holding the matrix in memory."""
    import anndata as ad
    import h5py
    import pandas as pd

    rng = np.random.default_rng(seed)
    obs = pd.DataFrame(
        {
            "cluster": pd.Categorical(rng.integers(0, 20, n_cells).astype(str)),
            "score": rng.random(n_cells, dtype=np.float32),
        },
        index=pd.RangeIndex(n_cells).astype(str),
    )
    var = pd.DataFrame(index=[f"gene{j}" for j in range(n_genes)])
    umap = rng.normal(size=(n_cells, 2)).astype(np.float32)
    ad.AnnData(obs=obs, var=var, obsm={"X_umap": umap}).write_h5ad(path)
    del obs, umap

    rows_per_chunk = max(1, 40_000_000 // n_genes)  # 160 MB of uniforms per chunk
    chunk = 1 << 20
    with h5py.File(path, "a") as f:
        indptr, indices, data = create_csr_group(f, n_cells, n_genes, chunk)
        nnz = 0
        for r0 in range(0, n_cells, rows_per_chunk):
            r1 = min(n_cells, r0 + rows_per_chunk)
            mask = rng.random((r1 - r0, n_genes), dtype=np.float32) < density
            counts = mask.sum(axis=1)
            _, cols = np.nonzero(mask)
            del mask
            vals = (rng.exponential(1.5, cols.size) + 0.1).astype(np.float32)
            indices.resize((nnz + cols.size,))
            data.resize((nnz + cols.size,))
            indices[nnz:] = cols.astype(np.int32)
            data[nnz:] = vals
            indptr[r0 + 1 : r1 + 1] = nnz + np.cumsum(counts)
            nnz += cols.size
            if (r0 // rows_per_chunk) % 10 == 0:
                log(f"generated {r1:,}/{n_cells:,} rows, nnz {nnz:,}")


# ---------------------------------------------------------------------------- measuring
def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def measure(args: argparse.Namespace, path: Path, cache_dir: Path) -> dict[str, float | int | str]:
    import anndata as ad

    from cellucid.storage.backed import BackedMatrix
    from cellucid.storage.column_cache import ColumnCache

    res: dict[str, float | int | str] = {"source_mb": path.stat().st_size / MB}
    rss0 = status_kb("VmRSS")
    evict(path)

    t = time.perf_counter()
    adata = ad.read_h5ad(path, backed="r")
    bm = BackedMatrix.from_anndata(adata, attach_cache=False)
    assert bm is not None
    res["open_s"] = time.perf_counter() - t
    res["rss_after_open_mb"] = status_kb("VmRSS") / 1e3
    res["rss_open_delta_mb"] = (status_kb("VmRSS") - rss0) / 1e3
    res["nnz"] = bm.nnz
    log(f"opened in {res['open_s']:.2f} s: {bm}")

    cache = ColumnCache.for_source(bm, path, "X", cache_dir=cache_dir, memory_budget=args.budget)
    if cache.ready:
        shutil.rmtree(cache.path)  # measure a fresh build
        cache = ColumnCache.for_source(
            bm, path, "X", cache_dir=cache_dir, memory_budget=args.budget
        )
    base = status_kb("VmRSS")
    res["peak_reset"] = "yes" if reset_peak_rss() else "no (peak includes earlier phases)"
    t = time.perf_counter()
    cache.build()
    res["build_s"] = time.perf_counter() - t
    res["build_peak_rss_mb"] = status_kb("VmHWM") / 1e3
    res["build_peak_over_open_mb"] = (status_kb("VmHWM") - base) / 1e3
    res["cache_mb"] = folder_bytes(cache.path) / MB
    log(f"built in {res['build_s']:.1f} s, cache {res['cache_mb']:.0f} MB")

    t = time.perf_counter()
    again = ColumnCache.for_source(bm, path, "X", cache_dir=cache_dir)
    res["reopen_ready_ms"] = (time.perf_counter() - t) * 1e3
    assert again.ready

    bm.attach_cache(cache)
    rng = np.random.default_rng(1)
    genes = rng.choice(bm.n_genes, size=min(50, bm.n_genes), replace=False)
    evict(cache.path)
    cold, warm = [], []
    for j in genes:
        t = time.perf_counter()
        bm.column(int(j))
        cold.append((time.perf_counter() - t) * 1e3)
    for j in genes:
        t = time.perf_counter()
        bm.column(int(j))
        warm.append((time.perf_counter() - t) * 1e3)
    res |= {
        "cold_median_ms": pct(cold, 50),
        "cold_p95_ms": pct(cold, 95),
        "warm_median_ms": pct(warm, 50),
        "warm_p95_ms": pct(warm, 95),
        "rss_after_reads_mb": status_kb("VmRSS") / 1e3,
    }

    t = time.perf_counter()
    n = 0
    for block in bm.blocks(np.arange(bm.n_genes)):
        buf = np.empty(bm.n_cells, np.float32)
        for i in range(len(block.positions)):
            block.column(i, buf)
            n += 1
    res["all_genes_from_cache_s"] = time.perf_counter() - t

    bm.attach_cache(None)
    scans = []
    for j in genes[:3]:
        t = time.perf_counter()
        col = bm.column(int(j))
        scans.append((time.perf_counter() - t) * 1e3)
        assert np.array_equal(col, cache.column(int(j)))
    res["scan_ms"] = ", ".join(f"{s:.0f}" for s in scans)
    res["scan_median_ms"] = pct(scans, 50)
    res["final_peak_rss_mb"] = status_kb("VmHWM") / 1e3
    cache.close()
    adata.file.close()
    return res


def table(res: dict[str, float | int | str], args: argparse.Namespace) -> str:
    rows = [
        ("matrix", f"{args.cells:,} x {args.genes:,} CSR float32, nnz {int(res['nnz']):,}"),
        ("source .h5ad", f"{res['source_mb']:.0f} MB"),
        ("open (read_h5ad backed + BackedMatrix)", f"{res['open_s'] * 1e3:.0f} ms"),
        (
            "RSS after open (delta)",
            f"{res['rss_after_open_mb']:.0f} MB ({res['rss_open_delta_mb']:+.0f} MB)",
        ),
        ("cache build", f"{res['build_s']:.1f} s (memory_budget {args.budget / MB:.0f} MB)"),
        (
            "peak RSS during build",
            f"{res['build_peak_rss_mb']:.0f} MB (+{res['build_peak_over_open_mb']:.0f} MB over open; reset: {res['peak_reset']})",
        ),
        ("cache on disk", f"{res['cache_mb']:.0f} MB"),
        ("second for_source -> ready", f"{res['reopen_ready_ms']:.1f} ms"),
        (
            "gene from cache, cold: median / p95",
            f"{res['cold_median_ms']:.1f} / {res['cold_p95_ms']:.1f} ms",
        ),
        (
            "gene from cache, warm: median / p95",
            f"{res['warm_median_ms']:.1f} / {res['warm_p95_ms']:.1f} ms",
        ),
        ("RSS after 100 gene reads", f"{res['rss_after_reads_mb']:.0f} MB"),
        ("all genes via blocks() from cache", f"{res['all_genes_from_cache_s']:.1f} s"),
        ("gene by CSR scan, no cache (3 genes)", f"{res['scan_ms']} ms"),
        ("peak RSS of the whole run", f"{res['final_peak_rss_mb']:.0f} MB"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", type=int, default=None, help=f"cells (default {FULL[0]:,})")
    ap.add_argument("--genes", type=int, default=None, help=f"genes (default {FULL[1]:,})")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK[0]:,} cells x {QUICK[1]:,} genes")
    ap.add_argument("--density", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--budget",
        type=int,
        default=None,
        help="memory_budget in bytes (default 256 MiB; 32 MiB with --quick, so that the build "
        "still needs several passes over the rows, as at full size)",
    )
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the generated .h5ad and cache")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--generate-only", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    default = QUICK if args.quick else FULL
    args.cells = args.cells or default[0]
    args.genes = args.genes or default[1]
    args.budget = args.budget or ((32 if args.quick else 256) << 20)

    if args.generate_only is not None:
        generate(args.generate_only, args.cells, args.genes, args.density, args.seed)
        return 0

    work = args.workdir or Path(tempfile.mkdtemp(prefix="cellucid-colbench-"))
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"bench-{args.cells}x{args.genes}-{args.density}-{args.seed}.h5ad"
    if not path.exists():
        log(f"generating {path}")
        t = time.perf_counter()
        tmp = path.with_suffix(".partial.h5ad")
        cmd = [sys.executable, __file__, "--generate-only", str(tmp)]
        cmd += ["--cells", str(args.cells), "--genes", str(args.genes)]
        cmd += ["--density", str(args.density), "--seed", str(args.seed)]
        subprocess.run(cmd, check=True)
        os.replace(tmp, path)
        log(f"generated in {time.perf_counter() - t:.0f} s")
    cache_dir = work / "cache"
    try:
        res = measure(args, path, cache_dir)
    finally:
        if not args.keep:
            shutil.rmtree(cache_dir, ignore_errors=True)
            if args.workdir is None:
                shutil.rmtree(work, ignore_errors=True)
    print(table(res, args))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
