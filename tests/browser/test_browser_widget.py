"""The viewer inside a cross-origin parent page, as in the notebook widget (SPEC §4.2,
§4.5): ``jupyter=true``, commands from the parent, events back to the parent by
postMessage once its first authenticated command pinned its origin."""

from __future__ import annotations

import numpy as np
from _browser import geometry, wait_until


def _parent_events(handle, type_=None):
    events = handle.page.evaluate("() => window.events")
    return [e for e in events if type_ is None or e["type"] == type_]


def _frame_eval(handle, script, arg=None):
    return handle.frame_page.evaluate(script, arg)


def test_events_go_to_the_parent_and_over_http_with_one_event_id(open_framed, clusters):
    """Inside the widget the viewer posts each event to the parent (which relays it over
    the comm) and to its own server (read while a notebook cell runs), with one eventId."""
    handle = open_framed("export")
    (ready,) = _parent_events(handle, "ready")
    event_id = ready.pop("eventId")
    assert ready == {
        "type": "ready",
        "viewerId": handle.viewer_id,
        "viewerToken": handle.token,
        "n_cells": clusters.n,
        "dimensions": 2,
    }
    stats = _frame_eval(handle, "() => JSON.parse(JSON.stringify(window.__cellucidBridge.stats))")
    assert stats["transport"] == "parent"
    assert stats["pinnedOrigin"] == handle.page.evaluate("() => location.origin")
    assert stats["pinnedOrigin"] != handle.server.url, "the parent should be cross-origin"
    assert stats["eventsFailed"] == 0
    wait_until(lambda: handle.channel.state.ready, 10, "the ready event over HTTP")
    assert handle.channel.state.ready == {"n_cells": clusters.n, "dimensions": 2}
    # delivered again with the same id (the comm's copy, as the widget would): recorded once
    assert handle.channel.deliver({**ready}, event_id=event_id) is True
    assert handle.channel.duplicates == 1
    assert [e["type"] for e in handle.channel.recent_events()].count("ready") == 1


def test_parent_commands_take_effect_and_are_answered(open_framed, clusters):
    handle = open_framed("anndata")
    beta = clusters.members["beta"].tolist()
    handle.page.evaluate(
        "cells => window.sendToViewer({type: 'highlight', cells, color: '#ff00ff'})", beta
    )
    handle.page.evaluate("() => window.sendToViewer({type: 'ping', requestId: 'from-parent'})")
    handle.page.evaluate(
        "() => window.sendToViewer({type: 'highlight', cells: [], color: '#ff00ff'})"
    )
    wait_until(
        lambda: any(e.get("requestId") == "from-parent" for e in _parent_events(handle, "pong")),
        10,
        "the pong in the parent",
    )
    groups = _frame_eval(handle, "() => window.__cellucid.highlights.map(g => Array.from(g.cells))")
    assert groups == [beta]
    (error,) = wait_until(lambda: _parent_events(handle, "command_error"), 10, "command_error")
    assert error["command"] == "highlight" and "empty" in error["reason"]


def test_after_the_pin_other_origins_are_refused(open_framed, clusters):
    handle = open_framed("export")
    before = _frame_eval(handle, "() => window.__cellucidBridge.stats.rejected")
    # the viewer's own origin posting with the right credentials: not the pinned origin
    _frame_eval(
        handle,
        "m => window.postMessage(m, '*')",
        {
            "type": "highlight",
            "viewerId": handle.viewer_id,
            "viewerToken": handle.token,
            "cells": [0],
            "color": "#ff0000",
        },
    )
    wait_until(
        lambda: _frame_eval(handle, "() => window.__cellucidBridge.stats.rejected") > before,
        10,
        "the rejection",
    )
    reason = _frame_eval(handle, "() => window.__cellucidBridge.stats.lastRejection.reason")
    assert handle.server.url in reason
    assert _frame_eval(handle, "() => window.__cellucid.highlights.length") == 0
    assert not _parent_events(handle, "command_error")


def test_clicks_in_the_frame_reach_the_parent(open_framed, clusters):
    handle = open_framed("export")
    flat = np.asarray(_frame_eval(handle, "() => Array.from(window.__cellucid.screenPositions())"))
    rect = _frame_eval(
        handle,
        "() => { const r = window.__cellucid.scene.canvas.getBoundingClientRect(); return [r.left, r.top]; }",
    )
    frame_box = handle.page.locator("#viewer").bounding_box()
    points = flat.reshape(-1, 2) + rect + [frame_box["x"], frame_box["y"]]
    geo = geometry(points, np.zeros(2), clusters.members)
    assert all(r < 200 for _, r in geo.values())
    # a user's pointer reaches the cell before clicking it: the hover comes first
    handle.page.mouse.move(*points[clusters.lone])
    (hover,) = wait_until(lambda: _parent_events(handle, "hover"), 10, "the hover in the parent")
    assert hover["cell"] == clusters.lone
    handle.page.mouse.click(*points[clusters.lone])
    (click,) = wait_until(lambda: _parent_events(handle, "click"), 10, "the click in the parent")
    assert click["cell"] == clusters.lone
    assert click["viewerToken"] == handle.token
