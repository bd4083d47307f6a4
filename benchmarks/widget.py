"""Widget benchmark: viewer → Python selection latency and the comm transport's throughput,
in a real JupyterLab with Debian's Chromium.

One command::

    python benchmarks/widget.py            # 1,000,000 cells; ~100 MB for the throughput test
    python benchmarks/widget.py --quick    # 200,000 cells; ~20 MB
    python benchmarks/widget.py --cells N [--sizes a,b,c] [--repeats R] [--rounds K] [--keep]

JupyterLab and Chromium are driven by the harness of the Jupyter tests
(``tests/jupyter/_lab.py``: an isolated ``jupyter lab`` in its own process group, a notebook
opened in Chromium, cells run through ``window.jupyterapp``, ``kernel_eval`` for short
reads). The kernel builds a synthetic AnnData (``benchmarks/_widget_kernel.py``): N cells in
12 blobs of a 2D ``X_umap``, a categorical ``cluster`` and 23 float32 obs columns; no data
files. The kernel's side is instrumented by ``_widget_kernel.Probe`` (time stamps of each
path's ``deliver``, of the trait update and of a ``viewer.observe(..., names="selection")``
observer), the page's side by event listeners; every clock is the same machine's epoch
clock: ``time.time()`` in the kernel, ``performance.timeOrigin + performance.now()`` in the
pages.

Drawing: SwiftShader (software WebGL) needs 10-60 s of all CPUs for one frame of 1M
points, which would compete with everything measured (a GPU draws it in milliseconds). So
once a viewer has reported ready, its iframe is hidden (``display: none``: Chromium stops
drawing it; its scripts, messages and fetches run as usual) and the benchmark waits until
Chromium's processes are idle. Nothing is drawn afterwards.

1. **Selection latency.** The canvas is never touched: inside the viewer iframe a set of
   cells is drawn at random and ``window.__cellucid.userSelect(cells, "replace", "lasso")``
   is called, exactly what the lasso tool calls; its time stamp ``t0`` is taken just
   before. The bridge then sends the ``selection`` event. Latency = the kernel's observer
   time - ``t0`` ("recorded" = when the trait value was set, before observers run). Each
   trial starts from an empty selection (a ``clear`` event, awaited in the kernel) and no
   cell runs meanwhile; the kernel is only polled (``kernel_eval``) once the page saw the
   widget relay the event to the comm (so the poll is queued after it) and the bridge's
   HTTP outbox is idle.

   * ``default``: ``CellucidWidget(adata)`` (transport ``auto`` → http through
     jupyter-server-proxy): the event goes both by ``POST /_cellucid/events`` and over the
     comm; the first one is recorded ("won by"), the other counted as a duplicate
     ("http-comm": when the HTTP copy reached ``deliver`` minus when the comm copy did).
   * ``comm``: ``CellucidWidget(adata, transport="comm")``: the viewer page itself is
     loaded over the comm; events only come over the comm.

   Sizes: 1,000 cells (a JSON list), N/50 (``u32-base64``), N/10, N/2 and N (``bitset-base64``,
   N/8 bytes); "chars": base64 characters of the cells. Stages (medians, largest size): ``select`` (combine + scene update, before
   the bridge), ``encode+post`` (the bridge encodes and posts / queues the POST),
   ``to parent`` (postMessage to the notebook page), ``relay`` (the widget front end:
   base64 → bytes, comm send), ``to kernel`` (websocket → server → kernel → ``deliver``),
   ``decode+record`` (``deliver``: base64/bitset → uint32, record, trait value),
   ``dispatch`` (until the channel's dispatcher thread runs the trait notification),
   ``echo encode`` + ``echo send`` (ipywidgets sends the new ``selection`` state back to
   the front end first: ``cells_to_json``, then the comm message), ``observer`` (the rest,
   until our observer runs); for HTTP ``POST→deliver`` (fetch, proxy, cellucid server, JSON
   parse). "HTTP lost": trials whose ``POST /_cellucid/events`` failed in the browser (the
   bridge's ``eventsFailed``); the kernel then only gets the comm's copy.

2. **Throughput.** Inside each widget's iframe, the points file ``points_2d.bin`` (8 bytes a
   cell) and the 23 ``obs/fNN.values.f32`` files (4 bytes a cell: 100 MB in all at 1M cells)
   are fetched with ``fetch(url, {cache: "no-store"})`` + ``arrayBuffer()`` one after the
   other ("sequential") and all at once ("concurrent"), after one untimed warm-up pass:
   in the comm iframe ``url`` is under ``COMM_BASE``, i.e. the viewer's comm fetch (iframe →
   front end → comm → kernel → ``CommFiles`` → comm in <= 4 MiB parts → iframe); in the
   http iframe the same paths from its server through jupyter-server-proxy (what the viewer
   uses), and from the notebook page directly from the cellucid server's port (CORS; the
   viewer page's CSP keeps it on its own origin). MB/s = decoded bytes / time;
   the HTTP server gzips these generated files on the fly (level 1; random floats shrink
   little): "wire MB" is what crossed the network (Resource Timing, when visible). A
   checksum of every file must match across transports.

The table goes to stdout, progress to stderr, the results to
``benchmarks/results/<stamp>-widget-<cells>.json`` (gitignored). Target (PASS/FAIL, only
at 1,000,000 cells): the default path's median 1M-cell latency < 300 ms. Checks: the same
bytes over every transport, and no error inside the kernel's probe. Exit 1 when one of
them fails (with ``--quick`` only the checks: ``make bench-quick`` in CI), 2 when the
benchmark could not run. JupyterLab, its kernels and Chromium are always shut down.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (  # benchmarks/_common.py (this script's folder)
    QUICK_NOTE,
    exit_status,
    write_results,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "jupyter"))
from _lab import LabNotebook, launch_chromium, start_server  # noqa: E402  (tests/jupyter/_lab.py)

MB = 1e6
FULL_CELLS = 1_000_000
QUICK_CELLS = 200_000
FLOAT_OBS = 23  # with points_2d.bin: 8 + 23 * 4 = 100 bytes a cell
TARGET_MS = 300.0
TARGET_CELLS = 1_000_000
HEIGHT = 300  # px: a small canvas draws faster in software WebGL
POLL_S = 0.03
EVENT_TIMEOUT = 60.0  # s for an event to reach the kernel
OTHER_PATH_WAIT = 5.0  # s to wait for the second copy of an event (default transport)
BROWSER_IDLE_TIMEOUT = 180.0  # s for Chromium to finish drawing a loaded viewer

# ---- page scripts ---------------------------------------------------------------------------

# In the notebook page, for every viewer: when each of its selection messages arrives.
# Installed before any widget is displayed: listeners of a target run in the order they were
# added (capture or not, in this Chromium), so this one runs before the widget's own.
JS_ARRIVE_LISTENER = """() => {
  if (window.__benchRelay) return;
  const all = window.__benchRelay = {};
  const now = () => performance.timeOrigin + performance.now();
  window.addEventListener("message", (e) => {
    const d = e.data;
    if (!d || typeof d !== "object" || d.type !== "selection" || typeof d.viewerId !== "string") return;
    const c = d.cells;
    const list = Array.isArray(c);
    (all[d.viewerId] = all[d.viewerId] || []).push({
      eventId: d.eventId, arrive: now(), relayed: null,
      form: list ? "list" : String(c && c.encoding),
      chars: !list && c && typeof c.data === "string" ? c.data.length : null,
      count: list ? c.length : c && c.count });
  });
}"""

# ... and when the widget has relayed it to the comm: added after the widget's view rendered,
# so it runs after the widget's listener.
JS_RELAYED_LISTENER = """(viewerId) => {
  const flag = `__benchRelayed_${viewerId}`;
  if (window[flag]) return;
  window[flag] = true;
  const now = () => performance.timeOrigin + performance.now();
  window.addEventListener("message", (e) => {
    const d = e.data;
    if (!d || typeof d !== "object" || d.type !== "selection" || d.viewerId !== viewerId) return;
    const entry = (window.__benchRelay[viewerId] || []).find((x) => x.eventId === d.eventId);
    if (entry) entry.relayed = now();
  });
}"""

JS_RELAY_COUNT = "(viewerId) => (window.__benchRelay[viewerId] || []).length"
JS_RELAYED = """([viewerId, n]) => {
  const log = window.__benchRelay[viewerId] || [];
  return log.length > n && log[n].relayed !== null;
}"""
JS_RELAY_ENTRY = "([viewerId, n]) => window.__benchRelay[viewerId][n]"

# In the viewer iframe: the bridge subscribed to the viewer's events first, so these
# listeners run after it ("selection": the bridge has encoded and sent the event).
JS_FRAME_LISTENERS = """() => {
  if (window.__benchTimes) return;
  const T = window.__benchTimes = { selchange: null, sent: null };
  const now = () => performance.timeOrigin + performance.now();
  window.__cellucid.on("selectionchange", () => { T.selchange = now(); });
  window.__cellucid.on("selection", () => { T.sent = now(); });
}"""

# Draw `size` distinct cells (a seeded partial Fisher-Yates; all cells when size >= n; none
# when size is 0), then time userSelect. Drawing the cells is not timed.
JS_SELECT = """({ size, seed }) => {
  const v = window.__cellucid;
  const n = v.nCells;
  let cells;
  if (size >= n) {
    cells = new Uint32Array(n);
    for (let i = 0; i < n; i++) cells[i] = i;
  } else if (size === 0) {
    cells = new Uint32Array(0);
  } else {
    const idx = new Uint32Array(n);
    for (let i = 0; i < n; i++) idx[i] = i;
    let s = (seed * 2654435761) >>> 0 || 1;
    for (let i = 0; i < size; i++) {
      s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
      const j = i + (s % (n - i));
      const t = idx[i]; idx[i] = idx[j]; idx[j] = t;
    }
    cells = idx.slice(0, size).sort();
  }
  const T = window.__benchTimes;
  T.selchange = null; T.sent = null;
  const t0 = performance.timeOrigin + performance.now();
  v.userSelect(cells, "replace", size === 0 ? "clear" : "lasso");
  const t1 = performance.timeOrigin + performance.now();
  return { t0, t1, selchange: T.selchange, sent: T.sent, selected: v.selection.length,
           failed: window.__cellucidBridge.stats.eventsFailed,
           skewMs: Date.now() - (performance.timeOrigin + performance.now()) };
}"""

# Resolves once the bridge's HTTP outbox is idle: each queued POST was answered (Python
# has handled it) or failed (counted in eventsFailed).
JS_BRIDGE_IDLE = """async () => {
  await window.__cellucidBridge.idle();
  const s = window.__cellucidBridge.stats;
  return { failed: s.eventsFailed, error: s.lastEventError };
}"""

# The widget's iframe out of the layout: Chromium stops drawing it (see the module doc).
JS_HIDE_IFRAME = """(viewerId) => {
  const iframe = document.getElementById(`cellucid-iframe-${viewerId}`);
  if (!iframe) throw new Error(`no iframe of viewer ${viewerId}`);
  iframe.style.display = "none";
}"""

JS_VIEWER_READY = """() => Boolean(window.__cellucid && window.__cellucid.nCells > 0
  && window.__cellucid.dataset && window.__cellucidBridge
  && window.__cellucidBridge.stats.transport === "parent")"""

# Fetch `paths` (relative to the directory URL `base`) one after the other or all at once;
# time fetch + arrayBuffer; then checksums and Resource Timing's wire bytes (not timed).
JS_FETCH = """async ({ base, paths, concurrent }) => {
  const urls = paths.map((p) => new URL(p, base).href);
  const get = async (url) => {
    const r = await fetch(url, { cache: "no-store", credentials: "same-origin" });
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return new Uint8Array(await r.arrayBuffer());
  };
  performance.clearResourceTimings();
  const t0 = performance.now();
  let bufs;
  if (concurrent) bufs = await Promise.all(urls.map(get));
  else { bufs = []; for (const url of urls) bufs.push(await get(url)); }
  const ms = performance.now() - t0;
  const sums = bufs.map((b) => {
    const w = new Uint32Array(b.buffer, b.byteOffset, b.byteLength >> 2);
    let s = 0;
    for (let i = 0; i < w.length; i++) s = (s + w[i]) >>> 0;
    return s;
  });
  let wire = 0, seen = 0;
  for (const e of performance.getEntriesByType("resource")) {
    if (urls.includes(e.name) && e.encodedBodySize > 0) { wire += e.encodedBodySize; seen += 1; }
  }
  return { ms, bytes: bufs.reduce((n, b) => n + b.byteLength, 0), sizes: bufs.map((b) => b.byteLength),
           sums, wire: seen === urls.length ? wire : null };
}"""

JS_DATASET_BASE = "() => String(window.__cellucid.dataset.base)"


def log(msg: str) -> None:
    print(f"[widget-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def chromium_cpu_s() -> float:
    """CPU seconds used so far by this process's Chromium (descendants named chrom*)."""
    import psutil

    total = 0.0
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "chrom" in proc.name().lower():
                times = proc.cpu_times()
                total += times.user + times.system
    return total


