"""Server benchmark: our AnnData server against upstream ``cellucid==0.0.9``, over HTTP.

One command::

    python benchmarks/server.py                 # 1,000,000 cells x 2,000 genes, 5% non-zero
    python benchmarks/server.py --quick         # 100,000 x 500
    python benchmarks/server.py --cells N --genes G --density D [--skip-upstream] [--keep]

1. A backed CSR ``.h5ad`` is generated deterministically in a temp dir, row chunk by row
   chunk in a child process (well under 2 GB of memory): 20 clusters of unequal size, a batch,
   ``n_counts`` and ``pct_mito``; ``obsm['X_umap']`` (2-D) and ``obsm['X_pca']`` (50-D);
   genes with varied detection rates. The gene columns used below are then computed
   independently from the file with h5py, as are the expected points and obs payloads.
2. Each server runs as a subprocess on a free port: ours ``cellucid serve FILE --port P
   --no-browser -q`` (with ``CELLUCID_CACHE_DIR`` in the temp dir, so its column cache starts
   cold), upstream ``cellucid serve FILE --port P --no-browser -q`` from its own virtualenv
   (``tests/upstream.py`` finds it; quiet also keeps it from downloading its web UI). This
   process is the client: it times start-up (to the first healthy ``/_cellucid/health``),
   the identity, manifests, ``points_2d.bin``, ``obs/cluster.codes.u8`` and genes, cold (first
   request of each) and warm (second request). For ours it also times a few genes *while*
   the column cache is being built (with a health probe running), waits for the cache's
   ``meta.json`` and reports the build time; then the 50-gene cold/warm numbers are taken
   with the cache ready. Server RSS is sampled every 50 ms (plus the kernel's VmHWM).
   Every gene, points and obs payload is compared with the independent values: one wrong
   byte fails the run.
3. Load check (ours only): 8 client threads send 2,000 mixed requests (health, info,
   identity, manifests, points, obs, genes hot/pooled/new, HEAD, byte ranges, ``.gz`` files,
   transport gzip, 404s); each answer must have the expected status and exactly the expected
   bytes.

Targets (PASS/FAIL): ours' per-gene median with the cache < 50 ms; ours >= 10x faster per
gene than upstream (cold medians); ours' peak RSS <= embeddings + obs + 500 MB; no wrong
byte anywhere; the load check has no error. Upstream reads a backed CSR gene by slicing the
whole matrix (about 0.5 s a gene at 1M cells here), so its genes are bounded:
``--upstream-genes`` (default: ``--sample``), ``--upstream-timeout`` (120 s a request) and
``--upstream-budget`` (300 s for all its cold genes; what was measured is reported).
The table goes to stdout, progress to stderr, the results to
``benchmarks/results/<stamp>-server-<cells>x<genes>.json`` (gitignored); exit 1 when a
check fails. With ``--quick`` (``make bench-quick`` in CI) only the two correctness checks
(no wrong byte, a clean load check) set the exit status; the targets are set for the full
size and only printed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from _common import (  # benchmarks/_common.py (this script's folder)
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
from _server_client import (  # noqa: E402
    Client,
    HealthProbe,
    Reply,
    ServerProcess,
    free_port,
    pct,
)
from upstream import (  # noqa: E402  (tests/upstream.py: shared upstream-venv lookup)
    UpstreamNotFoundError,
    our_python,
    upstream_env,
    upstream_python,
)

MB = 1e6
FULL = (1_000_000, 2_000)
QUICK = (100_000, 500)
PCA_DIMS = 50
GENE_TARGET_MS = 50.0
SPEED_TARGET = 10.0
MEMORY_SLACK = 500 * MB
CODES_PATH = "obs/cluster.codes.u8"
REPEATS = 5  # more fetches of each small file after the first, for a median


def log(msg: str) -> None:
    print(f"[server-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def gene_path(j: int) -> str:
    return f"/var/{gene_name(j)}.values.f32"


# --------------------------------------------------------------------------- input
def generate(path: Path, n_cells: int, n_genes: int, density: float, seed: int) -> dict:
    """Write the benchmark ``.h5ad`` (:func:`_common.write_atlas_h5ad`)."""
    info = write_atlas_h5ad(path, n_cells, n_genes, density, seed, pca_dims=PCA_DIMS)
    return {"nnz": info["nnz"]}


def generate_in_child(path: Path, args: argparse.Namespace) -> dict:
    """Run :func:`generate` in a fresh process; its wall time, peak RSS and nnz."""
    result = path.with_suffix(".gen.json")
    cmd = [sys.executable, __file__, "--generate-only", str(path), "--gen-result", str(result)]
    cmd += ["--cells", str(args.cells), "--genes", str(args.genes)]
    cmd += ["--density", str(args.density), "--seed", str(args.seed)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    info = json.loads(result.read_text(encoding="utf-8"))
    info["wall_s"] = time.perf_counter() - t0
    info["file_bytes"] = path.stat().st_size
    return info


# --------------------------------------------------------------------------- references
@dataclass
class Reference:
    """What the servers must send, computed from the file with h5py alone."""

    n_cells: int
    n_genes: int
    points_2d: bytes
    obs: dict[str, bytes]  # relative path -> payload
    genes: dict[int, bytes]
    embeddings_bytes: int
    obs_bytes: int


def spec_points(x: np.ndarray) -> bytes:
    """SPEC §2.5: per-axis min/max in float64, longest axis to [-1, 1], then float32."""
    x = x.astype(np.float64)
    lo, hi = x.min(axis=0), x.max(axis=0)
    span = float((hi - lo).max())
    span = 1.0 if span < 1e-8 else span
    out = ((x - (lo + hi) / 2.0) * (2.0 / span)).astype("<f4")
    return out.tobytes()


def gene_columns(path: Path, genes: np.ndarray, chunk_values: int = 20_000_000) -> np.ndarray:
    """Dense float32 columns ``(len(genes), n_cells)`` of X, by one pass over the CSR rows
    (duplicate entries summed, as a reader must)."""
    import h5py

    with h5py.File(path, "r") as f:
        x = f["X"]
        n_cells, n_genes = (int(v) for v in x.attrs["shape"])
        indptr = x["indptr"][:]
        slot = np.full(n_genes, -1, dtype=np.int64)
        slot[genes] = np.arange(genes.size)
        out = np.zeros((genes.size, n_cells), dtype=np.float32)
        r0 = 0
        while r0 < n_cells:
            r1 = int(np.searchsorted(indptr, indptr[r0] + chunk_values, side="right")) - 1
            r1 = min(max(r1, r0 + 1), n_cells)
            a, b = int(indptr[r0]), int(indptr[r1])
            k = slot[x["indices"][a:b]]
            hit = np.flatnonzero(k >= 0)
            if hit.size:
                rows = np.searchsorted(indptr[r0 : r1 + 1], a + hit, side="right") - 1 + r0
                np.add.at(out, (k[hit], rows), x["data"][a:b][hit].astype(np.float32))
            r0 = r1
    return out


def build_reference(path: Path, genes: np.ndarray) -> Reference:
    import anndata as ad
    import h5py

    with h5py.File(path, "r") as f:
        obsm = {k: f["obsm"][k][:] for k in ("X_umap", "X_pca")}
        obs_df = ad.io.read_elem(f["obs"])
        n_cells, n_genes = (int(v) for v in f["X"].attrs["shape"])
        obs: dict[str, bytes] = {}
        for key in ("cluster", "batch"):
            codes = f["obs"][key]["codes"][:].astype(np.int64)
            codes[codes < 0] = 255
            obs[f"obs/{key}.codes.u8"] = codes.astype(np.uint8).tobytes()
        for key in ("n_counts", "pct_mito"):
            obs[f"obs/{key}.values.f32"] = f["obs"][key][:].astype("<f4").tobytes()
    genes = np.unique(genes)
    cols = gene_columns(path, genes)
    return Reference(
        n_cells=n_cells,
        n_genes=n_genes,
        points_2d=spec_points(obsm["X_umap"]),
        obs=obs,
        genes={int(j): cols[i].astype("<f4").tobytes() for i, j in enumerate(genes)},
        embeddings_bytes=int(sum(a.nbytes for a in obsm.values())),
        obs_bytes=int(obs_df.memory_usage(index=True, deep=True).sum()),
    )


# --------------------------------------------------------------------------- checks
class Verifier:
    """Collects every payload comparison; a mismatch names the server, path and first byte."""

    def __init__(self) -> None:
        self.checked = 0
        self.mismatches: list[str] = []

    def same(self, server: str, path: str, got: bytes, want: bytes) -> bool:
        self.checked += 1
        if got == want:
            return True
        n = min(len(got), len(want))
        diff = next((i for i in range(n) if got[i] != want[i]), n)
        self.mismatches.append(
            f"{server} {path}: {len(got)} bytes, expected {len(want)}; first difference at byte "
            f"{diff}"
        )
        return False


def max_abs_diff(got: bytes, want: bytes) -> float | None:
    a, b = np.frombuffer(got, "<f4"), np.frombuffer(want, "<f4")
    return float(np.abs(a.astype(np.float64) - b).max()) if a.size == b.size else None


def get_ok(client: Client, path: str, **kw: Any) -> Reply:
    reply = client.request(path, **kw)
    if reply.status != 200:
        raise RuntimeError(f"GET {path} -> {reply.status}: {reply.body[:300]!r}")
    return reply


def time_genes(
    client: Client, server: str, genes: list[int], ref: Reference, verify: Verifier, **kw: Any
) -> list[float]:
    """Fetch each gene once; latencies in ms; every payload checked against the reference."""
    out = []
    for j in genes:
        reply = get_ok(client, gene_path(j), **kw)
        verify.same(server, gene_path(j), reply.body, ref.genes[j])
        out.append(reply.seconds * 1e3)
    return out


def summary(ms: list[float]) -> dict[str, Any]:
    return {"n": len(ms), "median_ms": pct(ms, 50), "p95_ms": pct(ms, 95), "all_ms": ms}


def cache_meta(cache_dir: Path) -> Path | None:
    """``meta.json`` of a complete column cache (not of a builder's temporary folder)."""
    for meta in sorted((cache_dir / "columns").glob("*/meta.json")):
        if ".tmp-" not in meta.parent.name:
            return meta
    return None


def fetch_basics(
    client: Client, server: str, ref: Reference, verify: Verifier, res: dict[str, Any]
) -> None:
    """Identity, manifests, 2-D points and the cluster codes: the first fetch of each, then
    the median of ``REPEATS`` more; binaries checked every time."""
    files = (
        ("identity", "/dataset_identity.json", None),
        ("obs_manifest", "/obs_manifest.json", None),
        ("var_manifest", "/var_manifest.json", None),
        ("points", "/points_2d.bin", ref.points_2d),
        ("obs_codes", "/" + CODES_PATH, ref.obs[CODES_PATH]),
    )
    for key, path, want in files:
        replies = [get_ok(client, path) for _ in range(1 + REPEATS)]
        res[f"{key}_ms"] = replies[0].seconds * 1e3
        res[f"{key}_repeat_ms"] = pct([r.seconds * 1e3 for r in replies[1:]], 50)
        res[f"{key}_bytes"] = len(replies[0].body)
        body = replies[0].body
        if key == "var_manifest":
            ids = [f[0] for f in json.loads(body)["fields"]]
            if ids != [gene_name(j) for j in range(ref.n_genes)]:
                verify.mismatches.append(f"{server} {path}: gene ids differ from var_names")
        elif key == "points":
            res["points_exact"] = body == ref.points_2d
            res["points_max_abs_diff"] = max_abs_diff(body, ref.points_2d)
        # points: the SPEC formula exactly for ours; upstream computes in float32 (reported)
        if want is not None and (key != "points" or server == "ours"):
            for r in replies:
                verify.same(server, path, r.body, want)


# --------------------------------------------------------------------------- ours
def our_server(work: Path, h5ad: Path, cache_dir: Path, name: str) -> ServerProcess:
    """``cellucid serve`` of this repository's venv, with its column cache in ``cache_dir``."""
    env = dict(os.environ, CELLUCID_CACHE_DIR=str(cache_dir), PYTHONIOENCODING="utf-8")
    exe = our_python().parent / "cellucid"
    base = [str(exe)] if exe.is_file() else [str(our_python()), "-m", "cellucid"]
    port = free_port()
    cmd = [*base, "serve", str(h5ad), "--port", str(port), "--no-browser", "-q"]
    log(f"{name}: {' '.join(cmd)}")
    return ServerProcess(name, cmd, env, work, work / f"{name}.log", port)


def scan_without_cache(
    args: argparse.Namespace,
    h5ad: Path,
    work: Path,
    ref: Reference,
    genes: list[int],
    verify: Verifier,
) -> dict[str, Any]:
    """Genes read by our CSR scan: a server whose cache folder cannot be created (a file)."""
    blocker = work / "no-cache"
    blocker.write_text("not a folder: the column cache cannot be built here\n", encoding="utf-8")
    server = our_server(work, h5ad, blocker, "ours-no-cache").start()
    client = Client(server.port, timeout=args.timeout)
    try:
        server.wait_healthy(args.start_timeout)
        out: dict[str, Any] = {"genes": []}
        with HealthProbe(server.port) as probe:
            for j in genes:
                ms = time_genes(client, "ours-no-cache", [j], ref, verify)[0]
                out["genes"].append({"gene": gene_name(j), "ms": ms})
                log(f"ours-no-cache: gene {gene_name(j)} by scan: {ms:.0f} ms")
        out["health_max_ms"] = (probe.max or 0) * 1e3
        out["health_failures"] = probe.failures
        return out
    finally:
        client.close()
        server.stop()


def run_ours(
    args: argparse.Namespace,
    h5ad: Path,
    work: Path,
    ref: Reference,
    plan: dict[str, list[int]],
    verify: Verifier,
) -> dict[str, Any]:
    cache_dir = work / "cache"
    server = our_server(work, h5ad, cache_dir, "ours")
    port = server.port
    res: dict[str, Any] = {"cmd": " ".join(server.cmd)}
    server.start()
    client = Client(port, timeout=args.timeout)
    try:
        res["startup_s"] = server.wait_healthy(args.start_timeout)
        sampler = server.sampler
        assert sampler is not None
        res["rss_after_start_bytes"] = sampler.current()
        log(f"ours: healthy after {res['startup_s']:.2f} s")
        health = json.loads(get_ok(client, "/_cellucid/health").body)
        res["health"] = health
        res["basics_during_build"] = cache_meta(cache_dir) is None
        fetch_basics(client, "ours", ref, verify, res)

        # genes while the column cache is being built (the scan path)
        before = []
        with HealthProbe(port) as probe:
            for j in plan["before"]:
                ready = cache_meta(cache_dir) is not None
                ms = time_genes(client, "ours", [j], ref, verify)[0]
                after = cache_meta(cache_dir) is not None
                before.append(
                    {
                        "gene": gene_name(j),
                        "ms": ms,
                        "cache_ready_before": ready,
                        "cache_ready_after": after,
                    }
                )
                log(f"ours: gene {gene_name(j)} before the cache: {ms:.0f} ms (ready: {ready})")
        res["before_cache"] = before
        res["health_during_scan_max_ms"] = (probe.max or 0) * 1e3
        res["health_during_scan_failures"] = probe.failures

        deadline = time.perf_counter() + args.cache_timeout
        while (meta_path := cache_meta(cache_dir)) is None:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"column cache not ready after {args.cache_timeout:.0f} s")
            if server.proc is not None and server.proc.poll() is not None:
                raise RuntimeError(f"our server died:\n{server.log_tail()}")
            time.sleep(0.05)
        t_ready = time.perf_counter()
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        res["cache_ready_after_start_s"] = t_ready - server.t_start
        res["cache_build_s"] = meta.get("build_seconds")
        res["cache_bytes"] = sum(p.stat().st_size for p in meta_path.parent.iterdir())
        t_healthy = server.t_start + res["startup_s"]
        res["rss_peak_startup_bytes"] = sampler.peak(until=t_healthy)
        res["rss_peak_cache_build_bytes"] = sampler.peak(since=t_healthy, until=t_ready)
        log(
            f"ours: column cache ready {res['cache_ready_after_start_s']:.1f} s after start "
            f"(build {res['cache_build_s']} s, {res['cache_bytes'] / MB:.0f} MB)"
        )

        idle: dict[str, Any] = {}  # the same files again, with no build running any more
        fetch_basics(client, "ours", ref, verify, idle)
        res["basics_after_cache_ms"] = {
            k[: -len("_repeat_ms")]: v for k, v in idle.items() if k.endswith("_repeat_ms")
        }
        res["cold"] = summary(time_genes(client, "ours", plan["measure"], ref, verify))
        res["warm"] = summary(time_genes(client, "ours", plan["measure"], ref, verify))
        log(
            f"ours: genes cold median {res['cold']['median_ms']:.1f} ms, warm "
            f"{res['warm']['median_ms']:.1f} ms"
        )
        if args.load_requests > 0:
            res["load"] = load_check(args, port, ref, plan, verify)
        res["rss_end_bytes"] = sampler.current()
        res["rss_peak_serving_bytes"] = sampler.peak(since=t_ready)
    finally:
        client.close()
        res["exit_code"] = server.stop()
        if server.sampler is not None:
            res["peak_rss_bytes"] = server.sampler.peak()
            res["rss_samples"] = len(server.sampler.samples)
    if any(b["cache_ready_before"] or b["cache_ready_after"] for b in res["before_cache"]):
        log("ours: the column cache won the race with some genes; timing the scan without it")
        res["scan_no_cache"] = scan_without_cache(args, h5ad, work, ref, plan["before"], verify)
    return res


