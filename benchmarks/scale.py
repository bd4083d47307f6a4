"""Scale benchmark: a 10-million-cell atlas, served, cached, exported with Dask and from S3.

One command::

    python benchmarks/scale.py            # 10,000,000 cells x 1,000 genes, 5% non-zero
    python benchmarks/scale.py --quick    # 200,000 x 300, about a minute
    python benchmarks/scale.py --data DIR --keep   # reuse / keep the generated files

What it measures (the table goes to stdout, progress to stderr, results to
``benchmarks/results/<stamp>-scale-<cells>x<genes>.json``):

1. **Input.** A backed CSR ``.h5ad`` is written row chunk by row chunk in a child process
   (20 clusters, a batch, two continuous fields, cell names, ``obsm['X_umap']``, a 20-D
   ``obsm['X_pca']`` and a 10-neighbour kNN graph in ``obsp['connectivities']``), and the
   same data as a ``.zarr`` store (X and the graph copied chunk by chunk).
2. **Server start** (``cellucid serve FILE``, a subprocess with a cold column cache), per
   format: seconds from the process start to the first healthy ``/_cellucid/health``, and
   to ``dataset_identity.json`` + ``obs_manifest.json`` + ``points_2d.bin`` (fetched one
   after the other once healthy); then the column cache build (its progress polled in
   ``/_cellucid/info``): build time and the server's peak memory; then a gene, which must
   equal the column computed from the file independently.
3. **prepare with Dask**: ``prepare(adata, out)`` on an AnnData whose ``X`` is
   ``anndata.experimental.read_elem_lazy(f["X"])`` (a Dask array), in a child process with
   Dask's threads and in one driving a ``LocalCluster(n_workers=2, threads_per_worker=1)``:
   wall time and peak memory of every process (driver and workers). The two exports must be
   identical byte for byte.
4. **Object storage**: a local S3 server (moto's server mode, on 127.0.0.1) gets the
   ``.zarr`` store and a small export (``--s3-genes`` genes); ``cellucid serve s3://…`` of
   each is compared with the same served from local disk: start to health and to points,
   per-gene latency (median of ``--sample`` genes) and the ratio S3 / local. Every gene is
   compared byte for byte with the local server's.

Targets (PASS/FAIL, set for the full size; with ``--quick`` only the correctness checks set
the exit status): health <= 1 s and identity + obs manifest + points <= 2 s after the
process start, for both formats; the Dask exports identical; the S3 genes identical.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import (
    QUICK_NOTE,
    add_size_arguments,
    exit_status,
    gene_name,
    write_atlas_h5ad,
    write_results,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))
from _server_client import Client, ServerProcess, free_port  # noqa: E402

MB = 1e6
FULL = (10_000_000, 1_000)
QUICK = (200_000, 300)
PCA_DIMS = 20
NEIGHBORS = 10
HEALTH_TARGET_S = 1.0
POINTS_TARGET_S = 2.0
GEN_VERSION = 2  # bump when the generated files change


def log(msg: str) -> None:
    print(f"[scale-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- input
def generate(h5ad: Path, store: Path, n: int, g: int, density: float, seed: int) -> dict:
    """Write the benchmark atlas (:func:`_common.write_atlas_h5ad`) plus a kNN graph into
    ``obsp`` (never whole in memory), and copy it into a ``.zarr`` store chunk by chunk."""
    import h5py

    made = write_atlas_h5ad(h5ad, n, g, density, seed, pca_dims=PCA_DIMS)
    cluster, rng = made["cluster"], made["rng"]
    members = [np.flatnonzero(cluster == c) for c in range(int(cluster.max()) + 1)]
    with h5py.File(h5ad, "a") as f:
        # NEIGHBORS random cells of the same cluster per cell (not symmetric)
        if "obsp" in f:
            del f["obsp"]
        graph = f.create_group("obsp").create_group("connectivities")
        graph.attrs["encoding-type"] = "csr_matrix"
        graph.attrs["encoding-version"] = "0.1.0"
        graph.attrs["shape"] = np.array([n, n])
        total = n * NEIGHBORS
        graph.create_dataset("indptr", data=np.arange(0, total + 1, NEIGHBORS, dtype=np.int64))
        gi = graph.create_dataset("indices", shape=(total,), dtype=np.int32, chunks=(1 << 20,))
        gd = graph.create_dataset("data", shape=(total,), dtype=np.float32, chunks=(1 << 20,))
        step = 1_000_000
        for a in range(0, n, step):
            b = min(n, a + step)
            picks = np.empty((b - a, NEIGHBORS), dtype=np.int64)
            for c, pool in enumerate(members):
                rows = np.flatnonzero(cluster[a:b] == c)
                picks[rows] = pool[rng.integers(0, pool.size, (rows.size, NEIGHBORS))]
            picks.sort(axis=1)
            gi[a * NEIGHBORS : b * NEIGHBORS] = picks.reshape(-1).astype(np.int32)
            gd[a * NEIGHBORS : b * NEIGHBORS] = rng.uniform(0.05, 1.0, picks.size).astype(
                np.float32
            )
    _copy_to_zarr(h5ad, store)
    return {"nnz": made["nnz"], "graph_nnz": int(n * NEIGHBORS)}


def _copy_to_zarr(h5ad: Path, store: Path) -> None:
    """The same AnnData as a zarr store: annotations through anndata, X and the graph
    copied array by array in slices (never whole in memory)."""
    import h5py
    import zarr
    from anndata.io import read_elem, write_elem

    shutil.rmtree(store, ignore_errors=True)
    root = zarr.open_group(str(store), mode="w", zarr_format=2)
    with h5py.File(h5ad, "r") as f:
        root.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
        for key in ("obs", "var", "obsm", "uns", "layers", "varm", "varp"):
            if key in f:
                write_elem(root, key, read_elem(f[key]))
        for sparse in ("X", "obsp/connectivities"):
            src = f[sparse]
            dst = root.require_group(sparse)
            dst.attrs.update({k: _plain(v) for k, v in src.attrs.items()})
            for name in ("indptr", "indices", "data"):
                ds = src[name]
                arr = dst.create_array(
                    name, shape=ds.shape, dtype=ds.dtype, chunks=(min(ds.shape[0], 1 << 22),)
                )
                for a in range(0, ds.shape[0], 1 << 24):
                    arr[a : a + (1 << 24)] = ds[a : a + (1 << 24)]
    zarr.consolidate_metadata(str(store))


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _stamp(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "cells": args.cells,
        "genes": args.genes,
        "density": args.density,
        "seed": args.seed,
        "version": GEN_VERSION,
    }


def generate_into(args: argparse.Namespace, data_dir: Path) -> None:
    """The ``--generate-only`` child: write the files and ``generated.json``."""
    import resource

    data_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    info = generate(
        data_dir / "atlas.h5ad",
        data_dir / "atlas.zarr",
        args.cells,
        args.genes,
        args.density,
        args.seed,
    )
    info["wall_s"] = time.perf_counter() - t0
    info["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    info["stamp"] = _stamp(args)
    info["h5ad_bytes"] = (data_dir / "atlas.h5ad").stat().st_size
    info["zarr_bytes"] = sum(p.stat().st_size for p in (data_dir / "atlas.zarr").rglob("*"))
    (data_dir / "generated.json").write_text(json.dumps(info), encoding="utf-8")


def ensure_data(args: argparse.Namespace, data_dir: Path) -> dict:
    """The generated files in ``data_dir`` (reused when made with the same parameters)."""
    info_path = data_dir / "generated.json"
    if info_path.is_file():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        if info.get("stamp") == _stamp(args):
            log(f"reusing the data in {data_dir}")
            return info
        info_path.unlink()
    cmd = [sys.executable, __file__, "--generate-only", str(data_dir)]
    cmd += ["--cells", str(args.cells), "--genes", str(args.genes)]
    cmd += ["--density", str(args.density), "--seed", str(args.seed)]
    log(f"generating {args.cells:,} cells x {args.genes:,} genes in {data_dir} ...")
    subprocess.run(cmd, check=True)
    info = json.loads(info_path.read_text(encoding="utf-8"))
    log(f"generated in {info['wall_s']:.0f} s: nnz {info['nnz']:,}")
    return info


def expected_gene(h5ad: Path, j: int) -> bytes:
    """Gene ``j``'s float32 column computed from the file with h5py alone."""
    import h5py

    with h5py.File(h5ad, "r") as f:
        x = f["X"]
        n = int(x.attrs["shape"][0])
        indptr = x["indptr"][:]
        out = np.zeros(n, dtype=np.float32)
        step = 50_000_000
        for a in range(0, int(indptr[-1]), step):
            b = min(int(indptr[-1]), a + step)
            cols = x["indices"][a:b]
            hit = np.flatnonzero(cols == j)
            if hit.size:
                rows = np.searchsorted(indptr, a + hit, side="right") - 1
                out[rows] = x["data"][a:b][hit]
    return out.astype("<f4").tobytes()


