"""An on-disk column-major (CSC) copy of a cell-major expression matrix, built once.

In a CSR matrix one gene's values are spread over every row, so reading a gene means
reading the whole matrix. :class:`ColumnCache` writes a CSC copy once, in a cache folder,
and then a gene is two small contiguous reads.

Where
    ``cache_dir=`` if given, else ``$CELLUCID_CACHE_DIR``, else ``$XDG_CACHE_HOME/cellucid``,
    else ``~/.cache/cellucid``; caches live in its ``columns/`` subfolder. A cache folder is
    used rather than a folder next to the data because data folders are often read-only or
    shared, and a cache beside them would be mistaken for data.
Key
    The resolved source path, its size and ``mtime_ns`` (for a ``.zarr`` store: file count,
    total size and newest ``mtime_ns`` under the element's folder) and the element path
    (``"X"``, ``"layers/counts"``); for a source at a URL, the URL and the sizes and ETags of
    its objects (:func:`cellucid.storage.stores.fingerprint`). A modified source gets a new
    key, so a stale cache is never used; it just stays behind (delete the folder to reclaim
    the space). The cache of a remote source is local like any other.
Files
    ``indptr.npy`` (int64, ``n_genes + 1``), ``indices.npy`` (int32 cell ids, sorted within a
    gene), ``data.npy`` (float32) and ``meta.json`` (shape, nnz, dtypes, source key, format
    version). Plain ``.npy`` so ``np.load(..., mmap_mode="r")`` reads them too; this module
    reads genes with ``pread`` into fresh buffers instead, because pages touched through a
    memory map stay in the process's resident set.
Build (bounded memory, two sequential passes over the rows)
    1. Read ``indices`` in row chunks and count entries per gene (``bincount``), which gives
       the output ``indptr``.
    2. Read ``indices`` and ``data`` in the same row chunks; each chunk is turned into CSC in
       memory (scipy's counting sort) and every gene's run is written with ``pwrite`` at that
       gene's cursor in ``indices.npy``/``data.npy`` (preallocated). Rows arrive in order, so
       each gene's cell ids come out sorted. Files are written through the page cache, never
       memory-mapped, so the build's resident memory is one row chunk:
       ``memory_budget`` (default 256 MiB) / ~24 bytes per stored value.
    Duplicate or unsorted entries in the source are summed and sorted chunk by chunk.
Atomicity
    Everything is written into ``<key>.tmp-<pid>-<random>/``, fsynced, and renamed to
    ``<key>/`` only when complete, so a folder named ``<key>`` is always whole. A failure
    removes the temporary folder; a killed builder leaves it behind, and the next builder
    removes it. Builders of one key take an exclusive lock (``flock`` on ``<key>.lock``; a
    thread lock inside the process too), so a second process waits and then finds the cache
    ready. Without locks (platforms without ``fcntl``) two builders may both finish: the
    first rename wins and the other discards its copy.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .backed import BackedMatrix, column_slices_block
from .blocks import DEFAULT_BLOCK_VALUES, SparseBlock, nnz_batches
from .lazy_sparse import sp
from .stores import PathLike, StorageOptions, fingerprint, is_url

log = logging.getLogger(__name__)

#: bump when the files or their meaning change; older caches are then ignored
FORMAT_VERSION = 1
#: default bound on the memory a build uses for row chunks
DEFAULT_MEMORY_BUDGET = 256 << 20
#: peak bytes per stored value of a row chunk while it is turned into CSC and written
_BYTES_PER_VALUE = 24
_PASS1_SHARE = 0.25  # share of the progress bar for the counting pass
_STALE_TEMP_SECONDS = 24 * 3600  # without file locks, temp folders older than this are removed

try:  # pragma: no cover - platform dependent
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


def default_cache_dir() -> Path:
    """``$CELLUCID_CACHE_DIR``, else ``$XDG_CACHE_HOME/cellucid``, else ``~/.cache/cellucid``."""
    env = os.environ.get("CELLUCID_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "cellucid"


def cache_key(source: dict[str, Any]) -> str:
    """Folder name of a cache: a readable prefix and a hash of the source's fingerprint."""
    import hashlib

    digest = hashlib.sha256(
        json.dumps({**source, "version": FORMAT_VERSION}, sort_keys=True).encode()
    ).hexdigest()[:24]
    name = str(source["path"]).rstrip("/").rsplit("/", 1)[-1]
    stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in f"{name}-{source['element']}")
    return f"{stem[:60]}-{digest}"


