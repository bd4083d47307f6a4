"""The browser assets ship inside the package and the wheel, and work under a URL prefix.

The assets are built from js/ by npm (hatch-jupyter-builder runs it for `pip install`,
`pip install -e .` and wheel builds); see js/build.mjs and the Makefile.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from _chromium import require_chromium

REPO = Path(__file__).resolve().parents[1]
BUILT = [
    "viewer/index.html",
    "viewer/assets/viewer.js",
    "viewer/assets/viewer.css",
    "widget.js",
]
COMM_BASE = "https://comm.cellucid.invalid/"
# Any absolute or protocol-relative URL: the assets must come from the page's own server.
EXTERNAL_URL = re.compile(r"""https?://|(?:["'(=\s]|url\()\s*//""", re.IGNORECASE)


def static_dir() -> Path:
    path = Path(str(files("cellucid") / "static"))
    if not (path / "viewer" / "index.html").is_file():
        pytest.fail(
            f"built assets missing in {path}: reinstall cellucid (pip install -e .) or run `make js`"
        )
    return path


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.urls.append((tag, value))


def test_built_assets_are_installed_with_the_package():
    static = static_dir()
    for rel in BUILT:
        path = static / rel
        assert path.is_file(), f"{rel} missing from {static}"
        assert path.stat().st_size > 0, f"{rel} is empty"