# --------------------------------------------------------------------------- servers
def start_server(
    work: Path, target: str, name: str, cache_dir: Path, extra: list[str] | None = None
) -> ServerProcess:
    env = dict(os.environ, CELLUCID_CACHE_DIR=str(cache_dir), PYTHONIOENCODING="utf-8")
    port = free_port()
    cmd = [sys.executable, "-m", "cellucid", "serve", target, "--port", str(port)]
    cmd += ["--no-browser", "-q", *(extra or [])]
    log(f"{name}: {' '.join(cmd)}")
    return ServerProcess(name, cmd, env, work, work / f"{name}.log", port).start()


def first_files(server: ServerProcess, timeout: float) -> dict[str, float]:
    """Seconds from the process start to health, then to identity + obs manifest + points."""
    out = {"health_s": server.wait_healthy(timeout)}
    client = Client(server.port, timeout=timeout)
    try:
        for path in ("/dataset_identity.json", "/obs_manifest.json", "/points_2d.bin"):
            reply = client.request(path)
            if reply.status != 200:
                raise RuntimeError(f"{server.name}: {path} answered {reply.status}")
        out["points_s"] = time.perf_counter() - server.t_start
    finally:
        client.close()
    return out


def wait_for_cache(server: ServerProcess, timeout: float) -> dict[str, Any]:
    """Poll ``/_cellucid/info`` until the column cache is ready; its build time, the
    progress values seen, and the server's peak memory meanwhile."""
    client = Client(server.port, timeout=30)
    seen: list[float] = []
    deadline = time.perf_counter() + timeout
    t0 = time.perf_counter()
    try:
        while True:
            info = json.loads(client.request("/_cellucid/info").body)
            cache = info.get("column_cache") or {}
            if cache.get("error"):
                raise RuntimeError(f"{server.name}: column cache failed: {cache['error']}")
            if cache.get("progress") is not None:
                seen.append(float(cache["progress"]))
            if cache.get("state") in ("ready", "none"):
                break
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{server.name}: column cache not ready after {timeout} s")
            time.sleep(0.25)
    finally:
        client.close()
    assert server.sampler is not None
    return {
        "state": cache.get("state"),
        "build_s": time.perf_counter() - t0,
        "progress_reports": len(set(seen)),
        "peak_rss_bytes": server.sampler.peak(),
    }


