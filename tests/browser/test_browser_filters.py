"""Filters and what users notice first, through the page's own controls: a range filter typed
and brushed on the histogram, categorical "only these" from a search, the Active filters list
(legend toggles included) with removal, hidden cells neither picked nor lassoed, highlights
and KNN edges hidden with their cells on screen and in the PNG and SVG figures, the cell's
obs name in the hover tooltip, and category labels at the centroids in light and dark.

The ``named`` server is the cluster dataset with barcode-like obs names, in memory.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import scipy.sparse as sp
from _browser import (
    anndata_server,
    background_colour,
    canvas_rect,
    changed_fraction,
    drag,
    drawn_mask,
    export_figure,
    geometry,
    region,
    wait_until,
)

SVG = "{http://www.w3.org/2000/svg}"
MAGENTA = np.array([255, 0, 255])


def barcode(i: int) -> str:
    return f"AAAC{(i * 7919) % 100000:05d}-{i % 3 + 1}"


@pytest.fixture(scope="module")
def named_server(clusters):
    adata = clusters.adata.copy()
    adata.obs_names = [barcode(i) for i in range(adata.n_obs)]
    with anndata_server(adata) as server:
        yield server


@pytest.fixture
def open_named(open_viewer, named_server):
    return lambda **kw: open_viewer("anndata", server=named_server, **kw)


# ---- helpers ---------------------------------------------------------------------------------


def _filters(page) -> list[str]:
    return page.locator(".filter-row .filter-text").all_inner_texts()


def _wait_field(page, key: str) -> None:
    page.wait_for_function(
        f"() => window.__cellucid.field && window.__cellucid.field.key === {key!r}",
        timeout=10_000,
    )


def _wait_visible(page, count: int) -> None:
    page.wait_for_function(f"() => window.__cellucid.visibleCount === {count}", timeout=10_000)


def _hover(page, point) -> None:
    page.mouse.move(point[0] + 40, point[1] + 40)
    page.mouse.move(*point, steps=4)


def _colour_near(px: np.ndarray, colour: np.ndarray, tol: int = 40) -> np.ndarray:
    return np.abs(px - colour).max(axis=-1) <= tol


# ---- 1. range filter: typed, brushed, removed ------------------------------------------------------


def test_range_filter_typed_and_brushed_then_removed(open_viewer, clusters):
    """Export folder: score = x + y; alpha is lowest, delta highest. The tooltip of a server
    without cell names shows the row number only."""
    viewer = open_viewer("export")
    page = viewer.page
    score = clusters.adata.obs["score"].to_numpy()
    before = viewer.stable_shot()
    bg = background_colour(before)
    geo = geometry(viewer.points(), viewer.plot_origin(), clusters.members)
    assert page.locator(".vis-count").inner_text() == f"{clusters.n} cells"

    # no obs names here: the row number only
    lone = viewer.points()[clusters.lone]
    _hover(page, lone)
    page.locator("#tooltip").wait_for(state="visible", timeout=5000)
    assert page.locator("#tooltip .tt-name").count() == 0
    assert f"Cell {clusters.lone:,}" in page.locator("#tooltip").inner_text()
    page.mouse.move(5, 5)

    page.get_by_label("Filter field").select_option("obs:score")
    page.locator("canvas.filter-hist[data-ready='true']").wait_for(timeout=10_000)
    minimum = page.get_by_label("Filter minimum")
    minimum.fill("0")
    minimum.press("Enter")
    expected = int((score >= 0).sum())
    _wait_visible(page, expected)
    assert _filters(page) == ["score ≥ 0"]
    assert page.locator(".vis-count").inner_text() == f"{expected} of {clusters.n} cells visible"
    shot = viewer.stable_shot()
    centre, radius = geo["alpha"]
    assert not drawn_mask(region(shot, centre, radius), bg).any(), "alpha (score < 0) is drawn"
    centre, radius = geo["delta"]
    assert drawn_mask(region(shot, centre, radius), bg).mean() > 0.05, "delta vanished"

    # brush from a third of the histogram past its left edge: an open range over alpha
    box = page.locator("canvas.filter-hist").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(box["x"] - 10, y, steps=6)
    page.mouse.up()
    page.wait_for_function("() => window.__cellucid.filters[0].lo === -Infinity", timeout=10_000)
    hi = page.evaluate("() => window.__cellucid.filters[0].hi")
    _wait_visible(page, int((score <= hi).sum()))
    assert (score[clusters.members["alpha"]] <= hi).all(), f"score <= {hi} should hold alpha"
    assert not (score[clusters.members["delta"]] <= hi).any()
    assert float(page.get_by_label("Filter maximum").input_value()) == pytest.approx(hi)
    assert page.get_by_label("Filter minimum").input_value() == ""
    assert re.fullmatch(r"score ≤ -?[\d.]+", _filters(page)[0]), _filters(page)

    # remove it from the Active filters list: the picture comes back
    page.get_by_role("button", name=re.compile("^Remove filter .*score")).click()
    _wait_visible(page, clusters.n)
    assert _filters(page) == []
    assert changed_fraction(before, viewer.stable_shot()) < 0.001

    # a gene filter from the gene search: GeneAlpha >= 1 keeps alpha only
    gene_search = page.get_by_label("Filter by gene")
    gene_search.fill("GeneAlpha")
    gene_search.press("Enter")
    # the gene's editor replaces the last one: wait for it, not for any ready histogram
    page.locator(".filter-editor-title", has_text="GeneAlpha").wait_for(timeout=10_000)
    page.locator("canvas.filter-hist[data-ready='true']").wait_for(timeout=10_000)
    minimum = page.get_by_label("Filter minimum")
    minimum.fill("1")
    minimum.press("Enter")
    _wait_visible(page, len(clusters.members["alpha"]))
    assert _filters(page) == ["GeneAlpha ≥ 1"]
    page.get_by_role("button", name="clear all").click()
    _wait_visible(page, clusters.n)

    # a gene opens on the 1st-99th percentile of its expressing cells; the full range is a click away
    gene = np.asarray(clusters.adata[:, "GeneY"].X.todense()).ravel().astype(np.float32)
    viewer.command("setColorBy", field="GeneY")
    page.wait_for_function("() => window.__cellucid.snapshot().colorBy.key === 'GeneY'")
    lo, hi = page.evaluate("() => window.__cellucid.snapshot().range")
    p1, p99 = np.percentile(gene[gene != 0].astype(np.float64), [1, 99])
    assert (lo, hi) == (pytest.approx(p1, rel=1e-5), pytest.approx(p99, rel=1e-5))
    assert "on" in (page.locator(".range-robust").get_attribute("class") or "")
    page.locator(".range-full").click()
    page.wait_for_function("() => window.__cellucid.snapshot().range[0] === 0")
    assert page.evaluate("() => window.__cellucid.snapshot().range[1]") == pytest.approx(gene.max())
    assert not viewer.errors


# ---- 2. only these, picking, lasso, obs names ------------------------------------------------------


def test_only_these_hides_cells_from_hover_click_and_lasso(open_named, clusters):
    viewer = open_named()
    page = viewer.page
    _wait_field(page, "cluster")
    viewer.stable_shot()
    points = viewer.points()
    lone = points[clusters.lone]

    # the tooltip names the cell by its obs name (fetched on this first hover)
    _hover(page, lone)
    name = page.locator("#tooltip .tt-name")
    name.wait_for(state="visible", timeout=10_000)
    assert name.inner_text() == barcode(clusters.lone)
    assert f"Cell {clusters.lone:,}" in page.locator("#tooltip").inner_text()
    page.mouse.move(5, 5)

    page.get_by_label("Filter field").select_option("obs:cluster")
    page.get_by_label("Find categories").fill("ta")
    assert page.locator(".filter-cat").all_inner_texts() == ["beta", "delta"]
    page.get_by_role("button", name="Only these (2)").click()
    shown = np.union1d(clusters.members["beta"], clusters.members["delta"])
    _wait_visible(page, len(shown))
    assert _filters(page) == ["cluster: beta, delta"]
    for label in ("alpha", "gamma", "lone"):
        row = page.locator(".legend-row", has=page.locator(".legend-label", has_text=label))
        assert "off" in (row.get_attribute("class") or ""), f"{label} is not marked hidden"
    viewer.settle()

    # the hidden lone cell is neither hovered nor clicked
    hovers = len(viewer.events("hover"))
    _hover(page, lone)
    page.mouse.click(*lone)
    viewer.settle()
    assert page.locator("#tooltip").is_hidden()
    assert not viewer.events("click")
    assert not [e for e in viewer.events("hover")[hovers:] if e["cell"] == clusters.lone]
    assert page.evaluate("() => window.__cellucid.selection.length") == 0

    # a lasso over the bottom half (alpha and beta) selects only beta's cells
    page.click("[data-tool='lasso']")
    page.wait_for_function("() => window.__cellucid.tool === 'lasso'")
    geo = geometry(points, np.zeros(2), clusters.members)
    (ax, ay), ar = geo["alpha"]
    (bx, _), br = geo["beta"]
    rect = canvas_rect(page)
    left, right = max(ax - 2 * ar, rect["x"] + 2), min(bx + 2 * br, rect["x"] + rect["width"] - 2)
    top, bottom = max(ay - 2 * ar, lone[1] + 20), rect["y"] + rect["height"] - 2
    assert (points[clusters.members["alpha"], 1] > top).all() and (points[:, 1] < bottom).all()
    drag(page, [(left, top), (right, top), (right, bottom), (left, bottom)])
    wait_until(lambda: viewer.events("selection"), 10, "the lasso selection")
    got = page.evaluate("() => Array.from(window.__cellucid.selection)")
    assert got == clusters.members["beta"].tolist()

    # a legend click edits the same filter; removing it shows every cell again
    page.locator(".legend-row", has=page.locator(".legend-label", has_text="gamma")).click()
    page.wait_for_function("() => window.__cellucid.visibleCount === 360")
    assert _filters(page) == ["cluster: not alpha, lone"]
    page.get_by_role("button", name="Remove filter cluster: not alpha, lone").click()
    _wait_visible(page, clusters.n)
    assert page.locator(".filter-row").count() == 0
    assert not viewer.errors


# ---- 3. highlights, KNN edges, labels and the figures ----------------------------------------------


def _edges_kept(adata, hidden: np.ndarray) -> int:
    c = sp.csr_matrix(adata.obsp["connectivities"])
    pairs = sp.triu(c + c.T, k=1).tocoo()
    keep = np.ones(adata.n_obs, bool)
    keep[hidden] = False
    return int((keep[pairs.row] & keep[pairs.col]).sum())


def test_highlights_edges_and_labels_obey_filters_on_screen_and_in_figures(open_named, clusters):
    from PIL import Image

    viewer = open_named()
    page = viewer.page
    _wait_field(page, "cluster")
    alpha, beta = clusters.members["alpha"], clusters.members["beta"]
    viewer.command("highlight", cells=np.concatenate([alpha, beta[:30]]).tolist(), color="#ff00ff")
    page.get_by_role("checkbox", name=re.compile("KNN edges")).check()
    page.wait_for_function(
        "() => window.__cellucid.scene.edges && window.__cellucid.scene.showEdges"
    )
    before = viewer.stable_shot()
    bg = background_colour(before)
    geo = geometry(viewer.points(), viewer.plot_origin(), clusters.members)
    centre, radius = geo["alpha"]
    assert _colour_near(region(before, centre, radius), MAGENTA).any(), "no highlight on alpha"

    # labels at the centroids: dark ink with a light halo
    labels = page.get_by_role("checkbox", name="Category labels")
    labels.check()
    page.wait_for_function("() => window.__cellucid.scene.labels !== null")
    labelled = viewer.stable_shot()
    assert changed_fraction(before, labelled) > 0.0005, "labels changed nothing"
    centre, radius = geo["delta"]
    ink = region(labelled, centre, radius)
    assert (ink.max(axis=-1) < 90).any(), "no dark label text in the light theme"

    # hide alpha from the legend: its highlight, edges and label go with it
    page.locator(".legend-row", has=page.locator(".legend-label", has_text="alpha")).click()
    _wait_visible(page, clusters.n - len(alpha))
    hidden = viewer.stable_shot()
    centre, radius = geo["alpha"]
    assert not drawn_mask(region(hidden, centre, radius * 1.3), bg).any(), "alpha still drawn"
    centre, radius = geo["beta"]
    assert _colour_near(region(hidden, centre, radius), MAGENTA).any(), "beta lost its highlight"
    assert page.evaluate("() => window.__cellucid.scene.labels.map(l => l.text)") == [
        "beta",
        "gamma",
        "delta",
        "lone",
    ]

    # the SVG limit counts drawn edges too
    kept = _edges_kept(clusters.adata, alpha)
    page.evaluate(f"() => {{ window.__cellucid.svgLimit = {kept - 1}; }}")
    page.get_by_role("button", name="SVG", exact=True).click()
    message = f"SVG export is limited to {kept - 1:,} KNN edges; {kept:,} are drawn"
    page.locator(".sec", has_text="Figure").get_by_text(message).wait_for(timeout=5000)
    page.evaluate("() => { window.__cellucid.svgLimit = 200000; }")

    # SVG: the visible cells, the visible highlight marks, the kept edges and the labels
    root = ET.fromstring(export_figure(page, "SVG").decode("utf-8"))
    cells = root.find(f"{SVG}g[@class='cells']")
    assert len(cells) == clusters.n - len(alpha)
    marks = root.findall(f".//{SVG}g[@class='highlight']/{SVG}circle")
    assert len(marks) == 30
    (path,) = root.findall(f".//{SVG}path[@class='knn-edges']")
    assert path.get("d").count("M") == kept
    texts = [t.text for t in root.findall(f".//{SVG}g[@class='labels']/{SVG}text")]
    assert texts == ["beta", "gamma", "delta", "lone"]
    # the marks sit on beta's cells
    xy = np.array([[float(c.get("cx")), float(c.get("cy"))] for c in marks])
    screen = viewer.points() - viewer.plot_origin()
    assert np.allclose(
        np.sort(xy, axis=0), np.sort(np.round(screen[beta[:30]], 1), axis=0), atol=0.06
    )

    # PNG: the same picture as the screen (no alpha, beta's highlight)
    png = np.asarray(
        Image.open(io.BytesIO(export_figure(page, "1×"))).convert("RGB"), dtype=np.int16
    )
    centre, radius = geo["alpha"]
    assert not drawn_mask(region(png, centre, radius * 1.3), background_colour(png)).any()
    centre, radius = geo["beta"]
    assert _colour_near(region(png, centre, radius), MAGENTA).any()

    # dark theme: light label text on a dark halo
    page.click("[data-bg='dark']")
    page.wait_for_function("() => window.__cellucid.snapshot().background === 'dark'")
    dark = viewer.stable_shot()
    centre, radius = geo["delta"]
    assert (region(dark, centre, radius).min(axis=-1) > 200).any(), "no light label text"
    labels.uncheck()
    page.wait_for_function("() => window.__cellucid.scene.labels === null")
    assert changed_fraction(dark, viewer.stable_shot()) > 0.0005
    assert not viewer.errors