# --------------------------------------------------------------------------- upstream
def run_upstream(
    args: argparse.Namespace,
    h5ad: Path,
    work: Path,
    ref: Reference,
    plan: dict[str, list[int]],
    verify: Verifier,
) -> dict[str, Any]:
    python = upstream_python()
    exe = python.parent / "cellucid"
    base = [str(exe)] if exe.is_file() else [str(python), "-m", "cellucid.cli"]
    port = free_port()
    # -q also skips upstream's prefetch of its hosted web UI (network); '/' is never requested
    cmd = [*base, "serve", str(h5ad), "--port", str(port), "--no-browser", "-q"]
    upstream_cwd = work / "upstream-cwd"
    upstream_cwd.mkdir(exist_ok=True)
    server = ServerProcess(
        "upstream", cmd, upstream_env(), upstream_cwd, work / "upstream.log", port
    )
    res: dict[str, Any] = {"cmd": " ".join(cmd)}
    log(f"upstream: {res['cmd']}")
    server.start()
    client = Client(port, timeout=args.upstream_timeout)
    try:
        res["startup_s"] = server.wait_healthy(args.start_timeout)
        assert server.sampler is not None
        t_healthy = server.t_start + res["startup_s"]
        res["rss_after_start_bytes"] = server.sampler.current()
        res["rss_peak_startup_bytes"] = server.sampler.peak(until=t_healthy)
        log(f"upstream: healthy after {res['startup_s']:.2f} s")
        res["health"] = json.loads(get_ok(client, "/_cellucid/health").body)
        fetch_basics(client, "upstream", ref, verify, res)

        genes = plan["measure"][: args.upstream_genes]
        cold: list[float] = []
        t_budget = time.perf_counter() + args.upstream_budget
        with HealthProbe(port, timeout=args.upstream_timeout + 10) as probe:
            for j in genes:
                try:
                    cold += time_genes(client, "upstream", [j], ref, verify)
                except OSError as exc:  # a timeout: report what was measured
                    res["gene_error"] = f"{gene_name(j)}: {type(exc).__name__}: {exc}"
                    log(f"upstream: {res['gene_error']}")
                    client.close()
                    break
                log(f"upstream: gene {gene_name(j)} cold: {cold[-1]:.0f} ms")
                if time.perf_counter() > t_budget:
                    log(f"upstream: gene budget of {args.upstream_budget:.0f} s used up")
                    break
        res["health_during_genes_max_ms"] = (probe.max or 0) * 1e3
        res["health_during_genes_failures"] = probe.failures
        res["cold"] = summary(cold)
        warm_genes = genes[: len(cold)]
        res["warm"] = summary(time_genes(client, "upstream", warm_genes, ref, verify))
        res["rss_end_bytes"] = server.sampler.current()
        res["rss_peak_serving_bytes"] = server.sampler.peak(since=t_healthy)
    finally:
        client.close()
        res["exit_code"] = server.stop()
        if server.sampler is not None:
            res["peak_rss_bytes"] = server.sampler.peak()
    return res


