"""A viewer driven from a plain Python script (no notebook, no widget front end): commands go
over the data server's WebSocket (``_cellucid/commands``, PROTOCOL.md) to the page opened
from ``viewer.viewer_url`` in an ordinary Chromium tab. Checked on the page
(``window.__cellucid``): commands sent before the page opens, every command in order, the
session bundle, a reload, and a second tab on the same viewer."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from _browser import wait_until

import cellucid
from cellucid.notebook_env import notebook_context
from cellucid.server.commands import ViewerNotOpenWarning

READY_TIMEOUT = 30.0
PAGE_STATE = """() => {
  const v = window.__cellucid;
  if (!v || !v.field) return null;
  return {
    field: v.field.key,
    highlights: v.highlights.map((g) => ({color: g.color, cells: Array.from(g.cells)})),
    selection: Array.from(v.selection),
    visible: v.snapshot().visibleCells,
    camera: JSON.stringify(v.snapshot().camera),
    lastSeq: window.__cellucidChannel ? window.__cellucidChannel.stats.lastSeq : null,
  };
}"""


@pytest.fixture
def viewer(clusters, capsys):
    assert not notebook_context()["in_jupyter"], "this test is about scripts"
    shown = cellucid.show_anndata(clusters.adata, port=0)
    assert shown.page_url in capsys.readouterr().out  # show_anndata printed the URL to open
    yield shown
    shown.close()


def open_tab(pages, viewer) -> Any:
    handle = pages.open(viewer.viewer_url, viewer._channel, viewer._server)
    handle.page.goto(handle.url)
    return handle


def state(handle) -> dict[str, Any] | None:
    return handle.page.evaluate(PAGE_STATE)


def reaches(handle, what: str, **expected: Any) -> dict[str, Any]:
    """Wait until the page's state has these values."""

    def check() -> dict[str, Any] | None:
        now = state(handle)
        return now if now and all(now[k] == v for k, v in expected.items()) else None

    return wait_until(check, 15, f"{what} on the page (now {state(handle)})")


def test_a_script_drives_a_plain_tab_in_order(viewer, pages, clusters):
    n = clusters.n
    alpha, beta, gamma, delta = (clusters.members[k].tolist() for k in CLUSTERS)
    # before any page is open: queued, and Python says which URL to open
    with pytest.warns(ViewerNotOpenWarning, match="no browser page") as told:
        viewer.color_by = "score"
        viewer.highlight_cells(beta, color="#ff0000")
    assert viewer.page_url in str(told[0].message)
    assert viewer.command_channel["queued"] == 2 and viewer.command_channel["attached"] == 0

    tab = open_tab(pages, viewer)
    assert viewer.wait_for_ready(READY_TIMEOUT)["n_cells"] == n
    start = reaches(
        tab, "the commands queued before the page opened", field="score",
        highlights=[{"color": "#ff0000", "cells": beta}],
    )  # fmt: skip
    assert viewer.command_channel["attached"] == 1

    # each command on its own, checked on the page
    viewer.selection = delta
    reaches(tab, "the selection", selection=delta)
    viewer.set_visibility(gamma, visible=False)
    reaches(tab, "gamma hidden", visible=n - len(gamma))
    tab.page.mouse.move(450, 300)
    tab.page.mouse.wheel(0, -500)
    wait_until(lambda: state(tab)["camera"] != start["camera"], 10, "the zoom")
    viewer.reset_view()
    reaches(tab, "the camera reset", camera=start["camera"])

    # a burst whose outcome depends on the order
    viewer.clear_highlights()
    viewer.highlight_cells(alpha, color="#00aa00")
    viewer.set_visibility(None, visible=True)
    viewer.color_by = "GeneAlpha"
    viewer.color_by = "cluster"
    viewer.selection = gamma
    sent = viewer.command_channel["commands_sent"]
    reaches(
        tab, "the burst, in order", field="cluster", selection=gamma, visible=n,
        highlights=[{"color": "#00aa00", "cells": alpha}], lastSeq=sent,
    )  # fmt: skip
    assert not tab.events("command_error"), tab.events("command_error")
    # the page's view event comes back to Python by HTTP, a moment after the page changed
    wait_until(lambda: viewer.color_by == "cluster", 10, "the view event to reach Python")

    report = viewer.debug_connection(timeout=10)
    assert report["frontend_roundtrip"]["ok"], report["frontend_roundtrip"]
    assert report["command_channel"]["attached"] == 1
    assert report["command_channel"]["last_delivery"]["type"] == "debug_snapshot"
    assert report["command_channel"]["pages"][0]["ready"] is True

    bundle = viewer.get_session_bundle(timeout=20)
    bundle.cleanup()
    adata = viewer.apply_session_to_anndata(clusters.adata, timeout=20)
    (column,) = [c for c in adata.obs if c.startswith("cellucid_highlight__")]
    assert np.flatnonzero(adata.obs[column].to_numpy()).tolist() == alpha

    # stopping the viewer freezes the tab (a freeze command), which then stays away
    viewer.close()
    tab.page.wait_for_function("() => window.__cellucid.frozen === true", timeout=10_000)
    assert tab.page.evaluate("() => window.__cellucidChannel.stats.state") == "closed"
    assert tab.page.evaluate("() => window.__cellucidBridge.stats.byType.freeze") == 1


