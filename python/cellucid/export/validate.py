"""Check an export folder against every rule of SPEC §2 (used by ``cellucid validate``).

:func:`validate_export` takes a dataset directory or an export root and returns a list of
:class:`Violation` records; it never raises for malformed input (missing files, bad JSON,
wrong types, corrupt payloads all become violations). ``str(violation)`` is the line the CLI
prints: ``"{file}: {key}: expected {expected}, found {found}"``.

``file`` is relative to the checked folder (``pbmc/obs_manifest.json`` for a root). ``key`` is
a JSON key path (``stats.n_cells``, ``_categoricalFields[0][3]``) for JSON documents, or one
of these pseudo-keys:

``file``
    existence, naming or placement of a file or directory
``json``
    the document is not a JSON object (syntax, NaN/Infinity, duplicate keys, encoding)
``key order``
    the keys of a manifest are not in the order the spec gives
``bytes``
    the decoded byte length of a payload
``gzip``
    the gzip framing or header of a ``.gz`` payload
``values``
    the decoded content of a payload (codes, edges, weights, coordinates, quantiles)
``name``
    a dataset directory name inside an export root
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from .binary import EXT_DTYPE_NAMES, EXT_DTYPES, gunzip_member
from .catalog import is_dataset_dir, is_export_root
from .naming import (
    CONNECTIVITY_DIR,
    CONNECTIVITY_MANIFEST_FILE,
    DATASETS_FILE,
    IDENTITY_FILE,
    OBS_DIR,
    OBS_MANIFEST_FILE,
    VAR_DIR,
    VAR_MANIFEST_FILE,
    VECTORS_DIR,
    find_collisions,
    is_eligible_dataset_dir_name,
    safe_name,
)
from .reader import decode_quantized, path_problem, payload_path

__all__ = ["Violation", "format_report", "validate_export"]


@dataclass(frozen=True)
class Violation:
    """One broken rule of the export format.

    Attributes
    ----------
    file : str
        Path of the offending file or directory, relative to the checked folder.
    key : str
        JSON key path inside that file (``stats.n_cells``) or a pseudo-key such as
        ``bytes``, ``gzip``, ``values`` or ``file`` (see the module docstring).
    expected, found : str
        What the spec requires and what is there.
    """

    file: str
    key: str
    expected: str
    found: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: expected {self.expected}, found {self.found}"


def format_report(violations: Sequence[Violation]) -> str:
    """One line per violation, then a summary line.

    >>> print(format_report([Violation("a/obs_manifest.json", "n_points", "10", "9")]))
    a/obs_manifest.json: n_points: expected 10, found 9
    1 violation in 1 file
    >>> format_report([])
    'no violations'
    """
    if not violations:
        return "no violations"
    n_files = len({v.file for v in violations})
    lines = [str(v) for v in violations]
    lines.append(
        f"{len(violations)} violation{'s' if len(violations) != 1 else ''} in "
        f"{n_files} file{'s' if n_files != 1 else ''}"
    )
    return "\n".join(lines)


def validate_export(path: str | Path) -> list[Violation]:
    """Check a dataset directory or an export root against SPEC §2.

    A dataset directory (SPEC §2.2) is checked on its own. An export root is checked
    dataset by dataset (file names prefixed with the subdirectory), together with its
    ``datasets.json`` (SPEC §2.11, §2.12 item 1), the uniqueness of identity ids and the
    eligibility of dataset directory names.

    Parameters
    ----------
    path : str or Path
        The folder to check.

    Returns
    -------
    list of Violation
        Empty when the folder conforms. Malformed input never raises.

    Examples
    --------
    >>> for violation in validate_export("exports/pbmc"):  # doctest: +SKIP
    ...     print(violation)
    obs/age.values.f32: bytes: expected 10800 (2700 × float32), found 10796
    """
    root = Path(path)
    out: list[Violation] = []
    try:
        if not root.exists():
            out.append(Violation(".", "file", "a dataset directory or an export root", "missing"))
        elif not root.is_dir():
            out.append(Violation(".", "file", "a dataset directory or an export root", "a file"))
        elif is_dataset_dir(root):
            _DatasetCheck(root, "", out).run()
        elif is_export_root(root):
            _check_root(root, out)
        else:
            out.append(
                Violation(
                    ".",
                    "file",
                    "a dataset directory (dataset_identity.json, obs_manifest.json and a "
                    "points_{d}d.bin[.gz]) or an export root with dataset subdirectories",
                    "neither",
                )
            )
    except Exception as exc:  # a validator reports, it does not crash
        out.append(Violation(".", "file", "a checkable folder", _error(exc)))
    return out


# ---- small predicates and formatting ---------------------------------------------------------
_BAD: Any = object()  # returned by _DatasetCheck.field for a missing or invalid value
_CREATED_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_EXT_BY_DTYPE = {name: ext for ext, name in EXT_DTYPE_NAMES.items()}
_MISSING_CODE = {"uint8": 255, "uint16": 65535}
_BROWSER_EDGE_BUDGET = 536_870_912
_GZ_FNAME = 0x08
_POINTS_NAME = re.compile(r"^points_(\d+)d\.bin(\.gz)?$")


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 100 else text[:97] + "..."


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_finite(v: Any) -> bool:
    return _is_num(v) and math.isfinite(v)


def _is_text(v: Any) -> bool:
    return isinstance(v, str) and bool(v.strip())


def _is_level(v: Any) -> bool:
    return v is None or (_is_int(v) and 1 <= v <= 9)


def _is_bits(v: Any) -> bool:
    return v is None or (_is_int(v) and v in (8, 16))


def _is_dims(v: Any) -> bool:
    return (
        isinstance(v, list)
        and bool(v)
        and all(_is_int(d) and d in (1, 2, 3) for d in v)
        and all(a < b for a, b in itertools.pairwise(v))
    )


def _is_identity_id(v: Any) -> bool:
    return (
        isinstance(v, str)
        and bool(v)
        and v == v.strip()
        and not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in v)
    )


def _is_timestamp(v: Any) -> bool:
    if not isinstance(v, str) or not _CREATED_AT.match(v):
        return False
    try:
        datetime.strptime(v, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return False
    return True


def _is_absolute(text: str) -> bool:
    return PurePosixPath(text).is_absolute() or bool(PureWindowsPath(text).drive)


def _join(prefix: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else key


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key!r}")
        seen[key] = value
    return seen


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _load_json_text(data: bytes) -> Any:
    """Parse like a browser's strict ``JSON.parse``: UTF-8, no NaN/Infinity; no duplicates."""
    return json.loads(
        data.decode("utf-8"),
        object_pairs_hook=_no_duplicate_keys,
        parse_constant=_reject_constant,
    )


def _quantised_bits(ext: str) -> int | None:
    return {"u8": 8, "u16": 16}.get(ext)


