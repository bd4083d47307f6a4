"""Compare groups on the server: ``POST /_cellucid/compare`` (see PROTOCOL.md).

The viewer sends two binary cell sets; the Python engine (:mod:`cellucid.analysis`) ranks
every gene on a worker thread, never on the event loop, and the answer streams back as
NDJSON lines while blocks of genes finish. :class:`CompareService` holds what outlives a
request: the opened expression data per dataset, one worker (comparisons queue rather than
compete for the two cores), and each viewer's latest result for Python
(``viewer.last_comparison``).
"""

from __future__ import annotations

import json
import math
import secrets
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..analysis.table import COLUMNS, METHODS
from ..sources.base import DatasetEntry

if TYPE_CHECKING:  # the engine (pandas, numba, scipy) is imported by the first comparison
    from ..analysis.expression import Expression
    from ..analysis.groups import Groups
    from ..analysis.ranking import Comparison

MAX_HEADER = 64 * 1024
ENCODINGS = ("u32", "bitset")
ROW_COLUMNS = [c for c in COLUMNS if c not in ("names", "pvals_adj")] + [
    "mean_group",
    "mean_reference",
]


class CompareRequestError(Exception):
    """A request to answer with a JSON error (``status``, ``message``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class CompareRequest:
    """A parsed body of ``POST /_cellucid/compare``."""

    method: str
    tie_correct: bool
    n_genes: int | None
    group: np.ndarray
    reference: np.ndarray | None  # None: the rest
    group_label: str
    reference_label: str


def max_body_bytes(n_cells: int) -> int:
    """The largest body a request about ``n_cells`` cells may have."""
    return 4 + MAX_HEADER + 2 * (4 * n_cells + 16)


def _cells(raw: bytes, encoding: str, n_cells: int, what: str) -> np.ndarray:
    if encoding == "u32":
        if len(raw) % 4:
            raise CompareRequestError(400, f"{what}: u32 cells need a multiple of 4 bytes")
        cells = np.frombuffer(raw, dtype="<u4").astype(np.int64)
        if cells.size and int(cells.max()) >= n_cells:
            raise CompareRequestError(400, f"{what}: cell {int(cells.max())} >= n_cells {n_cells}")
        return cells
    expected = (n_cells + 7) // 8
    if len(raw) != expected:
        raise CompareRequestError(
            400, f"{what}: a bitset of {n_cells} cells has {expected} bytes, not {len(raw)}"
        )
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")
    if bits[n_cells:].any():
        raise CompareRequestError(400, f"{what}: bits set beyond n_cells")
    return np.flatnonzero(bits[:n_cells])


def parse_body(body: bytes, n_cells: int) -> CompareRequest:
    """Check and decode a request body (layout in PROTOCOL.md)."""
    if len(body) < 4:
        raise CompareRequestError(400, "body too short: it starts with a u32 header length")
    (header_len,) = struct.unpack_from("<I", body, 0)
    if not 1 <= header_len <= MAX_HEADER or 4 + header_len > len(body):
        raise CompareRequestError(400, f"header length {header_len} is out of range")
    try:
        header = json.loads(body[4 : 4 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CompareRequestError(400, "header is not valid UTF-8 JSON") from None
    if not isinstance(header, dict):
        raise CompareRequestError(400, "header must be a JSON object")
    method = header.get("method", "wilcoxon")
    if method not in METHODS:
        raise CompareRequestError(400, f"method must be one of {', '.join(METHODS)}")
    tie_correct = header.get("tieCorrect", False)
    if not isinstance(tie_correct, bool):
        raise CompareRequestError(400, "tieCorrect must be true or false")
    n_genes = header.get("nGenes")
    if n_genes is not None and (
        not isinstance(n_genes, int) or isinstance(n_genes, bool) or n_genes < 1
    ):
        raise CompareRequestError(400, "nGenes must be a positive integer or null")
    if header.get("layer") is not None:
        raise CompareRequestError(
            400, "this server compares the matrix it serves; send layer: null"
        )
    offset = 4 + header_len
    sets: list[tuple[np.ndarray, str] | None] = []
    for what in ("group", "reference"):
        spec = header.get(what)
        if what == "reference" and spec == "rest":
            sets.append(None)
            continue
        if not isinstance(spec, dict):
            allowed = "an object" if what == "group" else 'an object or "rest"'
            raise CompareRequestError(400, f"{what} must be {allowed}")
        encoding, size, label = spec.get("encoding"), spec.get("bytes"), spec.get("label", what)
        if encoding not in ENCODINGS:
            raise CompareRequestError(400, f"{what}.encoding must be 'u32' or 'bitset'")
        if (
            not isinstance(size, int)
            or isinstance(size, bool)
            or size < 0
            or offset + size > len(body)
        ):
            raise CompareRequestError(400, f"{what}.bytes does not fit the body")
        if not isinstance(label, str):
            raise CompareRequestError(400, f"{what}.label must be a string")
        sets.append((_cells(body[offset : offset + size], encoding, n_cells, what), label[:200]))
        offset += size
    if offset != len(body):
        raise CompareRequestError(400, f"{len(body) - offset} bytes after the cell sets")
    group = sets[0]
    reference = sets[1]
    assert group is not None
    return CompareRequest(
        method=method,
        tie_correct=tie_correct,
        n_genes=n_genes,
        group=group[0],
        reference=None if reference is None else reference[0],
        group_label=group[1],
        reference_label="rest" if reference is None else reference[1],
    )


def _numbers(values: np.ndarray) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in np.asarray(values, np.float64).tolist()]


def line(obj: dict[str, Any]) -> bytes:
    """One NDJSON line (compact, no NaN)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def rows_line(
    comparison_names: np.ndarray,
    positions: np.ndarray,
    columns: dict[str, np.ndarray],
    done: int,
    total: int,
) -> bytes:
    body: dict[str, Any] = {
        "type": "rows",
        "done": done,
        "total": total,
        "genes": np.asarray(positions).astype(int).tolist(),
        "names": [str(n) for n in comparison_names[positions]],
    }
    for name in ROW_COLUMNS:
        body[name] = _numbers(columns[name])
    return line(body)


