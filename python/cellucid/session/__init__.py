"""Session bundles (``.cellucid-session``, SPEC §5): read them and apply them to AnnData.

>>> from cellucid.session import CellucidSessionBundle, apply_cellucid_session_to_anndata
>>> bundle = CellucidSessionBundle("run1.cellucid-session")  # doctest: +SKIP
>>> adata = apply_cellucid_session_to_anndata(bundle, adata)  # doctest: +SKIP

Bundles this process created (e.g. uploaded by the viewer) can be opened with
``CellucidSessionBundle(path, temporary=True)``: the file is deleted by ``cleanup()`` or at
interpreter exit unless ``save(dest)`` keeps it.

Public names: those of :mod:`cellucid.session.bundle` (the reader, ``SessionChunkRef`` and the
codec helpers) and of :mod:`cellucid.session.apply` (``apply_cellucid_session_to_anndata``,
``ApplySummary``, ``column_key``, ``dataset_mismatch_reasons``, ``uns_key``).
"""

from __future__ import annotations

from . import apply as _apply
from . import bundle as _bundle
from . import comparisons as _comparisons
from .apply import *  # noqa: F403  (names listed in apply.__all__)
from .bundle import *  # noqa: F403  (names listed in bundle.__all__)
from .comparisons import SessionComparison, read_comparisons

__all__: list[str] = []
__all__ += _bundle.__all__
__all__ += _apply.__all__
__all__ += ["SessionComparison", "read_comparisons"]
_ = _comparisons
