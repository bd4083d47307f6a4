"""The kernel side of ``benchmarks/widget.py``: the synthetic AnnData and a probe on a widget.

This module is imported *inside the notebook's kernel* (the benchmark puts this folder on
the kernel's ``sys.path``); the benchmark reads what it recorded with short ``kernel_eval``
calls, as JSON.

:class:`Probe` instruments one :class:`~cellucid.CellucidWidget` from the outside (nothing
in cellucid is changed), and stamps ``time.time()`` (epoch seconds) at each step of an
event's arrival:

* ``arrivals``: every call of the channel's ``deliver`` (one per path: the comm relayed by
  the widget front end is handled by the kernel, ``POST /_cellucid/events`` on a thread of
  the data server), with its thread, start and end: ``deliver`` decodes the cells, then
  records the event or counts a duplicate;
* ``recorded``: when the channel recorded the event, i.e. when the widget's ``on_record``
  callback set the ``selection`` trait's value (the moment ``viewer.selection`` and
  ``wait_for_event`` see it), and on which path's thread (the path that won);
* ``dispatched``: when the channel's dispatcher thread started the widget's trait
  notification (ipywidgets first sends the new ``selection`` state back to the front end,
  then traitlets calls the observers); ``echo_s``: how long that ``send_state`` took, of
  which ``echo_encode_s`` in the trait's serializer (``cells_to_json``);
* ``observer``: when a trait observer registered with ``viewer.observe(...,
  names="selection")`` ran (on the channel's dispatcher thread), and the selection's size;
* ``notified``: when that notification was over.

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
    """Time stamps of the events of one widget, by ``eventId`` (see the module docstring)."""

    def __init__(self, widget: Any) -> None:
        self.widget = widget
        self.events: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        channel = widget._channel
        deliver = channel.deliver
        on_record = channel._on_record

        def timed_deliver(event: Any, *, event_id: str | None = None) -> bool:
            start = time.time()
            self._local.event_id = event_id
            try:
                return deliver(event, event_id=event_id)
            finally:
                self._local.event_id = None
                if event_id is not None:
                    entry = self._entry(event_id)
                    entry["arrivals"].append(
                        {
                            "path": _path(),
                            "thread": threading.current_thread().name,
                            "start": start,
                            "end": time.time(),
                        }
                    )

        def timed_on_record(event_type: str, payload: Any) -> Any:
            stamp = time.time()
            event_id = getattr(self._local, "event_id", None)
            follow_up = on_record(event_type, payload)
            if event_id is None:
                return follow_up
            entry = self._entry(event_id)
            entry.update(type=event_type, recorded=stamp, path=_path())
            if event_type == "selection":
                entry["cells"] = len(payload["cells"])
            if follow_up is None:
                return None

            def timed_follow_up() -> None:
                entry["dispatched"] = time.time()
                self._local.event_id = event_id
                _ECHO.entry = entry
                try:
                    follow_up()
                finally:
                    self._local.event_id = None
                    _ECHO.entry = None
                    entry["notified"] = time.time()

            return timed_follow_up

        channel.deliver = timed_deliver  # the HTTP route and the comm handler both look it up
        channel._on_record = timed_on_record
        widget.send_state = _timed(widget.send_state, "echo_s")
        _time_selection_to_json(type(widget))
        widget.observe(self._observed, names="selection")

    def _entry(self, event_id: str) -> dict[str, Any]:
        with self._lock:
            return self.events.setdefault(event_id, {"arrivals": []})

    def _observed(self, change: Any) -> None:
        stamp = time.time()
        event_id = getattr(self._local, "event_id", None)
        if event_id is not None:
            self._entry(event_id).update(observer=stamp, observed_size=int(change["new"].size))

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


# The event whose trait notification runs on this thread (set around the follow-up).
_ECHO = threading.local()


def _timed(fn: Any, key: str) -> Any:
    """``fn``, adding its run time (s) to ``key`` of the current event's entry, if any."""

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            entry = getattr(_ECHO, "entry", None)
            if entry is not None:
                entry[key] = entry.get(key, 0.0) + time.perf_counter() - start

    return timed


def _time_selection_to_json(cls: type) -> None:
    """Time the ``selection`` trait's ipywidgets serializer (``cells_to_json``), once per
    class: ipywidgets runs it when it sends a new selection back to the front end."""
    metadata = cls.class_traits()["selection"].metadata
    if not getattr(metadata["to_json"], "_benchmark_timed", False):
        metadata["to_json"] = _timed(metadata["to_json"], "echo_encode_s")
        metadata["to_json"]._benchmark_timed = True


def _path() -> str:
    """The path an event came by, from the delivering thread: the data server answers
    ``POST /_cellucid/events`` on its ``cellucid-events_<i>`` pool threads (HTTP); comm
    messages are handled by the kernel, on its main thread or (ipykernel 7 with JupyterLab's
    ``commsOverSubshells``) on a subshell's thread."""
    return "http" if threading.current_thread().name.startswith("cellucid-events_") else "comm"