def result_line(comparison: Comparison, n_genes: int | None) -> bytes:
    order = comparison.order()
    if n_genes is not None:
        order = order[:n_genes]
    body: dict[str, Any] = {
        "type": "result",
        "genes": order.astype(int).tolist(),
        "names": [str(n) for n in comparison.names[order]],
    }
    for name in [*COLUMNS[1:], "mean_group", "mean_reference"]:
        values = comparison.columns[name][order]
        if name in ("scores", "logfoldchanges"):
            values = values.astype(np.float32)  # what the Python table holds
        body[name] = _numbers(values)
    return line(body)


@dataclass
class StoredComparison:
    """A finished comparison of one viewer."""

    comparison_id: str
    comparison: Comparison
    n_genes: int | None


class CompareService:
    """State shared by compare requests of one server (see the module docstring)."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self._lock = threading.Lock()
        self._expressions: dict[str, Expression] = {}
        self._latest: dict[str, StoredComparison] = {}
        self._listeners: list[Callable[[str, StoredComparison], None]] = []
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="cellucid-compare-job")

    # ----- data
    def expression(self, dataset: DatasetEntry) -> Expression:
        """The genes of ``dataset`` (409 when it has none)."""
        from ..analysis.expression import expression_of_dataset, open_expression

        dataset_obj = getattr(self.source, "dataset", None)
        if dataset_obj is not None and hasattr(dataset_obj, "gene_columns"):
            if dataset_obj.genes is None or not dataset_obj.gene_ids:
                raise CompareRequestError(409, "this dataset has no genes to compare")
            return expression_of_dataset(dataset_obj)  # picks up a cache that became ready
        with self._lock:
            known = self._expressions.get(dataset.path)
        if known is not None:
            return known
        dirs = getattr(self.source, "_dirs", None)
        if not dirs or dataset.path not in dirs:
            raise CompareRequestError(409, "this server cannot compare genes of this dataset")
        try:
            expr = open_expression(Path(dirs[dataset.path]))
        except ValueError as exc:
            raise CompareRequestError(409, str(exc)) from None
        with self._lock:
            return self._expressions.setdefault(dataset.path, expr)

    def obs(self, dataset: DatasetEntry) -> Any:
        """Cell annotations of ``dataset`` as a DataFrame (for ``(obs_key, category)`` groups
        from Python), or ``None``. Read on demand: the AnnData server keeps none in memory
        for files."""
        adata = getattr(self.source, "adata", None)
        if adata is not None:
            return adata.obs
        path = getattr(self.source, "path", None)
        if path is not None and getattr(self.source, "kind", None) == "anndata":
            from anndata.io import read_elem

            from ..storage.backed import BackedMatrix

            options = getattr(self.source, "storage_options", None)
            with BackedMatrix.open(path, attach_cache=False, storage_options=options) as matrix:
                return read_elem(matrix.root["obs"]) if "obs" in matrix.root else None
        dirs = getattr(self.source, "_dirs", None)
        if dirs and dataset.path in dirs:
            from ..export.reader import ExportReader

            return ExportReader(dirs[dataset.path]).obs_frame()
        return None

    def groups(self, request: CompareRequest, n_cells: int) -> Groups:
        from ..analysis.groups import Groups, resolve_groups

        try:
            groups = resolve_groups(
                request.group, "rest" if request.reference is None else request.reference, n_cells
            )
        except (ValueError, TypeError, IndexError) as exc:
            raise CompareRequestError(400, str(exc)) from None
        return Groups(
            groups.codes,
            groups.n_group,
            groups.n_reference,
            request.group_label,
            request.reference_label,
            groups.reference_is_rest,
        )

    # ----- results
    def store(self, viewer_id: str, stored: StoredComparison) -> None:
        with self._lock:
            self._latest[viewer_id] = stored
            listeners = list(self._listeners)
        for listener in listeners:
            listener(viewer_id, stored)

    def latest(self, viewer_id: str) -> StoredComparison | None:
        """The last comparison a viewer completed, or ``None``."""
        with self._lock:
            return self._latest.get(viewer_id)

    def add_listener(self, listener: Callable[[str, StoredComparison], None]) -> None:
        """Call ``listener(viewer_id, stored)`` (on the worker thread) after each comparison."""
        with self._lock:
            self._listeners.append(listener)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            expressions = list(self._expressions.values())
            self._expressions.clear()
        for expr in expressions:
            expr.close()

    # ----- running
    def run(
        self,
        viewer_id: str,
        request: CompareRequest,
        expr: Expression,
        groups: Groups,
        emit: Callable[[bytes], None],
        cancel: threading.Event,
    ) -> StoredComparison | None:
        """Run one comparison on the calling thread, emitting the NDJSON lines; ``None``
        when cancelled. Engine errors become an ``error`` line."""
        from ..analysis.rank_index import ComparisonCancelled
        from ..analysis.ranking import compare_expression
        from ..analysis.statistics import describe

        comparison_id = "c" + secrets.token_hex(6)
        emit(
            line(
                {
                    "type": "start",
                    "comparisonId": comparison_id,
                    "method": request.method,
                    "tieCorrect": request.tie_correct,
                    "statistic": describe(request.method, request.tie_correct, expr.quantized),
                    "nGenes": int(expr.names.size),
                    "groupSize": groups.n_group,
                    "referenceSize": groups.n_reference,
                }
            )
        )
        done = 0

        def on_rows(positions: np.ndarray, columns: dict[str, np.ndarray]) -> None:
            nonlocal done
            done += len(positions)
            emit(rows_line(expr.names, positions, columns, done, int(expr.names.size)))

        try:
            comparison = compare_expression(
                expr,
                groups,
                method=request.method,
                tie_correct=request.tie_correct,
                on_rows=on_rows,
                cancel=cancel,
            )
        except ComparisonCancelled:
            return None
        except (ValueError, RuntimeError, OSError) as exc:
            emit(line({"type": "error", "message": str(exc)}))
            return None
        comparison.extra["comparison_id"] = comparison_id
        emit(result_line(comparison, request.n_genes))
        stored = StoredComparison(comparison_id, comparison, request.n_genes)
        self.store(viewer_id, stored)
        return stored


def comparison_event(stored: StoredComparison) -> dict[str, Any]:
    """The ``comparison`` event for the viewer's Python channel (PROTOCOL.md)."""
    c = stored.comparison
    g = c.groups
    return {
        "type": "comparison",
        "comparisonId": stored.comparison_id,
        "method": c.method,
        "tieCorrect": c.tie_correct,
        "statistic": c.statistic,
        "group": {"label": g.group_label, "size": g.n_group},
        "reference": "rest"
        if g.reference_is_rest
        else {"label": g.reference_label, "size": g.n_reference},
        "nGenes": int(c.names.size),
    }


