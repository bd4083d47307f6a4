"""Write ``.cellucid-session`` bundles (SPEC §5.1) from Python.

The viewer writes most bundles; Python writes the ones that go with a dataset: the palettes
of scanpy's ``adata.uns["<key>_colors"]`` that ``prepare()`` puts next to an export and that
the AnnData server answers ``GET /_cellucid/default_session`` with (PROTOCOL.md).

    >>> from cellucid.session import CellucidSessionBundle, write_session_bundle
    >>> data = write_session_bundle(
    ...     [{"id": "cellucid/palettes", "kind": "json",
    ...       "data": {"leiden": {"categories": ["0", "1"], "colors": ["#1f77b4", "#ff7f0e"]}}}],
    ...     dataset_fingerprint={"sourceType": "cellucid-export", "datasetId": "pbmc"},
    ... )
    >>> data[:17]
    b'CELLUCID_SESSION\\n'
"""

from __future__ import annotations

import gzip
import json
import struct
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from .bundle import MAGIC, MAX_CHUNK_BYTES, MAX_MANIFEST_BYTES

__all__ = ["GZIP_THRESHOLD", "write_session_bundle"]

#: JSON chunks larger than this many bytes are stored with the gzip codec (as the viewer does).
GZIP_THRESHOLD = 4096
_CONTRIBUTOR = "cellucid-python"


def _stored(spec: Mapping[str, Any]) -> tuple[dict[str, Any], bytes]:
    chunk_id = spec.get("id")
    kind = spec.get("kind")
    if not isinstance(chunk_id, str) or not chunk_id:
        raise ValueError(f"a chunk id must be a non-empty string, got {chunk_id!r}")
    if kind == "json":
        raw = json.dumps(spec.get("data"), separators=(",", ":"), allow_nan=False).encode()
    elif kind == "binary":
        data = spec.get("data")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"chunk {chunk_id!r}: binary data must be bytes")
        raw = bytes(data)
    else:
        raise ValueError(f"chunk {chunk_id!r}: kind must be 'json' or 'binary', got {kind!r}")
    compress = kind == "json" and len(raw) > GZIP_THRESHOLD
    stored = gzip.compress(raw, mtime=0) if compress else raw
    if len(stored) > MAX_CHUNK_BYTES:
        raise ValueError(f"chunk {chunk_id!r} is {len(stored)} bytes, above 512 MiB")
    meta: dict[str, Any] = {
        "id": chunk_id,
        "contributorId": _CONTRIBUTOR,
        "priority": "eager" if kind == "json" else "lazy",
        "kind": kind,
        "codec": "gzip" if compress else "none",
        "label": str(spec.get("label") or chunk_id),
        "datasetDependent": bool(spec.get("dataset_dependent", True)),
        "storedBytes": len(stored),
        "uncompressedBytes": len(raw),
    }
    if spec.get("depends_on"):
        meta["dependsOn"] = [str(spec["depends_on"])]
    return meta, stored


def write_session_bundle(
    chunks: Sequence[Mapping[str, Any]],
    *,
    dataset_fingerprint: Mapping[str, Any],
    created_at: str | None = None,
    data_source: Mapping[str, Any] | None = None,
    summary: Mapping[str, Any] | None = None,
) -> bytes:
    """Serialise chunks as a ``.cellucid-session`` bundle.

    Parameters
    ----------
    chunks
        In order; each ``{"id": str, "kind": "json" | "binary", "data": <JSON value | bytes>}``
        with optional ``"label"``, ``"depends_on"`` (a chunk id) and ``"dataset_dependent"``
        (default True). JSON chunks above :data:`GZIP_THRESHOLD` bytes are gzip-compressed.
    dataset_fingerprint
        ``{"sourceType", "datasetId", "cellCount"?, "varCount"?}`` (SPEC §5.2): which dataset
        the session belongs to; the viewer refuses a bundle of another dataset.
    created_at
        ISO 8601 time; default now (UTC).
    data_source
        The manifest's ``dataSource`` (default null).
    summary
        The manifest's ``summary`` (default null).

    Returns
    -------
    bytes
        The bundle.

    Raises
    ------
    ValueError
        A bad or duplicate chunk id or kind, a chunk above 512 MiB, a manifest above 16 MiB,
        or a value JSON cannot hold (NaN, infinity).
    TypeError
        Binary data that is not bytes.
    """
    if not isinstance(dataset_fingerprint, Mapping):
        raise TypeError("dataset_fingerprint must be a mapping")
    metas, parts, seen = [], [], set()
    for spec in chunks:
        meta, stored = _stored(spec)
        if meta["id"] in seen:
            raise ValueError(f"duplicate chunk id {meta['id']!r}")
        seen.add(meta["id"])
        metas.append(meta)
        parts.append(stored)
    manifest = json.dumps(
        {
            "createdAt": created_at or datetime.now(timezone.utc).isoformat(),
            "dataSource": dict(data_source) if data_source is not None else None,
            "datasetFingerprint": dict(dataset_fingerprint),
            "summary": dict(summary) if summary is not None else None,
            "chunks": metas,
        },
        separators=(",", ":"),
        allow_nan=False,
    ).encode()
    if len(manifest) > MAX_MANIFEST_BYTES:
        raise ValueError(f"session manifest is {len(manifest)} bytes, above 16 MiB")
    out = bytearray(MAGIC)
    out += struct.pack("<I", len(manifest)) + manifest
    for stored in parts:
        out += struct.pack("<I", len(stored)) + stored
    return bytes(out)
