"""Export benchmark: our ``prepare`` against upstream ``cellucid==0.0.9``, side by side.

One command::

    python benchmarks/run.py                 # 100,000 cells x 20,000 genes, 10% non-zero
    python benchmarks/run.py --quick         # 20,000 x 2,000, a fast check
    python benchmarks/run.py --cells N --genes G --density D [--configs gzip6,none]

The input AnnData (CSR float32 counts, a 2D UMAP, a 50-dim PCA and four obs columns) is
generated once, deterministically, and written to an ``.h5ad`` in a temp dir, so both tools
load identical input. For every configuration (gzip level 6, uncompressed) each tool runs in
its own fresh subprocess (``benchmarks/child.py``): ours with this repository's ``python/``
on the path, upstream with the upstream virtualenv's python (``tests/upstream.py`` finds it;
``make setup`` creates ``.venv-upstream``). Only the export call is timed. Export folders are
deleted right after they are measured (the uncompressed one is ~8 GB at full size).

Targets (printed as PASS/FAIL): ours >= 5x faster with gzip and >= 3x faster uncompressed,
output no larger than upstream's, and ours' peak RSS during the export below the input's
in-memory size + 1 GiB. Results also go to ``benchmarks/results/<stamp>.json`` (gitignored).
Progress goes to stderr, the table to stdout; the exit status is 1 when a target fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import write_results  # benchmarks/_common.py (this script's folder)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))
from upstream import (  # noqa: E402  (tests/upstream.py: shared upstream-venv lookup)
    UpstreamNotFoundError,
    our_python,
    upstream_env,
    upstream_python,
)

GIB = 1024**3
MB = 1e6
CONFIGS = {"gzip6": 6, "none": 0}
SPEED_TARGET = {"gzip6": 5.0, "none": 3.0}
MEMORY_SLACK = 1 * GIB
FULL = (100_000, 20_000)
QUICK = (20_000, 2_000)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- input
def make_h5ad(path: Path, n_cells: int, n_genes: int, density: float, seed: int = 0) -> None:
    """Write a deterministic AnnData with CSR float32 counts to ``path``.

    Rows are generated in chunks, so peak memory is about the final matrix (data + indices).
    """
    import anndata
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    n_types = 12
    cell_type = rng.integers(0, n_types, size=n_cells)
    gene_rate = rng.gamma(0.8, 1.5, size=n_genes).astype(np.float32)

    indptr = np.zeros(n_cells + 1, dtype=np.int64)
    chunks_idx, chunks_val = [], []
    rows_per_chunk = max(1, 20_000_000 // max(n_genes, 1))
    for start in range(0, n_cells, rows_per_chunk):
        stop = min(n_cells, start + rows_per_chunk)
        mask = rng.random((stop - start, n_genes), dtype=np.float32) < density
        rows, cols = np.nonzero(mask)  # row-major: sorted by row, then column
        del mask
        counts = rng.poisson(gene_rate[cols]).astype(np.float32) + 1.0
        indptr[start + 1 : stop + 1] = np.bincount(rows, minlength=stop - start)
        chunks_idx.append(cols.astype(np.int32))
        chunks_val.append(counts)
    np.cumsum(indptr, out=indptr)
    indices = np.concatenate(chunks_idx)
    del chunks_idx
    data = np.concatenate(chunks_val)
    del chunks_val
    index_dtype = np.int32 if indptr[-1] < 2**31 else np.int64
    X = sp.csr_matrix(
        (data, indices, indptr.astype(index_dtype)), shape=(n_cells, n_genes), copy=False
    )

    centers = rng.uniform(-10, 10, size=(n_types, 2))
    umap = (centers[cell_type] + rng.normal(0, 1.0, size=(n_cells, 2))).astype(np.float32)
    pca_centers = rng.normal(0, 3, size=(n_types, 50))
    pca = (pca_centers[cell_type] + rng.normal(0, 1.0, size=(n_cells, 50))).astype(np.float32)
    n_counts = np.asarray(X.sum(axis=1)).ravel().astype(np.float32)
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical.from_codes(
                cell_type, categories=[f"type {i}" for i in range(n_types)]
            ),
            "batch": pd.Categorical.from_codes(
                rng.integers(0, 4, size=n_cells), categories=["b1", "b2", "b3", "b4"]
            ),
            "n_counts": n_counts,
            "pct_mito": rng.uniform(0, 15, size=n_cells).astype(np.float32),
        },
        index=pd.Index([f"cell{i}" for i in range(n_cells)]),
    )
    var = pd.DataFrame(index=pd.Index([f"G{j:05d}" for j in range(n_genes)]))
    adata = anndata.AnnData(X=X, obs=obs, var=var, obsm={"X_umap": umap, "X_pca": pca})
    adata.write_h5ad(path)


# --------------------------------------------------------------------------- runs
def run_child(
    tool: str, python: Path, h5ad: Path, out: Path, level: int, result: Path, log_file: Path
) -> dict:
    cmd = [
        str(python),
        str(HERE / "child.py"),
        "--tool",
        tool,
        "--h5ad",
        str(h5ad),
        "--out",
        str(out),
        "--compression",
        str(level),
        "--result",
        str(result),
    ]
    if tool == "ours":
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO / "python"), env.get("PYTHONPATH")) if p
        )
        cmd += ["--expect-source", str(REPO / "python")]
    else:
        env = upstream_env()
    with open(log_file, "w", encoding="utf-8") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=out.parent)
    if proc.returncode != 0:
        tail = log_file.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"{tool} export failed (exit {proc.returncode}):\n{tail}")
    return json.loads(result.read_text(encoding="utf-8"))


def _dirty_bytes() -> int | None:
    """Dirty + writeback page cache (Linux), else None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            info = {line.split(":")[0]: int(line.split()[1]) for line in fh}
    except (OSError, ValueError, IndexError):
        return None
    return (info.get("Dirty", 0) + info.get("Writeback", 0)) * 1024


