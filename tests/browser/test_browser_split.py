"""The embedding picker and the split view in a real Chromium page (AnnData mode).

The cluster dataset gets a second embedding, ``X_tsne``: the same clusters turned by 90°
(alpha, bottom-left in X_umap, is bottom-right in X_tsne), so a switch moves every cluster and a
lasso in one panel can be checked against the other's geometry.
"""

from __future__ import annotations

import io
import urllib.request
from typing import Any

import numpy as np
import pytest
from _browser import (
    anndata_server,
    changed_fraction,
    circle,
    drag,
    export_figure,
    pixels,
    viewer_query,
    wait_until,
)

READY = 30.0


@pytest.fixture(scope="module")
def two_embeddings(clusters):
    adata = clusters.adata.copy()
    xy = np.asarray(adata.obsm["X_umap"])
    adata.obsm["X_tsne"] = np.column_stack([-xy[:, 1], xy[:, 0]]) * 3.0 + 100.0
    adata.obsm["spatial"] = np.column_stack([xy[:, 0], np.zeros(len(xy)), xy[:, 1]])
    with anndata_server(adata) as server:
        yield server


def open_page(pages, server, *, credentials: bool = True) -> Any:
    channel = pages.channel(server) if credentials else None
    query = viewer_query(
        viewer_id=channel.viewer_id if channel else None,
        token=channel.token if channel else None,
        jupyter=False,
        anndata=True,
    )
    handle = pages.open(f"{server.url}/{query}", channel, server)
    handle.page.goto(handle.url)
    handle.page.wait_for_function(
        "() => window.__cellucid && window.__cellucid.field && window.__cellucid.embeddings",
        timeout=READY * 1000,
    )
    return handle


def console_errors(handle) -> list[str]:
    return [line for line in handle.console if line.startswith(("[error]", "[pageerror]"))]


def js(handle, code: str, arg: Any = None) -> Any:
    return handle.page.evaluate(code, arg)


def embedding_bytes(server, key: str, dim: int) -> np.ndarray:
    with urllib.request.urlopen(f"{server.url}/_cellucid/embedding?key={key}&dim={dim}") as r:
        return np.frombuffer(r.read(), dtype="<f4")


STATE = """() => {
  const v = window.__cellucid;
  return {field: v.field.key, embedding: v.embedding, dim: v.dim,
          selection: Array.from(v.selection), filters: v.filters.map((f) => f.id),
          groups: v.highlights.map((g) => Array.from(g.cells)),
          camera: v.scene.viewState, home: v.scene.homeViewState()};
}"""


def test_the_picker_switches_embedding_keeping_fields_filters_and_selection(
    two_embeddings, pages, clusters
):
    tab = open_page(pages, two_embeddings)
    page = tab.page
    options = page.locator("select.emb-pick option").all_inner_texts()
    assert "X_tsne (1D, 2D)" in options and "spatial (1D, 2D, 3D)" in options
    assert page.locator("select.emb-pick").input_value() == "X_umap"
    alpha, beta = clusters.members["alpha"], clusters.members["beta"]
    js(tab, "(c) => window.__cellucid.setSelection(c)", alpha.tolist())
    js(tab, "(c) => window.__cellucid.highlight(c, '#00aa00', 'b')", beta.tolist())
    js(tab, "() => window.__cellucid.filterCategories('cluster', ['alpha', 'beta', 'gamma'])")
    js(tab, "() => window.__cellucid.setLabels(true)")
    js(tab, "() => window.__cellucid.resetCamera()")
    before_state = js(tab, STATE)
    before = tab.stable_shot()

    page.locator("select.emb-pick").select_option("X_tsne")
    page.wait_for_function("() => window.__cellucid.embedding === 'X_tsne'", timeout=15_000)
    after = tab.stable_shot()
    state = js(tab, STATE)
    # fields, filters, selection and groups kept; the camera fitted
    for key in ("field", "selection", "filters", "groups", "dim"):
        assert state[key] == before_state[key], key
    assert state["camera"]["zoom"] == pytest.approx(state["home"]["zoom"])
    assert state["camera"]["target"] == [0, 0, 0]
    assert changed_fraction(before, after) > 0.002  # the clusters moved
    # the positions drawn are the route's float32 bytes
    drawn = np.asarray(js(tab, "() => Array.from(window.__cellucid.scene.positions)"), "<f4")
    np.testing.assert_array_equal(drawn, embedding_bytes(two_embeddings, "X_tsne", 2))
    # labels sit at the category means of the new positions (not the export's centroids)
    labels = js(tab, "() => window.__cellucid.scene.labels")
    pos = drawn.reshape(-1, 2)
    alpha_label = next(lab for lab in labels if lab["text"] == "alpha")
    np.testing.assert_allclose(alpha_label["position"][:2], pos[alpha].mean(axis=0), atol=1e-4)
    # alpha moved from bottom-left (X_umap) to bottom-right (turned by 90°)
    assert pos[alpha, 0].mean() > 0.3 and pos[alpha, 1].mean() < -0.3

    # 1D/2D buttons follow the embedding: X_tsne has no 3D; spatial has
    assert page.locator('button[data-dim="3"]').is_disabled()
    page.locator("select.emb-pick").select_option("spatial")
    page.wait_for_function("() => window.__cellucid.embedding === 'spatial'", timeout=15_000)
    assert not page.locator('button[data-dim="3"]').is_disabled()
    js(tab, "() => window.__cellucid.setDimension(3)")
    drawn3 = np.asarray(js(tab, "() => Array.from(window.__cellucid.scene.positions)"), "<f4")
    np.testing.assert_array_equal(drawn3, embedding_bytes(two_embeddings, "spatial", 3))
    # the event reached Python's channel
    assert tab.wait_event("embedding", lambda e: e.get("key") == "spatial")
    assert not console_errors(tab)  # the label layers of every switch drew without an error


