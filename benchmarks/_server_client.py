"""The client side of ``benchmarks/server.py``: a server subprocess, its memory, timed requests.

Everything here talks to 127.0.0.1 only and uses the standard library (``http.client``), so
the numbers measure the servers, not a client library. A :class:`Client` keeps one
keep-alive connection (one per thread); a server that closes connections (HTTP/1.0, like
upstream's ``http.server``) gets a fresh one per request.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HOST = "127.0.0.1"


@dataclass
class Reply:
    """One HTTP exchange: status, headers (lower-case names), body and wall time."""

    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float


class Client:
    """A keep-alive HTTP/1.1 client for one server (not thread-safe: one per thread)."""

    def __init__(self, port: int, timeout: float = 120.0) -> None:
        self.port = port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self,
        path: str,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """Send one request and read the whole answer; the time covers both.

        A keep-alive connection the server dropped while idle is retried once on a new one.
        Connection errors of a fresh connection propagate (``ConnectionRefusedError`` while
        a server starts).
        """
        for attempt in (0, 1):
            reused = self._conn is not None
            if self._conn is None:
                self._conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
            conn = self._conn
            conn.timeout = timeout or self.timeout
            if conn.sock is not None:
                conn.sock.settimeout(conn.timeout)
            t0 = time.perf_counter()
            try:
                conn.request(method, path, headers=dict(headers or {}))
                resp = conn.getresponse()
                body = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if reused and attempt == 0:
                    continue
                raise
            except BaseException:
                self.close()
                raise
            seconds = time.perf_counter() - t0
            if resp.will_close:
                self.close()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body, seconds)
        raise AssertionError("unreachable")


def free_port() -> int:
    """A port that was free a moment ago (the servers bind it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def pct(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else None


def _status_kib(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return out


class MemorySampler:
    """Samples a process's RSS every ``interval`` seconds in a thread (Linux ``/proc``).

    The kernel's own high-water mark (``VmHWM``) is read at every sample too, so a spike
    between two samples still counts in :meth:`peak`.
    """

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []  # (perf_counter, rss bytes)
        self.hwm = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def _sample(self) -> None:
        st = _status_kib(self.pid)
        if "VmRSS" in st:
            self.samples.append((time.perf_counter(), st["VmRSS"] * 1024))
        self.hwm = max(self.hwm, st.get("VmHWM", 0) * 1024)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def stop(self) -> None:
        """Take a last sample and stop (call before the process exits)."""
        self._sample()
        self._stop.set()
        self._thread.join(5)

    def peak(self, since: float | None = None, until: float | None = None) -> int:
        """Largest RSS sampled in ``[since, until]``; over the whole run, VmHWM counts too."""
        lo = -np.inf if since is None else since
        hi = np.inf if until is None else until
        sampled = max((r for t, r in self.samples if lo <= t <= hi), default=0)
        return max(sampled, self.hwm) if since is None and until is None else sampled

    def current(self) -> int:
        return self.samples[-1][1] if self.samples else 0


@dataclass
class ServerProcess:
    """A server started as a subprocess (its own session), its log and its start time."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    port: int
    proc: subprocess.Popen | None = None
    t_start: float = 0.0
    sampler: MemorySampler | None = None
    _log: object = field(default=None, repr=False)

    def start(self) -> ServerProcess:
        self._log = open(self.log_path, "wb")  # noqa: SIM115  (closed in stop())
        self.t_start = time.perf_counter()
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,  # a Ctrl+C of the benchmark reaches it only through stop()
        )
        self.sampler = MemorySampler(self.proc.pid).start()
        return self

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-n:]
        except OSError:
            return ""

    def wait_healthy(self, timeout: float) -> float:
        """Poll ``/_cellucid/health`` until it answers 200; seconds since :meth:`start`."""
        assert self.proc is not None
        deadline = time.perf_counter() + timeout
        client = Client(self.port, timeout=5.0)
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} server exited with {self.proc.returncode} before it was "
                        f"healthy:\n{self.log_tail()}"
                    )
                try:
                    if client.request("/_cellucid/health").status == 200:
                        return time.perf_counter() - self.t_start
                except OSError:
                    client.close()
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"{self.name} server not healthy after {timeout:.0f} s")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> int | None:
        """Ctrl+C (SIGINT) the server, then SIGTERM / SIGKILL if it does not exit."""
        if self.sampler is not None:
            self.sampler.stop()
        code = None
        if self.proc is not None and self.proc.poll() is None:
            for sig, wait in ((signal.SIGINT, 15), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, sig)
                try:
                    code = self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        elif self.proc is not None:
            code = self.proc.returncode
        if self._log is not None:
            self._log.close()  # type: ignore[attr-defined]
            self._log = None
        return code


class HealthProbe:
    """Polls ``/_cellucid/health`` on its own connection while something slow runs.

    ``with HealthProbe(port) as probe: ...`` then ``probe.latencies`` / ``probe.failures``.
    A request still waiting when the block ends counts with its time so far.
    """

    def __init__(self, port: int, every: float = 0.25, timeout: float = 130.0) -> None:
        self.port = port
        self.every = every
        self.timeout = timeout
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._pending_since: float | None = None
        self._thread = threading.Thread(target=self._run, name="health-probe", daemon=True)

    def _run(self) -> None:
        client = Client(self.port, timeout=self.timeout)
        try:
            while not self._stop.is_set():
                self._pending_since = time.perf_counter()
                try:
                    reply = client.request("/_cellucid/health")
                    self.latencies.append(reply.seconds)
                    if reply.status != 200:
                        self.failures += 1
                except OSError:
                    self.failures += 1
                    client.close()
                self._pending_since = None
                self._stop.wait(self.every)
        finally:
            client.close()

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(0.5)
        since = self._pending_since
        if self._thread.is_alive() and since is not None:
            self.latencies.append(time.perf_counter() - since)  # still waiting for an answer

    @property
    def max(self) -> float | None:
        return max(self.latencies) if self.latencies else None
