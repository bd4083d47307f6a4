"""Statistics on the data a viewer shows: compare groups of cells (``rank_genes``).

Names resolve lazily: the table layout (:mod:`.table`) is used by session bundles, which
should not pay for importing the numba kernels.
"""

from __future__ import annotations

import importlib
from typing import Any

from .table import COLUMNS

__all__ = ["COLUMNS", "Comparison", "compare_expression", "rank_genes"]


def __getattr__(name: str) -> Any:
    if name in ("Comparison", "compare_expression", "rank_genes"):
        return getattr(importlib.import_module(".ranking", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
