"""Export benchmark: our ``prepare`` against upstream ``cellucid==0.0.9``, side by side.

One command::

    python benchmarks/run.py                 # 100,000 cells x 20,000 genes, 10% non-zero
    python benchmarks/run.py --quick         # 20,000 x 2,000, a fast check
    python benchmarks/run.py --cells N --genes G --density D [--configs gzip6,none]

The input AnnData (CSR float32 counts, a 2D UMAP, a 50-dim PCA and four obs columns) is
generated once, deterministically, and written to an ``.h5ad`` in a temp dir, so both tools
load identical input; a second input holds the same kind of matrix log-normalised
(``log1p(count / total * 1e4)``, 5% non-zero), the usual input of a real export. For every
configuration (gzip level 6 and uncompressed on counts, gzip level 6 on the log-normalised
matrix) each tool runs in
its own fresh subprocess (``benchmarks/child.py``): ours with this repository's ``python/``
on the path, upstream with the upstream virtualenv's python (``tests/upstream.py`` finds it;
``make setup`` creates ``.venv-upstream``). Only the export call is timed.

Export folders are kept until the end when the disk has room (else deleted right after they
are measured; the uncompressed one is ~8 GB at full size). Deleting 20,000 files just before
the next timed run makes that run slower on some file systems: ext4 without a journal (this
VM's root) will not reuse an inode freed in the last minutes, and every file creation then
scans past all of them, ~0.4 ms per file, as much as writing 8 GB. A probe times file
creation in the work dir before the first run; the 1-minute load average is recorded with
every run, since other processes on the machine skew the timings.

Targets (printed as PASS/FAIL): ours >= 5x faster with gzip and >= 3x faster uncompressed,
output no larger than upstream's, and ours' peak RSS during the export below the input's
in-memory size + 1 GiB. Results also go to ``benchmarks/results/<stamp>.json`` (gitignored).
Progress goes to stderr, the table to stdout; the exit status is 1 when a target fails.
With ``--quick`` every target is still printed, but none sets the exit status: they are set
for the full size, and a quick run (``make bench-quick`` in CI) only has to work.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from _common import (  # benchmarks/_common.py (this script's folder)
    QUICK_NOTE,
    exit_status,
    write_results,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))
from upstream import (  # noqa: E402  (tests/upstream.py: shared upstream-venv lookup)
    UpstreamNotFoundError,
    our_python,
    upstream_env,
    upstream_python,
)

sys.path.insert(0, str(REPO / "python"))
from cellucid.export.binary import aligned_empty, write_file  # noqa: E402
from cellucid.export.prepare import MIN_WRITER_THREADS  # noqa: E402

GIB = 1024**3
MB = 1e6
CONFIGS = {"gzip6": 6, "none": 0, "gzip6-lognorm": 6}
SPEED_TARGET = {"gzip6": 5.0, "none": 3.0, "gzip6-lognorm": 5.0}
#: the input each configuration exports: raw counts, or log-normalised values (the usual
#: input of a real export: log1p(counts / total * 1e4), 5% non-zero)
DATA = {"gzip6": "counts", "none": "counts", "gzip6-lognorm": "lognorm"}
LOGNORM_DENSITY = 0.05
MEMORY_SLACK = 1 * GIB
FULL = (100_000, 20_000)
QUICK = (20_000, 2_000)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- input
def make_h5ad(
    path: Path, n_cells: int, n_genes: int, density: float, seed: int = 0, kind: str = "counts"
) -> None:
    """Write a deterministic AnnData with CSR float32 counts (``kind="counts"``) or their
    log-normalised values (``"lognorm"``: ``log1p(count / cell total * 1e4)``) to ``path``.

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
        if kind == "lognorm":
            totals = np.bincount(rows, weights=counts, minlength=stop - start)
            counts = np.log1p(counts / totals[rows] * 1e4).astype(np.float32)
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


def _write_serial(folder: Path, n_files: int, buf: bytes) -> None:
    for i in range(n_files):
        with open(folder / f"{i}.bin", "wb", buffering=0) as fh:
            fh.write(buf)


