"""Numeric user-defined fields in a session bundle (PROTOCOL.md "Session chunks").

SPEC §5.2's user-defined fields are categorical. The viewer writes numeric ones (from
``viewer.add_field(name, floats)``) into two new chunk kinds::

    cellucid/user-fields               json    {"version": 1, "fields": [{"id", "key",
                                               "kind": "continuous", "source": "obs",
                                               "dtype": "float32", "length"}]}
    cellucid/user-fields/values/<id>   binary  ``length`` float32 values, little-endian

:func:`read_numeric_fields` decodes them; :func:`numeric_field_chunks` makes them (tests and
Python-made bundles).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .bundle import SessionBundleReader

__all__ = ["USER_FIELDS", "VALUES_PREFIX", "numeric_field_chunks", "read_numeric_fields"]

USER_FIELDS = "cellucid/user-fields"
VALUES_PREFIX = "cellucid/user-fields/values/"
VERSION = 1


def read_numeric_fields(bundle: SessionBundleReader, n_obs: int) -> list[tuple[str, np.ndarray]]:
    """The numeric fields of a bundle as ``(key, float32 values)``, in bundle order.

    A field whose values are missing or do not have ``n_obs`` entries is skipped with a
    warning naming it; a bundle without the chunks has none.
    """
    if not bundle.has_chunk(USER_FIELDS):
        return []
    doc = bundle.decode_chunk(USER_FIELDS)
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        warnings.warn(f"{USER_FIELDS}: unknown layout; numeric fields skipped", stacklevel=3)
        return []
    out = []
    for entry in doc.get("fields") or []:
        if not isinstance(entry, dict):
            continue
        key, field_id = entry.get("key"), entry.get("id")
        if not isinstance(key, str) or not key or not isinstance(field_id, str) or not field_id:
            continue
        chunk = VALUES_PREFIX + field_id
        if entry.get("kind") != "continuous" or entry.get("dtype") != "float32":
            warnings.warn(f"numeric field {key!r}: not float32 values; skipped", stacklevel=3)
            continue
        if entry.get("source", "obs") != "obs" or not bundle.has_chunk(chunk):
            warnings.warn(
                f"numeric field {key!r}: no obs values in the bundle; skipped", stacklevel=3
            )
            continue
        data = bundle.decode_chunk(chunk)
        if len(data) != 4 * n_obs:
            warnings.warn(
                f"numeric field {key!r}: {len(data) // 4} values for {n_obs} cells; skipped",
                stacklevel=3,
            )
            continue
        out.append((key, np.frombuffer(data, dtype="<f4").astype(np.float32)))
    return out


def numeric_field_chunks(fields: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Chunk specs (for :func:`cellucid.session.writer.write_session_bundle`) of numeric
    fields ``{key: values}``; ids are ``user-1``, ``user-2``, ... in order."""
    if not fields:
        return []
    meta, values = [], []
    for i, (key, array) in enumerate(fields.items(), start=1):
        arr = np.asarray(array, dtype="<f4").reshape(-1)
        field_id = f"user-{i}"
        meta.append(
            {
                "id": field_id,
                "key": key,
                "kind": "continuous",
                "source": "obs",
                "dtype": "float32",
                "length": int(arr.size),
            }
        )
        values.append(
            {
                "id": VALUES_PREFIX + field_id,
                "kind": "binary",
                "data": arr.tobytes(),
                "label": f"Values: {key}",
                "depends_on": USER_FIELDS,
            }
        )
    head = {
        "id": USER_FIELDS,
        "kind": "json",
        "data": {"version": VERSION, "fields": meta},
        "label": "Numeric user-defined fields",
    }
    return [head, *values]
