"""The local data server and the viewer ↔ Python event bridge (SPEC §3, §4).

Also upstream cellucid's ``cellucid.server`` module: ``serve``, ``CellucidServer``,
``DEFAULT_PORT``, ``DEFAULT_HOST`` and ``ensure_port_available`` resolve here (lazily, so
importing a submodule stays cheap). Upstream's ``http.server`` request handlers have no
equivalent: this server is aiohttp.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "CellucidServer", "ensure_port_available", "serve"]

DEFAULT_HOST = "127.0.0.1"


def __getattr__(name: str) -> Any:
    if name in ("serve", "CellucidServer", "DEFAULT_PORT", "ensure_port_available"):
        return getattr(importlib.import_module(".runner", __name__), name)
    from .._compat import missing

    missing(
        __name__,
        name,
        {
            "CORSRequestHandler": "cellucid serves with aiohttp; use cellucid.serve(data_dir)",
            "CORSMixin": "CORS is handled by the server itself",
            "print_server_banner": "the server prints its own banner (quiet=False)",
        },
    )
