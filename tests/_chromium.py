"""Debian's chromium as the tests drive it (Playwright's own browser download fails here)."""

from __future__ import annotations

import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_chromium() -> str:
    """The chromium executable; a clear failure (not a skip) when `make setup` was not run."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail("chromium is missing: `make setup` installs Debian's chromium")
    return CHROMIUM
