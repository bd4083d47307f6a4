"""One timed export in a fresh process (started by ``benchmarks/run.py``, not by hand).

Runs under either interpreter: ours (this repository's ``python/`` on ``PYTHONPATH``) or the
upstream ``cellucid==0.0.9`` virtualenv, so it imports nothing but anndata, numpy and the
``cellucid`` of that interpreter. It loads the ``.h5ad`` fully into memory, imports the
exporter, then times only the export call and writes a JSON result::

    python child.py --tool ours|upstream --h5ad IN.h5ad --out OUT_DIR --compression 6 --result R.json

Memory: ``peak_rss`` is the process's lifetime peak (``ru_maxrss``). Loading an h5ad can
peak above the loaded size, so the export's own peak is measured too: after loading, the
kernel's high-water mark is reset (``/proc/self/clear_refs``, Linux) and ``VmHWM`` is read
after the export. ``export_peak_rss - rss_before`` is what the export added.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path


def _status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` value in KiB (Linux), else None."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _maxrss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def _input_bytes(adata) -> dict[str, int]:
    """In-memory size of what is exported: X (CSR arrays or dense), obsm, obs."""
    x = adata.X
    if hasattr(x, "indptr"):
        x_bytes = x.data.nbytes + x.indices.nbytes + x.indptr.nbytes
    else:
        x_bytes = x.nbytes
    obsm = sum(getattr(adata.obsm[k], "nbytes", 0) for k in adata.obsm)
    obs = int(adata.obs.memory_usage(index=True, deep=True).sum())
    return {"X": int(x_bytes), "obsm": int(obsm), "obs": obs, "total": int(x_bytes + obsm + obs)}


def _folder_bytes(path: Path) -> tuple[int, int]:
    """Apparent size (like ``du -sb``) and file count of a folder."""
    total = files = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            total += os.lstat(os.path.join(root, name)).st_size
            files += 1
    return total, files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tool", choices=("ours", "upstream"), required=True)
    ap.add_argument("--h5ad", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--compression", type=int, default=0, help="gzip level; 0 = off")
    ap.add_argument("--result", type=Path, required=True)
    ap.add_argument("--expect-source", help="ours: the cellucid package must live under this path")
    args = ap.parse_args()

    t_load = time.perf_counter()
    import anndata

    adata = anndata.read_h5ad(args.h5ad)  # fully in memory
    load_s = time.perf_counter() - t_load
    inputs = _input_bytes(adata)

    import cellucid

    source = str(Path(cellucid.__file__).resolve())
    if args.expect_source and not source.startswith(str(Path(args.expect_source).resolve())):
        raise SystemExit(f"wrong cellucid imported for {args.tool}: {source}")
    from importlib import metadata

    prepare = cellucid.prepare  # resolved (and imported) before the clock starts
    if args.tool == "upstream":
        version = metadata.version("cellucid")

        def export() -> None:
            prepare(
                latent_space=adata.obsm["X_pca"],
                obs=adata.obs,
                var=adata.var,
                gene_expression=adata.X,
                X_umap_2d=adata.obsm["X_umap"],
                out_dir=args.out,
                compression=args.compression or None,
            )

    else:
        version = getattr(cellucid, "__version__", "?")

        def export() -> None:
            prepare(adata, args.out, compression=args.compression or None, quiet=True)

    gc.collect()
    rss_before = (_status_kib("VmRSS") or 0) * 1024
    hwm_reset = _reset_peak_rss()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # upstream prints its progress to stdout
        export()
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    hwm = _status_kib("VmHWM")
    peak_rss = _maxrss_bytes()
    export_peak = hwm * 1024 if (hwm_reset and hwm is not None) else peak_rss
    out_bytes, out_files = _folder_bytes(args.out)

    result = {
        "tool": args.tool,
        "version": version,
        "cellucid_file": source,
        "python": sys.executable,
        "compression": args.compression or None,
        "load_s": load_s,
        "wall_s": wall,
        "cpu_s": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
        "input_bytes": inputs,
        "rss_before_bytes": rss_before,
        "peak_rss_bytes": peak_rss,
        "export_peak_rss_bytes": export_peak,
        "export_peak_measured": "VmHWM after reset" if hwm_reset else "ru_maxrss (lifetime)",
        "export_delta_rss_bytes": export_peak - rss_before,
        "output_bytes": out_bytes,
        "output_files": out_files,
        "n_obs": int(adata.n_obs),
        "n_vars": int(adata.n_vars),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }
    args.result.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
