"""Commands posted to the viewer page (SPEC §4.2): the page posts them to itself, so the
pinned origin is its own. Each test checks the effect on the picture or the viewer, or the
event that answers."""

from __future__ import annotations

import time

import numpy as np
from _browser import (
    background_colour,
    changed_fraction,
    drawn_mask,
    geometry,
    region,
    wait_until,
)

from cellucid.server.events import encode_cells


def _geo(viewer, clusters):
    return geometry(viewer.points(), viewer.plot_origin(), clusters.members)


def _wait_region_change(viewer, before, centre, radius, timeout=10.0, threshold=0.02):
    def changed():
        after = viewer.shot()
        frac = changed_fraction(region(before, centre, radius), region(after, centre, radius))
        return [after] if frac > threshold else None

    return wait_until(changed, timeout, "the picture to change there")[0]


def _highlight_groups(viewer):
    return viewer.page.evaluate(
        "() => window.__cellucid.highlights.map(g => ({color: g.color, cells: Array.from(g.cells)}))"
    )


def test_highlight_and_clear_change_only_the_highlighted_cluster(open_viewer, clusters):
    viewer = open_viewer("export")
    before = viewer.stable_shot()
    geo = _geo(viewer, clusters)
    beta_centre, beta_r = geo["beta"]
    viewer.command("highlight", cells=clusters.members["beta"].tolist(), color="#ff0000")
    _wait_region_change(viewer, before, beta_centre, beta_r + 4)
    after = viewer.stable_shot()
    for name in ("alpha", "gamma", "delta"):
        centre, r = geo[name]
        frac = changed_fraction(region(before, centre, r), region(after, centre, r))
        assert frac < 0.01, f"highlighting beta changed {frac:.1%} of {name}"
    red = region(after, beta_centre, beta_r + 4)
    reddish = (red[..., 0] > 180) & (red[..., 1] < 110) & (red[..., 2] < 110)
    assert reddish.sum() > 20, "no red pixels on the highlighted cluster"
    groups = _highlight_groups(viewer)
    assert [g["cells"] for g in groups] == [clusters.members["beta"].tolist()]

    viewer.command("clearHighlights")
    cleared = viewer.stable_shot()
    assert (
        changed_fraction(
            region(before, beta_centre, beta_r + 4), region(cleared, beta_centre, beta_r + 4)
        )
        < 0.01
    )
    assert _highlight_groups(viewer) == []


def test_highlight_accepts_the_binary_cell_sets_of_python(open_viewer, clusters):
    viewer = open_viewer("export")
    for cells in (clusters.members["gamma"], clusters.members["delta"][:5]):
        encoded = encode_cells(cells, clusters.n)
        viewer.command("highlight", cells=encoded, color="#00aa00")
    viewer.settle()
    groups = _highlight_groups(viewer)
    assert [g["cells"] for g in groups] == [
        clusters.members["gamma"].tolist(),
        clusters.members["delta"][:5].tolist(),
    ]
    encodings = {
        encode_cells(c, clusters.n)["encoding"]
        for c in (clusters.members["gamma"], clusters.members["delta"][:5])
    }
    assert encodings == {"bitset-base64", "u32-base64"}, "the test should cover both encodings"


def test_set_visibility_hides_then_shows_cells(open_viewer, clusters):
    viewer = open_viewer("export")
    before = viewer.stable_shot()
    bg = background_colour(before)
    geo = _geo(viewer, clusters)
    centre, r = geo["gamma"]
    assert drawn_mask(region(before, centre, r), bg).mean() > 0.05

    viewer.command("setVisibility", cells=clusters.members["gamma"].tolist(), visible=False)
    _wait_region_change(viewer, before, centre, r)
    hidden = viewer.stable_shot()
    assert not drawn_mask(region(hidden, centre, r * 0.8), bg).any(), "gamma is still drawn"
    for name in ("alpha", "beta", "delta"):
        c, rr = geo[name]
        assert drawn_mask(region(hidden, c, rr), bg).mean() > 0.05, f"{name} vanished too"

    viewer.command("setVisibility", cells=None, visible=False)
    wait_until(lambda: not drawn_mask(viewer.shot(), bg).any(), 10, "every cell hidden")

    viewer.command("setVisibility", cells=None, visible=True)
    shown = viewer.stable_shot()
    assert changed_fraction(before, shown) < 0.005, "showing all cells did not restore the picture"
    assert not viewer.events("command_error")


def test_commands_without_the_right_credentials_change_nothing(open_viewer, clusters):
    viewer = open_viewer("export")
    before = viewer.stable_shot()
    stats0 = viewer.bridge_stats()
    highlight = {
        "type": "highlight",
        "cells": clusters.members["alpha"].tolist(),
        "color": "#ff0000",
    }
    viewer.post(highlight)  # no id, no token
    viewer.post({**highlight, "viewerId": viewer.viewer_id})  # no token
    viewer.post({**highlight, "viewerId": viewer.viewer_id, "viewerToken": "0" * 32})
    viewer.post({**highlight, "viewerId": "0" * 16, "viewerToken": viewer.token})  # other viewer
    viewer.post(
        {
            "type": "setVisibility",
            "viewerId": viewer.viewer_id,
            "viewerToken": viewer.token[::-1],
            "cells": None,
            "visible": False,
        }
    )
    time.sleep(0.5)
    after = viewer.stable_shot()
    assert np.array_equal(before, after), (
        "a command without the right credentials changed the picture"
    )
    stats = viewer.bridge_stats()
    assert stats["ignored"] - stats0["ignored"] == 4
    assert stats["rejected"] - stats0["rejected"] == 1
    assert stats["accepted"] == stats0["accepted"]
    assert _highlight_groups(viewer) == []
    assert not viewer.events("command_error"), "unauthenticated commands must not be answered"
    assert not viewer.errors


