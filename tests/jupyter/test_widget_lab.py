"""CellucidWidget in a real JupyterLab (and Notebook 7), driven like a user would.

The kernel builds the browser tests' cluster dataset (four tight clusters at the corners of
a square), so a lasso drawn around one corner of the iframe selects exactly that cluster,
which the test knows independently. Everything is checked on the kernel's side
(``kernel_eval``) and in the page's pixels.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from _browser import (
    JS_CANVAS_RECT,
    JS_SCREEN_POSITIONS,
    JS_TWO_FRAMES,
    circle,
    cluster_adata,
    drag,
    geometry,
    inside,
    pixels,
    wait_until,
)

BROWSER_TESTS = Path(__file__).resolve().parents[1] / "browser"
CLUSTERS = cluster_adata()
SETUP = f"""
import sys, threading
sys.path.insert(0, {str(BROWSER_TESTS)!r})
from _browser import cluster_adata
import cellucid
data = cluster_adata()
"""


def widget_cell(name: str, **options: Any) -> str:
    args = "".join(f", {k}={v!r}" for k, v in {"height": 380, "port": 0, **options}.items())
    return f"{name} = cellucid.CellucidWidget(data.adata{args})\n{name}"


class ViewerFrame:
    """The viewer iframe in a cell's output: its Playwright frame and page geometry."""

    def __init__(self, notebook: Any, cell: int, timeout: float = 90.0) -> None:
        self.notebook = notebook
        self.page = notebook.page
        iframe = notebook.cell_output_locator(cell).locator("iframe").first
        iframe.wait_for(state="attached", timeout=timeout * 1000)
        self.handle = iframe.element_handle()
        self.handle.scroll_into_view_if_needed()

        def loaded() -> Any:
            frame = self.handle.content_frame()
            if frame is None:
                return None
            try:
                ready = frame.evaluate(
                    "() => Boolean(window.__cellucid && window.__cellucid.nCells > 0 "
                    "&& window.__cellucidBridge && window.__cellucidBridge.stats.transport "
                    "=== 'parent')"
                )
            except Exception:  # navigating
                return None
            return frame if ready else None

        self.frame = wait_until(loaded, timeout, "the viewer in the widget to load and connect")

    def settle(self) -> None:
        self.frame.evaluate("() => window.__cellucidBridge.idle()")
        self.frame.evaluate(JS_TWO_FRAMES)

    def canvas_box(self) -> dict[str, float]:
        """The plot's rectangle in page CSS pixels."""
        self.handle.scroll_into_view_if_needed()
        box = self.handle.bounding_box()
        rect = self.frame.evaluate(JS_CANVAS_RECT)
        return {**rect, "x": rect["x"] + box["x"], "y": rect["y"] + box["y"]}

    def points(self) -> np.ndarray:
        """Every cell's position in page CSS pixels."""
        box = self.canvas_box()
        flat = np.asarray(self.frame.evaluate(JS_SCREEN_POSITIONS), dtype=np.float64)
        return flat.reshape(-1, 2) + np.array([box["x"], box["y"]])

    def lasso(self, members: np.ndarray) -> list[tuple[float, float]]:
        """Draw a lasso around the cells ``members``; returns the polygon (page pixels)."""
        self.frame.click("[data-tool='lasso']")
        self.frame.wait_for_function("() => window.__cellucid.tool === 'lasso'", timeout=5000)
        points = self.points()
        (centre, radius), *_ = geometry(points, np.zeros(2), {"c": members}).values()
        polygon = circle(centre, radius * 1.6 + 6)
        assert set(np.flatnonzero(inside(points, polygon))) == set(members.tolist()), (
            "the test's lasso must enclose exactly the cluster"
        )
        drag(self.page, polygon)
        return polygon

    def plot_pixels(self) -> np.ndarray:
        from io import BytesIO

        from PIL import Image

        self.settle()
        png = self.page.screenshot(clip=self.canvas_box(), animations="disabled")
        return pixels(Image.open(BytesIO(png)).convert("RGB"))

    def cluster_region(self, members: np.ndarray) -> tuple[slice, slice]:
        box = self.canvas_box()
        pts = self.points()[members] - np.array([box["x"], box["y"]])
        lo, hi = np.floor(pts.min(axis=0)).astype(int) - 3, np.ceil(pts.max(axis=0)).astype(int) + 3
        return slice(max(lo[1], 0), hi[1]), slice(max(lo[0], 0), hi[0])


