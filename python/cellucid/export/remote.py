"""Exports in object storage (``s3://…``, ``gs://…``, any fsspec URL): finding and writing them.

Object stores have no rename, so an export cannot be staged and moved into place as on disk
(:func:`cellucid.export.prepare.write_dataset`). Instead every payload is written first, then
the manifests, and ``dataset_identity.json`` last. A reader (our viewer, the Cellucid web app,
``cellucid serve``) recognises a dataset by its identity (SPEC 2.2), and object stores such as
S3 are strongly consistent after a write: whoever sees the identity finds every file it names.
Replacing an export (``force=True``) removes the old identity first, so while the new files
are written there is no dataset at that URL rather than a mixed one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..storage.stores import StorageOptions, filesystem, url_join, url_name
from .catalog import POINTS_FILE_NAMES
from .naming import IDENTITY_FILE, OBS_MANIFEST_FILE, is_eligible_dataset_dir_name


class RemoteFolder:
    """A folder (key prefix) of an object store, seen through fsspec."""

    def __init__(self, url: str, storage_options: StorageOptions | None = None) -> None:
        self.url = str(url).rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.fs, self.root = filesystem(self.url, self.storage_options)
        self.root = self.root.rstrip("/")

    @property
    def name(self) -> str:
        return url_name(self.url)

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def child(self, name: str) -> RemoteFolder:
        return RemoteFolder(url_join(self.url, name), self.storage_options)

    def entries(self) -> dict[str, str]:
        """``{name: "file" | "directory"}`` of the folder's immediate entries (none if absent)."""
        try:
            listed = self.fs.ls(self.root, detail=True, refresh=True)
        except FileNotFoundError:
            return {}
        out = {}
        for info in listed:
            name = str(info["name"]).rstrip("/").rsplit("/", 1)[-1]
            if name and str(info["name"]).rstrip("/") != self.root:
                out[name] = "directory" if info.get("type") == "directory" else "file"
        return out

    def files(self) -> list[str]:
        """Every object below the folder, as paths relative to it."""
        try:
            found = self.fs.find(self.root, refresh=True)
        except FileNotFoundError:
            return []
        return sorted(str(p)[len(self.root) + 1 :] for p in found if str(p) != self.root)

    def read_text(self, rel: str) -> str:
        return self.fs.cat_file(self.path(rel)).decode("utf-8")

    def put(self, rel: str, data: bytes | memoryview) -> None:
        self.fs.pipe_file(self.path(rel), bytes(data))

    def remove(self, rels: Iterable[str]) -> None:
        paths = [self.path(r) for r in rels]
        if paths:
            self.fs.rm(paths)


def is_remote_dataset(folder: RemoteFolder, entries: dict[str, str] | None = None) -> bool:
    """SPEC 2.2 for a folder in object storage: identity, obs manifest and a points file."""
    names = folder.entries() if entries is None else entries
    return (
        names.get(IDENTITY_FILE) == "file"
        and names.get(OBS_MANIFEST_FILE) == "file"
        and any(names.get(p) == "file" for p in POINTS_FILE_NAMES)
    )


def find_remote_datasets(folder: RemoteFolder) -> list[str]:
    """Names of the eligible dataset sub-folders of an export root in object storage."""
    return [
        name
        for name, kind in sorted(folder.entries().items())
        if kind == "directory"
        and is_eligible_dataset_dir_name(name)
        and is_remote_dataset(folder.child(name))
    ]


def read_identity(folder: RemoteFolder) -> dict[str, Any]:
    value = json.loads(folder.read_text(IDENTITY_FILE))
    if not isinstance(value, dict):
        raise ValueError(f"{folder.url}/{IDENTITY_FILE} is not a JSON object")
    return value
