"""Fixtures shared by every test folder.

``playwright`` is the one sync Playwright of the test session: a thread can run only one,
so the browser tests (tests/browser) and the JupyterLab tests (tests/jupyter) both launch
their Chromium through it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as running:
        yield running
