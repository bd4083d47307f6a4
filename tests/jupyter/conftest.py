"""Fixtures of the Jupyter tests: a real JupyterLab (and, on demand, Notebook 7) server and
a Chromium that opens notebooks in it. See ``_lab.py`` for how pages are driven.

* ``lab_server`` (session): one ``jupyter lab`` for the whole session;
* ``nb7_server`` (session): one ``jupyter notebook``, started only if a test asks for it;
* ``lab_browser`` (session): Debian's Chromium through Playwright (sync API);
* ``open_notebook`` / ``open_nb7_notebook`` (function): ``open(cells, name=None,
  kernel="python3", timeout=60) -> LabNotebook``; what a test opened is closed (kernel shut
  down, page closed) when it ends.

A test that fails leaves a screenshot of each notebook page it opened, with the page's
console and the server log's tail, in ``test-artifacts/`` (gitignored) at the repository root.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _lab import JupyterServer, LabNotebook, NotebookOpener, launch_chromium, start_server

OPENED = pytest.StashKey[list[LabNotebook]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    if report.failed and report.when in ("setup", "call"):
        out = Path(item.config.rootpath) / "test-artifacts"
        out.mkdir(exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid.split("::", 1)[-1])[:120]
        for i, notebook in enumerate(item.stash.get(OPENED, [])):
            notebook.save_artifacts(out, f"{stem}-{i}")
    return report


def _server(app: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    server = start_server(app, tmp_path_factory.mktemp(f"jupyter-{app}"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """``jupyter lab`` with isolated config/runtime/settings/workspaces dirs, in a new
    process group, ready (``GET /api/status`` answered). Has ``base_url``, ``token``,
    ``root_dir``, ``url(path)``, ``api(method, path)`` and ``stop()``; teardown shuts it
    down and fails if any of its processes (kernels included) remain."""
    yield from _server("lab", tmp_path_factory)


@pytest.fixture(scope="session")
def nb7_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """``jupyter notebook`` (Notebook 7), as ``lab_server``; started on first use only."""
    yield from _server("notebook", tmp_path_factory)


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """``jupyter lab`` under ``/user/alice/``, as JupyterHub runs a user's server behind its
    proxy (the single-user server sees the same prefix); started on first use only."""
    server = start_server("lab", tmp_path_factory.mktemp("jupyter-hub"), prefix="/user/alice/")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def lab_browser(playwright: Any) -> Iterator[Any]:
    """Debian's Chromium (headless, SwiftShader) through the session's Playwright
    (tests/conftest.py), which the browser suite shares."""
    browser = launch_chromium(playwright)
    yield browser
    browser.close()


def _opener(server: JupyterServer, browser: Any, request: pytest.FixtureRequest):
    opened = request.node.stash.setdefault(OPENED, [])
    opener = NotebookOpener(server, browser, request.node.name, also=opened)
    yield opener
    opener.close()


@pytest.fixture
def open_notebook(
    lab_server: JupyterServer, lab_browser: Any, request: pytest.FixtureRequest
) -> Iterator[NotebookOpener]:
    """``open_notebook(cells, name=None, kernel="python3", timeout=60) -> LabNotebook``:
    write the code cells to ``lab_server.root_dir/name`` (default: from the test's name),
    open ``/lab/workspaces/<fresh>/tree/<name>`` in a new browser context and return once
    the kernel is connected and idle."""
    yield from _opener(lab_server, lab_browser, request)


@pytest.fixture
def open_hub_notebook(
    hub_server: JupyterServer, lab_browser: Any, request: pytest.FixtureRequest
) -> Iterator[NotebookOpener]:
    """As ``open_notebook``, in the JupyterLab under ``/user/alice/`` (``hub_server``)."""
    yield from _opener(hub_server, lab_browser, request)


@pytest.fixture
def open_nb7_notebook(
    nb7_server: JupyterServer, lab_browser: Any, request: pytest.FixtureRequest
) -> Iterator[NotebookOpener]:
    """As ``open_notebook``, in Notebook 7 (``/notebooks/<name>``)."""
    yield from _opener(nb7_server, lab_browser, request)