def eventually(notebook: Any, expr: str, expected: Any, timeout: float = 30.0) -> None:
    """Poll ``kernel_eval(expr)`` until it equals ``expected``."""
    seen: list[Any] = []

    def check() -> bool:
        seen.append(notebook.kernel_eval(expr))
        return seen[-1] == expected

    try:
        wait_until(check, timeout, f"{expr} == {expected!r}", interval=0.3)
    except AssertionError:
        raise AssertionError(f"{expr}: last value {seen[-1:]!r}, expected {expected!r}") from None


def run_and_lasso(nb: Any, cells: int, members: np.ndarray) -> ViewerFrame:
    """Run the first ``cells`` cells (the viewer ``v`` is cell 1), lasso ``members`` in it and
    wait for ``v.selection``; returns the viewer's frame."""
    for cell in range(cells):
        nb.run_cell(cell, timeout=180)
    viewer = ViewerFrame(nb, 1)
    viewer.lasso(members)
    eventually(nb, "sorted(v.selection.tolist())", sorted(members.tolist()))
    return viewer


def test_ready_in_the_same_cell_lasso_to_selection_and_hooks(open_notebook):
    alpha = CLUSTERS.members["alpha"]
    nb = open_notebook(
        [
            SETUP,
            # display, then wait in the SAME cell: the comm is not read while a cell runs
            "from IPython.display import display\n"
            + widget_cell("v").replace("\nv", "\ndisplay(v)")
            + "\nready = v.wait_for_ready(120)\nprint('ready', ready)",
            "hooked = []\n"
            "threads = []\n"
            "@v.on_selection\n"
            "def remember(event):\n"
            "    hooked.append(event['cells'].tolist())\n"
            "    threads.append(threading.current_thread().name)\n"
            "observed = []\n"
            "v.observe(lambda change: observed.append(change['new'].tolist()), names='selection')",
            "waited = v.wait_for_event('selection', timeout=120)",
        ]
    )
    nb.run_cell(0, timeout=120)
    nb.run_cell(1, timeout=180)
    assert nb.kernel_eval("ready") == {"n_cells": CLUSTERS.n, "dimensions": 2}
    nb.run_cell(2)
    viewer = ViewerFrame(nb, 1)
    # A cell blocked in wait_for_event still gets the lasso (events reach the server thread).
    waiting = nb.run_cell(3, wait=False)
    time.sleep(1.0)
    viewer.lasso(alpha)
    waiting.wait(120)
    expected = sorted(alpha.tolist())
    assert sorted(nb.kernel_eval("waited['cells'].tolist()")) == expected
    assert nb.kernel_eval("waited['source']") == "lasso"
    assert sorted(nb.kernel_eval("v.selection.tolist()")) == expected
    assert nb.kernel_eval("str(v.selection.dtype)") == "uint32"
    eventually(nb, "[sorted(c) for c in hooked]", [expected])
    assert nb.kernel_eval("observed") == [nb.kernel_eval("v.selection.tolist()")]
    assert nb.kernel_eval("threads[0].startswith('cellucid-events')") is True
    # recorded once, though it came both over HTTP and over the comm
    assert nb.kernel_eval("[e['type'] for e in v._channel.recent_events()].count('selection')") == 1
    eventually(nb, "v._channel.duplicates >= 1", True)
    assert nb.kernel_eval("v.transport_in_use") == "http"


