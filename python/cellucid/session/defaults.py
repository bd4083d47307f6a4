"""The session a viewer opens with a dataset (PROTOCOL.md "Default session").

``GET /_cellucid/default_session?dataset=<id>`` answers a bundle or 204. What it answers:

* an export folder: ``<dataset>/default.cellucid-session`` (the web app's convention, placed
  by the user), else the sibling ``<dataset folder>.cellucid-session`` that ``prepare()``
  writes next to the folder (SPEC §2.1 forbids extra files inside it);
* an AnnData: a bundle made here from its scanpy colours (``cellucid/palettes``);
* a ``session=`` file given to the server wins, merged with the generated palettes (the file
  wins for the fields it colours).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .bundle import SessionBundleReader
from .palettes import PALETTES
from .writer import write_session_bundle

__all__ = ["DEFAULT_NAME", "SUFFIX", "merged_session", "palette_session", "read_user_session"]

#: the web app's name for a session inside a dataset folder
DEFAULT_NAME = "default.cellucid-session"
SUFFIX = ".cellucid-session"


def palette_session(
    palettes: Mapping[str, Any], fingerprint: Mapping[str, Any], *, created_at: str | None = None
) -> bytes:
    """A bundle holding only a ``cellucid/palettes`` chunk."""
    chunk = {"id": PALETTES, "kind": "json", "data": dict(palettes), "label": "Category colours"}
    return write_session_bundle([chunk], dataset_fingerprint=fingerprint, created_at=created_at)


def read_user_session(path: str | os.PathLike[str]) -> SessionBundleReader:
    """Open a ``session=`` file given to a server and check it now (a clear error at start
    rather than a broken viewer later)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"session file not found: {p}")
    bundle = SessionBundleReader(p)
    try:
        bundle.list_chunk_ids()
    except ValueError as exc:
        raise ValueError(f"{p} is not a usable .cellucid-session file: {exc}") from exc
    return bundle


def merged_session(
    user: SessionBundleReader | None,
    palettes: Mapping[str, Any],
    fingerprint: Mapping[str, Any],
) -> bytes | None:
    """The default session: the user's bundle (if any) with ``palettes`` merged into its
    ``cellucid/palettes`` chunk (the user's colours win per field); None when there is
    nothing to open."""
    if user is None:
        return palette_session(palettes, fingerprint) if palettes else None
    theirs = user.decode_chunk(PALETTES) if user.has_chunk(PALETTES) else {}
    merged = {**dict(palettes), **(theirs if isinstance(theirs, dict) else {})}
    chunks = []
    for chunk_id in user.list_chunk_ids():
        if chunk_id == PALETTES:
            continue
        meta = user.get_chunk_meta(chunk_id)
        chunks.append(
            {
                "id": chunk_id,
                "kind": meta["kind"],
                "data": user.decode_chunk(chunk_id),
                "label": meta.get("label") or chunk_id,
                "depends_on": (meta.get("dependsOn") or [None])[0],
                "dataset_dependent": meta.get("datasetDependent", True),
            }
        )
    if merged:
        chunks.append({"id": PALETTES, "kind": "json", "data": merged, "label": "Category colours"})
    manifest = user.manifest
    return write_session_bundle(
        chunks,
        dataset_fingerprint=manifest.get("datasetFingerprint") or fingerprint,
        created_at=manifest.get("createdAt"),
        data_source=manifest.get("dataSource"),
        summary=manifest.get("summary"),
    )
