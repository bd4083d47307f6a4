"""Comparisons (compare groups) in a session bundle: the chunks of PROTOCOL.md.

``analysis/comparisons`` (json) lists each comparison the viewer ran with its result table;
``analysis/comparisons/cells/<id>/group`` and ``.../reference`` hold the compared cells as
delta-varint cell lists. :func:`read_comparisons` decodes them; :func:`comparisons_uns`
makes the ``adata.uns["cellucid"]["comparisons"]`` entry that
:func:`~cellucid.session.apply_cellucid_session_to_anndata` stores (only types that
``write_h5ad`` and ``write_zarr`` accept: strings, numbers, arrays, DataFrames).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..analysis.table import COLUMNS as TABLE_COLUMNS
from ..analysis.table import column_dtype
from .bundle import SessionBundleReader, decode_cell_list

CHUNK = "analysis/comparisons"


@dataclass
class SessionComparison:
    """One comparison of a session."""

    id: str
    name: str
    created_at: str
    method: str
    tie_correct: bool
    statistic: str
    group_label: str
    reference_label: str
    reference_is_rest: bool
    group_cells: np.ndarray | None  # None when the bundle has no cell list
    reference_cells: np.ndarray | None
    table: pd.DataFrame
    raw: dict[str, Any]


def _table(result: Any) -> pd.DataFrame:
    if not isinstance(result, dict):
        return pd.DataFrame({c: [] for c in TABLE_COLUMNS})
    names = result.get("names")
    n = len(names) if isinstance(names, list) else 0
    data: dict[str, Any] = {"names": pd.array([str(x) for x in names or []], dtype=object)}
    for col in TABLE_COLUMNS[1:]:
        values = result.get(col)
        if not isinstance(values, list) or len(values) != n:
            values = [None] * n
        data[col] = np.array([np.nan if v is None else v for v in values], dtype=column_dtype(col))
    return pd.DataFrame(data, columns=TABLE_COLUMNS)


def _cells(bundle: SessionBundleReader, spec: Any, n_obs: int | None) -> np.ndarray | None:
    chunk = spec.get("cellsChunk") if isinstance(spec, dict) else None
    if not isinstance(chunk, str) or not bundle.has_chunk(chunk):
        return None
    cells = decode_cell_list(bundle.decode_chunk(chunk), n_obs=n_obs)
    return np.asarray(cells, dtype=np.uint32)


def read_comparisons(
    bundle: SessionBundleReader, n_obs: int | None = None
) -> list[SessionComparison]:
    """The comparisons of ``bundle`` (empty without an ``analysis/comparisons`` chunk).

    ``n_obs`` bounds the cell indices (SPEC 5.3); entries that are not objects are skipped.
    """
    if not bundle.has_chunk(CHUNK):
        return []
    doc = bundle.decode_chunk(CHUNK)
    items = doc.get("comparisons") if isinstance(doc, dict) else None
    out = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            continue
        group = item.get("group")
        reference = item.get("reference", "rest")
        rest = reference == "rest"
        out.append(
            SessionComparison(
                id=item["id"],
                name=str(item.get("name") or item["id"]),
                created_at=str(item.get("createdAt") or ""),
                method=str(item.get("method") or ""),
                tie_correct=bool(item.get("tieCorrect", False)),
                statistic=str(item.get("statistic") or ""),
                group_label=str(group.get("label", "")) if isinstance(group, dict) else "",
                reference_label="rest"
                if rest
                else str(reference.get("label", ""))
                if isinstance(reference, dict)
                else "",
                reference_is_rest=rest,
                group_cells=_cells(bundle, group, n_obs),
                reference_cells=None if rest else _cells(bundle, reference, n_obs),
                table=_table(item.get("result")),
                raw=item,
            )
        )
    return out


def comparisons_uns(
    comparisons: list[SessionComparison], *, with_cells: bool
) -> dict[str, dict[str, Any]]:
    """``uns["cellucid"]["comparisons"]``: one entry per comparison, keyed by its id (the
    caller makes the keys safe for ``write_h5ad``).

    Each holds ``name``, ``created_at``, ``method``, ``tie_correct``, ``statistic``,
    ``group`` and ``reference`` (labels; ``"rest"``), ``table`` (the ranked genes, the
    columns of ``rank_genes_groups_df``) and, when ``with_cells``, ``group_cells`` and
    ``reference_cells`` (uint32 row positions; empty for the rest), plus ``comparison``,
    the chunk's own JSON text.
    """
    out: dict[str, dict[str, Any]] = {}
    for c in comparisons:
        entry: dict[str, Any] = {
            "name": c.name,
            "created_at": c.created_at,
            "method": c.method,
            "tie_correct": c.tie_correct,
            "statistic": c.statistic,
            "group": c.group_label,
            "reference": c.reference_label,
            "table": c.table,
            "comparison": json.dumps({k: v for k, v in c.raw.items() if k != "result"}),
        }
        if with_cells:
            empty = np.zeros(0, dtype=np.uint32)
            entry["group_cells"] = c.group_cells if c.group_cells is not None else empty
            entry["reference_cells"] = c.reference_cells if c.reference_cells is not None else empty
        out[c.id] = entry
    return out
