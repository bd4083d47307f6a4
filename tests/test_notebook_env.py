"""Notebook detection and the browser-facing base URL (cellucid.notebook_env, SPEC §6.8)."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable

import pytest

from cellucid import notebook_env
from cellucid.notebook_env import ENV_CLIENT_URL, client_base_url, notebook_context

COLAB_URL = "https://abc-8765-colab.googleusercontent.com/"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (ENV_CLIENT_URL, "VSCODE_PID", "JPY_PARENT_PID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(notebook_env, "_COLAB_URLS", {})


# ------------------------------------------------------------------------ notebook_context


def test_notebook_context_outside_ipython() -> None:
    assert notebook_context() == {"in_jupyter": False, "notebook_type": None}


def _fake_shell(module: str, name: str, *, kernel: bool = True) -> object:
    cls = type(name, (), {"__module__": module})
    shell = cls()
    if kernel:
        shell.kernel = object()
    return shell


def _use_shell(monkeypatch: pytest.MonkeyPatch, shell: object) -> None:
    monkeypatch.setattr(notebook_env, "_ipython", lambda: shell)


def test_ipython_without_a_kernel_is_not_jupyter(monkeypatch: pytest.MonkeyPatch) -> None:
    _use_shell(
        monkeypatch, _fake_shell("IPython.terminal.interactiveshell", "TerminalShell", kernel=False)
    )
    assert notebook_context() == {"in_jupyter": False, "notebook_type": None}


@pytest.mark.parametrize(
    ("module", "env", "expected"),
    [
        ("ipykernel.zmqshell", {}, "jupyter"),
        ("ipykernel.zmqshell", {"JPY_PARENT_PID": "1"}, "jupyterlab"),
        ("ipykernel.zmqshell", {"VSCODE_PID": "1", "JPY_PARENT_PID": "1"}, "vscode"),
        ("google.colab._shell", {"VSCODE_PID": "1", "JPY_PARENT_PID": "1"}, "colab"),
    ],
)
def test_notebook_type_precedence(
    monkeypatch: pytest.MonkeyPatch, module: str, env: dict[str, str], expected: str
) -> None:
    _use_shell(monkeypatch, _fake_shell(module, "Shell"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert notebook_context() == {"in_jupyter": True, "notebook_type": expected}


# ------------------------------------------------------------------------ client_base_url


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "http://127.0.0.1:8765"),
        ("0.0.0.0", "http://127.0.0.1:8765"),
        ("localhost", "http://localhost:8765"),
    ],
)
def test_local_base_url(host: str, expected: str) -> None:
    assert client_base_url(8765, host) == (expected, "local")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "https://hub.example.org/user/me/proxy/8765/",
            "https://hub.example.org/user/me/proxy/8765",
        ),
        ("  http://10.0.0.5:9000//  ", "http://10.0.0.5:9000"),
        ("http://example.org", "http://example.org"),
    ],
)
def test_env_override_wins(monkeypatch: pytest.MonkeyPatch, value: str, expected: str) -> None:
    monkeypatch.setenv(ENV_CLIENT_URL, value)
    assert client_base_url(8765) == (expected, "env")


def test_blank_env_override_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_CLIENT_URL, "   ")
    assert client_base_url(9001) == ("http://127.0.0.1:9001", "local")


def _colab(monkeypatch: pytest.MonkeyPatch, eval_js: Callable[[str], object]) -> list[str]:
    """Pretend to run in Colab: the context says so and google.colab.output exists."""
    calls: list[str] = []

    def recording(expression: str) -> object:
        calls.append(expression)
        return eval_js(expression)

    monkeypatch.setattr(
        notebook_env,
        "notebook_context",
        lambda: {"in_jupyter": True, "notebook_type": "colab"},
    )
    output = types.ModuleType("google.colab.output")
    output.eval_js = recording  # type: ignore[attr-defined]
    colab = types.ModuleType("google.colab")
    colab.output = output  # type: ignore[attr-defined]
    if "google" not in sys.modules:
        monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.output", output)
    return calls


def test_colab_proxy_port_is_used_and_cached_per_port(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _colab(monkeypatch, lambda expr: COLAB_URL.replace("8765", expr.split("(")[1][:-1]))
    assert client_base_url(8765) == (COLAB_URL.rstrip("/"), "colab")
    assert client_base_url(8765) == (COLAB_URL.rstrip("/"), "colab")
    assert calls == ["google.colab.kernel.proxyPort(8765)"]
    assert client_base_url(9000) == ("https://abc-9000-colab.googleusercontent.com", "colab")
    assert calls == ["google.colab.kernel.proxyPort(8765)", "google.colab.kernel.proxyPort(9000)"]


def test_colab_env_override_still_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _colab(monkeypatch, lambda expr: COLAB_URL)
    monkeypatch.setenv(ENV_CLIENT_URL, "https://mine.example.org/")
    assert client_base_url(8765) == ("https://mine.example.org", "env")
    assert calls == []


def test_colab_error_falls_back_and_is_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [RuntimeError("kernel proxy unavailable"), COLAB_URL]

    def flaky(expression: str) -> object:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    calls = _colab(monkeypatch, flaky)
    assert client_base_url(8765) == ("http://127.0.0.1:8765", "local")
    assert client_base_url(8765) == (COLAB_URL.rstrip("/"), "colab")
    assert len(calls) == 2


def test_colab_context_without_the_colab_module_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        notebook_env,
        "notebook_context",
        lambda: {"in_jupyter": True, "notebook_type": "colab"},
    )
    monkeypatch.setitem(sys.modules, "google.colab.output", None)  # import fails
    assert client_base_url(8765) == ("http://127.0.0.1:8765", "local")
