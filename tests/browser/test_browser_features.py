"""Viewer features driven through the page's own controls: figure export (PNG with legend,
SVG marks and its size limit), the legend (hide/show, filter, counts), 2D/3D switching and
camera reset, the 3D lasso, vector arrows, the dataset picker, bench mode, and the colour
bar range and gene loading state.

The ``features`` dataset is the cluster dataset plus a 3D embedding (the clusters at
alternating heights), a ``velocity_umap_2d`` vector field and a ``many`` field of 300
categories; an in-memory AnnData server serves it.
"""

from __future__ import annotations

import io
import re
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from _browser import (
    anndata_server,
    background_colour,
    changed_fraction,
    circle,
    drag,
    drawn_mask,
    export_figure,
    geometry,
    inside,
    pixels,
    region,
    screenshot,
    server_options,
    wait_until,
)

N_MANY = 300
SVG_NS = "{http://www.w3.org/2000/svg}"


# ---- data and servers ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def features(clusters):
    """The cluster AnnData with X_umap_3d, velocity_umap_2d and a 300-category field."""
    import pandas as pd

    adata = clusters.adata.copy()
    n = adata.n_obs
    xy = np.asarray(adata.obsm["X_umap"], dtype=np.float64)
    rng = np.random.default_rng(7)
    z = np.sign(xy[:, 0] * xy[:, 1]) * 4.0 + rng.normal(0.0, 0.3, n)
    adata.obsm["X_umap_2d"] = xy
    adata.obsm["X_umap_3d"] = np.column_stack([xy, z])
    del adata.obsm["X_umap"]
    # every cell points away from the middle, one unit long
    adata.obsm["velocity_umap_2d"] = xy / np.maximum(np.linalg.norm(xy, axis=1), 1e-9)[:, None]
    codes = rng.integers(0, N_MANY, n)
    names = [f"type{i:03d}" for i in range(N_MANY)]
    adata.obs["many"] = pd.Categorical.from_codes(codes, categories=names)
    return adata


@pytest.fixture(scope="module")
def features_server(features):
    with anndata_server(features) as server:
        yield server


@pytest.fixture
def open_features(open_viewer, features_server):
    return lambda **kw: open_viewer("anndata", server=features_server, **kw)


# ---- page helpers ------------------------------------------------------------------------------


def _snapshot(viewer) -> dict:
    return viewer.page.evaluate("() => window.__cellucid.snapshot()")


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _canvas_css_size(page) -> tuple[int, int]:
    return tuple(
        page.evaluate(
            "() => { const h = window.__cellucid.scene.host;"
            " return [h.clientWidth, h.clientHeight]; }"
        )
    )


# ---- 1. figure export --------------------------------------------------------------------------


def test_png_export_scales_and_includes_the_legend(open_features, clusters):
    from PIL import Image

    viewer = open_features()
    page = viewer.page
    # a small page keeps the 4x export cheap on a software renderer
    page.set_viewport_size({"width": 520, "height": 300})
    page.wait_for_function("() => window.__cellucid.scene.host.clientHeight === 300")
    viewer.stable_shot()
    w, h = _canvas_css_size(page)
    sizes = {}
    images = {}
    for scale in (1, 2, 4):
        data = export_figure(page, f"{scale}×")
        sizes[scale] = _png_size(data)
        images[scale] = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)
    base_w, base_h = sizes[1]
    assert base_h == h and base_w > w, f"1x PNG {sizes[1]} for a {w}x{h} canvas"
    for scale in (2, 4):
        assert sizes[scale] == (base_w * scale, base_h * scale), sizes
    assert "PNG" in page.locator(".sec", has_text="Figure").inner_text()

    for scale, img in images.items():
        bg = background_colour(img)
        legend = img[:, w * scale :]
        plot = img[:, : w * scale]
        assert drawn_mask(legend, bg).mean() > 0.002, f"{scale}x: no legend drawn"
        assert drawn_mask(plot, bg).mean() > 0.002, f"{scale}x: no cells drawn"
    # the legend lists the cluster categories: five swatches at rows 30 + 17 i (CSS px)
    img = images[1]
    bg = background_colour(img)
    for i in range(5):
        y = 16 + 30 + 17 * i
        swatch = img[y - 2 : y + 3, w + 10 + 6 - 2 : w + 10 + 6 + 3]
        assert drawn_mask(swatch, bg).all(), f"legend swatch {i} missing"


