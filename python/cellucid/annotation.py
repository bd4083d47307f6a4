"""Highlight groups and user-defined fields between Python and a viewer (PROTOCOL.md, 0.2.0).

* **groups**: the viewer sends a ``groups`` event after every change of its highlight groups
  (each with ``id``, ``name``, ``color``, ``visible`` and ``cells`` as a binary cell set);
  :func:`groups_by_name` turns it into the ``{name: uint32 cells}`` of ``viewer.groups``, and
  :func:`fill_group_cells` puts the cells of a ``groups`` event relayed over the widget's comm
  (bytes in one buffer, ``group_bytes`` their lengths) back into the event.
* **to_obs**: :func:`categorical_from_groups` and :func:`categorical_from_session` build the
  pandas column of an annotation (categories: the group names, then ``"unassigned"``).
* **add_field**: :func:`field_command` validates values sent from Python and encodes them for the
  ``addField`` command: category codes as ``uint8``/``uint16`` (a missing value is the largest
  code) or ``float32`` values, always as binary, never as JSON numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

if TYPE_CHECKING:
    from .session import CellucidSessionBundle

__all__ = [
    "MAX_NAME_LENGTH",
    "UNASSIGNED",
    "categorical_from_groups",
    "categorical_from_session",
    "check_name",
    "field_command",
    "fill_group_cells",
    "groups_by_name",
]

UNASSIGNED = "unassigned"
"""The category of cells in no group (the viewer's Annotate uses the same)."""
MAX_NAME_LENGTH = 256
"""The longest group or field name the viewer accepts."""
_MISSING = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}