def test_reload_and_a_second_tab(viewer, pages, clusters):
    beta, delta = clusters.members["beta"].tolist(), clusters.members["delta"].tolist()
    first = open_tab(pages, viewer)
    viewer.wait_for_ready(READY_TIMEOUT)
    viewer.highlight_cells(beta, color="#ff0000")
    reaches(first, "the first highlight", highlights=[{"color": "#ff0000", "cells": beta}])

    # the tab leaves: commands wait for the next page, which shows them (and no replay of
    # the state before: the highlight is gone with the old page)
    first.page.goto("about:blank")
    wait_until(lambda: viewer.command_channel["attached"] == 0, 10, "the page to detach")
    with pytest.warns(ViewerNotOpenWarning, match="went away"):
        viewer.color_by = "GeneAlpha"
    first.page.goto(first.url)
    reaches(first, "the command sent while no page was open", field="GeneAlpha", highlights=[])

    first.page.reload(wait_until="commit")  # the new page is far from ready yet
    assert viewer.wait_for_event("ready", READY_TIMEOUT)["n_cells"] == clusters.n
    viewer.color_by = "GeneY"
    viewer.highlight_cells(delta, color="#0000ff")
    reaches(
        first, "commands after the reload", field="GeneY",
        highlights=[{"color": "#0000ff", "cells": delta}],
    )  # fmt: skip

    second = open_tab(pages, viewer)
    wait_until(
        lambda: sum(p["ready"] for p in viewer.command_channel["pages"]) == 2,
        READY_TIMEOUT,
        "two ready tabs",
    )
    viewer.clear_highlights()
    viewer.selection = beta
    viewer.color_by = "score"
    for tab in (first, second):
        reaches(tab, "the commands in both tabs", field="score", selection=beta, highlights=[])
    pages_info = viewer.command_channel["pages"]
    assert len(pages_info) == 2 and all(p["backlog"] == 0 for p in pages_info), pages_info
    # a request goes to one tab only; the session comes back once
    adata = viewer.apply_session_to_anndata(clusters.adata, timeout=20)
    assert not [c for c in adata.obs if c.startswith("cellucid_highlight__")]
    bundle_requests = [
        json.loads(tab.page.evaluate("() => JSON.stringify(window.__cellucidBridge.stats.byType)"))
        for tab in (first, second)
    ]
    assert sum(b.get("requestSessionBundle", 0) for b in bundle_requests) == 1, bundle_requests


CLUSTERS = ("alpha", "beta", "gamma", "delta")
