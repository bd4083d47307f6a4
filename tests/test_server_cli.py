"""``cellucid serve`` as a real subprocess (SPEC §6.7 serve and detection, §6.8 ports).

Each test starts the installed console script, reads the banner on stderr for the URL it
really serves, talks to it over HTTP, stops it with SIGINT (Ctrl+C) and checks that it exits
0 and frees its port. The process is always killed in a ``finally``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import anndata as ad
import pandas as pd
import pytest

from _data import make_adata
from _exports import write_dataset, write_root
from _server import request, wait_port_free

CLI = Path(sys.executable).parent / "cellucid"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0
N = 60
URL_LINE = re.compile(r"Local URL:\s*(http://\S+)")
VIEWER_LINE = re.compile(r"Viewer URL:\s*(http://\S+)")


class ServeProcess:
    """``cellucid serve ARGS`` with stdout and stderr collected by background threads."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [str(CLI), "serve", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream, sink: list[str]) -> None:
        for line in stream:
            sink.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    def banner(self) -> tuple[str, str, int]:
        """``(local URL, viewer URL, port)`` once the banner is printed."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = self.stderr
            local, viewer = URL_LINE.search(text), VIEWER_LINE.search(text)
            if local and viewer:
                port = int(re.search(r":(\d+)", local.group(1).split("//", 1)[1]).group(1))
                return local.group(1), viewer.group(1), port
            if self.proc.poll() is not None:
                time.sleep(0.2)
                raise AssertionError(
                    f"exited {self.proc.returncode} before serving:\n{self.stderr}"
                )
            time.sleep(0.05)
        raise AssertionError(f"no banner after {START_TIMEOUT}s:\n{self.stderr}")

    def interrupt(self, sig: signal.Signals = signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        rc = self.proc.wait(STOP_TIMEOUT)
        for t in self._threads:
            t.join(5)
        return rc

    def finish(self, timeout: float = START_TIMEOUT) -> int:
        rc = self.proc.wait(timeout)
        for t in self._threads:
            t.join(5)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("cli_serve")
    adata = make_adata(N, 4, seed=7)
    h5ad = base / "cells.h5ad"
    _quiet(adata.write_h5ad, h5ad)
    v2 = base / "cells_v2.zarr"
    with ad.settings.override(zarr_write_format=2):
        _quiet(adata.write_zarr, v2)
    v3 = base / "v3store"  # no suffix: detected by zarr.json
    with ad.settings.override(zarr_write_format=3):
        _quiet(adata.write_zarr, v3)
    export = write_dataset(base / "export", n=N).path
    root = write_root(base / "root")
    (base / "notes.txt").write_text("hello")
    (base / "empty").mkdir()
    (base / "broken.zarr").mkdir()
    (base / "bad.h5ad").write_bytes(b"this is not an HDF5 file")
    return {
        "h5ad": h5ad,
        "zarr2": v2,
        "zarr3": v3,
        "export": export,
        "root": root,
        "txt": base / "notes.txt",
        "empty": base / "empty",
        "broken_zarr": base / "broken.zarr",
        "bad_h5ad": base / "bad.h5ad",
        "missing": base / "missing.h5ad",
    }


# (input, health type, data URL, expected byte length of that file or the export file)
CASES = {
    "h5ad": ("anndata", "/points_2d.bin", N * 2 * 4),
    "zarr2": ("anndata", "/points_2d.bin", N * 2 * 4),
    "zarr3": ("anndata", "/points_3d.bin", N * 3 * 4),
    "export": ("exported", "/points_3d.bin", None),
    "root": ("exported", "/beta/points_2d.bin", None),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_serve_subprocess(inputs: dict[str, Path], kind: str) -> None:
    health_type, data_url, length = CASES[kind]
    proc = ServeProcess(str(inputs[kind]), "--port", "0", "--no-browser")
    try:
        local, viewer, port = proc.banner()
        assert port != 0
        assert local.rstrip("/") == f"http://127.0.0.1:{port}"
        if health_type == "anndata":
            assert viewer == f"http://127.0.0.1:{port}/?anndata=true"
        else:
            assert viewer == f"http://127.0.0.1:{port}/"
        health = request(port, "GET", "/_cellucid/health")
        assert health.status == 200 and health.json()["type"] == health_type
        info = request(port, "GET", "/_cellucid/info").json()
        assert info["port"] == port
        if health_type == "anndata":
            assert health.json()["format"] == ("h5ad" if kind == "h5ad" else "zarr")
            assert health.json()["n_cells"] == N
        data = request(port, "GET", data_url)
        assert data.status == 200
        if length is None:
            rel = data_url.lstrip("/")
            disk = inputs[kind] / rel
            assert data.body == disk.read_bytes()
        else:
            assert len(data.body) == length
        rc = proc.interrupt()
        assert rc == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        assert wait_port_free(port), "the port is still bound after Ctrl+C"
    finally:
        proc.kill()


def test_sigterm_stops_the_server_like_ctrl_c(inputs: dict[str, Path], tmp_path: Path) -> None:
    """``kill``/``systemctl stop``/a test runner send SIGTERM: the server stops cleanly and
    the interpreter's exit hooks run (they delete received session bundles nobody opened)."""
    marker = tmp_path / "atexit-ran"
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import atexit, pathlib\n"
        f"atexit.register(lambda: pathlib.Path({str(marker)!r}).write_text('yes'))\n"
    )
    env = {"PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")])}
    proc = ServeProcess(str(inputs["export"]), "-p", "0", "--no-browser", env=env)
    try:
        _, _, port = proc.banner()
        assert request(port, "GET", "/_cellucid/health").status == 200
        rc = proc.interrupt(signal.SIGTERM)
        assert rc in (0, 130), proc.stderr
        assert "Traceback" not in proc.stderr
        assert wait_port_free(port)
        assert marker.read_text() == "yes"
    finally:
        proc.kill()


