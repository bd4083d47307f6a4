"""Session bundles (``.cellucid-session``, SPEC §5): read them and apply them to AnnData.

>>> from cellucid.session import CellucidSessionBundle, apply_cellucid_session_to_anndata
>>> bundle = CellucidSessionBundle("run1.cellucid-session")  # doctest: +SKIP
>>> adata = apply_cellucid_session_to_anndata(bundle, adata)  # doctest: +SKIP

Bundles this process created (e.g. uploaded by the viewer) can be opened with
``CellucidSessionBundle(path, temporary=True)``: the file is deleted by ``cleanup()`` or at
interpreter exit unless ``save(dest)`` keeps it.

Public names: :class:`CellucidSessionBundle` (:mod:`cellucid.session.reader`), those of
:mod:`cellucid.session.bundle` (``SessionBundleReader``, ``SessionChunkRef`` and the codec
helpers), of :mod:`cellucid.session.writer` (``write_session_bundle``) and of
:mod:`cellucid.session.apply` (``apply_cellucid_session_to_anndata``,
``ApplySummary``, ``column_key``, ``dataset_mismatch_reasons``, ``uns_key``).
"""

from __future__ import annotations

from . import apply as _apply
from . import bundle as _bundle
from . import comparisons as _comparisons
from . import reader as _reader
from . import writer as _writer
from .apply import *  # noqa: F403  (names listed in apply.__all__)
from .bundle import *  # noqa: F403  (names listed in bundle.__all__)
from .comparisons import SessionComparison, read_comparisons
from .reader import *  # noqa: F403  (names listed in reader.__all__)
from .writer import *  # noqa: F403  (names listed in writer.__all__)

__all__: list[str] = []
__all__ += _bundle.__all__
__all__ += _apply.__all__
__all__ += _reader.__all__
__all__ += _writer.__all__
__all__ += ["SessionComparison", "read_comparisons"]
_ = _comparisons
