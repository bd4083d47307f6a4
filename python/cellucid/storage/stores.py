"""Where data lives: a local path or an fsspec URL, and opening ``.h5ad`` / ``.zarr`` there.

Every reader of the package (the exporter, the server's sources, ``rank_genes``) opens files
through this module, so URLs and credentials are handled in one place:

- ``s3://bucket/atlas.zarr``, ``gs://…``, ``https://…`` or any other fsspec URL is remote;
  ``file://…`` and plain paths are local.
- ``storage_options`` are fsspec's (for S3: ``key``, ``secret``, ``endpoint_url``,
  ``client_kwargs``, …). Without them the usual environment applies (``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ``GOOGLE_APPLICATION_CREDENTIALS``, …).
  The command line passes ``--storage-option key=value`` (:func:`parse_storage_options`).
- A ``.zarr`` store is opened with zarr's fsspec store: only the chunks a request needs are
  fetched. An ``.h5ad`` is opened through an fsspec file with a block cache, so h5py reads
  ranges of the object rather than the object.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

#: bytes fetched per block of a remote ``.h5ad`` (h5py reads many small pieces)
H5AD_BLOCK_SIZE = 4 << 20
#: remote blocks kept per open ``.h5ad``
H5AD_BLOCKS = 64

StorageOptions = Mapping[str, Any]
PathLike = str | Path


def require(module: str) -> Any:
    """Import ``zarr``, ``h5py``, ``fsspec`` or a file system package with an error that says
    how to install it (SPEC §6.5)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - zarr and h5py are dependencies
        what = {
            "zarr": ".zarr stores",
            "h5py": ".h5ad files",
            "fsspec": "URLs",
            "s3fs": "s3:// URLs",
            "gcsfs": "gs:// URLs",
        }.get(module, module)
        raise ImportError(f"reading {what} needs {module}: pip install {module}") from exc


def is_url(path: object) -> bool:
    """Whether ``path`` names remote storage (``scheme://…``, not ``file://``)."""
    if not isinstance(path, str) or "://" not in path:
        return False
    return path.split("://", 1)[0].lower() not in ("", "file", "local")


def local_path(path: PathLike) -> Path:
    """A local path (``file://`` URLs too), with ``~`` expanded."""
    text = str(path)
    if text.lower().startswith("file://"):
        text = text[7:]
    return Path(text).expanduser()


def url_join(base: str, *parts: str) -> str:
    """``base/part/…`` for URLs (no normalisation of ``..``: callers pass clean parts)."""
    out = base.rstrip("/")
    for part in parts:
        out += "/" + part.strip("/")
    return out


def url_name(url: str) -> str:
    """The last segment of a URL or path (``s3://b/x/atlas.zarr/`` → ``atlas.zarr``)."""
    return str(url).rstrip("/").rsplit("/", 1)[-1]


def filesystem(url: str, storage_options: StorageOptions | None = None) -> tuple[Any, str]:
    """``(fsspec file system, path inside it)`` for a URL."""
    fsspec = require("fsspec")
    scheme = url.split("://", 1)[0].lower()
    package = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs"}.get(scheme)
    if package is not None:
        require(package)
    return fsspec.core.url_to_fs(url, **dict(storage_options or {}))


def parse_storage_options(pairs: Iterable[str] | None) -> dict[str, Any]:
    """``["key=value", …]`` (the CLI's ``--storage-option``) as fsspec storage options.

    Values are JSON when they parse as JSON (``true``, ``3``, ``{"a": 1}``), else strings.
    Dotted keys nest: ``client_kwargs.endpoint_url=http://127.0.0.1:9000`` gives
    ``{"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}``.

    >>> parse_storage_options(["anon=true", "client_kwargs.region_name=eu-west-1"])
    {'anon': True, 'client_kwargs': {'region_name': 'eu-west-1'}}
    """
    out: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, text = str(pair).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"a storage option is KEY=VALUE; got {pair!r}")
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        *parents, leaf = key.split(".")
        node = out
        for name in parents:
            child = node.setdefault(name, {})
            if not isinstance(child, dict):
                raise ValueError(f"storage option {key!r} conflicts with {name}={child!r}")
            node = child
        node[leaf] = value
    return out


# --------------------------------------------------------------------------- what a path holds
#: files that make a folder a zarr store (v2 group, v2 attributes, v3)
ZARR_MARKERS = (".zgroup", ".zattrs", "zarr.json")


def exists(path: PathLike, storage_options: StorageOptions | None = None) -> bool:
    if is_url(path):
        fs, inner = filesystem(str(path), storage_options)
        return bool(fs.exists(inner))
    return local_path(path).exists()


def is_zarr_store(path: PathLike, storage_options: StorageOptions | None = None) -> bool:
    """A directory (or URL prefix) ending in ``.zarr`` or holding zarr v2/v3 group metadata."""
    if is_url(path):
        url = str(path)
        fs, inner = filesystem(url, storage_options)
        if url.rstrip("/").lower().endswith(".zarr"):
            return bool(fs.isdir(inner))
        return any(fs.exists(f"{inner.rstrip('/')}/{m}") for m in ZARR_MARKERS)
    p = local_path(path)
    if not p.is_dir():
        return False
    if p.suffix.lower() == ".zarr":
        return True
    return any((p / marker).exists() for marker in ZARR_MARKERS)