def wait_browser_idle(timeout: float = BROWSER_IDLE_TIMEOUT, busy: float = 0.15) -> float | None:
    """Wait until Chromium uses less than ``busy`` of a core for a second (e.g. once
    SwiftShader has drawn a 1M-point frame); the seconds waited, ``None`` after ``timeout``."""
    started = time.monotonic()
    quiet = 0
    last = chromium_cpu_s()
    while time.monotonic() - started < timeout:
        time.sleep(0.5)
        now = chromium_cpu_s()
        quiet = quiet + 1 if now - last < busy * 0.5 else 0
        last = now
        if quiet >= 2:
            return time.monotonic() - started
    log(f"warning: Chromium still busy after {timeout:.0f} s; measuring anyway")
    return None


class BenchError(RuntimeError):
    """The benchmark could not run (a clear message for the user)."""


# ---- one widget in the notebook ---------------------------------------------------------------


class Viewer:
    """A displayed widget: its kernel variable, probe, iframe frame and event ids."""

    def __init__(self, nb: LabNotebook, cell: int, var: str, probe: str, mode: str) -> None:
        self.nb = nb
        self.cell = cell
        self.var = var
        self.probe = probe
        self.mode = mode
        self.viewer_id: str = nb.kernel_eval(f"{var}.viewer_id")
        self.frame: Any = None
        self.load_s: float | None = None
        self.settle_s: float | None = None
        self.http_errors: list[str] = []  # the bridge's lastEventError after a failed POST

    def wait_loaded(self, started: float, timeout: float) -> None:
        """Poll the kernel (idle in between, so the comm transport can load) until the viewer
        reported ready, then find the iframe's frame."""
        deadline = time.monotonic() + timeout
        while not self.nb.kernel_eval(f"{self.var}.ready"):
            if time.monotonic() > deadline:
                raise BenchError(
                    f"the {self.mode} viewer did not report ready within {timeout:.0f} s; "
                    f"front end log: {self.nb.kernel_eval(f'list({self.var}._frontend_log)')}; "
                    f"probe errors: {self.probe_errors()}"
                )
            time.sleep(0.25)
        self.load_s = time.monotonic() - started
        iframe = self.nb.cell_output_locator(self.cell).locator("iframe").first
        iframe.wait_for(state="attached", timeout=timeout * 1000)
        handle = iframe.element_handle()
        while True:
            frame = handle.content_frame()
            with contextlib.suppress(Exception):  # navigating
                if frame is not None and frame.evaluate(JS_VIEWER_READY):
                    break
            if time.monotonic() > deadline:
                raise BenchError(f"the {self.mode} viewer's iframe did not connect to the widget")
            time.sleep(0.1)
        self.frame = frame
        self.nb.page.evaluate(JS_RELAYED_LISTENER, self.viewer_id)
        frame.evaluate(JS_FRAME_LISTENERS)
        self.nb.page.evaluate(JS_HIDE_IFRAME, self.viewer_id)
        self.settle_s = wait_browser_idle()

    def trigger(self, size: int, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """Select ``size`` cells in the viewer; the page's time stamps, and the relay entry
        once the widget front end has sent the event to the comm."""
        n = self.nb.page.evaluate(JS_RELAY_COUNT, self.viewer_id)
        page = self.frame.evaluate(JS_SELECT, {"size": size, "seed": seed})
        try:
            self.nb.page.wait_for_function(
                JS_RELAYED, arg=[self.viewer_id, n], timeout=EVENT_TIMEOUT * 1000, polling=10
            )
        except Exception as exc:
            raise BenchError(
                f"the widget front end did not relay a {size:,}-cell selection within "
                f"{EVENT_TIMEOUT:.0f} s ({type(exc).__name__})"
            ) from None
        relay = self.nb.page.evaluate(JS_RELAY_ENTRY, [self.viewer_id, n])
        bridge = self.frame.evaluate(JS_BRIDGE_IDLE)
        page["http_failed"] = bridge["failed"] - page["failed"]
        if page["http_failed"]:
            self.http_errors.append(bridge["error"])
        return page, relay

    def kernel_entry(self, event_id: str, done: Any) -> dict[str, Any]:
        """Poll the probe until ``done(entry)``; the kernel's record of ``event_id``."""
        deadline = time.monotonic() + EVENT_TIMEOUT
        expr = f"{self.probe}.get({event_id!r})"
        while True:
            entry = self.nb.kernel_eval(expr)
            if entry is not None and done(entry):
                return entry
            if time.monotonic() > deadline:
                raise BenchError(
                    f"event {event_id} did not reach the kernel's observer within "
                    f"{EVENT_TIMEOUT:.0f} s ({self.mode} transport); probe: {entry}; "
                    f"probe errors: {self.probe_errors()}"
                )
            time.sleep(POLL_S)

    def probe_errors(self) -> list[str]:
        """What went wrong inside the kernel's probe (it never fails a delivery)."""
        return self.nb.kernel_eval(f"{self.probe}.errors")

    def paths_expected(self, page: dict[str, Any]) -> int:
        """Copies of an event the kernel will get: the comm's, and in the default mode the
        HTTP one unless the bridge's POST failed."""
        return 1 + (self.mode == "default" and not page["http_failed"])

    def clear(self) -> None:
        """An empty selection, awaited until fully handled by the kernel (both copies)."""
        page, relay = self.trigger(0, 0)
        expected = self.paths_expected(page)
        started = time.monotonic()
        self.kernel_entry(
            relay["eventId"],
            lambda e: (
                "notified" in e
                and (len(e["arrivals"]) >= expected or time.monotonic() - started > OTHER_PATH_WAIT)
            ),
        )

    def trial(self, size: int, seed: int) -> dict[str, Any]:
        self.clear()
        page, relay = self.trigger(size, seed)
        if page["selected"] != size:
            raise BenchError(f"the viewer selected {page['selected']:,} cells, not {size:,}")
        expected = self.paths_expected(page)
        state: dict[str, float] = {}

        def done(entry: dict[str, Any]) -> bool:
            if "observer" not in entry:
                return False
            state.setdefault("seen", time.monotonic())
            waited = time.monotonic() - state["seen"]
            return len(entry["arrivals"]) >= expected or waited > OTHER_PATH_WAIT

        entry = self.kernel_entry(relay["eventId"], done)
        if entry.get("observed_size") != size:
            raise BenchError(f"viewer.selection has {entry.get('observed_size')} cells, not {size}")
        return summarize_trial(self.mode, size, page, relay, entry)


def summarize_trial(
    mode: str, size: int, page: dict[str, Any], relay: dict[str, Any], entry: dict[str, Any]
) -> dict[str, Any]:
    """Latencies (ms from t0) and stage times of one trial."""
    t0 = page["t0"]
    ms = lambda t: None if t is None else t - t0  # noqa: E731  (page times are ms)
    kms = lambda t: None if t is None else t * 1000.0 - t0  # noqa: E731  (kernel times are s)
    arrivals = {a["path"]: a for a in entry["arrivals"]}
    winner = entry.get("path")
    win = arrivals.get(winner, {})
    comm = arrivals.get("comm")
    http = arrivals.get("http")
    stages = {
        "select": ms(page["selchange"]),
        "encode+post": None if page["sent"] is None else page["sent"] - page["selchange"],
        "to parent": relay["arrive"] - page["sent"],
        "relay": relay["relayed"] - relay["arrive"],
        "to kernel": None if comm is None else comm["start"] * 1000.0 - relay["relayed"],
        "POST→deliver": None if http is None else http["start"] * 1000.0 - page["sent"],
        "decode+record": None if not win else (entry["recorded"] - win["start"]) * 1000.0,
        "dispatch": (entry["dispatched"] - entry["recorded"]) * 1000.0,
        "echo encode": entry.get("echo_encode_s", 0.0) * 1000.0,
        "echo send": (entry.get("echo_s", 0.0) - entry.get("echo_encode_s", 0.0)) * 1000.0,
        "observer": (entry["observer"] - entry["dispatched"] - entry.get("echo_s", 0.0)) * 1000.0,
    }
    return {
        "mode": mode,
        "cells": size,
        "form": relay["form"],
        "chars": relay["chars"],
        "latency_ms": kms(entry["observer"]),
        "recorded_ms": kms(entry["recorded"]),
        "winner": winner,
        "http_minus_comm_ms": (
            None if comm is None or http is None else (http["start"] - comm["start"]) * 1000.0
        ),
        "arrivals_ms": {p: kms(a["start"]) for p, a in arrivals.items()},
        "stages_ms": stages,
        "http_failed": bool(page["http_failed"]),
        "clock_skew_ms": page["skewMs"],
        "event_id": relay["eventId"],
    }


# ---- throughput ----------------------------------------------------------------------------------


def file_paths(n_float: int) -> list[str]:
    return ["points_2d.bin", *(f"obs/f{j:02d}.values.f32" for j in range(n_float))]


def throughput(
    target: Any, label: str, base: str, paths: list[str], rounds: int
) -> list[dict[str, Any]]:
    """In ``target`` (a frame or the page): a warm-up pass, then ``rounds`` x (sequential,
    concurrent) timed passes over ``paths`` under ``base``."""
    out = []
    args = {"base": base, "paths": paths, "concurrent": False}
    try:
        target.evaluate(JS_FETCH, args)
        for rnd in range(rounds):
            for concurrent in (False, True):
                got = target.evaluate(JS_FETCH, {**args, "concurrent": concurrent})
                order = "concurrent" if concurrent else "sequential"
                mbs = got["bytes"] / MB / (got["ms"] / 1000.0)
                log(
                    f"  {label} {order} round {rnd + 1}: {got['bytes'] / MB:.1f} MB, {mbs:.1f} MB/s"
                )
                out.append({"transport": label, "order": order, "round": rnd, "base": base, **got})
    except Exception as exc:
        log(f"  {label}: failed: {exc}")
        out.append({"transport": label, "error": str(exc).splitlines()[0][:300]})
    return out


# ---- summary and table -------------------------------------------------------------------------


def med(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def fmt(value: float | None, spec: str = ".1f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def selection_rows(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    keys = sorted({(t["mode"], t["cells"]) for t in trials}, key=lambda k: (k[0] != "default", k))
    for mode, cells in keys:
        group = [t for t in trials if t["mode"] == mode and t["cells"] == cells]
        lat = [t["latency_ms"] for t in group]
        winners: dict[str, int] = {}
        for t in group:
            winners[t["winner"]] = winners.get(t["winner"], 0) + 1
        rows.append(
            {
                "mode": mode,
                "cells": cells,
                "form": group[0]["form"],
                "payload_chars": group[0]["chars"],
                "n": len(group),
                "median_ms": med(lat),
                "max_ms": max(lat),
                "min_ms": min(lat),
                "recorded_median_ms": med([t["recorded_ms"] for t in group]),
                "won_by": winners,
                "http_lost": sum(t["http_failed"] for t in group),
                "http_minus_comm_median_ms": med([t["http_minus_comm_ms"] for t in group]),
                "stages_median_ms": {
                    k: med([t["stages_ms"][k] for t in group]) for k in group[0]["stages_ms"]
                },
            }
        )
    return rows


def throughput_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    seen: list[tuple[str, str]] = []
    for r in runs:
        key = (r["transport"], r.get("order", "-"))
        if key not in seen:
            seen.append(key)
    for transport, order in seen:
        group = [r for r in runs if r["transport"] == transport and r.get("order", "-") == order]
        if "error" in group[0]:
            rows.append({"transport": transport, "order": order, "error": group[0]["error"]})
            continue
        secs = [r["ms"] / 1000.0 for r in group]
        nbytes = group[0]["bytes"]
        wires = [r["wire"] for r in group if r["wire"] is not None]
        rows.append(
            {
                "transport": transport,
                "order": order,
                "files": len(group[0]["sizes"]),
                "mb": nbytes / MB,
                "rounds": len(group),
                "median_s": statistics.median(secs),
                "best_s": min(secs),
                "mb_per_s": nbytes / MB / statistics.median(secs),
                "wire_mb": statistics.median(wires) / MB if wires else None,
            }
        )
    return rows


def header(text: str) -> None:
    print(text)
    print("-" * len(text))


def print_tables(result: dict[str, Any]) -> None:
    sel, thr = result["selection"], result["throughput"]
    print(
        f"\ncellucid widget benchmark: {result['cells']:,} cells, JupyterLab "
        f"{result['jupyterlab']}, Chromium {result['chromium']}, {os.cpu_count()} CPUs, "
        f"load {result['load_before'][0]:.2f} → {result['load_after'][0]:.2f}"
    )
    load = result["viewer_load_s"]
    print(
        "viewer ready after display: "
        + ", ".join(f"{k} {fmt(v, '.1f')} s" for k, v in load.items())
        + "   (page + points + colour field; the comm one over the comm)"
    )
    print(
        "\n1. selection in the viewer → viewer.selection observer in the kernel "
        f"(ms after userSelect(); {result['repeats']} trials each)"
    )
    header(
        f"{'transport':<9} {'cells':>9} {'form':<13} {'chars':>8} {'median':>7} {'max':>7} "
        f"{'recorded':>8}  {'won by':<18} {'http-comm':>9} {'HTTP lost':>9}"
    )
    for r in sel:
        won = ", ".join(f"{k} {v}/{r['n']}" for k, v in sorted(r["won_by"].items()))
        lost = f"{r['http_lost']}/{r['n']}" if r["mode"] == "default" else "-"
        print(
            f"{r['mode']:<9} {r['cells']:>9,} {r['form']:<13} "
            f"{fmt(r['payload_chars'], ',', 'json'):>8} {fmt(r['median_ms']):>7} "
            f"{fmt(r['max_ms']):>7} {fmt(r['recorded_median_ms']):>8}  {won:<18} "
            f"{fmt(r['http_minus_comm_median_ms']):>9} "
            f"{lost:>9}"
        )
    biggest = max(r["cells"] for r in sel)
    print(f"\nstages at {biggest:,} cells (medians, ms; '-' = not on this path)")
    stage_names = list(sel[0]["stages_median_ms"])
    widths = [max(7, len(s)) for s in stage_names]
    print(
        f"{'transport':<9} "
        + " ".join(f"{s:>{w}}" for s, w in zip(stage_names, widths, strict=True))
    )
    for r in sel:
        if r["cells"] == biggest:
            st = r["stages_median_ms"]
            cols = " ".join(f"{fmt(st[s]):>{w}}" for s, w in zip(stage_names, widths, strict=True))
            print(f"{r['mode']:<9} {cols}")
    if result["http_errors"]:
        print(f"failed POSTs: {result['http_errors']}")
    total = next((r["mb"] for r in thr if "mb" in r), 0.0)
    print(
        f"\n2. fetching the viewer's files: {total:.1f} MB in {result['throughput_files']} files "
        f"(points_2d.bin + obs/fNN.values.f32), median of {result['rounds']} rounds after a "
        "warm-up pass"
    )
    header(
        f"{'transport':<13} {'order':<10} {'files':>5} {'MB':>7} {'median s':>8} "
        f"{'best s':>7} {'MB/s':>7} {'wire MB':>8}"
    )
    for r in thr:
        if "error" in r:
            print(f"{r['transport']:<13} {r['order']:<10} failed: {r['error']}")
            continue
        print(
            f"{r['transport']:<13} {r['order']:<10} {r['files']:>5} {r['mb']:>7.1f} "
            f"{r['median_s']:>8.2f} {r['best_s']:>7.2f} {r['mb_per_s']:>7.1f} "
            f"{fmt(r['wire_mb']):>8}"
        )
    print()
    for c in result["checks"]:
        print(f"{c['verdict']:<4}  {c['check']:<58} {c['value']}")


def verdicts(result: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    target = [r for r in result["selection"] if r["mode"] == "default"]
    top = max(target, key=lambda r: r["cells"])
    label = f"default path: {TARGET_CELLS:,}-cell median < {TARGET_MS:.0f} ms"
    if top["cells"] >= TARGET_CELLS:
        checks.append(
            {
                "check": label,
                "verdict": "PASS" if top["median_ms"] < TARGET_MS else "FAIL",
                "value": f"{top['median_ms']:.1f} ms (max {top['max_ms']:.1f})",
                "target": True,
            }
        )
    else:
        checks.append({"check": label, "verdict": "n/a", "value": f"largest is {top['cells']:,}"})
    sums = result["checksums"]
    same = len({tuple(v) for v in sums.values()}) <= 1
    checks.append(
        {
            "check": "same bytes over every transport (per-file checksums)",
            "verdict": "PASS" if same else "FAIL",
            "value": ", ".join(sorted(sums)),
        }
    )
    errors = [f"{mode}: {e}" for mode, errs in result["probe_errors"].items() for e in errs]
    checks.append(
        {
            "check": "the kernel's probes timed every event without an error",
            "verdict": "FAIL" if errors else "PASS",
            "value": "; ".join(errors)[:300] or "no error",
        }
    )
    return checks


# ---- main ------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_CELLS:,} cells, 3 trials")
    ap.add_argument("--cells", type=int, help=f"cells of the AnnData (default {FULL_CELLS:,})")
    ap.add_argument("--sizes", help="comma-separated selection sizes (default: see the doc)")
    ap.add_argument("--repeats", type=int, help="trials per size (default 5, quick 3)")
    ap.add_argument("--rounds", type=int, help="timed throughput rounds (default 3, quick 2)")
    ap.add_argument("--float-obs", type=int, default=FLOAT_OBS, help="float32 obs columns")
    ap.add_argument("--keep", action="store_true", help="keep JupyterLab's temp home dir")
    args = ap.parse_args(argv)
    args.cells = args.cells or (QUICK_CELLS if args.quick else FULL_CELLS)
    args.repeats = args.repeats or (3 if args.quick else 5)
    args.rounds = args.rounds or (2 if args.quick else 3)
    n = args.cells
    if args.sizes:
        args.sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    else:
        args.sizes = sorted({min(1_000, n), n // 50, n // 10, n // 2, n})
    if not args.sizes or any(s < 1 or s > n for s in args.sizes):
        ap.error(f"selection sizes must be between 1 and --cells ({n:,})")
    return args


def notebook_cells(args: argparse.Namespace) -> list[str]:
    return [
        f"import sys\nsys.path.insert(0, {str(HERE)!r})\n"
        "import cellucid\nimport _widget_kernel as wk\n"
        f"adata = wk.make_adata({args.cells}, {args.float_obs})",
        f"v = cellucid.CellucidWidget(adata, height={HEIGHT}, port=0)\nprobe = wk.Probe(v)\nv",
        f"c = cellucid.CellucidWidget(adata, height={HEIGHT}, port=0, transport='comm')\n"
        "probe_c = wk.Probe(c)\nc",
    ]


def measure_viewer(viewer: Viewer, args: argparse.Namespace, trials: list[dict[str, Any]]) -> None:
    for size in args.sizes:
        for rep in range(args.repeats):
            t = viewer.trial(size, seed=rep + 1)
            trials.append(t)
            log(
                f"  {viewer.mode} {size:,} cells #{rep + 1}: {t['latency_ms']:.1f} ms "
                f"(won by {t['winner']}"
                + (
                    f", http-comm {t['http_minus_comm_ms']:+.0f} ms"
                    if t["http_minus_comm_ms"] is not None
                    else ""
                )
                + ")"
            )


def run(args: argparse.Namespace, nb: LabNotebook, result: dict[str, Any]) -> None:
    trials: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    paths = file_paths(args.float_obs)
    log(f"kernel: building the AnnData ({args.cells:,} cells, {args.float_obs} float obs) ...")
    nb.run_cell(0, timeout=300)
    nb.page.evaluate(JS_ARRIVE_LISTENER)  # before any widget's view: see its comment
    log("default transport: displaying CellucidWidget(adata) ...")
    started = time.monotonic()
    nb.run_cell(1, timeout=120)
    default = Viewer(nb, 1, "v", "probe", "default")
    default.wait_loaded(started, timeout=300)
    in_use = nb.kernel_eval("v.transport_in_use")
    via = nb.kernel_eval("[x.get('via') for x in v._views.values()]")
    log(
        f"  ready in {default.load_s:.1f} s (transport {in_use}, via {via}); iframe hidden, "
        f"Chromium idle after {fmt(default.settle_s)} s"
    )
    result["default_transport"] = {"in_use": in_use, "via": via}
    result["viewer_load_s"]["default"] = default.load_s
    result["browser_settle_s"] = {"default": default.settle_s}
    measure_viewer(default, args, trials)
    log("throughput over HTTP ...")
    base = default.frame.evaluate(JS_DATASET_BASE)
    runs += throughput(default.frame, "http (proxy)", base, paths, args.rounds)
    # The viewer page's CSP (connect-src 'self') keeps the iframe on its own origin: the
    # direct route is fetched by the notebook page (CORS allows loopback origins).
    direct = f"http://127.0.0.1:{nb.kernel_eval('v.port')}/"
    runs += throughput(nb.page, "http (direct)", direct, paths, args.rounds)

    log("comm transport: displaying CellucidWidget(adata, transport='comm') ...")
    started = time.monotonic()
    nb.run_cell(2, timeout=120)
    comm = Viewer(nb, 2, "c", "probe_c", "comm")
    comm.wait_loaded(started, timeout=600)
    log(
        f"  ready in {comm.load_s:.1f} s (transport {nb.kernel_eval('c.transport_in_use')}); "
        f"iframe hidden, Chromium idle after {fmt(comm.settle_s)} s"
    )
    result["viewer_load_s"]["comm"] = comm.load_s
    result["browser_settle_s"]["comm"] = comm.settle_s
    result["http_errors"] = sorted(set(default.http_errors))
    measure_viewer(comm, args, trials)
    log("throughput over the comm ...")
    base = comm.frame.evaluate(JS_DATASET_BASE)
    runs += throughput(comm.frame, "comm", base, paths, args.rounds)

    result["probe_errors"] = {v.mode: v.probe_errors() for v in (default, comm)}
    result["trials"] = trials
    result["throughput_runs"] = runs
    result["selection"] = selection_rows(trials)
    result["throughput"] = throughput_rows(runs)
    result["throughput_files"] = len(paths)
    result["checksums"] = {
        r["transport"]: r["sums"] for r in runs if "sums" in r and r["order"] == "sequential"
    }
    skews = [abs(t["clock_skew_ms"]) for t in trials]
    result["clock_skew_ms_max"] = max(skews) if skews else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def on_sigterm(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, on_sigterm)
    from importlib.metadata import version

    result: dict[str, Any] = {
        "cells": args.cells,
        "sizes": args.sizes,
        "repeats": args.repeats,
        "rounds": args.rounds,
        "float_obs": args.float_obs,
        "jupyterlab": version("jupyterlab"),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        },
        "load_before": os.getloadavg(),
        "viewer_load_s": {},
    }
    t_start = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="cellucid-widget-bench-"))
    server = nb = None
    status = 2
    try:
        log(f"starting JupyterLab in {home} ...")
        server = start_server("lab", home)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            try:
                result["chromium"] = browser.version
                log(f"Chromium {browser.version}; opening the notebook ...")
                nb = LabNotebook.open(server, browser, notebook_cells(args), "widget-bench.ipynb")
                try:
                    run(args, nb, result)
                except BaseException:
                    out = REPO / "test-artifacts"
                    out.mkdir(exist_ok=True)
                    nb.save_artifacts(out, "widget-bench")
                    log(f"page screenshot and console saved in {out}/widget-bench.*")
                    raise
                finally:
                    nb.close()
            finally:
                with contextlib.suppress(Exception):
                    browser.close()
        status = 0
    except KeyboardInterrupt as exc:
        log(f"interrupted ({exc or 'Ctrl-C'}); shutting JupyterLab down")
        status = 130
    except BaseException as exc:  # a clear message instead of a bare traceback
        # pytest.fail() of require_chromium (no chromium), or ours
        if type(exc).__name__ == "Failed" or isinstance(exc, BenchError):
            log(f"error: {exc}")
        elif isinstance(exc, Exception):
            import traceback

            traceback.print_exc()
            log(f"error: {type(exc).__name__}: {exc}")
        else:
            raise
    finally:
        if server is not None:
            try:
                server.stop()
            except AssertionError as exc:  # processes outlived it: killed, but say so
                log(f"warning: {exc}")
        if args.keep:
            log(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    if status != 0:
        return status
    result["load_after"] = os.getloadavg()
    result["wall_s"] = time.monotonic() - t_start
    result["checks"] = verdicts(result)
    print_tables(result)
    if args.quick:
        print(QUICK_NOTE)
    dest = write_results(f"widget-{args.cells}", result)
    log(f"done in {result['wall_s']:.0f} s; results written to {dest}")
    return exit_status(result["checks"], args.quick)


if __name__ == "__main__":
    sys.exit(main())
