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
   ``.zarr`` store and a small export (the Dask export's manifests and obs with only the
   ``--sample`` genes that are timed); ``cellucid serve s3://…`` of
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
import threading
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
class TreeSampler:
    """Peak RSS of a process and each of its descendants (Dask workers, the column cache's
    build process), sampled every ``interval`` seconds with psutil."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.interval = interval
        self.peaks: dict[int, tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                return
            for proc in procs:
                try:
                    rss = proc.memory_info().rss
                    role = _role(proc.cmdline(), proc.pid == self.root.pid)
                except psutil.Error:
                    continue
                old = self.peaks.get(proc.pid, (role, 0))[1]
                self.peaks[proc.pid] = (role, max(old, rss))
            self._stop.wait(self.interval)

    def stop(self) -> dict[str, int]:
        """``{role: peak bytes}`` (several processes of one role: the largest)."""
        self._stop.set()
        self._thread.join(5)
        out: dict[str, int] = {}
        for role, peak in self.peaks.values():
            out[role] = max(out.get(role, 0), peak)
        return out


def _role(cmdline: list[str], root: bool) -> str:
    text = " ".join(cmdline)
    if root:
        return "main"
    if "multiprocessing" in text and "spawn" in text:
        return "child"  # the column cache build, or a Dask worker's process
    return "other"


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
        points = "points_2d.bin"
        for path in ("dataset_identity.json", "obs_manifest.json", "points"):
            if path == "points":
                path = points
            reply = client.request(f"/{path}")
            if reply.status != 200:
                raise RuntimeError(f"{server.name}: {path} answered {reply.status}")
            if path == "dataset_identity.json":  # an export may hold points_2d.bin.gz
                points = json.loads(reply.body)["embeddings"]["files"]["2d"]
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


def gene_latency(
    port: int, genes: list[int], timeout: float, suffix: str = ""
) -> tuple[list[float], dict]:
    client = Client(port, timeout=timeout)
    times, bodies = [], {}
    try:
        for j in genes:
            reply = client.request(f"/var/{gene_name(j)}.values.f32{suffix}")
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
        assert server.proc is not None
        tree = TreeSampler(server.proc.pid)
        try:
            row = first_files(server, args.start_timeout)
            log(f"{fmt}: health {row['health_s']:.2f} s, points {row['points_s']:.2f} s")
            row["cache"] = wait_for_cache(server, args.cache_timeout)
            row["cache"]["peaks"] = tree.stop()
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


# --------------------------------------------------------------------------- prepare
def prepare_child(args: argparse.Namespace) -> int:
    """``--prepare-child MODE``: export the atlas from a Dask ``X`` (``read_elem_lazy``) with
    Dask's threads or on a 2-worker LocalCluster; writes ``{"wall_s"}`` to ``--result``."""
    import anndata as ad
    import dask
    import h5py
    from anndata.experimental import read_elem_lazy
    from anndata.io import read_elem

    import cellucid

    f = h5py.File(args.data / "atlas.h5ad", "r")
    rows = max(1, args.chunk_values // args.genes)
    adata = ad.AnnData(
        X=read_elem_lazy(f["X"], chunks=(rows, args.genes)),
        obs=read_elem(f["obs"]),
        var=read_elem(f["var"]),
        obsm={k: read_elem(f["obsm"][k]) for k in ("X_umap", "X_pca")},
    )
    client = cluster = None
    if args.prepare_child == "cluster":
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    else:
        dask.config.set(scheduler="threads", num_workers=2)
    t0 = time.perf_counter()
    cellucid.prepare(adata, args.out, compression=1, connectivity=False, quiet=True)
    wall = time.perf_counter() - t0
    if client is not None:
        client.close()
        cluster.close()
    args.result.write_text(json.dumps({"wall_s": wall}), encoding="utf-8")
    return 0


def _digest(root: Path) -> dict[str, str]:
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "dataset_identity.json"
    }