def test_invalid_commands_answer_command_error(open_viewer, clusters):
    viewer = open_viewer("export")
    viewer.command("highlight", cells=[0, clusters.n], color="#ff0000")
    viewer.command("highlight", cells=[1, 1], color="#ff0000")
    viewer.command("highlight", cells=[1], color="red")
    viewer.command("setColorBy", field="no_such_field")
    viewer.command("resetCamera", extra=True)
    viewer.command("setVisibility", cells=None)
    expected = ["highlight", "highlight", "highlight", "resetCamera", "setVisibility", "setColorBy"]
    wait_until(
        lambda: len(viewer.events("command_error")) >= len(expected), 10, "six command_error events"
    )
    errors = viewer.events("command_error")
    assert sorted(e["command"] for e in errors) == sorted(expected)
    by_command = {}
    for e in errors:
        assert set(e) == {"type", "command", "reason", "received_at"}
        by_command.setdefault(e["command"], []).append(e["reason"])
    assert any(str(clusters.n) in r for r in by_command["highlight"])
    assert any("no_such_field" in r for r in by_command["setColorBy"])
    assert any("extra" in r for r in by_command["resetCamera"])
    assert any("visible" in r for r in by_command["setVisibility"])
    assert _highlight_groups(viewer) == []


def test_ping_pong_round_trip(open_viewer):
    viewer = open_viewer("anndata")
    sent = time.time() * 1000
    viewer.command("ping", requestId="r-123")
    pong = viewer.wait_event("pong", lambda e: e["requestId"] == "r-123")
    assert set(pong) == {"type", "requestId", "t", "received_at"}
    assert sent - 2000 <= pong["t"] <= time.time() * 1000 + 2000


def test_debug_snapshot_describes_the_page(open_viewer):
    viewer = open_viewer("export")
    viewer.command("debug_snapshot", requestId="snap")
    snap = viewer.wait_event("debug_snapshot")
    assert set(snap) - {"type", "received_at"} == {
        "requestId",
        "ts",
        "locationHref",
        "origin",
        "serverUrl",
        "connected",
        "parentOrigin",
        "userAgent",
    }
    assert snap["requestId"] == "snap"
    assert snap["serverUrl"] == viewer.server.url + "/"
    assert snap["origin"] == viewer.server.url
    assert viewer.viewer_id in snap["locationHref"]
    assert viewer.token not in snap["locationHref"], "the token leaked into the snapshot"
    assert snap["parentOrigin"] is None
    assert snap["connected"] is True
    assert "Chrome" in snap["userAgent"]


def test_set_selection_selects_without_echoing_an_event(open_viewer, clusters):
    viewer = open_viewer("export")
    cells = clusters.members["delta"].tolist()
    viewer.command("setSelection", cells=cells)
    viewer.settle()
    selected = viewer.page.evaluate("() => Array.from(window.__cellucid.selection)")
    assert selected == sorted(cells)
    time.sleep(0.3)
    assert not viewer.events("selection"), "a selection set by Python must not come back"


def test_reset_camera_undoes_a_zoom(open_viewer):
    viewer = open_viewer("export")
    before = viewer.stable_shot()
    at_start = viewer.points()
    origin = viewer.plot_origin()
    viewer.page.mouse.move(origin[0] + 300, origin[1] + 200)
    viewer.page.mouse.wheel(0, -600)
    zoomed = viewer.stable_shot()
    assert changed_fraction(before, zoomed) > 0.01, "the wheel did not zoom"
    assert np.abs(viewer.points() - at_start).max() > 20
    viewer.command("resetCamera")
    # back to the view the page opened with: every cell within a pixel of where it was
    deadline = time.monotonic() + 5
    while (shift := np.abs(viewer.points() - at_start).max()) >= 1.0:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"after resetCamera cells are up to {shift:.1f} px from their first place"
            )
        time.sleep(0.1)


def test_freeze_stops_the_viewer(open_viewer):
    viewer = open_viewer("export")
    viewer.command("freeze")
    viewer.page.wait_for_function("() => window.__cellucid.frozen === true", timeout=5000)
    assert "frozen" in viewer.page.inner_text("body").lower()
    # commands still authenticate, and ping still answers
    viewer.command("ping", requestId="after-freeze")
    viewer.wait_event("pong", lambda e: e["requestId"] == "after-freeze")


def test_session_bundle_is_uploaded(open_viewer, clusters):
    viewer = open_viewer("export")
    viewer.command("highlight", cells=clusters.members["alpha"].tolist(), color="#123456")
    viewer.server.registry.pending.register(viewer.viewer_id, "bundle-1", ttl=30)
    viewer.command("requestSessionBundle", requestId="bundle-1")
    wait_until(
        lambda: viewer.events("session_bundle") or viewer.events("command_error"),
        15,
        "the bundle upload or a command_error",
    )
    assert not viewer.events("command_error"), viewer.events("command_error")
    (event,) = viewer.events("session_bundle")
    assert event["status"] == "ok", event
    with open(event["path"], "rb") as fh:
        data = fh.read()
    assert data.startswith(b"CELLUCID_SESSION\n")
    assert len(data) == event["bytes"]