def test_python_selection_highlight_and_color_change_the_picture(open_notebook):
    beta = CLUSTERS.members["beta"]
    gamma = CLUSTERS.members["gamma"]
    nb = open_notebook(
        [
            SETUP,
            widget_cell("v"),
            "v.wait_for_ready(120)\nv.color_by = 'score'",
            f"v.highlight_cells({beta.tolist()}, color='#ff00ff')",
            f"v.selection = {gamma.tolist()}",
            "v.dimension",
            "v.split(['cluster', {'field': 'score'}])",
            "v.split(None)",
        ]
    )
    nb.run_cell(0, timeout=120)
    nb.run_cell(1, timeout=120)
    viewer = ViewerFrame(nb, 1)
    nb.run_cell(2, timeout=120)
    viewer.frame.wait_for_function(
        "() => window.__cellucid.field && window.__cellucid.field.key === 'score'", timeout=30000
    )
    eventually(nb, "v.color_by", "score")
    before = viewer.plot_pixels()
    rows, cols = viewer.cluster_region(beta)
    nb.run_cell(3)
    viewer.frame.wait_for_function("() => window.__cellucid.highlights.length === 1", timeout=30000)
    after = viewer.plot_pixels()
    region_before, region_after = before[rows, cols], after[rows, cols]
    changed = np.abs(region_after - region_before).max(axis=-1) > 40
    assert changed.mean() > 0.05, "highlighting beta changed nothing where beta is drawn"
    magenta = (
        (region_after[..., 0] > 180) & (region_after[..., 1] < 90) & (region_after[..., 2] > 180)
    )
    assert magenta.any(), "no #ff00ff pixels where the highlighted cells are"
    nb.run_cell(4)
    viewer.frame.wait_for_function(
        f"() => window.__cellucid.selection.length === {len(gamma)}", timeout=30000
    )
    selected = viewer.frame.evaluate("() => Array.from(window.__cellucid.selection)")
    assert sorted(selected) == sorted(gamma.tolist())
    nb.run_cell(5)
    assert "2" in nb.output_text(5)
    # split view from Python through the widget: two panels in the iframe, reported back
    nb.run_cell(6)
    viewer.frame.wait_for_function(
        "() => { const s = window.__cellucid.scene; return s.split && s.split.extra.length === 1"
        " && s.split.extra[0].colors; }",
        timeout=30000,
    )
    eventually(nb, "[p['field'] for p in v.panels]", ["cluster", "score"])
    assert viewer.frame.evaluate("() => document.querySelectorAll('.panel-head').length") == 2
    nb.run_cell(7)
    viewer.frame.wait_for_function("() => window.__cellucid.scene.split === null", timeout=30000)
    eventually(nb, "len(v.panels)", 1)


def test_two_widgets_stay_independent(open_notebook):
    alpha = CLUSTERS.members["alpha"]
    nb = open_notebook(
        [SETUP, widget_cell("a"), widget_cell("b"), "a.wait_for_ready(120); b.wait_for_ready(120)"]
    )
    for cell in range(4):
        nb.run_cell(cell, timeout=180)
    first, second = ViewerFrame(nb, 1), ViewerFrame(nb, 2)
    assert nb.kernel_eval("a.port != b.port and a.viewer_id != b.viewer_id") is True
    first.lasso(alpha)
    eventually(nb, "sorted(a.selection.tolist())", sorted(alpha.tolist()))
    time.sleep(0.5)
    assert nb.kernel_eval("b.selection.size") == 0
    assert nb.kernel_eval("b.state.selection") is None
    nb.execute(f"b.highlight_cells({CLUSTERS.members['delta'].tolist()}, color='#00ff00')")
    second.frame.wait_for_function("() => window.__cellucid.highlights.length === 1", timeout=30000)
    assert first.frame.evaluate("() => window.__cellucid.highlights.length") == 0