def run_prepare(
    args: argparse.Namespace, data: Path, work: Path, checks: list[dict]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    digests = {}
    for mode in ("threads", "cluster"):
        dest, result = work / f"export-{mode}", work / f"prepare-{mode}.json"
        shutil.rmtree(dest, ignore_errors=True)
        cmd = [sys.executable, __file__, "--prepare-child", mode, "--data", str(data)]
        cmd += ["--out", str(dest), "--result", str(result), "--genes", str(args.genes)]
        cmd += ["--chunk-values", str(args.chunk_values)]
        log(f"prepare with Dask {mode}: {dest}")
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd)
        tree = TreeSampler(proc.pid)
        code = proc.wait()
        peaks = tree.stop()
        if code != 0:
            raise RuntimeError(f"prepare ({mode}) exited with {code}")
        row = json.loads(result.read_text(encoding="utf-8"))
        row["process_s"] = time.perf_counter() - t0
        row["driver_peak_bytes"] = peaks.get("main", 0)
        row["worker_peak_bytes"] = peaks.get("child") if mode == "cluster" else None
        row["export_bytes"] = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
        log(f"prepare ({mode}): {row['wall_s']:.0f} s")
        out[mode] = row
        digests[mode] = _digest(dest)
    same = digests["threads"] == digests["cluster"]
    out["identical"] = same
    checks.append(
        {
            "check": "prepare: Dask threads and LocalCluster exports identical",
            "value": f"{len(digests['threads'])} files " + ("identical" if same else "DIFFERENT"),
            "pass": same,
        }
    )
    return out


# --------------------------------------------------------------------------- object storage
class MotoServer:
    """moto's S3 server on 127.0.0.1, as the tests start it."""

    def __init__(self, work: Path) -> None:
        import socket
        import urllib.request

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        log_file = open(work / "moto.log", "wb")  # noqa: SIM115 (closed with the process)
        self.proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the moto S3 server did not start") from None
                time.sleep(0.1)
        self.env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_ENDPOINT_URL": self.endpoint,
        }
        import s3fs

        self.fs = s3fs.S3FileSystem(
            key="testing", secret="testing", client_kwargs={"endpoint_url": self.endpoint}
        )
        self.fs.mkdir("bench")

    def upload(self, files: list[tuple[Path, str]], batch_bytes: int = 256 << 20) -> None:
        batch: dict[str, bytes] = {}
        size = 0
        for local, key in files:
            batch[f"bench/{key}"] = local.read_bytes()
            size += len(batch[f"bench/{key}"])
            if size >= batch_bytes:
                self.fs.pipe(batch)
                batch, size = {}, 0
        if batch:
            self.fs.pipe(batch)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def _serve_and_time(
    args: argparse.Namespace,
    work: Path,
    target: str,
    name: str,
    genes: list[int],
    env: dict[str, str],
    anndata: bool,
) -> tuple[dict[str, Any], dict[int, bytes]]:
    cache = work / f"cache-{name}"
    shutil.rmtree(cache, ignore_errors=True)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        server = start_server(work, target, name, cache)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    try:
        row: dict[str, Any] = first_files(server, args.start_timeout)
        if anndata:
            row["cache_s"] = wait_for_cache(server, args.cache_timeout)["build_s"]
        suffix = "" if anndata else ".gz"  # the export is compressed
        times, bodies = gene_latency(server.port, genes, args.timeout, suffix)
        row["gene_ms"] = float(np.median(times) * 1000)
    finally:
        server.stop()
    log(f"{name}: points {row['points_s']:.2f} s, gene median {row['gene_ms']:.1f} ms")
    return row, bodies


