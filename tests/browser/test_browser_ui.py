"""Viewer controls a person uses: point size and opacity sliders, the dark background, the
hover tooltip, the 1D view, lasso add/subtract with modifier keys, the gene search
autocomplete, the startup progress bar, and how missing values are drawn and listed.

The ``ui`` dataset is the cluster dataset plus a 1D embedding (each cell's x), a continuous
field ``score_nan`` that is NaN for gamma and a categorical ``cluster_missing`` without a
category for beta; an in-memory AnnData server serves it.
"""

from __future__ import annotations

import numpy as np
import pytest
from _browser import (
    anndata_server,
    background_colour,
    changed_fraction,
    circle,
    drag,
    drawn_mask,
    geometry,
    inside,
    region,
    viewer_query,
    wait_until,
)

# MISSING_RGB of js/viewer/src/color/palettes.js
MISSING_RGB = np.array([160, 160, 160])


# ---- data and servers ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ui_data(clusters):
    import pandas as pd

    adata = clusters.adata.copy()
    xy = np.asarray(adata.obsm["X_umap"], dtype=np.float64)
    adata.obsm["X_umap_2d"] = xy
    adata.obsm["X_umap_1d"] = xy[:, :1].copy()
    del adata.obsm["X_umap"]
    score = adata.obs["score"].to_numpy(dtype=np.float64).copy()
    score[clusters.members["gamma"]] = np.nan
    adata.obs["score_nan"] = score
    labels = adata.obs["cluster"].astype(str).to_numpy(dtype=object).copy()
    labels[clusters.members["beta"]] = None
    adata.obs["cluster_missing"] = pd.Categorical(
        labels, categories=["alpha", "gamma", "delta", "lone"]
    )
    return adata


@pytest.fixture(scope="module")
def ui_server(ui_data):
    with anndata_server(ui_data) as server:
        yield server


@pytest.fixture
def open_ui(open_viewer, ui_server):
    return lambda **kw: open_viewer("anndata", server=ui_server, **kw)


def _wait_field(page, key: str) -> None:
    page.wait_for_function(
        f"() => window.__cellucid.field && window.__cellucid.field.key === {key!r}",
        timeout=10_000,
    )


def _cluster_regions(viewer, clusters):
    return geometry(viewer.points(), viewer.plot_origin(), clusters.members)


def _ink(px: np.ndarray, bg: np.ndarray) -> float:
    """Mean distance from the background colour over the picture."""
    return float(np.abs(px - bg).max(axis=-1).mean())


# ---- 1. point size and opacity -----------------------------------------------------------------


def test_point_size_and_opacity_sliders_change_the_picture(open_viewer, clusters):
    viewer = open_viewer("export")
    page = viewer.page
    before = viewer.stable_shot()
    bg = background_colour(before)
    drawn_before = drawn_mask(before, bg).sum()
    assert drawn_before > 0

    size = page.get_by_label("Point size", exact=True)
    size.fill("10")
    page.wait_for_function("() => window.__cellucid.pointSize === 10")
    big = viewer.stable_shot()
    assert drawn_mask(big, bg).sum() > 1.5 * drawn_before, "bigger points drew no more pixels"
    size.fill("1")
    page.wait_for_function("() => window.__cellucid.pointSize === 1")
    small = viewer.stable_shot()
    assert drawn_mask(small, bg, tol=10).sum() < 0.6 * drawn_before, "smaller points drew as much"
    size.fill("4")
    page.wait_for_function("() => window.__cellucid.pointSize === 4")
    assert changed_fraction(before, viewer.stable_shot()) < 0.001

    # fainter points: the same pixels, closer to the background
    opacity = page.get_by_label("Opacity", exact=True)
    opacity.fill("0.2")
    page.wait_for_function("() => window.__cellucid.opacity === 0.2")
    faint = viewer.stable_shot()
    mask = drawn_mask(before, bg)
    assert _ink(faint[mask], bg) < 0.75 * _ink(before[mask], bg), "lower opacity looks the same"
    assert drawn_mask(faint, bg, tol=8).sum() > 0.5 * drawn_before, "faint points vanished"
    assert page.locator("label.row", has_text="Opacity").locator("output").inner_text() == "0.2"