def _category_stats(
    points: np.ndarray, codes: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-category mean, minimum and maximum of ``points`` (rows with codes < k)."""
    pts = points.astype(np.float64)
    counts = np.maximum(np.bincount(codes, minlength=k), 1)[:, None]
    sums = np.stack(
        [np.bincount(codes, weights=pts[:, axis], minlength=k) for axis in range(pts.shape[1])],
        axis=1,
    )
    lows = np.full((k, pts.shape[1]), np.inf)
    highs = np.full((k, pts.shape[1]), -np.inf)
    np.minimum.at(lows, codes, pts)
    np.maximum.at(highs, codes, pts)
    return sums / counts, lows, highs


# ---- one dataset directory -------------------------------------------------------------------
@dataclass
class _ObsField:
    """What the payload checks need from one valid categorical tuple."""

    index: int
    key: str
    categories: list[str]
    dtype: str
    centroids: dict[str, list[Any]] | None
    bounds: list[float]


class _DatasetCheck:
    """Collects the violations of one dataset directory (SPEC §2.1-§2.10, §2.12)."""

    def __init__(self, directory: Path, prefix: str, out: list[Violation]) -> None:
        self.dir = directory
        self.prefix = prefix
        self.out = out
        self.referenced: set[str] = set()
        self.unscannable: set[str] = set()
        self.identity: dict[str, Any] | None = None
        self.obs: dict[str, Any] | None = None
        self.var: dict[str, Any] | None = None
        self.conn: dict[str, Any] | None = None
        self.n: int | None = None
        self.dims: list[int] = []
        self.compression: int | None = None
        self.points: dict[int, np.ndarray] = {}
        self.points_files: dict[int, str] = {}
        self.vector_files: list[tuple[str, int]] = []

    # -- reporting helpers
    def add(self, file: str, key: str, expected: str, found: str) -> None:
        self.out.append(Violation(self.prefix + file, key, expected, found))

    def field(
        self,
        file: str,
        obj: Any,
        key: str,
        ok: Callable[[Any], bool],
        expected: str,
        path: str = "",
    ) -> Any:
        """``obj[key]`` if present and ``ok``; otherwise ``_BAD`` (reporting a bad value).

        A missing key is not reported here: :meth:`keys` reports it.
        """
        if not isinstance(obj, dict) or key not in obj:
            return _BAD
        value = obj[key]
        if ok(value):
            return value
        self.add(file, _join(path, key), expected, _show(value))
        return _BAD

    def keys(
        self,
        file: str,
        obj: dict[str, Any],
        path: str,
        required: Sequence[str],
        optional: Iterable[str] = (),
        *,
        ordered: bool = False,
    ) -> bool:
        """Report missing and unknown keys (and the order, if ``ordered``); True if clean."""
        allowed = set(required) | set(optional)
        clean = True
        for key in required:
            if key not in obj:
                self.add(file, _join(path, key), "present", "missing")
                clean = False
        for key in obj:
            if key not in allowed:
                self.add(file, _join(path, key), "no such key", "an unknown key")
                clean = False
        if clean and ordered and list(obj) != list(required):
            self.add(file, _join(path, "key order"), ", ".join(required), ", ".join(obj))
        return clean

    def obj(self, file: str, parent: dict[str, Any], key: str, path: str = "") -> Any:
        """``parent[key]`` when it is a JSON object, else ``_BAD`` (reporting a wrong type)."""
        return self.field(file, parent, key, lambda v: isinstance(v, dict), "an object", path)

    def lst(self, file: str, parent: dict[str, Any], key: str, path: str = "") -> Any:
        """``parent[key]`` when it is a JSON array, else ``_BAD`` (reporting a wrong type)."""
        return self.field(file, parent, key, lambda v: isinstance(v, list), "an array", path)

    def equal(self, file: str, key: str, found: Any, expected: Any, why: str = "") -> bool:
        if found is _BAD or (found == expected and type(found) is type(expected)):
            return True
        self.add(file, key, _show(expected) + (f" ({why})" if why else ""), _show(found))
        return False

    # -- file helpers
    def load_json(self, name: str, *, required: bool = True) -> dict[str, Any] | None:
        path = self.dir / name
        if not path.is_file():
            if required:
                self.add(name, "file", "present", "missing")
            return None
        try:
            value = _load_json_text(path.read_bytes())
        except OSError as exc:
            self.add(name, "file", "a readable file", _error(exc))
            return None
        except (ValueError, RecursionError) as exc:
            self.add(
                name, "json", "strict JSON (UTF-8, no NaN/Infinity, no duplicate keys)", _error(exc)
            )
            return None
        if not isinstance(value, dict):
            self.add(name, "json", "a JSON object", type(value).__name__)
            return None
        return value

    def check_path(self, file: str, key: str, value: Any) -> str | None:
        """A manifest path value, if it obeys SPEC §2.12 item 9 (else reported, None)."""
        problem = path_problem(value)
        if problem is None:
            return value
        self.add(
            file,
            key,
            "a relative path without '..', '?', '#', whitespace or backslash",
            f"{_show(value)}, which {problem}",
        )
        return None

    def read(self, rel: str, dtype: np.dtype, count: int | None) -> np.ndarray | None:
        """Read, gunzip and length-check one payload; None (reported) when unusable.

        Also records ``rel`` as referenced and checks the ``.gz`` suffix against the
        compression setting and that no plain/``.gz`` twin lies beside it.
        """
        self.referenced.add(rel)
        gz = rel.endswith(".gz")
        twin = rel[:-3] if gz else rel + ".gz"
        path, twin_path = self.dir / rel, self.dir / twin
        if twin_path.is_file():
            self.referenced.add(twin)
        if not path.is_file():
            found = f"missing ({twin} is there instead)" if twin_path.is_file() else "missing"
            self.add(rel, "file", "present", found)
            return None
        if twin_path.is_file():
            self.add(
                twin,
                "file",
                f"absent (the manifests name {rel})",
                "a plain and a .gz copy side by side",
            )
        if gz != bool(self.compression):
            suffix = "ending" if self.compression else "not ending"
            self.add(rel, "file", f"a name {suffix} in .gz (compression {self.compression})", rel)
        try:
            data = path.read_bytes()
        except OSError as exc:
            self.add(rel, "file", "a readable file", _error(exc))
            return None
        if gz:
            self.check_gzip_header(rel, data)
            try:
                data = gunzip_member(data)
            except ValueError as exc:
                self.add(
                    rel, "gzip", "exactly one complete gzip member and nothing after it", str(exc)
                )
                return None
        if count is None:
            return None
        size = count * dtype.itemsize
        if len(data) != size:
            self.add(rel, "bytes", f"{size} ({count} × {dtype.name})", str(len(data)))
            return None
        return np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("="))

    def check_gzip_header(self, rel: str, data: bytes) -> None:
        if len(data) < 10 or data[:3] != b"\x1f\x8b\x08":
            return  # gunzip_member reports it
        if data[3] & _GZ_FNAME:
            self.add(rel, "gzip", "a header without an original file name", "a file name")
        mtime = int.from_bytes(data[4:8], "little")
        if mtime:
            self.add(rel, "gzip", "header mtime 0", str(mtime))
        if data[9] != 0xFF:
            self.add(rel, "gzip", "header OS byte 0xFF", f"0x{data[9]:02X}")

    @property
    def gz(self) -> str:
        return ".gz" if self.compression else ""

    # -- driver
    def run(self) -> _DatasetCheck:
        try:
            self.identity = self.load_json(IDENTITY_FILE)
            self.obs = self.load_json(OBS_MANIFEST_FILE)
            self.var = self.load_json(VAR_MANIFEST_FILE, required=False)
            self.conn = self.load_json(CONNECTIVITY_MANIFEST_FILE, required=False)
            self.derive_context()
            self.check_identity()
            self.check_points()
            self.check_obs()
            self.check_var()
            self.check_connectivity()
            self.check_vectors()
            self.check_cross_file()
            self.check_layout()
        except Exception as exc:  # a validator reports, it does not crash
            self.add(".", "file", "a checkable dataset directory", _error(exc))
        return self

    def derive_context(self) -> None:
        """Pick n, the dimensions and the compression level the other checks compare to."""
        identity, obs = self.identity or {}, self.obs or {}
        stats = identity.get("stats") if isinstance(identity.get("stats"), dict) else {}
        settings = identity.get("export_settings")
        if _is_level(obs.get("compression", _BAD)):
            self.compression = obs["compression"]
        elif isinstance(settings, dict) and _is_level(settings.get("compression", _BAD)):
            self.compression = settings["compression"]
        embeddings = identity.get("embeddings")
        dims = embeddings.get("available_dimensions") if isinstance(embeddings, dict) else None
        if _is_dims(dims):
            self.dims = list(dims)
        else:
            self.dims = [
                d
                for d in (1, 2, 3)
                if any((self.dir / f"points_{d}d.bin{s}").is_file() for s in ("", ".gz"))
            ]
        # n: the value most sources agree on (ties: identity first), so that one wrong
        # count is reported once instead of through every payload length.
        sources = [stats.get("n_cells"), obs.get("n_points")]
        sources += [(self.var or {}).get("n_points"), (self.conn or {}).get("n_cells")]
        candidates = [v for v in sources if _is_int(v) and v > 0]
        if candidates:
            self.n = Counter(candidates).most_common(1)[0][0]

    # -- dataset_identity.json (SPEC §2.10)
    def check_identity(self) -> None:
        ident = self.identity
        if ident is None:
            return
        f = IDENTITY_FILE
        self.keys(
            f,
            ident,
            "",
            (
                "version",
                "id",
                "name",
                "description",
                "cellucid_data_version",
                "stats",
                "embeddings",
                "obs_fields",
            ),
            ("created_at", "export_settings", "source", "vector_fields"),
        )
        self.field(f, ident, "version", lambda v: _is_int(v) and v == 2, "2")
        self.field(
            f,
            ident,
            "id",
            _is_identity_id,
            "a non-empty string without surrounding whitespace or control characters",
        )
        self.field(f, ident, "name", _is_text, "a string with a non-whitespace character")
        self.field(f, ident, "description", lambda v: isinstance(v, str), "a string")
        self.field(f, ident, "created_at", _is_timestamp, "a UTC time as YYYY-MM-DDTHH:MM:SSZ")
        self.field(f, ident, "cellucid_data_version", _is_text, "a non-empty version string")
        stats = self.obj(f, ident, "stats")
        if stats is not _BAD:
            self.check_stats_shape(stats)
        embeddings = self.obj(f, ident, "embeddings")
        if embeddings is not _BAD:
            self.check_embeddings(embeddings)
        obs_fields = self.lst(f, ident, "obs_fields")
        if obs_fields is not _BAD:
            self.check_obs_fields_shape(obs_fields)
        settings = self.obj(f, ident, "export_settings")
        if settings is not _BAD:
            p = "export_settings"
            self.keys(
                f,
                settings,
                p,
                (
                    "compression",
                    "var_quantization",
                    "obs_continuous_quantization",
                    "obs_categorical_dtype",
                ),
            )
            self.field(f, settings, "compression", _is_level, "null or an integer 1-9", p)
            for key in ("var_quantization", "obs_continuous_quantization"):
                self.field(f, settings, key, _is_bits, "null, 8 or 16", p)
            self.field(
                f,
                settings,
                "obs_categorical_dtype",
                lambda v: v in ("auto", "uint8", "uint16"),
                '"auto", "uint8" or "uint16"',
                p,
            )
        source = self.obj(f, ident, "source")
        if source is not _BAD:
            self.keys(f, source, "source", ("name",), ("url", "citation", "filename"))
            for key in ("name", "url", "citation", "filename"):
                self.field(
                    f, source, key, _is_text, "a string with a non-whitespace character", "source"
                )
            for key in ("name", "filename"):
                self.field(
                    f,
                    source,
                    key,
                    lambda v: not isinstance(v, str) or not _is_absolute(v),
                    "a name, not an absolute path",
                    "source",
                )
        vector_fields = self.obj(f, ident, "vector_fields")
        if vector_fields is not _BAD:
            self.check_vector_fields_shape(vector_fields)
        elif "vector_fields" in ident:
            self.unscannable.add(VECTORS_DIR)

    def check_stats_shape(self, stats: dict[str, Any]) -> None:
        f, p = IDENTITY_FILE, "stats"
        self.keys(
            f,
            stats,
            p,
            (
                "n_cells",
                "n_genes",
                "n_obs_fields",
                "n_categorical_fields",
                "n_continuous_fields",
                "has_connectivity",
                "n_edges",
            ),
        )
        self.field(f, stats, "n_cells", lambda v: _is_int(v) and v >= 1, "an integer ≥ 1", p)
        counts = {}
        for key in ("n_genes", "n_obs_fields", "n_categorical_fields", "n_continuous_fields"):
            counts[key] = self.field(
                f, stats, key, lambda v: _is_int(v) and v >= 0, "an integer ≥ 0", p
            )
        has = self.field(
            f, stats, "has_connectivity", lambda v: isinstance(v, bool), "true or false", p
        )
        edges = self.field(
            f,
            stats,
            "n_edges",
            lambda v: v is None or (_is_int(v) and v >= 0),
            "null or an integer ≥ 0",
            p,
        )
        if has is not _BAD and edges is not _BAD and (edges is None) == has:
            self.add(
                f, "stats.n_edges", "null exactly when has_connectivity is false", _show(edges)
            )
        if _BAD not in counts.values():
            total = counts["n_categorical_fields"] + counts["n_continuous_fields"]
            self.equal(
                f,
                "stats.n_obs_fields",
                counts["n_obs_fields"],
                total,
                "n_categorical_fields + n_continuous_fields",
            )

    def check_embeddings(self, emb: dict[str, Any]) -> None:
        f, p = IDENTITY_FILE, "embeddings"
        self.keys(f, emb, p, ("available_dimensions", "default_dimension", "files"))
        dims = self.field(
            f,
            emb,
            "available_dimensions",
            _is_dims,
            "a non-empty, strictly increasing list of 1, 2, 3",
            p,
        )
        if dims is _BAD:
            return
        self.equal(
            f,
            "embeddings.default_dimension",
            emb.get("default_dimension", _BAD),
            max(dims),
            "the largest available dimension",
        )
        files = self.obj(f, emb, "files", p)
        if files is _BAD:
            return
        self.keys(f, files, "embeddings.files", [f"{d}d" for d in dims])
        for d in dims:
            expected = f"points_{d}d.bin{self.gz}"
            value = files.get(f"{d}d", _BAD)
            if value is _BAD:
                continue
            self.equal(f, f"embeddings.files.{d}d", value, expected)
            rel = self.check_path(f, f"embeddings.files.{d}d", value)
            self.points_files[d] = rel if rel is not None else expected

    def check_obs_fields_shape(self, fields: list[Any]) -> None:
        f = IDENTITY_FILE
        seen: set[str] = set()
        seen_category = False
        for i, entry in enumerate(fields):
            p = f"obs_fields[{i}]"
            if not isinstance(entry, dict):
                self.add(f, p, "an object", _show(entry))
                continue
            kind = entry.get("kind")
            if kind == "continuous":
                self.keys(f, entry, p, ("key", "kind"))
                if seen_category:
                    self.add(
                        f,
                        "obs_fields",
                        "continuous fields first, then categorical fields",
                        f"continuous {_show(entry.get('key'))} after a categorical field",
                    )
            elif kind == "category":
                self.keys(f, entry, p, ("key", "kind", "n_categories"))
                self.field(
                    f, entry, "n_categories", lambda v: _is_int(v) and v >= 0, "an integer ≥ 0", p
                )
                seen_category = True
            else:
                self.add(f, f"{p}.kind", '"continuous" or "category"', _show(kind))
            key = self.field(f, entry, "key", lambda v: isinstance(v, str), "a string", p)
            if key is not _BAD:
                if key in seen:
                    self.add(f, f"{p}.key", "a key not listed before", _show(key))
                seen.add(key)

    def check_vector_fields_shape(self, vf: dict[str, Any]) -> None:
        f, p = IDENTITY_FILE, "vector_fields"
        self.keys(f, vf, p, ("default_field", "fields"))
        fields = self.field(
            f, vf, "fields", lambda v: isinstance(v, dict) and bool(v), "a non-empty object", p
        )
        if fields is _BAD:
            self.unscannable.add(VECTORS_DIR)
            return
        ids = list(fields)
        if ids != sorted(ids):
            self.add(f, "vector_fields.fields", "field ids in sorted order", _show(ids))
        default = "velocity_umap" if "velocity_umap" in fields else min(ids)
        self.equal(
            f,
            "vector_fields.default_field",
            vf.get("default_field", _BAD),
            default,
            "velocity_umap if present, else the alphabetically first id",
        )
        for field_id, entry in fields.items():
            fp = f"vector_fields.fields.{field_id}"
            if not field_id or safe_name(field_id) != field_id:
                self.add(
                    f,
                    fp,
                    "a field id equal to its safe name (SPEC §2.4)",
                    f"{_show(field_id)} (safe form {safe_name(field_id)!r})",
                )
            if not isinstance(entry, dict):
                self.add(f, fp, "an object", _show(entry))
                continue
            self.keys(
                f,
                entry,
                fp,
                ("label", "basis", "available_dimensions", "default_dimension", "files"),
            )
            self.equal(f, f"{fp}.label", entry.get("label", _BAD), field_id, "the field id")
            self.equal(f, f"{fp}.basis", entry.get("basis", _BAD), "umap")
            dims = self.field(
                f,
                entry,
                "available_dimensions",
                lambda v: _is_dims(v) and set(v) <= set(self.dims),
                f"a strictly increasing list of embedding dimensions {self.dims}",
                fp,
            )
            if dims is _BAD:
                continue
            self.equal(
                f,
                f"{fp}.default_dimension",
                entry.get("default_dimension", _BAD),
                max(dims),
                "the largest of its dimensions",
            )
            files = self.obj(f, entry, "files", fp)
            if files is _BAD:
                continue
            self.keys(f, files, f"{fp}.files", [f"{d}d" for d in dims])
            for d in dims:
                value = files.get(f"{d}d", _BAD)
                if value is _BAD:
                    continue
                self.equal(f, f"{fp}.files.{d}d", value, f"vectors/{field_id}_{d}d.bin{self.gz}")
                rel = self.check_path(f, f"{fp}.files.{d}d", value)
                if rel is not None:
                    self.vector_files.append((rel, d))

    # -- points_{d}d.bin (SPEC §2.5)
    def check_points(self) -> None:
        if not self.dims:
            self.add("points_1d.bin", "file", "at least one points_{d}d.bin[.gz]", "none")
        for d in self.dims:
            rel = self.points_files.get(d, f"points_{d}d.bin{self.gz}")
            count = self.n * d if self.n else None
            flat = self.read(rel, EXT_DTYPES["f32"], count)
            if flat is None or self.n is None:
                continue
            points = flat.reshape(self.n, d)
            if not np.isfinite(points).all():
                bad = int((~np.isfinite(points)).any(axis=1).sum())
                self.add(rel, "values", "finite coordinates", f"{bad} cell(s) with NaN or ±Inf")
                continue
            self.points[d] = points
            self.check_normalised(rel, points)

    def check_normalised(self, rel: str, points: np.ndarray) -> None:
        lo = points.min(axis=0).astype(np.float64)
        hi = points.max(axis=0).astype(np.float64)
        span = float((hi - lo).max())
        centred = np.abs(lo + hi).max() <= 1e-5
        # a degenerate embedding (every point equal) normalises to all zeros
        degenerate = span < 1e-6
        ok = np.abs(points).max() <= 1e-6 if degenerate else abs(span - 2.0) <= 1e-5 and centred
        if not ok:
            ranges = ", ".join(f"[{a:.6g}, {b:.6g}]" for a, b in zip(lo, hi, strict=True))
            self.add(
                rel,
                "values",
                "coordinates normalised per SPEC §2.5 (each axis centred on 0, the longest "
                "spanning [-1, 1])",
                f"axis ranges {ranges}",
            )

    # -- obs_manifest.json and obs/ (SPEC §2.6)
    def check_obs(self) -> None:
        obs = self.obs
        if obs is None:
            self.unscannable.add(OBS_DIR)
            return
        f = OBS_MANIFEST_FILE
        self.keys(
            f,
            obs,
            "",
            (
                "_format",
                "n_points",
                "centroid_outlier_quantile",
                "latent_key",
                "compression",
                "_obsSchemas",
                "_continuousFields",
                "_categoricalFields",
            ),
            ordered=True,
        )
        self.equal(f, "_format", obs.get("_format", _BAD), "compact_v1")
        self.check_n(f, "n_points", obs.get("n_points", _BAD))
        self.field(
            f,
            obs,
            "centroid_outlier_quantile",
            lambda v: v is None or (_is_num(v) and 0.5 < v < 1),
            "null or a number in (0.5, 1)",
        )
        self.field(
            f, obs, "latent_key", lambda v: v is None or _is_text(v), "null or a non-empty string"
        )
        self.field(f, obs, "compression", _is_level, "null or an integer 1-9")
        schemas = self.obj(f, obs, "_obsSchemas")
        cont = self.lst(f, obs, "_continuousFields")
        cat = self.lst(f, obs, "_categoricalFields")
        if _BAD in (schemas, cont, cat):
            self.unscannable.add(OBS_DIR)
            return
        wanted = [k for k, fields in (("continuous", cont), ("categorical", cat)) if fields]
        if not self.keys(f, schemas, "_obsSchemas", wanted):
            self.unscannable.add(OBS_DIR)
        self.check_obs_names(cont, cat)
        if cont and "continuous" in schemas:
            schema = self.check_values_schema(
                f, schemas["continuous"], "_obsSchemas.continuous", OBS_DIR
            )
            if schema is None:
                self.unscannable.add(OBS_DIR)
            else:
                for i, entry in enumerate(cont):
                    self.check_continuous_entry(f, f"_continuousFields[{i}]", entry, *schema)
        if cat and "categorical" in schemas:
            schema_info = self.check_categorical_schema(schemas["categorical"])
            if schema_info is None:
                self.unscannable.add(OBS_DIR)
            else:
                for i, entry in enumerate(cat):
                    self.check_categorical_entry(i, entry, *schema_info)

    def check_n(self, file: str, key: str, value: Any) -> None:
        if value is _BAD:
            return
        if not (_is_int(value) and value >= 1):
            self.add(file, key, "an integer ≥ 1", _show(value))
        elif self.n is not None and value != self.n:
            self.add(file, key, f"{self.n} (the number of cells)", _show(value))

    def check_obs_names(self, cont: list[Any], cat: list[Any]) -> None:
        """SPEC §2.4, §2.12 item 9: obs keys have distinct, non-empty safe names."""
        paths: dict[str, list[str]] = {}
        for group, fields in (("_continuousFields", cont), ("_categoricalFields", cat)):
            for i, entry in enumerate(fields):
                if isinstance(entry, list) and entry and isinstance(entry[0], str):
                    paths.setdefault(entry[0], []).append(f"{group}[{i}][0]")
        self.check_names(OBS_MANIFEST_FILE, paths, "obs key")

    def check_names(self, file: str, paths: dict[str, list[str]], what: str) -> None:
        keys = [key for key, where in paths.items() for _ in where]
        collisions, unnamed = find_collisions(keys)
        for key in unnamed:
            for where in paths[key]:
                self.add(
                    file, where, f"an {what} with a letter, digit or '-' (SPEC §2.4)", _show(key)
                )
        for safe, group in collisions.items():
            first = group[0]
            reported = set()
            for key in group:
                for where in paths[key]:
                    if where == paths[first][0] or where in reported:
                        continue
                    reported.add(where)
                    self.add(
                        file,
                        where,
                        f"an {what} whose safe file name no other key has",
                        f"{_show(key)}, which maps to {safe!r} like {_show(first)}",
                    )

    def check_values_schema(
        self, file: str, schema: Any, path: str, directory: str, *, kind: bool = False
    ) -> tuple[str, str] | None:
        """A continuous schema (SPEC §2.6.3, §2.7); ``(pattern, ext)`` when payloads can be read."""
        if not isinstance(schema, dict):
            self.add(file, path, "an object", _show(schema))
            return None
        ext = schema.get("ext")
        required = ["kind"] if kind else []
        required += ["pathPattern", "ext", "dtype", "quantized"]
        if ext in ("u8", "u16"):
            required.append("quantizationBits")
        self.keys(file, schema, path, required)
        if kind:
            self.equal(file, f"{path}.kind", schema.get("kind", _BAD), "continuous")
        if ext not in ("f32", "u8", "u16"):
            self.add(file, f"{path}.ext", '"f32", "u8" or "u16"', _show(ext))
            return None
        bits = _quantised_bits(ext)
        self.equal(
            file,
            f"{path}.dtype",
            schema.get("dtype", _BAD),
            EXT_DTYPE_NAMES[ext],
            f"the dtype of ext {ext}",
        )
        self.equal(
            file, f"{path}.quantized", schema.get("quantized", _BAD), bits is not None, f"ext {ext}"
        )
        if bits is not None:
            self.equal(
                file,
                f"{path}.quantizationBits",
                schema.get("quantizationBits", _BAD),
                bits,
                f"ext {ext}",
            )
        pattern = schema.get("pathPattern", _BAD)
        self.equal(
            file, f"{path}.pathPattern", pattern, f"{directory}/{{key}}.values.{ext}{self.gz}"
        )
        return self.usable_pattern(file, f"{path}.pathPattern", pattern, ext)

    def usable_pattern(self, file: str, key: str, pattern: Any, ext: str) -> tuple[str, str] | None:
        if pattern is _BAD:
            return None
        if self.check_path(file, key, pattern) is None or "{key}" not in pattern:
            return None
        return pattern, ext

    def check_categorical_schema(
        self, schema: Any
    ) -> tuple[str, tuple[str, str] | None, bool] | None:
        """``(codes pattern, (outlier pattern, ext) or None, quantised)`` or None if unusable."""
        f, p = OBS_MANIFEST_FILE, "_obsSchemas.categorical"
        if not isinstance(schema, dict):
            self.add(f, p, "an object", _show(schema))
            return None
        self.keys(
            f,
            schema,
            p,
            (
                "codesPathPattern",
                "outlierPathPattern",
                "outlierExt",
                "outlierDtype",
                "outlierQuantized",
            ),
        )
        codes = schema.get("codesPathPattern", _BAD)
        self.equal(f, f"{p}.codesPathPattern", codes, f"obs/{{key}}.codes.{{ext}}{self.gz}")
        if codes is _BAD or self.check_path(f, f"{p}.codesPathPattern", codes) is None:
            return None
        latent = (self.obs or {}).get("latent_key")
        if latent is None:
            for key in ("outlierPathPattern", "outlierExt", "outlierDtype"):
                self.equal(f, f"{p}.{key}", schema.get(key, _BAD), None, "latent_key is null")
            self.equal(
                f,
                f"{p}.outlierQuantized",
                schema.get("outlierQuantized", _BAD),
                False,
                "latent_key is null",
            )
            return codes, None, False
        ext = schema.get("outlierExt")
        if ext not in ("f32", "u8", "u16"):
            self.add(f, f"{p}.outlierExt", '"f32", "u8" or "u16" (latent_key is set)', _show(ext))
            return None
        quantised = ext != "f32"
        self.equal(
            f,
            f"{p}.outlierDtype",
            schema.get("outlierDtype", _BAD),
            EXT_DTYPE_NAMES[ext],
            f"the dtype of outlierExt {ext}",
        )
        self.equal(
            f,
            f"{p}.outlierQuantized",
            schema.get("outlierQuantized", _BAD),
            quantised,
            f"outlierExt {ext}",
        )
        pattern = schema.get("outlierPathPattern", _BAD)
        self.equal(f, f"{p}.outlierPathPattern", pattern, f"obs/{{key}}.outliers.{ext}{self.gz}")
        outliers = self.usable_pattern(f, f"{p}.outlierPathPattern", pattern, ext)
        if outliers is None:
            return None
        return codes, outliers, quantised

    def check_bounds(self, file: str, path: str, entry: list[Any], at: int) -> list[float] | None:
        """``entry[at:at+2]`` as finite ``lo < hi`` (SPEC §2.6.6), else reported and None."""
        lo, hi = entry[at], entry[at + 1]
        if not (_is_finite(lo) and _is_finite(hi) and lo < hi):
            self.add(file, f"{path}[{at}]", "finite min < max", f"min {_show(lo)}, max {_show(hi)}")
            return None
        return [float(lo), float(hi)]

    def check_continuous_entry(
        self, file: str, path: str, entry: Any, pattern: str, ext: str
    ) -> None:
        """A ``[key]`` / ``[key, min, max]`` tuple (SPEC §2.6.4, §2.7) and its payload."""
        bits = _quantised_bits(ext)
        shape = "[key, min, max] (quantised)" if bits else "[key] (float32)"
        if not isinstance(entry, list) or len(entry) != (3 if bits else 1):
            self.add(file, path, shape, _show(entry))
            return
        if not isinstance(entry[0], str):
            self.add(file, f"{path}[0]", "a string key", _show(entry[0]))
            return
        bounds = self.check_bounds(file, path, entry, 1) if bits else []
        if bounds is None:
            return
        self.read_values(self.resolve(pattern, entry[0]), ext, bounds)

    def resolve(self, pattern: str, key: str, ext: str | None = None) -> str | None:
        try:
            return payload_path(pattern, key, ext)
        except ValueError:
            return None  # reported by check_names

    def read_values(self, rel: str | None, ext: str, bounds: list[float]) -> np.ndarray | None:
        """Read float32 or quantised values and check the quantisation range."""
        if rel is None:
            return None
        raw = self.read(rel, EXT_DTYPES[ext], self.n)
        bits = _quantised_bits(ext)
        if raw is None or bits is None:
            return raw
        self.check_quantised_range(rel, raw, bounds, bits)
        return decode_quantized(raw, bounds[0], bounds[1], bits)

    def check_quantised_range(
        self, rel: str, codes: np.ndarray, bounds: list[float], bits: int
    ) -> None:
        """SPEC §2.6.6: min/max come from the data, so codes span exactly 0…maxq."""
        maxq = (1 << bits) - 2
        present = codes[codes != maxq + 1]
        lo, hi = bounds
        if present.size == 0:
            if (lo, hi) != (0.0, 1.0):
                self.add(
                    rel,
                    "values",
                    "min 0, max 1 for a field without finite values",
                    f"min {lo!r}, max {hi!r}",
                )
            return
        low, high = int(present.min()), int(present.max())
        constant = high == 0 and hi in (lo + 1, float(np.nextafter(lo, np.inf)))
        if low != 0 or (high != maxq and not constant):
            self.add(
                rel,
                "values",
                f"codes spanning 0…{maxq} (min and max taken from the data, SPEC §2.6.6)",
                f"codes {low}…{high}",
            )

    def check_categorical_entry(
        self,
        index: int,
        entry: Any,
        codes_pattern: str,
        outliers: tuple[str, str] | None,
        quantised: bool,
    ) -> None:
        """A categorical tuple (SPEC §2.6.4) and its codes, centroids and outliers."""
        f, p = OBS_MANIFEST_FILE, f"_categoricalFields[{index}]"
        length = 7 if quantised else 5
        if not isinstance(entry, list) or len(entry) != length:
            shape = "[key, categories, codesDtype, codesMissing, centroidsByDim"
            shape += ", outlierMin, outlierMax]" if quantised else "]"
            self.add(f, p, shape, _show(entry))
            return
        key, categories, dtype, missing, centroids = entry[:5]
        if not isinstance(key, str):
            self.add(f, f"{p}[0]", "a string key", _show(key))
            return
        ok = self.check_categories(f"{p}[1]", categories)
        if not isinstance(dtype, str) or dtype not in _MISSING_CODE:
            self.add(f, f"{p}[2]", '"uint8" or "uint16"', _show(dtype))
            return
        self.equal(f, f"{p}[3]", missing, _MISSING_CODE[dtype], f"codesDtype {dtype}")
        if ok and len(categories) > _MISSING_CODE[dtype]:
            self.add(
                f, f"{p}[2]", f"a dtype with room for {len(categories)} categories", _show(dtype)
            )
        centroids_ok = self.check_centroids_shape(f"{p}[4]", centroids, categories if ok else [])
        bounds = self.check_bounds(f, p, entry, 5) if quantised else []
        # quantiles lie in (0, 1]; a constant field has hi = lo + 1 and one without any
        # quantile the default 0, 1 (checked against the payload in check_outliers)
        if (
            bounds
            and bounds != [0.0, 1.0]
            and not (0 < bounds[0] <= 1 and (bounds[1] <= 1 or bounds[0] + 1 == bounds[1]))
        ):
            self.add(
                f,
                f"{p}[5]",
                "data-derived outlier bounds inside (0, 1]",
                f"min {bounds[0]!r}, max {bounds[1]!r}",
            )
        if not ok or self.n is None:
            return
        field = _ObsField(
            index, key, categories, dtype, centroids if centroids_ok else None, bounds or []
        )
        codes_rel = self.resolve(codes_pattern, key, _EXT_BY_DTYPE[dtype])
        codes = None
        if codes_rel is not None:
            codes = self.read(codes_rel, EXT_DTYPES[_EXT_BY_DTYPE[dtype]], self.n)
        if codes is not None:
            self.check_codes(codes_rel, codes, field)  # type: ignore[arg-type]
        if outliers is not None and bounds is not None:
            rel = self.resolve(outliers[0], key)
            values = self.read_values(rel, outliers[1], field.bounds)
            if values is not None and codes is not None:
                self.check_outliers(rel, values, codes, field, quantised)  # type: ignore[arg-type]

    def check_categories(self, path: str, categories: Any) -> bool:
        f = OBS_MANIFEST_FILE
        if not isinstance(categories, list) or not all(_is_text(c) for c in categories):
            self.add(
                f, path, "a list of strings with a non-whitespace character", _show(categories)
            )
            return False
        duplicates = sorted(c for c, count in Counter(categories).items() if count > 1)
        if duplicates:
            self.add(f, path, "unique category labels", f"duplicates {_show(duplicates)}")
            return False
        return True

    def check_centroids_shape(self, path: str, by_dim: Any, categories: list[str]) -> bool:
        """``centroidsByDim`` (SPEC §2.6.4, §2.6.8): one list per dimension of exact entries."""
        f = OBS_MANIFEST_FILE
        if not isinstance(by_dim, dict):
            self.add(f, path, "an object", _show(by_dim))
            return False
        ok = self.keys(f, by_dim, path, [str(d) for d in self.dims])
        empty = (self.obs or {}).get("centroid_outlier_quantile") is None
        order = {c: i for i, c in enumerate(categories)}
        for dim_key, items in by_dim.items():
            dp = f"{path}.{dim_key}"
            if not isinstance(items, list):
                self.add(f, dp, "an array", _show(items))
                ok = False
                continue
            if empty and items:
                self.add(
                    f,
                    dp,
                    "an empty list (centroid_outlier_quantile is null)",
                    f"{len(items)} entries",
                )
            previous = -1
            for j, item in enumerate(items):
                ip = f"{dp}[{j}]"
                if not isinstance(item, dict):
                    self.add(f, ip, "an object", _show(item))
                    ok = False
                    continue
                if not self.keys(f, item, ip, ("category", "position", "n_points")):
                    ok = False
                    continue
                category = item["category"]
                if not isinstance(category, str) or category not in order:
                    self.add(f, f"{ip}.category", "one of the field's categories", _show(category))
                    ok = False
                elif order[category] <= previous:
                    self.add(
                        f,
                        f"{ip}.category",
                        "one entry per category, in category order",
                        _show(category),
                    )
                else:
                    previous = order[category]
                position = item["position"]
                width = int(dim_key) if dim_key in ("1", "2", "3") else -1
                if not (
                    isinstance(position, list)
                    and len(position) == width
                    and all(_is_finite(x) for x in position)
                ):
                    self.add(f, f"{ip}.position", f"{width} finite numbers", _show(position))
                    ok = False
                if not (_is_int(item["n_points"]) and item["n_points"] >= 1):
                    self.add(f, f"{ip}.n_points", "an integer ≥ 1", _show(item["n_points"]))
                    ok = False
        return ok

    def check_codes(self, rel: str, codes: np.ndarray, field: _ObsField) -> None:
        """SPEC §2.6.5: every code is < k or the missing sentinel; then the centroids."""
        k, missing = len(field.categories), _MISSING_CODE[field.dtype]
        bad = (codes >= k) & (codes != missing)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            self.add(
                rel,
                "values",
                f"codes < {k} or == {missing}",
                f"{int(bad.sum())} code(s) out of range, e.g. {int(codes[first])} at cell {first}",
            )
            return
        if field.centroids is not None:
            self.check_centroid_values(codes, field)

    def check_centroid_values(self, codes: np.ndarray, field: _ObsField) -> None:
        """SPEC §2.6.8: counts, positions and which categories have a centroid.

        Per-category sums, minima and maxima come from one vectorised pass per dimension,
        so fields with tens of thousands of categories stay linear in n.
        """
        f, k = OBS_MANIFEST_FILE, len(field.categories)
        index = {c: i for i, c in enumerate(field.categories)}
        valid = codes < k
        member_codes = codes[valid].astype(np.intp)
        counts = np.bincount(member_codes, minlength=k)
        listed_sets = []
        for dim_key, items in (field.centroids or {}).items():
            dp = f"_categoricalFields[{field.index}][4].{dim_key}"
            points = self.points.get(int(dim_key)) if dim_key in ("1", "2", "3") else None
            stats = None if points is None else _category_stats(points[valid], member_codes, k)
            listed = {}
            for j, item in enumerate(items):
                c = index[item["category"]]
                m = int(counts[c])
                listed[item["category"]] = m
                if item["n_points"] > m:
                    self.add(
                        f,
                        f"{dp}[{j}].n_points",
                        f"at most {m} (cells of the category)",
                        _show(item["n_points"]),
                    )
                    continue
                if stats is None or m == 0:
                    continue
                means, lows, highs = stats
                position = np.asarray(item["position"], dtype=np.float64)
                if item["n_points"] == m:
                    ok = np.allclose(position, means[c], rtol=0, atol=1e-4)
                    expected = f"the mean of the category's {m} points"
                else:
                    ok = bool(
                        np.all(position >= lows[c] - 1e-6) and np.all(position <= highs[c] + 1e-6)
                    )
                    expected = "a mean of category members (inside their bounding box)"
                if not ok:
                    self.add(f, f"{dp}[{j}].position", expected, _show(item["position"]))
            listed_sets.append(set(listed))
            if listed:
                smallest = min(listed.values())
                omitted = [
                    c
                    for i, c in enumerate(field.categories)
                    if counts[i] >= smallest and c not in listed
                ]
                if omitted:
                    self.add(
                        f,
                        dp,
                        "entries for exactly the categories with at least "
                        f"centroid_min_points cells (listed ones have ≥ {smallest})",
                        f"{_show(omitted)} omitted",
                    )
        if any(s != listed_sets[0] for s in listed_sets):
            self.add(
                f,
                f"_categoricalFields[{field.index}][4]",
                "the same categories in every dimension",
                "different categories",
            )

    def check_outliers(
        self, rel: str, values: np.ndarray, codes: np.ndarray, field: _ObsField, quantised: bool
    ) -> None:
        """SPEC §2.6.9: NaN or a rank quantile in (0, 1], per category all or nothing."""
        k, missing = len(field.categories), _MISSING_CODE[field.dtype]
        defined = ~np.isnan(values)
        if quantised and field.bounds == [0.0, 1.0] and defined.any():
            self.add(
                OBS_MANIFEST_FILE,
                f"_categoricalFields[{field.index}][5]",
                "data-derived outlier bounds (0, 1 only when no cell has a quantile)",
                "min 0.0, max 1.0",
            )
        else:
            bad = defined & ~((values > 0) & (values <= 1 + 1e-6))
            if bad.any():
                self.add(
                    rel,
                    "values",
                    "NaN or a quantile in (0, 1]",
                    f"{int(bad.sum())} value(s) outside, e.g. {float(values[bad][0])!r}",
                )
                return
        if (defined & (codes == missing)).any():
            self.add(
                rel,
                "values",
                "NaN for cells with a missing category",
                f"{int((defined & (codes == missing)).sum())} defined value(s)",
            )
        valid = codes < k
        member_codes = codes[valid].astype(np.intp)
        members = np.bincount(member_codes, minlength=k)
        has_value = defined[valid]
        n_defined = np.bincount(member_codes[has_value], minlength=k)
        partial = np.flatnonzero((n_defined > 0) & (n_defined < members))
        if partial.size:
            c = int(partial[0])
            self.add(
                rel,
                "values",
                "all or none of a category's cells with a quantile",
                f"{partial.size} categories with some, e.g. {int(n_defined[c])} of "
                f"{int(members[c])} in {field.categories[c]!r}",
            )
        with_values = np.flatnonzero(n_defined > 0)
        if not quantised and with_values.size:
            maxima = np.full(k, -np.inf)
            np.maximum.at(maxima, member_codes[has_value], values[valid][has_value])
            short = with_values[maxima[with_values] != 1.0]
            if short.size:
                c = int(short[0])
                self.add(
                    rel,
                    "values",
                    "quantile 1 for the farthest member of each category",
                    f"{short.size} categories below, e.g. max {float(maxima[c])!r} in "
                    f"{field.categories[c]!r}",
                )
        q = (self.obs or {}).get("centroid_outlier_quantile")
        if field.centroids and q is not None:
            first = next(iter(field.centroids.values()), [])
            have = [item["category"] for item in first]
            got = [field.categories[c] for c in with_values]
            if have != got:
                self.add(
                    rel,
                    "values",
                    "quantiles for exactly the categories that have centroids "
                    f"({_show(have)}; both need centroid_min_points cells)",
                    _show(got),
                )

    # -- var_manifest.json and var/ (SPEC §2.7)
    def check_var(self) -> None:
        var = self.var
        if var is None:
            if (self.dir / VAR_MANIFEST_FILE).is_file():
                self.unscannable.add(VAR_DIR)
            return
        f = VAR_MANIFEST_FILE
        self.keys(
            f,
            var,
            "",
            (
                "_format",
                "n_points",
                "var_gene_id_column",
                "compression",
                "quantization",
                "_varSchema",
                "fields",
            ),
            ordered=True,
        )
        self.equal(f, "_format", var.get("_format", _BAD), "compact_v1")
        self.check_n(f, "n_points", var.get("n_points", _BAD))
        self.field(
            f,
            var,
            "var_gene_id_column",
            lambda v: v is None or _is_text(v),
            "null or a non-empty column name",
        )
        self.check_compression_matches(f, var)
        quantization = self.field(f, var, "quantization", _is_bits, "null, 8 or 16")
        fields = self.lst(f, var, "fields")
        schema = var.get("_varSchema", _BAD)
        usable = None
        if schema is not _BAD:
            usable = self.check_values_schema(f, schema, "_varSchema", VAR_DIR, kind=True)
        if usable is not None:
            self.equal(
                f,
                "quantization",
                quantization,
                _quantised_bits(usable[1]),
                "_varSchema.quantizationBits, null when not quantised",
            )
        if fields is _BAD or usable is None:
            self.unscannable.add(VAR_DIR)
            return
        paths: dict[str, list[str]] = {}
        for i, entry in enumerate(fields):
            if isinstance(entry, list) and entry and isinstance(entry[0], str):
                paths.setdefault(entry[0], []).append(f"fields[{i}][0]")
        self.check_names(f, paths, "gene id")
        for i, entry in enumerate(fields):
            self.check_continuous_entry(f, f"fields[{i}]", entry, *usable)

    def check_compression_matches(self, file: str, manifest: dict[str, Any]) -> None:
        value = self.field(file, manifest, "compression", _is_level, "null or an integer 1-9")
        self.equal(file, "compression", value, self.compression, "obs_manifest.json compression")

    # -- connectivity_manifest.json and connectivity/ (SPEC §2.8)
    def check_connectivity(self) -> None:
        conn = self.conn
        if conn is None:
            if (self.dir / CONNECTIVITY_MANIFEST_FILE).is_file():
                self.unscannable.add(CONNECTIVITY_DIR)
            return
        f, n, gz = CONNECTIVITY_MANIFEST_FILE, self.n, self.gz
        self.keys(
            f,
            conn,
            "",
            (
                "format",
                "n_cells",
                "n_edges",
                "max_neighbors",
                "index_bytes",
                "index_dtype",
                "sourcesPath",
                "destinationsPath",
                "weightsPath",
                "weight_dtype",
                "weight_bytes",
                "compression",
            ),
            ordered=True,
        )
        self.equal(f, "format", conn.get("format", _BAD), "edge_pairs")
        self.check_n(f, "n_cells", conn.get("n_cells", _BAD))
        n_edges = self.field(f, conn, "n_edges", lambda v: _is_int(v) and v >= 0, "an integer ≥ 0")
        max_nb = self.field(
            f, conn, "max_neighbors", lambda v: _is_int(v) and v >= 0, "an integer ≥ 0"
        )
        width = 2 if n is None or n <= 65536 else 4
        why = f"the smallest that fits n = {n}" if n is not None else ""
        self.equal(f, "index_bytes", conn.get("index_bytes", _BAD), width, why)
        self.equal(f, "index_dtype", conn.get("index_dtype", _BAD), f"uint{8 * width}", why)
        for key, name in (
            ("sourcesPath", "edges.src.bin"),
            ("destinationsPath", "edges.dst.bin"),
            ("weightsPath", "edges.weights.f64.bin"),
        ):
            self.equal(f, key, conn.get(key, _BAD), f"connectivity/{name}{gz}")
        self.equal(f, "weight_dtype", conn.get("weight_dtype", _BAD), "float64")
        self.equal(f, "weight_bytes", conn.get("weight_bytes", _BAD), 8)
        self.check_compression_matches(f, conn)
        index_dtype = conn.get("index_dtype")
        rels = {}
        for key in ("sourcesPath", "destinationsPath", "weightsPath"):
            rels[key] = self.check_path(f, key, conn[key]) if key in conn else None
            if key in conn and rels[key] is None:
                self.unscannable.add(CONNECTIVITY_DIR)
        if n_edges is _BAD:
            self.unscannable.add(CONNECTIVITY_DIR)
            return
        if n is not None:
            self.check_edge_count(n, n_edges, index_dtype)
        weights_rel = rels["weightsPath"]
        if weights_rel is not None:
            weights = self.read(weights_rel, EXT_DTYPES["f64"], n_edges)
            bad = None if weights is None else ~(np.isfinite(weights) & (weights > 0))
            if bad is not None and bad.any():
                self.add(
                    weights_rel,
                    "values",
                    "finite weights > 0",
                    f"{int(bad.sum())} bad weight(s), e.g. {float(weights[bad][0])!r}",
                )
        src_rel, dst_rel = rels["sourcesPath"], rels["destinationsPath"]
        if src_rel is None or dst_rel is None:
            return
        if index_dtype not in ("uint16", "uint32"):
            self.referenced.update((src_rel, dst_rel))  # named, but not decodable
            return
        itype = EXT_DTYPES["u16" if index_dtype == "uint16" else "u32"]
        src = self.read(src_rel, itype, n_edges)
        dst = self.read(dst_rel, itype, n_edges)
        if src is not None and dst is not None:
            self.check_edges(src_rel, dst_rel, src, dst, max_nb)

    def check_edge_count(self, n: int, n_edges: int, index_dtype: Any) -> None:
        """SPEC §2.8: E ≤ n(n−1)/2 and the browser's edge working-set budget."""
        f = CONNECTIVITY_MANIFEST_FILE
        if n_edges > n * (n - 1) // 2:
            self.add(f, "n_edges", f"at most n(n-1)/2 = {n * (n - 1) // 2}", str(n_edges))
        per_edge = 48 if index_dtype == "uint16" else 44
        budget = per_edge * n_edges + 4 * n
        if budget > _BROWSER_EDGE_BUDGET:
            self.add(
                f,
                "n_edges",
                f"{per_edge}·E + 4·n ≤ {_BROWSER_EDGE_BUDGET} (browser budget)",
                f"{budget} for E = {n_edges}, n = {n}",
            )

    def check_edges(
        self, src_rel: str, dst_rel: str, src: np.ndarray, dst: np.ndarray, max_nb: Any
    ) -> None:
        n = self.n
        src64, dst64 = src.astype(np.int64), dst.astype(np.int64)
        if n is not None and len(dst64) and int(dst64.max()) >= n:
            self.add(dst_rel, "values", f"cell indices < {n}", f"index {int(dst64.max())}")
            return
        if (src64 >= dst64).any():
            first = int(np.flatnonzero(src64 >= dst64)[0])
            self.add(
                src_rel,
                "values",
                "src < dst for every edge",
                f"edge {first}: src {int(src64[first])}, dst {int(dst64[first])}",
            )
            return
        src_step, dst_step = np.diff(src64), np.diff(dst64)
        unsorted = (src_step < 0) | ((src_step == 0) & (dst_step <= 0))
        if unsorted.any():
            first = int(np.flatnonzero(unsorted)[0]) + 1
            self.add(
                src_rel,
                "values",
                "edges strictly sorted by (src, dst), without duplicates",
                f"edge {first} ({int(src64[first])}, {int(dst64[first])}) after "
                f"({int(src64[first - 1])}, {int(dst64[first - 1])})",
            )
            return
        degree = np.bincount(np.concatenate([src64, dst64]))
        actual = int(degree.max()) if len(degree) else 0
        if max_nb is not _BAD and max_nb != actual:
            self.add(
                CONNECTIVITY_MANIFEST_FILE,
                "max_neighbors",
                f"{actual} (the largest degree of the edges)",
                str(max_nb),
            )

    # -- vectors/ (SPEC §2.9)
    def check_vectors(self) -> None:
        for rel, d in self.vector_files:
            flat = self.read(rel, EXT_DTYPES["f32"], self.n * d if self.n else None)
            if flat is not None and not np.isfinite(flat).all():
                self.add(
                    rel,
                    "values",
                    "finite vectors",
                    f"{int((~np.isfinite(flat)).sum())} NaN or ±Inf value(s)",
                )

    # -- stats and obs_fields against the manifests (SPEC §2.10, §2.12)
    def check_cross_file(self) -> None:
        ident, obs = self.identity or {}, self.obs or {}
        f = IDENTITY_FILE
        stats = ident.get("stats") if isinstance(ident.get("stats"), dict) else {}
        cont = obs.get("_continuousFields")
        cat = obs.get("_categoricalFields")
        if self.n is not None:
            self.equal(
                f, "stats.n_cells", stats.get("n_cells", _BAD), self.n, "the number of cells"
            )
        n_genes = stats.get("n_genes", _BAD)
        has_var = (self.dir / VAR_MANIFEST_FILE).is_file()
        if _is_int(n_genes) and has_var != (n_genes > 0):
            self.add(
                VAR_MANIFEST_FILE,
                "file",
                f"{'present' if n_genes > 0 else 'absent'} (stats.n_genes = {n_genes})",
                "present" if has_var else "missing",
            )
        genes = (self.var or {}).get("fields")
        if isinstance(genes, list):
            self.equal(
                f, "stats.n_genes", n_genes, len(genes), "entries of var_manifest.json fields"
            )
        if isinstance(cont, list):
            self.equal(
                f,
                "stats.n_continuous_fields",
                stats.get("n_continuous_fields", _BAD),
                len(cont),
                "obs_manifest.json _continuousFields",
            )
        if isinstance(cat, list):
            self.equal(
                f,
                "stats.n_categorical_fields",
                stats.get("n_categorical_fields", _BAD),
                len(cat),
                "obs_manifest.json _categoricalFields",
            )
        obs_fields = ident.get("obs_fields")
        if isinstance(obs_fields, list):
            self.equal(
                f,
                "stats.n_obs_fields",
                stats.get("n_obs_fields", _BAD),
                len(obs_fields),
                "entries of obs_fields",
            )
        has_conn = (self.dir / CONNECTIVITY_MANIFEST_FILE).is_file()
        flag = stats.get("has_connectivity", _BAD)
        if isinstance(flag, bool) and flag != has_conn:
            self.add(
                CONNECTIVITY_MANIFEST_FILE,
                "file",
                f"{'present' if flag else 'absent'} (stats.has_connectivity is "
                f"{str(flag).lower()})",
                "present" if has_conn else "missing",
            )
        conn_edges = (self.conn or {}).get("n_edges")
        if _is_int(conn_edges):
            self.equal(
                f,
                "stats.n_edges",
                stats.get("n_edges", _BAD),
                conn_edges,
                "connectivity_manifest.json n_edges",
            )
        if isinstance(obs_fields, list) and isinstance(cont, list) and isinstance(cat, list):
            self.check_obs_fields_match(obs_fields, cont, cat)
        self.check_settings_match(ident.get("export_settings"), cat)

    def check_obs_fields_match(
        self, obs_fields: list[Any], cont: list[Any], cat: list[Any]
    ) -> None:
        """SPEC §2.12 item 5: identity obs_fields mirror the manifest tuples, in order."""
        expected: list[dict[str, Any]] = []
        for entry in cont:
            if isinstance(entry, list) and entry:
                expected.append({"key": entry[0], "kind": "continuous"})
        for entry in cat:
            if isinstance(entry, list) and len(entry) >= 2 and isinstance(entry[1], list):
                expected.append(
                    {"key": entry[0], "kind": "category", "n_categories": len(entry[1])}
                )
        if len(obs_fields) != len(expected):
            self.add(
                IDENTITY_FILE,
                "obs_fields",
                f"{len(expected)} entries (the obs manifest's fields)",
                f"{len(obs_fields)} entries",
            )
            return
        for i, (got, want) in enumerate(zip(obs_fields, expected, strict=True)):
            if got != want:
                self.add(
                    IDENTITY_FILE,
                    f"obs_fields[{i}]",
                    f"{_show(want)} (obs manifest order: continuous, then categorical)",
                    _show(got),
                )

    def check_settings_match(self, settings: Any, cat: Any) -> None:
        """``export_settings`` against what the manifests show (SPEC §2.10, §2.6.7)."""
        if not isinstance(settings, dict):
            return
        f, obs = IDENTITY_FILE, self.obs or {}
        if "compression" in obs:
            self.equal(
                f,
                "export_settings.compression",
                settings.get("compression", _BAD),
                obs["compression"],
                "obs_manifest.json compression",
            )
        if self.var is not None and "quantization" in self.var:
            self.equal(
                f,
                "export_settings.var_quantization",
                settings.get("var_quantization", _BAD),
                self.var["quantization"],
                "var_manifest.json quantization",
            )
        schemas = obs.get("_obsSchemas") if isinstance(obs.get("_obsSchemas"), dict) else {}
        used = []
        cont_schema = schemas.get("continuous")
        if isinstance(cont_schema, dict) and cont_schema.get("ext") in ("f32", "u8", "u16"):
            used.append(("_obsSchemas.continuous.ext", cont_schema["ext"]))
        cat_schema = schemas.get("categorical")
        if isinstance(cat_schema, dict) and cat_schema.get("outlierExt") in ("f32", "u8", "u16"):
            used.append(("_obsSchemas.categorical.outlierExt", cat_schema["outlierExt"]))
        for where, ext in used:
            self.equal(
                f,
                "export_settings.obs_continuous_quantization",
                settings.get("obs_continuous_quantization", _BAD),
                _quantised_bits(ext),
                f"obs_manifest.json {where} {ext}",
            )
        choice = settings.get("obs_categorical_dtype")
        if choice not in ("auto", "uint8", "uint16") or not isinstance(cat, list):
            return
        for i, entry in enumerate(cat):
            if not (isinstance(entry, list) and len(entry) >= 3 and isinstance(entry[1], list)):
                continue
            k = len(entry[1])
            want = choice if choice != "auto" else ("uint8" if k <= 255 else "uint16")
            self.equal(
                OBS_MANIFEST_FILE,
                f"_categoricalFields[{i}][2]",
                entry[2],
                want,
                f"obs_categorical_dtype {choice!r} with {k} categories",
            )

    # -- files nobody references (SPEC §2.1)
    def check_layout(self) -> None:
        obs_dir = self.dir / OBS_DIR
        if not obs_dir.is_dir():
            self.add(
                f"{OBS_DIR}/",
                "file",
                "a directory (always written, may be empty)",
                "a file" if obs_dir.exists() else "missing",
            )
        for name in (OBS_DIR, VAR_DIR, CONNECTIVITY_DIR, VECTORS_DIR):
            directory = self.dir / name
            if not directory.exists():
                continue
            if not directory.is_dir():
                if name != OBS_DIR:
                    self.add(name, "file", "a directory", "a file")
                continue
            entries = sorted(directory.rglob("*"))
            if name != OBS_DIR and not any(p.is_file() for p in entries):
                self.add(f"{name}/", "file", "absent when it holds no files", "an empty directory")
            if name in self.unscannable:
                continue
            for entry in entries:
                rel = entry.relative_to(self.dir).as_posix()
                if entry.is_dir():
                    self.add(f"{rel}/", "file", "no subdirectory", "a directory")
                elif rel not in self.referenced:
                    self.add(
                        rel, "file", "only files that a manifest references", "an unreferenced file"
                    )
        for entry in sorted(self.dir.iterdir()):
            match = _POINTS_NAME.match(entry.name)
            if match and entry.name not in self.referenced:
                self.add(
                    entry.name,
                    "file",
                    f"points files only for the available dimensions {self.dims}",
                    "an unreferenced points file",
                )


# ---- export roots (SPEC §2.2, §2.11, §2.12 item 1) -------------------------------------------
def _check_root(root: Path, out: list[Violation]) -> None:
    identities: dict[str, dict[str, Any]] = {}
    owner: dict[str, str] = {}
    for sub in sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name):
        if not is_dataset_dir(sub):
            continue
        if not is_eligible_dataset_dir_name(sub.name):
            out.append(
                Violation(
                    f"{sub.name}/",
                    "name",
                    "a name matching ^[A-Za-z0-9][A-Za-z0-9._-]{0,179}$ that is not a Windows "
                    "device name, 'assets' or '_cellucid'",
                    _show(sub.name),
                )
            )
            continue
        check = _DatasetCheck(sub, f"{sub.name}/", out).run()
        identity = check.identity or {}
        identities[sub.name] = identity
        ident_id = identity.get("id")
        if isinstance(ident_id, str):
            if ident_id in owner:
                out.append(
                    Violation(
                        f"{sub.name}/{IDENTITY_FILE}",
                        "id",
                        "an id no other dataset of the root has",
                        f"{_show(ident_id)}, also the id of {owner[ident_id]}/",
                    )
                )
            else:
                owner[ident_id] = sub.name
    _check_datasets_json(root, identities, out)