def _svg_marks(text: str) -> list[ET.Element]:
    root = ET.fromstring(text)
    groups = [g for g in root if g.tag == f"{SVG_NS}g" and g.get("fill-opacity") is not None]
    assert len(groups) == 1, "the SVG has one group of cell marks"
    return [c for c in groups[0] if c.tag == f"{SVG_NS}circle"]


def test_svg_export_has_one_mark_per_visible_cell(open_features, clusters):
    viewer = open_features()
    page = viewer.page
    viewer.settle()
    marks = _svg_marks(export_figure(page, "SVG").decode("utf-8"))
    assert len(marks) == clusters.n

    hidden = clusters.members["gamma"]
    page.evaluate(
        "cells => window.__cellucid.setVisibility(Uint32Array.from(cells), false)",
        hidden.tolist(),
    )
    viewer.settle()
    marks = _svg_marks(export_figure(page, "SVG").decode("utf-8"))
    assert len(marks) == clusters.n - len(hidden)
    # the marks sit where the visible cells are drawn, none where gamma is
    xy = np.array([[float(m.get("cx")), float(m.get("cy"))] for m in marks])
    screen = np.asarray(page.evaluate("() => Array.from(window.__cellucid.screenPositions())"))
    screen = screen.reshape(-1, 2)
    shown = np.setdiff1d(np.arange(clusters.n), hidden)
    expected = np.round(screen[shown], 1)
    assert np.allclose(np.sort(xy, axis=0), np.sort(expected, axis=0), atol=0.06)
    assert "SVG with" in page.locator(".sec", has_text="Figure").inner_text()


def test_svg_export_refuses_above_the_limit(open_features, clusters):
    """The limit is ``viewer.svgLimit`` (default 200,000): lowered below the visible count,
    the same code path refuses with a message and downloads nothing."""
    viewer = open_features()
    page = viewer.page
    assert page.evaluate("() => window.__cellucid.svgLimit") == 200_000
    page.evaluate("() => { window.__cellucid.svgLimit = 100; }")
    downloads = []
    page.on("download", lambda d: downloads.append(d))
    page.get_by_role("button", name="SVG", exact=True).click()
    figure = page.locator(".sec", has_text="Figure")
    message = f"SVG export is limited to 100 visible cells; {clusters.n} are visible"
    figure.get_by_text(message).wait_for(timeout=5000)
    # hide cells until the visible count is within the limit: the export goes through
    keep = clusters.members["alpha"][:100]
    page.evaluate("() => window.__cellucid.setVisibility(null, false)")
    page.evaluate(
        "cells => window.__cellucid.setVisibility(Uint32Array.from(cells), true)", keep.tolist()
    )
    marks = _svg_marks(export_figure(page, "SVG").decode("utf-8"))
    assert len(marks) == 100
    assert len(downloads) == 1, "the refused export downloaded a file"


# ---- 2. legend ---------------------------------------------------------------------------------


def _legend_row(page, label: str):
    return page.locator(
        ".legend-row", has=page.locator(".legend-label", has_text=re.compile(f"^{label}$"))
    )


def test_legend_click_hides_and_shows_a_category(open_features, clusters):
    viewer = open_features()
    page = viewer.page
    page.wait_for_function(
        "() => window.__cellucid.field && window.__cellucid.field.key === 'cluster'"
    )
    before = viewer.stable_shot()
    bg = background_colour(before)
    geo = geometry(viewer.points(), viewer.plot_origin(), clusters.members)
    centre, radius = geo["beta"]
    assert drawn_mask(region(before, centre, radius), bg).mean() > 0.05

    # counts shown are the category sizes
    for name, idx in clusters.members.items():
        count = _legend_row(page, name).locator(".legend-count").inner_text()
        assert int(count.replace(",", "")) == len(idx), name
    assert _legend_row(page, "lone").locator(".legend-count").inner_text() == "1"

    _legend_row(page, "beta").click()
    hidden = viewer.stable_shot()
    assert not drawn_mask(region(hidden, centre, radius), bg).any(), "beta is still drawn"
    other, other_r = geo["alpha"]
    assert drawn_mask(region(hidden, other, other_r), bg).mean() > 0.05, "alpha vanished too"
    assert _snapshot(viewer)["hiddenCategories"] == ["beta"]
    assert "off" in (_legend_row(page, "beta").get_attribute("class") or "")

    _legend_row(page, "beta").click()
    shown = viewer.stable_shot()
    assert drawn_mask(region(shown, centre, radius), bg).mean() > 0.05, "beta did not come back"
    assert changed_fraction(before, shown) < 0.001
    assert _snapshot(viewer)["hiddenCategories"] == []


