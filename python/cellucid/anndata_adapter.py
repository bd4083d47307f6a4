"""Upstream cellucid's ``cellucid.anndata_adapter``: an AnnData seen as export files.

``AnnDataAdapter`` is ours (:class:`cellucid.sources.anndata.AnnDataAdapter`).
"""

from __future__ import annotations

from .sources.anndata import AnnDataAdapter

__all__ = ["AnnDataAdapter"]
