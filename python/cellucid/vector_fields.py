"""Vector fields from a cell-to-cell transition matrix (SPEC §6.9).

A transition matrix ``T`` (cells x cells, e.g. CellRank or scVelo's velocity graph) moves
each cell towards the cells it transitions to; the *drift* of a cell in an embedding is
where it goes on average minus where it is. Stored as ``obsm["<prefix>_<basis>_<d>d"]``,
:func:`cellucid.prepare` exports it as a vector field the viewer draws as arrows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["add_transition_drift_to_obsm", "compute_transition_drift"]


def compute_transition_drift(
    T: Any, embedding: npt.ArrayLike, *, normalize_rows: bool = True
) -> npt.NDArray[np.float32]:
    """``(T · X) / rowsum(T) − X`` as float32 ``(n, d)`` (rows summing to 0 divide by 1).

    With ``normalize_rows=False``: ``T · X − X``. ``T`` may be dense or sparse (matrix or
    array); neither input is modified.

    Examples
    --------
    >>> T = np.array([[0.0, 1.0], [0.5, 0.5]])
    >>> X = np.array([[0.0, 0.0], [2.0, 2.0]])
    >>> compute_transition_drift(T, X).tolist()
    [[2.0, 2.0], [-1.0, -1.0]]
    """
    X = np.asarray(embedding, dtype=np.float64)
    if X.ndim != 2 or not 1 <= X.shape[1] <= 3:
        raise ValueError(f"embedding must be (n_cells, 1-3), not shape {X.shape}")
    n = X.shape[0]
    if getattr(T, "ndim", 2) != 2 or tuple(T.shape) != (n, n):
        raise ValueError(
            f"T must be a square (n_cells x n_cells) = ({n}, {n}) matrix matching the "
            f"embedding, not shape {tuple(getattr(T, 'shape', ()))}"
        )
    if sp.issparse(T):
        matrix = sp.csr_matrix(T, dtype=np.float64)
        moved = np.asarray(matrix @ X)
        sums = np.asarray(matrix.sum(axis=1)).ravel()
    else:
        dense = np.asarray(T, dtype=np.float64)
        moved = dense @ X
        sums = dense.sum(axis=1)
    if normalize_rows:
        sums = np.where(sums == 0, 1.0, sums)
        moved = moved / sums[:, None]
    return (moved - X).astype(np.float32)


def add_transition_drift_to_obsm(
    adata: AnnData,
    T: Any,
    *,
    basis: str = "umap",
    field_prefix: str = "T_fwd",
    dim: int | None = None,
    explicit_dim_suffix: bool = True,
    normalize_rows: bool = True,
    overwrite: bool = False,
) -> str:
    """Compute the drift of ``T`` in embedding ``basis`` and store it in ``adata.obsm``.

    The embedding is ``obsm["X_<basis>_<dim>d"]`` or ``obsm["X_<basis>"]`` with ``dim``
    columns; without ``dim``, the first of ``X_<basis>_3d``, ``_2d``, ``_1d``, else
    ``X_<basis>`` (1-3 columns). Writes ``obsm["<field_prefix>_<basis>_<dim>d"]`` (no
    ``_<dim>d`` with ``explicit_dim_suffix=False``) and returns that key.

    Examples
    --------
    >>> key = add_transition_drift_to_obsm(adata, T)     # doctest: +SKIP
    >>> key
    'T_fwd_umap_2d'
    """
    obsm = adata.obsm
    candidates = [f"X_{basis}_{d}d" for d in ((dim,) if dim else (3, 2, 1))] + [f"X_{basis}"]
    source = next((key for key in candidates if key in obsm), None)
    if source is None:
        raise KeyError(
            f"no embedding for basis {basis!r}: looked for {', '.join(candidates)}; "
            f"obsm has {', '.join(map(str, obsm.keys())) or 'nothing'}"
        )
    embedding = np.asarray(obsm[source])
    d = embedding.shape[1] if embedding.ndim == 2 else 0
    if dim is not None and d != dim:
        raise ValueError(f"obsm[{source!r}] has {d} columns, not dim={dim}")
    key = f"{field_prefix}_{basis}_{d}d" if explicit_dim_suffix else f"{field_prefix}_{basis}"
    if key in obsm and not overwrite:
        raise KeyError(f"obsm[{key!r}] exists already; pass overwrite=True to replace it")
    obsm[key] = compute_transition_drift(T, embedding, normalize_rows=normalize_rows)
    return key
