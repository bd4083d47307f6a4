"""Helpers of the browser tests: small datasets with known geometry, and page helpers.

The cluster dataset puts four tight clusters at the corners of a square and one lone cell
in the middle, so a lasso around one corner selects exactly that cluster and the mouse can
land on the lone cell. Cell order is shuffled, so a cluster is not a contiguous index range.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: shared helpers
from _chromium import CHROMIUM_ARGS, require_chromium  # noqa: F401  (re-exported)

VIEWPORT = {"width": 900, "height": 640}


@contextlib.contextmanager
def anndata_server(adata: Any) -> Iterator[Any]:
    """A running AnnDataServer (test options) for ``adata``, stopped afterwards."""
    import cellucid

    server = cellucid.AnnDataServer(adata, **server_options())
    server.start_background()
    try:
        yield server
    finally:
        server.stop()


def server_options() -> dict[str, Any]:
    """Options of every test server: quiet, an OS-chosen port, and the viewer the package
    ships unless ``CELLUCID_BROWSER_UI_DIR`` points at another build of it."""
    options: dict[str, Any] = {"port": 0, "quiet": True}
    ui_dir = os.environ.get("CELLUCID_BROWSER_UI_DIR")
    if ui_dir:
        options["ui_dir"] = Path(ui_dir)
    return options


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def static_http_server(root: Path, name: str = "static-site") -> Iterator[int]:
    """A plain static web server (no cellucid routes) for ``root`` on 127.0.0.1, in a thread;
    yields its port."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


# cluster name → centre in raw embedding units; the lone cell sits at the origin
CENTRES = {"alpha": (-6.0, -6.0), "beta": (6.0, -6.0), "gamma": (-6.0, 6.0), "delta": (6.0, 6.0)}
LONE = "lone"
PER_CLUSTER = 120
SPREAD = 0.5
GENES = ["GeneAlpha", "GeneY", "GeneNoise"]


@dataclass(frozen=True)
class ClusterData:
    """The generated AnnData and what the tests know about it."""

    adata: Any
    members: dict[str, np.ndarray]  # cluster name → sorted cell indices
    lone: int  # index of the lone cell in the middle

    @property
    def n(self) -> int:
        return int(self.adata.n_obs)


def cluster_adata(seed: int = 0) -> ClusterData:
    """Four clusters of ``PER_CLUSTER`` cells at ``CENTRES`` plus one lone cell at (0, 0).

    obs: ``cluster`` (categorical), ``score`` = x + y (continuous). Genes: ``GeneAlpha``
    (5 in alpha, 0 elsewhere), ``GeneY`` (= y), ``GeneNoise``. A kNN graph joins each cell
    to near cells of its own cluster; ``X_pca`` is a latent space for the outlier payloads.
    """
    import anndata

    rng = np.random.default_rng(seed)
    names = list(CENTRES)
    labels = np.repeat(np.array([*names, LONE], dtype=object), [PER_CLUSTER] * len(names) + [1])
    xy = np.concatenate(
        [np.asarray(CENTRES[c]) + rng.normal(0.0, SPREAD, (PER_CLUSTER, 2)) for c in names]
        + [np.zeros((1, 2))]
    )
    order = rng.permutation(len(labels))
    labels, xy = labels[order], xy[order]
    n = len(labels)
    obs = pd.DataFrame(
        {
            "cluster": pd.Categorical(labels, categories=[*names, LONE]),
            "score": (xy[:, 0] + xy[:, 1]).astype(np.float64),
        },
        index=[f"cell{i}" for i in range(n)],
    )
    x = np.column_stack(
        [
            np.where(labels == "alpha", 5.0, 0.0),
            xy[:, 1] - xy[:, 1].min(),
            rng.gamma(2.0, 1.0, n),
        ]
    ).astype(np.float32)
    adata = anndata.AnnData(X=sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=GENES))
    adata.obsm["X_umap"] = xy
    adata.obsm["X_pca"] = rng.normal(size=(n, 4))
    adata.obsp["connectivities"] = _cluster_knn(xy, labels, k=3)
    members = {c: np.flatnonzero(labels == c) for c in names}
    return ClusterData(adata=adata, members=members, lone=int(np.flatnonzero(labels == LONE)[0]))


def _cluster_knn(xy: np.ndarray, labels: np.ndarray, k: int) -> sp.csr_matrix:
    rows, cols = [], []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        if len(idx) < 2:
            continue
        d = np.linalg.norm(xy[idx, None, :] - xy[None, idx, :], axis=-1)
        np.fill_diagonal(d, np.inf)
        nearest = np.argsort(d, axis=1)[:, :k]
        rows.append(np.repeat(idx, nearest.shape[1]))
        cols.append(idx[nearest].ravel())
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(labels), len(labels)))


def uniform_adata(n: int, seed: int = 1) -> Any:
    """``n`` cells spread uniformly over a square, one categorical; no genes."""
    import anndata

    rng = np.random.default_rng(seed)
    obs = pd.DataFrame(
        {"group": pd.Categorical(rng.choice(["a", "b", "c"], n))},
        index=[f"c{i}" for i in range(n)],
    )
    adata = anndata.AnnData(obs=obs)
    adata.obsm["X_umap"] = rng.uniform(-1, 1, (n, 2))
    return adata


# ---- pages ---------------------------------------------------------------------------------------


