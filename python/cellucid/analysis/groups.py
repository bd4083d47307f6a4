"""Turning the ways people name a group of cells into cell indices.

A group is a boolean mask over the cells, integer cell indices, or ``(obs_key, category)`` /
``(obs_key, [categories])``. :func:`resolve_groups` checks a group and its reference together
and returns one byte per cell (``1`` group, ``2`` reference, ``0`` neither), the form the
kernels read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

GROUP, REFERENCE = 1, 2


@dataclass(frozen=True)
class Groups:
    """A resolved comparison: ``codes`` (uint8 per cell) and what the groups were."""

    codes: np.ndarray
    n_group: int
    n_reference: int
    group_label: str
    reference_label: str
    reference_is_rest: bool

    @property
    def n_union(self) -> int:
        return self.n_group + self.n_reference

    def cells(self, code: int) -> np.ndarray:
        """Sorted uint32 indices of the group (``GROUP``) or the reference (``REFERENCE``)."""
        return np.flatnonzero(self.codes == code).astype(np.uint32)


def _is_key_spec(spec: Any) -> bool:
    return (
        isinstance(spec, tuple)
        and len(spec) == 2
        and isinstance(spec[0], str)
        and (isinstance(spec[1], (str, int, float, bool)) or _is_list_of_labels(spec[1]))
    )


def _is_list_of_labels(value: Any) -> bool:
    return isinstance(value, (list, tuple, set, frozenset, pd.Index)) and all(
        isinstance(v, (str, int, float, bool, np.generic)) for v in value
    )


def _from_key(spec: tuple[str, Any], obs: pd.DataFrame | None, what: str) -> tuple[np.ndarray, str]:
    key, wanted = spec
    if obs is None:
        raise ValueError(
            f"{what} {spec!r} names an obs column, but this data has no cell annotations: "
            "pass a boolean mask or cell indices"
        )
    if key not in obs.columns:
        available = ", ".join(map(repr, list(obs.columns)[:30])) or "none"
        raise KeyError(f"{what}: obs has no column {key!r} (columns: {available})")
    column = obs[key]
    labels = [wanted] if not _is_list_of_labels(wanted) else list(wanted)
    if not labels:
        raise ValueError(f"{what} {spec!r} names no categories")
    if isinstance(column.dtype, pd.CategoricalDtype):
        known = list(column.cat.categories)
    else:
        known = list(pd.unique(column.dropna()))
    as_text = {str(k): k for k in known}
    chosen = []
    for label in labels:
        if label in known:
            chosen.append(label)
        elif str(label) in as_text:
            chosen.append(as_text[str(label)])
        else:
            shown = ", ".join(map(repr, known[:30]))
            more = f" and {len(known) - 30} more" if len(known) > 30 else ""
            raise ValueError(
                f"{what}: {label!r} is not a category of obs[{key!r}] (categories: {shown}{more})"
            )
    mask = column.isin(chosen).to_numpy(dtype=bool)
    text = ", ".join(map(str, chosen))
    return mask, f"{key}: {text}"


def _from_cells(spec: Any, n_cells: int, what: str) -> tuple[np.ndarray, str]:
    if isinstance(spec, (pd.Series, pd.Index)):
        spec = spec.to_numpy()
    arr = np.asarray(spec)
    if arr.dtype == bool:
        if arr.shape != (n_cells,):
            raise ValueError(
                f"{what}: a boolean mask must have one value per cell ({n_cells}); got shape "
                f"{arr.shape}"
            )
        return arr, f"{int(arr.sum())} cells"
    if arr.dtype == object and arr.size and all(isinstance(v, (bool, np.bool_)) for v in arr.flat):
        return _from_cells(arr.astype(bool), n_cells, what)
    if arr.ndim != 1 or not (arr.size == 0 or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(
            f"{what} must be a boolean mask, integer cell indices, or (obs_key, category); "
            f"got {type(spec).__name__} of dtype {arr.dtype}"
        )
    idx = arr.astype(np.int64, copy=False)
    if idx.size and (idx.min() < 0 or idx.max() >= n_cells):
        bad = int(idx[(idx < 0) | (idx >= n_cells)][0])
        raise IndexError(f"{what}: cell index {bad} is out of range [0, {n_cells})")
    mask = np.zeros(n_cells, dtype=bool)
    mask[idx] = True
    return mask, f"{int(mask.sum())} cells"


def _mask(
    spec: Any, n_cells: int, obs: Callable[[], pd.DataFrame | None], what: str
) -> tuple[np.ndarray, str]:
    if _is_key_spec(spec):
        return _from_key(spec, obs(), what)
    if isinstance(spec, str):
        raise TypeError(
            f"{what} {spec!r}: name a category as (obs_key, {spec!r}), or pass a mask or "
            "cell indices"
        )
    if isinstance(spec, Sequence) and not isinstance(spec, (list, tuple)):
        spec = list(spec)
    return _from_cells(spec, n_cells, what)


def resolve_groups(
    group: Any,
    reference: Any,
    n_cells: int,
    obs: Callable[[], pd.DataFrame | None] | pd.DataFrame | None = None,
    *,
    min_cells: int = 2,
) -> Groups:
    """Check ``group`` and ``reference`` (``"rest"`` or a group) and encode them per cell.

    Raises
    ------
    ValueError
        Empty or too small groups, overlapping groups, unknown categories.
    KeyError
        An unknown obs column.
    TypeError, IndexError
        A group of the wrong kind or with out-of-range cell indices.
    """
    get_obs: Callable[[], pd.DataFrame | None] = obs if callable(obs) else (lambda: obs)
    g_mask, g_label = _mask(group, n_cells, get_obs, "group")
    n_group = int(g_mask.sum())
    if n_group == 0:
        raise ValueError("group is empty: it selects no cells")
    codes = np.zeros(n_cells, dtype=np.uint8)
    if isinstance(reference, str) and reference == "rest":
        rest = ~g_mask
        codes[g_mask] = GROUP
        codes[rest] = REFERENCE
        n_ref = n_cells - n_group
        r_label, is_rest = "rest", True
        if n_ref == 0:
            raise ValueError('group holds every cell, so reference="rest" is empty')
    else:
        r_mask, r_label = _mask(reference, n_cells, get_obs, "reference")
        n_ref = int(r_mask.sum())
        if n_ref == 0:
            raise ValueError("reference is empty: it selects no cells")
        both = int(np.count_nonzero(g_mask & r_mask))
        if both:
            raise ValueError(
                f"group and reference share {both} cells; a cell can be in one of them only "
                '(use reference="rest" for every cell outside the group)'
            )
        codes[g_mask] = GROUP
        codes[r_mask] = REFERENCE
        is_rest = False
    for name, n in (("group", n_group), ("reference", n_ref)):
        if n < min_cells:
            raise ValueError(
                f"{name} has {n} cell{'s' if n != 1 else ''}; at least {min_cells} are needed "
                "for a variance or a rank test"
            )
    return Groups(codes, n_group, n_ref, g_label, r_label, is_rest)
