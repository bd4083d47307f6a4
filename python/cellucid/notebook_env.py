"""Where the notebook runs and which URL its browser uses for a server (SPEC §6.8)."""

from __future__ import annotations

import os
import sys
from typing import Any, Literal

__all__ = ["ENV_CLIENT_URL", "client_base_url", "notebook_context"]

ENV_CLIENT_URL = "CELLUCID_CLIENT_SERVER_URL"
NotebookType = Literal["colab", "vscode", "jupyterlab", "jupyter"]
_COLAB_URLS: dict[int, str] = {}


def notebook_context() -> dict[str, Any]:
    """``{"in_jupyter": bool, "notebook_type": "colab" | "vscode" | "jupyterlab" | "jupyter"
    | None}``: whether IPython runs with a kernel, and which front end it probably is.

    Examples
    --------
    >>> notebook_context()["in_jupyter"]   # in a plain Python process
    False
    """
    shell = _ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return {"in_jupyter": False, "notebook_type": None}
    kind: NotebookType
    if "google.colab" in type(shell).__module__ + "." + type(shell).__name__:
        kind = "colab"
    elif "VSCODE_PID" in os.environ:
        kind = "vscode"
    elif "JPY_PARENT_PID" in os.environ:
        kind = "jupyterlab"
    else:
        kind = "jupyter"
    return {"in_jupyter": True, "notebook_type": kind}


def _ipython() -> Any:
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    return get_ipython()


def client_base_url(port: int, host: str = "127.0.0.1") -> tuple[str, str]:
    """The base URL the browser uses for a server on ``port``, and where it came from.

    ``CELLUCID_CLIENT_SERVER_URL`` (trailing ``/`` stripped) wins (``"env"``); in Colab it
    is Colab's port proxy (``"colab"``, cached per port; on error we fall back); otherwise
    ``http://127.0.0.1:<port>`` (``"local"``).

    Examples
    --------
    >>> client_base_url(8765)
    ('http://127.0.0.1:8765', 'local')
    """
    override = os.environ.get(ENV_CLIENT_URL, "").strip()
    if override:
        return override.rstrip("/"), "env"
    if notebook_context()["notebook_type"] == "colab":
        url = _COLAB_URLS.get(port)
        if url is None:
            try:
                from google.colab.output import eval_js  # type: ignore[import-not-found]

                url = str(eval_js(f"google.colab.kernel.proxyPort({int(port)})")).rstrip("/")
                _COLAB_URLS[port] = url
            except Exception:  # not really Colab, or its API changed: fall back
                url = None
        if url:
            return url, "colab"
    from .server.runner import client_host

    return f"http://{client_host(host)}:{int(port)}", "local"