def display_name(path: PathLike) -> str:
    """The file or store name without ``.h5ad``/``.zarr`` (the default dataset name)."""
    name = url_name(str(path)) if is_url(path) else local_path(path).name
    for suffix in (".h5ad", ".zarr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return name


# --------------------------------------------------------------------------- opening
class _Closer:
    """Closes what opening a store needed (an h5py file, the fsspec file under it)."""

    def __init__(self, *closers: Callable[[], None]) -> None:
        self._closers = list(closers)

    def close(self) -> None:
        closers, self._closers = self._closers, []
        for close in closers:
            close()


def open_store(path: PathLike, storage_options: StorageOptions | None = None) -> tuple[Any, Any]:
    """Open an ``.h5ad`` file or a ``.zarr`` store read-only: ``(root group, owner)``.

    ``owner.close()`` releases it (``owner`` is ``None`` for a zarr store, which holds no
    open handle). Nothing but metadata is read.
    """
    if is_url(path):
        url = str(path)
        if is_zarr_store(url, storage_options):
            zarr = require("zarr")
            store = zarr.storage.FsspecStore.from_url(
                url, storage_options=dict(storage_options or {}), read_only=True
            )
            return zarr.open_group(store, mode="r"), None
        h5py = require("h5py")
        fs, inner = filesystem(url, storage_options)
        handle = fs.open(
            inner,
            "rb",
            block_size=H5AD_BLOCK_SIZE,
            cache_type="blockcache",
            cache_options={"maxblocks": H5AD_BLOCKS},
        )
        try:
            f = h5py.File(handle, "r")
        except BaseException:
            handle.close()
            raise
        return f, _Closer(f.close, handle.close)
    p = local_path(path)
    if not p.exists():
        raise FileNotFoundError(f"Path not found: {p}")
    if is_zarr_store(p):
        return require("zarr").open_group(str(p), mode="r"), None
    f = require("h5py").File(p, "r")
    return f, f


def fingerprint(
    path: PathLike, element: str, storage_options: StorageOptions | None = None
) -> dict[str, Any]:
    """What identifies a stored matrix, for cache keys: location, element, size and time.

    Local files: resolved path, size, ``mtime_ns``. Local zarr stores: file count, total size
    and newest ``mtime_ns`` under the element's folder and the root metadata. URLs: the same
    from the object listing (size, ``ETag``/modification time), one listing per store.
    """
    if is_url(path):
        return _remote_fingerprint(str(path), element, storage_options)
    return _local_fingerprint(local_path(path), element)


def _local_fingerprint(source: Path, element: str) -> dict[str, Any]:
    import os

    p = source.resolve()
    st = p.stat()
    if not p.is_dir():
        return {"path": str(p), "element": element, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    files = total = newest = 0
    roots = [p / element] + [p / m for m in (*ZARR_MARKERS, ".zmetadata")]
    for root in roots:
        if root.is_file():
            s = root.stat()
            files, total, newest = files + 1, total + s.st_size, max(newest, s.st_mtime_ns)
            continue
        for dirpath, _dirs, names in os.walk(root):
            newest = max(newest, os.stat(dirpath).st_mtime_ns)
            for name in names:
                s = os.stat(os.path.join(dirpath, name))
                files, total, newest = files + 1, total + s.st_size, max(newest, s.st_mtime_ns)
    return {"path": str(p), "element": element, "size": total, "mtime_ns": newest, "files": files}


def _stamp(info: Mapping[str, Any]) -> str:
    for key in ("ETag", "etag", "md5Hash", "crc32c", "LastModified", "mtime", "updated"):
        value = info.get(key)
        if value is not None:
            return str(value)
    return ""


def _remote_fingerprint(
    url: str, element: str, storage_options: StorageOptions | None
) -> dict[str, Any]:
    import hashlib

    fs, inner = filesystem(url, storage_options)
    if not is_zarr_store(url, storage_options):
        info = fs.info(inner)
        return {"path": url, "element": element, "size": info.get("size"), "stamp": _stamp(info)}
    root = inner.rstrip("/")
    listed: dict[str, Any] = {}
    for sub in (f"{root}/{element}",):
        listed.update(fs.find(sub, detail=True))
    for marker in (*ZARR_MARKERS, ".zmetadata"):
        with_marker = f"{root}/{marker}"
        if fs.exists(with_marker):
            listed[with_marker] = fs.info(with_marker)
    digest = hashlib.sha256()
    total = 0
    for name in sorted(listed):
        info = listed[name]
        total += int(info.get("size") or 0)
        digest.update(f"{name}|{info.get('size')}|{_stamp(info)}\n".encode())
    return {
        "path": url,
        "element": element,
        "size": total,
        "files": len(listed),
        "stamp": digest.hexdigest()[:32],
    }