def test_legend_filter_and_counts_for_many_categories(open_features, features):
    viewer = open_features()
    page = viewer.page
    page.get_by_label("Colour by obs field").select_option("many")
    page.wait_for_function(
        "() => window.__cellucid.field && window.__cellucid.field.key === 'many'"
    )
    rows = page.locator(".legend-row:not(.missing)")
    assert rows.count() == N_MANY
    sizes = features.obs["many"].value_counts()
    labels = rows.locator(".legend-label").all_inner_texts()
    counts = [int(c.replace(",", "")) for c in rows.locator(".legend-count").all_inner_texts()]
    assert dict(zip(labels, counts, strict=True)) == {k: int(v) for k, v in sizes.items()}

    search = page.get_by_label("Filter categories")
    search.fill("type01")
    visible = page.locator(".legend-row:not(.missing):visible .legend-label").all_inner_texts()
    assert visible == [f"type{i:03d}" for i in range(10, 20)]
    assert page.locator(".legend-info").inner_text() == "10 of 300 categories"
    search.fill("")
    assert page.locator(".legend-row:not(.missing):visible").count() == N_MANY
    assert page.locator(".legend-info").inner_text() == "300 categories"


# ---- 3. dimensions and camera ------------------------------------------------------------------


def _set_dim(viewer, d: int) -> None:
    viewer.page.click(f"[data-dim='{d}']")
    viewer.page.wait_for_function(f"() => window.__cellucid.dim === {d}", timeout=10_000)
    viewer.page.wait_for_function(
        f"() => document.querySelector(\"[data-dim='{d}']\").classList.contains('on')"
    )


