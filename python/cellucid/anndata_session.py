"""Upstream cellucid's ``cellucid.anndata_session``: write a session into an AnnData."""

from __future__ import annotations

from typing import Literal

from .session import ApplySummary, CellucidSessionBundle, apply_cellucid_session_to_anndata
from .session_codecs import decode_delta_uvarint, decode_user_defined_codes

ColumnConflictPolicy = Literal["error", "overwrite", "suffix"]
DatasetMismatchPolicy = Literal["error", "warn_skip", "skip"]

__all__ = [
    "ApplySummary",
    "CellucidSessionBundle",
    "ColumnConflictPolicy",
    "DatasetMismatchPolicy",
    "apply_cellucid_session_to_anndata",
    "decode_delta_uvarint",
    "decode_user_defined_codes",
]