def settle(pause: float) -> None:
    """Let the previous run's writes and deletions reach the disk before timing the next."""
    os.sync()
    deadline = time.monotonic() + 120
    while (dirty := _dirty_bytes()) is not None and dirty > 64 * 2**20:
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
        os.sync()
    time.sleep(pause)  # ext4 'discard' and journal commits of deleted outputs


def disk_ceiling(work: Path, n_files: int, total_bytes: int) -> dict:
    """Time plain sequential writes of the same bytes in the same number of files.

    An uncompressed export can be no faster than the disk takes to absorb its bytes; this is
    that floor on this machine, measured right after the exports (and after a settle).
    """
    out = work / "disk-ceiling"
    out.mkdir()
    size = max(1, total_bytes // max(n_files, 1))
    buf = np.ones(size // 4 + 1, dtype=np.float32).tobytes()[:size]
    t0 = time.perf_counter()
    for i in range(n_files):
        with open(out / f"{i}.bin", "wb", buffering=0) as fh:
            fh.write(buf)
    wall = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    return {"files": n_files, "bytes": size * n_files, "wall_s": wall}


def best_runs(runs: list[dict]) -> list[dict]:
    """Per (config, tool), the run with the shortest wall time, in first-seen order."""
    best: dict[tuple[str, str], dict] = {}
    for r in runs:
        key = (r["config"], r["tool"])
        if key not in best or r["wall_s"] < best[key]["wall_s"]:
            best[key] = r
    return list(best.values())


def fmt_table(rows: list[dict]) -> str:
    head = (
        "config",
        "tool",
        "wall s",
        "cpu s",
        "peak RSS MB",
        "export peak MB",
        "Δ RSS MB",
        "input MB",
        "output MB",
    )
    lines = [head]
    for r in rows:
        lines.append(
            (
                r["config"],
                r["tool"],
                f"{r['wall_s']:.2f}",
                f"{r['cpu_s']:.1f}",
                f"{r['peak_rss_bytes'] / MB:.0f}",
                f"{r['export_peak_rss_bytes'] / MB:.0f}",
                f"{r['export_delta_rss_bytes'] / MB:.0f}",
                f"{r['input_bytes']['total'] / MB:.0f}",
                f"{r['output_bytes'] / MB:.1f}",
            )
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    out = []
    for i, line in enumerate(lines):
        cells = [
            str(c).ljust(w) if j < 2 else str(c).rjust(w)
            for j, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells))
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def verdicts(rows: list[dict]) -> list[dict]:
    """Ratios and PASS/FAIL per configuration."""
    checks = []
    for config in dict.fromkeys(r["config"] for r in rows):
        by_tool = {r["tool"]: r for r in rows if r["config"] == config}
        ours, up = by_tool.get("ours"), by_tool.get("upstream")
        if ours and up:
            speed = up["wall_s"] / ours["wall_s"]
            size = ours["output_bytes"] / up["output_bytes"]
            checks.append(
                {
                    "config": config,
                    "check": f"speed: upstream/ours >= {SPEED_TARGET[config]:g}x",
                    "value": f"{speed:.2f}x",
                    "pass": speed >= SPEED_TARGET[config],
                }
            )
            checks.append(
                {
                    "config": config,
                    "check": "size: ours/upstream <= 1",
                    "value": f"{size:.4f}",
                    "pass": size <= 1.0,
                }
            )
        if ours:
            limit = ours["input_bytes"]["total"] + MEMORY_SLACK
            checks.append(
                {
                    "config": config,
                    "check": "memory: ours export peak RSS < input + 1 GiB",
                    "value": f"{ours['export_peak_rss_bytes'] / MB:.0f} MB < {limit / MB:.0f} MB",
                    "pass": ours["export_peak_rss_bytes"] < limit,
                }
            )
    return checks


def main() -> int:
    ap = argparse.ArgumentParser(
        description="Benchmark our export against upstream cellucid 0.0.9.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--cells", type=int, default=None, help=f"cells (default {FULL[0]:,})")
    ap.add_argument("--genes", type=int, default=None, help=f"genes (default {FULL[1]:,})")
    ap.add_argument("--density", type=float, default=0.1, help="fraction of non-zero entries")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK[0]:,} cells x {QUICK[1]:,} genes")
    ap.add_argument("--configs", default="gzip6,none", help="comma list of: gzip6, none")
    ap.add_argument("--tools", default="upstream,ours", help="comma list of: upstream, ours")
    ap.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the h5ad and exports go (default: a new temp dir; needs ~output size free)",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="runs per tool and config; the table shows the fastest (default: 3 with --quick, else 1)",
    )
    ap.add_argument(
        "--settle",
        type=float,
        default=3.0,
        help="seconds to wait after flushing the disk before each run",
    )
    ap.add_argument("--keep", action="store_true", help="keep the work dir (h5ad and logs)")
    args = ap.parse_args()

    default = QUICK if args.quick else FULL
    n_cells = args.cells or default[0]
    n_genes = args.genes or default[1]
    repeat = args.repeat or (3 if args.quick else 1)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [c for c in configs if c not in CONFIGS] + [
        t for t in tools if t not in ("ours", "upstream")
    ]
    if unknown:
        ap.error(f"unknown config/tool: {unknown}")

    pythons = {"ours": our_python()}
    if "upstream" in tools:
        try:
            pythons["upstream"] = upstream_python()
        except UpstreamNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="cellucid-bench-", dir=args.workdir))
    log(f"work dir {work} (free: {shutil.disk_usage(work).free / GIB:.1f} GiB)")
    runs_done: list[dict] = []
    ceiling: dict | None = None
    try:
        h5ad = work / "input.h5ad"
        t0 = time.perf_counter()
        log(f"generating {n_cells:,} cells x {n_genes:,} genes, density {args.density:g} ...")
        make_h5ad(h5ad, n_cells, n_genes, args.density)
        log(
            f"wrote {h5ad.name} ({h5ad.stat().st_size / MB:.0f} MB) in {time.perf_counter() - t0:.0f} s"
        )
        runs = [(r, c, t) for r in range(repeat) for c in configs for t in tools]
        for i, (rep, config, tool) in enumerate(runs, 1):
            out = work / f"out-{config}-{tool}"
            tag = f"[{i}/{len(runs)}] {config}: {tool}" + (
                f" (run {rep + 1})" if repeat > 1 else ""
            )
            settle(args.settle)
            log(f"{tag} ({pythons[tool]}) ...")
            result = run_child(
                tool,
                pythons[tool],
                h5ad,
                out,
                CONFIGS[config],
                work / f"result-{config}-{tool}-{rep}.json",
                work / f"log-{config}-{tool}-{rep}.txt",
            )
            result.update(config=config, repeat=rep)
            runs_done.append(result)
            log(
                f"{tag} done: {result['wall_s']:.1f} s, "
                f"{result['output_bytes'] / MB:.0f} MB in {result['output_files']:,} files, "
                f"export peak RSS {result['export_peak_rss_bytes'] / MB:.0f} MB"
            )
            shutil.rmtree(out, ignore_errors=True)
        plain = [r for r in runs_done if r["config"] == "none" and r["tool"] == "ours"]
        if plain:
            settle(args.settle)
            log("measuring the disk ceiling: plain writes of the uncompressed export's bytes ...")
            ceiling = disk_ceiling(work, plain[0]["output_files"], plain[0]["output_bytes"])
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    rows = best_runs(runs_done)
    checks = verdicts(rows)
    print(
        f"\ncellucid export benchmark: {n_cells:,} cells x {n_genes:,} genes, density "
        f"{args.density:g} (CSR float32), {os.cpu_count()} CPUs, {platform.python_version()}"
        + (f"; best of {repeat} runs" if repeat > 1 else "")
    )
    print(fmt_table(rows))
    print()
    for c in checks:
        print(f"{'PASS' if c['pass'] else 'FAIL'}  {c['config']:<6} {c['check']:<46} {c['value']}")
    if ceiling is not None:
        ours_none = next(r for r in rows if r["config"] == "none" and r["tool"] == "ours")
        print(
            f"\ndisk ceiling: plain writes of {ceiling['bytes'] / MB:,.0f} MB in "
            f"{ceiling['files']:,} files take {ceiling['wall_s']:.2f} s "
            f"({ceiling['bytes'] / MB / ceiling['wall_s']:,.0f} MB/s); the uncompressed export "
            f"took {ours_none['wall_s']:.2f} s = {ours_none['wall_s'] / ceiling['wall_s']:.2f}x that floor"
        )

    payload = {
        "cells": n_cells,
        "genes": n_genes,
        "density": args.density,
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        },
        "repeat": repeat,
        "best": rows,
        "runs": runs_done,
        "checks": checks,
        "disk_ceiling": ceiling,
    }
    dest = write_results(f"{n_cells}x{n_genes}", payload)
    log(f"results written to {dest}")
    return 0 if all(c["pass"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
