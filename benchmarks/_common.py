"""Small pieces the benchmark scripts share: growable CSR groups in an .h5ad and results files."""

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


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus its time stamp) to ``benchmarks/results/<stamp>-<name>.json``."""
    RESULTS.mkdir(exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    dest = RESULTS / f"{stamp}-{name}.json"
    dest.write_text(json.dumps({"created": stamp, **payload}, indent=2), encoding="utf-8")
    return dest


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
