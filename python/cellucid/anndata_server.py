"""Upstream cellucid's ``cellucid.anndata_server``: serve an AnnData to the viewer.

``serve_anndata`` and ``AnnDataServer`` are ours (:mod:`cellucid.server.runner`, aiohttp);
upstream's ``http.server`` handler ``AnnDataRequestHandler`` has no equivalent.
"""

from __future__ import annotations

from typing import Any

from ._compat import missing
from .server.runner import DEFAULT_PORT, AnnDataServer, serve_anndata
from .sources.anndata import AnnDataAdapter

DEFAULT_HOST = "127.0.0.1"

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "AnnDataAdapter", "AnnDataServer", "serve_anndata"]


def __getattr__(name: str) -> Any:
    missing(
        __name__,
        name,
        {
            "AnnDataRequestHandler": "cellucid serves with aiohttp; use serve_anndata(...) or "
            "AnnDataServer(...).start()",
            "CORSMixin": "CORS is handled by the server itself",
        },
    )
