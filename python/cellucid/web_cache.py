"""Upstream cellucid's ``cellucid.web_cache``: no-ops here (SPEC 6.1).

Upstream downloaded the hosted web app into a cache; our viewer is bundled in the package
and works offline, so there is nothing to cache or clear.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["clear_web_cache", "get_web_cache_dir"]


def get_web_cache_dir() -> Path:
    """Where upstream cached the web app; here the bundled viewer's folder (read-only)."""
    from .server.app import default_ui_dir

    return default_ui_dir()


def clear_web_cache(*, cache_dir: Path | None = None) -> Path:
    """Nothing to clear: returns the folder of the bundled viewer, unchanged."""
    return Path(cache_dir) if cache_dir is not None else get_web_cache_dir()
