"""Upstream cellucid's ``cellucid.prepare_data``: write export folders.

``prepare`` and ``generate_datasets_manifest`` are ours; the folder-name constants keep
upstream's values (readers require these fixed names).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._compat import missing
from .export.catalog import generate_datasets_manifest
from .export.naming import CONNECTIVITY_DIR, OBS_DIR, VAR_DIR
from .export.prepare import prepare

DEFAULT_OBS_DIRNAME = OBS_DIR
DEFAULT_VAR_DIRNAME = VAR_DIR
DEFAULT_CONNECTIVITY_DIRNAME = CONNECTIVITY_DIR
MANIFEST_FORMAT_VERSION = "compact_v1"
#: as upstream: ``./exports`` of the directory current at import (prepare's own default is
#: evaluated at call time)
DEFAULT_EXPORT_DIR = Path.cwd() / "exports"

__all__ = [
    "DEFAULT_CONNECTIVITY_DIRNAME",
    "DEFAULT_EXPORT_DIR",
    "DEFAULT_OBS_DIRNAME",
    "DEFAULT_VAR_DIRNAME",
    "MANIFEST_FORMAT_VERSION",
    "generate_datasets_manifest",
    "prepare",
]


def __getattr__(name: str) -> Any:
    missing(__name__, name, {})
