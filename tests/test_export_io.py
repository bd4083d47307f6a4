"""How export files reach the disk: ``binary.write_file`` and the writer threads of ``prepare``.

Large payloads are written with ``O_DIRECT`` (aligned head) plus a buffered tail; wherever
direct I/O is refused the write falls back to the page cache. Whatever the path, the bytes
on disk must be exactly the payload, and a failure in a writer thread must leave no partial
export behind.
"""

from __future__ import annotations

import errno
import os

import numpy as np
import pandas as pd
import pytest

import cellucid.export.binary as binary
from _data import embedding, expression, gene_var, tree_bytes
from cellucid.export.prepare import prepare

needs_direct = pytest.mark.skipif(not binary._O_DIRECT, reason="no O_DIRECT on this OS")
A = binary.DIRECT_ALIGN


@pytest.fixture
def open_flags(monkeypatch):
    """Flags of every ``os.open`` call, in order."""
    seen: list[int] = []
    real = os.open

    def spy(path, flags, *args, **kw):
        seen.append(flags)
        return real(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", spy)
    return seen


def payload(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size=n, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("n", [0, 1, A - 1, A, A + 1, 3 * A, 5 * A + 7])
@pytest.mark.parametrize("aligned", [True, False], ids=["aligned", "unaligned"])
def test_direct_writes_give_the_exact_bytes(tmp_path, monkeypatch, open_flags, n, aligned):
    monkeypatch.setattr(binary, "DIRECT_MIN_BYTES", 1)
    monkeypatch.setattr(binary, "DIRECT_CHUNK", 2 * A)  # several scratch copies per file
    data = payload(n)
    if aligned:
        src = binary.aligned_empty(n, np.uint8)
        src[:] = np.frombuffer(data, dtype=np.uint8)
        assert n == 0 or src.ctypes.data % A == 0
    else:
        src = memoryview(data)  # bytes objects are not page-aligned
    path = tmp_path / "f.bin"
    path.write_bytes(b"old content, longer than some payloads" * 200)
    binary.write_file(path, src)
    assert path.read_bytes() == data
    if binary._O_DIRECT and n:
        assert open_flags[-1] & binary._O_DIRECT


def test_small_payloads_go_through_the_page_cache(tmp_path, open_flags):
    binary.write_file(tmp_path / "f.bin", b"abc")
    assert (tmp_path / "f.bin").read_bytes() == b"abc"
    assert not open_flags[-1] & binary._O_DIRECT


def test_aligned_empty_is_aligned():
    for n in (1, 1000, 12345):
        arr = binary.aligned_empty(n, np.float32)
        assert arr.shape == (n,) and arr.dtype == np.float32
        assert arr.ctypes.data % A == 0


@needs_direct
def test_a_file_system_without_direct_io_gets_buffered_writes(tmp_path, monkeypatch):
    real = os.open

    def refuse_direct(path, flags, *args, **kw):
        if flags & binary._O_DIRECT:
            raise OSError(errno.EINVAL, "O_DIRECT not supported")
        return real(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", refuse_direct)
    data = payload(10 * A + 3)
    binary.write_file(tmp_path / "f.bin", data)
    assert (tmp_path / "f.bin").read_bytes() == data


@needs_direct
def test_a_refused_direct_write_is_redone_through_the_page_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(binary, "DIRECT_CHUNK", A)
    real = os.pwrite
    calls = {"n": 0}

    def refuse_second(fd, data, offset):
        calls["n"] += 1
        if calls["n"] == 2:  # after one aligned chunk is already on disk
            raise OSError(errno.EINVAL, "bad alignment")
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", refuse_second)
    data = payload(binary.DIRECT_MIN_BYTES + 5)
    binary.write_file(tmp_path / "f.bin", data)
    assert (tmp_path / "f.bin").read_bytes() == data


@needs_direct
def test_other_write_errors_are_raised(tmp_path, monkeypatch):
    def no_space(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", no_space)
    with pytest.raises(OSError) as exc:
        binary.write_file(tmp_path / "f.bin", payload(binary.DIRECT_MIN_BYTES))
    assert exc.value.errno == errno.ENOSPC


# ---------------------------------------------------------------------------- through prepare
N, G = 3000, 12  # a gene column is 12,000 bytes: direct once the threshold is lowered


def inputs(**extra) -> dict:
    kw = {
        "obs": pd.DataFrame({"v": np.arange(N * 1.0)}),
        "X_umap_2d": embedding(N, 2),
        "var": gene_var(G),
        "gene_expression": expression(N, G),
    }
    kw.update(extra)
    return kw


@pytest.mark.parametrize(
    "options",
    [{}, {"var_quantization": 16}, {"compression": 6}],
    ids=["float32", "quantised", "gzip"],
)
def test_direct_and_buffered_exports_are_identical(tmp_path, monkeypatch, options):
    trees = []
    for threshold in (1 << 60, 1):  # everything buffered, then everything direct
        monkeypatch.setattr(binary, "DIRECT_MIN_BYTES", threshold)
        out = prepare(out_dir=tmp_path / str(threshold) / "ds", quiet=True, **inputs(**options))
        tree = tree_bytes(out)
        del tree["dataset_identity.json"]  # has the export time
        trees.append(tree)
    assert trees[0] == trees[1]


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left"), KeyboardInterrupt()])
def test_a_failing_writer_thread_leaves_the_previous_export(tmp_path, monkeypatch, error):
    parent = tmp_path / "exports"
    out = prepare(out_dir=parent / "ds", quiet=True, **inputs())
    before = tree_bytes(out)
    real = os.write
    calls = {"n": 0}

    def fail_later(fd, data):
        calls["n"] += 1
        if calls["n"] > G // 2:
            raise error
        return real(fd, data)

    monkeypatch.setattr(os, "write", fail_later)
    with pytest.raises(type(error)):
        prepare(out_dir=out, force=True, quiet=True, **inputs(compression=3))
    monkeypatch.undo()
    assert tree_bytes(out) == before
    assert sorted(p.name for p in parent.iterdir()) == ["ds"]
