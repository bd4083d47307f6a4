"""Apply a ``.cellucid-session`` bundle to an AnnData object (SPEC §5.5).

Highlight groups become boolean ``obs`` columns and user-defined category fields become
``obs`` (or ``var``) columns; the raw session documents are kept in
``adata.uns["cellucid"]["session"]`` as JSON *strings*, so ``write_h5ad`` and ``write_zarr``
always succeed.

Example::

    >>> import cellucid
    >>> adata2 = cellucid.apply_cellucid_session_to_anndata("run1.cellucid-session", adata)  # doctest: +SKIP
    >>> adata2.obs["cellucid_highlight__group_1"].sum()  # doctest: +SKIP
    np.int64(42)

Keys of ``uns`` that come from ids (chunk ids such as ``highlights/meta``, highlight group ids)
are stored with every character outside ``[0-9A-Za-z_-]`` percent-escaped (``highlights%2Fmeta``,
``urllib.parse.unquote`` reverses it): h5py would turn a ``/`` into nested groups, zarr rejects
it, and both mishandle keys such as ``"."``.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from .bundle import (
    SessionBundleReader,
    decode_cell_list,
    decode_user_codes,
    user_codes_length,
)
from .comparisons import comparisons_uns, read_comparisons
from .numeric_fields import read_numeric_fields
from .palettes import PALETTES, check_palette, hex_color

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = [
    "ApplySummary",
    "apply_cellucid_session_to_anndata",
    "column_key",
    "dataset_mismatch_reasons",
    "uns_key",
]

MISMATCH_POLICIES = ("error", "warn_skip", "skip")
CONFLICT_POLICIES = ("error", "overwrite", "suffix")
HIGHLIGHTS_META = "highlights/meta"
FIELD_OVERLAYS = "core/field-overlays"
CELLS_PREFIX = "highlights/cells/"
CODES_PREFIX = "user-defined/codes/"

_NOT_WORD = re.compile(r"[^0-9A-Za-z_]+")
_UNDERSCORES = re.compile(r"_{2,}")
_NOT_UNS_SAFE = re.compile(r"[^0-9A-Za-z_\-]")


@dataclass
class ApplySummary:
    """What :func:`apply_cellucid_session_to_anndata` did.

    ``added_obs_columns``/``added_var_columns`` list the columns written (in order, overwritten
    ones included); ``skipped_due_to_mismatch`` tells whether the dataset-dependent parts were
    skipped, and ``mismatch_reasons`` why.
    """

    added_obs_columns: list[str] = field(default_factory=list)
    added_var_columns: list[str] = field(default_factory=list)
    skipped_due_to_mismatch: bool = False
    mismatch_reasons: list[str] = field(default_factory=list)
    #: obs columns whose ``uns["<column>_colors"]`` was written from the session's colours
    colors: list[str] = field(default_factory=list)


def column_key(s: str) -> str:
    """The column-name part ``K(s)`` of SPEC §5.5.

    Runs of characters outside ``[0-9A-Za-z_]`` become ``_``, repeated ``_`` collapse, ``_``
    is stripped from both ends, an empty result becomes ``cellucid`` and a leading digit gets a
    ``_`` prefix.

    >>> column_key("my clusters (v2)!"), column_key("3 groups"), column_key("--")
    ('my_clusters_v2', '_3_groups', 'cellucid')
    """
    key = _UNDERSCORES.sub("_", _NOT_WORD.sub("_", str(s))).strip("_")
    if not key:
        return "cellucid"
    return f"_{key}" if key[0].isdigit() else key


def uns_key(s: str) -> str:
    """``s`` with every character outside ``[0-9A-Za-z_-]`` percent-escaped (UTF-8).

    Safe as a key for both ``write_h5ad`` and ``write_zarr``; ``urllib.parse.unquote`` undoes it.

    >>> uns_key("highlights/meta"), uns_key("group-1")
    ('highlights%2Fmeta', 'group-1')
    """
    return _NOT_UNS_SAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), s)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def dataset_mismatch_reasons(
    fingerprint: dict[str, Any] | None,
    n_obs: int,
    n_vars: int,
    expected_dataset_id: str | None = None,
) -> list[str]:
    """Why a bundle's ``datasetFingerprint`` does not fit the data (empty list: it fits).

    >>> dataset_mismatch_reasons({"datasetId": "a", "cellCount": 10}, 12, 5, "b")
    ['cellCount 10 != n_obs 12', "datasetId 'a' != expected_dataset_id 'b'"]
    """
    fp = fingerprint or {}
    reasons = []
    cells, genes, dataset_id = fp.get("cellCount"), fp.get("varCount"), fp.get("datasetId")
    if _is_int(cells) and cells != n_obs:
        reasons.append(f"cellCount {cells} != n_obs {n_obs}")
    if _is_int(genes) and genes != n_vars:
        reasons.append(f"varCount {genes} != n_vars {n_vars}")
    if (
        dataset_id is not None
        and expected_dataset_id is not None
        and str(dataset_id) != str(expected_dataset_id)
    ):
        expected = str(expected_dataset_id)
        reasons.append(f"datasetId {str(dataset_id)!r} != expected_dataset_id {expected!r}")
    return reasons


@dataclass
class _Column:
    """A column to add: ``axis`` is ``obs`` or ``var``; ``name`` is resolved later."""

    axis: Literal["obs", "var"]
    base: str
    values: Any
    name: str = ""
    #: the viewer's field key of a user-defined category field (its colours are filed by it)
    key: str | None = None


def _json_chunk(bundle: SessionBundleReader, chunk_id: str) -> Any:
    return bundle.decode_chunk(chunk_id) if bundle.has_chunk(chunk_id) else None


def _dict_list(container: Any, key: str) -> list[dict[str, Any]]:
    items = container.get(key) if isinstance(container, dict) else None
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _highlight_columns(
    bundle: SessionBundleReader, meta: Any, n_obs: int, prefix: str
) -> list[tuple[str, dict[str, Any], dict[str, Any], _Column]]:
    """``(group id, page, group, column)`` per highlight group of ``highlights/meta``."""
    out = []
    seen: set[str] = set()
    for page in _dict_list(meta, "pages"):
        for group in _dict_list(page, "highlightedGroups"):
            group_id = group.get("id")
            if not isinstance(group_id, str) or not group_id or group_id in seen:
                continue
            seen.add(group_id)
            mask = np.zeros(n_obs, dtype=bool)
            chunk_id = CELLS_PREFIX + group_id
            if bundle.has_chunk(chunk_id):
                mask[decode_cell_list(bundle.decode_chunk(chunk_id), n_obs=n_obs)] = True
            out.append((group_id, page, group, _Column("obs", prefix + column_key(group_id), mask)))
    return out


def highlight_groups(bundle: SessionBundleReader, n_obs: int) -> dict[str, np.ndarray]:
    """The session's highlight groups as sorted uint32 cells, by group name and by id
    (a name shared by two groups points to the first)."""
    meta = _json_chunk(bundle, HIGHLIGHTS_META)
    out: dict[str, np.ndarray] = {}
    for group_id, _page, group, column in _highlight_columns(bundle, meta, n_obs, ""):
        cells = np.flatnonzero(column.values).astype(np.uint32)
        out.setdefault(group_id, cells)
        name = group.get("name") or group.get("label")
        if isinstance(name, str) and name:
            out.setdefault(name, cells)
    return out


def _category_values(codes: np.ndarray, categories: Any) -> Any:
    """A ``Categorical`` of string categories, or the raw codes when there are no categories."""
    if not isinstance(categories, list) or not categories:
        return codes
    labels = [str(c) for c in categories]
    unique = list(dict.fromkeys(labels))  # Categorical needs unique categories
    position = {label: i for i, label in enumerate(unique)}
    lookup = np.array([position[label] for label in labels], dtype=np.int64)
    wide = codes.astype(np.int64)
    valid = wide < len(labels)
    mapped = np.full(codes.shape, -1, dtype=np.int64)  # -1: NaN
    mapped[valid] = lookup[wide[valid]]
    return pd.Categorical.from_codes(mapped, categories=pd.Index(unique, dtype=object))


def _user_defined_columns(
    bundle: SessionBundleReader,
    overlays: Any,
    sizes: dict[str, int],
    prefix: str,
    include_deleted: bool,
) -> list[_Column]:
    out = []
    for entry in _dict_list(overlays, "userDefinedFields"):
        field_id = entry.get("id")
        if entry.get("kind") != "category" or not isinstance(field_id, str) or not field_id:
            continue
        if entry.get("isDeleted") and not include_deleted:
            continue
        chunk_id = CODES_PREFIX + field_id
        if not bundle.has_chunk(chunk_id):
            continue
        axis = entry.get("source", "obs")
        if axis not in sizes:
            warnings.warn(
                f"user-defined field {field_id!r}: unknown source {axis!r}; skipped", stacklevel=3
            )
            continue
        data = bundle.decode_chunk(chunk_id)
        length, expected = user_codes_length(data), sizes[axis]
        if length != expected:
            warnings.warn(
                f"user-defined field {field_id!r}: {length} codes for {expected} {axis} rows; "
                "skipped",
                stacklevel=3,
            )
            continue
        values = _category_values(
            decode_user_codes(data, max_length=expected), entry.get("categories")
        )
        key = entry.get("key")
        name = column_key(key if isinstance(key, str) and key else field_id)
        out.append(_Column(axis, prefix + name, values, key=key if isinstance(key, str) else None))
    return out


def _session_colors(
    palettes: Any, obs: Any, columns: list[_Column], uns: Any
) -> dict[str, list[str]]:
    """``uns["<column>_colors"]`` values from the session's category colours (the
    ``cellucid/palettes`` chunk, PROTOCOL.md): for each categorical obs column the session
    colours (an obs field of the same name, or a user-defined field added here), one colour
    per category in the column's order. Categories the session does not name keep the
    column's valid ``uns`` colours; without those the column is left alone (a warning)."""
    if not isinstance(palettes, dict):
        return {}
    added = {c.key: c.name for c in columns if c.axis == "obs" and c.key is not None}
    out: dict[str, list[str]] = {}
    for key, doc in palettes.items():
        name = added.get(key, key)
        if name not in obs.columns or not isinstance(obs[name].dtype, pd.CategoricalDtype):
            continue
        names, colors = (
            doc.get(k) if isinstance(doc, dict) else None for k in ("categories", "colors")
        )
        if not (isinstance(names, list) and isinstance(colors, list) and len(names) == len(colors)):
            warnings.warn(
                f"session colours of {key!r} skipped: not one colour per category name",
                stacklevel=3,
            )
            continue
        hexes = [hex_color(c) for c in colors]
        if None in hexes:
            bad = colors[hexes.index(None)]
            warnings.warn(
                f"session colours of {key!r} skipped: {bad!r} is not a '#rrggbb' colour",
                stacklevel=3,
            )
            continue
        given = {str(n): c for n, c in zip(names, hexes, strict=True)}
        categories = [str(c) for c in obs[name].cat.categories]
        old = None
        if f"{name}_colors" in uns:
            try:
                old = check_palette(name, uns[f"{name}_colors"], categories)
            except ValueError:
                old = None
        missing = [c for c in categories if c not in given]
        if missing and old is None:
            warnings.warn(
                f"session colours of {key!r} name {len(categories) - len(missing)} of the "
                f"{len(categories)} categories of obs[{name!r}] (not {missing[:3]}) and "
                f"uns[{name + '_colors'!r}] has none for them; its colours were not written",
                stacklevel=3,
            )
            continue
        made = [given[c] if c in given else old[i] for i, c in enumerate(categories)]  # type: ignore[index]
        if made != old:
            out[name] = made
    return out