def check_name(name: object, what: str) -> str:
    """``name`` if it is a usable group or field name; ``ValueError`` otherwise.

    Examples
    --------
    >>> check_name("T cells", "a group name")
    'T cells'
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{what} must be a non-empty string, not {name!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(
            f"{what} has {len(name)} characters; at most {MAX_NAME_LENGTH} are allowed"
        )
    return name


# ------------------------------------------------------------------------------ groups
def groups_by_name(payload: Mapping[str, Any]) -> dict[str, npt.NDArray[np.uint32]]:
    """``{name: cells}`` of a recorded ``groups`` event, in the viewer's list order.

    The cells are the event's read-only ``uint32`` arrays, ascending. Names are unique in the viewer; if
    two groups still shared one, the later gets `` (2)``, `` (3)``, ...

    Examples
    --------
    >>> cells = np.array([1, 4], dtype=np.uint32)
    >>> groups_by_name({"groups": [{"id": "g1", "name": "T", "color": "#ff0000",
    ...                             "visible": True, "cells": cells}]})
    {'T': array([1, 4], dtype=uint32)}
    """
    out: dict[str, npt.NDArray[np.uint32]] = {}
    for group in payload.get("groups", []):
        name = str(group["name"])
        k = 2
        while name in out:
            name = f"{group['name']} ({k})"
            k += 1
        cells = group["cells"]
        if cells.size > 1 and np.any(cells[1:] < cells[:-1]):  # the viewer sends them sorted
            cells = np.sort(cells)
            cells.flags.writeable = False
        out[name] = cells
    return out


def fill_group_cells(event: dict[str, Any], lengths: object, data: bytes) -> dict[str, Any]:
    """A ``groups`` event relayed over the comm with its cell bytes put back.

    The front end sends every group's cell set with ``data: null`` and the bytes one after the
    other in the message's buffer; ``lengths`` (the message's ``group_bytes``) says how many
    bytes each group has.

    Raises
    ------
    ValueError
        When the lengths do not match the groups or the bytes.

    Examples
    --------
    >>> event = {"type": "groups", "groups": [
    ...     {"id": "g1", "name": "a", "color": "#000000", "visible": True,
    ...      "cells": {"encoding": "u32-base64", "count": 1, "data": None}}]}
    >>> fill_group_cells(event, [4], b"\\x07\\x00\\x00\\x00")["groups"][0]["cells"]["data"]
    b'\\x07\\x00\\x00\\x00'
    """
    groups = event.get("groups")
    if (
        not isinstance(groups, list)
        or not isinstance(lengths, list)
        or len(lengths) != len(groups)
        or not all(isinstance(n, int) and n >= 0 for n in lengths)
        or sum(lengths) != len(data)
    ):
        raise ValueError("group_bytes does not match the groups of the event and its bytes")
    filled = []
    offset = 0
    for group, length in zip(groups, lengths, strict=True):
        cells = group.get("cells") if isinstance(group, dict) else None
        if not isinstance(cells, dict) or cells.get("data") is not None:
            raise ValueError("a group of a relayed groups event has no binary cell set")
        filled.append({**group, "cells": {**cells, "data": data[offset : offset + length]}})
        offset += length
    return {**event, "groups": filled}


def _series(
    codes: npt.NDArray[Any], categories: Sequence[str], index: pd.Index, name: str
) -> pd.Series:
    from .session.apply import _category_values

    values = _category_values(np.asarray(codes), list(categories))
    return pd.Series(values, index=index, name=name)


def categorical_from_groups(
    groups: Mapping[str, npt.NDArray[np.uint32]], n_cells: int, index: pd.Index, name: str
) -> pd.Series:
    """The viewer's groups as one categorical column, like its Annotate action.

    Categories are the group names in order, then ``"unassigned"`` (cells in no group); a cell
    in several groups gets the first of them.

    Examples
    --------
    >>> groups = {"T": np.array([0, 2], np.uint32), "B": np.array([2, 3], np.uint32)}
    >>> categorical_from_groups(groups, 5, pd.RangeIndex(5), "cells").tolist()
    ['T', 'unassigned', 'T', 'B', 'unassigned']
    """
    names = list(groups)
    if UNASSIGNED in names:
        raise ValueError(
            f'a group is called "{UNASSIGNED}", the category of cells in no group; rename it'
        )
    codes = np.full(n_cells, len(names), dtype=np.int64)
    for code in range(len(names) - 1, -1, -1):
        codes[np.asarray(groups[names[code]], dtype=np.int64)] = code
    return _series(codes, [*names, UNASSIGNED], index, name)


def categorical_from_session(
    bundle: CellucidSessionBundle, field: str, n_cells: int, index: pd.Index
) -> pd.Series:
    """The user-defined categorical field ``field`` (its name in the viewer) of a session.

    Raises
    ------
    KeyError
        When the session has no such field; the message lists the ones it has.
    ValueError
        When its codes do not have one entry per cell.
    """
    from .session.apply import CODES_PREFIX, _json_chunk
    from .session.bundle import decode_user_codes

    overlays = _json_chunk(bundle, "core/field-overlays")
    entries = overlays.get("userDefinedFields", []) if isinstance(overlays, dict) else []
    found = [
        e
        for e in entries
        if isinstance(e, dict) and e.get("key") == field and not e.get("isDeleted")
    ]
    if not found or not bundle.has_chunk(CODES_PREFIX + str(found[-1].get("id"))):
        known = [str(e.get("key")) for e in entries if isinstance(e, dict)]
        shown = ", ".join(map(repr, known)) or "none"
        raise KeyError(
            f"the viewer has no categorical user-defined field {field!r} (it has: {shown}); "
            "annotate the groups in the viewer first, or call to_obs() for the current groups"
        )
    entry = found[-1]
    codes = decode_user_codes(bundle.decode_chunk(CODES_PREFIX + str(entry["id"])))
    if codes.shape[0] != n_cells:
        raise ValueError(f"field {field!r} has {codes.shape[0]} codes for {n_cells} cells")
    return _series(codes, [str(c) for c in entry.get("categories") or []], index, field)


# ------------------------------------------------------------------------------ add_field
def _aligned(values: object, n_cells: int, obs_names: Callable[[], pd.Index]) -> Any:
    """``values`` in cell order: a Series indexed by obs names is put in their order."""
    if isinstance(values, pd.Series) and not isinstance(values.index, pd.RangeIndex):
        names = obs_names()
        if not values.index.equals(names):
            if len(values.index) != len(names) or not values.index.sort_values().equals(
                names.sort_values()
            ):
                raise ValueError(
                    "values is a Series whose index is not the dataset's obs_names; pass "
                    "values.to_numpy() to use the values in cell order, or reindex it to "
                    "adata.obs_names"
                )
            values = values.reindex(names)
    return values


def _as_categorical(values: Any) -> pd.Categorical | None:
    """A Categorical for categorical, string, object or boolean values; None for numbers."""
    if isinstance(values, pd.Series):
        values = values.array
    if isinstance(values, pd.Categorical):
        return values
    if isinstance(values, pd.api.extensions.ExtensionArray):
        numeric = pd.api.types.is_numeric_dtype(values.dtype)
        return (
            None
            if numeric and not pd.api.types.is_bool_dtype(values.dtype)
            else pd.Categorical(values)
        )
    array = np.asarray(values)
    return pd.Categorical(array) if array.dtype == bool or array.dtype.kind in "OUS" else None


def _as_numbers(values: Any) -> npt.NDArray[Any]:
    if isinstance(values, pd.Series):
        values = values.array
    if isinstance(values, pd.api.extensions.ExtensionArray):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(values)


def field_command(
    name: str, values: object, n_cells: int, obs_names: Callable[[], pd.Index]
) -> tuple[dict[str, Any], npt.NDArray[Any]]:
    """The ``addField`` command for ``values`` and its binary values.

    Parameters
    ----------
    name
        The field's name in the viewer.
    values
        One value per cell, in cell order: a pandas Categorical (or a Series of one; a Series
        indexed by obs names is put in their order), strings or booleans (categorical), or
        numbers (continuous; NaN is missing).
    n_cells
        Cells of the dataset.
    obs_names
        Returns the dataset's obs names (called only for a Series with a named index).

    Returns
    -------
    tuple
        ``(command, values)``: ``{"type": "addField", "name", "kind", "categories"}`` and the
        ``uint8``/``uint16`` codes or ``float32`` values.

    Raises
    ------
    ValueError, TypeError
        For a bad name, a wrong length, or values that are neither categorical nor numeric.

    Examples
    --------
    >>> command, codes = field_command("kind", ["a", "b", "a"], 3, lambda: pd.RangeIndex(3))
    >>> command, codes
    ({'type': 'addField', 'name': 'kind', 'kind': 'category', 'categories': ['a', 'b']}, \
array([0, 1, 0], dtype=uint8))
    """
    check_name(name, "the field name")
    values = _aligned(values, n_cells, obs_names)
    length = len(values) if hasattr(values, "__len__") else None
    if length != n_cells:
        raise ValueError(
            f"values has {length if length is not None else 'no'} entries, but the dataset has "
            f"{n_cells} cells: pass one value per cell, in the order of obs_names"
        )
    categorical = _as_categorical(values)
    if categorical is not None:
        categories = [str(c) for c in categorical.categories]
        if not categories:
            raise ValueError("values has no category (every value is missing)")
        if len(set(categories)) != len(categories):
            raise ValueError("two categories have the same text; make the category names differ")
        if len(categories) > 65534:
            raise ValueError(f"{len(categories)} categories are too many (at most 65,534)")
        dtype = np.dtype(np.uint8) if len(categories) < 255 else np.dtype(np.uint16)
        codes = np.asarray(categorical.codes)
        out = np.where(codes < 0, _MISSING[dtype], codes).astype(dtype)
        command = {"type": "addField", "name": name, "kind": "category", "categories": categories}
        return command, out
    array = _as_numbers(values)
    if array.ndim != 1 or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise TypeError(
            f"values must be categorical (a pandas Categorical, strings or booleans) or numeric, "
            f"not {array.dtype} with shape {array.shape}"
        )
    command = {"type": "addField", "name": name, "kind": "continuous", "categories": None}
    return command, array.astype(np.float32)