def test_switch_dimensions_and_reset_camera_in_3d(open_features):
    """The dataset opens in 3D (its default); 2D and back to 3D change the picture, and
    Reset camera after a rotation returns to the opening view."""
    viewer = open_features()
    page = viewer.page
    assert page.evaluate("() => window.__cellucid.dimensions") == [2, 3]
    assert _snapshot(viewer)["dim"] == 3
    opening = viewer.stable_shot()
    home = _snapshot(viewer)["camera"]
    _set_dim(viewer, 2)
    flat = viewer.stable_shot()
    assert changed_fraction(flat, opening) > 0.005, "2D looks like 3D"
    assert _snapshot(viewer)["dim"] == 2
    _set_dim(viewer, 3)
    again = viewer.stable_shot()
    assert changed_fraction(again, opening) < 0.001, "3D after 2D differs from the opening"

    # rotate by dragging, then reset
    rect = page.evaluate("() => window.__cellucid.scene.host.getBoundingClientRect().toJSON()")
    cx, cy = rect["x"] + rect["width"] / 2, rect["y"] + rect["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 150, cy + 60, steps=8)
    page.mouse.up()
    turned = viewer.stable_shot()
    assert changed_fraction(opening, turned) > 0.005, "dragging did not rotate the view"
    assert _snapshot(viewer)["camera"] != home
    page.get_by_role("button", name="Reset camera").click()
    reset = viewer.stable_shot()
    assert changed_fraction(opening, reset) < 0.001
    camera = _snapshot(viewer)["camera"]
    for key in ("rotationX", "rotationOrbit", "zoom", "target"):
        assert camera[key] == pytest.approx(home[key]), key

    _set_dim(viewer, 2)
    back = viewer.stable_shot()
    assert changed_fraction(flat, back) < 0.001, "2D after 3D differs from the first 2D view"


# ---- 4. 3D lasso ---------------------------------------------------------------------------------


def test_lasso_in_3d_selects_the_cells_inside_the_polygon(open_features, clusters):
    viewer = open_features()
    page = viewer.page
    assert _snapshot(viewer)["dim"] == 3
    viewer.stable_shot()
    points = viewer.points()
    geo = geometry(points, viewer.plot_origin(), clusters.members)
    centre, radius = geo["delta"]
    # a polygon around delta's middle: it holds some of delta and nothing else
    polygon = circle(centre + viewer.plot_origin(), radius * 0.6)
    expected = np.flatnonzero(inside(points, polygon))
    assert 5 < len(expected) < len(clusters.members["delta"])
    assert set(expected) <= set(clusters.members["delta"])

    page.click("[data-tool='lasso']")
    page.wait_for_function("() => window.__cellucid.tool === 'lasso'")
    drag(page, polygon)
    event = viewer.wait_event("selection")
    assert event["source"] == "lasso"
    assert sorted(event["cells"].tolist()) == expected.tolist()
    selected = page.evaluate("() => Array.from(window.__cellucid.selection)")
    assert selected == expected.tolist()


# ---- 5. vector arrows ----------------------------------------------------------------------------


def test_vector_field_arrows_toggle(open_features, clusters):
    viewer = open_features()
    page = viewer.page
    _set_dim(viewer, 2)  # the vector field has a 2D file only
    before = viewer.stable_shot()
    bg = background_colour(before)
    picker = page.get_by_label("Vector field")
    options = picker.locator("option").all_inner_texts()
    assert options == ["off", "Velocity (UMAP)"]
    picker.select_option(label="Velocity (UMAP)")
    page.wait_for_function("() => window.__cellucid.snapshot().vectorField !== null")
    on = viewer.stable_shot()
    assert _snapshot(viewer)["vectorField"] == "velocity_umap"
    geo = geometry(viewer.points(), viewer.plot_origin(), clusters.members)
    lone = viewer.points()[clusters.lone] - viewer.plot_origin()
    for name, (centre, radius) in geo.items():
        frac = changed_fraction(region(before, centre, radius), region(on, centre, radius))
        assert frac > 0.01, f"{name}: no arrows drawn ({frac:.1%} changed)"
        empty = (lone + centre) / 2
        assert not drawn_mask(region(on, empty, 4), bg).any(), f"an arrow far from {name}"
    picker.select_option(label="off")
    page.wait_for_function("() => window.__cellucid.snapshot().vectorField === null")
    off = viewer.stable_shot()
    assert changed_fraction(before, off) < 0.001


# ---- 6. several datasets -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_dataset_root(tmp_path_factory, clusters):
    import cellucid

    root = tmp_path_factory.mktemp("root")
    cellucid.prepare(clusters.adata, root / "clusters", quiet=True, dataset_name="clusters")
    small = clusters.adata[:100].copy()
    cellucid.prepare(small, root / "small", quiet=True, dataset_name="small")
    return root


@pytest.fixture(scope="module")
def root_server(two_dataset_root):
    import cellucid

    server = cellucid.CellucidServer(two_dataset_root, **server_options())
    server.start_background()
    yield server
    server.stop()


def test_dataset_picker_loads_the_chosen_dataset(open_viewer, root_server):
    viewer = open_viewer("export", server=root_server, wait_ready=False)
    page = viewer.page
    picks = page.locator("button.pick")
    picks.first.wait_for(timeout=15_000)
    labels = picks.all_inner_texts()
    assert len(labels) == 2, labels
    assert any("small" in t for t in labels) and any("clusters" in t for t in labels), labels
    assert not viewer.channel.state.ready, "a dataset loaded before one was picked"
    picks.filter(has_text="small").click()
    wait_until(lambda: viewer.channel.state.ready, 30, "the ready event")
    assert viewer.channel.state.ready["n_cells"] == 100
    assert page.evaluate("() => window.__cellucid.nCells") == 100
    assert page.evaluate("() => window.__cellucid.dataset.id") == "small"
    # the panel offers the other dataset
    assert page.get_by_label("Dataset").locator("option").count() == 2


# ---- 7. bench mode -------------------------------------------------------------------------------


def test_bench_mode_reports_load_time_and_fps(servers, pages):
    server = servers.get("export")
    handle = pages.open(f"{server.url}/?bench=2000", None, server)
    page = handle.page
    page.goto(handle.url)
    page.wait_for_function(
        "() => window.__cellucid && window.__cellucid.bench && window.__cellucid.bench.fps !== null",
        timeout=20_000,
    )
    bench = page.evaluate("() => ({...window.__cellucid.bench})")
    assert bench["n"] == 2000 and bench["dim"] == 2
    assert isinstance(bench["loadMs"], int) and 0 < bench["loadMs"] < 20_000
    assert bench["fps"] > 0 and bench["frames"] > 1
    assert page.evaluate("() => window.__cellucid.nCells") == 2000
    frames = bench["frames"]
    time.sleep(0.3)
    assert page.evaluate("() => window.__cellucid.bench.frames") > frames, "not animating"
    hud = page.locator(".hud").inner_text()
    assert "2,000 points" in hud and "fps" in hud
    page.evaluate("() => { window.__cellucid.frozen = true; }")  # stop the animation
    px = pixels(screenshot(page))
    drawn = drawn_mask(px, background_colour(px)).mean()
    assert 0.005 < drawn < 0.6, f"{drawn:.1%} of the plot drawn"


# ---- 8. colour bar range and gene loading ----------------------------------------------------------


def test_colour_bar_range_changes_the_picture(open_features):
    viewer = open_features()
    page = viewer.page
    page.get_by_label("Colour by obs field").select_option("score")
    page.wait_for_function(
        "() => window.__cellucid.field && window.__cellucid.field.key === 'score'"
    )
    full = viewer.stable_shot()
    lo, hi = _snapshot(viewer)["range"]
    minimum = page.get_by_label("Colour range minimum")
    maximum = page.get_by_label("Colour range maximum")
    assert float(minimum.input_value()) == pytest.approx(lo, rel=1e-3)
    assert float(maximum.input_value()) == pytest.approx(hi, rel=1e-3)

    maximum.fill("0")
    maximum.press("Enter")
    page.wait_for_function("() => window.__cellucid.snapshot().range[1] === 0")
    narrow = viewer.stable_shot()
    assert changed_fraction(full, narrow) > 0.002, "a new maximum left the picture unchanged"
    minimum.fill("-1")
    minimum.press("Enter")
    page.wait_for_function("() => window.__cellucid.snapshot().range[0] === -1")
    narrower = viewer.stable_shot()
    assert changed_fraction(narrow, narrower) > 0.002, "a new minimum left the picture unchanged"
    # an empty range is refused and marked, the picture stays
    minimum.fill("5")
    minimum.press("Enter")
    page.wait_for_function("() => document.querySelector('.range-in.bad') !== null")
    assert _snapshot(viewer)["range"] == [-1, 0]
    assert changed_fraction(narrower, viewer.stable_shot()) < 0.001
    # every listener of the range change ran (a failing one is logged as an error)
    assert not [ln for ln in viewer.console if ln.startswith(("[error]", "[pageerror]"))]


def test_gene_loading_state_shows_while_the_gene_loads(open_features):
    viewer = open_features()
    page = viewer.page
    held = []
    page.route(lambda url: "GeneY" in url, lambda route: held.append(route))
    before = viewer.stable_shot()
    gene = page.get_by_label("Colour by gene")
    gene.fill("GeneY")
    gene.press("Enter")
    loading = page.locator(".loading")
    loading.wait_for(state="visible", timeout=10_000)
    assert "GeneY" in loading.inner_text()
    wait_until(lambda: held or page.evaluate("() => 0"), 10, "the gene request")
    assert loading.is_visible(), "the loading state went away before the gene arrived"
    assert page.evaluate("() => document.querySelector('.panel').classList.contains('busy')")
    for route in held:
        route.continue_()
    loading.wait_for(state="hidden", timeout=10_000)
    page.wait_for_function(
        "() => window.__cellucid.field && window.__cellucid.field.key === 'GeneY'"
    )
    assert changed_fraction(before, viewer.stable_shot()) > 0.002
