"""Events the viewer POSTs to ``_cellucid/events`` (SPEC §3.5, §4.3) when opened with a
viewerId/token and ``jupyter=false``: ready, lasso selections (small as a list, large in
binary), hover and click on a known cell, and bodies too big for ``keepalive``."""

from __future__ import annotations

import itertools
import json
import time
import urllib.request

import numpy as np
from _browser import circle, drag, geometry, inside, wait_until

JS_RECORD_POSTS = """() => {
  // Wrap fetch (the bridge looks it up at each call) to see what it POSTs: keepalive
  // requests are not visible to Playwright's network events.
  window.__posts = [];
  const original = window.fetch;
  window.fetch = (url, init = {}) => {
    if (String(url).includes('_cellucid/events')) {
      const body = init.body instanceof Uint8Array ? new TextDecoder().decode(init.body) : String(init.body);
      window.__posts.push({keepalive: Boolean(init.keepalive), bytes: body.length, body});
    }
    return original(url, init);
  };
}"""


def _record_posts(page):
    page.evaluate(JS_RECORD_POSTS)


def _posts(page, type_):
    posts = page.evaluate("() => window.__posts")
    out = []
    for post in posts:
        body = json.loads(post["body"])
        if body["type"] == type_:
            out.append({**post, "body": body})
    return out


def _lasso_tool(viewer):
    viewer.page.click("[data-tool='lasso']")
    viewer.page.wait_for_function("() => window.__cellucid.tool === 'lasso'", timeout=5000)


def test_ready_event(open_viewer, clusters):
    viewer = open_viewer("export")
    assert viewer.channel.state.ready == {"n_cells": clusters.n, "dimensions": 2}
    time.sleep(0.3)
    assert len(viewer.events("ready")) == 1, "ready is sent once per page load"
    stats = viewer.bridge_stats()
    assert stats["transport"] == "http"
    assert stats["eventsFailed"] == 0


def test_lasso_around_a_cluster_selects_exactly_its_cells(open_viewer, clusters):
    viewer = open_viewer("anndata")
    _record_posts(viewer.page)
    points = viewer.points()
    geo = geometry(points, viewer.plot_origin(), clusters.members)
    centre, radius = geo["beta"]
    polygon = circle(centre + viewer.plot_origin(), radius + 10)
    expected = np.flatnonzero(inside(points, polygon))
    assert expected.tolist() == clusters.members["beta"].tolist(), (
        "the polygon should hold beta only"
    )

    _lasso_tool(viewer)
    drag(viewer.page, polygon)
    event = viewer.wait_event("selection")
    assert event["source"] == "lasso"
    assert sorted(event["cells"].tolist()) == expected.tolist()
    (sent,) = _posts(viewer.page, "selection")
    assert set(sent["body"]) == {"type", "viewerId", "viewerToken", "cells", "source"}
    assert isinstance(sent["body"]["cells"], list), "a small selection travels as a JSON list"
    selected = viewer.page.evaluate("() => Array.from(window.__cellucid.selection)")
    assert selected == expected.tolist()


def test_lasso_over_all_50000_cells_arrives_intact_in_binary(open_viewer):
    viewer = open_viewer("big")
    n = viewer.channel.state.ready["n_cells"]
    assert n == 50_000
    _record_posts(viewer.page)
    rect = viewer.page.evaluate(
        "() => { const r = window.__cellucid.scene.canvas.getBoundingClientRect();"
        " return [r.left, r.top, r.right, r.bottom]; }"
    )
    left, top, right, bottom = (v + d for v, d in zip(rect, (3, 3, -3, -3), strict=True))
    polygon = [(left, top), (right, top), (right, bottom), (left, bottom)]
    assert inside(viewer.points(), polygon).all(), "every cell should be inside the drawn rectangle"
    _lasso_tool(viewer)
    drag(viewer.page, polygon, steps=8)
    event = viewer.wait_event("selection", timeout=10)
    assert np.array_equal(np.sort(event["cells"]), np.arange(n, dtype=np.uint32))
    (post,) = _posts(viewer.page, "selection")
    body = post["body"]
    assert body["cells"]["encoding"] == "bitset-base64"
    assert body["cells"]["count"] == n and body["cells"]["n"] == n


