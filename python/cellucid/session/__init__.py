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

import importlib
from typing import Any

#: the submodules whose public names (their ``__all__``) this package offers, imported when
#: one of their names is first asked for: a server imports :mod:`cellucid.session.bundle`
#: before it answers its first request, and :mod:`.apply` needs pandas (0.2 s of a start)
_SUBMODULES = ("apply", "bundle", "reader", "writer")
_COMPARISONS = ("SessionComparison", "read_comparisons")


def _module(name: str) -> Any:
    return importlib.import_module(f"{__name__}.{name}")


def __getattr__(name: str) -> Any:
    if name in (*_SUBMODULES, "comparisons", "codecs", "defaults", "numeric_fields", "palettes"):
        return _module(name)
    if name == "__all__":
        names = [n for sub in _SUBMODULES for n in _module(sub).__all__] + list(_COMPARISONS)
        globals()["__all__"] = names
        return names
    for sub in _SUBMODULES:
        module = _module(sub)
        if name in module.__all__:
            value = getattr(module, name)
            globals()[name] = value
            return value
    if name in _COMPARISONS:
        return getattr(_module("comparisons"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__getattr__("__all__")))
