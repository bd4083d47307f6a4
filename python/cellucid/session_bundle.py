"""Upstream cellucid's ``cellucid.session_bundle``: read ``.cellucid-session`` files.

``CellucidSessionBundle`` and ``SessionChunkRef`` are ours (:mod:`cellucid.session`), with
upstream's constants.
"""

from __future__ import annotations

from .session import (
    MAGIC,
    MAX_CHUNK_BYTES,
    MAX_MANIFEST_BYTES,
    CellucidSessionBundle,
    SessionChunkRef,
)

SESSION_BUNDLE_MAGIC = MAGIC
DEFAULT_MAX_UNCOMPRESSED_CHUNK_BYTES = MAX_CHUNK_BYTES
U32_BYTES = 4

__all__ = [
    "DEFAULT_MAX_UNCOMPRESSED_CHUNK_BYTES",
    "MAX_MANIFEST_BYTES",
    "SESSION_BUNDLE_MAGIC",
    "U32_BYTES",
    "CellucidSessionBundle",
    "SessionChunkRef",
]
