"""Existing exports, ``force`` and failures half-way (SPEC §2.13, §7 item 14).

A failed or interrupted export must leave the previous export byte-identical, no partial
new one, and no staging/backup folders next to ``out_dir``. ``force=True`` replaces every
export artefact (plain and ``.gz``) and touches nothing else.
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cellucid.export.prepare as prepare_module
from _data import (
    dirs_under,
    embedding,
    expression,
    files_under,
    gene_var,
    knn_graph,
    latent,
    read_json,
    tree_bytes,
)
from cellucid.export.prepare import prepare

N = 40
LEFTOVER_PATTERNS = ("*cellucid-staging-*", "*cellucid-old-*")


def rich(**extra) -> dict:
    """An export with every kind of file: genes, edges, vectors, outliers."""
    kw = {
        "obs": pd.DataFrame(
            {"c": pd.Categorical(list("abcd") * (N // 4)), "v": np.arange(N * 1.0)}
        ),
        "latent_space": latent(N, 3),
        "var": gene_var(5),
        "gene_expression": expression(N, 5),
        "connectivities": knn_graph(N, 3),
        "X_umap_2d": embedding(N, 2),
        "X_umap_3d": embedding(N, 3),
        "vector_fields": {"velocity_umap_2d": np.ones((N, 2))},
    }
    kw.update(extra)
    return kw


def small(**extra) -> dict:
    kw = {"obs": pd.DataFrame({"v": np.arange(N * 1.0)}), "X_umap_2d": embedding(N, 2, 9)}
    kw.update(extra)
    return kw


def export(out: Path, **kwargs) -> Path:
    return prepare(out_dir=out, quiet=True, **kwargs)


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for pattern in LEFTOVER_PATTERNS for p in parent.glob(pattern))


def add_user_files(out: Path) -> dict[str, bytes]:
    (out / "notes.txt").write_text("my notes")
    (out / "figures").mkdir()
    (out / "figures" / "umap.png").write_bytes(b"\x89PNG fake")
    (out / "README.md").write_text("# readme")
    return {
        "notes.txt": b"my notes",
        "figures/umap.png": b"\x89PNG fake",
        "README.md": b"# readme",
    }


# ---------------------------------------------------------------------------- force=False
@pytest.mark.parametrize("compression", [None, 3])
def test_existing_export_without_force_is_kept_with_a_warning(tmp_path, compression):
    """Re-running a notebook cell: the complete export stays, prepare says so (upstream's
    behaviour) and returns its path."""
    out = export(tmp_path / "ds", compression=compression, **rich())
    before = tree_bytes(out)
    with pytest.warns(UserWarning, match=r"already holds an export; skipping.*force=True"):
        again = export(out, **small())
    assert again == out
    assert tree_bytes(out) == before
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "artefact",
    [
        "dataset_identity.json",
        "obs_manifest.json",
        "var_manifest.json",
        "connectivity_manifest.json",
        "points_1d.bin",
        "points_3d.bin.gz",
        "obs/",
        "var/",
        "connectivity/",
        "vectors/",
    ],
)
def test_any_single_artefact_blocks_without_force(tmp_path, artefact):
    out = tmp_path / "ds"
    out.mkdir()
    name = artefact.rstrip("/")
    if artefact.endswith("/"):
        (out / name).mkdir()
    else:
        (out / name).write_bytes(b"old")
    with pytest.raises(FileExistsError) as exc:
        export(out, **small())
    assert name in str(exc.value)
    assert files_under(out) == (set() if artefact.endswith("/") else {name})
    assert leftovers(tmp_path) == []


def test_a_folder_of_other_files_is_refused(tmp_path):
    """Exporting into a non-empty folder that holds no export would mix hundreds of files
    into it: refused, with the fix in the message, and nothing touched."""
    out = tmp_path / "ds"
    out.mkdir()
    user = add_user_files(out)
    for force in (False, True):
        with pytest.raises(FileExistsError, match=r"not empty and holds no export.*new or empty"):
            export(out, force=force, **small())
        assert tree_bytes(out) == user
    assert leftovers(tmp_path) == []


def test_dot_files_do_not_count_as_content(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / ".DS_Store").write_bytes(b"x")
    export(out, **small())
    assert (out / "dataset_identity.json").is_file() and (out / ".DS_Store").is_file()


def test_an_empty_existing_directory_is_fine(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    export(out, **small())
    assert (out / "points_2d.bin").is_file()


# ---------------------------------------------------------------------------- force=True
def _expected_small(compression):
    gz = ".gz" if compression else ""
    return {
        "dataset_identity.json",
        "obs_manifest.json",
        f"points_2d.bin{gz}",
        f"obs/v.values.f32{gz}",
    }


@pytest.mark.parametrize("user_files", [False, True], ids=["only_export", "with_user_files"])
@pytest.mark.parametrize(("old_gz", "new_gz"), [(None, 6), (6, None), (1, 9)])
def test_force_replaces_every_artefact_and_keeps_user_files(tmp_path, user_files, old_gz, new_gz):
    out = export(tmp_path / "ds", compression=old_gz, **rich())
    user = add_user_files(out) if user_files else {}
    export(out, compression=new_gz, force=True, **small())
    assert files_under(out) == _expected_small(new_gz) | set(user), "stale or missing files"
    for rel, data in user.items():
        assert (out / rel).read_bytes() == data
    assert dirs_under(out) == {"obs"} | ({"figures"} if user_files else set())
    ident = read_json(out, "dataset_identity.json")
    assert ident["stats"]["n_genes"] == 0 and ident["stats"]["has_connectivity"] is False
    assert leftovers(tmp_path) == []


def test_force_removes_stale_plain_and_gz_points(tmp_path):
    """SPEC §7 item 14: never leave .bin and .bin.gz side by side."""
    out = tmp_path / "ds"
    out.mkdir()
    for name in ("points_1d.bin", "points_2d.bin", "points_3d.bin.gz", "points_2d.bin.gz"):
        (out / name).write_bytes(b"stale")
    export(out, compression=4, force=True, **small())
    assert files_under(out) == _expected_small(4)


def test_force_on_a_missing_directory(tmp_path):
    out = export(tmp_path / "new", force=True, **small())
    assert files_under(out) == _expected_small(None)


# ---------------------------------------------------------------------------- failures
class WriteSpy:
    """Replaces ``_write_file``: counts calls (thread-safe) and fails after ``n_ok`` of them."""

    def __init__(self, monkeypatch, n_ok: int | None = None, error: BaseException | None = None):
        self.calls = 0
        self.n_ok, self.error = n_ok, error
        self._lock = threading.Lock()
        self._original = prepare_module._write_file
        monkeypatch.setattr(prepare_module, "_write_file", self)

    def __call__(self, *args, **kw):
        with self._lock:
            self.calls += 1
            fail = self.n_ok is not None and self.calls > self.n_ok
        if fail:
            raise self.error
        return self._original(*args, **kw)


def _count_writes(monkeypatch, tmp_path, kwargs) -> int:
    with monkeypatch.context() as mp:
        spy = WriteSpy(mp)
        export(tmp_path / "count" / "ds", **kwargs)
    return spy.calls


def _failing_after(monkeypatch, n_ok: int, error: BaseException) -> None:
    WriteSpy(monkeypatch, n_ok, error)


ERRORS = {
    "OSError": OSError(28, "No space left on device"),
    "KeyboardInterrupt": KeyboardInterrupt(),
}


@pytest.mark.parametrize("error", list(ERRORS))
@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("user_files", [False, True], ids=["only_export", "with_user_files"])
def test_failure_while_writing_keeps_the_previous_export(
    tmp_path, monkeypatch, error, where, user_files
):
    parent = tmp_path / "exports"
    out = export(parent / "ds", compression=2, **rich())
    if user_files:
        add_user_files(out)
    before = tree_bytes(out)
    new = rich(var_quantization=8, X_umap_3d=None)
    total = _count_writes(monkeypatch, tmp_path, new)
    assert total > 5
    n_ok = {"first": 0, "middle": total // 2, "last": total - 1}[where]
    _failing_after(monkeypatch, n_ok, ERRORS[error])
    with pytest.raises(type(ERRORS[error])):
        export(out, force=True, **new)
    assert tree_bytes(out) == before
    assert leftovers(parent) == []
    assert sorted(p.name for p in parent.iterdir()) == ["ds"]


@pytest.mark.parametrize("error", list(ERRORS))
@pytest.mark.parametrize("where", ["first", "last"])
def test_failed_fresh_export_leaves_nothing(tmp_path, monkeypatch, error, where):
    parent = tmp_path / "exports"
    parent.mkdir()
    total = _count_writes(monkeypatch, tmp_path, rich())
    _failing_after(monkeypatch, 0 if where == "first" else total - 1, ERRORS[error])
    with pytest.raises(type(ERRORS[error])):
        export(parent / "ds", **rich())
    assert not (parent / "ds").exists()
    assert list(parent.iterdir()) == []


def test_failure_while_writing_manifests(tmp_path, monkeypatch):
    parent = tmp_path / "exports"
    out = export(parent / "ds", **rich())
    before = tree_bytes(out)

    def boom(self):
        raise RuntimeError("manifest failure")

    monkeypatch.setattr(prepare_module.ExportDataset, "manifest_bytes", boom)
    with pytest.raises(RuntimeError):
        export(out, force=True, compression=5, **rich())
    assert tree_bytes(out) == before
    assert leftovers(parent) == []


def _count_renames(monkeypatch, run) -> int:
    calls = 0
    original = os.rename

    def counting(*args, **kw):
        nonlocal calls
        calls += 1
        return original(*args, **kw)

    monkeypatch.setattr(os, "rename", counting)
    run()
    monkeypatch.setattr(os, "rename", original)
    return calls


@pytest.mark.parametrize("user_files", [False, True], ids=["only_export", "with_user_files"])
@pytest.mark.parametrize("error", list(ERRORS))
def test_failure_while_publishing_restores_the_previous_export(
    tmp_path, monkeypatch, user_files, error
):
    """Fail each rename of the publish step once; the old export must come back intact."""
    scratch = tmp_path / "scratch"
    scratch_out = export(scratch / "ds", **rich())
    if user_files:
        add_user_files(scratch_out)
    total = _count_renames(
        monkeypatch, lambda: export(scratch_out, force=True, compression=3, **small())
    )
    assert total >= 1
    original = os.rename
    for k in range(1, total + 1):
        parent = tmp_path / f"run{k}"
        out = export(parent / "ds", **rich())
        user = add_user_files(out) if user_files else {}
        before = tree_bytes(out)
        calls = 0

        def flaky(*args, _k=k, **kw):
            nonlocal calls
            calls += 1
            if calls == _k:
                raise ERRORS[error]
            return original(*args, **kw)

        monkeypatch.setattr(os, "rename", flaky)
        try:
            with pytest.raises(type(ERRORS[error])):
                export(out, force=True, compression=3, **small())
        finally:
            monkeypatch.setattr(os, "rename", original)
        assert tree_bytes(out) == before, f"rename #{k} of {total} failed"
        assert leftovers(parent) == [], f"rename #{k} of {total} failed"
        for rel, data in user.items():
            assert (out / rel).read_bytes() == data


def test_validation_error_with_force_keeps_the_previous_export(tmp_path):
    out = export(tmp_path / "ds", **rich())
    before = tree_bytes(out)
    bad = small(obs=pd.DataFrame({"a b": np.ones(N), "a_b": np.ones(N)}))
    with pytest.raises(ValueError):
        export(out, force=True, **bad)
    assert tree_bytes(out) == before
    assert leftovers(tmp_path) == []


def test_warnings_do_not_leave_anything_behind(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning):
            export(tmp_path / "ds", **small(vector_fields={"v_3d": np.ones((N, 3))}))
    assert not (tmp_path / "ds").exists()
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------- the published folder
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("existing", [False, True], ids=["fresh", "replaced"])
def test_out_dir_has_normal_directory_permissions(tmp_path, existing):
    """``out_dir`` is "created with parents" (§6.2) like ``mkdir`` would, so a web server
    (another user) can read a static export: not the 0700 of a private temp folder."""
    reference = tmp_path / "reference"
    reference.mkdir()
    want = reference.stat().st_mode & 0o777
    assert want == 0o777 & ~_umask()
    out = tmp_path / "ds"
    if existing:
        export(out, **small())
        os.chmod(out, want)
    export(out, force=True, **small())
    assert out.stat().st_mode & 0o777 == want
    for sub in dirs_under(out):
        assert (out / sub).stat().st_mode & 0o777 == want, sub
    for rel in files_under(out):
        assert (out / rel).stat().st_mode & 0o444 == 0o444 & ~_umask(), rel


# ---- debris of killed exports (issue 13) --------------------------------------------------
def _debris(parent: Path, name: str, writer: dict | None, age_s: float = 0.0) -> Path:
    import json
    import os
    import time

    path = parent / f".{name}.cellucid-staging-dead{len(list(parent.iterdir()))}"
    path.mkdir(parents=True)
    (path / "points_2d.bin").write_bytes(b"half")
    if writer is not None:
        path.with_name(path.name + ".writer").write_text(json.dumps(writer))
    if age_s:
        old = time.time() - age_s
        os.utime(path, (old, old))
    return path


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_next_prepare_removes_staging_of_dead_writers_only(tmp_path):
    import os
    import socket

    host = socket.gethostname()
    dead = _debris(tmp_path, "ds", {"pid": _dead_pid(), "host": host, "start": None})
    alive = _debris(tmp_path, "ds", {"pid": os.getpid(), "host": host, "start": None})
    remote = _debris(tmp_path, "ds", {"pid": 1, "host": "another-machine", "start": None})
    old_unmarked = _debris(tmp_path, "ds", None, age_s=3 * 24 * 3600)
    new_unmarked = _debris(tmp_path, "ds", None)
    other = _debris(tmp_path, "other", {"pid": _dead_pid(), "host": host, "start": None})
    export(tmp_path / "ds", **small())
    assert not dead.exists() and not dead.with_name(dead.name + ".writer").exists()
    assert not old_unmarked.exists()
    for kept in (alive, remote, new_unmarked, other):  # a live writer, another machine, unknown
        assert kept.exists(), kept.name


def test_a_staging_folder_carries_its_writer_while_it_exists(tmp_path, monkeypatch):
    import json
    import os

    from cellucid.export import prepare as prepare_module

    seen = {}
    original = prepare_module._publish

    def spy(staging, out_dir):
        seen["writer"] = json.loads(staging.with_name(staging.name + ".writer").read_text())
        seen["inside"] = sorted(p.name for p in staging.iterdir())
        return original(staging, out_dir)

    monkeypatch.setattr(prepare_module, "_publish", spy)
    out = export(tmp_path / "ds", **small())
    assert seen["writer"]["pid"] == os.getpid()
    assert not any(name.endswith(".writer") for name in seen["inside"])  # not in the export
    assert leftovers(tmp_path) == [] and "dataset_identity.json" in files_under(out)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_cli_killed_mid_export(tmp_path, how):
    """SIGTERM cleans up like Ctrl+C (exit 130); after SIGKILL the next prepare does."""
    import signal
    import subprocess
    import sys
    import time

    import anndata as ad
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    n, g = 20_000, 1_500
    adata = ad.AnnData(
        X=sp.random(n, g, density=0.05, format="csr", random_state=0, dtype=np.float32),
        obsm={"X_umap": rng.normal(size=(n, 2))},
    )
    src = tmp_path / "big.h5ad"
    adata.write_h5ad(src)
    out = tmp_path / "exports" / "big"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cellucid",
            "prepare",
            str(src),
            str(out),
            "-q",
            "--compression",
            "9",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not list((tmp_path / "exports").glob(".big.cellucid-staging-*/var")):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the export never started writing genes"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM if how == "SIGTERM" else signal.SIGKILL)
    code = proc.wait(60)
    debris = list((tmp_path / "exports").glob(".big.cellucid-*"))
    if how == "SIGTERM":
        assert code == 130 and debris == [], (code, debris)
        assert not out.exists()
        return
    assert code == -signal.SIGKILL and debris  # killed without a chance to clean up
    export(out, X_umap_2d=rng.normal(size=(50, 2)), obs=pd.DataFrame(index=range(50)))
    assert list((tmp_path / "exports").glob(".big.cellucid-*")) == []
