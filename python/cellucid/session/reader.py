"""The public bundle class: :class:`CellucidSessionBundle` (SPEC §5.4).

It is :class:`~cellucid.session.bundle.SessionBundleReader` (the container and its chunks)
plus ``apply_to_anndata``. Living here, above both :mod:`cellucid.session.bundle` and
:mod:`cellucid.session.apply`, it lets those two depend one way only (apply on bundle).

    >>> from cellucid.session import CellucidSessionBundle
    >>> bundle = CellucidSessionBundle("run1.cellucid-session")  # doctest: +SKIP
    >>> adata = bundle.apply_to_anndata(adata)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .apply import ApplySummary, apply_cellucid_session_to_anndata
from .bundle import SessionBundleReader

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["CellucidSessionBundle"]


class CellucidSessionBundle(SessionBundleReader):
    """A ``.cellucid-session`` bundle on disk (SPEC §5.4); see
    :class:`~cellucid.session.bundle.SessionBundleReader` for reading it.

    Raises:
        FileNotFoundError: ``path`` is not a file.
    """

    def apply_to_anndata(
        self, adata: AnnData, *, inplace: bool = False, **kwargs: Any
    ) -> AnnData | tuple[AnnData, ApplySummary]:
        """Shorthand for :func:`cellucid.session.apply_cellucid_session_to_anndata`.

        Parameters
        ----------
        adata
            The AnnData the session was made from.
        inplace
            Change ``adata`` itself rather than a copy.
        **kwargs
            The other keyword arguments of
            :func:`~cellucid.session.apply_cellucid_session_to_anndata`.

        Returns
        -------
        AnnData or tuple[AnnData, ApplySummary]
            As :func:`~cellucid.session.apply_cellucid_session_to_anndata`.
        """
        return apply_cellucid_session_to_anndata(self, adata, inplace=inplace, **kwargs)
