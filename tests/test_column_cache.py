"""ColumnCache (on-disk CSC copy of a cell-major matrix) and ColumnLRU.

Every column read from a cache must equal ``X`` loaded in memory, whatever the source (h5ad,
zarr v2/v3, CSR or dense, non-canonical, any dtype) and the memory budget. A cache is only
ever taken as ready when complete: a failing or killed build leaves none (and the next build
cleans up), two builders of one key (threads or processes) end with one valid cache. A cache
is found again by a new instance, and a changed source gets a new key.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pytest
import scipy.sparse as sp

from _data import expression, rng
from cellucid.storage import column_cache as cc
from cellucid.storage.backed import BackedMatrix
from cellucid.storage.blocks import iter_columns
from cellucid.storage.column_cache import ColumnCache, default_cache_dir
from cellucid.storage.lru import ColumnLRU

pytestmark = [
    pytest.mark.filterwarnings("ignore:Writing zarr v2 data:UserWarning"),
    pytest.mark.filterwarnings("ignore:zarr v3 autosharding:UserWarning"),
    pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning"),
]

N, G = 300, 25
REPO = Path(__file__).resolve().parents[1]


def _dense(seed: int = 5) -> np.ndarray:
    x = expression(N, G, seed, density=0.2)
    x[9, :] = 0.0
    return x


def write(x, path: Path, store: str = "h5ad") -> Path:
    a = ad.AnnData(X=x)
    if store == "h5ad":
        a.write_h5ad(path)
    else:
        with ad.settings.override(zarr_write_format=int(store[-1])):
            a.write_zarr(path)
    return path


@pytest.fixture
def csr_file(tmp_path) -> Path:
    return write(sp.csr_matrix(_dense()), tmp_path / "m.h5ad")


def _cache(
    path: Path, cache_dir: Path, element: str = "X", **kw
) -> tuple[BackedMatrix, ColumnCache]:
    m = BackedMatrix.open(path, element, attach_cache=False)
    return m, ColumnCache.for_source(m, path, element, cache_dir=cache_dir, **kw)


def _temps(cache_dir: Path) -> list[Path]:
    root = cache_dir / "columns"
    return sorted(root.glob("*.tmp-*")) if root.exists() else []


def assert_cache_matches(cache: ColumnCache, x: np.ndarray) -> None:
    assert cache.ready and (cache.n_cells, cache.n_genes) == x.shape
    for j in range(x.shape[1]):
        col = cache.column(j)
        assert col.dtype == np.float32
        np.testing.assert_array_equal(col, x[:, j].astype(np.float32))
    np.testing.assert_array_equal(cache.columns([3, 0, 3]), x[:, [3, 0, 3]].T)
    cols = np.concatenate([rng(2).permutation(x.shape[1]), [1, 1]])
    for block_values in (1, 40, 10**9):
        for pos, col in iter_columns_bv(cache, cols, block_values):
            np.testing.assert_array_equal(col, x[:, cols[pos]].astype(np.float32))
    for pos, col in iter_columns(cache, cols):  # as cellucid.export.genes iterates
        np.testing.assert_array_equal(col, x[:, cols[pos]].astype(np.float32))


def iter_columns_bv(m, cols, block_values):
    buf = np.empty(m.n_cells, dtype=np.float32)
    for block in m.blocks(cols, block_values):
        for i, p in enumerate(block.positions):
            yield int(p), block.column(i, buf)


# ---------------------------------------------------------------- contents
@pytest.mark.parametrize(
    ("store", "fmt"),
    [("h5ad", "csr"), ("zarr2", "csr"), ("zarr3", "csr"), ("h5ad", "dense"), ("zarr3", "dense")],
)
def test_cache_columns_equal_the_in_memory_matrix(tmp_path, store, fmt):
    x = _dense()
    suffix = ".h5ad" if store == "h5ad" else ".zarr"
    path = write(sp.csr_matrix(x) if fmt == "csr" else x, tmp_path / f"m{suffix}", store)
    m, cache = _cache(path, tmp_path / "cache")
    assert not cache.ready
    cache.build()
    assert_cache_matches(cache, x)

    files = {p.name for p in cache.path.iterdir()}
    assert files == {"indptr.npy", "indices.npy", "data.npy", "meta.json"}
    meta = json.loads((cache.path / "meta.json").read_text())
    nnz = int(np.count_nonzero(x))
    assert meta["format_version"] == cc.FORMAT_VERSION
    assert meta["shape"] == [N, G] and meta["nnz"] == nnz == cache.nnz
    assert meta["source"]["element"] == "X" and meta["source_format"] == fmt
    # plain .npy files that numpy itself reads (memory-mapped here only to check them)
    indptr = np.load(cache.path / "indptr.npy")
    indices = np.load(cache.path / "indices.npy", mmap_mode="r")
    data = np.load(cache.path / "data.npy", mmap_mode="r")
    assert (indptr.dtype, indices.dtype, data.dtype) == (np.int64, np.int32, np.float32)
    ref = sp.csc_matrix(x)
    np.testing.assert_array_equal(indptr, ref.indptr)
    np.testing.assert_array_equal(indices, ref.indices)  # rows sorted within each gene
    np.testing.assert_array_equal(data, ref.data.astype(np.float32))
    del indices, data

    # a backed matrix with the cache attached reads genes from it, not from the source
    m.attach_cache(cache)
    m._scan_blocks = m._dense_blocks = None  # type: ignore[assignment]
    np.testing.assert_array_equal(m.columns(range(G)), x.T)
    m.close()


@pytest.mark.parametrize("budget", [24, 24 * 7, 24 * 100])
def test_tiny_memory_budgets_give_the_same_cache(tmp_path, csr_file, budget):
    _, cache = _cache(csr_file, tmp_path / "cache", memory_budget=budget)
    chunks = []
    orig = BackedMatrix.iter_row_chunks

    def spy(self, max_values, **k):
        chunks.append(max_values)
        return orig(self, max_values, **k)

    BackedMatrix.iter_row_chunks = spy  # type: ignore[method-assign]
    try:
        cache.build()
    finally:
        BackedMatrix.iter_row_chunks = orig  # type: ignore[method-assign]
    assert chunks == [max(1, budget // cc._BYTES_PER_VALUE)] * 2  # two passes
    assert_cache_matches(cache, _dense())


def test_non_canonical_source_is_summed_and_sorted(tmp_path):
    from test_backed import _non_canonical, _raw_sparse_group

    x = _dense().astype(np.float64)
    path = tmp_path / "raw.h5"
    with h5py.File(path, "w") as f:
        _raw_sparse_group(f, "X", "csr", _non_canonical(x), x.shape)
    _, cache = _cache(path, tmp_path / "cache", memory_budget=24 * 50)
    cache.build()
    assert cache.ready
    got = cache.columns(range(G))
    np.testing.assert_allclose(got, x.T, rtol=1e-6)
    indptr = np.load(cache.path / "indptr.npy")
    idx = np.load(cache.path / "indices.npy")
    for j in range(G):
        assert (np.diff(idx[indptr[j] : indptr[j + 1]]) > 0).all()


def test_empty_matrix_and_layers(tmp_path):
    x = np.zeros((N, G), dtype=np.float32)
    a = ad.AnnData(X=sp.csr_matrix(x), layers={"counts": sp.csr_matrix(_dense())})
    path = tmp_path / "e.h5ad"
    a.write_h5ad(path)
    _, empty = _cache(path, tmp_path / "cache")
    empty.build()
    assert empty.nnz == 0
    assert_cache_matches(empty, x)
    _, layer = _cache(path, tmp_path / "cache", "layers/counts")
    assert layer.path != empty.path
    layer.build()
    assert_cache_matches(layer, _dense())


def test_csc_sources_need_no_cache(tmp_path):
    path = write(sp.csc_matrix(_dense()), tmp_path / "c.h5ad")
    m = BackedMatrix.open(path)
    with pytest.raises(ValueError, match="cell-major"):
        ColumnCache.for_source(m, path, "X", cache_dir=tmp_path)


# ---------------------------------------------------------------- keys, location, reuse
def test_cache_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CELLUCID_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "cellucid"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "cellucid"
    monkeypatch.setenv("CELLUCID_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"


def test_default_location_and_override(tmp_path, csr_file, monkeypatch):
    monkeypatch.setenv("CELLUCID_CACHE_DIR", str(tmp_path / "env"))
    m = BackedMatrix.open(csr_file)
    assert ColumnCache.for_source(m, csr_file, "X").path.parent == tmp_path / "env" / "columns"
    c = ColumnCache.for_source(m, csr_file, "X", cache_dir=tmp_path / "arg")
    assert c.path.parent == tmp_path / "arg" / "columns"


def test_a_second_instance_finds_the_cache_ready_without_building(tmp_path, csr_file, monkeypatch):
    _, first = _cache(csr_file, tmp_path / "cache")
    first.build()
    first.close()

    def fail(*a, **k):
        raise AssertionError("rebuilt")

    monkeypatch.setattr(cc, "_write_cache", fail)
    t = time.perf_counter()
    _, again = _cache(csr_file, tmp_path / "cache")
    assert again.ready and again.path == first.path and again.progress == 1.0
    again.build()  # a no-op
    assert time.perf_counter() - t < 1.0
    assert_cache_matches(again, _dense())
    # BackedMatrix.open attaches a ready cache of the default location by itself
    monkeypatch.setenv("CELLUCID_CACHE_DIR", str(tmp_path / "cache"))
    with BackedMatrix.open(csr_file) as m3:
        assert m3.cache_ready and m3.cache.path == first.path
    ro = ColumnCache.open_folder(first.path)
    assert ro.ready
    np.testing.assert_array_equal(ro.column(4), _dense()[:, 4])
    with pytest.raises(FileNotFoundError):
        ColumnCache.open_folder(tmp_path / "nothing")


def test_a_changed_source_gets_a_new_key(tmp_path, csr_file):
    m, first = _cache(csr_file, tmp_path / "cache")
    first.build()
    m.close()
    st = csr_file.stat()
    os.utime(csr_file, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched
    m, touched = _cache(csr_file, tmp_path / "cache")
    assert touched.path != first.path and not touched.ready
    m.close()
    x2 = _dense(seed=8)
    write(sp.csr_matrix(x2), csr_file)  # rewritten
    _, rewritten = _cache(csr_file, tmp_path / "cache")
    assert rewritten.path not in (first.path, touched.path) and not rewritten.ready
    rewritten.build()
    assert_cache_matches(rewritten, x2)
    assert first.ready  # the old one is left alone


@pytest.mark.parametrize("store", ["zarr2", "zarr3"])
def test_a_changed_zarr_chunk_gets_a_new_key(tmp_path, store):
    path = write(sp.csr_matrix(_dense()), tmp_path / "m.zarr", store)
    _, first = _cache(path, tmp_path / "cache")
    chunk = next(
        p
        for p in (path / "X" / "data").rglob("*")
        if p.is_file() and "." not in p.name and p.name != "zarr.json"
    )
    st = chunk.stat()
    os.utime(chunk, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    _, second = _cache(path, tmp_path / "cache")
    assert second.path != first.path
    # other elements do not count
    (path / "obs" / "unrelated").write_bytes(b"x")
    _, third = _cache(path, tmp_path / "cache")
    assert third.path == second.path


# ---------------------------------------------------------------- atomicity
def test_a_failing_build_leaves_no_cache_and_no_temp(tmp_path, csr_file, monkeypatch):
    _, cache = _cache(csr_file, tmp_path / "cache", memory_budget=24 * 300)
    calls = {"n": 0}
    orig = cc._NpyWriter.write_at

    def flaky(self, index, values):
        calls["n"] += 1
        if calls["n"] > 10:
            raise OSError("disk on fire")
        return orig(self, index, values)

    monkeypatch.setattr(cc._NpyWriter, "write_at", flaky)
    with pytest.raises(OSError, match="disk on fire"):
        cache.build()
    assert not cache.ready and not cache.path.exists()
    assert _temps(tmp_path / "cache") == []
    monkeypatch.setattr(cc._NpyWriter, "write_at", orig)
    cache.build()
    assert_cache_matches(cache, _dense())


def test_meta_is_written_last(tmp_path, csr_file, monkeypatch):
    _, cache = _cache(csr_file, tmp_path / "cache")
    monkeypatch.setattr(cc.json, "dump", lambda *a, **k: (_ for _ in ()).throw(OSError("late")))
    with pytest.raises(OSError, match="late"):
        cache.build()
    assert not cache.ready and _temps(tmp_path / "cache") == []


KILL_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {python!r})
from cellucid.storage.backed import BackedMatrix
from cellucid.storage.column_cache import ColumnCache
m = BackedMatrix.open({path!r}, attach_cache=False)
c = ColumnCache.for_source(m, {path!r}, "X", cache_dir={cache!r}, memory_budget=24 * 300)
def die(f):
    if f > 0.5:
        os.kill(os.getpid(), signal.SIGKILL)
c.build(progress=die)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_killed_builder_leaves_no_ready_cache_and_the_next_build_cleans_up(tmp_path, csr_file):
    script = KILL_SCRIPT.format(
        python=str(REPO / "python"), path=str(csr_file), cache=str(tmp_path / "cache")
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr.decode()
    _, cache = _cache(csr_file, tmp_path / "cache")
    assert not cache.ready and not cache.path.exists()
    assert len(_temps(tmp_path / "cache")) == 1  # the dead builder's half cache
    cache.build()
    assert _temps(tmp_path / "cache") == []
    assert_cache_matches(cache, _dense())


def _count_builds(monkeypatch, barrier: threading.Barrier | None = None) -> list[int]:
    builds: list[int] = []
    orig = cc._write_cache

    def counting(*a, **k):
        builds.append(threading.get_ident())
        if barrier is not None:
            barrier.wait(timeout=10)  # both builders are inside at once
        return orig(*a, **k)

    monkeypatch.setattr(cc, "_write_cache", counting)
    return builds


def run_threads(target, args: list) -> list[BaseException]:
    """Run ``target(arg)`` for every arg on its own thread; the exceptions they raised."""
    errors: list[BaseException] = []

    def run(arg) -> None:
        try:
            target(arg)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(a,)) for a in args]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return errors


def _build_in_threads(caches: list[ColumnCache]) -> list[BaseException]:
    start = threading.Barrier(len(caches))

    def build(c: ColumnCache) -> None:
        start.wait(timeout=10)
        c.build()

    return run_threads(build, caches)


def test_concurrent_builders_in_threads_build_once(tmp_path, csr_file, monkeypatch):
    builds = _count_builds(monkeypatch)
    caches = [_cache(csr_file, tmp_path / "cache")[1] for _ in range(2)]
    assert _build_in_threads(caches) == []
    assert len(builds) == 1  # the second waited for the lock, then found it ready
    for c in caches:
        assert_cache_matches(c, _dense())
    assert _temps(tmp_path / "cache") == []


def test_unlocked_concurrent_builders_still_end_with_one_valid_cache(
    tmp_path, csr_file, monkeypatch
):
    """Without file locks both builders finish; the first rename wins, the other discards."""
    import contextlib

    monkeypatch.setattr(cc, "_key_lock", lambda path: contextlib.nullcontext(False))
    builds = _count_builds(monkeypatch, threading.Barrier(2))
    caches = [_cache(csr_file, tmp_path / "cache")[1] for _ in range(2)]
    assert _build_in_threads(caches) == []
    assert len(builds) == 2
    for c in caches:
        assert_cache_matches(c, _dense())
    assert _temps(tmp_path / "cache") == []
    assert [p.name for p in (tmp_path / "cache" / "columns").iterdir()] == [caches[0].path.name]


PROCESS_SCRIPT = """
import sys, time
sys.path.insert(0, {python!r})
from cellucid.storage.backed import BackedMatrix
from cellucid.storage.column_cache import ColumnCache
m = BackedMatrix.open({path!r}, attach_cache=False)
c = ColumnCache.for_source(m, {path!r}, "X", cache_dir={cache!r})
while time.time() < {start}:
    time.sleep(0.005)
