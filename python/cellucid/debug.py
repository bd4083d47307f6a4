"""``CellucidWidget.debug_connection()``: what works between Python, the server and the browser.

Every probe is independent and bounded (2 s per HTTP probe): a failing step is reported
with an ``…_error`` key and never stops the report.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from typing import TYPE_CHECKING, Any
from urllib.error import HTTPError, URLError
from urllib.request import urlopen

from .notebook_env import client_base_url, notebook_context

if TYPE_CHECKING:
    from .widget import CellucidWidget

PROBE_TIMEOUT_S = 2.0


def probe(url: str, timeout: float = PROBE_TIMEOUT_S) -> tuple[int, Any, str]:
    """GET ``url`` → (status, parsed JSON or leading text, content type).

    Raises ``OSError`` when nothing answers.
    """
    try:
        with urlopen(url, timeout=timeout) as response:
            status, raw = response.status, response.read()
            ctype = response.headers.get("Content-Type", "")
    except HTTPError as exc:
        status, raw, ctype = exc.code, exc.read(), exc.headers.get("Content-Type", "")
    except URLError as exc:
        raise OSError(str(exc.reason)) from None
    if "json" in ctype:
        try:
            return status, json.loads(raw), ctype
        except ValueError:
            pass
    return status, raw[:200].decode("utf-8", "replace"), ctype


def _probe_into(report: dict[str, Any], key: str, url: str) -> Any:
    try:
        status, body, _ = probe(url)
    except OSError as exc:
        report[f"{key}_error"] = f"{url}: {exc}"
        return None
    if status != 200:
        report[f"{key}_error"] = f"{url}: HTTP {status}: {body}"
        return None
    report[key] = body
    return body


def _frontend(viewer: CellucidWidget, command: str, reply: str, timeout: float) -> dict[str, Any]:
    if not viewer.ready:
        return {"ok": False, "error": "the viewer has not reported ready (is it displayed?)"}
    try:
        viewer._check_can_wait(reply)
    except RuntimeError as exc:
        return {"ok": False, "error": str(exc)}
    request_id = secrets.token_hex(8)
    sent = time.perf_counter()
    try:
        event = viewer._channel.wait_for_any(
            (reply,),
            timeout,
            predicate=lambda e: e.get("requestId") == request_id,
            start=lambda: viewer._send_command({"type": command, "requestId": request_id}),
        )[1]
    except (TimeoutError, RuntimeError) as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": True, reply: event, "rtt_ms": round((time.perf_counter() - sent) * 1000, 2)}


def connection_report(
    viewer: CellucidWidget, timeout: float = 5.0, max_console_events: int = 50
) -> dict[str, Any]:
    """The report of :meth:`CellucidWidget.debug_connection` (keys of SPEC §6.6, plus
    ``transport``, ``views``, ``command_channel``, ``ping_rtt_ms`` and ``frontend_errors``)."""
    server = viewer._server
    local = f"http://127.0.0.1:{viewer.port}"
    with viewer._views_lock:
        views = {k: dict(v) for k, v in viewer._views.items()}
    report: dict[str, Any] = {
        "viewer_id": viewer.viewer_id,
        "viewer_url": viewer.viewer_url.replace(viewer.viewer_token, "redacted"),
        "server_url": viewer.server_url,
        "displayed": bool(views) or viewer._ever_displayed,
        "notebook_context": notebook_context(),
        "server_running": viewer.is_running,
        "transport": {"requested": viewer.transport, "in_use": viewer.transport_in_use},
        "views": views,
        "state": {
            "ready": viewer.state.ready,
            "last_event_type": viewer.state.last_event_type,
            "selection_size": int(viewer.selection.size),
        },
    }
    try:
        import jupyter_server_proxy

        report["jupyter_server_proxy"] = {
            "installed": True,
            "module": getattr(jupyter_server_proxy, "__file__", "jupyter_server_proxy"),
        }
    except Exception as exc:  # not installed, or broken
        report["jupyter_server_proxy"] = {"installed": False, "error": str(exc)}
    try:
        report["client_server_url"] = client_base_url(viewer.port)[0]
    except Exception as exc:
        report["client_server_url_error"] = str(exc)
    if server is not None:
        _probe_into(report, "server_health", f"{local}/_cellucid/health")
        _probe_into(report, "server_info", f"{local}/_cellucid/info")
        datasets = _probe_into(report, "server_datasets", f"{local}/_cellucid/datasets")
        if isinstance(datasets, dict) and datasets.get("datasets"):
            path = datasets["datasets"][0]["path"]
            report["dataset_identity_url"] = f"{local}{path}dataset_identity.json"
            _probe_into(report, "dataset_identity", report["dataset_identity_url"])
        try:
            status, _, ctype = probe(f"{local}/")
            report["viewer_index_probe"] = {"status": status, "content_type": ctype}
        except OSError as exc:
            report["viewer_index_probe"] = {"error": str(exc)}
    events = viewer._channel.recent_events()
    report["recent_events"] = {
        "count": len(events),
        "by_type": dict(Counter(e["type"] for e in events)),
        "duplicates_dropped": viewer._channel.duplicates,
        "first_delivered_via": dict(viewer._channel.delivered_via),
    }
    roundtrip = _frontend(viewer, "ping", "pong", timeout)
    report["frontend_roundtrip"] = roundtrip
    report["ping_rtt_ms"] = roundtrip.get("rtt_ms")
    report["frontend_debug_snapshot"] = _frontend(
        viewer, "debug_snapshot", "debug_snapshot", timeout
    )
    # after the round trips, which went over it when a browser tab shows the viewer
    report["command_channel"] = viewer.command_channel  # widget_pages.py
    logs = list(viewer._frontend_log)
    consoles = [e for e in events if e["type"] in ("console", "command_error")]
    report["frontend_console"] = (logs + consoles)[-max_console_events:]
    report["frontend_errors"] = [
        e for e in logs + consoles if e.get("level") in ("error", "warn") or "reason" in e
    ][-max_console_events:]
    return report
