"""Fixtures shared by every test folder.

``playwright`` is the one sync Playwright of the test session: a thread can run only one,
so the browser tests (tests/browser) and the JupyterLab tests (tests/jupyter) both launch
their Chromium through it. ``cache_dir`` gives a test its own column cache folder and
``h5_reads`` records what is read from h5py datasets (the lazy-reading tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as running:
        yield running


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A column cache folder of this test (``CELLUCID_CACHE_DIR``)."""
    monkeypatch.setenv("CELLUCID_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def h5_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """(dataset name, number of values returned) for every h5py dataset read."""
    import h5py

    log: list[tuple[str, int]] = []
    orig = h5py.Dataset.__getitem__

    def spy(self, *args, **kwargs):
        value = orig(self, *args, **kwargs)
        log.append((self.name, int(np.size(value))))
        return value

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    for name in ("read_direct", "__array__"):
        original = getattr(h5py.Dataset, name)

        def spy_other(self, *args, _orig=original, **kwargs):
            log.append((self.name, -1))
            return _orig(self, *args, **kwargs)

        monkeypatch.setattr(h5py.Dataset, name, spy_other)
    return log