c.build()
print(c.ready)
"""


def test_concurrent_builders_in_processes_end_with_one_valid_cache(tmp_path, csr_file):
    script = PROCESS_SCRIPT.format(
        python=str(REPO / "python"),
        path=str(csr_file),
        cache=str(tmp_path / "cache"),
        start=time.time() + 2.0,
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1].decode() for o in outs]
    assert [o[0].decode().strip() for o in outs] == ["True", "True"]
    _, cache = _cache(csr_file, tmp_path / "cache")
    assert_cache_matches(cache, _dense())
    assert _temps(tmp_path / "cache") == []


# ---------------------------------------------------------------- background builds
def test_build_in_background_reports_progress(tmp_path, csr_file):
    m, cache = _cache(csr_file, tmp_path / "cache", memory_budget=24 * 200)
    m.attach_cache(cache)
    seen: list[float] = []
    orig_report = cache.build

    def build(progress=None):
        return orig_report(progress=seen.append)

    cache.build = build  # type: ignore[method-assign]
    thread = cache.build_in_background()
    assert thread.daemon and thread.name == "cellucid-column-cache"
    thread.join(timeout=30)
    assert cache.ready and cache.error is None and cache.progress == 1.0
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) > 4
    assert m.cache_ready
    np.testing.assert_array_equal(m.column(2), _dense()[:, 2])
    assert cache.build_in_background().join(timeout=5) is None  # already ready: ends at once


def test_build_in_a_child_process_reports_progress_and_can_be_cancelled(tmp_path, csr_file):
    m, cache = _cache(csr_file, tmp_path / "cache", memory_budget=24 * 200)
    m.attach_cache(cache)
    assert cache.status() == {"state": "idle", "progress": 0.0, "error": None}
    thread = cache.build_in_background(process=True)
    assert cache.status()["state"] in ("building", "ready")
    thread.join(timeout=60)
    assert cache.ready and cache.error is None
    assert cache.status() == {"state": "ready", "progress": 1.0, "error": None}
    np.testing.assert_array_equal(m.column(2), _dense()[:, 2])
    # a build stopped on purpose is not an error, and leaves no cache behind
    m2, other = _cache(csr_file, tmp_path / "other", memory_budget=24 * 200)
    thread = other.build_in_background(process=True)
    deadline = time.monotonic() + 30
    while other._process is None and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    other.cancel()
    thread.join(timeout=30)
    assert other.error is None and (other.ready or not other.path.exists())
    m2.close()


def test_a_cancel_before_the_child_starts_keeps_it_from_starting(tmp_path, csr_file, monkeypatch):
    import multiprocessing

    m, cache = _cache(csr_file, tmp_path / "cache", memory_budget=24 * 200)
    started: list[object] = []
    monkeypatch.setattr(
        multiprocessing.context.SpawnProcess, "start", lambda self: started.append(self)
    )
    cache.cancel()  # the server closes before the build's thread reaches the start
    cache.build_in_background(process=True)  # a late start resets the flag: a new build
    cache._thread.join(timeout=30)
    assert len(started) == 1  # proves the patch is live: this build did try to start
    with cache._lock:
        cache._cancelled = True  # now cancel between the thread's creation and the start
    with pytest.raises(RuntimeError, match="cancelled before it started"):
        cache._build_in_child()
    assert len(started) == 1 and cache._process is None
    m.close()


CANCEL_SCRIPT = """
import multiprocessing, sys, time
from multiprocessing import popen_spawn_posix
sys.path.insert(0, {python!r})
from cellucid.storage.backed import BackedMatrix
from cellucid.storage.column_cache import ColumnCache

