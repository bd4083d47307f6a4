"""What every data source gives the server: a catalog of datasets and files by relative path.

An export folder and an AnnData are two ways to be the same set of files (SPEC §3.4). The
server asks a source for ``(dataset, relative path)`` and gets a :class:`FileBody`, or
``None`` for "no such file" (404). Sources are blocking; the server calls them off its
event loop.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

#: relative paths a data URL may name: no empty, ``.`` or ``..`` segment, no backslash or NUL
_BAD_SEGMENT = re.compile(r"(^|/)(\.{1,2})?(/|$)")


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset as ``/_cellucid/datasets`` lists it (SPEC §3.3)."""

    id: str
    name: str
    path: str  # "/" or "/<dir>/"

    def as_json(self) -> dict[str, str]:
        return {"id": self.id, "path": self.path, "name": self.name}


@dataclass(frozen=True)
class FileBody:
    """A file ready to be sent: size, validators and a blocking ``read(offset, length)``."""

    size: int
    content_type: str
    etag: str
    read: Callable[[int, int], bytes]
    last_modified: float | None = None  # POSIX time
    virtual: bool = False  # generated from an AnnData (no-cache; may be HTTP-compressed)
    #: for bodies in memory: ``view(offset, length)`` without a copy (what the server sends)
    view: Callable[[int, int], memoryview] | None = None

    @classmethod
    def from_bytes(cls, data: bytes | memoryview, content_type: str, etag: str) -> FileBody:
        """A body in memory: ``read`` copies (except the whole of a ``bytes`` body), ``view``
        does not (the server sends views)."""
        mem = memoryview(data).cast("B")
        size = mem.nbytes

        def read(offset: int, length: int) -> bytes:
            if offset == 0 and length >= size and isinstance(data, bytes):
                return data  # the whole file: no copy (80 MB for 10M cells' points)
            return bytes(mem[offset : offset + length])

        return cls(
            size=size,
            content_type=content_type,
            etag=etag,
            read=read,
            virtual=True,
            view=lambda offset, length: mem[offset : offset + length],
        )

    @classmethod
    def from_path(cls, path: Path, content_type: str) -> FileBody:
        st = path.stat()

        def read(offset: int, length: int) -> bytes:
            with open(path, "rb") as fh:
                fh.seek(offset)
                return fh.read(length)

        return cls(
            size=st.st_size,
            content_type=content_type,
            etag=f'"{st.st_mtime_ns:x}-{st.st_size:x}"',
            read=read,
            last_modified=st.st_mtime,
        )


def content_type_for(relpath: str) -> str:
    """MIME type of a data file (SPEC §3.4): JSON, raw gzip, or octet-stream."""
    if relpath.endswith(".json"):
        return "application/json"
    if relpath.endswith(".gz"):
        return "application/gzip"
    return "application/octet-stream"


def clean_relpath(relpath: str) -> str | None:
    """``relpath`` if it is a plain relative path inside a dataset, else ``None``.

    Rejects empty, ``.`` and ``..`` segments, absolute paths, backslashes and NUL (SPEC §3.1).
    """
    if not relpath or relpath.startswith("/") or "\\" in relpath or "\x00" in relpath:
        return None
    if _BAD_SEGMENT.search(relpath):
        return None
    return relpath


def inside(root: Path, relpath: str) -> Path | None:
    """The regular file ``root/relpath``, or ``None`` when it leaves ``root`` (symlinks
    included), is hidden, or is not a regular file."""
    if any(part.startswith(".") for part in relpath.split("/")):
        return None
    candidate = root / relpath
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    root_real = root.resolve()
    if os.path.commonpath([root_real, real]) != str(root_real) or not real.is_file():
        return None
    return real


class DataSource(Protocol):
    """The server's view of its data."""

    kind: Literal["exported", "anndata"]

    def datasets(self) -> list[DatasetEntry]: ...

    def health(self) -> dict[str, Any]:
        """The mode-specific keys of ``/_cellucid/health`` (without ``status``/``version``)."""
        ...

    def open(self, dataset: DatasetEntry, relpath: str) -> FileBody | None:
        """The file at ``relpath`` of ``dataset`` (already cleaned), or ``None`` (404)."""
        ...

    def close(self) -> None: ...
