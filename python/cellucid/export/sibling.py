"""The session file ``prepare()`` writes NEXT TO an export: ``<out_dir>.cellucid-session``.

SPEC §2.1/§2.11/§8 keep a dataset folder to the files of the format, so the scanpy colours of
``adata.uns["<key>_colors"]`` (a ``cellucid/palettes`` chunk, PROTOCOL.md) go into a sibling
file: ``exports/pbmc.cellucid-session`` for ``exports/pbmc/``. The viewer opens it with the
dataset (``GET /_cellucid/default_session``, or by URL on a static host).

The file is written only when at least one exported categorical field has a valid palette, after
the payloads (a failed export writes nothing). A sibling this function wrote before is
replaced, or removed when there are no palettes any more; one written by anybody else (e.g.
saved from the viewer) is left alone with a warning.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

from ..session.bundle import SessionBundleReader
from ..session.defaults import SUFFIX
from ..session.palettes import PALETTES
from ..session.writer import write_session_bundle
from .remote import RemoteFolder

#: the manifest summary that marks a sibling as written by prepare()
WRITER = "cellucid.prepare"


def sibling_bundle(palettes: dict[str, Any], fingerprint: dict[str, Any]) -> bytes:
    """The sibling file's bytes: one ``cellucid/palettes`` chunk, marked as ours."""
    chunk = {"id": PALETTES, "kind": "json", "data": palettes, "label": "Category colours (scanpy)"}
    return write_session_bundle(
        [chunk],
        dataset_fingerprint=fingerprint,
        summary={"writtenBy": WRITER, "palettes": sorted(palettes)},
    )


def _ours_local(path: Path) -> bool:
    try:
        summary = SessionBundleReader(path).manifest.get("summary")
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and summary.get("writtenBy") == WRITER


def _ours_bytes(data: bytes) -> bool:
    """Whether bundle bytes carry our marker (the manifest is read, not the chunks)."""
    try:
        length = int.from_bytes(data[17:21], "little")
        summary = json.loads(data[21 : 21 + length]).get("summary")
    except (ValueError, AttributeError):
        return False
    return isinstance(summary, dict) and summary.get("writtenBy") == WRITER


def _foreign(where: str) -> None:
    warnings.warn(
        f"{where} exists and was not written by prepare(); left unchanged (the viewer opens it "
        "with the dataset). Delete it to get the scanpy colours from adata.uns instead.",
        stacklevel=4,
    )


def write_sibling_local(
    out_dir: Path, palettes: dict[str, Any], fingerprint: dict[str, Any]
) -> Path | None:
    """Write, replace or remove ``<out_dir>.cellucid-session``; returns the path written."""
    path = out_dir.parent / f"{out_dir.name}{SUFFIX}"
    if path.exists() and not _ours_local(path):
        if palettes:
            _foreign(str(path))
        return None
    if not palettes:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a stale one of ours
        return None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(sibling_bundle(palettes, fingerprint))
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path


def write_sibling_remote(
    folder: RemoteFolder, palettes: dict[str, Any], fingerprint: dict[str, Any]
) -> str | None:
    """As :func:`write_sibling_local`, next to a folder in object storage."""
    parent, _, name = folder.root.rpartition("/")
    if not parent:
        return None  # a bucket root has no sibling
    path = f"{parent}/{name}{SUFFIX}"
    try:
        old = bytes(folder.fs.cat_file(path))
    except FileNotFoundError:
        old = None
    if old is not None and not _ours_bytes(old):
        if palettes:
            _foreign(f"{folder.url}{SUFFIX}")
        return None
    if not palettes:
        if old is not None:
            folder.fs.rm(path)
        return None
    folder.fs.pipe_file(path, sibling_bundle(palettes, fingerprint))
    return f"{folder.url}{SUFFIX}"