def find_dataset(source: Any, dataset_id: str | None) -> DatasetEntry:
    """The dataset a request names (404), or the only one when it names none (400 if several)."""
    entries = source.datasets()
    if dataset_id is None:
        if len(entries) == 1:
            return entries[0]
        raise CompareRequestError(400, "this server has several datasets: add dataset=<id>")
    for entry in entries:
        if entry.id == dataset_id:
            return entry
    raise CompareRequestError(404, "no dataset with that id on this server")


def answer_whole(
    service: CompareService, registry: Any, query: dict[str, str], body: bytes
) -> tuple[int, dict[str, Any] | bytes]:
    """The whole answer at once, for transports without streaming (the widget's comm):
    ``(status, JSON error body)`` or ``(200, NDJSON bytes)``."""
    from .registry import EventRequestError

    try:
        channel = registry.authenticate(query.get("viewerId"), query.get("viewerToken"))
    except EventRequestError as exc:
        return exc.status, exc.body
    try:
        entry = find_dataset(service.source, query.get("dataset"))
        expr = service.expression(entry)
        if len(body) > max_body_bytes(expr.n_cells):
            raise CompareRequestError(413, f"body exceeds {max_body_bytes(expr.n_cells)} bytes")
        request = parse_body(body, expr.n_cells)
        groups = service.groups(request, expr.n_cells)
    except CompareRequestError as exc:
        return exc.status, {"status": "error", "message": exc.message}
    lines: list[bytes] = []
    stored = service.executor.submit(
        service.run, channel.viewer_id, request, expr, groups, lines.append, threading.Event()
    ).result()
    if stored is not None:
        registry.deliver_server_event(channel.viewer_id, comparison_event(stored))
    return 200, b"".join(lines)
