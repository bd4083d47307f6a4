"""Read one exported dataset directory back into numpy and pandas (SPEC §2).

:class:`ExportReader` is lazy and read-only: manifests are parsed on first use and payloads
are read, gunzipped and decoded one at a time. It trusts the manifests only as far as it
must to find and decode a payload (paths must be safe relative paths, byte lengths must
match); :func:`cellucid.export.validate.validate_export` checks everything else.

The helpers :func:`path_problem`, :func:`payload_path` and :func:`decode_quantized` are
shared with the validator, so both resolve and decode payloads the same way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PureWindowsPath
from typing import Any

import numpy as np
import pandas as pd

from .binary import EXT_DTYPES, gunzip_member
from .encode import dequantize as decode_quantized
from .naming import (
    CONNECTIVITY_MANIFEST_FILE,
    IDENTITY_FILE,
    OBS_MANIFEST_FILE,
    VAR_MANIFEST_FILE,
    strict_safe_name,
)

__all__ = [
    "CategoricalField",
    "ExportReader",
    "decode_quantized",
    "path_problem",
    "payload_path",
]

_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
#: manifest dtype name -> little-endian numpy dtype
_DTYPES_BY_NAME: dict[str, np.dtype] = {
    "float32": EXT_DTYPES["f32"],
    "uint8": EXT_DTYPES["u8"],
    "uint16": EXT_DTYPES["u16"],
    "uint32": EXT_DTYPES["u32"],
    "float64": EXT_DTYPES["f64"],
}


def path_problem(relpath: object) -> str | None:
    """Say why ``relpath`` is not an allowed payload path (SPEC §2.12 item 9), else ``None``.

    A payload path is a non-empty relative path with ``/`` separators and no ``..``
    segment, ``?``, ``#``, whitespace, control character or backslash.

    >>> path_problem("obs/age.values.f32") is None
    True
    >>> path_problem("../secret.bin")
    "has a '..' segment"
    """
    if not isinstance(relpath, str) or not relpath:
        return "is not a non-empty string"
    if "\\" in relpath:
        return "has a backslash"
    if relpath.startswith("/") or _URL_SCHEME.match(relpath) or PureWindowsPath(relpath).drive:
        return "is absolute"
    if ".." in relpath.split("/"):
        return "has a '..' segment"
    for char, what in (("?", "a '?'"), ("#", "a '#'")):
        if char in relpath:
            return f"has {what}"
    if any(c.isspace() for c in relpath):
        return "has whitespace"
    if any(ord(c) < 32 or ord(c) == 127 for c in relpath):
        return "has a control character"
    return None


def payload_path(pattern: str, key: object, ext: str | None = None) -> str:
    """Resolve a manifest path pattern for one field (SPEC §2.4, §2.6.3).

    ``{key}`` is replaced once by the safe form of ``key`` and ``{ext}`` (codes patterns)
    by ``ext``. Raises ``ValueError`` for a key without a safe file name.

    >>> payload_path("obs/{key}.codes.{ext}.gz", "cell type", "u8")
    'obs/cell_type.codes.u8.gz'
    """
    safe = strict_safe_name(key)
    if safe is None:
        raise ValueError(f"key {key!r} has no safe file name (SPEC §2.4)")
    path = pattern.replace("{key}", safe, 1)
    if ext is not None:
        path = path.replace("{ext}", ext, 1)
    return path


@dataclass(frozen=True)
class CategoricalField:
    """One decoded categorical obs field.

    Attributes
    ----------
    key : str
        The original obs key.
    categories : list of str
        Category labels; ``codes`` index into them.
    codes : numpy.ndarray
        uint8 or uint16 codes of length n; ``missing`` marks a missing value.
    missing : int
        The missing sentinel (255 or 65535).
    centroids : dict of int to list of dict
        Per available dimension, the ``{"category", "position", "n_points"}`` entries.
    outliers : numpy.ndarray or None
        Decoded float32 outlier quantiles (NaN where undefined), or None without a latent
        space.
    """

    key: str
    categories: list[str]
    codes: np.ndarray
    missing: int
    centroids: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    outliers: np.ndarray | None = None

    def to_categorical(self) -> pd.Categorical:
        """The field as a :class:`pandas.Categorical` (missing codes become NaN)."""
        codes = self.codes.astype(np.int64)
        codes[self.codes == self.missing] = -1
        return pd.Categorical.from_codes(codes, categories=self.categories)


class ExportReader:
    """Lazy, read-only access to one exported dataset directory (SPEC §2).

    Parameters
    ----------
    path : str or Path
        A dataset directory: it holds ``dataset_identity.json``, ``obs_manifest.json``
        and at least one ``points_{d}d.bin[.gz]``.

    Notes
    -----
    Payloads are decoded from little-endian whatever the host, and ``.gz`` payloads are
    gunzipped only when their path ends with ``.gz``. A malformed payload path or a
    payload of the wrong length raises ``ValueError``.

    Examples
    --------
    >>> reader = ExportReader("exports/pbmc")                    # doctest: +SKIP
    >>> reader.points(2).shape                                    # doctest: +SKIP
    (2700, 2)
    >>> reader.obs_frame()["cell_type"].cat.categories[:2]       # doctest: +SKIP
    Index(['B', 'CD4 T'], dtype='object')
    >>> reader.gene("CD3E")[:3]                                  # doctest: +SKIP
    array([0. , 1.2, 0. ], dtype=float32)
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise FileNotFoundError(f"dataset directory not found: {self.path}")

    def __repr__(self) -> str:
        return f"ExportReader({str(self.path)!r})"

    # ---- manifests ---------------------------------------------------------------------
    def _json(self, name: str, *, required: bool) -> dict[str, Any] | None:
        file = self.path / name
        if not file.is_file():
            if required:
                raise FileNotFoundError(f"{name} not found in {self.path}")
            return None
        value = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(value, dict):
            raise ValueError(f"{name} is not a JSON object")
        return value

    @cached_property
    def identity(self) -> dict[str, Any]:
        """``dataset_identity.json`` as a dict."""
        return self._json(IDENTITY_FILE, required=True)  # type: ignore[return-value]

    @cached_property
    def obs_manifest(self) -> dict[str, Any]:
        """``obs_manifest.json`` as a dict."""
        return self._json(OBS_MANIFEST_FILE, required=True)  # type: ignore[return-value]

    @cached_property
    def var_manifest(self) -> dict[str, Any] | None:
        """``var_manifest.json`` as a dict, or None when the dataset has no genes."""
        return self._json(VAR_MANIFEST_FILE, required=False)

    @cached_property
    def connectivity_manifest(self) -> dict[str, Any] | None:
        """``connectivity_manifest.json`` as a dict, or None without connectivity."""
        return self._json(CONNECTIVITY_MANIFEST_FILE, required=False)

    @property
    def compression(self) -> int | None:
        """The gzip level of the payloads (from the obs manifest), or None."""
        return self.obs_manifest.get("compression")

    @property
    def n_cells(self) -> int:
        """Number of cells (``obs_manifest.json["n_points"]``)."""
        return int(self.obs_manifest["n_points"])

    @property
    def dimensions(self) -> list[int]:
        """Available embedding dimensions, ascending."""
        return [int(d) for d in self.identity["embeddings"]["available_dimensions"]]

    # ---- payloads ----------------------------------------------------------------------
    def read_payload(self, relpath: str) -> bytes:
        """Return the decoded bytes of the payload at ``relpath`` (relative to the dataset).

        A path ending in ``.gz`` is gunzipped, requiring exactly one gzip member and
        nothing after it. Paths that are absolute, contain a ``..`` segment, a backslash,
        ``?``, ``#`` or whitespace raise ``ValueError``.

        Examples
        --------
        >>> ExportReader("exports/pbmc").read_payload("points_2d.bin")[:8]  # doctest: +SKIP
        b'\\x9a\\x99\\x19\\xbf\\x00\\x00\\x80?'
        """
        problem = path_problem(relpath)
        if problem is not None:
            raise ValueError(f"payload path {relpath!r} {problem}")
        data = (self.path / relpath).read_bytes()
        if relpath.endswith(".gz"):
            try:
                data = gunzip_member(data)
            except ValueError as exc:
                raise ValueError(f"{relpath}: {exc}") from exc
        return data

    def _array(self, relpath: str, dtype: np.dtype, count: int) -> np.ndarray:
        data = self.read_payload(relpath)
        if len(data) != count * dtype.itemsize:
            raise ValueError(
                f"{relpath}: expected {count * dtype.itemsize} bytes ({count} x {dtype}), "
                f"found {len(data)}"
            )
        return np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("="))

    def _continuous(self, relpath: str, ext: str, bounds: list[Any]) -> np.ndarray:
        """Float32 values, or quantised codes decoded with ``bounds = [lo, hi]``."""
        if ext == "f32":
            return self._array(relpath, EXT_DTYPES["f32"], self.n_cells)
        codes = self._array(relpath, EXT_DTYPES[ext], self.n_cells)
        return decode_quantized(codes, bounds[0], bounds[1], 8 * EXT_DTYPES[ext].itemsize)

    def points(self, dim: int) -> np.ndarray:
        """Normalised embedding of dimension ``dim`` as float32 ``(n, dim)``.

        Raises ``KeyError`` when ``dim`` is not an available dimension.

        Examples
        --------
        >>> ExportReader("exports/pbmc").points(3).dtype  # doctest: +SKIP
        dtype('float32')
        """
        files = self.identity["embeddings"]["files"]
        key = f"{int(dim)}d"
        if key not in files:
            raise KeyError(f"no {key} embedding; available: {sorted(files)}")
        flat = self._array(files[key], EXT_DTYPES["f32"], self.n_cells * int(dim))
        return flat.reshape(self.n_cells, int(dim))

    # ---- every file ----------------------------------------------------------------------
    def file_names(self) -> set[str]:
        """Every file the dataset's identity and manifests name (relative paths): the
        manifests, points, obs/var payloads, connectivity and vector files. A server serves
        these and nothing else from the folder. Unreadable manifests raise ``ValueError``.
        """
        names = {IDENTITY_FILE, OBS_MANIFEST_FILE}
        try:
            identity = self.identity
            names.update(str(p) for p in identity["embeddings"]["files"].values())
            for spec in identity.get("vector_fields", {}).get("fields", {}).values():
                names.update(str(p) for p in spec["files"].values())
            schemas = self.obs_manifest["_obsSchemas"]
            for key, (kind, entry) in self._obs_index.items():
                if kind == "continuous":
                    names.add(payload_path(schemas["continuous"]["pathPattern"], key))
                    continue
                cat = schemas["categorical"]
                ext = {"uint8": "u8", "uint16": "u16"}[entry[2]]
                names.add(payload_path(cat["codesPathPattern"], key, ext))
                if cat.get("outlierPathPattern"):
                    names.add(payload_path(cat["outlierPathPattern"], key))
            var = self.var_manifest
            if var is not None:
                names.add(VAR_MANIFEST_FILE)
                pattern = var["_varSchema"]["pathPattern"]
                names.update(payload_path(pattern, entry[0]) for entry in var["fields"])
            conn = self.connectivity_manifest
            if conn is not None:
                names.add(CONNECTIVITY_MANIFEST_FILE)
                names.update(conn[k] for k in ("sourcesPath", "destinationsPath", "weightsPath"))
        except (KeyError, TypeError, IndexError, AttributeError) as exc:
            raise ValueError(
                f"{self.path}: a manifest is malformed ({type(exc).__name__}: {exc})"
            ) from None
        bad = sorted(n for n in names if path_problem(n) is not None)
        if bad:
            raise ValueError(f"{self.path}: a manifest names unsafe paths: {bad[:3]}")
        return names

    # ---- obs ---------------------------------------------------------------------------
    @cached_property
    def _obs_index(self) -> dict[str, tuple[str, list[Any]]]:
        manifest = self.obs_manifest
        index: dict[str, tuple[str, list[Any]]] = {}
        for entry in manifest.get("_continuousFields", []):
            index[str(entry[0])] = ("continuous", entry)
        for entry in manifest.get("_categoricalFields", []):
            index[str(entry[0])] = ("category", entry)
        return index

    def obs_keys(self) -> list[str]:
        """Exported obs keys: continuous fields first, then categorical ones."""
        return list(self._obs_index)

    def obs_field(self, key: str) -> np.ndarray | CategoricalField:
        """Decode one obs field.

        Returns a float32 array of length n for a continuous field (quantised values are
        decoded, the missing marker becomes NaN) and a :class:`CategoricalField` for a
        categorical one. Unknown keys raise ``KeyError``.

        Examples
        --------
        >>> reader = ExportReader("exports/pbmc")         # doctest: +SKIP
        >>> reader.obs_field("n_genes").dtype             # doctest: +SKIP
        dtype('float32')
        >>> reader.obs_field("cell_type").categories[:2]  # doctest: +SKIP
        ['B', 'CD4 T']
        """
        try:
            kind, entry = self._obs_index[str(key)]
        except KeyError:
            raise KeyError(f"unknown obs key {key!r}") from None
        schemas = self.obs_manifest["_obsSchemas"]
        if kind == "continuous":
            schema = schemas["continuous"]
            path = payload_path(schema["pathPattern"], key)
            return self._continuous(path, schema["ext"], entry[1:3])
        schema = schemas["categorical"]
        categories = [str(c) for c in entry[1]]
        codes_ext = {"uint8": "u8", "uint16": "u16"}[entry[2]]
        codes = self._array(
            payload_path(schema["codesPathPattern"], key, codes_ext),
            EXT_DTYPES[codes_ext],
            self.n_cells,
        )
        outliers = None
        if schema.get("outlierPathPattern"):
            path = payload_path(schema["outlierPathPattern"], key)
            outliers = self._continuous(path, schema["outlierExt"], entry[5:7])
        centroids = {int(d): list(items) for d, items in (entry[4] or {}).items()}
        return CategoricalField(
            key=str(key),
            categories=categories,
            codes=codes,
            missing=int(entry[3]),
            centroids=centroids,
            outliers=outliers,
        )

    def obs_frame(self) -> pd.DataFrame:
        """All obs fields as a DataFrame: float32 columns and categoricals (missing → NaN).

        Columns follow the manifest order (continuous fields first); the index is a
        ``RangeIndex`` because exports do not store cell names.
        """
        columns: dict[str, Any] = {}
        for key in self._obs_index:
            value = self.obs_field(key)
            columns[key] = value.to_categorical() if isinstance(value, CategoricalField) else value
        return pd.DataFrame(columns, index=pd.RangeIndex(self.n_cells))

    # ---- var ---------------------------------------------------------------------------
    @cached_property
    def _gene_index(self) -> dict[str, list[Any]]:
        manifest = self.var_manifest
        if manifest is None:
            return {}
        return {str(entry[0]): entry for entry in manifest["fields"]}

    def gene_ids(self) -> list[str]:
        """Exported gene ids in export order (empty without ``var_manifest.json``)."""
        return list(self._gene_index)

    def gene(self, gene_id: str) -> np.ndarray:
        """Decoded float32 expression of one gene over all n cells.

        Unknown ids raise ``KeyError``.

        Examples
        --------
        >>> ExportReader("exports/pbmc").gene("CD3E").shape  # doctest: +SKIP
        (2700,)
        """
        try:
            entry = self._gene_index[str(gene_id)]
        except KeyError:
            raise KeyError(f"unknown gene id {gene_id!r}") from None
        schema = self.var_manifest["_varSchema"]  # type: ignore[index]
        path = payload_path(schema["pathPattern"], gene_id)
        return self._continuous(path, schema["ext"], entry[1:3])

    # ---- connectivity and vectors ------------------------------------------------------
    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Undirected edges ``(src, dst, weights)`` with ``src < dst``.

        ``src``/``dst`` keep the manifest's index dtype (uint16 or uint32) and weights are
        float64. Raises ``LookupError`` when the dataset has no connectivity.

        Examples
        --------
        >>> src, dst, w = ExportReader("exports/pbmc").edges()  # doctest: +SKIP
        """
        manifest = self.connectivity_manifest
        if manifest is None:
            raise LookupError(f"{self.path} has no connectivity")
        n_edges = int(manifest["n_edges"])
        index_dtype = _DTYPES_BY_NAME[manifest["index_dtype"]]
        src = self._array(manifest["sourcesPath"], index_dtype, n_edges)
        dst = self._array(manifest["destinationsPath"], index_dtype, n_edges)
        weights = self._array(manifest["weightsPath"], EXT_DTYPES["f64"], n_edges)
        return src, dst, weights

    def vector_field_ids(self) -> list[str]:
        """Ids of the exported vector fields (empty when there are none)."""
        return list(self.identity.get("vector_fields", {}).get("fields", {}))

    def vectors(self, field_id: str, dim: int) -> np.ndarray:
        """Scaled float32 vectors ``(n, dim)`` of one vector field (SPEC §2.9).

        Raises ``KeyError`` for an unknown field or a dimension it does not have.

        Examples
        --------
        >>> ExportReader("exports/pbmc").vectors("velocity_umap", 2).shape  # doctest: +SKIP
        (2700, 2)
        """
        fields = self.identity.get("vector_fields", {}).get("fields", {})
        if field_id not in fields:
            raise KeyError(f"unknown vector field {field_id!r}")
        files = fields[field_id]["files"]
        key = f"{int(dim)}d"
        if key not in files:
            raise KeyError(f"vector field {field_id!r} has no {key} file")
        flat = self._array(files[key], EXT_DTYPES["f32"], self.n_cells * int(dim))
        return flat.reshape(self.n_cells, int(dim))