spawn = popen_spawn_posix.util.spawnv_passfds
def slow_spawn(path, args, fds):  # widen the gap between the child's birth and its data
    pid = spawn(path, args, fds)
    if "spawn_main" in str(args):  # not the resource tracker
        time.sleep(1.0)
    return pid
popen_spawn_posix.util.spawnv_passfds = slow_spawn

if __name__ == "__main__":
    m = BackedMatrix.open({path!r}, attach_cache=False)
    c = ColumnCache.for_source(m, {path!r}, "X", cache_dir={cache!r})
    thread = c.build_in_background(process=True)
    time.sleep(0.3)  # the child exists, its parent has not written to it yet
    c.cancel()  # the server closes on Ctrl+C ...
    print("cancelled", flush=True)
    # ... and the interpreter exits with the daemon thread wherever it is
"""


@pytest.mark.skipif(sys.platform == "win32", reason="spawn start-up timing")
def test_cancelling_a_starting_child_leaves_no_traceback_and_no_child(tmp_path, csr_file):
    """A server stopped by Ctrl+C just as its column-cache child starts: the child must not
    be left reading its spawn data from a closed pipe (an EOFError traceback in the
    terminal, the CI failure of session 4)."""
    script = CANCEL_SCRIPT.format(
        python=str(REPO / "python"), path=str(csr_file), cache=str(tmp_path / "cache")
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert proc.stdout.decode().strip() == "cancelled"
    time.sleep(1.5)  # an orphaned child would print after its parent is gone
    assert "Traceback" not in err and "EOFError" not in err, err


def test_a_failing_background_build_sets_error_and_logs(tmp_path, csr_file, monkeypatch, caplog):
    def broken(*a, **k):
        raise RuntimeError("no space")

    monkeypatch.setattr(cc, "_write_cache", broken)
    m, cache = _cache(csr_file, tmp_path / "cache")
    m.attach_cache(cache)
    with caplog.at_level(logging.ERROR, logger="cellucid.storage.column_cache"):
        cache.build_in_background().join(timeout=30)
    assert isinstance(cache.error, RuntimeError) and not cache.ready
    assert "no space" in caplog.text
    np.testing.assert_array_equal(m.column(2), _dense()[:, 2])  # still served by the scan


def test_reads_before_ready_are_refused(tmp_path, csr_file):
    _, cache = _cache(csr_file, tmp_path / "cache")
    with pytest.raises(RuntimeError, match="not ready"):
        cache.column(0)
    cache.build()
    with pytest.raises(IndexError):
        cache.column(G)
    with pytest.raises(IndexError):
        list(cache.blocks(np.array([-1])))


def test_concurrent_reads_are_consistent(tmp_path, csr_file):
    x = _dense()
    _, cache = _cache(csr_file, tmp_path / "cache")
    cache.build()

    def reader(seed: int) -> None:
        for j in rng(seed).integers(0, G, 200):
            np.testing.assert_array_equal(cache.column(int(j)), x[:, j])

    assert run_threads(reader, list(range(4))) == []


# ---------------------------------------------------------------- ColumnLRU
def test_lru_evicts_the_least_recently_used():
    lru = ColumnLRU(maxsize=3)
    for j in range(3):
        lru.put(j, np.full(4, j, np.float32))
    assert lru.get(0)[0] == 0  # 0 becomes the most recent
    lru.put(3, np.zeros(4, np.float32))
    assert 1 not in lru and {0, 2, 3} == {k for k in range(4) if k in lru}
    assert len(lru) == 3 and lru.nbytes == 3 * 16
    assert lru.get(1, "missing") == "missing"
    assert ColumnLRU().maxsize == 100


def test_lru_byte_bound_and_read_only_values():
    lru = ColumnLRU(maxsize=100, max_bytes=40)
    for j in range(5):
        lru.put(j, np.zeros(4, np.float32))  # 16 bytes each
    assert len(lru) == 2 and lru.nbytes == 32
    lru.put("big", np.zeros(100, np.float32))  # larger than the bound: not kept
    assert "big" not in lru
    v = lru.get(4)
    with pytest.raises(ValueError):
        v[0] = 1.0
    lru.clear()
    assert len(lru) == 0 and lru.nbytes == 0
    off = ColumnLRU(maxsize=0)
    off.put(1, np.zeros(1))
    assert len(off) == 0


def test_lru_loads_a_missing_key_once_for_concurrent_callers():
    lru = ColumnLRU(maxsize=10)
    calls: list[int] = []
    gate = threading.Event()

    def load(j):
        calls.append(j)
        gate.wait(timeout=10)
        return np.full(3, j, np.float32)

    results: list[np.ndarray] = []
    threads = [
        threading.Thread(target=lambda: results.append(lru.get_or_load(7, load))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    time.sleep(0.1)
    gate.set()
    for t in threads:
        t.join(timeout=10)
    assert calls == [7] and len(results) == 8
    assert all(r is results[0] for r in results)

    def boom(j):
        raise KeyError(j)

    with pytest.raises(KeyError):
        lru.get_or_load(8, boom)
    assert 8 not in lru
    assert lru.get_or_load(8, lambda j: np.zeros(1))[0] == 0


def test_lru_stays_consistent_under_many_threads():
    lru = ColumnLRU(maxsize=16, max_bytes=16 * 40)

    def work(seed: int) -> None:
        r = rng(seed)
        for _ in range(2000):
            j = int(r.integers(0, 64))
            if r.random() < 0.5:
                lru.put(j, np.full(int(r.integers(1, 11)), j, np.float32))
            else:
                v = lru.get_or_load(j, lambda k: np.full(5, k, np.float32))
                assert v[0] == j

    assert run_threads(work, list(range(6))) == []
    assert len(lru) <= 16 and lru.nbytes <= 16 * 40
    assert lru.nbytes == sum(lru.get(k).nbytes for k in range(64) if k in lru)