# ---- 2. dark background ------------------------------------------------------------------------


def test_dark_background_darkens_the_plot_and_keeps_the_points(open_viewer, clusters):
    viewer = open_viewer("export")
    page = viewer.page
    light = viewer.stable_shot()
    assert background_colour(light).min() > 200, "the plot does not open on a light background"
    geo = _cluster_regions(viewer, clusters)
    page.click("[data-bg='dark']")
    page.wait_for_function("() => window.__cellucid.snapshot().background === 'dark'")
    dark = viewer.stable_shot()
    bg = background_colour(dark)
    assert bg.max() < 60, f"background {bg} is not dark"
    for name, (centre, radius) in geo.items():
        assert drawn_mask(region(dark, centre, radius), bg).mean() > 0.05, f"{name} not drawn"
    assert page.evaluate("() => document.body.dataset.theme") == "dark"
    page.click("[data-bg='light']")
    page.wait_for_function("() => window.__cellucid.snapshot().background === 'light'")
    assert changed_fraction(light, viewer.stable_shot()) < 0.001


# ---- 3. hover tooltip --------------------------------------------------------------------------


def test_hover_tooltip_names_the_cell_and_its_value(open_ui, clusters):
    viewer = open_ui()
    page = viewer.page
    _wait_field(page, "cluster")
    viewer.stable_shot()
    tooltip = page.locator("#tooltip")
    assert tooltip.is_hidden()
    lone = viewer.points()[clusters.lone]
    page.mouse.move(lone[0] + 40, lone[1] + 40)
    page.mouse.move(*lone, steps=4)
    tooltip.wait_for(state="visible", timeout=5000)
    text = tooltip.inner_text()
    assert f"Cell {clusters.lone:,}" in text, text
    assert "cluster: lone" in text, text

    page.get_by_label("Colour by obs field").select_option("score")
    _wait_field(page, "score")
    viewer.settle()
    page.mouse.move(lone[0] + 1, lone[1])
    page.mouse.move(*lone)
    page.wait_for_function(
        "() => document.getElementById('tooltip').innerText.includes('score:')", timeout=5000
    )
    text = tooltip.inner_text()
    assert f"Cell {clusters.lone:,}" in text and "score: 0" in text, text

    # off every cell the tooltip goes away
    page.mouse.move(lone[0] + 60, lone[1] + 5, steps=3)
    tooltip.wait_for(state="hidden", timeout=5000)


# ---- 4. 1D view --------------------------------------------------------------------------------


def test_one_dimensional_view_draws_a_horizontal_band(open_ui):
    viewer = open_ui()
    page = viewer.page
    assert page.evaluate("() => window.__cellucid.dimensions") == [1, 2]
    flat = viewer.stable_shot()
    bg = background_colour(flat)
    rows_2d = np.flatnonzero(drawn_mask(flat, bg).any(axis=1))
    page.click("[data-dim='1']")
    page.wait_for_function("() => window.__cellucid.dim === 1", timeout=10_000)
    line = viewer.stable_shot()
    mask = drawn_mask(line, bg)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    height, width = mask.shape
    assert len(rows) and np.ptp(rows) < 0.15 * height, (
        f"1D band spans rows {rows.min()}-{rows.max()}"
    )
    assert np.ptp(rows_2d) > 0.4 * height, "the 2D view was already a band"
    assert np.ptp(cols) > 0.4 * width, "the 1D points do not spread horizontally"
    ys = viewer.points()[:, 1]
    assert ys.max() - ys.min() < 0.15 * height
    assert page.evaluate("() => window.__cellucid.snapshot().dim") == 1