def test_hover_reports_the_cell_under_the_mouse(open_viewer, clusters, export_dir):
    viewer = open_viewer("export")
    served = np.frombuffer((export_dir / "points_2d.bin").read_bytes(), dtype="<f4").reshape(-1, 2)
    lone = viewer.points()[clusters.lone]
    viewer.page.mouse.move(*lone)
    event = viewer.wait_event("hover", lambda e: e["cell"] is not None)
    assert event["cell"] == clusters.lone
    x, y = served[clusters.lone]
    assert event["position"] == {"x": float(x), "y": float(y), "z": 0.0}

    # off the cell: an empty spot halfway to alpha
    alpha = viewer.points()[clusters.members["alpha"]].mean(axis=0)
    viewer.page.mouse.move(*((lone + alpha) / 2))
    left = viewer.wait_event("hover", lambda e: e["received_at"] > event["received_at"])
    assert left["cell"] is None


JS_HOVER_BURST = """async (cells) => {
  // The viewer's raw hover stream as a fast pointer makes it (software rendering here is
  // too slow to produce one): a new cell every ~4 ms.
  const viewer = window.__cellucid;
  const t0 = performance.now();
  for (let i = 0; i < cells.length; i++) {
    viewer.emit('hover', {cell: cells[i], position: {x: i, y: -i, z: 0}});
    await new Promise((resolve) => setTimeout(resolve, 4));
  }
  return performance.now() - t0;
}"""


def test_hover_is_throttled_to_one_event_per_50_ms(open_viewer, clusters):
    viewer = open_viewer("export")
    _record_posts(viewer.page)
    cells = [int(c) for c in clusters.members["alpha"]]  # 120 distinct cells
    elapsed_ms = viewer.page.evaluate(JS_HOVER_BURST, cells)
    last = viewer.wait_event("hover", lambda e: e["cell"] == cells[-1])
    assert last["position"] == {"x": len(cells) - 1, "y": -(len(cells) - 1), "z": 0}
    sent = [p["body"]["cell"] for p in _posts(viewer.page, "hover")]
    assert sent[-1] == cells[-1], "the final position is kept"
    # at most one event per 50 ms (the throttle), and not starved: timers fire late on a
    # loaded machine, so the lower bound is half the nominal rate (a throttle that kept only
    # the first and the last event would send 2)
    assert elapsed_ms / 100 <= len(sent) <= elapsed_ms / 50 + 2, (
        f"{len(sent)} hover events for {len(cells)} moves in {elapsed_ms:.0f} ms"
    )


def test_hover_with_the_mouse_ends_on_the_last_cell_without_repeats(open_viewer, clusters):
    viewer = open_viewer("export")
    points = viewer.points()
    path = [points[clusters.members[c]].mean(axis=0) for c in ("alpha", "beta", "delta", "gamma")]
    path += [points[clusters.lone]]
    for a, b in itertools.pairwise(path):
        viewer.page.mouse.move(*a)
        viewer.page.mouse.move(*b, steps=6)
    viewer.wait_event("hover", lambda e: e["cell"] == clusters.lone)
    cells = [h["cell"] for h in viewer.events("hover")]
    assert cells[-1] == clusters.lone
    assert all(a != b for a, b in itertools.pairwise(cells)), f"repeated cells: {cells}"


def _click(viewer, point, key=None):
    """Click like a user: the pointer rests on the spot first, clicks are apart (no double-click)."""
    page = viewer.page
    page.mouse.move(*point)
    time.sleep(0.4)
    count = len(viewer.events("click"))
    if key:
        page.keyboard.down(key)
    page.mouse.click(*point)
    if key:
        page.keyboard.up(key)
    return count