def test_comm_transport_loads_when_the_server_is_unreachable(open_notebook):
    """transport="auto" with every request to the data server refused by the browser: the
    widget falls back to the comm, the viewer loads from blob URLs, and events still
    reach Python."""
    delta = CLUSTERS.members["delta"]
    nb = open_notebook([SETUP, widget_cell("v")])
    nb.run_cell(0, timeout=120)
    blocked: list[str] = []

    def refuse(route: Any) -> None:
        blocked.append(route.request.url)
        route.abort("connectionrefused")

    # The data server's port is not known before the widget exists: refuse every port the
    # widget may pick (direct loopback URLs and jupyter-server-proxy paths alike).
    nb.page.context.route("**/proxy/*/**", refuse)
    nb.page.context.route("http://127.0.0.1:*/_cellucid/**", refuse)
    nb.page.context.route("http://127.0.0.1:*/?*", refuse)
    nb.run_cell(1, timeout=120)
    port = nb.kernel_eval("v.port")
    viewer = ViewerFrame(nb, 1, timeout=120)
    assert viewer.frame.url.startswith("blob:"), viewer.frame.url
    eventually(nb, "v.ready", True, timeout=60)
    assert nb.kernel_eval("v.transport_in_use") == "comm"
    assert blocked, "the widget never tried the HTTP route"
    assert all(f":{nb.server.port}/proxy/{port}/" in u or f"127.0.0.1:{port}" in u for u in blocked)
    viewer.lasso(delta)
    eventually(nb, "sorted(v.selection.tolist())", sorted(delta.tolist()))
    # a gene over the comm: colour by it and check the viewer got real values
    nb.execute("v.color_by = 'GeneY'")
    viewer.frame.wait_for_function(
        "() => window.__cellucid.field && window.__cellucid.field.key === 'GeneY'", timeout=30000
    )
    # a blocking wait in a running cell is refused at once with the comm transport
    result = nb.execute(
        "try:\n    v.wait_for_event('selection', timeout=5)\nexcept RuntimeError as e:\n"
        "    print('refused:', e)"
    )
    assert "refused:" in result and "between cells" in result


def test_rerunning_a_cell_twenty_times_leaks_nothing(open_notebook):
    nb = open_notebook(
        [
            SETUP + "import cellucid.widget as cw\ncw.RELEASE_AFTER_S = 0.5\n"
            "def counts():\n"
            "    import gc, ipywidgets\n"
            "    gc.collect()\n"
            "    alive = [w for w in list(ipywidgets.widgets.widget._instances.values())\n"
            "             if isinstance(w, cellucid.CellucidWidget)]\n"
            "    names = [t.name for t in threading.enumerate()]\n"
            "    servers = sum(n.startswith('cellucid-server') for n in names)\n"
            "    dispatchers = sum(n.startswith('cellucid-events-') for n in names)\n"
            "    return {'widgets': len(alive), 'servers': servers, 'dispatchers': dispatchers}",
            widget_cell("v", height=200),
            "v.close()",
        ]
    )
    nb.run_cell(0, timeout=120)
    for _ in range(20):
        nb.run_cell(1, timeout=120)
    ViewerFrame(nb, 1)
    eventually(nb, "counts()", {"widgets": 1, "servers": 1, "dispatchers": 1}, timeout=60)
    viewer_id = nb.kernel_eval("v.viewer_id")
    nb.run_cell(2)
    eventually(nb, "counts()", {"widgets": 0, "servers": 0, "dispatchers": 0}, timeout=30)
    assert nb.page.locator(f"#cellucid-iframe-{viewer_id}").count() == 0


def _display_and_wait(open_notebook_in: Any) -> tuple[Any, ViewerFrame]:
    """A widget displayed and waited for in the same cell; the notebook and its viewer."""
    nb = open_notebook_in(
        [
            SETUP,
            "from IPython.display import display\n"
            "v = cellucid.CellucidWidget(data.adata, height=300, port=0)\n"
            "display(v)\nready = v.wait_for_ready(120)",
        ]
    )
    nb.run_cell(0, timeout=120)
    nb.run_cell(1, timeout=180)
    assert nb.kernel_eval("ready") == {"n_cells": CLUSTERS.n, "dimensions": 2}
    return nb, ViewerFrame(nb, 1)


def test_notebook7_displays_and_waits_in_the_same_cell(open_nb7_notebook):
    nb, viewer = _display_and_wait(open_nb7_notebook)
    assert viewer.frame.evaluate("() => window.__cellucid.nCells") == CLUSTERS.n
    eventually(nb, "v.transport_in_use", "http")