def test_an_export_folder_has_no_picker(open_viewer):
    tab = open_viewer("export")
    tab.settle()
    assert tab.page.locator("select.emb-pick").count() == 0
    assert tab.page.evaluate("() => window.__cellucid.embeddings") is None


PANEL_SHOT = """() => {
  const s = window.__cellucid.scene;
  return {rects: s.split ? s.split.rects : null,
          zooms: s.split ? s.split.panels().map((p) => p.viewState.zoom) : [s.viewState.zoom]};
}"""


def assert_drawn_at_cells(tab, shot: np.ndarray, rect: dict[str, int], index: int) -> None:
    """Every drawn pixel of panel ``index`` (below its header, inside its frame) lies within a
    point's radius of a cell as the panel's camera projects it, and most cells are drawn."""
    from _browser import drawn_mask

    code = (
        "(i) => { const s = window.__cellucid.scene; const p = i ? s.split.extra[i - 1] : s;"
        " return Array.from(s.project(p.positions, p.size, i)); }"
    )
    xy = np.asarray(js(tab, code, index)).reshape(-1, 2)
    h, w = shot.shape[:2]
    near = np.zeros((h, w), bool)
    r = 8
    for x, y in np.round(xy).astype(int):
        near[max(y - r, 0) : y + r + 1, max(x - r, 0) : x + r + 1] = True
    drawn = drawn_mask(shot)
    area = np.zeros((h, w), bool)
    area[
        rect["y"] + 70 : rect["y"] + rect["height"] - 3,
        rect["x"] + 3 : rect["x"] + rect["width"] - 3,
    ] = True
    stray = drawn & area & ~near
    assert stray.sum() <= 0.01 * max(1, (drawn & area).sum()), (
        f"panel {index}: pixels away from its cells"
    )
    inside = [
        (rect["x"] + 3 <= x < rect["x"] + rect["width"] - 3)
        and (rect["y"] + 70 <= y < rect["y"] + rect["height"] - 3)
        for x, y in xy
    ]
    hit = [
        drawn[int(y), int(x)]
        or drawn[max(int(y) - 1, 0) : int(y) + 2, max(int(x) - 1, 0) : int(x) + 2].any()
        for (x, y), ok in zip(xy, inside, strict=True)
        if ok
    ]
    assert hit and np.mean(hit) > 0.9, f"panel {index}: cells not drawn where projected"


def halves(px: np.ndarray, rects: list[dict[str, int]]) -> list[np.ndarray]:
    return [px[r["y"] : r["y"] + r["height"], r["x"] : r["x"] + r["width"]] for r in rects]