def gene_latency(port: int, genes: list[int], timeout: float) -> tuple[list[float], dict]:
    client = Client(port, timeout=timeout)
    times, bodies = [], {}
    try:
        for j in genes:
            reply = client.request(f"/var/{gene_name(j)}.values.f32")
            if reply.status != 200:
                raise RuntimeError(f"gene {j}: status {reply.status}")
            times.append(reply.seconds)
            bodies[j] = reply.body
    finally:
        client.close()
    return times, bodies


def run_server_start(
    args: argparse.Namespace, data: Path, work: Path, checks: list[dict]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    probe_gene = args.genes // 3
    want = expected_gene(data / "atlas.h5ad", probe_gene)
    for fmt in ("h5ad", "zarr"):
        cache_dir = work / f"cache-{fmt}"
        shutil.rmtree(cache_dir, ignore_errors=True)
        server = start_server(work, str(data / f"atlas.{fmt}"), f"serve-{fmt}", cache_dir)
        try:
            row = first_files(server, args.start_timeout)
            log(f"{fmt}: health {row['health_s']:.2f} s, points {row['points_s']:.2f} s")
            row["cache"] = wait_for_cache(server, args.cache_timeout)
            log(f"{fmt}: column cache {row['cache']['build_s']:.1f} s")
            times, bodies = gene_latency(server.port, [probe_gene], args.timeout)
            row["gene_ms"] = times[0] * 1000
            row["gene_ok"] = bodies[probe_gene] == want
            assert server.sampler is not None
            row["peak_rss_bytes"] = server.sampler.peak()
        finally:
            server.stop()
        out[fmt] = row
        checks.append(
            {
                "check": f"{fmt}: health <= {HEALTH_TARGET_S:g} s after start",
                "value": f"{row['health_s']:.2f} s",
                "pass": row["health_s"] <= HEALTH_TARGET_S,
                "target": True,
            }
        )
        checks.append(
            {
                "check": f"{fmt}: identity + obs manifest + points <= {POINTS_TARGET_S:g} s",
                "value": f"{row['points_s']:.2f} s",
                "pass": row["points_s"] <= POINTS_TARGET_S,
                "target": True,
            }
        )
        checks.append(
            {
                "check": f"{fmt}: the gene after the cache equals the file's column",
                "value": "identical" if row["gene_ok"] else "DIFFERENT",
                "pass": row["gene_ok"],
            }
        )
    return out


# --------------------------------------------------------------------------- table
def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} s"