# ---- 5. lasso add / subtract -------------------------------------------------------------------


def _lasso(page, polygon, key: str | None = None) -> None:
    if key:
        page.keyboard.down(key)
    try:
        drag(page, polygon)
    finally:
        if key:
            page.keyboard.up(key)


@pytest.mark.parametrize("subtract_key", ["Alt", "Control"])
def test_lasso_modifiers_add_and_subtract(open_viewer, clusters, subtract_key):
    viewer = open_viewer("export")
    page = viewer.page
    viewer.stable_shot()
    points = viewer.points()
    origin = viewer.plot_origin()
    geo = geometry(points, origin, clusters.members)
    polys = {c: circle(geo[c][0] + origin, geo[c][1] * 1.1) for c in ("alpha", "beta")}
    for name, poly in polys.items():
        assert np.asarray(poly)[:, 0].max() < page.viewport_size["width"] - 1, name
        assert set(np.flatnonzero(inside(points, poly))) == set(clusters.members[name]), name
    a, b = clusters.members["alpha"], clusters.members["beta"]

    page.click("[data-tool='lasso']")
    page.wait_for_function("() => window.__cellucid.tool === 'lasso'")
    selection = lambda: page.evaluate("() => Array.from(window.__cellucid.selection)")  # noqa: E731

    _lasso(page, polys["alpha"])
    wait_until(lambda: len(viewer.events("selection")) >= 1, 10, "the first selection")
    assert selection() == a.tolist()
    _lasso(page, polys["beta"], "Shift")
    wait_until(lambda: len(viewer.events("selection")) >= 2, 10, "the added selection")
    assert selection() == np.union1d(a, b).tolist()
    _lasso(page, polys["alpha"], subtract_key)
    wait_until(lambda: len(viewer.events("selection")) >= 3, 10, "the subtracted selection")
    assert selection() == b.tolist()

    events = viewer.events("selection")
    assert [e["source"] for e in events] == ["lasso"] * 3
    got = [sorted(e["cells"].tolist()) for e in events]
    assert got == [a.tolist(), np.union1d(a, b).tolist(), b.tolist()]
    assert page.locator(".sel-count").inner_text() == f"{len(b)} cells"


# ---- 6. gene search autocomplete ---------------------------------------------------------------


def test_gene_search_suggests_and_colours_by_the_picked_gene(open_viewer, clusters):
    viewer = open_viewer("export")
    page = viewer.page
    _wait_field(page, "cluster")
    before = viewer.stable_shot()
    gene = page.get_by_label("Colour by gene")
    suggestions = page.locator(".suggest li")

    gene.press_sequentially("gene")
    page.locator(".suggest").wait_for(state="visible", timeout=5000)
    assert sorted(suggestions.all_inner_texts()) == sorted(["GeneAlpha", "GeneY", "GeneNoise"])
    gene.fill("")
    gene.press_sequentially("geney")
    page.wait_for_function("() => document.querySelectorAll('.suggest li').length === 1")
    assert suggestions.all_inner_texts() == ["GeneY"]
    gene.press("Enter")
    _wait_field(page, "GeneY")
    by_y = viewer.stable_shot()
    assert changed_fraction(before, by_y) > 0.002, "colouring by GeneY changed nothing"
    assert page.locator(".legend-title").inner_text().startswith("GeneY")
    assert page.locator(".suggest").is_hidden()

    gene.fill("")
    gene.press_sequentially("alp")
    suggestions.filter(has_text="GeneAlpha").click()
    _wait_field(page, "GeneAlpha")
    by_alpha = viewer.stable_shot()
    assert changed_fraction(by_y, by_alpha) > 0.002, "colouring by GeneAlpha changed nothing"
    assert page.locator(".legend-title").inner_text().startswith("GeneAlpha")
    assert gene.input_value() == "GeneAlpha"

    gene.fill("")
    gene.press_sequentially("zzz")
    assert page.locator(".gene-status").inner_text() == "no matching gene"
    assert suggestions.count() == 0