def test_split_view_panels_share_selection_and_cameras(two_embeddings, pages, clusters):
    tab = open_page(pages, two_embeddings)
    page = tab.page
    js(tab, "() => window.__cellucid.split(['GeneY', 'cluster'])")
    page.wait_for_function("() => window.__cellucid.scene.split", timeout=15_000)
    info = js(tab, PANEL_SHOT)
    rects = info["rects"]
    # two panels of the same size, side by side or stacked (whichever gives larger squares)
    assert len(rects) == 2 and (rects[0]["x"], rects[0]["y"]) == (0, 0)
    assert rects[1]["x"] >= rects[0]["width"] or rects[1]["y"] >= rects[0]["height"]
    assert page.locator(".panel-head").count() == 2
    # pixels differ per panel: categorical colours left, a gene's colour bar right
    shot = tab.stable_shot()
    left, right = halves(shot, rects)
    w = min(left.shape[1], right.shape[1])
    assert changed_fraction(left[:, :w], right[:, :w]) > 0.002
    # each panel draws its cells where its camera puts them (the shared buffers are read right)
    for i, rect in enumerate(rects):
        assert_drawn_at_cells(tab, shot, rect, i)
    js(tab, "() => window.__cellucid.setLabels(true)")  # labels in the categorical panel
    labels = js(tab, "() => window.__cellucid.scene.split.extra[0].labels.map((l) => l.text)")
    assert sorted(labels) == ["alpha", "beta", "delta", "gamma", "lone"]
    # the GPU holds ONE copy of the positions (both panels show X_umap 2D) and one of the radii
    pool = js(
        tab,
        "() => { const s = window.__cellucid.scene; return {bytes: s.buffers.bytes(),"
        " n: s.buffers.buffers.size, same: s.split.extra[0].positions === s.positions}; }",
    )
    assert pool["same"] and pool["n"] == 2
    assert pool["bytes"] == clusters.n * 4 * 2 + clusters.n * 4

    # a lasso drawn in the second panel selects in both
    page.keyboard.press("l")
    pts = np.asarray(js(tab, "() => Array.from(window.__cellucid.scene.project("
                            "window.__cellucid.scene.split.extra[0].positions, 2, 1))"))  # fmt: skip
    pts = pts.reshape(-1, 2)
    origin = np.asarray(tab.plot_origin())
    delta = clusters.members["delta"]
    centre = pts[delta].mean(axis=0)
    radius = np.linalg.norm(pts[delta] - centre, axis=1).max() + 6
    r1 = rects[1]
    assert (
        r1["x"] <= centre[0] < r1["x"] + r1["width"]
        and r1["y"] <= centre[1] < r1["y"] + r1["height"]
    )
    drag(page, circle(centre + origin, radius))
    wait_until(lambda: len(js(tab, "() => window.__cellucid.selection")) > 0, 10, "a selection")
    selected = np.asarray(js(tab, "() => Array.from(window.__cellucid.selection)"))
    assert set(selected.tolist()) == set(delta.tolist())
    rings = js(tab, "() => window.__cellucid.scene.split.extra[0].selectionShown.length")
    assert rings == len(delta) and js(
        tab, "() => window.__cellucid.scene.selectionShown.length"
    ) == len(delta)
    # a proximity disc dragged in the second panel: that panel's embedding decides
    page.keyboard.press("n")
    page.keyboard.press("p")
    gamma = clusters.members["gamma"]
    g_centre = pts[gamma].mean(axis=0)
    g_radius = np.linalg.norm(pts[gamma] - g_centre, axis=1).max() + 6
    page.mouse.move(*(g_centre + origin))
    page.mouse.down()
    page.mouse.move(*(g_centre + origin + [g_radius, 0]), steps=4)
    page.mouse.up()
    wait_until(
        lambda: (
            set(js(tab, "() => Array.from(window.__cellucid.selection)")) == set(gamma.tolist())
        ),
        10,
        "the proximity selection of gamma",
    )
    page.keyboard.press("n")

    # linked cameras: a wheel over the second panel zooms both; unlinked, only that one
    start = js(tab, PANEL_SHOT)["zooms"]
    middle = origin + np.array([r1["x"] + r1["width"] / 2, r1["y"] + r1["height"] / 2])
    page.mouse.move(*middle)
    page.mouse.wheel(0, -200)
    wait_until(lambda: js(tab, PANEL_SHOT)["zooms"][1] != start[1], 10, "a zoom")
    zooms = js(tab, PANEL_SHOT)["zooms"]
    assert zooms[0] == pytest.approx(zooms[1]) and zooms[0] > start[0]
    page.locator("input.panel-link").uncheck()
    page.mouse.move(*middle)
    page.mouse.wheel(0, -200)
    wait_until(lambda: js(tab, PANEL_SHOT)["zooms"][1] != zooms[1], 10, "a second zoom")
    assert js(tab, PANEL_SHOT)["zooms"][0] == pytest.approx(zooms[0])

    # the grid PNG: two framed panels, each titled; SVG: one group per panel
    from PIL import Image

    png = pixels(Image.open(io.BytesIO(export_figure(page, "1×"))).convert("RGB"))
    frame = png[r1["y"], r1["x"] : r1["x"] + r1["width"]]  # the second panel's top frame line
    assert (np.abs(frame - png[-5, 5]).max(axis=-1) > 20).mean() > 0.8
    svg = export_figure(page, "SVG").decode()
    assert svg.count('class="panel"') == 2 and "GeneY" in svg

    # one click: a third panel from the current view; remove it; back to one view
    page.get_by_role("button", name="+ Panel").click()
    page.wait_for_function("() => window.__cellucid.scene.split.extra.length === 2")
    assert len(js(tab, PANEL_SHOT)["rects"]) == 3
    page.get_by_role("button", name="Remove panel 2").click()
    page.wait_for_function("() => window.__cellucid.scene.split.extra.length === 1")
    page.get_by_role("button", name="One view").click()
    page.wait_for_function("() => window.__cellucid.scene.split === null")
    assert page.locator(".panel-head").count() == 0
    assert not console_errors(tab)


