"""Render the screenshots the guide shows (``make docs-images``).

Generates a small AnnData (four clusters on a 2D and a 3D embedding, a few marker genes),
serves it with :func:`cellucid.serve_anndata` and drives the bundled viewer in Debian's
headless chromium (as ``tests/browser`` does) to write PNGs into the folder given on the
command line (``docs/_static/generated/``, gitignored). Nothing here is drawn by hand: a
change to the viewer changes the pictures at the next build.

Usage: ``python docs/images.py OUT_DIR``
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
# the browser tests' chromium and flags: software WebGL, no network
from _chromium import CHROMIUM, CHROMIUM_ARGS

VIEWPORT = {"width": 1200, "height": 760}
READY_MS = 60_000
CLUSTERS = {"T cell": (-5, -4), "B cell": (5, -4), "Monocyte": (-5, 4), "NK cell": (5, 4)}
MARKERS = {"T cell": "CD3E", "B cell": "MS4A1", "Monocyte": "LYZ", "NK cell": "NKG7"}


def example_adata(n_per_cluster: int = 600, seed: int = 0):
    """Four clusters with one marker gene each, a 2D and a 3D embedding, a PCA."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    names = list(CLUSTERS)
    labels = np.repeat(names, n_per_cluster)
    n = labels.size
    centres = np.array([CLUSTERS[name] for name in labels], dtype=np.float32)
    umap = centres + rng.normal(scale=1.3, size=(n, 2)).astype(np.float32)
    umap3 = np.column_stack([umap, rng.normal(scale=1.0, size=n)]).astype(np.float32)
    genes = [*MARKERS.values(), "GAPDH", "ACTB", "MALAT1", "HLA-DRA"]
    counts = rng.poisson(0.4, size=(n, len(genes))).astype(np.float32)
    for j, name in enumerate(names):
        counts[labels == name, j] += rng.poisson(6, size=int((labels == name).sum()))
    counts[:, 4:] += rng.poisson(3, size=(n, len(genes) - 4))
    X = sp.csr_matrix(np.log1p(counts))
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(labels),
            "sample": pd.Categorical(rng.choice(["donor_1", "donor_2", "donor_3"], size=n)),
            "n_counts": counts.sum(axis=1),
        },
        index=[f"cell_{i}" for i in range(n)],
    )
    adata = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=genes))
    adata.obsm["X_umap"] = umap
    adata.obsm["X_umap_3d"] = umap3
    adata.obsm["X_pca"] = rng.normal(size=(n, 10)).astype(np.float32)
    return adata


def _frames(page, n: int = 4) -> None:
    for _ in range(n):
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(true)))")


def render(out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    import cellucid

    out.mkdir(parents=True, exist_ok=True)
    adata = example_adata()
    written: list[Path] = []
    server = cellucid.serve_anndata(adata, port=0, open_browser=False, quiet=True, blocking=False)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"{server.url}/?anndata=true")
            page.wait_for_function(
                "() => window.__cellucidBridge && window.__cellucidBridge.stats.ready",
                timeout=READY_MS,
            )

            def shot(name: str) -> None:
                _frames(page)
                path = out / f"{name}.png"
                page.screenshot(path=str(path), animations="disabled")
                written.append(path)

            page.evaluate("() => window.__cellucid.setDimension(2)")
            page.evaluate("() => window.__cellucid.setColorBy('cell_type')")
            shot("viewer-overview")
            page.evaluate("() => window.__cellucid.setColorBy('MS4A1')")
            shot("viewer-gene")
            page.evaluate("() => window.__cellucid.setColorBy('cell_type')")
            b_cells = np.flatnonzero(adata.obs["cell_type"] == "B cell").tolist()
            nk = np.flatnonzero(adata.obs["cell_type"] == "NK cell").tolist()
            page.evaluate(
                "([a, b]) => { window.__cellucid.highlight(new Uint32Array(a), '#9467bd');"
                " window.__cellucid.setSelection(new Uint32Array(b)); }",
                [b_cells, nk],
            )
            shot("viewer-highlight-selection")
            page.evaluate("() => window.__cellucid.clearHighlights()")
            page.get_by_role("button", name="Compare groups…").click()
            page.locator("#compare").wait_for(state="visible")
            page.get_by_role("button", name="Compare", exact=True).click()
            page.wait_for_function(
                "() => document.querySelector('.cmp-status').dataset.state === 'done'",
                timeout=READY_MS,
            )
            shot("viewer-compare")
            page.keyboard.press("Escape")
            page.evaluate(
                "() => window.__cellucid.cancelCompare && window.__cellucid.cancelCompare()"
            )
            page.reload()
            page.wait_for_function(
                "() => window.__cellucidBridge && window.__cellucidBridge.stats.ready",
                timeout=READY_MS,
            )
            page.evaluate("() => window.__cellucid.setDimension(2)")
            page.evaluate("() => window.__cellucid.setColorBy('cell_type')")

            def scroll_to(title: str) -> None:
                heading = page.locator("h2", has_text=title)
                page.locator("section.sec", has=heading).first.scroll_into_view_if_needed()

            # filters: a range on a number and "only these" categories
            lo, hi = np.percentile(adata.obs["n_counts"], [20, 100]).tolist()
            page.evaluate(f"() => window.__cellucid.filterRange('n_counts', {lo}, {hi})")
            page.evaluate(
                "() => window.__cellucid.filterCategories('cell_type', ['T cell', 'B cell', 'NK cell'])"
            )
            page.wait_for_function("() => window.__cellucid.filters.length === 2", timeout=READY_MS)
            scroll_to("Filters")
            shot("viewer-filters")
            page.evaluate("() => window.__cellucid.clearFilters()")
            # selection tools: the panel's modes and steps, with a selection made
            page.evaluate(
                "(cells) => window.__cellucid.setSelection(new Uint32Array(cells))", b_cells[:200]
            )
            scroll_to("Selection")
            shot("viewer-selection-tools")
            # named groups from categories, then Annotate into a new field
            page.evaluate(
                "async () => { const v = window.__cellucid; v.clearSelection();"
                " await v.groupFromCategory('B cell'); await v.groupFromCategory('NK cell');"
                " v.annotate('my_annotation'); }"
            )
            scroll_to("Groups")
            shot("viewer-groups")
            scroll_to("Session")
            shot("viewer-session")
            # split view: cell types on the UMAP next to a marker gene on the PCA's first axes
            page.evaluate("() => { window.__cellucid.clearHighlights(); }")
            page.evaluate(
                "() => window.__cellucid.split(['cell_type', {field: 'MS4A1', embedding: 'X_pca'}])"
            )
            page.wait_for_function(
                "() => window.__cellucid.panels && window.__cellucid.panels.describe().length === 2",
                timeout=READY_MS,
            )
            scroll_to("View")
            shot("viewer-split")
            browser.close()
    finally:
        server.stop()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the PNGs")
    args = parser.parse_args(argv)
    if shutil.which(CHROMIUM) is None:
        print(f"docs/images.py: {CHROMIUM} is missing (make setup installs it)", file=sys.stderr)
        return 1
    start = time.monotonic()
    written = render(args.out)
    took = time.monotonic() - start
    print(f"docs/images.py: {len(written)} screenshots in {args.out} ({took:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