# ---- 7. progress bar ---------------------------------------------------------------------------


def test_progress_bar_shows_while_points_load(servers, pages, clusters):
    server = servers.get("export")
    channel = pages.channel(server)
    query = viewer_query(
        viewer_id=channel.viewer_id, token=channel.token, jupyter=False, anndata=False
    )
    handle = pages.open(f"{server.url}/{query}", channel, server)
    page = handle.page
    held = []
    page.route(lambda url: "points_2d.bin" in url, lambda route: held.append(route))
    page.goto(handle.url)
    wait_until(lambda: held or page.evaluate("() => 0"), 15, "the points request")
    screen = page.locator("#screen")
    progress = screen.locator(".progress")
    assert screen.is_visible() and progress.is_visible(), "no progress bar while loading"
    assert page.evaluate("() => document.getElementById('screen').dataset.phase") == "loading"
    assert "files" in screen.locator(".progress-text").inner_text()
    time_held = 0.3
    page.wait_for_timeout(time_held * 1000)
    assert progress.is_visible() and not channel.state.ready, "loaded without the points"
    for route in held:
        route.continue_()
    # polling the page lets Playwright pass on the requests that follow (still routed)
    wait_until(lambda: channel.state.ready or page.evaluate("() => false"), 30, "the ready event")
    screen.wait_for(state="hidden", timeout=10_000)
    assert progress.is_hidden()
    px = handle.stable_shot()
    assert drawn_mask(px, background_colour(px)).mean() > 0.005, "no points drawn after loading"


# ---- 8. missing values -------------------------------------------------------------------------


def test_missing_continuous_values_are_drawn_grey(open_ui, clusters):
    viewer = open_ui()
    page = viewer.page
    page.get_by_label("Colour by obs field").select_option("score_nan")
    _wait_field(page, "score_nan")
    px = viewer.stable_shot()
    bg = background_colour(px)
    geo = _cluster_regions(viewer, clusters)

    def drawn_colour(name):
        centre, radius = geo[name]
        patch = region(px, centre, radius)
        mask = drawn_mask(patch, bg, tol=20)
        assert mask.mean() > 0.05, f"{name} not drawn"
        return np.median(patch[mask], axis=0)

    grey = drawn_colour("gamma")
    assert np.ptp(grey) <= 12, f"gamma drawn {grey}, not grey"
    # MISSING over the white background at some alpha: between MISSING and white
    assert (grey >= MISSING_RGB - 8).all() and (grey <= 240).all(), grey
    for name in ("alpha", "beta", "delta"):
        colour = drawn_colour(name)
        assert np.ptp(colour) > 30, f"{name} drawn {colour}: grey like a missing value"
    assert "120 missing (grey)" in page.locator(".legend-box").inner_text()


def test_missing_category_has_a_legend_entry(open_ui, clusters):
    viewer = open_ui()
    page = viewer.page
    page.get_by_label("Colour by obs field").select_option("cluster_missing")
    _wait_field(page, "cluster_missing")
    row = page.locator(".legend-row.missing")
    assert row.count() == 1
    assert row.locator(".legend-label").inner_text() == "missing"
    assert row.locator(".legend-count").inner_text() == str(len(clusters.members["beta"]))
    labels = page.locator(".legend-row:not(.missing) .legend-label").all_inner_texts()
    assert labels == ["alpha", "gamma", "delta", "lone"]
    px = viewer.stable_shot()
    bg = background_colour(px)
    centre, radius = _cluster_regions(viewer, clusters)["beta"]
    patch = region(px, centre, radius)
    mask = drawn_mask(patch, bg, tol=20)
    assert mask.mean() > 0.05, "beta (missing) not drawn"
    grey = np.median(patch[mask], axis=0)
    assert np.ptp(grey) <= 12 and (grey >= MISSING_RGB - 8).all(), f"beta drawn {grey}"
