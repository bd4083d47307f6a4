"""The kernel side of ``benchmarks/widget.py``: the synthetic AnnData and a probe on a widget.

This module is imported *inside the notebook's kernel* (the benchmark puts this folder on
the kernel's ``sys.path``); the benchmark reads what it recorded with short ``kernel_eval``
calls, as JSON.

:class:`Probe` instruments one :class:`~cellucid.CellucidWidget` from the outside (nothing
in cellucid is changed), and stamps ``time.time()`` (epoch seconds) at each step of an
event's arrival:

* ``arrivals``: every call of the channel's ``deliver`` (one per path: the comm relayed by
  the widget front end is handled by the kernel, ``POST /_cellucid/events`` on a thread of
  the data server), with its path (``deliver``'s ``via`` keyword; the thread's name when
  there is none), thread, start and end: ``deliver`` decodes the cells, then records the
  event or counts a duplicate; ``recorded``: whether this call recorded it (it counted in
  the channel's public ``delivered_via``); ``error``: what ``deliver`` raised, if it did;
* ``recorded``: when the channel recorded the event, i.e. when the widget's ``on_record``
  callback set the ``selection`` trait's value (the moment ``viewer.selection`` and
  ``wait_for_event`` see it), and ``path``: the path that won;
* ``dispatched``: when the channel's dispatcher thread started the widget's trait
  notification (ipywidgets first sends the new ``selection`` state back to the front end,
  then traitlets calls the observers); ``echo_s``: how long that ``send_state`` took, of
  which ``echo_encode_s`` in ``get_state`` (the trait's serializer, ``cells_to_json``);
* ``observer``: when a trait observer registered with ``viewer.observe(...,
  names="selection")`` ran (on the channel's dispatcher thread), and the selection's size;
* ``notified``: when that notification was over.

The probe must never change what it measures: its wrappers pass every argument through
(``deliver`` gained ``via`` once, and a wrapper with the old signature made every delivery
fail), and its own errors are kept in ``Probe.errors`` instead of being raised.
``tests/test_benchmarks.py`` runs it against the current widget.

Events are keyed by their ``eventId``, which the benchmark also reads in the page.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

N_CLUSTERS = 12


def make_adata(n_cells: int, n_float_obs: int, seed: int = 0) -> Any:
    """A synthetic AnnData: ``n_cells`` cells in ``N_CLUSTERS`` blobs of a 2D ``X_umap``, a
    categorical ``cluster`` (what the viewer colours by) and ``n_float_obs`` float32 obs
    columns ``f00``, ``f01``, ... of standard normal noise (the throughput test's files).
    No ``X``: no genes."""
    import anndata as ad
    import pandas as pd

    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, N_CLUSTERS, n_cells).astype(np.int8)
    centres = rng.uniform(-10, 10, size=(N_CLUSTERS, 2)).astype(np.float32)
    umap = centres[cluster] + rng.standard_normal((n_cells, 2), dtype=np.float32)
    columns: dict[str, Any] = {
        "cluster": pd.Categorical.from_codes(
            cluster, categories=[f"cluster {i:02d}" for i in range(N_CLUSTERS)]
        )
    }
    for j in range(n_float_obs):
        columns[f"f{j:02d}"] = rng.standard_normal(n_cells, dtype=np.float32)
    obs = pd.DataFrame(columns, index=pd.RangeIndex(n_cells).astype(str))
    return ad.AnnData(obs=obs, obsm={"X_umap": umap})


class Probe:
    """Time stamps of the events of one widget, by ``eventId`` (see the module docstring).

    Every wrapper passes its arguments through unchanged (``*args, **kwargs``) and returns
    or raises exactly what the wrapped call does. The probe's own bookkeeping runs in
    :meth:`_guarded`: if it fails (a product change it does not understand), the error goes
    to :attr:`errors` and the event goes on as if there were no probe.
    """

    def __init__(self, widget: Any) -> None:
        self.widget = widget
        self.events: dict[str, dict[str, Any]] = {}
        #: the probe's own failures, as text; the benchmark reports them (never raised)
        self.errors: list[str] = []
        self._lock = threading.Lock()
        # per thread: the event being delivered (event_id, path) on a delivering thread;
        # the entry being notified (event_id, entry) on the channel's dispatcher thread
        self._local = threading.local()
        channel = self._channel = widget._channel
        deliver = channel.deliver

        def timed_deliver(*args: Any, **kwargs: Any) -> Any:
            arrival = self._guarded(self._arrival_start, kwargs)
            try:
                delivered = deliver(*args, **kwargs)
            except BaseException as exc:
                self._guarded(self._arrival_end, arrival, exc)
                raise
            self._guarded(self._arrival_end, arrival, None)
            return delivered

        channel.deliver = timed_deliver  # the HTTP route and the comm handler both look it up
        # No public API runs code when an event is recorded, or on the dispatcher thread
        # before the observers: the record callback the widget gave its channel does both.
        on_record = getattr(channel, "_on_record", None)
        if callable(on_record):
            channel._on_record = self._timed_on_record(on_record)
        else:
            self._error("the channel has no _on_record callback: record and dispatch not timed")
        widget.send_state = self._timed(widget.send_state, "echo_s")
        # ipywidgets' send_state serializes through get_state (the trait's cells_to_json)
        widget.get_state = self._timed(widget.get_state, "echo_encode_s")
        widget.observe(self._observed, names="selection")

    # ---- the delivering threads ---------------------------------------------------------

    def _arrival_start(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        start = time.time()
        via = kwargs.get("via")
        arrival = {
            "event_id": kwargs.get("event_id"),
            "path": via if isinstance(via, str) else _thread_path(),
            "thread": threading.current_thread().name,
            "start": start,
            "counted": self._counted(via),
        }
        self._local.event_id = arrival["event_id"]
        self._local.path = arrival["path"]
        return arrival

    def _arrival_end(self, arrival: dict[str, Any] | None, exc: BaseException | None) -> None:
        end = time.time()
        self._local.event_id = None
        if arrival is None or arrival["event_id"] is None:
            return
        record = {k: arrival[k] for k in ("path", "thread", "start")}
        record["end"] = end
        # public cross-check of the winner: only the delivery that recorded the event
        # counts it in delivered_via (exact while one delivery per path is under way)
        counted = self._counted(arrival["path"])
        if arrival["counted"] is not None and counted is not None:
            record["recorded"] = counted > arrival["counted"]
        if exc is not None:
            record["error"] = f"{type(exc).__name__}: {exc}"
        entry = self._entry(arrival["event_id"])
        with self._lock:
            entry["arrivals"].append(record)

    def _counted(self, via: Any) -> int | None:
        counts = getattr(self._channel, "delivered_via", None)
        return counts.get(via, 0) if isinstance(via, str) and isinstance(counts, dict) else None

    def _timed_on_record(self, on_record: Any) -> Any:
        def timed_on_record(*args: Any, **kwargs: Any) -> Any:
            stamp = time.time()
            follow_up = on_record(*args, **kwargs)
            wrapped = self._guarded(self._recorded, stamp, args, follow_up)
            return follow_up if wrapped is None else wrapped

        return timed_on_record

    def _recorded(self, stamp: float, args: tuple[Any, ...], follow_up: Any) -> Any:
        """On the delivering thread, when the channel records the event: the time stamp
        and the path that won; a follow-up (the trait notification) wrapped to be timed."""
        event_id = getattr(self._local, "event_id", None)
        if event_id is None:
            return None
        event_type, payload = args[0], args[1]
        entry = self._entry(event_id)
        entry.update(type=event_type, recorded=stamp, path=self._local.path)
        if event_type == "selection":
            entry["cells"] = len(payload["cells"])
        if follow_up is None:
            return None

        def timed_follow_up(*args: Any, **kwargs: Any) -> Any:
            self._guarded(self._notifying, event_id, entry)
            try:
                return follow_up(*args, **kwargs)
            finally:
                self._guarded(self._notified, entry)

        return timed_follow_up

    # ---- the channel's dispatcher thread --------------------------------------------------

    def _notifying(self, event_id: str, entry: dict[str, Any]) -> None:
        entry["dispatched"] = time.time()
        self._local.event_id = event_id
        self._local.entry = entry

    def _notified(self, entry: dict[str, Any]) -> None:
        self._local.event_id = self._local.entry = None
        entry["notified"] = time.time()

    def _observed(self, change: Any) -> None:
        stamp = time.time()

        def note() -> None:
            event_id = getattr(self._local, "event_id", None)
            if event_id is not None:
                self._entry(event_id).update(observer=stamp, observed_size=int(change["new"].size))

        self._guarded(note)

    def _timed(self, fn: Any, key: str) -> Any:
        """``fn``, adding its run time (s) to ``key`` of the entry being notified, if any."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._guarded(self._add_time, key, time.perf_counter() - start)

        return timed

    def _add_time(self, key: str, seconds: float) -> None:
        entry = getattr(self._local, "entry", None)
        if entry is not None:
            entry[key] = entry.get(key, 0.0) + seconds

    # ---- bookkeeping ----------------------------------------------------------------------

    def _guarded(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)``, or ``None`` when it raised: the error is kept in :attr:`errors`."""
        try:
            return fn(*args)
        except Exception as exc:
            self._error(f"{getattr(fn, '__name__', fn)}: {type(exc).__name__}: {exc}")
            return None

    def _error(self, message: str) -> None:
        with self._lock:
            if len(self.errors) < 100:
                self.errors.append(message)

    def _entry(self, event_id: str) -> dict[str, Any]:
        with self._lock:
            return self.events.setdefault(event_id, {"arrivals": []})

    def get(self, event_id: str) -> dict[str, Any] | None:
        """What was recorded for ``event_id`` so far (a copy), or ``None``."""
        with self._lock:
            entry = self.events.get(event_id)
            if entry is None:
                return None
            return {**entry, "arrivals": list(entry["arrivals"])}

    def reset(self) -> None:
        with self._lock:
            self.events.clear()
            self.errors.clear()


def _thread_path() -> str:
    """The path an event came by when ``deliver`` was not told (no ``via``), from the
    delivering thread: the data server answers ``POST /_cellucid/events`` on its
    ``cellucid-events_<i>`` pool threads (HTTP); comm messages are handled by the kernel, on
    its main thread or (ipykernel 7 with JupyterLab's ``commsOverSubshells``) on a
    subshell's thread."""
    return "http" if threading.current_thread().name.startswith("cellucid-events_") else "comm"