# --------------------------------------------------------------------------- load check
@dataclass
class Spec:
    """One request of the load check and what must come back."""

    kind: str
    path: str
    method: str = "GET"
    headers: dict[str, str] | None = None
    status: int = 200
    body: bytes | None = None  # exact body (after transport decoding), or None: not checked
    length: int | None = None  # HEAD: the Content-Length GET would send
    content_range: str | None = None
    transport_gzip: bool = False  # Accept-Encoding: gzip sent; Content-Encoding decoded
    json_error: bool = False  # a JSON {"status": "error"} body


def check_gz(data: bytes, raw: bytes) -> str | None:
    """Why ``data`` is not a reproducible single-member gzip of ``raw`` (SPEC §2.3)."""
    if len(data) < 18 or data[:3] != b"\x1f\x8b\x08":
        return "not a gzip member"
    if data[4:8] != b"\0\0\0\0" or data[9] != 0xFF or data[3] & 0x08:
        return "gzip header has an mtime, a file name or an OS byte other than 0xFF"
    d = zlib.decompressobj(wbits=31)
    out = d.decompress(data)
    if not d.eof or d.unused_data:
        return "truncated member, or bytes after it"
    return None if out == raw else "decompresses to other bytes"


def load_specs(
    client: Client, ref: Reference, plan: dict[str, list[int]], n: int, seed: int
) -> list[Spec]:
    """``n`` requests in a fixed random order; references fetched once, sequentially, where
    the bytes are not computed independently (JSON documents, ``.gz`` files)."""
    rng = np.random.default_rng(seed)
    seq: dict[str, bytes] = {}
    for path in (
        "/_cellucid/health",
        "/_cellucid/info",
        "/_cellucid/datasets",
        "/dataset_identity.json",
        "/obs_manifest.json",
        "/var_manifest.json",
        "/obs/cluster.outliers.f32",
    ):
        seq[path] = get_ok(client, path).body
    raw: dict[str, bytes] = {"/points_2d.bin": ref.points_2d}
    raw |= {"/" + k: v for k, v in ref.obs.items()}
    raw |= {gene_path(j): ref.genes[j] for j in plan["hot"] + plan["pool"] + plan["new"]}
    gz_sources = ["/points_2d.bin", "/" + CODES_PATH, "/obs/n_counts.values.f32"]
    gz_sources += [gene_path(j) for j in plan["hot"][:5]]
    gz: dict[str, bytes] = {}
    for path in gz_sources:
        reply = get_ok(client, path + ".gz")
        problem = check_gz(reply.body, raw[path])
        if problem or "content-encoding" in reply.headers:
            raise AssertionError(
                f"GET {path}.gz: {problem or 'sent with Content-Encoding'} (sequential fetch)"
            )
        gz[path + ".gz"] = reply.body
    everything = {**seq, **raw, **gz}
    new = list(plan["new"])

    def pick(paths: list[str]) -> str:
        return paths[int(rng.integers(len(paths)))]

    def make(kind: str) -> Spec:
        if kind in ("health", "info", "datasets"):
            return Spec(kind, f"/_cellucid/{kind}", body=seq[f"/_cellucid/{kind}"])
        if kind == "json":
            path = pick(["/dataset_identity.json", "/obs_manifest.json", "/var_manifest.json"])
            return Spec(kind, path, body=seq[path])
        if kind == "points":
            return Spec(kind, "/points_2d.bin", body=ref.points_2d)
        if kind == "obs":
            path = pick([*("/" + k for k in ref.obs), "/obs/cluster.outliers.f32"])
            return Spec(kind, path, body=everything[path])
        if kind == "gene_hot":
            path = gene_path(plan["hot"][int(rng.integers(len(plan["hot"])))])
            return Spec(kind, path, body=raw[path])
        if kind == "gene_new" and new:
            path = gene_path(new.pop())
            return Spec(kind, path, body=raw[path])
        if kind in ("gene_pool", "gene_new"):
            path = gene_path(plan["pool"][int(rng.integers(len(plan["pool"])))])
            return Spec("gene_pool", path, body=raw[path])
        if kind == "head":
            path = pick(list(everything))
            return Spec(kind, path, method="HEAD", body=b"", length=len(everything[path]))
        if kind == "range":
            path = pick(["/points_2d.bin", *(gene_path(j) for j in plan["hot"])])
            data = raw[path]
            size = len(data)
            form = int(rng.integers(3))
            start = int(rng.integers(size))
            if form == 0:
                end = min(size - 1, start + int(rng.integers(1, 1 << 16)))
                header = f"bytes={start}-{end}"
            elif form == 1:
                end = size - 1
                header = f"bytes={start}-"
            else:
                start = size - int(rng.integers(1, min(size, 1 << 16) + 1))
                end = size - 1
                header = f"bytes=-{size - start}"
            return Spec(
                kind,
                path,
                headers={"Range": header},
                status=206,
                body=data[start : end + 1],
                content_range=f"bytes {start}-{end}/{size}",
            )
        if kind == "range_416":
            path = pick(list(raw))
            size = len(raw[path])
            return Spec(
                kind,
                path,
                headers={"Range": f"bytes={size}-"},
                status=416,
                content_range=f"bytes */{size}",
            )
        if kind == "gz":
            path = pick(list(gz))
            return Spec(kind, path, body=gz[path])
        if kind == "transport_gzip":
            path = pick(["/points_2d.bin", "/obs_manifest.json", *list(raw)[:20]])
            return Spec(
                kind,
                path,
                headers={"Accept-Encoding": "gzip"},
                body=everything[path],
                transport_gzip=True,
            )
        if kind == "not_found":
            path = pick(["/var/NoSuchGene.values.f32", "/obs/nope.codes.u8", "/points_3d.bin"])
            return Spec(kind, path, status=404, json_error=True)
        raise ValueError(kind)

    weights = {
        "health": 8,
        "info": 1,
        "datasets": 1,
        "json": 7,
        "points": 2,
        "obs": 8,
        "gene_hot": 20,
        "gene_pool": 12,
        "gene_new": 3,
        "head": 10,
        "range": 10,
        "range_416": 1,
        "gz": 7,
        "transport_gzip": 5,
        "not_found": 2,
    }
    kinds = list(weights)
    p = np.array([weights[k] for k in kinds], dtype=float)
    drawn = rng.choice(len(kinds), size=n, p=p / p.sum())
    return [make(kinds[i]) for i in drawn]


