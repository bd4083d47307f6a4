"""The benchmarks' own instruments against the product as it is now (issue 14: benchmarks
must not rot).

``benchmarks/_widget_kernel.py``'s ``Probe`` wraps a live :class:`cellucid.CellucidWidget`
from the outside. When ``ViewerChannel.deliver`` gained its ``via`` keyword, the old probe's
wrapper raised on every delivery, so the widget benchmark waited 300 s for a viewer that
could never report ready, while the product itself was fine. These tests deliver events
the way the widget's comm handler and the data server's ``POST /_cellucid/events`` route do
and check that the probe passes them through untouched and records what the benchmark
reads.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import cellucid
from cellucid.server.events import InvalidEventError

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
N = 50
CELLS = [5, 2, 9]


@pytest.fixture
def wk(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``benchmarks/_widget_kernel.py``, imported as the benchmark's kernel imports it."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    sys.modules.pop("_widget_kernel", None)
    return importlib.import_module("_widget_kernel")


@pytest.fixture
def widget(wk: ModuleType) -> Iterator[cellucid.CellucidWidget]:
    viewer = cellucid.CellucidWidget(wk.make_adata(N, 2), port=0)
    try:
        yield viewer
    finally:
        viewer.close()


def comm_event(widget: cellucid.CellucidWidget, event_id: str, cells: list[int]) -> None:
    """A selection as the widget front end relays it: the cells as uint32 bytes in a buffer."""
    data = np.asarray(cells, dtype="<u4").tobytes()
    encoded = {"encoding": "u32-base64", "count": len(cells), "data": None}
    event = {"type": "selection", "cells": encoded, "source": "lasso"}
    message = {"kind": "event", "view": "view-1", "eventId": event_id, "event": event}
    widget._on_frontend_message(widget, message, [data])


def http_event(widget: cellucid.CellucidWidget, event_id: str, cells: list[int]) -> int:
    """The same selection as the viewer's bridge posts it to the widget's data server."""
    body = {"type": "selection", "cells": cells, "source": "lasso"}
    body |= {"viewerId": widget.viewer_id, "viewerToken": widget.viewer_token}
    request = urllib.request.Request(
        f"http://127.0.0.1:{widget.port}/_cellucid/events?eventId={event_id}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status


def test_probe_records_both_paths_of_a_selection(
    wk: ModuleType, widget: cellucid.CellucidWidget
) -> None:
    probe = wk.Probe(widget)
    comm_event(widget, "sel-1", CELLS)
    assert http_event(widget, "sel-1", CELLS) == 200  # the second copy: a duplicate
    assert widget.wait_idle()

    assert widget.selection.tolist() == CELLS
    entry: dict[str, Any] = probe.get("sel-1")
    assert entry is not None, probe.errors
    assert sorted(a["path"] for a in entry["arrivals"]) == ["comm", "http"]
    assert entry["path"] == "comm"  # the first copy is the one recorded
    assert {a["path"]: a["recorded"] for a in entry["arrivals"]} == {"comm": True, "http": False}
    assert entry["type"] == "selection" and entry["cells"] == len(CELLS)
    assert entry["observed_size"] == len(CELLS)
    first = min(a["start"] for a in entry["arrivals"])
    assert first <= entry["recorded"] <= entry["dispatched"] <= entry["observer"]
    assert entry["observer"] <= entry["notified"]
    assert probe.errors == []


def test_probe_takes_the_path_from_via_not_the_thread(
    wk: ModuleType, widget: cellucid.CellucidWidget
) -> None:
    probe = wk.Probe(widget)
    event = {"type": "selection", "cells": CELLS, "source": "lasso"}
    assert widget._channel.deliver(event, event_id="sel-2", via="http")  # on the main thread
    assert widget.wait_idle()
    entry = probe.get("sel-2")
    assert [a["path"] for a in entry["arrivals"]] == ["http"]
    assert entry["path"] == "http"
    assert widget.selection.tolist() == CELLS


def test_the_products_errors_pass_through_the_probe(
    wk: ModuleType, widget: cellucid.CellucidWidget
) -> None:
    probe = wk.Probe(widget)
    with pytest.raises(InvalidEventError):
        widget._channel.deliver(
            {"type": "selection", "cells": [1, 1], "source": "lasso"}, event_id="bad", via="comm"
        )
    assert probe.get("bad")["arrivals"][0]["error"].startswith("InvalidEventError")
    assert widget.selection.size == 0
    assert probe.errors == []


def test_a_failing_probe_never_fails_a_delivery(
    wk: ModuleType, widget: cellucid.CellucidWidget, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = wk.Probe(widget)

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("probe bug")

    monkeypatch.setattr(probe, "_entry", broken)
    comm_event(widget, "sel-3", CELLS)
    assert http_event(widget, "sel-3", CELLS) == 200
    assert widget.wait_idle()
    assert widget.selection.tolist() == CELLS
    assert probe.errors and "probe bug" in probe.errors[0]


def test_every_benchmark_has_a_quick_mode_that_make_runs() -> None:
    """``make bench-quick`` (CI) and ``make bench`` run the scripts listed in the Makefile's
    ``BENCHMARKS``: a new benchmark must be listed there and have ``--quick``."""
    makefile = (BENCHMARKS.parent / "Makefile").read_text(encoding="utf-8")
    listed = re.search(r"^BENCHMARKS :=(.*)$", makefile, re.MULTILINE)
    assert listed is not None, "the Makefile has no BENCHMARKS list"
    helpers = {"child"}  # run.py's subprocess, not a benchmark
    scripts = {
        path.stem
        for path in BENCHMARKS.glob("*.py")
        if not path.name.startswith("_") and path.stem not in helpers
    }
    assert set(listed.group(1).split()) == scripts
    for name in sorted(scripts):
        source = (BENCHMARKS / f"{name}.py").read_text(encoding="utf-8")
        quick = '"--quick"' in source or "add_size_arguments(" in source  # _common.py's
        assert quick, f"benchmarks/{name}.py has no --quick"


@pytest.mark.parametrize(
    "script",
    sorted(
        p.name for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_") and p.stem != "child"
    ),
)
def test_every_benchmark_prints_its_help(script: str) -> None:
    """``--help`` is how one finds a benchmark's options; a ``%`` in a help text broke it."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=BENCHMARKS.parent,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--quick" in done.stdout