def test_widget_module_is_an_anywidget_es_module():
    """widget.js loads as an ES module with a default export holding render({model, el})
    (its behaviour is tested in a real JupyterLab: tests/jupyter/test_widget_lab.py)."""
    script = """
    const mod = await import(process.argv[1]);
    console.log(JSON.stringify([typeof mod.default, typeof mod.default.render]));
    """
    widget = static_dir() / "widget.js"
    proc = subprocess.run(
        ["node", "--input-type=module", "-e", script, widget.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(proc.stdout) == ["object", "function"]


def test_viewer_page_uses_only_relative_urls():
    static = static_dir()
    index = static / "viewer" / "index.html"
    html = index.read_text(encoding="utf-8")
    assert not EXTERNAL_URL.search(html), EXTERNAL_URL.search(html)

    parser = _Links()
    parser.feed(html)
    local = [url for tag, url in parser.urls if not url.startswith("data:")]
    assert any(url.endswith("viewer.js") for url in local)
    assert any(url.endswith("viewer.css") for url in local)
    for url in local:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"absolute URL {url!r} in index.html"
        assert not parts.path.startswith("/"), f"root-relative URL {url!r} breaks /proxy/<port>/"
        assert (index.parent / parts.path).resolve().is_file(), f"{url!r} points to no built file"

    # The JS bundle embeds deck.gl/luma.gl, whose shader comments and unused defaults contain
    # URL-like text; what matters there is what the page fetches, which
    # tests/browser/test_browser_offline.py checks in a real browser.
    # widget.js names the comm transport's placeholder base (a reserved .invalid host that
    # no request ever reaches: data/commfetch.js answers it over the Jupyter comm).
    for rel in ("viewer/assets/viewer.css", "widget.js"):
        text = (static / rel).read_text(encoding="utf-8").replace(COMM_BASE, "")
        assert not EXTERNAL_URL.search(text), f"{rel}: {EXTERNAL_URL.search(text)}"
    assert "@import" not in (static / "viewer/assets/viewer.css").read_text(encoding="utf-8")


def test_health_probe_resolves_against_the_page_directory():
    script = """
    import { healthUrl, probeHealth } from "./viewer/src/health.js";
    const out = {};
    for (const href of [
      "http://127.0.0.1:8765/",
      "http://127.0.0.1:8765/?anndata=true",
      "https://hub.example/user/me/proxy/8765/?jupyter=true&viewerId=ab&viewerToken=cd#x",
      "https://hub.example/user/me/proxy/8765/index.html",
    ]) out[href] = healthUrl(href).href;
    const calls = [];
    const reply = (status, body) => async (url, init) => {
      calls.push(init.cache);
      return { status, ok: status >= 200 && status < 300,
               json: async () => { if (body === undefined) throw new Error("x"); return body; } };
    };
    const url = "http://h/_cellucid/health";
    out.ok = await probeHealth(url, { fetchImpl: reply(200, { status: "ok", version: "1" }) });
    out.static = await probeHealth(url, { fetchImpl: reply(200, { status: "static" }) });
    out.missing = await probeHealth(url, { fetchImpl: reply(404) });
    out.html = await probeHealth(url, { fetchImpl: reply(200) });
    out.error = await probeHealth(url, { fetchImpl: reply(503, { status: "error", message: "busy" }) });
    out.offline = await probeHealth(url, { fetchImpl: async () => { throw new TypeError("down"); } });
    out.caches = calls;
    console.log(JSON.stringify(out));
    """
    proc = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        cwd=REPO / "js",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = json.loads(proc.stdout)
    base = "https://hub.example/user/me/proxy/8765/_cellucid/health"
    assert out["http://127.0.0.1:8765/"] == "http://127.0.0.1:8765/_cellucid/health"
    assert out["http://127.0.0.1:8765/?anndata=true"] == "http://127.0.0.1:8765/_cellucid/health"
    assert (
        out["https://hub.example/user/me/proxy/8765/?jupyter=true&viewerId=ab&viewerToken=cd#x"]
        == base
    )
    assert out["https://hub.example/user/me/proxy/8765/index.html"] == base
    assert out["ok"] == {"kind": "ok", "health": {"status": "ok", "version": "1"}}
    assert out["static"]["kind"] == "static"
    assert out["missing"]["kind"] == "none"
    assert out["html"]["kind"] == "none"
    assert out["error"] == {"kind": "error", "detail": "HTTP 503: busy"}
    assert out["offline"] == {"kind": "none", "detail": "down"}
    assert out["caches"] == ["no-store"] * 5


def _serve_viewer_under_prefix(static: Path, prefix: str, health: dict | None):
    """A stand-in server: the built viewer under `prefix`, and optionally a health endpoint."""
    requests: list[str] = []
    viewer = static / "viewer"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            requests.append(path)
            body, ctype = None, "application/octet-stream"
            if path == prefix + "_cellucid/health" and health is not None:
                body, ctype = json.dumps(health).encode(), "application/json"
            elif path.startswith(prefix):
                rel = path[len(prefix) :] or "index.html"
                file = (viewer / rel).resolve()
                if file.is_file() and viewer.resolve() in file.parents:
                    body = file.read_bytes()
                    ctype = {".html": "text/html; charset=utf-8", ".css": "text/css"}.get(
                        file.suffix, "text/javascript"
                    )
            if body is None:
                body, ctype = b'{"status":"error","message":"not found"}', "application/json"
                self.send_response(404)
            else:
                self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, requests


def _dump_dom(url: str, profile: Path) -> str:
    proc = subprocess.run(
        [
            require_chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=2000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.parametrize("with_server", [True, False], ids=["server", "no-server"])
def test_viewer_page_finds_its_server_under_a_proxy_prefix(tmp_path, with_server):
    static = static_dir()
    prefix = "/user/me/proxy/8765/"
    health = {
        "status": "ok",
        "type": "anndata",
        "version": "9.8.7-test",
        "format": "h5ad",
        "is_backed": True,
        "n_cells": 12345,
        "n_genes": 67,
    }
    server, requests = _serve_viewer_under_prefix(static, prefix, health if with_server else None)
    try:
        port = server.server_address[1]
        query = "?jupyter=true&viewerId=0123456789abcdef&viewerToken=" + "a" * 32
        dom = _dump_dom(f"http://127.0.0.1:{port}{prefix}{query}", tmp_path / "profile")
    finally:
        server.shutdown()
        server.server_close()

    assert all(path.startswith(prefix) for path in requests), requests
    assert prefix + "assets/viewer.js" in requests
    assert prefix + "assets/viewer.css" in requests
    assert prefix + "_cellucid/health" in requests
    if with_server:
        assert 'data-state="ok"' in dom, dom
        assert "9.8.7-test" in dom and "12,345" in dom
    else:
        assert 'data-state="none"' in dom, dom
        assert "No cellucid server found" in dom


def test_wheel_from_a_clean_tree_contains_the_built_assets(tmp_path):
    """Build a wheel the way a fresh clone would: no node_modules, no built assets."""
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("needs a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    tree = tmp_path / "src"
    for rel in filter(None, listed.split("\0")):
        source = REPO / rel
        if source.is_file():
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tree / rel)
    assert not (tree / "python/cellucid/static").exists()
    assert not (tree / "js/node_modules").exists()

    out = tmp_path / "wheels"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(tree), "--no-deps", "-w", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = out.glob("cellucid-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for rel in BUILT:
        assert f"cellucid/static/{rel}" in names, names
    assert not [n for n in names if "node_modules" in n], "node_modules leaked into the wheel"
    assert not [n for n in names if n.startswith("js/") or n.endswith(".mjs")], names
    tops = {n.split("/", 1)[0] for n in names}
    assert tops - {"cellucid"} == {next(t for t in tops if t.endswith(".dist-info"))}, tops
