"""``GET /_cellucid/default_session?dataset=<id>``: the session a viewer opens with a dataset
(PROTOCOL.md "Default session"). Shared by the HTTP server and the widget's comm transport.

200 with the bundle bytes (``application/octet-stream``), or 204 when there is none. Which one:

1. the ``session=`` file given to the server (``serve(..., session=PATH)``, ``--session``),
   for the dataset its fingerprint names (or for every dataset when it names none); in AnnData
   mode merged with the AnnData's scanpy colours (the file wins per field);
2. an export folder: ``<dataset>/default.cellucid-session``, else the sibling
   ``<dataset folder>.cellucid-session`` (only these two names are read);
3. an AnnData: a bundle of its scanpy colours (``adata.uns["<key>_colors"]``).

No credentials: like the data files, a session placed with an export is public to whoever
may load the dataset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..session.bundle import SessionBundleReader
from ..session.defaults import merged_session
from ..sources.base import DatasetEntry, DataSource


class DefaultSessionError(Exception):
    """A request the route cannot answer: ``status`` and a message for the JSON error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _entry(source: DataSource, query: Mapping[str, str]) -> DatasetEntry:
    entries = source.datasets()
    wanted = query.get("dataset")
    if wanted is None:
        if len(entries) == 1:
            return entries[0]
        raise DefaultSessionError(400, "name the dataset: ?dataset=<id>")
    for entry in entries:
        if entry.id == wanted:
            return entry
    raise DefaultSessionError(404, f"no dataset {wanted!r}")


def _fingerprint(source: DataSource, entry: DatasetEntry) -> dict[str, Any]:
    health = source.health()
    out: dict[str, Any] = {"sourceType": "anndata", "datasetId": entry.id}
    for key, name in (("n_cells", "cellCount"), ("n_genes", "varCount")):
        if isinstance(health.get(key), int):
            out[name] = health[key]
    return out


def _applies(user: SessionBundleReader, entry: DatasetEntry) -> bool:
    wanted = (user.dataset_fingerprint or {}).get("datasetId")
    return not isinstance(wanted, str) or not wanted or wanted == entry.id


def answer(
    source: DataSource, query: Mapping[str, str], user: SessionBundleReader | None = None
) -> bytes | None:
    """The default session of the dataset named in ``query`` (None: there is none).

    Raises
    ------
    DefaultSessionError
        An unknown or missing dataset id (404 / 400).
    """
    entry = _entry(source, query)
    mine = user if user is not None and _applies(user, entry) else None
    if source.kind == "anndata":
        palettes = getattr(source, "palettes", None) or {}
        return merged_session(mine, palettes, _fingerprint(source, entry))
    if mine is not None:
        return mine.path.read_bytes()
    finder = getattr(source, "default_session", None)
    return finder(entry) if callable(finder) else None
