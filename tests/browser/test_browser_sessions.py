"""Sessions in the viewer (issue 10): Save session downloads a .cellucid-session; after a reload,
Open session (the file picker, and a file dropped on the viewer) brings back the colouring,
filters, groups, the annotation field, a numeric user field, the dimension and the camera;
``?session=`` opens one with the dataset; a session of another dataset is refused with a
message; scanpy's ``uns["<key>_colors"]`` colour the legend (export sibling file on a static
host and through the server route, and AnnData mode).
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import numpy as np
import pytest
from _browser import anndata_server, server_options, static_http_server

import cellucid
from cellucid.session import CellucidSessionBundle, write_session_bundle

UNS = ["#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00"]  # alpha beta gamma delta lone


def _ready(page) -> None:
    page.wait_for_function(
        "() => window.__cellucid && window.__cellucid.field && "
        "!document.querySelector('.session-status[data-state=busy]')",
        timeout=30_000,
    )


def _state(page) -> dict:
    return page.evaluate(
        """() => {
        const v = window.__cellucid;
        const vs = v.scene.viewState;
        return {
          field: v.field && v.field.key,
          dim: v.dim,
          visible: v.visibleCount,
          filters: [...document.querySelectorAll('.filter-row .filter-text')].map((e) => e.textContent),
          groups: v.highlights.map((g) => [g.label, g.color, g.cells.length, g.visible !== false]),
          userFields: v.userFields.list().map((f) => [f.key, f.kind]),
          palette: v.field && v.palettes.get(v.field.key) ? [...v.palettes.get(v.field.key)] : null,
          zoom: vs.zoom, target: [...vs.target],
          pyscore: v.userFields.get('pyscore') ? [...v.userFields.get('pyscore').values.slice(0, 5)] : null,
          // the style and the controls that show it
          dark: v.dark, theme: document.body.dataset.theme,
          bgOn: [...document.querySelectorAll('[data-bg].on')].map((b) => b.dataset.bg),
          pointSize: v.pointSize,
          sizeSlider: document.querySelector('input[aria-label="Point size"]').value,
        };
      }"""
    )


def _swatches(page) -> list[str]:
    return page.evaluate(
        """() => [...document.querySelectorAll('.legend-row:not(.missing) .swatch')]
              .map((e) => getComputedStyle(e).backgroundColor)"""
    )


def _rgb(hexes: list[str]) -> list[str]:
    return [f"rgb({int(h[1:3], 16)}, {int(h[3:5], 16)}, {int(h[5:7], 16)})" for h in hexes]


def _drop(page, path: Path) -> None:
    data = base64.b64encode(path.read_bytes()).decode()
    page.evaluate(
        """([data, name]) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], name));
        const stage = document.getElementById('stage');
        stage.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));
        stage.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
      }""",
        [data, path.name],
    )


def _opened(page, name: str) -> str:
    status = page.locator(".session-status")
    page.wait_for_function(
        "(n) => { const s = document.querySelector('.session-status');"
        " return s && s.textContent.includes(n) && s.dataset.state !== 'busy'; }",
        arg=name,
        timeout=30_000,
    )
    return status.inner_text()


def test_save_reload_open_by_picker_drop_and_query(open_viewer, clusters, tmp_path):
    viewer = open_viewer("export", credentials=False)
    page = viewer.page
    _ready(page)
    n = clusters.n
    members = clusters.members
    # colouring, filters, groups, annotation, a numeric field from "Python", camera
    page.locator("select.field-pick").select_option("cluster")
    page.locator(".legend-row", has_text="delta").click()  # hide delta (legend → filter)
    page.evaluate("() => window.__cellucid.filterRange('score', -100, 9)")
    page.evaluate(
        "([a, b]) => { const v = window.__cellucid;"
        " v.highlight(Uint32Array.from(a), '#ff0000', 'first');"
        " v.highlight(Uint32Array.from(b), '#0000ff', 'second'); }",
        [members["alpha"][:50].tolist(), members["beta"].tolist()],
    )
    page.evaluate("() => window.__cellucid.updateGroup('group-2', {visible: false})")
    page.evaluate("() => window.__cellucid.annotate('my cells')")
    page.wait_for_function("() => window.__cellucid.field.key === 'my cells'")
    page.evaluate(
        "(n) => window.__cellucid.addUserField({key: 'pyscore', kind: 'continuous',"
        " values: Float32Array.from({length: n}, (_, i) => i / 10)})",
        n,
    )
    # a category's colour from its legend swatch (the browser's colour picker), not a hide click
    first = members["alpha"][0]
    row = page.locator(".legend-row", has_text="first")
    row.locator("button.swatch").click()
    page.locator("input.legend-color").fill("#12ab34")
    page.wait_for_function(
        "(c) => { const v = window.__cellucid, i = v.field.categories.indexOf('first');"
        " return [...v.palettes.get(v.field.key).slice(3 * i, 3 * i + 3)].join() === '18,171,52'"
        " && [...v.scene.colors.slice(4 * c, 4 * c + 3)].join() === '18,171,52'; }",
        arg=int(first),
    )
    assert "off" not in (page.locator(".legend-row", has_text="first").get_attribute("class") or "")
    swatch = page.locator(".legend-row", has_text="first").locator(".swatch")
    assert swatch.evaluate("(e) => getComputedStyle(e).backgroundColor") == "rgb(18, 171, 52)"
    page.get_by_role("button", name="Dark").click()
    page.evaluate("() => window.__cellucid.setStyle({pointSize: 5.5})")  # as Python would
    box = page.locator("#canvas-host canvas").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.4)
    page.mouse.wheel(0, -400)
    page.wait_for_function("() => window.__cellucid.scene.userMoved")
    page.wait_for_timeout(300)
    before = _state(page)
    assert before["field"] == "my cells"
    assert len(before["filters"]) == 2 and before["visible"] < n
    assert [g[0] for g in before["groups"]] == ["first", "second"]
    style = {"dark": True, "theme": "dark", "bgOn": ["dark"], "pointSize": 5.5, "sizeSlider": "5.5"}
    assert {k: before[k] for k in style} == style

    with page.expect_download() as info:
        page.get_by_role("button", name="Save session").click()
    saved = tmp_path / info.value.suggested_filename
    info.value.save_as(saved)
    assert saved.name.endswith(".cellucid-session")
    ids = CellucidSessionBundle(saved).list_chunk_ids()
    assert {"cellucid/filters", "cellucid/palettes", "cellucid/user-fields"} <= set(ids)
    # in Python the annotation lands in obs, and the picked colour in scanpy's uns colours
    applied = cellucid.apply_cellucid_session_to_anndata(saved, clusters.adata)
    annotation = applied.obs["my_cells"]
    colours = dict(zip(annotation.cat.categories, applied.uns["my_cells_colors"], strict=True))
    assert colours["first"] == "#12ab34"
    assert annotation.iloc[int(first)] == "first"

    # 1. reload, then the file picker
    page.reload()
    _ready(page)
    fresh = _state(page)
    assert fresh["groups"] == [] and fresh["visible"] == n
    assert fresh["bgOn"] == ["light"] and fresh["sizeSlider"] != "5.5"
    page.locator("input.session-file").set_input_files(saved)
    text = _opened(page, saved.name)
    assert "2 groups" in text and "2 filters" in text, text
    after = _state(page)
    for key in ("field", "dim", "visible", "filters", "groups", "palette", "pyscore", *style):
        assert after[key] == before[key], key
    assert ["my cells", "category"] in after["userFields"] and ["pyscore", "continuous"] in after[
        "userFields"
    ]
    assert after["zoom"] == pytest.approx(before["zoom"], abs=1e-6)
    assert after["target"] == pytest.approx(before["target"], abs=1e-6)
    assert page.locator(".vis-count").inner_text() == f"{before['visible']} of {n} cells visible"

    # 2. reload, then drop the file on the viewer
    page.reload()
    _ready(page)
    _drop(page, saved)
    _opened(page, saved.name)
    dropped = _state(page)
    for key in ("field", "visible", "filters", "groups", "zoom"):
        assert dropped[key] == before[key], key

    # 3. ?session= opens it with the dataset
    site = tmp_path / "site"
    shutil.copytree(Path(cellucid.__file__).parent / "static" / "viewer", site)
    shutil.copytree(viewer.server.data_dir, site / "clusters")
    shutil.copy(saved, site / "saved.cellucid-session")
    cellucid.generate_datasets_manifest(site)
    with static_http_server(site) as port:
        page.goto(f"http://127.0.0.1:{port}/?session=saved.cellucid-session")
        _ready(page)
        _opened(page, "saved.cellucid-session")
        queried = _state(page)
    for key in ("field", "visible", "filters", "groups", "zoom"):
        assert queried[key] == before[key], key


def test_a_session_of_another_dataset_is_refused_with_a_message(open_viewer, tmp_path):
    viewer = open_viewer("export", credentials=False)
    page = viewer.page
    _ready(page)
    other = tmp_path / "other.cellucid-session"
    other.write_bytes(
        write_session_bundle(
            [{"id": "core/state", "kind": "json", "data": {"dim": 2, "colorBy": {"key": "score"}}}],
            dataset_fingerprint={"sourceType": "x", "datasetId": "pbmc3k", "cellCount": 2700},
        )
    )
    field = page.evaluate("() => window.__cellucid.field.key")
    page.locator("input.session-file").set_input_files(other)
    banner = page.locator(".session-banner")
    banner.wait_for(state="visible", timeout=10_000)
    text = banner.inner_text()
    assert "another dataset" in text and "2,700 cells" in text and "pbmc3k" in text, text
    assert page.evaluate("() => window.__cellucid.field.key") == field  # nothing changed


def _coloured(clusters):
    adata = clusters.adata.copy()
    adata.uns["cluster_colors"] = np.array(UNS, dtype=object)
    return adata


def test_scanpy_colours_of_an_export_colour_the_legend(clusters, tmp_path, pages):
    """prepare() writes the sibling file; the export server answers it through the route, and
    a static host by URL."""
    root = tmp_path / "exports"
    cellucid.prepare(_coloured(clusters), root / "clusters", quiet=True, dataset_name="clusters")
    assert (root / "clusters.cellucid-session").is_file()
    server = cellucid.CellucidServer(root / "clusters", **server_options())
    server.start_background()
    try:
        handle = pages.open(f"{server.url}/", None, server)
        handle.page.goto(handle.url)
        _ready(handle.page)
        _opened(handle.page, "default session")
        assert handle.page.evaluate("() => window.__cellucid.field.key") == "cluster"
        assert _swatches(handle.page) == _rgb(UNS)
    finally:
        server.stop()
    site = tmp_path / "site"
    shutil.copytree(Path(cellucid.__file__).parent / "static" / "viewer", site)
    shutil.copytree(root / "clusters", site / "clusters")
    shutil.copy(root / "clusters.cellucid-session", site / "clusters.cellucid-session")
    cellucid.generate_datasets_manifest(site)
    with static_http_server(site) as port:
        handle = pages.open(f"http://127.0.0.1:{port}/", None, None)
        handle.page.goto(handle.url)
        _ready(handle.page)
        _opened(handle.page, "clusters.cellucid-session")
        assert _swatches(handle.page) == _rgb(UNS)


def test_scanpy_colours_in_anndata_mode(open_viewer, clusters):
    with anndata_server(_coloured(clusters)) as server:
        viewer = open_viewer("anndata", server=server, credentials=False)
        _ready(viewer.page)
        _opened(viewer.page, "default session")
        assert viewer.page.evaluate("() => window.__cellucid.field.key") == "cluster"
        assert _swatches(viewer.page) == _rgb(UNS)


def test_a_python_made_session_restores_comparisons_filters_and_colours(
    open_viewer, clusters, tmp_path
):
    """A bundle written in Python (no viewer involved): its comparison appears in the viewer
    with its table, its filters and palettes apply by category name."""
    from cellucid.session import encode_cell_list

    n, members = clusters.n, clusters.members
    alpha = np.sort(members["alpha"]).astype(np.uint32)
    comparison = {
        "id": "cmp-1",
        "name": "alpha vs rest",
        "createdAt": "2025-01-01T00:00:00Z",
        "method": "wilcoxon",
        "tieCorrect": False,
        "statistic": "wilcoxon",
        "group": {"label": "alpha", "cellsChunk": "analysis/comparisons/cells/cmp-1/group"},
        "reference": "rest",
        "result": {
            "names": ["GeneAlpha", "GeneY"],
            "scores": [9.5, None],
            "logfoldchanges": [3.0, 0.1],
            "pvals": [1e-10, 0.5],
            "pvals_adj": [1e-9, 0.5],
            "pct_nz_group": [1.0, 0.9],
            "pct_nz_reference": [0.0, 0.9],
        },
    }
    palette = {"cluster": {"categories": ["gamma", "alpha"], "colors": ["#010203", "#fafbfc"]}}
    path = tmp_path / "py.cellucid-session"
    path.write_bytes(
        write_session_bundle(
            [
                {
                    "id": "core/state",
                    "kind": "json",
                    "data": {"colorBy": {"key": "cluster"}, "dim": 2},
                },
                {
                    "id": "analysis/comparisons",
                    "kind": "json",
                    "data": {"version": 1, "comparisons": [comparison]},
                },
                {
                    "id": "analysis/comparisons/cells/cmp-1/group",
                    "kind": "binary",
                    "data": encode_cell_list(alpha),
                },
                {
                    "id": "cellucid/filters",
                    "kind": "json",
                    "data": {
                        "version": 1,
                        "filters": [
                            {
                                "kind": "category",
                                "source": "obs",
                                "key": "cluster",
                                "keep": ["alpha", "gamma", "no such"],
                                "includeMissing": True,
                            }
                        ],
                    },
                },
                {"id": "cellucid/palettes", "kind": "json", "data": palette},
            ],
            dataset_fingerprint={
                "sourceType": "cellucid-export",
                "datasetId": "clusters",
                "cellCount": n,
            },
        )
    )
    viewer = open_viewer("export", credentials=False)
    page = viewer.page
    _ready(page)
    page.locator("input.session-file").set_input_files(path)
    text = _opened(page, path.name)
    assert "1 comparison" in text and "1 filter" in text, text
    got = page.evaluate(
        """() => { const v = window.__cellucid; const c = v.comparisons[0];
        return {n: v.comparisons.length, name: c.name, size: c.group.cells.length,
                genes: c.result.names.slice(0, c.result.count), score: c.result.columns.scores[0],
                nan: Number.isNaN(c.result.columns.scores[1]), visible: v.visibleCount,
                warn: document.querySelector('.session-status').title}; }"""
    )
    assert got["n"] == 1 and got["name"] == "alpha vs rest" and got["size"] == len(alpha)
    assert got["genes"] == ["GeneAlpha", "GeneY"] and got["score"] == 9.5 and got["nan"]
    assert got["visible"] == len(members["alpha"]) + len(members["gamma"])  # "lone" is filtered
    assert '"no such"' in got["warn"]  # the unknown category is reported
    swatches = _swatches(page)
    order = page.evaluate("() => window.__cellucid.field.categories")
    assert swatches[order.index("alpha")] == "rgb(250, 251, 252)"
    assert swatches[order.index("gamma")] == "rgb(1, 2, 3)"
