"""Compare groups in the viewer: the Compare panel ranks genes between two groups of cells, on
the server (the Python engine, ``POST /_cellucid/compare``) or, on a static export folder, in
the browser's worker over the gene files.

The ``markers`` dataset has five clusters of 300 cells on a ring, shuffled; ``MARK3`` is high
in almost every cell of cluster ``c3`` and nearly absent elsewhere, so it must top the table
of c3 against the rest. The other 39 genes are sparse noise.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from _browser import (
    VIEWPORT,
    changed_fraction,
    circle,
    drag,
    geometry,
    inside,
    screen_points,
    screenshot,
    static_http_server,
    wait_until,
)
from PIL import Image

import cellucid
from cellucid.analysis.table import COLUMNS as TABLE_COLUMNS

CLUSTERS = [f"c{i}" for i in range(5)]
PER_CLUSTER = 300
MARKER = "MARK3"
SVG_NS = "{http://www.w3.org/2000/svg}"
READY_MS = 30_000


# ---- data ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def markers() -> Any:
    """1,500 cells in five ring clusters, 40 genes (log1p counts), MARK3 marking c3."""
    import anndata

    rng = np.random.default_rng(7)
    labels = np.repeat(np.array(CLUSTERS, dtype=object), PER_CLUSTER)
    angles = 2 * np.pi * np.arange(len(CLUSTERS)) / len(CLUSTERS)
    centres = 6.0 * np.column_stack([np.cos(angles), np.sin(angles)])
    code = np.repeat(np.arange(len(CLUSTERS)), PER_CLUSTER)
    xy = centres[code] + rng.normal(0.0, 0.6, (len(labels), 2))
    order = rng.permutation(len(labels))
    labels, xy, code = labels[order], xy[order], code[order]
    n = len(labels)
    genes = [f"G{j:02d}" for j in range(1, 40)] + [MARKER]
    counts = np.zeros((n, len(genes)))
    for j in range(len(genes) - 1):
        p = rng.uniform(0.1, 0.5)
        counts[:, j] = np.where(rng.random(n) < p, rng.poisson(2.0, n) + 1, 0)
    in_c3 = code == 3
    counts[:, -1] = np.where(in_c3, rng.poisson(6.0, n) + 2, np.where(rng.random(n) < 0.02, 1, 0))
    x = np.log1p(counts).astype(np.float32)
    obs = pd.DataFrame(
        {"cluster": pd.Categorical(labels, categories=CLUSTERS)},
        index=[f"cell{i}" for i in range(n)],
    )
    adata = anndata.AnnData(X=sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=genes))
    adata.obsm["X_umap"] = xy
    return adata


def _members(adata: Any) -> dict[str, np.ndarray]:
    labels = adata.obs["cluster"].to_numpy()
    return {c: np.flatnonzero(labels == c) for c in CLUSTERS}


@pytest.fixture(scope="module")
def static_site(
    tmp_path_factory: pytest.TempPathFactory, markers: Any
) -> Iterator[tuple[str, Path]]:
    """A plain static web host (no Python route): the viewer's files, a ``markers`` export
    and its ``datasets.json``. Yields the site URL and the export folder."""
    import os

    root = tmp_path_factory.mktemp("static-site")
    ui = os.environ.get("CELLUCID_BROWSER_UI_DIR")
    shutil.copytree(
        Path(ui) if ui else Path(cellucid.__file__).parent / "static" / "viewer",
        root,
        dirs_exist_ok=True,
    )
    export = Path(
        cellucid.prepare(
            markers, root / "markers", quiet=True, dataset_name="markers", compression=6
        )
    )
    cellucid.generate_datasets_manifest(root)
    with static_http_server(root) as port:
        yield f"http://127.0.0.1:{port}", export


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    from _browser import PAGES

    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    p = context.new_page()
    console: list[str] = []
    p.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    handle = type("Handle", (), {"page": p, "console": console})()
    request.node.stash.setdefault(PAGES, []).append(handle)
    yield p
    with contextlib.suppress(Exception):
        context.close()


def _open(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_function(
        "() => window.__cellucidBridge && window.__cellucidBridge.stats.ready", timeout=READY_MS
    )
    page.wait_for_function(
        "() => window.__cellucid.field && window.__cellucid.field.key === 'cluster'",
        timeout=READY_MS,
    )


def _settled_shot(page: Any) -> np.ndarray:
    previous = None
    for _ in range(40):
        page.evaluate(
            "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
        )
        current = np.asarray(screenshot(page), dtype=np.int16)
        if previous is not None and previous.shape == current.shape and (previous == current).all():
            return current
        previous = current
    raise AssertionError("the picture did not settle")


def _run_from_panel(page: Any) -> None:
    page.get_by_role("button", name="Compare", exact=True).click()
    page.wait_for_function(
        "() => document.querySelector('.cmp-status').dataset.state === 'done'", timeout=60_000
    )


def _same_table(rows: list[dict], expected: pd.DataFrame) -> None:
    """The viewer's rows (summary of a comparison) are the top of ``rank_genes``' table.

    p-values far in the tail move by ~df·(relative change of t), so float32-level differences
    of the score show there: they are compared on a log scale."""
    top = expected.head(len(rows))
    assert [r["name"] for r in rows] == top["names"].tolist()
    for column in TABLE_COLUMNS[1:]:
        got = np.array([np.nan if r[column] is None else r[column] for r in rows], dtype=np.float64)
        want = top[column].to_numpy(np.float64)
        if column.startswith("pvals"):
            got, want = np.log(got), np.log(want)
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-9, err_msg=column)


def _download(page: Any, button: str) -> bytes:
    with page.expect_download(timeout=30_000) as info:
        page.get_by_role("button", name=button, exact=True).click()
    return Path(info.value.path()).read_bytes()


def _table(page: Any) -> list[list[str]]:
    return page.evaluate(
        "() => [...document.querySelectorAll('.cmp-table tbody tr')]"
        ".map(tr => [...tr.children].map(td => td.textContent))"
    )


# ---- static folder: the browser's worker ---------------------------------------------------------


def test_static_folder_lasso_compare_marker_on_top_and_click_colours(page, static_site, markers):
    url, export = static_site
    _open(page, f"{url}/")
    members = _members(markers)
    target = members["c3"]

    # lasso cluster c3 with the real lasso tool
    _settled_shot(page)
    points = screen_points(page)
    origin = np.asarray(
        page.evaluate(
            "() => { const r = window.__cellucid.scene.canvas.getBoundingClientRect(); return [r.left, r.top]; }"
        )
    )
    centre, radius = geometry(points, origin, {"c3": target})["c3"]
    polygon = circle(centre + origin, radius * 1.1)
    assert set(np.flatnonzero(inside(points, polygon))) == set(target), "the ring clusters touch"
    page.click("[data-tool='lasso']")
    drag(page, polygon)
    page.wait_for_function(f"() => window.__cellucid.selection.length === {len(target)}")
    assert page.evaluate("() => Array.from(window.__cellucid.selection)") == target.tolist()

    # Compare: selection (A) against the rest (B), Wilcoxon, from the panel
    page.get_by_role("button", name="Compare groups…").click()
    panel = page.locator("#compare")
    panel.wait_for(state="visible")
    assert page.get_by_label("Group A", exact=True).input_value() == "selection"
    assert page.get_by_label("Group B", exact=True).input_value() == "rest"
    before = _settled_shot(page)
    _run_from_panel(page)

    rows = _table(page)
    assert rows[0][0] == MARKER, rows[:3]
    headers = page.locator(".cmp-table th")
    assert headers.all_inner_texts() == ["Gene", "log2 FC", "Score", "Adj. p", "% A", "% B"]
    assert headers.nth(2).get_attribute("aria-sort") == "descending"
    # every column sorts: genes by name, then back to the ranking
    page.get_by_role("button", name="Gene", exact=True).click()
    names = [r[0] for r in _table(page)]
    assert names == sorted(names) and headers.nth(0).get_attribute("aria-sort") == "ascending"
    page.get_by_role("button", name="% B", exact=True).click()
    pct_b = [float(r[5].rstrip("%")) for r in _table(page)]
    assert pct_b == sorted(pct_b, reverse=True)
    page.get_by_role("button", name="Score", exact=True).click()
    assert _table(page) == rows
    statistic = page.locator(".cmp-statistic").inner_text()
    assert "Wilcoxon rank-sum" in statistic and "computed in this browser" in statistic, statistic
    summary = page.evaluate("() => window.__cellucid.activeComparison.summary(40)")
    assert summary["source"] == "browser" and summary["status"] == "done"
    assert summary["total"] == 40 and summary["groupSize"] == len(target)
    assert summary["referenceSize"] == markers.n_obs - len(target)

    # the browser's numbers are the Python engine's on the same export folder
    expected = cellucid.rank_genes(export, target, quiet=True)
    _same_table(summary["rows"], expected)

    # the dot plot is drawn
    assert page.locator(".cmp-dotplot").is_visible()

    # click the marker: the embedding is coloured by it
    page.locator(".cmp-table tbody tr", has_text=MARKER).first.click()
    page.wait_for_function(
        f"() => window.__cellucid.field && window.__cellucid.field.key === {MARKER!r}"
    )
    after = _settled_shot(page)
    assert changed_fraction(before, after) > 0.002, "colouring by the marker changed nothing"
    assert page.locator(".cmp-table tbody tr.active").first.get_attribute("data-gene") == MARKER
    assert page.get_by_label("Colour by gene").input_value() == MARKER

    # figure export draws the dot plot right of the legend: in the SVG and in the PNG
    top10 = [r["name"] for r in summary["rows"][:10]]
    root = ET.fromstring(_download(page, "SVG").decode("utf-8"))
    (dots,) = [g for g in root.iter(f"{SVG_NS}g") if g.get("class") == "dotplot"]
    texts = [t.text for t in dots.iter(f"{SVG_NS}text")]
    assert [t for t in texts if t in top10] == top10, texts
    assert (
        len(list(dots.iter(f"{SVG_NS}circle"))) >= 10 + 3
    )  # A dots of the top genes + size legend
    width = page.evaluate("() => window.__cellucid.scene.host.clientWidth")
    png = Image.open(io.BytesIO(_download(page, "1×"))).convert("RGB")
    assert png.width > width + 270 + 150, (png.width, width)
    right = np.asarray(png, dtype=np.int16)[:, width + 270 :]
    assert (np.abs(right - right[0, -1]).max(axis=-1) > 40).mean() > 0.005, "no dot plot drawn"


def test_static_folder_cancel_stops_a_running_comparison(page, static_site, markers):
    url, export = static_site
    _open(page, f"{url}/")
    target = _members(markers)["c3"]
    # the first genes arrive, the rest are held back: the comparison is still running
    passed: list[str] = []
    held: list[Any] = []

    def gene_files(route: Any) -> None:
        if len(passed) < 6:
            passed.append(route.request.url)
            route.continue_()
        else:
            held.append(route)

    page.route("**/markers/var/**", gene_files)
    page.evaluate(f"() => window.__cellucid.setSelection({target.tolist()})")
    page.get_by_role("button", name="Compare groups…").click()
    page.get_by_role("button", name="Compare", exact=True).click()
    wait_until(lambda: held or page.evaluate("() => false"), 15, "gene requests held back")
    status = page.locator(".cmp-status")
    page.wait_for_function(
        "() => document.querySelector('.cmp-status').textContent.startsWith("
        "'Ranking genes: 6 / 40 in this browser')",
        timeout=15_000,
    )
    assert page.evaluate("() => window.__cellucid.activeComparison.done") == 6
    assert page.get_by_role("button", name="Cancel").is_enabled()

    page.get_by_role("button", name="Cancel").click()
    page.wait_for_function(
        "() => document.querySelector('.cmp-status').dataset.state === 'cancelled'"
    )
    assert status.inner_text() == "Cancelled after 6 of 40 genes"
    assert page.get_by_role("button", name="Cancel").is_disabled()
    for route in held:  # answers now reach nobody
        with contextlib.suppress(Exception):
            route.continue_()
    page.wait_for_timeout(300)
    state = page.evaluate(
        "() => ({done: window.__cellucid.activeComparison.done, running: !!window.__cellucid.compareRun,"
        " kept: window.__cellucid.comparisons.length})"
    )
    assert state == {"done": 6, "running": False, "kept": 0}

    # the test hook: categories of a field against the rest, another statistic; resolves once done
    page.unroute("**/markers/var/**")
    summary = page.evaluate(
        "() => window.__cellucid.compare({group: {field: 'cluster', categories: ['c3']},"
        " method: 't-test_overestim_var'}).then(c => c.summary(5))"
    )
    assert summary["status"] == "done" and summary["group"] == "cluster: c3"
    assert summary["statistic"].startswith("Welch's t-test, reference variance over-estimated")
    expected = cellucid.rank_genes(export, target, method="t-test_overestim_var", quiet=True)
    _same_table(summary["rows"], expected)
    assert page.evaluate("() => window.__cellucid.comparisons.length") == 1


# ---- a server: the Python engine -----------------------------------------------------------------


def test_server_compare_equals_rank_genes_and_goes_into_the_session(page, markers, tmp_path):
    from cellucid.session import CellucidSessionBundle
    from cellucid.session.comparisons import read_comparisons

    target = _members(markers)["c3"]
    server = cellucid.serve_anndata(markers, port=0, open_browser=False, quiet=True, blocking=False)
    try:
        _open(page, server.viewer_url)
        page.get_by_role("button", name="Compare groups…").click()
        page.get_by_label("Group A", exact=True).select_option("field:cluster")
        page.locator(".cmp-cats[data-which='A']").get_by_label("c3").check()
        page.get_by_label("Tie correction").check()
        _run_from_panel(page)
        summary = page.evaluate("() => window.__cellucid.activeComparison.summary(10)")
        assert summary["source"] == "server"
        assert summary["group"] == "cluster: c3" and summary["reference"] == "rest"
        assert "tie-corrected" in summary["statistic"]
        assert "computed on the server" in page.locator(".cmp-statistic").inner_text()
        assert _table(page)[0][0] == MARKER
        expected = cellucid.rank_genes(markers, target, tie_correct=True, quiet=True)
        _same_table(summary["rows"], expected)

        # the comparison and its result are part of the session bundle
        data = page.evaluate("() => window.__cellucid.sessionBundle().then(b => Array.from(b))")
        path = tmp_path / "compare.cellucid-session"
        path.write_bytes(bytes(data))
        bundle = CellucidSessionBundle(path)
        doc = bundle.decode_chunk("analysis/comparisons")
        assert doc["comparisons"][0]["group"]["cellsChunk"] == (
            f"analysis/comparisons/cells/{summary['id']}/group"
        )
        (saved,) = read_comparisons(bundle, n_obs=markers.n_obs)  # what Python reads back
        assert saved.id == summary["id"]
        assert saved.method == "wilcoxon" and saved.tie_correct is True
        assert saved.reference_is_rest and saved.reference_cells is None
        assert saved.group_label == "cluster: c3"
        np.testing.assert_array_equal(saved.group_cells, target)
        assert saved.table["names"].tolist() == expected["names"].tolist()
        np.testing.assert_allclose(saved.table["scores"], expected["scores"], rtol=2e-6)
    finally:
        server.stop()