def run_s3(
    args: argparse.Namespace, data: Path, work: Path, checks: list[dict], export: Path | None
) -> dict[str, Any]:
    moto = MotoServer(work)
    out: dict[str, Any] = {}
    rng = np.random.default_rng(1)
    genes = sorted(rng.choice(args.genes, size=min(args.sample, args.genes), replace=False))
    try:
        store = data / "atlas.zarr"
        t0 = time.perf_counter()
        moto.upload(
            [(f, f"atlas.zarr/{f.relative_to(store)}") for f in store.rglob("*") if f.is_file()]
        )
        out["upload_zarr_s"] = time.perf_counter() - t0
        log(f"uploaded the .zarr to S3 in {out['upload_zarr_s']:.0f} s")
        pairs = [("zarr", str(store), "s3://bench/atlas.zarr", True)]
        if export is not None:  # the export's manifests, obs and the sampled genes
            wanted = {f"var/{gene_name(j)}.values.f32.gz" for j in genes}
            files = [
                (f, f"export/{f.relative_to(export)}")
                for f in export.rglob("*")
                if f.is_file()
                and (
                    not str(f.relative_to(export)).startswith("var/")
                    or str(f.relative_to(export)) in wanted
                )
            ]
            moto.upload(files)
            pairs.append(("export", str(export), "s3://bench/export", False))
        for kind, local, remote, anndata in pairs:
            row_local, got_local = _serve_and_time(
                args, work, local, f"{kind}-disk", genes, {}, anndata
            )
            row_s3, got_s3 = _serve_and_time(
                args, work, remote, f"{kind}-s3", genes, moto.env, anndata
            )
            same = got_local == got_s3
            out[kind] = {
                "disk": row_local,
                "s3": row_s3,
                "ratio": row_s3["gene_ms"] / max(row_local["gene_ms"], 1e-9),
                "identical": same,
            }
            checks.append(
                {
                    "check": f"S3 {kind}: genes identical to the local ones",
                    "value": f"{len(genes)} genes " + ("identical" if same else "DIFFERENT"),
                    "pass": same,
                }
            )
    finally:
        moto.stop()
    return out


# --------------------------------------------------------------------------- table
def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} s"


def _mb(v: float | None) -> str:
    return "-" if v is None else f"{v / MB:,.0f} MB"


def table(result: dict[str, Any]) -> str:
    rows = [("measure", "value")]
    for fmt, row in result.get("server", {}).items():
        peaks = row["cache"].get("peaks", {})
        rows += [
            (f"serve .{fmt}: start -> health", _s(row["health_s"])),
            (f"serve .{fmt}: start -> identity + obs manifest + points", _s(row["points_s"])),
            (f"serve .{fmt}: column cache build", _s(row["cache"]["build_s"])),
            (f"serve .{fmt}: server peak memory", _mb(peaks.get("main"))),
            (f"serve .{fmt}: column cache build process peak memory", _mb(peaks.get("child"))),
            (f"serve .{fmt}: one gene with the cache", f"{row['gene_ms']:.1f} ms"),
        ]
    for mode, row in result.get("prepare", {}).items():
        if not isinstance(row, dict):
            continue
        what = "Dask threads, in process" if mode == "threads" else "LocalCluster, 2 workers"
        rows += [
            (f"prepare ({what}): time", _s(row["wall_s"])),
            (f"prepare ({what}): driver peak memory", _mb(row["driver_peak_bytes"])),
        ]
        if row.get("worker_peak_bytes") is not None:
            rows.append((f"prepare ({what}): worker peak memory", _mb(row["worker_peak_bytes"])))
    for kind, row in result.get("s3", {}).items():
        if not isinstance(row, dict) or "disk" not in row:
            continue
        for where in ("disk", "s3"):
            r = row[where]
            rows.append((f"serve {kind} from {where}: start -> points", _s(r["points_s"])))
            rows.append((f"serve {kind} from {where}: per-gene median", f"{r['gene_ms']:.1f} ms"))
        rows.append((f"serve {kind}: per-gene latency S3 / disk", f"{row['ratio']:.2f}x"))
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
    ap.add_argument("--sample", type=int, default=20, help="genes timed per server")
    ap.add_argument(
        "--chunk-values", type=int, default=10_000_000, help="values per Dask row chunk"
    )
    ap.add_argument("--skip-prepare", action="store_true", help="no Dask exports")
    ap.add_argument("--skip-s3", action="store_true", help="no object storage")
    ap.add_argument("--generate-only", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--prepare-child", choices=("threads", "cluster"), help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    default = QUICK if args.quick else FULL
    args.cells = args.cells or default[0]
    args.genes = args.genes or default[1]

    if args.generate_only is not None:
        generate_into(args, args.generate_only)
        return 0
    if args.prepare_child is not None:
        return prepare_child(args)

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
        if not args.skip_prepare:
            result["prepare"] = run_prepare(args, data, work, checks)
        if not args.skip_s3:
            export = None if args.skip_prepare else work / "export-threads"
            result["s3"] = run_s3(args, data, work, checks, export)
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
