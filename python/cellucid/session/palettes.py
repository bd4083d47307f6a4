"""Category colours from scanpy: ``adata.uns["<key>_colors"]`` as a ``cellucid/palettes``
session chunk (PROTOCOL.md "Session chunks").

Scanpy keeps one colour per category of ``adata.obs[key].cat.categories``, in that order. The
chunk names the categories with their colours::

    {"leiden": {"categories": ["0", "1", ...], "colors": ["#1f77b4", "#ff7f0e", ...]}}

so the viewer colours by name and never mixes them up. A palette that does not fit (wrong
length, a value that is not a ``#rrggbb`` colour) is left out with a warning naming the key
and the fix: the viewer then uses its default colours for that field, never wrong ones.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PALETTES", "check_palette", "hex_color", "scanpy_palettes"]

PALETTES = "cellucid/palettes"
_HEX = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")


def _normalise(color: str) -> str:
    text = color.strip().lower()
    if len(text) == 4:  # #rgb
        return "#" + "".join(c * 2 for c in text[1:])
    return text[:7]  # #rrggbb, alpha of #rrggbbaa dropped


def hex_color(value: Any) -> str | None:
    """``value`` as a lowercase ``#rrggbb`` (from ``#rgb``, ``#rrggbb`` or ``#rrggbbaa``, alpha
    dropped), or ``None`` when it is not such a string.

    >>> hex_color("#ABC"), hex_color("#12345678"), hex_color("red")
    ('#aabbcc', '#123456', None)
    """
    if not isinstance(value, str) or not _HEX.match(value.strip()):
        return None
    return _normalise(value)


def check_palette(key: str, colors: Any, categories: list[str]) -> list[str]:
    """The colours of one field as ``#rrggbb`` strings, aligned with ``categories``.

    Parameters
    ----------
    key
        The obs column (named in errors).
    colors
        ``adata.uns[f"{key}_colors"]``: a list or array of hex colour strings.
    categories
        The column's categories, as text, in order.

    Returns
    -------
    list[str]
        One lowercase ``#rrggbb`` per category.

    Raises
    ------
    ValueError
        Wrong length or a value that is not ``#rgb``/``#rrggbb``/``#rrggbbaa``; the message
        names ``adata.uns[...]`` and how to fix it.
    """
    where = f"adata.uns[{key + '_colors'!r}]"
    fix = (
        f"set one '#rrggbb' colour per category of adata.obs[{key!r}].cat.categories, or "
        f"delete it (scanpy makes a new one when it plots {key!r})"
    )
    if isinstance(colors, (str, bytes)) or not isinstance(colors, (list, tuple, np.ndarray)):
        raise ValueError(f"{where} is a {type(colors).__name__}, not a list of colours; {fix}")
    values = list(np.asarray(colors, dtype=object).reshape(-1))
    if len(values) != len(categories):
        raise ValueError(
            f"{where} has {len(values)} colours for {len(categories)} categories; {fix}"
        )
    for i, value in enumerate(values):
        if not isinstance(value, str) or not _HEX.match(value.strip()):
            raise ValueError(f"{where}[{i}] = {value!r} is not a '#rrggbb' colour; {fix}")
    return [_normalise(v) for v in values]


def scanpy_palettes(
    uns: Mapping[str, Any], obs: pd.DataFrame, keys: Iterable[str] | None = None
) -> dict[str, dict[str, list[str]]]:
    """The ``cellucid/palettes`` chunk of an AnnData's scanpy colours.

    Parameters
    ----------
    uns
        ``adata.uns``.
    obs
        ``adata.obs``; only its categorical columns have scanpy colours.
    keys
        The obs columns to look at (those exported); default all.

    Returns
    -------
    dict
        ``{key: {"categories": [...], "colors": ["#rrggbb", ...]}}`` for each categorical column
        with a valid ``uns[f"{key}_colors"]``; empty when there is none. Invalid palettes are
        left out with a ``UserWarning``.
    """
    import pandas as pd  # only an AnnData has palettes; the server imports this module early

    out: dict[str, dict[str, list[str]]] = {}
    wanted = list(obs.columns) if keys is None else [k for k in keys if k in obs.columns]
    for key in wanted:
        name = f"{key}_colors"
        if name not in uns or not isinstance(obs[key].dtype, pd.CategoricalDtype):
            continue
        categories = [str(c) for c in obs[key].dtype.categories]
        try:
            colors = check_palette(str(key), uns[name], categories)
        except ValueError as exc:
            warnings.warn(f"{exc}. The viewer uses its default colours for {key!r}.", stacklevel=2)
            continue
        out[str(key)] = {"categories": categories, "colors": colors}
    return out