def test_a_jupyterhub_prefix_reaches_the_viewer_through_the_server_proxy(open_hub_notebook):
    """The environment matrix's JupyterHub row: the user's server lives under /user/<name>/,
    so the iframe must go through <prefix>proxy/<port>/ (jupyter-server-proxy), not a port."""
    nb, viewer = _display_and_wait(open_hub_notebook)
    port = nb.kernel_eval("v.port")
    assert f"/user/alice/proxy/{port}/" in viewer.frame.url, viewer.frame.url
    assert viewer.frame.evaluate("() => window.__cellucid.nCells") == CLUSTERS.n
    eventually(nb, "v.transport_in_use", "http")


def test_session_bundle_and_debug_connection_in_one_cell(open_notebook):
    alpha = CLUSTERS.members["alpha"].tolist()
    nb = open_notebook(
        [
            SETUP,
            widget_cell("v"),
            "v.wait_for_ready(120)\n"
            f"v.highlight_cells({alpha}, color='#ff0000')\n"
            "bundle = v.get_session_bundle(60)\n"
            "bundle_path = str(bundle.path)\n"
            "chunk_ids = bundle.list_chunk_ids()\n"
            "bundle.cleanup()\n"
            "import glob, tempfile\n"
            "pattern = tempfile.gettempdir() + '/cellucid-session-*'\n"
            "temp_before = sorted(glob.glob(pattern))\n"
            "adata2, summary = v.apply_session_to_anndata(data.adata, return_summary=True)\n"
            "temp_after = sorted(glob.glob(pattern))\n"
            "report = v.debug_connection()",
        ]
    )
    nb.run_cell(0, timeout=120)
    nb.run_cell(1, timeout=120)
    nb.run_cell(2, timeout=180)
    ids = nb.kernel_eval("chunk_ids")
    assert "highlights/meta" in ids and any(i.startswith("highlights/cells/") for i in ids)
    columns = nb.kernel_eval("summary.added_obs_columns")
    assert len(columns) == 1 and columns[0].startswith("cellucid_highlight__")
    flagged = nb.kernel_eval(
        f"[int(i) for i in __import__('numpy').flatnonzero(adata2.obs[{columns[0]!r}].to_numpy())]"
    )
    assert flagged == sorted(alpha)
    assert nb.kernel_eval(f"{columns[0]!r} in data.adata.obs.columns") is False, "not in place"
    assert nb.kernel_eval("__import__('os').path.exists(bundle_path)") is False, "cleanup()"
    assert nb.kernel_eval("temp_after == temp_before") is True, "apply left its bundle behind"
    report = nb.kernel_eval("report")
    assert report["frontend_roundtrip"]["ok"] is True, report["frontend_roundtrip"]
    assert isinstance(report["ping_rtt_ms"], float) and report["ping_rtt_ms"] < 5000
    assert report["frontend_debug_snapshot"]["ok"] is True
    assert report["server_health"]["status"] == "ok"
    assert report["transport"]["in_use"] == "http"
    assert report["dataset_identity"]["stats"]["n_cells"] == CLUSTERS.n
    assert "redacted" in report["viewer_url"] and nb.kernel_eval("v.viewer_token") not in str(
        report
    )