def judge(spec: Spec, reply: Reply) -> tuple[str, str | None]:
    """``("ok" | "error" | "wrong_bytes", reason)`` for one answer."""
    h = reply.headers
    if reply.status != spec.status:
        return "error", f"status {reply.status}, expected {spec.status}"
    if spec.content_range is not None and h.get("content-range") != spec.content_range:
        return "error", f"Content-Range {h.get('content-range')!r}, expected {spec.content_range!r}"
    if spec.path.endswith(".gz") and "content-encoding" in h:
        return "error", "a .gz file sent with Content-Encoding"
    if spec.json_error:
        try:
            doc = json.loads(reply.body)
        except ValueError:
            return "error", "error body is not JSON"
        ok = doc.get("status") == "error" and h.get("content-type") == "application/json"
        return ("ok", None) if ok else ("error", f"error body {reply.body[:100]!r}")
    if spec.method == "HEAD":
        if reply.body:
            return "wrong_bytes", f"HEAD returned {len(reply.body)} body bytes"
        if h.get("content-length") != str(spec.length):
            return "error", f"HEAD Content-Length {h.get('content-length')}, expected {spec.length}"
        return "ok", None
    body = reply.body
    if spec.transport_gzip and h.get("content-encoding") == "gzip":
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError) as exc:
            return "wrong_bytes", f"transport gzip does not decode: {exc}"
    elif "content-encoding" in h:
        return "error", f"unexpected Content-Encoding {h['content-encoding']!r}"
    if spec.body is not None and body != spec.body:
        return "wrong_bytes", f"{len(body)} bytes, expected {len(spec.body)}"
    return "ok", None