def test_a_script_splits_and_switches_a_plain_tab(clusters, pages):
    """``viewer.split([...])`` and ``viewer.set_embedding`` from Python reach a page in a plain
    browser tab over the command channel (no notebook)."""
    import warnings

    import cellucid

    adata = clusters.adata.copy()
    xy = np.asarray(adata.obsm["X_umap"])
    adata.obsm["X_tsne"] = np.column_stack([-xy[:, 1], xy[:, 0]])
    viewer = cellucid.show_anndata(adata, port=0)
    try:
        assert viewer.embeddings == {"X_umap": [1, 2], "X_pca": [1, 2, 3], "X_tsne": [1, 2]}
        with pytest.raises(ValueError, match="X_tsne"):  # the message lists the usable keys
            viewer.set_embedding("X_nope")
        with pytest.raises(ValueError, match="cannot be shown in 3D"):
            viewer.set_embedding("X_tsne", 3)
        with pytest.raises(ValueError, match="unknown field 'nope'"):
            viewer.split(["cluster", "nope"])
        with pytest.raises(ValueError, match="1 to 4 panels"):
            viewer.split(["cluster"] * 5)
        handle = pages.open(viewer.viewer_url, viewer._channel, viewer._server)
        handle.page.goto(handle.url)
        viewer.wait_for_ready(READY)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a page is attached: nothing is queued
            viewer.split(["cluster", "GeneY", {"field": "cluster", "embedding": "X_tsne"}])
        handle.page.wait_for_function(
            "() => window.__cellucid.scene.split && window.__cellucid.scene.split.extra.length === 2",
            timeout=15_000,
        )
        described = handle.page.evaluate("() => window.__cellucid.panels.describe()")
        assert [(p["field"], p["embedding"]) for p in described] == [
            ("cluster", None),
            ("GeneY", None),
            ("cluster", "X_tsne"),
        ]
        wait_until(lambda: len(viewer.panels) == 3, 10, "the panels event in Python")
        assert viewer.panels[2] == {"field": "cluster", "dimension": 2, "embedding": "X_tsne"}
        # the third panel draws X_tsne; the first two share one array (one GPU buffer)
        same = handle.page.evaluate(
            "() => { const s = window.__cellucid.scene; return [s.split.extra[0].positions"
            " === s.positions, s.split.extra[1].positions === s.positions]; }"
        )
        assert same == [True, False]
        viewer.split(None)
        handle.page.wait_for_function("() => window.__cellucid.scene.split === null")
        viewer.embedding = "X_tsne"
        handle.page.wait_for_function("() => window.__cellucid.embedding === 'X_tsne'")
        wait_until(lambda: viewer.embedding == "X_tsne", 10, "the embedding event in Python")
    finally:
        viewer.close()


