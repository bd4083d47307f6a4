"""Find and run the upstream ``cellucid==0.0.9`` exporter, which lives in its own virtualenv.

Upstream and this project are both called ``cellucid``, so the upstream package is never
installed next to ours: ``make setup`` puts it into ``<repo>/.venv-upstream`` and it only ever
runs as a subprocess with that interpreter. Used by ``tests/test_upstream_compare.py`` and by
``benchmarks/run.py``.

Lookup order of the upstream interpreter:

1. ``$CELLUCID_UPSTREAM_PYTHON`` (must exist when set; there is no silent fallback);
2. ``<repo>/.venv-upstream/bin/python`` (``Scripts/python.exe`` on Windows).

Nothing else is guessed: when neither exists, :func:`upstream_python` raises
:class:`UpstreamNotFoundError`, whose message says how to create the virtualenv. The comparison
test turns that into a failure, never a skip, so a missing setup cannot pass silently.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV_VAR = "CELLUCID_UPSTREAM_PYTHON"
UPSTREAM_VERSION = "0.0.9"
UPSTREAM_VENV = REPO / ".venv-upstream"

_PROBE = """
import json, sys
from importlib import metadata
import cellucid
print(json.dumps({"version": metadata.version("cellucid"), "file": cellucid.__file__,
                  "python": sys.version.split()[0]}))
"""


class UpstreamNotFoundError(RuntimeError):
    """No usable upstream cellucid interpreter (missing, broken, or the wrong package)."""


def _venv_python(venv: Path) -> Path:
    if os.name == "nt":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def _how_to_fix() -> str:
    return (
        f"Create it with `make setup` (or `make upstream`), which installs "
        f"cellucid=={UPSTREAM_VERSION} into {UPSTREAM_VENV}, or point {ENV_VAR} at the python "
        f"of a virtualenv that has cellucid=={UPSTREAM_VERSION}. Never install upstream cellucid "
        f"into the development venv: it would shadow this package."
    )


def upstream_env() -> dict[str, str]:
    """Environment for upstream subprocesses: nothing that could put our package on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    env.setdefault("PYTHONIOENCODING", "utf-8")
    return env


@functools.lru_cache(maxsize=1)
def upstream_python() -> Path:
    """Path of the upstream interpreter, checked to import upstream cellucid 0.0.9.

    Raises :class:`UpstreamNotFoundError` with instructions when there is none.
    """
    configured = os.environ.get(ENV_VAR)
    if configured:
        python = Path(configured).expanduser().absolute()  # not resolve(): keep the venv
        if not python.is_file():
            raise UpstreamNotFoundError(f"{ENV_VAR}={configured!r} does not exist. {_how_to_fix()}")
    else:
        python = _venv_python(UPSTREAM_VENV)
        if not python.is_file():
            raise UpstreamNotFoundError(
                f"upstream cellucid virtualenv not found ({python} is missing and {ENV_VAR} "
                f"is not set). {_how_to_fix()}"
            )
    proc = subprocess.run(
        [str(python), "-c", _PROBE],
        capture_output=True,
        text=True,
        env=upstream_env(),
        cwd=str(python.parent),  # not the repo: nothing of ours may be importable
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise UpstreamNotFoundError(
            f"{python} cannot import upstream cellucid:\n{proc.stderr.strip()[-2000:]}\n"
            + _how_to_fix()
        )
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    if info["version"] != UPSTREAM_VERSION:
        raise UpstreamNotFoundError(
            f"{python} has cellucid {info['version']}, expected {UPSTREAM_VERSION}. {_how_to_fix()}"
        )
    if Path(info["file"]).resolve().is_relative_to(REPO / "python"):
        raise UpstreamNotFoundError(
            f"{python} imports this repository's cellucid ({info['file']}), not upstream. "
            + _how_to_fix()
        )
    return python


def run_upstream(
    args: Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str],
    timeout: float | None = 1800,
) -> subprocess.CompletedProcess[str]:
    """Run ``<upstream python> *args`` in ``cwd``; raise with its output if it fails."""
    python = upstream_python()
    proc = subprocess.run(
        [str(python), *map(str, args)],
        capture_output=True,
        text=True,
        env=upstream_env(),
        cwd=str(cwd),
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"upstream run failed (exit {proc.returncode}): {python} {' '.join(map(str, args))}\n"
            f"--- stdout (tail) ---\n{proc.stdout[-4000:]}\n--- stderr (tail) ---\n"
            f"{proc.stderr[-4000:]}"
        )
    return proc


def our_python() -> Path:
    """The interpreter that has this repository's cellucid: ``.venv`` or the running one."""
    dev = _venv_python(REPO / ".venv")
    return dev if dev.is_file() else Path(sys.executable)
