"""Fixtures of the browser tests: one chromium per session, cellucid servers on small
generated datasets, and viewer pages wired to a :class:`ViewerChannel`.

A test that fails leaves a screenshot of each page it opened, plus the page's console, in
``test-artifacts/`` (gitignored) at the repository root.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _browser import (
    CHROMIUM_ARGS,
    PAGES,
    VIEWPORT,
    ClusterData,
    cluster_adata,
    pixels,
    require_chromium,
    screen_points,
    screenshot,
    server_options,
    settle,
    static_http_server,
    uniform_adata,
    viewer_query,
    wait_until,
)

from cellucid.server.events import ViewerChannel

READY_TIMEOUT = 30.0
ANNDATA_KINDS = ("anndata", "h5ad", "big")


# ---- failure artefacts -----------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):
        _save_artifacts(item)


def _save_artifacts(item: pytest.Item) -> None:
    handles = item.stash.get(PAGES, [])
    if not handles:
        return
    out = Path(item.config.rootpath) / "test-artifacts"
    out.mkdir(exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid.split("::", 1)[-1])[:120]
    for i, handle in enumerate(handles):
        with contextlib.suppress(Exception):
            handle.page.screenshot(path=str(out / f"{stem}-{i}.png"), full_page=True)
        with contextlib.suppress(Exception):
            (out / f"{stem}-{i}.log").write_text("\n".join(handle.console), encoding="utf-8")


# ---- browser -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser(playwright: Any) -> Iterator[Any]:
    chromium = playwright.chromium.launch(executable_path=require_chromium(), args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


# ---- data and servers ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def clusters() -> ClusterData:
    return cluster_adata()


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory: pytest.TempPathFactory, clusters: ClusterData) -> Path:
    import cellucid

    out = tmp_path_factory.mktemp("export") / "clusters"
    return Path(cellucid.prepare(clusters.adata, out, quiet=True, dataset_name="clusters"))


@pytest.fixture(scope="session")
def h5ad_path(tmp_path_factory: pytest.TempPathFactory, clusters: ClusterData) -> Path:
    path = tmp_path_factory.mktemp("h5ad") / "clusters.h5ad"
    clusters.adata.write_h5ad(path)
    return path


class Servers:
    """Servers started on first use and stopped at the end of the session."""

    def __init__(self) -> None:
        self._running: dict[str, Any] = {}
        self.factories: dict[str, Callable[[], Any]] = {}

    def get(self, kind: str) -> Any:
        if kind not in self._running:
            server = self.factories[kind]()
            server.start_background()
            self._running[kind] = server
        return self._running[kind]

    def stop(self) -> None:
        for server in self._running.values():
            with contextlib.suppress(Exception):
                server.stop()


@pytest.fixture(scope="session")
def servers(clusters: ClusterData, export_dir: Path, h5ad_path: Path) -> Iterator[Servers]:
    """``export`` (prepare() folder), ``anndata`` (in memory), ``h5ad`` (backed file),
    ``big`` (50,000 uniform cells in memory)."""
    import cellucid

    registry = Servers()
    registry.factories = {
        "export": lambda: cellucid.CellucidServer(export_dir, **server_options()),
        "anndata": lambda: cellucid.AnnDataServer(clusters.adata, **server_options()),
        "h5ad": lambda: cellucid.AnnDataServer(h5ad_path, backed="r", **server_options()),
        "big": lambda: cellucid.AnnDataServer(uniform_adata(50_000), **server_options()),
    }
    yield registry
    registry.stop()


# ---- viewer pages ------------------------------------------------------------------------------


class ViewerHandle:
    """One viewer page (or a parent page framing it) and the channel its events reach."""

    def __init__(self, page: Any, channel: ViewerChannel | None, server: Any, url: str) -> None:
        self.page = page
        self.frame_page: Any = None  # the viewer's frame when framed by a parent page
        self.channel = channel
        self.server = server
        self.url = url
        self.console: list[str] = []
        self.errors: list[str] = []
        page.on("console", lambda m: self.console.append(f"[{m.type}] {m.text}"))
        page.on("pageerror", self._page_error)

    def _page_error(self, error: Any) -> None:
        self.errors.append(str(error))
        self.console.append(f"[pageerror] {error}")

    @property
    def viewer_id(self) -> str:
        assert self.channel is not None
        return self.channel.viewer_id

    @property
    def token(self) -> str:
        assert self.channel is not None
        return self.channel.token

    # commands: posted by the page to itself (same origin), like a parent would
    def post(self, message: dict[str, Any]) -> None:
        self.page.evaluate("m => window.postMessage(m, '*')", message)

    def command(self, type_: str, **keys: Any) -> None:
        self.post({"type": type_, "viewerId": self.viewer_id, "viewerToken": self.token, **keys})

    def bridge_stats(self) -> dict[str, Any]:
        return self.page.evaluate("() => JSON.parse(JSON.stringify(window.__cellucidBridge.stats))")

    def wait_event(
        self, type_: str, predicate: Callable[[dict], bool] | None = None, timeout: float = 10.0
    ) -> dict[str, Any]:
        """The first recorded event of this type (since the page opened) matching predicate."""
        assert self.channel is not None

        def find() -> dict[str, Any] | None:
            for event in self.channel.recent_events():
                if event["type"] == type_ and (predicate is None or predicate(event)):
                    return event
            return None

        return wait_until(find, timeout, f"a {type_!r} event")

    def events(self, type_: str) -> list[dict[str, Any]]:
        assert self.channel is not None
        return [e for e in self.channel.recent_events() if e["type"] == type_]

    def settle(self) -> None:
        settle(self.page)

    def shot(self) -> np.ndarray:
        return pixels(screenshot(self.page))

    def stable_shot(self, timeout: float = 10.0) -> np.ndarray:
        """A screenshot once two in a row are identical (loading and transitions done)."""
        self.settle()
        previous = self.shot()
        deadline = time.monotonic() + timeout
        while True:
            time.sleep(0.15)
            current = self.shot()
            if np.array_equal(previous, current):
                return current
            if time.monotonic() > deadline:
                raise AssertionError("the picture did not settle")
            previous = current

    def points(self) -> np.ndarray:
        """Cell positions in page CSS pixels."""
        return screen_points(self.page)

    def plot_origin(self) -> np.ndarray:
        rect = self.page.evaluate(
            "() => { const r = (window.__cellucid.scene && window.__cellucid.scene.canvas"
            " || document.querySelector('canvas')).getBoundingClientRect();"
            " return [r.left, r.top]; }"
        )
        return np.asarray(rect, dtype=np.float64)


class Pages:
    """The channels and browser contexts one test opened; closed when the test ends."""

    def __init__(self, browser: Any, request: pytest.FixtureRequest) -> None:
        self.browser = browser
        self.name = request.node.name
        self.handles: list[ViewerHandle] = request.node.stash.setdefault(PAGES, [])
        self.contexts: list[Any] = []
        self.channels: list[tuple[Any, ViewerChannel]] = []

    def channel(self, server: Any) -> ViewerChannel:
        """A fresh channel registered with ``server`` (events with its id reach it)."""
        channel = ViewerChannel(name=self.name)
        server.registry.add(channel)
        self.channels.append((server, channel))
        return channel

    def open(self, url: str, channel: ViewerChannel | None, server: Any) -> ViewerHandle:
        context = self.browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        self.contexts.append(context)
        handle = ViewerHandle(context.new_page(), channel, server, url)
        self.handles.append(handle)
        return handle

    def close(self) -> None:
        for context in self.contexts:
            with contextlib.suppress(Exception):
                context.close()
        for server, channel in self.channels:
            server.registry.remove(channel.viewer_id)
            channel.close()


@pytest.fixture
def pages(browser: Any, request: pytest.FixtureRequest) -> Iterator[Pages]:
    opened = Pages(browser, request)
    yield opened
    opened.close()


@pytest.fixture
def open_viewer(servers: Servers, pages: Pages) -> Callable[..., ViewerHandle]:
    """Open a viewer page: ``open_viewer(kind="export", credentials=True, jupyter=False)``.

    With credentials a fresh ViewerChannel is registered with the server and the page URL
    carries its viewerId/viewerToken; the call returns once the ``ready`` event arrived
    (or, without credentials, once the bridge saw the viewer become ready).
    """

    def open_(
        kind: str = "export",
        *,
        credentials: bool = True,
        jupyter: bool = False,
        wait_ready: bool = True,
        server: Any = None,
    ) -> ViewerHandle:
        server = server if server is not None else servers.get(kind)
        channel = pages.channel(server) if credentials else None
        query = viewer_query(
            viewer_id=channel.viewer_id if channel else None,
            token=channel.token if channel else None,
            jupyter=jupyter,
            anndata=kind in ANNDATA_KINDS,
        )
        handle = pages.open(f"{server.url}/{query}", channel, server)
        handle.page.goto(handle.url)
        if wait_ready:
            if channel is not None:
                wait_until(lambda: channel.state.ready, READY_TIMEOUT, "the ready event")
            else:
                handle.page.wait_for_function(
                    "() => window.__cellucidBridge && window.__cellucidBridge.stats.ready",
                    timeout=READY_TIMEOUT * 1000,
                )
        return handle

    return open_


# ---- a cross-origin parent page (the notebook widget's place) ----------------------------------

PARENT_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>parent</title>
<style>body{{margin:0}} iframe{{border:0;width:900px;height:640px;display:block}}</style>
</head><body>
<iframe id="viewer" src="{url}"></iframe>
<script>
  // What the notebook widget does: post commands with the viewer's id and token,
  // targeted at the viewer's origin, and collect the events it posts back.
  const viewerUrl = {url_json};
  const target = new URL(viewerUrl).origin;
  const frame = document.getElementById("viewer");
  const creds = {{viewerId: {id_json}, viewerToken: {token_json}}};
  window.events = [];
  window.addEventListener("message", (e) => {{
    if (e.source === frame.contentWindow && e.origin === target) window.events.push(e.data);
  }});
  window.sendToViewer = (msg) => frame.contentWindow.postMessage({{...msg, ...creds}}, target);
  // Handshake: ping until the viewer answers, which pins this page's origin.
  let n = 0;
  const hello = setInterval(() => {{
    if (window.events.some((e) => e.type === "pong") || n++ > 100) return clearInterval(hello);
    window.sendToViewer({{type: "ping", requestId: "handshake-" + n}});
  }}, 100);
</script></body></html>
"""


