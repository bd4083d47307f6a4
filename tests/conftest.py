"""Fixtures shared by every test folder.

``playwright`` is the one sync Playwright of the test session: a thread can run only one,
so the browser tests (tests/browser) and the JupyterLab tests (tests/jupyter) both launch
their Chromium through it. ``cache_dir`` gives a test its own column cache folder and
``h5_reads`` records what is read from h5py datasets (the lazy-reading tests);
``s3_server`` is a real S3-compatible server (moto) on 127.0.0.1 for the storage tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as running:
        yield running


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A column cache folder of this test (``CELLUCID_CACHE_DIR``)."""
    monkeypatch.setenv("CELLUCID_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def h5_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """(dataset name, number of values returned) for every h5py dataset read."""
    import h5py

    log: list[tuple[str, int]] = []
    orig = h5py.Dataset.__getitem__

    def spy(self, *args, **kwargs):
        value = orig(self, *args, **kwargs)
        log.append((self.name, int(np.size(value))))
        return value

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    for name in ("read_direct", "__array__"):
        original = getattr(h5py.Dataset, name)

        def spy_other(self, *args, _orig=original, **kwargs):
            log.append((self.name, -1))
            return _orig(self, *args, **kwargs)

        monkeypatch.setattr(h5py.Dataset, name, spy_other)
    return log


class S3Server:
    """A local S3-compatible server (moto's server mode) and how to reach it."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.options = {
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": endpoint},
        }
        #: the same credentials as the usual environment variables (for subprocesses)
        self.env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        self._buckets = 0

    def filesystem(self) -> Any:
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, **self.options)

    def bucket(self) -> str:
        """A new, empty bucket."""
        self._buckets += 1
        name = f"bucket-{self._buckets}"
        self.filesystem().mkdir(name)
        return name

    def upload(self, local: Path, url: str) -> None:
        """Copy a file or a folder (a .zarr store, an export) to ``s3://…``."""
        fs = self.filesystem()
        target = url.removeprefix("s3://").rstrip("/")
        if local.is_file():
            fs.pipe_file(target, local.read_bytes())
            return
        fs.pipe(
            {
                f"{target}/{p.relative_to(local).as_posix()}": p.read_bytes()
                for p in local.rglob("*")
                if p.is_file()
            }
        )


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """``python -m moto.server`` on 127.0.0.1 (a free port), for the whole session."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    pytest.importorskip("moto")
    pytest.importorskip("s3fs")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the moto S3 server did not start") from None
                time.sleep(0.1)
        yield S3Server(endpoint)
    finally:
        proc.terminate()
        proc.wait(10)
