"""cellucid: explore single-cell data in a fast WebGL viewer.

Names resolve lazily so that ``import cellucid`` and the command line start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

_LAZY: dict[str, str] = {
    "prepare": "cellucid.export.prepare",
    "generate_datasets_manifest": "cellucid.export.catalog",
    "validate_export": "cellucid.export.validate",
    "serve": "cellucid.server.runner",
    "serve_anndata": "cellucid.server.runner",
    "CellucidServer": "cellucid.server.runner",
    "AnnDataServer": "cellucid.server.runner",
    "AnnDataAdapter": "cellucid.sources.anndata",
    "CellucidWidget": "cellucid.widget",
    "CellucidViewer": "cellucid.viewer",
    "AnnDataViewer": "cellucid.viewer",
    "show": "cellucid.viewer",
    "show_anndata": "cellucid.viewer",
    "CellucidSessionBundle": "cellucid.session",
    "apply_cellucid_session_to_anndata": "cellucid.session",
    "compute_transition_drift": "cellucid.vector_fields",
    "add_transition_drift_to_obsm": "cellucid.vector_fields",
    "rank_genes": "cellucid.analysis",
}

__all__ = [
    "AnnDataAdapter",
    "AnnDataServer",
    "AnnDataViewer",
    "CellucidServer",
    "CellucidSessionBundle",
    "CellucidViewer",
    "CellucidWidget",
    "__version__",
    "add_transition_drift_to_obsm",
    "apply_cellucid_session_to_anndata",
    "compute_transition_drift",
    "generate_datasets_manifest",
    "prepare",
    "rank_genes",
    "serve",
    "serve_anndata",
    "show",
    "show_anndata",
    "validate_export",
]

if TYPE_CHECKING:
    from .analysis import rank_genes
    from .export.catalog import generate_datasets_manifest
    from .export.prepare import prepare
    from .export.validate import validate_export
    from .server.runner import AnnDataServer, CellucidServer, serve, serve_anndata
    from .session import CellucidSessionBundle, apply_cellucid_session_to_anndata
    from .sources.anndata import AnnDataAdapter
    from .vector_fields import add_transition_drift_to_obsm, compute_transition_drift
    from .viewer import AnnDataViewer, CellucidViewer, show, show_anndata
    from .widget import CellucidWidget


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cellucid' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