def _check_datasets_json(
    root: Path, identities: dict[str, dict[str, Any]], out: list[Violation]
) -> None:
    f = DATASETS_FILE
    check = _DatasetCheck(root, "", out)
    doc = check.load_json(f)
    if doc is None:
        return
    check.keys(f, doc, "", ("version", "default", "datasets"))
    check.equal(f, "version", doc.get("version", _BAD), 1)
    entries = check.field(
        f, doc, "datasets", lambda v: isinstance(v, list) and bool(v), "a non-empty array"
    )
    if entries is _BAD:
        return
    ids: list[Any] = []
    paths: list[str] = []
    for i, entry in enumerate(entries):
        p = f"datasets[{i}]"
        if not isinstance(entry, dict):
            check.add(f, p, "an object", _show(entry))
            continue
        check.keys(f, entry, p, ("id", "path", "name"), ("n_cells", "n_genes"))
        path = entry.get("path", _BAD)
        ident_id = entry.get("id", _BAD)
        if ident_id is not _BAD:
            if ident_id in ids:
                check.add(f, f"{p}.id", "an id not listed before", _show(ident_id))
            ids.append(ident_id)
        if path is _BAD:
            continue
        name = path[:-1] if isinstance(path, str) and path.endswith("/") else None
        if name is None or name not in identities or path_problem(name) is not None:
            check.add(f, f"{p}.path", "a dataset subdirectory name followed by '/'", _show(path))
            continue
        if path in paths:
            check.add(f, f"{p}.path", "a path not listed before", _show(path))
        paths.append(path)
        identity = identities[name]
        stats = identity.get("stats") if isinstance(identity.get("stats"), dict) else {}
        for key, want, where in (
            ("id", identity.get("id", _BAD), "id"),
            ("name", identity.get("name", _BAD), "name"),
            ("n_cells", stats.get("n_cells", _BAD), "stats.n_cells"),
            ("n_genes", stats.get("n_genes", _BAD), "stats.n_genes"),
        ):
            if key in entry and want is not _BAD:
                check.equal(f, f"{p}.{key}", entry[key], want, f"{name}/{IDENTITY_FILE} {where}")
    missing = [f"{name}/" for name in identities if f"{name}/" not in paths]
    if missing:
        check.add(
            f,
            "datasets",
            "an entry for every dataset subdirectory",
            f"no entry for {', '.join(missing)}",
        )
    if paths != sorted(paths):
        check.add(f, "datasets", "entries sorted by directory name", _show(paths))
    default = doc.get("default", _BAD)
    if default is not _BAD and (not isinstance(default, str) or default not in ids):
        check.add(f, "default", "the id of a listed dataset", _show(default))