def test_click_reports_the_cell_and_modifiers(open_viewer, clusters):
    viewer = open_viewer("export")
    lone = viewer.points()[clusters.lone]
    _click(viewer, lone)
    first = viewer.wait_event("click")
    assert set(first) == {"type", "cell", "button", "shift", "ctrl", "received_at"}
    assert {k: first[k] for k in ("cell", "button", "shift", "ctrl")} == {
        "cell": clusters.lone,
        "button": 0,
        "shift": False,
        "ctrl": False,
    }
    for key, flags in (
        ("Shift", (True, False)),
        ("Control", (False, True)),
        ("Meta", (False, True)),
    ):
        count = _click(viewer, lone, key)
        wait_until(lambda c=count: len(viewer.events("click")) > c, 5, f"a {key}+click")
        event = viewer.events("click")[-1]
        assert event["cell"] == clusters.lone
        assert (event["shift"], event["ctrl"]) == flags, f"{key}+click: {event}"


def test_quick_clicks_all_count(open_viewer, clusters):
    """Two clicks on the same cell 150 ms apart are two clicks, not a swallowed double
    click, and a click right after jumping onto a cell lands on it."""
    viewer = open_viewer("export")
    lone = viewer.points()[clusters.lone]
    viewer.page.mouse.click(*lone)  # jumps there and clicks at once
    time.sleep(0.15)
    viewer.page.mouse.click(*lone)
    wait_until(lambda: len(viewer.events("click")) >= 2, 5, "two quick clicks")
    time.sleep(0.5)  # nothing more arrives late
    assert [e["cell"] for e in viewer.events("click")] == [clusters.lone, clusters.lone]


def test_click_on_empty_space_sends_nothing(open_viewer, clusters):
    viewer = open_viewer("export")
    points = viewer.points()
    empty = (points[clusters.lone] + points[clusters.members["delta"]].mean(axis=0)) / 2
    _click(viewer, empty)
    _click(viewer, points[clusters.lone])
    event = viewer.wait_event("click")
    assert event["cell"] == clusters.lone
    assert len(viewer.events("click")) == 1


def test_bodies_above_64_kib_are_sent_without_keepalive(open_viewer):
    """Chromium refuses keepalive requests whose body exceeds 64 KiB: this only arrives if
    the bridge drops keepalive for big bodies."""
    viewer = open_viewer("export")
    _record_posts(viewer.page)
    blob = "x" * 200_000
    viewer.page.evaluate(
        "blob => { window.__cellucidBridge.notifyCustomEvent('big_blob', {blob});"
        " window.__cellucidBridge.notifyCustomEvent('small_blob', {blob: blob.slice(0, 100)}); }",
        blob,
    )
    big = viewer.wait_event("big_blob")
    assert big["blob"] == blob
    viewer.wait_event("small_blob")
    assert viewer.bridge_stats()["eventsFailed"] == 0
    (big_post,) = _posts(viewer.page, "big_blob")
    (small_post,) = _posts(viewer.page, "small_blob")
    assert big_post["bytes"] > 200_000 and big_post["keepalive"] is False
    assert small_post["bytes"] < 1000 and small_post["keepalive"] is True


def test_keepalive_limit_is_real_in_this_browser(open_viewer):
    """The control for the test above: a keepalive POST of 200 KB fails in chromium."""
    viewer = open_viewer("export")
    outcome = viewer.page.evaluate(
        """async (payload) => {
             try {
               await fetch('_cellucid/events', {method: 'POST', keepalive: true,
                 headers: {'Content-Type': 'application/json'}, body: payload});
               return 'sent';
             } catch (err) { return 'refused'; }
           }""",
        json.dumps(
            {
                "type": "huge",
                "viewerId": viewer.viewer_id,
                "viewerToken": viewer.token,
                "b": "x" * 200_000,
            }
        ),
    )
    assert outcome == "refused"


def test_events_of_a_stale_page_are_refused_by_the_server(open_viewer):
    """A page whose viewer is gone (kernel restart) gets 404 and counts the failure."""
    viewer = open_viewer("export")
    viewer.server.registry.remove(viewer.viewer_id)
    viewer.command("ping", requestId="stale")
    wait_until(lambda: viewer.bridge_stats()["eventsFailed"] >= 1, 10, "a failed POST")
    assert "404" in viewer.bridge_stats()["lastEventError"]
    # the server itself still answers
    with urllib.request.urlopen(f"{viewer.server.url}/_cellucid/health") as response:
        assert response.status == 200