@pytest.fixture(scope="session")
def parent_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A static site on another origin (``http://localhost:<port>``, the viewer being on
    127.0.0.1) that stands in for the notebook page: ``(base_url, directory)``."""
    root = tmp_path_factory.mktemp("parent-site")
    with static_http_server(root, "parent-site") as port:
        yield f"http://localhost:{port}", root


@pytest.fixture
def open_framed(
    servers: Servers, pages: Pages, parent_site: tuple[str, Path]
) -> Callable[..., ViewerHandle]:
    """Open the viewer with ``jupyter=true`` in an iframe of the cross-origin parent page.

    Returns a handle whose ``page`` is the parent; ``handle.frame_page`` is the viewer's
    frame. Events reach the parent's ``window.events``; the channel records anything that
    comes by HTTP instead.
    """
    base, root = parent_site

    def open_(kind: str = "export") -> ViewerHandle:
        server = servers.get(kind)
        channel = pages.channel(server)
        query = viewer_query(
            viewer_id=channel.viewer_id,
            token=channel.token,
            jupyter=True,
            anndata=kind in ANNDATA_KINDS,
        )
        url = f"{server.url}/{query}"
        name = f"parent-{secrets.token_hex(4)}.html"
        (root / name).write_text(
            PARENT_HTML.format(
                url=url,
                url_json=json.dumps(url),
                id_json=json.dumps(channel.viewer_id),
                token_json=json.dumps(channel.token),
            ),
            encoding="utf-8",
        )
        handle = pages.open(url, channel, server)
        page = handle.page
        page.goto(f"{base}/{name}")
        page.wait_for_function(
            "() => window.events.some((e) => e.type === 'ready')", timeout=READY_TIMEOUT * 1000
        )
        handle.frame_page = next(f for f in page.frames if f.url.startswith(server.url))
        return handle

    return open_