# ---------------------------------------------------------------------------- file helpers
def _npy_header(dtype: np.dtype, n: int) -> bytes:
    buf = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (n,)}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()


def _pwrite_all(fd: int, arr: np.ndarray, offset: int) -> None:
    view = memoryview(np.ascontiguousarray(arr)).cast("B")
    while view.nbytes:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


class _NpyWriter:
    """A 1-D ``.npy`` file of known length, written at arbitrary element offsets."""

    def __init__(self, path: Path, dtype: np.dtype, n: int) -> None:
        self.dtype = np.dtype(dtype)
        header = _npy_header(self.dtype, n)
        self.offset = len(header)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        _pwrite_all(self.fd, np.frombuffer(header, np.uint8), 0)
        size = self.offset + n * self.dtype.itemsize
        try:  # reserve the space now: a full disk fails here, not half-way
            os.posix_fallocate(self.fd, 0, size)
        except (AttributeError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                os.close(self.fd)
                raise
            os.ftruncate(self.fd, size)

    def write_at(self, index: int, values: np.ndarray) -> None:
        _pwrite_all(self.fd, values, self.offset + index * self.dtype.itemsize)

    def close(self) -> None:
        if self.fd >= 0:
            try:
                os.fsync(self.fd)
            finally:
                os.close(self.fd)
                self.fd = -1


class _NpyReader:
    """Element ranges of a 1-D ``.npy`` file read with ``pread`` (no memory map)."""

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as f:
            major, _minor = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0
                if major == 1
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(f)
            self.offset = f.tell()
        if len(shape) != 1 or fortran:
            raise ValueError(f"{path} is not a 1-D array")
        self.n = int(shape[0])
        self.dtype = np.dtype(dtype)
        self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self._lock = threading.Lock()  # only for platforms without pread

    def read(self, a: int, b: int) -> np.ndarray:
        out = np.empty(b - a, dtype=self.dtype)
        view = memoryview(out).cast("B")
        pos = self.offset + a * self.dtype.itemsize
        while view.nbytes:
            if hasattr(os, "preadv"):
                n = os.preadv(self.fd, [view], pos)
            elif hasattr(os, "pread"):  # pragma: no cover - platform dependent
                chunk = os.pread(self.fd, view.nbytes, pos)
                n = len(chunk)
                view[:n] = chunk
            else:  # pragma: no cover - Windows
                with self._lock:
                    os.lseek(self.fd, pos, os.SEEK_SET)
                    chunk = os.read(self.fd, view.nbytes)
                n = len(chunk)
                view[:n] = chunk
            if n == 0:
                raise EOFError("column cache file is truncated")
            view, pos = view[n:], pos + n
        return out

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not possible on every platform
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_process_locks: dict[str, threading.Lock] = {}
_process_locks_guard = threading.Lock()


@contextlib.contextmanager
def _key_lock(lock_path: Path) -> Iterator[bool]:
    """Exclusive per-key lock across threads and processes; yields whether it is a file lock
    (only then can other builders' temporary folders be known to be dead)."""
    with _process_locks_guard:
        tlock = _process_locks.setdefault(str(lock_path), threading.Lock())
    with tlock:
        if fcntl is None:  # pragma: no cover - platform dependent
            yield False
            return
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield True
        finally:
            os.close(fd)  # releases the flock


def _remove_stale_temps(root: Path, name: str, locked: bool) -> None:
    """Remove temporary folders of key ``name`` left by killed builders."""
    now = time.time()
    for tmp in root.glob(f"{name}.tmp-*"):
        try:
            if locked or now - tmp.stat().st_mtime > _STALE_TEMP_SECONDS:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass


# ---------------------------------------------------------------------------- the build
def _write_cache(
    folder: Path,
    backed: BackedMatrix,
    fingerprint: dict[str, Any],
    memory_budget: int,
    report: Callable[[float], None],
) -> None:
    """Write the CSC files of ``backed`` into ``folder`` (two passes over its rows)."""
    n, g = backed.n_cells, backed.n_genes
    max_values = max(1, int(memory_budget) // _BYTES_PER_VALUE)
    t0 = time.perf_counter()

    counts = np.zeros(g, dtype=np.int64)  # pass 1: entries per gene
    for ch in backed.iter_row_chunks(max_values, values=False):
        if ch.indices.size:
            counts += np.bincount(ch.indices, minlength=g)
        report(_PASS1_SHARE * ch.stop / max(n, 1))
    indptr = np.zeros(g + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    nnz = int(indptr[-1])
    del counts

    index_dtype, value_dtype = np.dtype("<i4"), np.dtype("<f4")
    writers = [
        _NpyWriter(folder / "indices.npy", index_dtype, nnz),
        _NpyWriter(folder / "data.npy", value_dtype, nnz),
    ]
    try:
        w_idx, w_val = writers
        fill = indptr[:-1].copy()
        for ch in backed.iter_row_chunks(max_values, values=True):  # pass 2: scatter
            if ch.indices.size:
                vals = ch.data.astype(value_dtype, copy=False)
                m = sp.csr_matrix((vals, ch.indices, ch.indptr), shape=(ch.stop - ch.start, g))
                del vals
                c = m.tocsc()  # counting sort; rows stay in order within each gene
                del m
                rows = c.indices.astype(index_dtype, copy=False)
                rows += ch.start
                vals = c.data.astype(value_dtype, copy=False)
                cp = c.indptr.tolist()
                lengths = np.diff(c.indptr)
                del c
                at = fill.tolist()
                for j in np.flatnonzero(lengths).tolist():
                    s, e = cp[j], cp[j + 1]
                    w_idx.write_at(at[j], rows[s:e])
                    w_val.write_at(at[j], vals[s:e])
                fill += lengths
                del rows, vals
            report(_PASS1_SHARE + (1 - _PASS1_SHARE) * 0.99 * ch.stop / max(n, 1))
        if not np.array_equal(fill, indptr[1:]):
            raise RuntimeError("the source matrix changed while its column cache was being built")
    finally:
        for w in writers:
            w.close()
    np.save(folder / "indptr.npy", indptr)
    meta = {
        "format_version": FORMAT_VERSION,
        "shape": [n, g],
        "nnz": nnz,
        "dtype": "float32",
        "index_dtype": "int32",
        "indptr_dtype": "int64",
        "source_format": backed.format,
        "source_dtype": str(backed.dtype),
        "source": fingerprint,
        "memory_budget": int(memory_budget),
        "build_seconds": round(time.perf_counter() - t0, 3),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with open(folder / "indptr.npy", "rb+") as f:
        os.fsync(f.fileno())
    with open(folder / "meta.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
        f.flush()
        os.fsync(f.fileno())


def _child_build(
    spec: tuple[str, str, dict[str, Any], str],
    name: str,
    memory_budget: int,
    progress: Any,
    report: Any,
) -> None:
    """The child process of :meth:`ColumnCache.build_in_background`: open the source again,
    check it is still the same (same cache key) and build; errors go back through ``report``."""
    source, element, options, root = spec
    try:
        matrix = BackedMatrix.open(source, element, attach_cache=False, storage_options=options)
        try:
            cache = ColumnCache.for_source(
                matrix,
                source,
                element,
                root,
                memory_budget=memory_budget,
                storage_options=options,
            )
            if cache.path.name != name:
                raise RuntimeError(f"{source} changed while its column cache was to be built")

            def update(fraction: float) -> None:
                progress.value = fraction

            cache.build(update)
        finally:
            matrix.close()
    except BaseException as exc:
        report.send(f"{type(exc).__name__}: {exc}")
        raise SystemExit(1) from None
    finally:
        report.close()


# ---------------------------------------------------------------------------- the cache
class ColumnCache:
    """A CSC copy of one cell-major matrix in the cache folder (see the module docstring).

    Create it with :meth:`for_source`; build it with :meth:`build` or
    :meth:`build_in_background`; then read genes with :meth:`column`, :meth:`columns` or
    :meth:`blocks` (the :class:`~cellucid.export.genes.GeneMatrix` protocol). Reads are
    thread-safe and keep no memory map open.

    Attributes
    ----------
    path : Path
        The cache folder (exists only once the cache is complete).
    progress : float
        0 to 1 while building; 1 when ready.
    error : BaseException or None
        Why the last background build failed.
    """

    def __init__(
        self,
        path: Path,
        backed: BackedMatrix | None,
        fingerprint: dict[str, Any] | None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
    ) -> None:
        self.path = Path(path)
        self._backed = backed
        self._fingerprint = fingerprint
        self.memory_budget = int(memory_budget)
        self.progress = 0.0
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._process: Any = None  # a build in a child process (build_in_background)
        self._cancelled = False
        #: how to open the source again in another process: (source, element, options, root)
        self.source_spec: tuple[str, str, dict[str, Any], str] | None = None
        self._ready = False
        self._indptr: np.ndarray | None = None
        self._indices: _NpyReader | None = None
        self._data: _NpyReader | None = None
        if backed is not None:
            self.n_cells, self.n_genes = backed.n_cells, backed.n_genes
        else:
            meta = self._read_meta()
            if meta is None:
                raise FileNotFoundError(f"no column cache at {self.path}")
            self.n_cells, self.n_genes = meta["shape"]
        if self.ready:
            self.progress = 1.0

    @classmethod
    def for_source(
        cls,
        backed: BackedMatrix,
        source_path: PathLike,
        element: str = "X",
        cache_dir: PathLike | None = None,
        *,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        storage_options: StorageOptions | None = None,
    ) -> ColumnCache:
        """The cache of ``element`` of the file/store at ``source_path`` (a path or a URL),
        ready or not.

        Cheap: stats the source (for a zarr store, the element's files; for a URL, one
        listing) and looks for a complete cache folder; nothing is built.
        """
        if backed.format not in ("csr", "dense"):
            raise ValueError(
                f"a column cache is for cell-major matrices (csr, dense); this one is {backed.format}"
            )
        source = source_path if is_url(source_path) else Path(source_path)
        found = fingerprint(source, element, storage_options)
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        cache = cls(root / "columns" / cache_key(found), backed, found, memory_budget)
        cache.source_spec = (str(source), element, dict(storage_options or {}), str(root))
        return cache

    @classmethod
    def open_folder(cls, path: str | Path) -> ColumnCache:
        """A complete cache folder, for reading only."""
        return cls(Path(path), None, None)

    def __repr__(self) -> str:
        state = "ready" if self.ready else f"building {self.progress:.0%}"
        return f"ColumnCache({self.n_cells} x {self.n_genes}, {state}, {self.path})"

    # ------------------------------------------------------------------ state
    def _read_meta(self) -> dict[str, Any] | None:
        try:
            with open(self.path / "meta.json", encoding="utf-8") as f:
                meta = json.load(f)
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
            return None
        return meta

    @property
    def ready(self) -> bool:
        """Whether a complete cache for this source exists (checked on disk until true)."""
        if self._ready:
            return True
        meta = self._read_meta()
        if meta is None:
            return False
        if self._backed is not None and list(meta.get("shape", ())) != [
            self.n_cells,
            self.n_genes,
        ]:
            return False
        if not all((self.path / f).is_file() for f in ("indptr.npy", "indices.npy", "data.npy")):
            return False
        self._ready = True
        self.progress = 1.0
        return True

    def status(self) -> dict[str, Any]:
        """``{"state", "progress", "error"}``: ``state`` is ``"ready"``, ``"building"``,
        ``"error"`` (the last build failed; ``error`` says why) or ``"idle"`` (not built and
        no build running); ``progress`` is 0-1."""
        if self.ready:
            return {"state": "ready", "progress": 1.0, "error": None}
        if self.error is not None:
            return {"state": "error", "progress": self.progress, "error": str(self.error)}
        thread = self._thread
        state = "building" if thread is not None and thread.is_alive() else "idle"
        return {"state": state, "progress": round(self.progress, 4), "error": None}

    @property
    def meta(self) -> dict[str, Any] | None:
        """``meta.json`` of the complete cache, or ``None``."""
        return self._read_meta()

    @property
    def nnz(self) -> int:
        return int(self._open()[0][-1])

    # ------------------------------------------------------------------ building
    def build(self, progress: Callable[[float], None] | None = None) -> None:
        """Build the cache now (blocking); returns at once if it is ready.

        Waits while another thread or process builds the same key, then uses its result.
        """
        if self.ready:
            return
        if self._backed is None:
            raise RuntimeError("this cache was opened for reading only")

        def report(fraction: float) -> None:
            self.progress = min(max(fraction, 0.0), 1.0)
            if progress is not None:
                progress(self.progress)

        root = self.path.parent
        root.mkdir(parents=True, exist_ok=True)
        name = self.path.name
        with _key_lock(root / f"{name}.lock") as locked:
            if self.ready:
                return
            _remove_stale_temps(root, name, locked)
            tmp = root / f"{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
            tmp.mkdir()
            try:
                _write_cache(tmp, self._backed, self._fingerprint or {}, self.memory_budget, report)
                _fsync_dir(tmp)
                try:
                    os.rename(tmp, self.path)
                except OSError:
                    if not self.ready:  # not a lost race with another builder
                        raise
                    shutil.rmtree(tmp, ignore_errors=True)
                _fsync_dir(root)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        if not self.ready:
            raise RuntimeError(f"column cache at {self.path} is incomplete after building")
        report(1.0)

    def build_in_background(self, process: bool = False) -> threading.Thread:
        """Start :meth:`build` on a daemon thread (or return the one already running).

        With ``process`` the build runs in a child process (the thread supervises it and
        copies its progress): a server keeps its interpreter, and the GIL, for requests while
        ten million cells are sorted into columns. Without a way to open the source again
        (:attr:`source_spec`) it runs on the thread. A failure is logged and kept in
        :attr:`error`; reads keep using the source.
        """
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return self._thread
            self.error = None
            self._cancelled = False
            in_child = process and self.source_spec is not None and not self.ready

            def run() -> None:
                try:
                    self._build_in_child() if in_child else self.build()
                except BaseException as exc:
                    if self._cancelled:  # stopped on purpose (the server closes)
                        return
                    self.error = exc
                    log.error("building the column cache %s failed: %s", self.path, exc)

            self._thread = threading.Thread(target=run, name="cellucid-column-cache", daemon=True)
            self._thread.start()
            return self._thread

    def _build_in_child(self) -> None:
        import multiprocessing

        assert self.source_spec is not None
        ctx = multiprocessing.get_context("spawn")
        progress = ctx.Value("d", 0.0, lock=False)
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(
            target=_child_build,
            args=(self.source_spec, self.path.name, self.memory_budget, progress, send),
            name="cellucid-column-cache",
            daemon=True,  # ends with the server
        )
        # started under the lock: a cancel() (the server closing) either comes first and no
        # child starts, or comes after and terminates it. A child left half-started (its
        # parent gone while it still reads its spawn data) would print an EOFError traceback.
        with self._lock:
            if self._cancelled:
                send.close()
                receive.close()
                raise RuntimeError("the build was cancelled before it started")
            self._process = child
            child.start()
        send.close()
        try:
            while child.is_alive():
                child.join(0.2)
                self.progress = min(max(float(progress.value), self.progress), 1.0)
            try:  # the child's error, if it sent one (a closed pipe reads as EOF)
                message = receive.recv() if receive.poll() else None
            except EOFError:
                message = None
        finally:
            receive.close()
            with self._lock:
                self._process = None
        if child.exitcode != 0 or not self.ready:
            raise RuntimeError(message or f"the build process ended with {child.exitcode}")
        self.progress = 1.0

    def cancel(self) -> None:
        """Stop a build running in a child process, or keep one about to start from starting
        (its temporary folder is removed by the next builder); a build on a thread runs to its
        end. :meth:`build_in_background` may start a new build afterwards."""
        with self._lock:
            child = self._process
            self._cancelled = True
            if child is not None and child.is_alive():
                child.terminate()

    # ------------------------------------------------------------------ reading
    def _open(self) -> tuple[np.ndarray, _NpyReader, _NpyReader]:
        with self._lock:
            if self._indptr is None or self._indices is None or self._data is None:
                if not self.ready:
                    raise RuntimeError(f"column cache at {self.path} is not ready")
                indptr = np.load(self.path / "indptr.npy")
                indices = _NpyReader(self.path / "indices.npy")
                data = _NpyReader(self.path / "data.npy")
                nnz = int(indptr[-1]) if indptr.size else 0
                if indptr.shape != (self.n_genes + 1,) or indices.n != nnz or data.n != nnz:
                    indices.close()
                    data.close()
                    raise RuntimeError(f"column cache at {self.path} is inconsistent")
                self._indptr, self._indices, self._data = indptr, indices, data
            return self._indptr, self._indices, self._data

    def _read(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        _, indices, data = self._open()
        return indices.read(a, b), data.read(a, b)

    @property
    def indptr(self) -> np.ndarray:
        """The CSC ``indptr`` (int64, ``n_genes + 1``): gene ``j``'s entries are
        ``indptr[j]:indptr[j + 1]`` (read-only; the cache must be ready)."""
        indptr = self._open()[0]
        indptr.flags.writeable = False
        return indptr

    def entries(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Stored entries ``a:b`` (cell ids int32, values float32), in gene order; for
        readers that walk many genes at once (e.g. :mod:`cellucid.analysis`)."""
        return self._read(int(a), int(b))

    def column(self, j: int, out: np.ndarray | None = None) -> np.ndarray:
        """The dense float32 column of gene ``j`` (fills and returns ``out`` when given)."""
        indptr = self._open()[0]
        j = int(j)
        if not 0 <= j < self.n_genes:
            raise IndexError(f"gene column {j} out of range [0, {self.n_genes})")
        if out is None:
            out = np.zeros(self.n_cells, dtype=np.float32)
        else:
            out.fill(0)
        a, b = int(indptr[j]), int(indptr[j + 1])
        if b > a:
            rows, vals = self._read(a, b)
            out[rows] = vals
        return out

    def columns(self, js: Any) -> np.ndarray:
        """``(len(js), n_cells)`` float32 columns."""
        js = np.asarray(js, dtype=np.int64).reshape(-1)
        out = np.empty((js.size, self.n_cells), dtype=np.float32)
        for i, j in enumerate(js.tolist()):
            self.column(j, out[i])
        return out

    def blocks(
        self, columns: np.ndarray, block_values: int = DEFAULT_BLOCK_VALUES
    ) -> Iterator[SparseBlock]:
        """Blocks of at most ``block_values`` stored values covering ``columns``
        (:class:`~cellucid.export.genes.GeneMatrix` protocol); consecutive genes are read
        with one ``pread`` per file."""
        indptr = self._open()[0]
        columns = np.asarray(columns, dtype=np.int64)
        if columns.size and (columns.min() < 0 or columns.max() >= self.n_genes):
            raise IndexError(f"gene column out of range [0, {self.n_genes})")
        for pos in nnz_batches(columns, np.diff(indptr), block_values):
            yield column_slices_block(
                pos, columns[pos], indptr, self._read, self.n_cells, canonical=True
            )

    def close(self) -> None:
        """Close the open files (reads reopen them)."""
        with self._lock:
            for r in (self._indices, self._data):
                if r is not None:
                    r.close()
            self._indptr = self._indices = self._data = None

    def __enter__(self) -> ColumnCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