def _write_parallel(folder: Path, n_files: int, buf: bytes) -> None:
    data = aligned_empty(len(buf), np.uint8)
    data[:] = np.frombuffer(buf, dtype=np.uint8)
    per_task = 32

    def write_some(start: int) -> None:
        for i in range(start, min(start + per_task, n_files)):
            write_file(folder / f"{i}.bin", data)

    with ThreadPoolExecutor(max_workers=MIN_WRITER_THREADS) as pool:
        for fut in [pool.submit(write_some, i) for i in range(0, n_files, per_task)]:
            fut.result()


FLOORS = {
    "serial": ("one thread, open() + write() per file", _write_serial),
    "parallel": (
        f"{MIN_WRITER_THREADS} threads, os.open + O_DIRECT where available, like ours",
        _write_parallel,
    ),
}


def disk_ceiling(work: Path, n_files: int, total_bytes: int, pause: float) -> dict:
    """Time plain writes of the same bytes in the same number of files, two ways.

    An uncompressed export can be no faster than the disk takes to absorb its bytes in that
    many files; these are that floor on this machine, measured after the exports. Both
    folders are kept until both are measured (see the module docstring on deletions).
    """
    size = max(1, total_bytes // max(n_files, 1))
    buf = np.ones(size // 4 + 1, dtype=np.float32).tobytes()[:size]
    result: dict = {"files": n_files, "bytes": size * n_files}
    folders = []
    try:
        for name, (how, write) in FLOORS.items():
            settle(pause)
            log(f"disk floor, {name}: {how} ...")
            folder = work / f"disk-floor-{name}"
            folder.mkdir()
            folders.append(folder)
            t0 = time.perf_counter()
            write(folder, n_files, buf)
            result[name] = {"how": how, "wall_s": time.perf_counter() - t0, "load": load()}
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
    return result


def probe_create(work: Path, n_files: int = 500) -> float:
    """Seconds per empty file created in ``work`` (kept until the end, see the docstring)."""
    folder = work / "create-probe"
    folder.mkdir()
    t0 = time.perf_counter()
    for i in range(n_files):
        with open(folder / str(i), "wb"):
            pass
    return (time.perf_counter() - t0) / n_files


def load() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


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
        "load",
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
                _fmt_load(r.get("load_before"), r.get("load_after")),
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


def _fmt_load(before: float | None, after: float | None) -> str:
    """1-minute load average before -> after a run."""
    if before is None or after is None:
        return "-"
    return f"{before:.1f}->{after:.1f}"


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
                    "target": True,
                }
            )
            checks.append(
                {
                    "config": config,
                    "check": "size: ours/upstream <= 1",
                    "value": f"{size:.4f}",
                    "pass": size <= 1.0,
                    "target": True,
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
                    "target": True,
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
    ap.add_argument(
        "--configs",
        default="gzip6,none,gzip6-lognorm",
        help="comma list of: gzip6, none (raw counts), gzip6-lognorm (log-normalised, "
        f"{LOGNORM_DENSITY * 100:.0f}%% non-zero)",
    )
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
        default=None,
        help="seconds to wait after flushing the disk before each run (default: 1 with --quick, "
        "else 3)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the work dir (h5ad and logs)")
    ap.add_argument(
        "--delete-outputs",
        action="store_true",
        help="delete each export right after it is measured, as before (less disk; slows the "
        "next run's file creation on ext4 without a journal, see the module docstring)",
    )
    args = ap.parse_args()

    default = QUICK if args.quick else FULL
    n_cells = args.cells or default[0]
    n_genes = args.genes or default[1]
    repeat = args.repeat or (3 if args.quick else 1)
    if args.settle is None:
        args.settle = 1.0 if args.quick else 3.0
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
    runs = [(r, c, t) for r in range(repeat) for c in configs for t in tools]
    raw = n_cells * n_genes * 4
    needed = sum(raw if CONFIGS[c] == 0 else raw // 10 for _, c, _ in runs) + 2 * raw
    keep_outputs = not args.delete_outputs and shutil.disk_usage(work).free > needed * 1.1 + GIB
    if not keep_outputs:
        log("deleting each export after it is measured (see the module docstring on deletions)")
    create_s: float | None = None
    try:
        inputs: dict[str, Path] = {}
        for kind in dict.fromkeys(DATA[c] for c in configs):
            h5ad = inputs[kind] = work / f"input-{kind}.h5ad"
            density = LOGNORM_DENSITY if kind == "lognorm" else args.density
            t0 = time.perf_counter()
            log(
                f"generating {kind}: {n_cells:,} cells x {n_genes:,} genes, density {density:g} ..."
            )
            make_h5ad(h5ad, n_cells, n_genes, density, kind=kind)
            log(
                f"wrote {h5ad.name} ({h5ad.stat().st_size / MB:.0f} MB) in "
                f"{time.perf_counter() - t0:.0f} s"
            )
        create_s = probe_create(work)
        log(f"creating a file in the work dir takes {create_s * 1e6:.0f} us")
        for i, (rep, config, tool) in enumerate(runs, 1):
            out = work / f"out-{config}-{tool}-{rep}"
            tag = f"[{i}/{len(runs)}] {config}: {tool}" + (
                f" (run {rep + 1})" if repeat > 1 else ""
            )
            settle(args.settle)
            load_before = load()
            log(f"{tag} ({pythons[tool]}), load {load_before} ...")
            result = run_child(
                tool,
                pythons[tool],
                inputs[DATA[config]],
                out,
                CONFIGS[config],
                work / f"result-{config}-{tool}-{rep}.json",
                work / f"log-{config}-{tool}-{rep}.txt",
            )
            result.update(config=config, repeat=rep, load_before=load_before, load_after=load())
            runs_done.append(result)
            log(
                f"{tag} done: {result['wall_s']:.1f} s, "
                f"{result['output_bytes'] / MB:.0f} MB in {result['output_files']:,} files, "
                f"export peak RSS {result['export_peak_rss_bytes'] / MB:.0f} MB, load {load()}"
            )
            if not keep_outputs:
                shutil.rmtree(out, ignore_errors=True)
        plain = [r for r in runs_done if r["config"] == "none" and r["tool"] == "ours"]
        if plain:
            ceiling = disk_ceiling(
                work, plain[0]["output_files"], plain[0]["output_bytes"], args.settle
            )
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    rows = best_runs(runs_done)
    checks = verdicts(rows)
    print(
        f"\ncellucid export benchmark: {n_cells:,} cells x {n_genes:,} genes, density "
        f"{args.density:g} (CSR float32 counts; *-lognorm: log-normalised, density "
        f"{LOGNORM_DENSITY:g}), {os.cpu_count()} CPUs, {platform.python_version()}"
        + (f"; best of {repeat} runs" if repeat > 1 else "")
    )
    print(fmt_table(rows))
    print()
    for c in checks:
        print(f"{'PASS' if c['pass'] else 'FAIL'}  {c['config']:<13} {c['check']:<46} {c['value']}")
    if args.quick:
        print(QUICK_NOTE)
    print(
        f"\ncreating a file in the work dir took {create_s * 1e6:.0f} us before the runs; "
        + (
            "exports were kept until the end"
            if keep_outputs
            else "each export was deleted after it was measured"
        )
    )
    if ceiling is not None:
        ours_none = next(r for r in rows if r["config"] == "none" and r["tool"] == "ours")
        print(
            f"disk floor: plain writes of {ceiling['bytes'] / MB:,.0f} MB in "
            f"{ceiling['files']:,} files; the uncompressed export took {ours_none['wall_s']:.2f} s"
        )
        for name in FLOORS:
            floor = ceiling[name]
            print(
                f"  {name:<8} {floor['wall_s']:6.2f} s ({ceiling['bytes'] / MB / floor['wall_s']:,.0f} MB/s, "
                f"load {floor['load']}): {floor['how']}; export = "
                f"{ours_none['wall_s'] / floor['wall_s']:.2f}x this floor"
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
        "create_probe_s": create_s,
        "outputs_kept": keep_outputs,
    }
    dest = write_results(f"{n_cells}x{n_genes}", payload)
    log(f"results written to {dest}")
    return exit_status(checks, args.quick)


if __name__ == "__main__":
    sys.exit(main())
