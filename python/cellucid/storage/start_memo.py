"""Small results of a served file's start-up, kept for the next start on the same file.

A server opening a ten-million-cell file computes the category centroids of every
categorical field (a few tenths of a second per field and dimension) and proves its kNN
graph too large for the browser (reading a third of the graph's values) before it can
answer ``dataset_identity.json`` and ``obs_manifest.json``. Both depend only on the file
and a few settings, so :class:`StartMemo` keeps them in the cache folder (the column
cache's, :func:`~cellucid.storage.column_cache.default_cache_dir`, in ``start/``), one JSON
file per file version: the name hashes the file's fingerprint (path, size, modification
time; for a ``.zarr`` store those of its ``obs``, ``obsm`` and ``obsp`` files,
:func:`~cellucid.storage.stores.fingerprint`) and what the caller says its results depend
on (the embeddings shown, normalisation). A changed file gets a new name, so a stale entry
is never read; entries are checked for their key, and anything unreadable counts as absent.
Sources at URLs get no memo (fingerprinting them costs requests).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._version import __version__
from .stores import PathLike, fingerprint, is_url, is_zarr_store, local_path

log = logging.getLogger(__name__)

#: bump when what is stored or its meaning changes
MEMO_VERSION = 1
#: the parts of a ``.zarr`` store whose files a start-up reads (fingerprinted)
ZARR_ELEMENTS = ("obs", "obsm", "obsp")


class StartMemo:
    """A JSON object of start-up results for one version of one file.

    ``get(key)`` returns what ``put(key, value)`` stored (JSON values), here or at an
    earlier start; :meth:`save` writes new entries (atomically; failures are logged, never
    raised: the memo only saves time). Thread-safe.
    """

    def __init__(self, path: Path, identity: str) -> None:
        self.path = path
        self.identity = identity
        self._lock = threading.Lock()
        self._entries: dict[str, Any] = {}
        self._dirty = False
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(doc, dict) and doc.get("identity") == identity:
            entries = doc.get("entries")
            self._entries = entries if isinstance(entries, dict) else {}

    @classmethod
    def for_file(
        cls,
        source: PathLike,
        context: Mapping[str, Any],
        cache_dir: Path | None = None,
    ) -> StartMemo | None:
        """The memo of a local ``.h5ad``/``.zarr`` in its current version, given the
        ``context`` its results depend on (JSON values); ``None`` for URLs or when the file
        cannot be fingerprinted."""
        if is_url(source):
            return None
        from .column_cache import default_cache_dir

        try:
            path = local_path(source).resolve()
            elements = ZARR_ELEMENTS if is_zarr_store(path) else ("",)
            prints = [fingerprint(path, e) for e in elements if not e or (path / e).exists()]
        except OSError:
            return None
        identity = json.dumps(
            {
                "fingerprints": prints,
                "context": dict(context),
                "cellucid": __version__,
                "version": MEMO_VERSION,
            },
            sort_keys=True,
            default=str,
        )
        digest = hashlib.sha256(identity.encode()).hexdigest()[:24]
        stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in path.name)[:60]
        folder = (cache_dir or default_cache_dir()) / "start"
        return cls(folder / f"{stem}-{digest}.json", identity)

    def get(self, key: str) -> Any:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            if self._entries.get(key) != value:
                self._entries[key] = value
                self._dirty = True

    def save(self) -> None:
        """Write the entries if any is new (a temporary file renamed into place)."""
        with self._lock:
            if not self._dirty:
                return
            text = json.dumps({"identity": self.identity, "entries": self._entries})
            self._dirty = False
        tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            log.debug("start-up memo not saved to %s: %s", self.path, exc)
            tmp.unlink(missing_ok=True)
