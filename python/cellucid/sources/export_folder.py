"""An export folder, or a folder of exports, served as its files (SPEC §2.2, §3.3): on disk, or
in object storage at an fsspec URL (:class:`RemoteExportSource`)."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from ..export.catalog import find_datasets, is_dataset_dir
from ..export.naming import IDENTITY_FILE
from ..session.defaults import DEFAULT_NAME, SUFFIX
from .base import DatasetEntry, FileBody, content_type_for, inside


def served_files(directory: Path) -> frozenset[str]:
    """The files of the export in ``directory`` that its manifests name, after checking
    that each exists: a missing payload or a corrupt manifest is a ``ValueError`` now, at
    start-up, rather than a 404 when the viewer asks for it."""
    from ..export.reader import ExportReader

    try:
        names = ExportReader(directory).file_names()
    except (OSError, ValueError) as exc:
        raise ValueError(f"{directory}: {exc}; check it with `cellucid validate`") from None
    present = {
        str(Path(root, f).relative_to(directory).as_posix())
        for root, _dirs, files in os.walk(directory)
        for f in files
    }
    missing = sorted(names - present)
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise ValueError(
            f"{directory}: the manifests name {len(missing)} missing file(s): {shown}; "
            "re-export it (cellucid prepare ... --force) or check it with `cellucid validate`"
        )
    return frozenset(names)


class ExportFolderSource:
    """Serve one dataset directory, or every eligible dataset of an export root.

    >>> src = ExportFolderSource("exports/pbmc68k")  # doctest: +SKIP
    >>> [d.path for d in src.datasets()]  # doctest: +SKIP
    ['/']
    """

    kind: Literal["exported"] = "exported"

    def __init__(self, path: str | Path) -> None:
        root = Path(path).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"export folder not found: {root}")
        self.root = root.resolve()
        if is_dataset_dir(self.root):
            dirs = {"/": self.root}
        else:
            found = find_datasets(self.root)
            if not found:
                raise ValueError(
                    f"{self.root} is neither an export folder (dataset_identity.json, "
                    "obs_manifest.json, points_<d>d.bin) nor a folder of exports"
                )
            dirs = {}
            for d in found:
                real = d.resolve()
                if real.parent != self.root:  # a symlink leaving the root (SPEC §3.1)
                    warnings.warn(
                        f"skipping {d.name}: it links to {real}, outside {self.root}; "
                        "copy the export into the folder or serve it on its own",
                        stacklevel=2,
                    )
                    continue
                dirs[f"/{d.name}/"] = real
            if not dirs:
                raise ValueError(f"{self.root} holds no servable export folder")
        self._files: dict[str, frozenset[str]] = {}
        for url, directory in list(dirs.items()):
            try:
                self._files[url] = served_files(directory)
            except ValueError as exc:
                if len(dirs) == 1 and url == "/":
                    raise
                warnings.warn(f"skipping {directory.name}: {exc}", stacklevel=2)
                del dirs[url]
        if not dirs:
            raise ValueError(f"{self.root} holds no servable export folder")
        self._dirs = dirs
        self._entries = [self._entry(url, d) for url, d in dirs.items()]
        _unique_ids(self._entries)

    @staticmethod
    def _entry(url: str, directory: Path) -> DatasetEntry:
        identity = directory / IDENTITY_FILE
        return _entry_of(url, lambda: identity.read_text(encoding="utf-8"), str(identity))

    def datasets(self) -> list[DatasetEntry]:
        return list(self._entries)

    def health(self) -> dict[str, Any]:
        return {"type": "exported"}

    def open(self, dataset: DatasetEntry, relpath: str) -> FileBody | None:
        if relpath not in self._files[dataset.path]:
            return None  # only what the manifests name: a stray notes.txt stays private
        path = inside(self._dirs[dataset.path], relpath)
        if path is None:
            return None
        return FileBody.from_path(path, content_type_for(relpath))

    def default_session(self, dataset: DatasetEntry) -> bytes | None:
        """The session that opens with ``dataset`` (PROTOCOL.md "Default session"):
        ``<dataset>/default.cellucid-session``, else the sibling
        ``<dataset folder>.cellucid-session`` next to it; None when neither exists. Only these
        two names are ever read."""
        directory = self._dirs[dataset.path]
        for path in (directory / DEFAULT_NAME, directory.parent / f"{directory.name}{SUFFIX}"):
            if path.is_file():
                return path.read_bytes()
        return None

    def close(self) -> None:
        """Nothing to release: files are opened per request."""


def _entry_of(url: str, read: Callable[[], str], where: str) -> DatasetEntry:
    """The catalog entry of a dataset from its identity (``read`` returns its text)."""
    try:
        identity = json.loads(read())
        return DatasetEntry(id=str(identity["id"]), name=str(identity["name"]), path=url)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{where} is unreadable: {exc}") from exc


def _unique_ids(entries: list[DatasetEntry]) -> None:
    ids = [e.id for e in entries]
    dups = sorted({i for i in ids if ids.count(i) > 1})
    if dups:
        raise ValueError(f"two datasets share the identity id(s) {dups}; ids must be unique")


#: a remote file up to this size is fetched in one request; larger ones in ranges this big
_REMOTE_WHOLE = 64 << 20


class RemoteExportSource:
    """An export folder, or a folder of exports, in object storage (``s3://…``, any fsspec
    URL), served file by file: each request reads that object (a range of it for large
    ones), nothing is listed or cached beyond the datasets found at start.

    >>> src = RemoteExportSource("s3://bucket/exports/pbmc")  # doctest: +SKIP
    """

    kind: Literal["exported"] = "exported"

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        from ..export.remote import RemoteFolder, find_remote_datasets, is_remote_dataset

        root = RemoteFolder(url, storage_options)
        self.url = root.url
        entries = root.entries()
        if not entries:
            raise FileNotFoundError(f"export folder not found: {self.url}")
        if is_remote_dataset(root, entries):
            folders = {"/": root}
        else:
            folders = {f"/{name}/": root.child(name) for name in find_remote_datasets(root)}
            if not folders:
                raise ValueError(
                    f"{self.url} is neither an export folder (dataset_identity.json, "
                    "obs_manifest.json, points_<d>d.bin) nor a folder of exports"
                )
        self._folders = folders
        self._entries = [
            _entry_of(
                path,
                lambda f=folder: f.read_text(IDENTITY_FILE),
                f"{folder.url}/{IDENTITY_FILE}",
            )
            for path, folder in folders.items()
        ]
        _unique_ids(self._entries)

    def datasets(self) -> list[DatasetEntry]:
        return list(self._entries)

    def health(self) -> dict[str, Any]:
        return {"type": "exported"}

    def open(self, dataset: DatasetEntry, relpath: str) -> FileBody | None:
        if any(part.startswith(".") for part in relpath.split("/")):
            return None
        folder = self._folders[dataset.path]
        path = folder.path(relpath)
        try:
            info = folder.fs.info(path)
        except (FileNotFoundError, OSError):
            return None
        if info.get("type") == "directory":
            return None
        size = int(info["size"])
        stamp = str(info.get("ETag") or info.get("etag") or info.get("mtime") or size)
        fs, held = folder.fs, {}

        def read(offset: int, length: int) -> bytes:
            if size <= _REMOTE_WHOLE:  # one GET, kept for the rest of this response
                if "whole" not in held:
                    held["whole"] = fs.cat_file(path)
                return held["whole"][offset : offset + length]
            return fs.cat_file(path, start=offset, end=min(size, offset + length))

        return FileBody(
            size=size,
            content_type=content_type_for(relpath),
            etag=f'"{stamp.strip(chr(34))}-{size:x}"',
            read=read,
        )

    def default_session(self, dataset: DatasetEntry) -> bytes | None:
        """As :meth:`ExportFolderSource.default_session`, from object storage."""
        folder = self._folders[dataset.path]
        parent, _, name = folder.root.rpartition("/")
        for path in (folder.path(DEFAULT_NAME), f"{parent}/{name}{SUFFIX}" if parent else None):
            if path is None:
                continue
            try:
                return bytes(folder.fs.cat_file(path))
            except (FileNotFoundError, IsADirectoryError):
                continue
        return None

    def close(self) -> None:
        """Nothing to release: objects are read per request."""