def load_check(
    args: argparse.Namespace,
    port: int,
    ref: Reference,
    plan: dict[str, list[int]],
    verify: Verifier,
) -> dict[str, Any]:
    seq_client = Client(port, timeout=args.timeout)
    try:
        specs = load_specs(seq_client, ref, plan, args.load_requests, args.seed + 7)
    finally:
        seq_client.close()
    log(f"ours: load check, {len(specs):,} requests from {args.load_threads} threads ...")
    work: queue.Queue[Spec] = queue.Queue()
    for s in specs:
        work.put(s)
    results: list[tuple[Spec, str, str | None, float, int, bool]] = []
    lock = threading.Lock()

    def worker() -> None:
        client = Client(port, timeout=args.timeout)
        try:
            while True:
                try:
                    spec = work.get_nowait()
                except queue.Empty:
                    return
                try:
                    reply = client.request(spec.path, spec.method, spec.headers)
                    verdict, reason = judge(spec, reply)
                    item = (spec, verdict, reason, reply.seconds, len(reply.body),
                            reply.headers.get("content-encoding") == "gzip")  # fmt: skip
                except OSError as exc:
                    client.close()
                    item = (spec, "error", f"{type(exc).__name__}: {exc}", 0.0, 0, False)
                with lock:
                    results.append(item)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, name=f"load-{i}") for i in range(args.load_threads)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = [r[3] * 1e3 for r in results]
    verdicts = Counter(r[1] for r in results)
    problems = [
        f"{r[1]}: {r[0].method} {r[0].path} {r[0].headers or ''}: {r[2]}" for r in results if r[2]
    ]
    verify.mismatches += [f"ours (load) {p}" for p in problems if p.startswith("wrong_bytes")]
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in sorted({r[0].kind for r in results}):
        ms = [r[3] * 1e3 for r in results if r[0].kind == kind]
        by_kind[kind] = {"n": len(ms), "p50_ms": pct(ms, 50), "p95_ms": pct(ms, 95)}
    out = {
        "requests": len(results),
        "threads": args.load_threads,
        "errors": verdicts.get("error", 0),
        "wrong_bytes": verdicts.get("wrong_bytes", 0),
        "problems": problems[:50],
        "wall_s": wall,
        "throughput_rps": len(results) / wall,
        "mb_received": sum(r[4] for r in results) / MB,
        "transport_gzipped": sum(r[5] for r in results),
        "p50_ms": pct(lat, 50),
        "p95_ms": pct(lat, 95),
        "max_ms": max(lat) if lat else None,
        "by_kind": by_kind,
    }
    log(
        f"ours: load check {out['requests']} requests in {wall:.1f} s, errors {out['errors']}, "
        f"wrong bytes {out['wrong_bytes']}"
    )
    return out