def _mb(v: float | None) -> str:
    return "-" if v is None else f"{v / MB:,.0f} MB"


def table(result: dict[str, Any]) -> str:
    rows = [("measure", "value")]
    for fmt, row in result.get("server", {}).items():
        rows += [
            (f"serve .{fmt}: start -> health", _s(row["health_s"])),
            (f"serve .{fmt}: start -> identity + obs manifest + points", _s(row["points_s"])),
            (f"serve .{fmt}: column cache build", _s(row["cache"]["build_s"])),
            (f"serve .{fmt}: server peak memory", _mb(row["peak_rss_bytes"])),
            (f"serve .{fmt}: one gene with the cache", f"{row['gene_ms']:.1f} ms"),
        ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{a:<{width}}  {b}" for a, b in rows]
    lines.insert(1, "-" * (width + 14))
    return "\n".join(lines)


# --------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(
        description="Scale benchmark: server start, column cache, prepare with Dask, S3.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_size_arguments(ap, FULL, QUICK)
    ap.add_argument("--data", type=Path, default=None, help="folder of the generated data")
    ap.add_argument("--keep", action="store_true", help="keep the work folder and the data")
    ap.add_argument("--timeout", type=float, default=600.0, help="s per request")
    ap.add_argument("--start-timeout", type=float, default=300.0, help="s to become healthy")
    ap.add_argument("--cache-timeout", type=float, default=3600.0, help="s for a column cache")
    ap.add_argument("--generate-only", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    default = QUICK if args.quick else FULL
    args.cells = args.cells or default[0]
    args.genes = args.genes or default[1]

    if args.generate_only is not None:
        generate_into(args, args.generate_only)
        return 0

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    work = Path(tempfile.mkdtemp(prefix="cellucid-scale-bench-"))
    data = args.data or work / "data"
    log(f"work dir {work}")
    t_all = time.perf_counter()
    checks: list[dict[str, Any]] = []
    result: dict[str, Any] = {}
    try:
        result["generation"] = ensure_data(args, data)
        result["server"] = run_server_start(args, data, work, checks)
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    total = time.perf_counter() - t_all
    gen = result["generation"]
    print(
        f"\ncellucid scale benchmark: {args.cells:,} cells x {args.genes:,} genes, density "
        f"{args.density:g} (nnz {gen['nnz']:,}; .h5ad {_mb(gen['h5ad_bytes'])}, .zarr "
        f"{_mb(gen['zarr_bytes'])}); {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; {total / 60:.1f} min in all"
    )
    print(table(result))
    print()
    for c in checks:
        print(f"{'PASS' if c['pass'] else 'FAIL'}  {c['check']:<62} {c['value']}")
    if args.quick:
        print(QUICK_NOTE)
    payload = {
        "cells": args.cells,
        "genes": args.genes,
        "density": args.density,
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version()},
        **result,
        "checks": checks,
        "total_s": total,
    }
    dest = write_results(f"scale-{args.cells}x{args.genes}", payload)
    log(f"results written to {dest}")
    return exit_status(checks, args.quick)


if __name__ == "__main__":
    sys.exit(main())