def viewer_query(*, viewer_id: str | None, token: str | None, jupyter: bool, anndata: bool) -> str:
    params = []
    if viewer_id is not None:
        params.append(f"jupyter={'true' if jupyter else 'false'}")
        params.append(f"viewerId={viewer_id}")
        params.append(f"viewerToken={token}")
    if anndata:
        params.append("anndata=true")
    return "?" + "&".join(params) if params else ""


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; that value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


JS_CANVAS_RECT = """() => {
  const v = window.__cellucid;
  let c = v && v.scene && v.scene.canvas;
  if (!c) c = [...document.querySelectorAll('canvas')].sort((a, b) =>
      b.clientWidth * b.clientHeight - a.clientWidth * a.clientHeight)[0];
  const r = c.getBoundingClientRect();
  return {x: r.left, y: r.top, width: r.width, height: r.height};
}"""

JS_SCREEN_POSITIONS = """() => Array.from(window.__cellucid.screenPositions())"""

JS_TWO_FRAMES = (
    """() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))"""
)


def canvas_rect(page) -> dict[str, float]:
    return page.evaluate(JS_CANVAS_RECT)


def screen_points(page) -> np.ndarray:
    """Every cell's position in page CSS pixels, ``(n, 2)``, from the viewer's projection."""
    rect = canvas_rect(page)
    flat = np.asarray(page.evaluate(JS_SCREEN_POSITIONS), dtype=np.float64)
    assert flat.size, "window.__cellucid.screenPositions() returned nothing"
    return flat.reshape(-1, 2) + np.array([rect["x"], rect["y"]])


def settle(page) -> None:
    """Let queued bridge work finish and two frames render."""
    page.evaluate("() => window.__cellucidBridge ? window.__cellucidBridge.idle() : null")
    page.evaluate(JS_TWO_FRAMES)


def screenshot(page):
    """The plot area as an RGB Pillow image (page pixels; overlays included)."""
    from PIL import Image

    rect = canvas_rect(page)
    png = page.screenshot(clip=rect, animations="disabled")
    return Image.open(io.BytesIO(png)).convert("RGB")


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def background_colour(px: np.ndarray) -> np.ndarray:
    """The most common colour (the plot is mostly empty)."""
    flat = px.reshape(-1, 3)
    colours, counts = np.unique(flat, axis=0, return_counts=True)
    return colours[np.argmax(counts)]


def drawn_mask(px: np.ndarray, background: np.ndarray | None = None, tol: int = 40) -> np.ndarray:
    bg = background_colour(px) if background is None else background
    return np.abs(px - bg).max(axis=-1) > tol


def region(px: np.ndarray, centre: Iterable[float], radius: float) -> np.ndarray:
    """The square of ``px`` (page pixels of the plot, origin at its top left) around ``centre``."""
    cx, cy = (round(float(v)) for v in centre)
    r = int(np.ceil(radius))
    return px[max(cy - r, 0) : cy + r + 1, max(cx - r, 0) : cx + r + 1]


def mean_drawn_colour(px: np.ndarray, background: np.ndarray, tol: int = 40) -> np.ndarray | None:
    mask = drawn_mask(px, background, tol)
    if not mask.any():
        return None
    return px[mask].mean(axis=0)


def changed_fraction(a: np.ndarray, b: np.ndarray, tol: int = 24) -> float:
    return float((np.abs(a - b).max(axis=-1) > tol).mean())


def dump_json(path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, default=str), encoding="utf-8")


def geometry(points: np.ndarray, origin: np.ndarray, members: dict[str, np.ndarray]):
    """Per cluster: centre relative to the plot's top left, and radius (CSS pixels)."""
    out = {}
    for name, idx in members.items():
        p = points[idx]
        centre = p.mean(axis=0)
        out[name] = (centre - origin, float(np.linalg.norm(p - centre, axis=1).max()))
    return out


def circle(centre: np.ndarray, radius: float, n: int = 24) -> list[tuple[float, float]]:
    angles = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return [(centre[0] + radius * np.cos(a), centre[1] + radius * np.sin(a)) for a in angles]


def inside(points: np.ndarray, polygon: list[tuple[float, float]]) -> np.ndarray:
    """Even-odd point-in-polygon for ``(n, 2)`` points (an independent check of the lasso)."""
    poly = np.asarray(polygon, dtype=np.float64)
    x, y = points[:, 0][:, None], points[:, 1][:, None]
    x0, y0 = poly[:, 0][None, :], poly[:, 1][None, :]
    x1, y1 = np.roll(poly[:, 0], -1)[None, :], np.roll(poly[:, 1], -1)[None, :]
    crosses = ((y0 > y) != (y1 > y)) & (x < (x1 - x0) * (y - y0) / (y1 - y0 + 1e-300) + x0)
    return (crosses.sum(axis=1) % 2) == 1


def drag(page, polygon: list[tuple[float, float]], steps: int = 3) -> None:
    """Mouse down at the first vertex, through every vertex, back to the first, up."""
    first = polygon[0]
    page.mouse.move(*first)
    page.mouse.down()
    for point in [*polygon[1:], first]:
        page.mouse.move(*point, steps=steps)
    page.mouse.up()


def export_figure(page, button_name: str) -> bytes:
    """Click a figure export button of the panel (``1×``, ``SVG``, …); the downloaded bytes."""
    with page.expect_download(timeout=30_000) as info:
        page.get_by_role("button", name=button_name, exact=True).click()
    with open(info.value.path(), "rb") as fh:
        return fh.read()


#: the pages a test opened (the browser conftest saves their screenshots and console when the
#: test fails); here, not in conftest, so that tests import it by a unique module name
PAGES = pytest.StashKey[list]()
