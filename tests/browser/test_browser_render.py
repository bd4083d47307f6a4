"""The viewer page loads each kind of server's data and draws the points where they are;
colouring by a categorical, a continuous field and a gene changes the picture as the
values say it should."""

from __future__ import annotations

import re

import numpy as np
import pytest
from _browser import (
    background_colour,
    changed_fraction,
    drawn_mask,
    geometry,
    mean_drawn_colour,
    region,
)


@pytest.mark.parametrize("kind", ["export", "anndata", "h5ad"])
def test_standalone_page_draws_every_cluster(open_viewer, clusters, kind):
    """No viewerId/token in the URL: the page still works, and sends no events."""
    viewer = open_viewer(kind, credentials=False)
    px = viewer.stable_shot()
    bg = background_colour(px)
    assert drawn_mask(px, bg).mean() < 0.5, "the plot should be mostly background"
    geo = geometry(viewer.points(), viewer.plot_origin(), clusters.members)
    for name, (centre, radius) in geo.items():
        assert 2 < radius < 200, f"{name}: implausible on-screen radius {radius}"
        drawn = drawn_mask(region(px, centre, radius), bg).mean()
        assert drawn > 0.05, f"{name}: only {drawn:.1%} of its area is drawn"
    lone = viewer.points()[clusters.lone] - viewer.plot_origin()
    assert drawn_mask(region(px, lone, 2), bg).any(), "the lone cell is not drawn"
    # halfway between the lone cell and a cluster there is nothing
    empty = (lone + geo["alpha"][0]) / 2
    assert not drawn_mask(region(px, empty, 3), bg).any(), "points drawn where there are none"
    stats = viewer.bridge_stats()
    assert stats["transport"] == "none"
    assert stats["eventsSent"] == 0 and stats["eventsDropped"] >= 1  # the ready event
    assert not viewer.errors


def _colours(viewer, clusters, bg):
    px = viewer.stable_shot()
    geo = geometry(viewer.points(), viewer.plot_origin(), clusters.members)
    colours = {}
    for name, (centre, radius) in geo.items():
        colour = mean_drawn_colour(region(px, centre, radius), bg)
        assert colour is not None, f"{name} is not drawn"
        colours[name] = colour
    return px, colours


def _dist(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


@pytest.mark.parametrize("kind", ["export", "h5ad"])
def test_colour_by_category_continuous_and_gene(open_viewer, clusters, kind):
    viewer = open_viewer(kind)
    bg = background_colour(viewer.stable_shot())

    viewer.command("setColorBy", field="cluster")
    by_cluster, c = _colours(viewer, clusters, bg)
    names = list(c)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert _dist(c[a], c[b]) > 30, f"{a} and {b} have the same colour {c[a]} by cluster"

    # score = x + y: alpha lowest, delta highest, beta and gamma both about 0
    viewer.command("setColorBy", field="score")
    by_score, s = _colours(viewer, clusters, bg)
    assert _dist(s["alpha"], s["delta"]) > 60, s
    assert _dist(s["beta"], s["gamma"]) < _dist(s["alpha"], s["delta"]) / 3, s

    # GeneAlpha is expressed in alpha only
    viewer.command("setColorBy", field="GeneAlpha")
    by_gene, g = _colours(viewer, clusters, bg)
    assert _dist(g["alpha"], g["beta"]) > 60, g
    assert _dist(g["beta"], g["gamma"]) < 12 and _dist(g["beta"], g["delta"]) < 12, g

    assert not np.array_equal(by_cluster, by_score)
    assert not np.array_equal(by_score, by_gene)
    assert not viewer.events("command_error"), viewer.events("command_error")


def test_knn_edges_are_drawn_inside_clusters_only(open_viewer, clusters):
    """The kNN graph joins cells of the same cluster: showing it darkens the clusters and
    leaves the space between them empty."""
    viewer = open_viewer("h5ad")
    before = viewer.stable_shot()
    bg = background_colour(before)
    viewer.page.get_by_role("checkbox", name=re.compile("KNN edges")).check()
    after = viewer.stable_shot()
    geo = geometry(viewer.points(), viewer.plot_origin(), clusters.members)
    for name, (centre, radius) in geo.items():
        frac = changed_fraction(region(before, centre, radius), region(after, centre, radius))
        assert frac > 0.01, f"{name}: no edges drawn ({frac:.1%} changed)"
    lone = viewer.points()[clusters.lone] - viewer.plot_origin()
    for name, (centre, _) in geo.items():
        empty = (lone + centre) / 2
        assert not drawn_mask(region(after, empty, 4), bg).any(), f"an edge leaves {name}"
