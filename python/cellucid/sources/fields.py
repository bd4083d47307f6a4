"""What a served dataset offers (cells, dimensions, obs keys, gene ids), read from its files.

The notebook widget validates commands (``set_color_by``, ``dimension``, cell indices)
before they reach the viewer. It learns the dataset the way the viewer does: from
``dataset_identity.json`` and, for gene ids, ``var_manifest.json``, as served by any
:class:`~cellucid.sources.base.DataSource`, so exports and AnnData agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..export.naming import IDENTITY_FILE, VAR_MANIFEST_FILE
from .base import DatasetEntry, DataSource


def read_json_file(source: DataSource, entry: DatasetEntry, name: str) -> dict[str, Any] | None:
    """A JSON file of ``entry`` as served by ``source``, or ``None`` when it does not exist."""
    body = source.open(entry, name)
    if body is None:
        return None
    value = json.loads(body.read(0, body.size).decode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError(f"{name} of dataset {entry.id!r} is not a JSON object")
    return value


@dataclass
class DatasetFields:
    """The fields of one served dataset.

    Examples
    --------
    >>> fields = DatasetFields("demo", 3, (2,), ("cluster",), lambda: ("CD3E",))
    >>> fields.resolve("cluster"), fields.resolve("CD3E")
    ('cluster', 'CD3E')
    """

    dataset_id: str
    n_cells: int
    dimensions: tuple[int, ...]
    obs_keys: tuple[str, ...]
    _load_genes: Any = field(repr=False)
    _genes: tuple[str, ...] | None = field(default=None, repr=False)

    @property
    def gene_ids(self) -> tuple[str, ...]:
        """Exported gene ids (read on first use: the var manifest can be large)."""
        if self._genes is None:
            self._genes = tuple(self._load_genes())
        return self._genes

    def resolve(self, key: str) -> str:
        """``key`` if it names exactly one obs key or gene id; ``ValueError`` otherwise."""
        if not isinstance(key, str) or not key:
            raise ValueError(f"a field name must be a non-empty string, not {key!r}")
        in_obs = key in self.obs_keys
        in_genes = key in set(self.gene_ids)
        if in_obs and in_genes:
            raise ValueError(
                f"{key!r} is both an obs key and a gene id of dataset {self.dataset_id!r}; "
                "the viewer cannot tell which one you mean (rename the obs column)"
            )
        if not in_obs and not in_genes:
            shown = ", ".join(map(repr, self.obs_keys[:20])) or "none"
            raise ValueError(
                f"unknown field {key!r}: it is neither an obs key ({shown}) nor one of the "
                f"{len(self.gene_ids)} gene ids of dataset {self.dataset_id!r}"
            )
        return key


def read_fields(source: DataSource, entry: DatasetEntry) -> DatasetFields:
    """Read the fields of ``entry`` from its identity (and, lazily, its var manifest)."""
    identity = read_json_file(source, entry, IDENTITY_FILE)
    if identity is None:
        raise ValueError(f"dataset {entry.id!r} has no {IDENTITY_FILE}")

    def genes() -> list[str]:
        manifest = read_json_file(source, entry, VAR_MANIFEST_FILE)
        return [] if manifest is None else [str(item[0]) for item in manifest.get("fields", [])]

    return DatasetFields(
        dataset_id=str(identity["id"]),
        n_cells=int(identity["stats"]["n_cells"]),
        dimensions=tuple(int(d) for d in identity["embeddings"]["available_dimensions"]),
        obs_keys=tuple(str(f["key"]) for f in identity.get("obs_fields", [])),
        _load_genes=genes,
    )
