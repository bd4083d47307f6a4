"""The viewer works offline for real: a loaded, used viewer fetches only from its server."""

from __future__ import annotations

import numpy as np
import pandas as pd
from _browser import server_options

import cellucid


def test_viewer_fetches_nothing_but_its_own_server(browser, tmp_path):
    rng = np.random.default_rng(3)
    n = 400
    obs = pd.DataFrame({"cluster": pd.Categorical(rng.choice(["a", "b", "c"], n))})
    out = cellucid.prepare(
        obs=obs,
        var=pd.DataFrame(index=["GeneA", "GeneB"]),
        gene_expression=rng.random((n, 2)).astype(np.float32),
        X_umap_2d=rng.normal(size=(n, 2)),
        out_dir=tmp_path / "export",
        quiet=True,
    )
    requests: list[str] = []
    with cellucid.CellucidServer(out, **server_options()) as server:
        page = browser.new_page()
        try:
            page.on("request", lambda req: requests.append(req.url))
            page.goto(server.viewer_url)
            page.wait_for_function("() => window.__cellucid && window.__cellucid.nCells > 0")
            page.evaluate("() => window.__cellucid.setColorBy('GeneA')")
            page.wait_for_function(
                "() => performance.getEntriesByType('resource')"
                ".some(e => e.name.includes('var/GeneA.values.f32'))"
            )
        finally:
            page.close()
    assert any("var/GeneA.values.f32" in url for url in requests), requests
    # Web Workers start from blob: URLs of the page's own origin: memory, not the network
    own = (server.url + "/", f"blob:{server.url}/")
    foreign = [url for url in requests if not url.startswith(own)]
    assert foreign == [], f"the viewer fetched from elsewhere: {foreign}"