def test_compare_from_python_and_from_the_viewer(open_notebook):
    """viewer.compare on a lasso'd cluster; a comparison run in the viewer reaches Python as
    an on_message event and as last_comparison (computed by the widget's server)."""
    alpha = CLUSTERS.members["alpha"]
    nb = open_notebook(
        [
            SETUP,
            widget_cell("v"),
            "v.wait_for_ready(120)\n"
            "messages = []\n"
            "v.on_message(lambda event: messages.append(event))",
            "table = v.compare(v.selection)\nprint(table.names.iloc[0])",
        ]
    )
    viewer = run_and_lasso(nb, 3, alpha)
    nb.run_cell(3, timeout=120)
    assert "GeneAlpha" in nb.output_text(3)
    assert nb.kernel_eval("table.names.iloc[0]") == "GeneAlpha"
    # the columns of scanpy's rank_genes_groups_df (pinned in tests/test_rank_genes.py)
    assert nb.kernel_eval("list(table.columns) == list(cellucid.analysis.COLUMNS)") is True
    # the viewer's own comparison (the panel's engine), computed by the server in Python
    summary = viewer.frame.evaluate(
        "async () => (await window.__cellucid.compare({group: 'selection'})).summary(3)"
    )
    assert summary["status"] == "done" and summary["source"] == "server", summary
    eventually(nb, "[m['event'] for m in messages if m['event'] == 'comparison']", ["comparison"])
    assert nb.kernel_eval("v.last_comparison.names.iloc[0]") == "GeneAlpha"
    assert nb.kernel_eval("v.last_comparison.attrs['cellucid']['n_group']") == len(alpha)
    assert nb.kernel_eval("list(v.last_comparison.names.iloc[:3])") == [
        row["name"] for row in summary["rows"]
    ]


def test_groups_to_obs_and_add_field(open_notebook):
    """Groups made in Python and in the viewer reach viewer.groups; an annotation made in the
    viewer comes back as an obs column (to_obs); add_field sends a field the viewer colours by."""
    alpha, beta = CLUSTERS.members["alpha"], CLUSTERS.members["beta"]
    nb = open_notebook(
        [
            SETUP,
            widget_cell("v"),
            "v.wait_for_ready(120)\n"
            "seen = []\n"
            "v.observe(lambda change: seen.append(list(change['new'])), names='groups')\n"
            f"v.highlight_cells({beta.tolist()}, '#00aa00', name='beta')",
            "column = v.to_obs('annotation')\n"
            "adata = data.adata.copy()\n"
            "adata.obs['annotation'] = column\n"
            "print(adata.obs['annotation'].value_counts().to_dict())",
            "v.add_field('py_cluster', data.adata.obs['cluster'])\nv.color_by = 'py_cluster'",
        ]
    )
    viewer = run_and_lasso(nb, 3, alpha)
    eventually(nb, "seen[:1]", [["beta"]])  # the group made in Python came first
    viewer.frame.click("[data-action='group-from-selection']")
    name = viewer.frame.locator(".grp-row .grp-name").nth(1)
    name.fill("alpha")
    name.press("Enter")
    eventually(nb, "list(v.groups)", ["beta", "alpha"])
    assert nb.kernel_eval("sorted(v.groups['alpha'].tolist())") == sorted(alpha.tolist())
    assert nb.kernel_eval("str(v.groups['beta'].dtype)") == "uint32"
    assert nb.kernel_eval("seen[-1]") == ["beta", "alpha"]
    viewer.frame.click("[data-action='annotate']")
    viewer.frame.wait_for_function(
        "() => window.__cellucid.field && window.__cellucid.field.key === 'annotation'",
        timeout=30000,
    )
    nb.run_cell(3, timeout=120)
    counts = {"beta": len(beta), "alpha": len(alpha), "unassigned": CLUSTERS.n - 240}
    assert nb.kernel_eval("adata.obs['annotation'].value_counts().to_dict()") == counts
    assert nb.kernel_eval("list(column.cat.categories)") == ["beta", "alpha", "unassigned"]
    assert nb.kernel_eval("column.index.equals(data.adata.obs_names)") is True
    assert nb.kernel_eval("column.iloc[int(data.members['alpha'][0])]") == "alpha"
    nb.run_cell(4, timeout=120)
    viewer.frame.wait_for_function(
        "() => window.__cellucid.field && window.__cellucid.field.key === 'py_cluster'",
        timeout=30000,
    )
    categories = viewer.frame.evaluate("() => window.__cellucid.field.categories")
    assert categories == ["alpha", "beta", "gamma", "delta", "lone"]
    codes = viewer.frame.evaluate(
        f"() => [window.__cellucid.field.codes[{int(alpha[0])}], window.__cellucid.field.codes.constructor.name]"
    )
    assert codes == [0, "Uint8Array"]
    eventually(nb, "v.color_by", "py_cluster")