# --------------------------------------------------------------------------- report
def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.1f} ms" if v < 1000 else f"{v / 1e3:.2f} s"


def _mb(v: float | None) -> str:
    return "-" if v is None else f"{v / MB:,.0f} MB"


def _ratio(up: float | None, ours: float | None) -> str:
    return f"{up / ours:,.1f}x" if up and ours else ""


def fmt_rows(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def first_and_repeat(
    ours: dict[str, Any], up: dict[str, Any], key: str, path: str
) -> list[tuple[str, str, str, str]]:
    size = ours.get(f"{key}_bytes", 0)
    size_text = f"{size / MB:.1f} MB" if size >= MB else f"{size / 1e3:.0f} kB"
    rows = []
    for suffix, label in (("_ms", "first"), ("_repeat_ms", f"median of {REPEATS} more")):
        a, b = ours.get(key + suffix), up.get(key + suffix)
        name = f"GET {path} ({size_text}), {label}"
        rows.append((name, _ms(a), _ms(b) if up else "-", _ratio(b, a) if up else ""))
    return rows


def before_rows(ours: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Genes read before the column cache existed: during its build, and (when the cache won
    that race) by a server that cannot build one."""
    before = ours.get("before_cache", [])
    scans = [
        _ms(b["ms"]) + ("*" if b.get("cache_ready_after") else "")
        for b in before
        if not b["cache_ready_before"]
    ]
    label = f"gene, cold, during the column cache build ({len(scans)} of {len(before)})"
    if any(s.endswith("*") for s in scans):
        label += " *: cache done by the answer"
    rows = [(label, ", ".join(scans) or "-", "", "")]
    if "scan_no_cache" in ours:
        scan = ours["scan_no_cache"]
        rows.append(
            (
                "gene, cold, no column cache (separate server)",
                ", ".join(_ms(g["ms"]) for g in scan["genes"]),
                "",
                "",
            )
        )
    return rows


def main_table(ours: dict[str, Any], up: dict[str, Any] | None) -> str:
    u = up or {}

    def row(label: str, key: str, fmt: Any = _ms) -> tuple[str, str, str, str]:
        a, b = ours.get(key), u.get(key)
        return (label, fmt(a), fmt(b) if up else "-", _ratio(b, a) if up else "")

    def sec(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f} s"

    scans = [b for b in ours.get("before_cache", []) if not b["cache_ready_before"]]
    n_up = u.get("cold", {}).get("n", 0)
    rows: list[tuple[str, ...]] = [
        ("", "ours", "upstream", "upstream/ours"),
        row("start-up (to first healthy /_cellucid/health)", "startup_s", sec),
        *first_and_repeat(ours, u, "identity", "/dataset_identity.json"),
        *first_and_repeat(ours, u, "obs_manifest", "/obs_manifest.json"),
        *first_and_repeat(ours, u, "var_manifest", "/var_manifest.json"),
        *first_and_repeat(ours, u, "points", "/points_2d.bin"),
        *first_and_repeat(ours, u, "obs_codes", "/" + CODES_PATH),
        *before_rows(ours),
        (
            "health max latency while slow genes are read",
            _ms(
                max(
                    ours.get("health_during_scan_max_ms", 0) if scans else 0,
                    ours.get("scan_no_cache", {}).get("health_max_ms", 0),
                )
                or None
            ),
            _ms(u.get("health_during_genes_max_ms")) if up else "-",
            "",
        ),
        (
            "column cache: build / ready after start",
            f"{ours.get('cache_build_s') or 0:.2f} s / {ours.get('cache_ready_after_start_s', 0):.2f} s",
            "",
            "",
        ),
    ]
    for label, key in (("cold (first request)", "cold"), ("warm (second request)", "warm")):
        for stat in ("median_ms", "p95_ms"):
            a, b = ours[key][stat], u.get(key, {}).get(stat)
            name = f"gene {label} {stat[:-3]} (ours {ours[key]['n']}, upstream {n_up})"
            rows.append((name, _ms(a), _ms(b) if up else "-", _ratio(b, a) if up else ""))
    rows += [
        row("RSS after start-up", "rss_after_start_bytes", _mb),
        row("peak RSS until healthy (start-up)", "rss_peak_startup_bytes", _mb),
        row("peak RSS from healthy to cache ready", "rss_peak_cache_build_bytes", _mb),
        row("peak RSS serving (genes, load check)", "rss_peak_serving_bytes", _mb),
        row("RSS at the end", "rss_end_bytes", _mb),
        row("peak RSS (whole run, incl. VmHWM)", "peak_rss_bytes", _mb),
    ]
    return fmt_rows(rows)


def load_table(load: dict[str, Any]) -> str:
    rows: list[tuple[str, ...]] = [("kind", "n", "p50", "p95")]
    for kind, s in load["by_kind"].items():
        rows.append((kind, str(s["n"]), _ms(s["p50_ms"]), _ms(s["p95_ms"])))
    rows.append(("all", str(load["requests"]), _ms(load["p50_ms"]), _ms(load["p95_ms"])))
    head = (
        f"load check (ours): {load['requests']:,} requests, {load['threads']} threads, "
        f"{load['wall_s']:.1f} s, {load['throughput_rps']:,.0f} req/s, "
        f"{load['mb_received']:,.0f} MB received ({load['transport_gzipped']} transport-gzipped); "
        f"errors {load['errors']}, wrong bytes {load['wrong_bytes']}, max {_ms(load['max_ms'])}"
    )
    return head + "\n" + fmt_rows(rows)


def verdicts(
    ours: dict[str, Any], up: dict[str, Any] | None, ref: Reference, verify: Verifier
) -> list[dict[str, Any]]:
    checks = []
    med = ours["cold"]["median_ms"]
    checks.append(
        {
            "check": f"ours per-gene median, column cache ready < {GENE_TARGET_MS:g} ms",
            "value": _ms(med),
            "pass": med < GENE_TARGET_MS,
            "target": True,
        }
    )
    if up is not None and up["cold"]["n"]:
        speed = up["cold"]["median_ms"] / med
        checks.append(
            {
                "check": f"ours >= {SPEED_TARGET:g}x faster per gene than upstream (cold medians)",
                "value": f"{speed:,.1f}x",
                "pass": speed >= SPEED_TARGET,
                "target": True,
            }
        )
    budget = ref.embeddings_bytes + ref.obs_bytes + MEMORY_SLACK
    checks.append(
        {
            "check": "ours peak RSS <= embeddings + obs + 500 MB",
            "value": f"{ours['peak_rss_bytes'] / MB:,.0f} MB <= "
            f"{ref.embeddings_bytes / MB:,.0f} + {ref.obs_bytes / MB:,.0f} + 500 = "
            f"{budget / MB:,.0f} MB",
            "pass": ours["peak_rss_bytes"] <= budget,
            "target": True,
        }
    )
    checks.append(
        {
            "check": "every checked payload equals the independent bytes",
            "value": f"{verify.checked:,} payloads, {len(verify.mismatches)} wrong",
            "pass": not verify.mismatches,
        }
    )
    if "load" in ours:
        load = ours["load"]
        checks.append(
            {
                "check": "load check: 0 errors, 0 wrong bytes",
                "value": f"{load['requests']:,} requests, {load['errors']} errors, "
                f"{load['wrong_bytes']} wrong",
                "pass": load["errors"] == 0 and load["wrong_bytes"] == 0,
            }
        )
    return checks


# --------------------------------------------------------------------------- main
def gene_plan(n_genes: int, args: argparse.Namespace) -> dict[str, list[int]]:
    """Disjoint random gene sets: before the cache, measured (cold/warm), new in the load."""
    rng = np.random.default_rng(args.seed + 1)
    n_before, n_measure = args.before_genes, args.sample
    n_new = min(40, max(0, n_genes - n_before - n_measure))
    order = rng.permutation(n_genes)[: n_before + n_measure + n_new].tolist()
    before, measure = order[:n_before], order[n_before : n_before + n_measure]
    return {
        "before": before,
        "measure": measure,
        "hot": measure[:10],
        "pool": before + measure,
        "new": order[n_before + n_measure :],
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description="Benchmark our AnnData server against upstream cellucid 0.0.9 over HTTP.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_size_arguments(ap, FULL, QUICK)
    ap.add_argument("--sample", type=int, default=50, help="genes timed cold and warm")
    ap.add_argument("--before-genes", type=int, default=3, help="genes read before the cache")
    ap.add_argument(
        "--upstream-genes", type=int, default=None, help="upstream genes (default: --sample)"
    )
    ap.add_argument("--upstream-timeout", type=float, default=120.0, help="s per upstream request")
    ap.add_argument("--upstream-budget", type=float, default=300.0, help="s for upstream genes")
    ap.add_argument("--skip-upstream", action="store_true")
    ap.add_argument("--timeout", type=float, default=120.0, help="s per request to ours")
    ap.add_argument("--start-timeout", type=float, default=300.0, help="s to become healthy")
    ap.add_argument("--cache-timeout", type=float, default=600.0, help="s for the column cache")
    ap.add_argument("--load-requests", type=int, default=2000)
    ap.add_argument("--load-threads", type=int, default=8)
    ap.add_argument("--workdir", type=Path, default=None, help="parent of the temp dir")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (h5ad, cache, logs)")
    ap.add_argument("--generate-only", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--gen-result", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    default = QUICK if args.quick else FULL
    args.cells = args.cells or default[0]
    args.genes = args.genes or default[1]
    if args.upstream_genes is None:
        args.upstream_genes = args.sample

    if args.generate_only is not None:
        import resource

        info = generate(args.generate_only, args.cells, args.genes, args.density, args.seed)
        info["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if args.gen_result:
            args.gen_result.write_text(json.dumps(info), encoding="utf-8")
        return 0

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # started in the background by a shell: the servers would inherit the ignored SIGINT
        # and could not be stopped with it; a handler is reset to the default on exec
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if not args.skip_upstream:
        try:
            upstream_python()
        except UpstreamNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="cellucid-server-bench-", dir=args.workdir))
    log(f"work dir {work}")
    t_all = time.perf_counter()
    verify = Verifier()
    ours: dict[str, Any] = {}
    up: dict[str, Any] | None = None
    try:
        h5ad = work / "bench.h5ad"
        log(f"generating {args.cells:,} cells x {args.genes:,} genes, density {args.density:g} ...")
        gen = generate_in_child(h5ad, args)
        log(
            f"wrote {h5ad.name}: {gen['file_bytes'] / MB:,.0f} MB, nnz {gen['nnz']:,}, "
            f"{gen['wall_s']:.0f} s, generator peak RSS {gen['peak_rss_bytes'] / MB:,.0f} MB"
        )
        plan = gene_plan(args.genes, args)
        t0 = time.perf_counter()
        ref = build_reference(h5ad, np.array(plan["pool"] + plan["new"], dtype=np.int64))
        log(
            f"independent references for {len(ref.genes)} genes in {time.perf_counter() - t0:.0f} s"
        )
        ours = run_ours(args, h5ad, work, ref, plan, verify)
        if not args.skip_upstream:
            up = run_upstream(args, h5ad, work, ref, plan, verify)
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    total = time.perf_counter() - t_all

    checks = verdicts(ours, up, ref, verify)
    print(
        f"\ncellucid server benchmark: {args.cells:,} cells x {args.genes:,} genes, density "
        f"{args.density:g} (backed CSR .h5ad, {gen['file_bytes'] / MB:,.0f} MB, nnz "
        f"{gen['nnz']:,}); {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"{total / 60:.1f} min in all"
    )
    print(main_table(ours, up))
    idle = ours.get("basics_after_cache_ms", {})
    when = ", while its column cache was being built" if ours.get("basics_during_build") else ""
    print(
        f"(ours' file timings above: right after start-up{when}; again once the cache was "
        "ready, medians of 5: " + ", ".join(f"{k} {_ms(v)}" for k, v in idle.items()) + ")"
    )
    if up is not None and not up.get("points_exact", True):
        print(
            f"(upstream's points_2d.bin differs from the SPEC formula by up to "
            f"{up['points_max_abs_diff']:.2g}: it normalises in float32)"
        )
    if up is not None and up.get("gene_error"):
        print(f"(upstream gene request failed: {up['gene_error']})")
    if "load" in ours:
        print()
        print(load_table(ours["load"]))
        for p in ours["load"]["problems"][:10]:
            print(f"  problem: {p}")
    print()
    for c in checks:
        print(f"{'PASS' if c['pass'] else 'FAIL'}  {c['check']:<66} {c['value']}")
    for m in verify.mismatches[:20]:
        print(f"  WRONG: {m}")
    if args.quick:
        print(QUICK_NOTE)

    payload = {
        "cells": args.cells,
        "genes": args.genes,
        "density": args.density,
        "seed": args.seed,
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        },
        "generation": gen,
        "budget": {"embeddings_bytes": ref.embeddings_bytes, "obs_bytes": ref.obs_bytes},
        "plan": {k: [gene_name(j) for j in v] for k, v in plan.items()},
        "ours": ours,
        "upstream": up,
        "mismatches": verify.mismatches,
        "payloads_checked": verify.checked,
        "checks": checks,
        "total_s": total,
    }
    dest = write_results(f"server-{args.cells}x{args.genes}", payload)
    log(f"results written to {dest}")
    return exit_status(checks, args.quick)


if __name__ == "__main__":
    sys.exit(main())
