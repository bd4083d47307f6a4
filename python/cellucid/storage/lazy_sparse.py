"""``scipy.sparse``, imported when something first needs it.

Importing scipy.sparse costs a starting server about 0.1 s of one core (and pulls in
``scipy._lib``), while serving a backed file's first files only ever asks whether an array
is sparse, which it cannot be before scipy.sparse is imported. Modules that use scipy.sparse
on such paths import :data:`sp` from here in place of ``import scipy.sparse as sp``.
"""

from __future__ import annotations

import sys
from typing import Any


class _LazySparse:
    """Stands for the ``scipy.sparse`` module: any attribute imports it, except
    :meth:`issparse`, which answers ``False`` without importing it while nothing has."""

    def issparse(self, x: Any) -> bool:
        """``scipy.sparse.issparse(x)``; an object can only be a scipy sparse matrix or
        array once scipy.sparse has been imported by someone."""
        module = sys.modules.get("scipy.sparse")
        check = getattr(module, "issparse", None)  # None while another thread imports it
        if check is None:
            return module is not None and self.__getattr__("issparse")(x)
        return bool(check(x))

    def __getattr__(self, name: str) -> Any:
        import scipy.sparse

        return getattr(scipy.sparse, name)


#: use as ``sp.csr_matrix(...)``, ``sp.issparse(x)``
sp: Any = _LazySparse()