def _resolve_names(columns: list[_Column], existing: dict[str, set[Any]], policy: str) -> None:
    """Give each column its final name; columns of this session never overwrite each other."""
    added: dict[str, set[str]] = {axis: set() for axis in existing}
    for column in columns:
        taken, mine = existing[column.axis], added[column.axis]
        name = column.base
        if name in taken and name not in mine and policy == "error":
            raise ValueError(f"Column already exists: {column.axis}[{name!r}]")
        if name in mine or (name in taken and policy == "suffix"):
            k = 2
            while f"{name}__{k}" in taken or f"{name}__{k}" in mine:
                k += 1
            name = f"{name}__{k}"
        column.name = name
        mine.add(name)


def _session_uns(uns: Any) -> dict[str, Any]:
    """``uns["cellucid"]``, created when missing; ``TypeError`` when it or its session is no dict."""
    root = uns.get("cellucid") if "cellucid" in uns else {}
    if not isinstance(root, dict):
        raise TypeError(f"adata.uns['cellucid'] must be a dict, got {type(root).__name__}")
    if "session" in root and not isinstance(root["session"], dict):
        kind = type(root["session"]).__name__
        raise TypeError(f"adata.uns['cellucid']['session'] must be a dict, got {kind}")
    return root


def apply_cellucid_session_to_anndata(
    bundle: SessionBundleReader | str | os.PathLike[str],
    adata: AnnData,
    *,
    inplace: bool = False,
    dataset_mismatch: Literal["error", "warn_skip", "skip"] = "warn_skip",
    expected_dataset_id: str | None = None,
    add_highlights: bool = True,
    highlights_prefix: str = "cellucid_highlight__",
    add_user_defined_fields: bool = True,
    user_defined_prefix: str = "",
    include_deleted_user_defined_fields: bool = False,
    store_uns: bool = True,
    column_conflict: Literal["error", "overwrite", "suffix"] = "suffix",
    return_summary: bool = False,
    add_comparisons: bool = True,
    add_colors: bool = True,
) -> AnnData | tuple[AnnData, ApplySummary]:
    """Add a session's highlights and user-defined fields to ``adata`` (SPEC §5.5).

    Args:
        bundle: a :class:`CellucidSessionBundle` or the path of a ``.cellucid-session`` file.
        adata: the AnnData the session was made on. Left untouched unless ``inplace``.
        inplace: modify ``adata`` itself instead of ``adata.copy()``.
        dataset_mismatch: when the bundle's ``datasetFingerprint`` does not fit (``cellCount`` vs
            ``n_obs``, ``varCount`` vs ``n_vars``, ``datasetId`` vs ``expected_dataset_id``):
            ``"error"`` raises ``ValueError``; ``"warn_skip"`` warns and ``"skip"`` silently
            skips every dataset-dependent column (``uns`` is still written).
        expected_dataset_id: compared with the fingerprint's ``datasetId`` when both are set.
        add_highlights: add one bool ``obs`` column ``highlights_prefix + K(group id)`` per
            highlight group.
        add_user_defined_fields: add each user-defined category field as
            ``user_defined_prefix + K(key or id)`` in ``obs`` (or ``var`` for ``source == "var"``):
            a ``Categorical`` (out-of-range codes are NaN), or the integer codes when the field
            has no categories. A field whose length does not fit is skipped with a warning.
            Numeric user fields (the ``cellucid/user-fields`` chunks of PROTOCOL.md, an
            extension of SPEC §5.5) become float32 ``obs`` columns named the same way.
        include_deleted_user_defined_fields: also add fields marked ``isDeleted``.
        store_uns: write ``adata.uns["cellucid"]["session"]`` (manifest, fingerprint, how it was
            applied, the highlight and field documents, and which column holds which group).
        column_conflict: for a name that already exists: ``"error"`` (``ValueError``),
            ``"overwrite"``, or ``"suffix"`` (``name__2``, ``name__3``, …).
        return_summary: also return an :class:`ApplySummary`.
        add_comparisons: write the session's comparisons (compare groups) to
            ``adata.uns["cellucid"]["comparisons"][<id>]``: ``name``, ``method``,
            ``statistic``, ``group``/``reference`` labels, ``table`` (a DataFrame with the
            columns of ``scanpy.get.rank_genes_groups_df``) and, unless the dataset does not
            match, ``group_cells``/``reference_cells`` (uint32 rows). ``write_h5ad`` and
            ``write_zarr`` store it as is.
        add_colors: write the session's category colours (picked in the viewer's legend,
            or an annotation's) as scanpy's ``adata.uns["<column>_colors"]`` of the
            categorical ``obs`` columns they belong to (existing ones and the user-defined
            fields added here), so scanpy's plots use the viewer's colours. Categories the
            session does not name keep their ``uns`` colours; listed in
            ``summary.colors``.

    Returns:
        The AnnData (the copy unless ``inplace``), or ``(adata, summary)``.

    Raises:
        ValueError: unknown policy, dataset mismatch under ``"error"``, column conflict under
            ``"error"``, or a corrupt bundle.
        TypeError: ``adata.uns["cellucid"]`` or its ``"session"`` entry is not a dict.

    Example::

        >>> adata2, summary = apply_cellucid_session_to_anndata(
        ...     "run1.cellucid-session", adata, return_summary=True)  # doctest: +SKIP
        >>> summary.added_obs_columns  # doctest: +SKIP
        ['cellucid_highlight__group_1', 'my_clusters']
    """
    if dataset_mismatch not in MISMATCH_POLICIES:
        raise ValueError(
            f"dataset_mismatch must be one of {MISMATCH_POLICIES}, got {dataset_mismatch!r}"
        )
    if column_conflict not in CONFLICT_POLICIES:
        raise ValueError(
            f"column_conflict must be one of {CONFLICT_POLICIES}, got {column_conflict!r}"
        )
    if not isinstance(bundle, SessionBundleReader):
        bundle = SessionBundleReader(bundle)
    n_obs, n_vars = int(adata.n_obs), int(adata.n_vars)
    fingerprint = bundle.dataset_fingerprint
    reasons = dataset_mismatch_reasons(fingerprint, n_obs, n_vars, expected_dataset_id)
    if reasons and dataset_mismatch == "error":
        raise ValueError(f"Session bundle does not match this dataset: {'; '.join(reasons)}")
    if reasons and dataset_mismatch == "warn_skip":
        warnings.warn(
            "Session bundle does not match this dataset "
            f"({'; '.join(reasons)}); skipping highlights and user-defined fields",
            stacklevel=2,
        )
    skip = bool(reasons)
    if store_uns:
        _session_uns(adata.uns)  # fail before any change

    # decode everything first, so that an error leaves adata (even inplace) unchanged
    highlights_meta = _json_chunk(bundle, HIGHLIGHTS_META)
    overlays = _json_chunk(bundle, FIELD_OVERLAYS)
    groups = []
    columns: list[_Column] = []
    if add_highlights and not skip:
        groups = _highlight_columns(bundle, highlights_meta, n_obs, highlights_prefix)
        columns += [column for *_, column in groups]
    if add_user_defined_fields and not skip:
        sizes = {"obs": n_obs, "var": n_vars}
        columns += _user_defined_columns(
            bundle, overlays, sizes, user_defined_prefix, include_deleted_user_defined_fields
        )
        # our extension (PROTOCOL.md): numeric user fields become float32 obs columns
        columns += [
            _Column("obs", user_defined_prefix + column_key(key), values)
            for key, values in read_numeric_fields(bundle, n_obs)
        ]
    comparisons = read_comparisons(bundle, None if skip else n_obs) if add_comparisons else []
    if comparisons:
        _session_uns(adata.uns)  # fail before any change
    existing = {"obs": set(adata.obs.columns), "var": set(adata.var.columns)}
    _resolve_names(columns, existing, column_conflict)

    target = adata if inplace else adata.copy()
    summary = ApplySummary(skipped_due_to_mismatch=skip, mismatch_reasons=reasons)
    for column in columns:
        frame = target.obs if column.axis == "obs" else target.var
        frame[column.name] = column.values
        added = summary.added_obs_columns if column.axis == "obs" else summary.added_var_columns
        added.append(column.name)
    if add_colors and not skip:
        colors = _session_colors(_json_chunk(bundle, PALETTES), target.obs, columns, target.uns)
        for name, values in colors.items():
            target.uns[f"{name}_colors"] = np.array(values, dtype=object)
        summary.colors = list(colors)

    if store_uns:
        root = _session_uns(target.uns)
        root["session"] = {
            "manifest": json.dumps(bundle.manifest),
            "dataset_fingerprint": json.dumps(fingerprint),
            "applied": {
                "dataset_mismatch_policy": dataset_mismatch,
                "expected_dataset_id": _text(expected_dataset_id),
                "skip_dataset_dependent": skip,
            },
            "chunks": {
                uns_key(HIGHLIGHTS_META): json.dumps(highlights_meta),
                uns_key(FIELD_OVERLAYS): json.dumps(overlays),
            },
            "highlights": {
                "groups": {
                    uns_key(group_id): {
                        "obs_column": column.name,
                        "page_id": _text(page.get("id")),
                        "page_name": _text(page.get("name")),
                        "group": json.dumps(group),
                    }
                    for group_id, page, group, column in groups
                }
            },
        }
        target.uns["cellucid"] = root
    if comparisons:
        root = _session_uns(target.uns)
        made = comparisons_uns(comparisons, with_cells=not skip)
        root["comparisons"] = {uns_key(key): entry for key, entry in made.items()}
        target.uns["cellucid"] = root
    return (target, summary) if return_summary else target