# ---- split view and level of detail together ------------------------------------------------

LOD_BUDGET = 100  # points a panel draws while its camera moves (481 cells, 361 visible)
LOD_SETTLE_MS = 400

LOD_PANELS = """() => {
  const s = window.__cellucid.scene;
  const layers = Object.fromEntries(s.deck.props.layers.map((l) => [l.id, l]));
  return s.split.panels().map((p, i) => {
    const prefix = i ? `panel${p.id}:` : "";
    const lod = layers[`${prefix}points-lod`];
    const sel = layers[`${prefix}selection`];
    const cells = lod && p.lod.current ? Array.from(p.lod.current.cells) : [];
    let hidden = 0, misplaced = 0;
    if (lod) {
      const pos = lod.props.data.attributes.getPosition.value;
      cells.forEach((c, j) => {
        hidden += s.mask[c] ? 0 : 1;
        for (let k = 0; k < p.size; k++) if (pos[j * p.size + k] !== p.positions[c * p.size + k]) misplaced++;
      });
    }
    return {status: p.lod.status(), full: layers[`${prefix}points`].props.visible,
            lod: lod ? lod.props.data.length : null, cells, hidden, misplaced,
            selection: sel ? sel.props.data.length : null,
            selectionStride: sel ? (sel.props.data.attributes.getPosition.stride || 0) : null};
  });
}"""