def test_serve_h5ad_no_backed(inputs: dict[str, Path]) -> None:
    proc = ServeProcess(
        str(inputs["h5ad"]), "-p", "0", "--no-browser", "--no-backed", "--dataset-name", "My cells"
    )
    try:
        _, _, port = proc.banner()
        health = request(port, "GET", "/_cellucid/health").json()
        assert health["is_backed"] is False
        datasets = request(port, "GET", "/_cellucid/datasets").json()
        assert datasets == {"datasets": [{"id": "My_cells", "path": "/", "name": "My cells"}]}
        assert proc.interrupt() == 0
    finally:
        proc.kill()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_health(proc: ServeProcess, port: int) -> None:
    """Until the server on ``port`` answers health (a quiet server prints no banner)."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            if request(port, "GET", "/_cellucid/health", timeout=2).status == 200:
                return
        except OSError:
            pass
        assert proc.proc.poll() is None, proc.stderr
        assert time.monotonic() < deadline, "the server never answered"
        time.sleep(0.1)


def test_serve_quiet_prints_nothing(inputs: dict[str, Path]) -> None:
    port = _free_port()
    proc = ServeProcess(str(inputs["export"]), "--port", str(port), "--no-browser", "-q")
    try:
        _wait_health(proc, port)
        assert proc.interrupt() == 0
    finally:
        proc.kill()
    assert proc.stderr == "" and "".join(proc.out) == ""


@pytest.mark.parametrize("quiet", [False, True])
def test_serve_quiet_also_silences_data_warnings(tmp_path: Path, quiet: bool) -> None:
    """A warning about the data (here an invalid ``uns["*_colors"]``) is printed by a normal
    ``serve`` and not by ``serve -q`` ("print nothing but errors")."""
    adata = make_adata(N, 4, seed=3)
    key = next(k for k in adata.obs if isinstance(adata.obs[k].dtype, pd.CategoricalDtype))
    adata.uns[f"{key}_colors"] = ["not-a-colour"] * len(adata.obs[key].cat.categories)
    path = tmp_path / "palette.h5ad"
    _quiet(adata.write_h5ad, path)
    port = _free_port()
    args = [str(path), "--port", str(port), "--no-browser"] + (["-q"] if quiet else [])
    proc = ServeProcess(*args)
    try:
        _wait_health(proc, port)
        # the file is read after the server listens: the first data request waits for it
        assert request(port, "GET", "/obs_manifest.json").status == 200
        assert proc.interrupt() == 0, proc.stderr
    finally:
        proc.kill()
    if quiet:
        assert proc.stderr == "", proc.stderr
    else:
        assert "default colours" in proc.stderr and key in proc.stderr


def test_serve_busy_port_moves_on_and_banner_says_so(inputs: dict[str, Path]) -> None:
    busy = socket.socket()
    try:
        for _ in range(20):
            busy.bind(("127.0.0.1", 0))
            if busy.getsockname()[1] < 65000:
                break
            busy.close()
            busy = socket.socket()
        busy.listen(1)
        taken = busy.getsockname()[1]
        proc = ServeProcess(str(inputs["export"]), "--port", str(taken), "--no-browser")
        try:
            local, _, port = proc.banner()
            assert taken < port <= taken + 100
            assert f":{taken}/" not in local
            assert request(port, "GET", "/_cellucid/info").json()["port"] == port
            assert proc.interrupt() == 0
        finally:
            proc.kill()
    finally:
        busy.close()


def test_serve_wildcard_host_warns_and_prints_loopback(inputs: dict[str, Path]) -> None:
    proc = ServeProcess(str(inputs["export"]), "--host", "0.0.0.0", "--port", "0", "--no-browser")
    try:
        local, viewer, port = proc.banner()
        assert local.startswith("http://127.0.0.1:")
        assert viewer.startswith("http://127.0.0.1:")
        assert request(port, "GET", "/_cellucid/health").status == 200
        assert proc.interrupt() == 0
        text = proc.stderr + "".join(proc.out)
        assert "http://0.0.0.0" not in text
        assert "warning" in text.lower()
    finally:
        proc.kill()


def test_serve_opens_the_browser_unless_no_browser(inputs: dict[str, Path], tmp_path: Path) -> None:
    marker = tmp_path / "opened.txt"
    script = tmp_path / "fake-browser"
    script.write_text(f'#!/bin/sh\necho "$1" >> "{marker}"\n')
    script.chmod(0o755)
    env = {"BROWSER": str(script), "DISPLAY": ""}
    proc = ServeProcess(str(inputs["export"]), "--port", "0", "--no-browser", env=env)
    try:
        proc.banner()
        time.sleep(0.5)
        assert proc.interrupt() == 0
    finally:
        proc.kill()
    assert not marker.exists(), "--no-browser opened a browser"
    proc = ServeProcess(str(inputs["export"]), "--port", "0", env=env)
    try:
        _, viewer, _port = proc.banner()
        deadline = time.monotonic() + 10
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "no browser was opened"
        assert marker.read_text().strip() == viewer
        assert proc.interrupt() == 0
    finally:
        proc.kill()


def _run_to_exit(*args: str) -> tuple[int, str]:
    """Run ``cellucid serve ARGS`` that is expected to exit by itself: (code, stderr)."""
    proc = ServeProcess(*args)
    try:
        rc = proc.finish()
    finally:
        proc.kill()
    return rc, proc.stderr


@pytest.mark.parametrize("kind", ["txt", "empty"])
def test_serve_unknown_input(inputs: dict[str, Path], kind: str) -> None:
    rc, err = _run_to_exit(str(inputs[kind]), "--port", "0", "--no-browser")
    assert rc == 1, err
    assert "Unable to detect format" in err
    assert "expected" in err.lower()
    for hint in (".h5ad", ".zarr"):
        assert hint in err
    assert "Traceback" not in err
    assert "Local URL" not in err


def test_serve_missing_path(inputs: dict[str, Path]) -> None:
    rc, err = _run_to_exit(str(inputs["missing"]), "--port", "0", "--no-browser")
    assert rc == 1
    assert "Path not found" in err
    assert str(inputs["missing"]) in err
    assert "Traceback" not in err


@pytest.mark.parametrize("kind", ["broken_zarr", "bad_h5ad"])
def test_serve_unreadable_input_one_line_error(inputs: dict[str, Path], kind: str) -> None:
    rc, err = _run_to_exit(str(inputs[kind]), "--port", "0", "--no-browser")
    assert rc == 1, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, err
    assert "Local URL" not in err


def test_serve_usage_error_exits_2(inputs: dict[str, Path]) -> None:
    rc, err = _run_to_exit(str(inputs["export"]), "--port", "not-a-number")
    assert rc == 2
    assert "usage" in err.lower()
