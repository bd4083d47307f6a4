"""The viewer's bench mode in Chromium for the benchmarks that run in the page (selection.py,
lod.py): a static HTTP server of the built viewer and one browser."""

from __future__ import annotations

import contextlib
import functools
import http.server
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from _chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (tests/_chromium.py)

UI_DIR = REPO / "python" / "cellucid" / "static" / "viewer"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def bench_browser(extra_args: tuple[str, ...] = ()) -> Iterator[tuple[Any, str]]:
    """Yield ``(browser, base_url)``: Chromium and the address of the built viewer page."""
    from playwright.sync_api import sync_playwright

    if not (UI_DIR / "index.html").is_file():
        sys.exit(f"the viewer is not built ({UI_DIR}); run `make js`")
    handler = functools.partial(_Quiet, directory=str(UI_DIR))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args]
            )
            try:
                yield browser, f"http://127.0.0.1:{httpd.server_address[1]}"
            finally:
                browser.close()
    finally:
        httpd.shutdown()
