"""Selection tools, named groups and Annotate in the viewer (issue 10), driven with the mouse
and keyboard on the cluster dataset (four clusters at the corners of a square; its kNN graph
joins each cell to near cells of its own cluster):

* category pick (Alt+click), kNN grow (exactly the cells N hops away on the exported graph),
  invert, undo / redo (buttons and Ctrl+Z / Ctrl+Shift+Z), and the ``source`` of each
  ``selection`` event;
* proximity discs with the modifier keys and the panel's mode (add, subtract, intersect);
* the Groups panel (rename, colour, hide, from a category), its ``groups`` events, Annotate
  (a field in the colour menu and the Compare panel, coloured with the groups' colours) and the
  annotation landing in ``adata.obs`` through the session bundle;
* the ``addField`` command (binary values) and ``highlight`` with a name.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from _browser import wait_until

from cellucid.session import CellucidSessionBundle, apply_cellucid_session_to_anndata


def _selection(page) -> list[int]:
    return page.evaluate("() => Array.from(window.__cellucid.selection)")


def _events(viewer, count: int, timeout: float = 10.0) -> list[dict]:
    wait_until(lambda: len(viewer.events("selection")) >= count, timeout, f"{count} selections")
    return viewer.events("selection")


def _with_keys(page, keys: list[str], action) -> None:
    for key in keys:
        page.keyboard.down(key)
    try:
        action()
    finally:
        for key in reversed(keys):
            page.keyboard.up(key)


def _hops(adata, start: int, hops: int) -> list[int]:
    """Cells within ``hops`` steps of ``start`` on the symmetrised kNN graph (SPEC §2.8)."""
    graph = adata.obsp["connectivities"]
    graph = ((graph + graph.T) > 0).tocsr()
    depth = {start: 0}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if depth[cell] == hops:
            continue
        for nb in graph.indices[graph.indptr[cell] : graph.indptr[cell + 1]]:
            if int(nb) not in depth:
                depth[int(nb)] = depth[cell] + 1
                queue.append(int(nb))
    return sorted(depth)


def test_category_pick_knn_grow_invert_undo_redo(open_viewer, clusters):
    viewer = open_viewer("export")
    page = viewer.page
    alpha = clusters.members["alpha"]
    points = viewer.points()
    seed = int(alpha[0])

    _with_keys(page, ["Alt"], lambda: page.mouse.click(*points[seed]))
    events = _events(viewer, 1)
    assert events[-1]["source"] == "annotation"
    assert events[-1]["cells"].tolist() == alpha.tolist(), "Alt+click selects the whole cluster"

    delta = clusters.members["delta"]
    _with_keys(page, ["Shift", "Alt"], lambda: page.mouse.click(*points[delta[0]]))
    assert _events(viewer, 2)[-1]["cells"].tolist() == sorted([*alpha, *delta]), "Shift adds"
    _with_keys(page, ["Control", "Alt"], lambda: page.mouse.click(*points[seed]))
    assert _events(viewer, 3)[-1]["cells"].tolist() == delta.tolist(), "Ctrl subtracts"

    page.mouse.click(*points[seed])  # a plain click replaces it with one cell
    (seed,) = _events(viewer, 4)[-1]["cells"].tolist()  # the cell drawn on top there
    assert seed in alpha
    page.keyboard.press("g")
    grown = _events(viewer, 5)[-1]
    assert grown["source"] == "knn"
    assert grown["cells"].tolist() == _hops(clusters.adata, seed, 1)
    page.get_by_label("kNN hops").fill("3")
    page.click("[data-action='grow']")
    three = _events(viewer, 6)[-1]
    assert three["cells"].tolist() == _hops(clusters.adata, seed, 4), "3 more hops"
    assert set(three["cells"].tolist()) <= set(alpha.tolist()), "the graph stays in alpha"

    page.keyboard.press("i")
    inverted = _events(viewer, 7)[-1]
    assert inverted["source"] == "invert"
    rest = sorted(set(range(clusters.n)) - set(three["cells"].tolist()))
    assert inverted["cells"].tolist() == rest

    page.keyboard.press("Control+z")
    undone = _events(viewer, 8)[-1]
    assert (undone["source"], undone["cells"].tolist()) == ("undo", three["cells"].tolist())
    page.click("[data-action='undo']")
    assert _events(viewer, 9)[-1]["cells"].tolist() == grown["cells"].tolist()
    page.keyboard.press("Control+Shift+z")
    assert _events(viewer, 10)[-1]["cells"].tolist() == three["cells"].tolist()
    page.click("[data-action='redo']")
    redone = _events(viewer, 11)[-1]
    assert (redone["source"], redone["cells"].tolist()) == ("redo", rest)
    assert page.locator("[data-action='redo']").is_disabled()
    assert _selection(page) == rest


def _disc(page, centre, radius: float, keys: list[str] = ()) -> None:
    def drag() -> None:
        page.mouse.move(*centre)
        page.mouse.down()
        page.mouse.move(centre[0] + radius * 0.6, centre[1] + radius * 0.8, steps=4)
        page.mouse.up()

    _with_keys(page, list(keys), drag)


def test_proximity_discs_with_modifiers_and_the_panel_mode(open_viewer, clusters):
    viewer = open_viewer("export")
    page = viewer.page
    points = viewer.points()
    beta, gamma = clusters.members["beta"], clusters.members["gamma"]

    def within(centre, radius):
        return np.flatnonzero(np.linalg.norm(points - centre, axis=1) <= radius).tolist()

    centre_b, centre_g = points[beta].mean(axis=0), points[gamma].mean(axis=0)
    big = 1.15 * max(
        np.linalg.norm(points[c] - points[c].mean(axis=0), axis=1).max() for c in (beta, gamma)
    )
    assert within(centre_b, big) == beta.tolist() and within(centre_g, big) == gamma.tolist()
    half = 0.5 * big  # the inner part of a cluster
    inner_b = within(centre_b, half)
    assert 5 < len(inner_b) < len(beta)

    page.keyboard.press("p")
    page.wait_for_function("() => window.__cellucid.tool === 'proximity'")
    _disc(page, centre_b, big)
    first = _events(viewer, 1)[-1]
    assert first["source"] == "proximity" and first["cells"].tolist() == beta.tolist()
    _disc(page, centre_g, big, ["Shift"])
    assert _events(viewer, 2)[-1]["cells"].tolist() == sorted([*beta, *gamma])
    _disc(page, centre_b, big, ["Alt"])
    assert _events(viewer, 3)[-1]["cells"].tolist() == gamma.tolist()
    _disc(page, centre_b, big, ["Shift"])
    _disc(page, centre_b, half, ["Shift", "Alt"])  # intersect
    assert _events(viewer, 5)[-1]["cells"].tolist() == inner_b

    # the held modifiers show in the panel; a mode picked there applies without keys
    modes = page.locator(".sel-modes")
    page.keyboard.down("Shift")
    page.wait_for_function("() => document.querySelector('.sel-modes').dataset.effective === 'add'")
    page.keyboard.up("Shift")
    assert modes.get_attribute("data-effective") == "replace"
    page.click("[data-mode='add']")
    _disc(page, centre_g, big)
    assert _events(viewer, 6)[-1]["cells"].tolist() == sorted([*inner_b, *gamma])
    assert [e["source"] for e in viewer.events("selection")] == ["proximity"] * 6


def _groups(viewer, count: int) -> dict:
    wait_until(lambda: len(viewer.events("groups")) >= count, 10, f"{count} groups events")
    return viewer.events("groups")[-1]


def test_groups_panel_annotate_and_the_annotation_in_adata(open_viewer, clusters, tmp_path):
    viewer = open_viewer("anndata")
    page = viewer.page
    points = viewer.points()
    alpha, delta = clusters.members["alpha"], clusters.members["delta"]

    _with_keys(page, ["Alt"], lambda: page.mouse.click(*points[alpha[0]]))
    _events(viewer, 1)
    page.click("[data-action='group-from-selection']")
    first = _groups(viewer, 1)["groups"]
    assert [(g["name"], g["visible"]) for g in first] == [("Group 1", True)]
    assert first[0]["cells"].tolist() == alpha.tolist()
    row = page.locator(".grp-row").first
    row.locator(".grp-name").fill("Alpha cells")
    row.locator(".grp-name").press("Enter")
    assert _groups(viewer, 2)["groups"][0]["name"] == "Alpha cells"
    page.locator(".grp-row .grp-color").first.fill("#ff00ff")
    assert _groups(viewer, 3)["groups"][0]["color"] == "#ff00ff"
    page.get_by_label("Category for a new group").select_option("delta")
    page.click("[data-action='group-from-category']")
    groups = _groups(viewer, 4)["groups"]
    assert [g["name"] for g in groups] == ["Alpha cells", "delta"]
    assert groups[1]["cells"].tolist() == delta.tolist()
    assert page.locator(".grp-count").all_inner_texts() == [str(len(alpha)), str(len(delta))]

    page.locator(".grp-row .grp-visible").nth(1).uncheck()
    hidden = _groups(viewer, 5)["groups"]
    assert [g["visible"] for g in hidden] == [True, False]
    layers = page.evaluate("() => window.__cellucid.scene.highlights.map(h => h.label)")
    assert layers == ["Alpha cells"], "a hidden group is not drawn"

    page.get_by_label("Name of the annotation field").fill("cell_type")
    page.click("[data-action='annotate']")
    page.wait_for_function(
        "() => window.__cellucid.field && window.__cellucid.field.key === 'cell_type'"
    )
    wait_until(lambda: viewer.events("user_fields"), 10, "the user_fields event")
    (fields,) = viewer.events("user_fields")
    assert fields["fields"] == [
        {
            "key": "cell_type",
            "kind": "category",
            "categories": ["Alpha cells", "delta", "unassigned"],
            "origin": "annotation",
        }
    ]
    menu = page.get_by_label("Colour by obs field")
    assert menu.input_value() == "cell_type"
    assert (
        "cell_type (3)" in menu.locator("optgroup[label='User-defined'] option").all_inner_texts()
    )
    assert page.locator(".legend-label").all_inner_texts() == ["Alpha cells", "delta", "unassigned"]
    compare = page.locator(".cmp-kind[data-which='A'] option[value='field:cell_type']")
    assert compare.count() == 1, "the Compare panel offers the annotation's categories"
    # the annotation is coloured with the groups' colours (magenta alpha under its highlight)
    colors = page.evaluate(
        "cells => cells.map(i => Array.from(window.__cellucid.scene.colors.subarray(4 * i, 4 * i + 3)))",
        [int(alpha[0]), int(delta[0]), clusters.lone],
    )
    assert colors[0] == [255, 0, 255]
    assert colors[1] == [int(groups[1]["color"][k : k + 2], 16) for k in (1, 3, 5)]

    viewer.server.registry.pending.register(viewer.viewer_id, "bundle-1", ttl=30)
    viewer.command("requestSessionBundle", requestId="bundle-1")
    wait_until(lambda: viewer.events("session_bundle"), 15, "the session bundle")
    (event,) = viewer.events("session_bundle")
    bundle = CellucidSessionBundle(event["path"])
    names = [
        g["name"]
        for p in bundle.decode_chunk("highlights/meta")["pages"]
        for g in p["highlightedGroups"]
    ]
    assert names == ["Alpha cells", "delta"]
    adata = apply_cellucid_session_to_anndata(bundle, clusters.adata)
    column = adata.obs["cell_type"]
    assert list(column.cat.categories) == ["Alpha cells", "delta", "unassigned"]
    expected = np.full(clusters.n, "unassigned", dtype=object)
    expected[alpha], expected[delta] = "Alpha cells", "delta"
    assert column.astype(str).tolist() == expected.tolist()


JS_ADD_FIELD = """([ids, n, kind]) => {
  const codes = new Uint8Array(n).fill(2);
  codes[0] = 0; codes[1] = 1;
  const message = kind === "list"
    ? {type: "addField", name: "py", kind: "category", categories: ["a", "b"], values: Array.from(codes)}
    : {type: "addField", name: "py", kind: "category", categories: ["a", "b"], values: codes};
  window.postMessage({...message, ...ids}, "*");
}"""


def test_add_field_and_named_highlight_commands(open_viewer, clusters):
    viewer = open_viewer("export")
    page = viewer.page
    ids = {"viewerId": viewer.viewer_id, "viewerToken": viewer.token}
    page.evaluate(JS_ADD_FIELD, [ids, clusters.n, "list"])
    wait_until(lambda: viewer.events("command_error"), 10, "the command_error")
    assert "binary" in viewer.events("command_error")[-1]["reason"]
    page.evaluate(JS_ADD_FIELD, [ids, clusters.n, "binary"])
    wait_until(lambda: viewer.events("user_fields"), 10, "the user_fields event")
    assert viewer.events("user_fields")[-1]["fields"][0]["origin"] == "python"
    viewer.command("setColorBy", field="py")
    page.wait_for_function("() => window.__cellucid.field && window.__cellucid.field.key === 'py'")
    counts = page.locator(".legend-count").all_inner_texts()
    assert counts[:2] == ["1", "1"], "codes 2 (no category) are missing"
    viewer.command(
        "highlight", cells=clusters.members["gamma"].tolist(), color="#00aa00", name="gamma"
    )
    viewer.command("highlight", cells=[0], color="#00aa00", name="gamma")
    groups = _groups(viewer, 2)["groups"]
    assert [g["name"] for g in groups] == ["gamma", "gamma (2)"]