def test_split_view_with_level_of_detail_and_a_worker_lasso(two_embeddings, pages, clusters):
    """Every panel draws its own LOD subset while the (linked) cameras move and every visible
    cell when still; a panel of another embedding has its own LOD order, one of the same
    embedding shares panel 0's; picks on a subset layer give the cell; a lasso in the second
    panel runs in a worker (on the LOD worker's tree index of that panel's embedding) and selects
    by that panel's geometry."""
    channel = pages.channel(two_embeddings)
    query = viewer_query(
        viewer_id=channel.viewer_id, token=channel.token, jupyter=False, anndata=True
    )
    url = f"{two_embeddings.url}/{query}&lodbudget={LOD_BUDGET}&lodsettle={LOD_SETTLE_MS}"
    tab = pages.open(url, channel, two_embeddings)
    page = tab.page
    page.goto(tab.url)
    page.wait_for_function(
        "() => window.__cellucid && window.__cellucid.field && window.__cellucid.embeddings",
        timeout=READY * 1000,
    )
    js(
        tab,
        "() => window.__cellucid.split(['cluster', {field: 'cluster', embedding: 'X_tsne'}, 'GeneY'])",
    )
    page.wait_for_function(
        "() => { const s = window.__cellucid.scene; return s.split && s.split.extra.length === 2"
        " && s.split.panels().every((p) => p.lod && p.lod.state === 'ready'); }",
        timeout=30_000,
    )
    orders = js(
        tab,
        "() => { const [a, b, c] = window.__cellucid.scene.split.panels(); return {"
        " own: b.lod.order !== a.lod.order && b.lod.orderFor === b.positions,"
        " shared: c.lod.order === a.lod.order && c.positions === a.positions}; }",
    )
    assert orders == {"own": True, "shared": True}, "one LOD order per embedding"

    gamma, alpha, beta = (clusters.members[k] for k in ("gamma", "alpha", "beta"))
    js(
        tab,
        "() => window.__cellucid.filterCategories('cluster', ['alpha', 'beta', 'delta', 'lone'])",
    )
    js(tab, "(c) => window.__cellucid.setSelection(c)", beta.tolist())
    visible = clusters.n - len(gamma)
    still = js(tab, LOD_PANELS)
    for p in still:
        assert p["status"]["active"] is False and p["full"] is True and p["lod"] is None
        assert p["selection"] == len(beta) and p["selectionStride"] == 0

    # a drag in the first panel; a software frame is slow, so no panel settles until told to
    js(
        tab,
        "() => window.__cellucid.scene.split.panels().forEach((p) => { p.lod.settleMs = 1e7; })",
    )
    rects = js(tab, "() => window.__cellucid.scene.split.rects")
    origin = np.asarray(tab.plot_origin())
    r0 = rects[0]
    x = origin[0] + r0["x"] + r0["width"] / 2
    y = origin[1] + r0["y"] + r0["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(1, 7):
        page.mouse.move(x + 6 * i, y + 2 * i)
    wait_until(
        lambda: all(p["status"]["active"] for p in js(tab, LOD_PANELS)),
        60,
        "every (linked) panel drawing its LOD subset",
    )
    drawn = "() => !window.__cellucid.scene.deck.needsRedraw({clearRedrawFlags: false})"
    wait_until(lambda: js(tab, drawn), 60, "the moved cameras drawn")
    moving = js(tab, LOD_PANELS)
    for i, p in enumerate(moving):
        st = p["status"]
        assert st["moving"] and st["visible"] == visible and 0 < st["drawn"] <= LOD_BUDGET, i
        assert p["full"] is False and p["lod"] == st["drawn"] == len(p["cells"]), i
        assert p["hidden"] == 0, f"panel {i}: a hidden cell in its subset"
        assert p["misplaced"] == 0, f"panel {i}: subset positions are not its embedding's"
        # selection rings thinned to the overlay share of the budget (every step-th ring)
        assert p["selection"] <= LOD_BUDGET // 4 < len(beta), i
        step = -(-len(beta) // p["selection"])
        assert p["selectionStride"] == step * 2 * 4, i
    # panels sharing an LOD order (same embedding) draw the same subset
    assert moving[0]["cells"] == moving[2]["cells"]

    # a pick on the second panel's subset layer is its cell on that panel's points layer
    pick = js(
        tab,
        """() => {
            const s = window.__cellucid.scene, p = s.split.extra[0];
            const xy = s.project(p.positions, p.size, 1);
            const cells = Array.from(p.lod.current.cells);
            const lone = cells.find((c) => cells.every((d) => d === c
                || Math.hypot(xy[2 * c] - xy[2 * d], xy[2 * c + 1] - xy[2 * d + 1]) > 12));
            const info = s.pickAt(xy[2 * lone], xy[2 * lone + 1]);
            return {lone, cell: info ? info.index : null, layer: info && info.layer ? info.layer.id : null,
                    id: p.id};
        }""",
    )
    assert pick["cell"] == pick["lone"] and pick["layer"] == f"panel{pick['id']}:points"

    page.mouse.up()
    js(
        tab,
        f"() => window.__cellucid.scene.split.panels().forEach((p) => {{ p.lod.settleMs = {LOD_SETTLE_MS};"
        " p.lod.moved(); })",
    )
    wait_until(
        lambda: not any(p["status"]["active"] for p in js(tab, LOD_PANELS)),
        60,
        "full detail in every panel when still",
    )
    for i, p in enumerate(js(tab, LOD_PANELS)):
        assert p["full"] is True and p["lod"] is None and p["status"]["drawn"] == visible, i
        assert p["selection"] == len(beta) and p["selectionStride"] == 0, i

    # a lasso around alpha as the second panel (X_tsne, turned by 90°: bottom-right) draws it,
    # in a worker
    js(
        tab,
        "() => { const v = window.__cellucid; v.selectWorkerMin = 0; v.lastLasso = null;"
        " v.setSelection(new Uint32Array(0), 'test'); v.resetCamera(); }",
    )
    wait_until(lambda: js(tab, drawn), 60, "the fitted cameras drawn")
    project = (
        "() => { const s = window.__cellucid.scene; const p = s.split.extra[0];"
        " return Array.from(s.project(p.positions, p.size, 1)); }"
    )
    pts = np.asarray(js(tab, project)).reshape(-1, 2)
    centre = pts[alpha].mean(axis=0)
    radius = np.linalg.norm(pts[alpha] - centre, axis=1).max() + 6
    r1 = rects[1]
    assert r1["x"] <= centre[0] < r1["x"] + r1["width"]
    assert r1["y"] <= centre[1] < r1["y"] + r1["height"]
    ring = np.asarray(circle(centre, radius))
    assert (ring[:, 0] > r1["x"]).all() and (ring[:, 0] < r1["x"] + r1["width"]).all()
    assert (ring[:, 1] > r1["y"] + 70).all() and (ring[:, 1] < r1["y"] + r1["height"]).all()
    # the same circle over the first panel's geometry (X_umap, same camera) holds other cells
    xy0 = np.asarray(js(tab, "() => Array.from(window.__cellucid.scene.screenPositions())"))
    xy0 = xy0.reshape(-1, 2) - [r0["x"], r0["y"]] + [r1["x"], r1["y"]]
    under0 = set(np.flatnonzero(np.linalg.norm(xy0 - centre, axis=1) < radius).tolist())
    assert under0 != set(alpha.tolist())
    page.keyboard.press("l")
    drag(page, circle(centre + origin, radius))
    wait_until(
        lambda: (
            js(tab, "() => window.__cellucid.lastLasso") is not None
            and len(js(tab, "() => window.__cellucid.selection")) > 0
        ),
        30,
        "the lasso's selection from a worker",
    )
    selected = js(tab, "() => Array.from(window.__cellucid.selection)")
    assert set(selected) == set(alpha.tolist())
    last = js(tab, "() => window.__cellucid.lastLasso")
    # the LOD orders are built, so the worker has the panels' tree indexes
    assert last["route"] == "index" and last["panel"] == 1, last
    # the page's own path selects the same cells from the same polygon
    poly = [list(p) for p in circle(centre, radius)]
    on_page = js(
        tab,
        "async (poly) => { const v = window.__cellucid; v.selectWorkerMin = Infinity;"
        " v.setSelection(new Uint32Array(0), 'test'); const r = v.lasso(poly, 'replace');"
        " await r; return {async_: r instanceof Promise, cells: Array.from(v.selection)}; }",
        poly,
    )
    assert on_page == {"async_": False, "cells": sorted(selected)}
    assert not console_errors(tab)


EDGE_LAYERS = """() => {
  const s = window.__cellucid.scene;
  const { src, dst } = s.edgeIndex;
  return s.deck.props.layers.filter((l) => /(^|:)edges$/.test(l.id)).map((l) => {
    const p = l.id === "edges" ? s : s.split.extra.find((q) => l.id === `panel${q.id}:edges`);
    const a = l.props.data.attributes, stride = s.edges.stride, k = p.size;
    let ends = true;  // every segment joins its edge's two cells in THIS panel's positions
    for (let j = 0; j < l.props.data.length; j++) {
      for (let c = 0; c < k; c++) {
        ends = ends && a.getSourcePosition.value[3 * j + c] === p.positions[src[j * stride] * k + c]
                    && a.getTargetPosition.value[3 * j + c] === p.positions[dst[j * stride] * k + c];
      }
    }
    return { id: l.id, n: l.props.data.length, ends, sharedWidths: a.getWidth.value === s.edges.widths,
             samePositions: p.positions === s.positions };
  });
}"""


def test_knn_edges_draw_in_every_panel_in_its_own_embedding(two_embeddings, pages):
    tab = open_page(pages, two_embeddings)
    page = tab.page
    js(
        tab,
        "() => window.__cellucid.split(['cluster', {field: 'cluster', embedding: 'X_tsne'}, 'GeneY'])",
    )
    page.wait_for_function(
        "() => { const s = window.__cellucid.scene; return s.split && s.split.extra.length === 2"
        " && s.split.extra.every((p) => p.colors); }",
        timeout=15_000,
    )
    js(tab, "() => window.__cellucid.setEdges(true)")
    page.wait_for_function("() => window.__cellucid.scene.edges !== null", timeout=15_000)
    layers = wait_until(
        lambda: (found := js(tab, EDGE_LAYERS)) and len(found) == 3 and found,
        10,
        "three edge layers",
    )
    by_id = {layer["id"]: layer for layer in layers}
    ids = [
        p["id"]
        for p in js(tab, "() => window.__cellucid.scene.split.extra.map((p) => ({id: p.id}))")
    ]
    tsne, gene = by_id[f"panel{ids[0]}:edges"], by_id[f"panel{ids[1]}:edges"]
    assert all(layer["ends"] and layer["n"] > 0 and layer["sharedWidths"] for layer in layers)
    assert not tsne["samePositions"] and gene["samePositions"]  # X_tsne has its own segments
    # drawn: every panel's pixels change when the edges go off (short kNN edges between
    # neighbours, mostly under the points: a few hundred pixels a panel)
    rects = js(tab, PANEL_SHOT)["rects"]
    with_edges = halves(tab.stable_shot(), rects)
    js(tab, "() => window.__cellucid.setEdges(false)")
    without = halves(tab.stable_shot(), rects)
    changed = [changed_fraction(a, b) for a, b in zip(with_edges, without, strict=True)]
    assert min(changed) > 1e-4, changed
    assert not console_errors(tab)
