"""The viewer's requests carried over the Jupyter comm (the widget's ``transport="comm"``).

When the browser cannot reach the data server at all (VS Code over SSH, locked-down hubs),
the widget loads the viewer page from blob URLs and forwards each of its requests over the
comm. :func:`viewer_page` gives the page (HTML with placeholders, CSS and JS, from the
bundled viewer) and :class:`CommFiles` answers a request exactly as the HTTP routes would:
it calls the same functions (:mod:`cellucid.server.app`, :mod:`cellucid.server.bundles`)
on the same :class:`~cellucid.server.app.ServerConfig`, so both transports serve the same
bytes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .server.app import (
    ServerConfig,
    data_cache_control,
    datasets_body,
    event_id_of,
    health_body,
    info_body,
    resolve_data_path,
)
from .server.bundles import BundleUpload
from .server.compare import CompareRequestError, answer_whole
from .server.default_session import DefaultSessionError
from .server.default_session import answer as default_session_answer
from .server.embeddings import embeddings_of
from .server.obs_names import ObsNamesError
from .server.obs_names import answer as obs_names_answer
from .server.registry import error_body
from .sources.embeddings import EmbeddingError

__all__ = ["CommFiles", "Reply", "viewer_page"]

_CSP_META = re.compile(r"<meta\s+http-equiv=\"Content-Security-Policy\".*?/>", re.DOTALL)
_CSS_LINK = '<link rel="stylesheet" href="./assets/viewer.css" />'
_JS_TAG = '<script defer src="./assets/viewer.js"></script>'
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_JSON_ROUTES = {
    "_cellucid/health": health_body,
    "_cellucid/info": info_body,
    "_cellucid/datasets": datasets_body,
}


@lru_cache(maxsize=4)
def viewer_page(ui_dir: Path) -> tuple[dict[str, int], bytes]:
    """The bundled viewer as ``({"html", "css", "js"} byte sizes, html + css + js)``.

    The HTML loses its Content-Security-Policy (the page runs from blob URLs) and gets the
    placeholders the widget front end fills in: ``__CELLUCID_CSS_URL__``,
    ``<!--__CELLUCID_BOOT__-->`` (its boot configuration) and ``__CELLUCID_JS_URL__``.
    """
    html = (ui_dir / "index.html").read_text(encoding="utf-8")
    if _CSS_LINK not in html or _JS_TAG not in html:
        raise RuntimeError(f"{ui_dir / 'index.html'} is not the page cellucid builds; reinstall")
    html = _CSP_META.sub("", html, count=1)
    html = html.replace(_CSS_LINK, '<link rel="stylesheet" href="__CELLUCID_CSS_URL__" />')
    html = html.replace(
        _JS_TAG, '<!--__CELLUCID_BOOT__--><script defer src="__CELLUCID_JS_URL__"></script>'
    )
    parts = [
        html.encode("utf-8"),
        (ui_dir / "assets" / "viewer.css").read_bytes(),
        (ui_dir / "assets" / "viewer.js").read_bytes(),
    ]
    sizes = {name: len(p) for name, p in zip(("html", "css", "js"), parts, strict=True)}
    return sizes, b"".join(parts)


@dataclass
class Reply:
    """An answer: status, headers (lower-case names) and body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> Reply:
        body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
        return cls(status, {"content-type": "application/json", "cache-control": "no-store"}, body)

    @classmethod
    def error(cls, status: int, message: str) -> Reply:
        return cls.json(error_body(message), status)


class CommFiles:
    """Answers the viewer's requests (paths relative to the page) for one server config.

    Examples
    --------
    >>> files = CommFiles(server.config)                        # doctest: +SKIP
    >>> files.answer("GET", "_cellucid/health", {}, b"").status  # doctest: +SKIP
    200
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        """Answer one request like the HTTP server would (never raises for bad input)."""
        try:
            return self._answer(method.upper(), path, headers, body)
        except Exception as exc:  # a bug must not leave the viewer waiting forever
            return Reply.error(500, f"internal error: {exc}")

    def _answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        parts = urlsplit("/" + path.lstrip("/"))
        route = unquote(parts.path).lstrip("/")
        query = dict(parse_qsl(parts.query))
        if route in _JSON_ROUTES:
            if method not in ("GET", "HEAD"):
                return Reply.error(405, f"{method} is not allowed on /{route}")
            return Reply.json(_JSON_ROUTES[route](self.config))
        if route == "_cellucid/events":
            if method != "POST":
                return Reply.error(405, f"{method} is not allowed on /{route}")
            try:
                event_id = event_id_of(query)
            except ValueError as exc:
                return Reply.error(400, str(exc))
            status, payload = self.config.registry.handle_event_body(body, event_id)
            return Reply.json(payload, status)
        if route == "_cellucid/session_bundle":
            if method != "POST":
                return Reply.error(405, f"{method} is not allowed on /{route}")
            return self._bundle(query, body)
        if route == "_cellucid/compare":
            if method != "POST":
                return Reply.error(405, f"{method} is not allowed on /{route}")
            assert self.config.comparisons is not None
            status, answer = answer_whole(
                self.config.comparisons, self.config.registry, query, body
            )
            if isinstance(answer, bytes):
                return Reply(status, {"content-type": "application/x-ndjson"}, answer)
            return Reply.json(answer, status)
        if route == "_cellucid/obs_names":
            if method not in ("GET", "HEAD"):
                return Reply.error(405, f"{method} is not allowed on /{route}")
            try:
                names = obs_names_answer(self.config.source, query)
            except ObsNamesError as exc:
                return Reply.error(exc.status, exc.message)
            headers = {"content-type": "application/octet-stream", "cache-control": "no-store"}
            return Reply(200, headers, b"" if method == "HEAD" else names)
        if route == "_cellucid/default_session":
            if method not in ("GET", "HEAD"):
                return Reply.error(405, f"{method} is not allowed on /{route}")
            try:
                found = default_session_answer(self.config.source, query, self.config.session)
            except DefaultSessionError as exc:
                return Reply.error(exc.status, exc.message)
            if found is None:
                return Reply(204, {"cache-control": "no-store"}, b"")
            headers = {"content-type": "application/octet-stream", "cache-control": "no-store"}
            return Reply(200, headers, b"" if method == "HEAD" else found)
        if route in ("_cellucid/embeddings", "_cellucid/embedding"):
            if method not in ("GET", "HEAD"):
                return Reply.error(405, f"{method} is not allowed on /{route}")
            return self._embeddings(route, query)
        if route.startswith("_cellucid/"):
            return Reply.error(404, f"unknown endpoint /{route}")
        if method not in ("GET", "HEAD"):
            return Reply.error(405, f"{method} is not allowed on data files")
        return self._data_file(route, headers.get("range"), head=method == "HEAD")

    def _embeddings(self, route: str, query: dict[str, str]) -> Reply:
        """The embedding switch's routes, as server/embeddings.py answers them."""
        try:
            found = embeddings_of(self.config, query.get("dataset"))
        except CompareRequestError as exc:
            return Reply.error(exc.status, exc.message)
        if route == "_cellucid/embeddings":
            return Reply.json(found.listing())
        key, dim_text = query.get("key"), query.get("dim", "")
        if not key or not dim_text.isdigit():
            return Reply.error(400, "key=<obsm key> and dim=<1|2|3> are required")
        try:
            data = found.points(key, int(dim_text))
        except EmbeddingError as exc:
            return Reply.error(404, str(exc))
        return Reply(
            200, {"content-type": "application/octet-stream", "cache-control": "no-cache"}, data
        )

    def _bundle(self, query: dict[str, str], body: bytes) -> Reply:
        upload = BundleUpload(
            self.config.registry, query, len(body), max_bytes=self.config.max_bundle_bytes
        )
        answer = upload.start() or upload.write(body) or upload.finish()
        return Reply.json(answer[1], answer[0])

    def _data_file(self, route: str, range_header: str | None, *, head: bool) -> Reply:
        found = resolve_data_path(self.config, "/" + route)
        file = None if found is None else self.config.source.open(*found)
        if found is None or file is None:
            return Reply.error(404, f"no such file: /{route}")
        headers = {
            "content-type": file.content_type,
            "cache-control": data_cache_control(file, found[1]),
            "etag": file.etag,
        }
        start, end, status = 0, file.size, 200
        if range_header:
            match = _RANGE.match(range_header.strip())
            if match is None or not (match.group(1) or match.group(2)):
                return Reply.error(416, f"unsupported Range {range_header!r}")
            first, last = match.groups()
            if first:
                start, end = int(first), min(file.size, int(last) + 1 if last else file.size)
            else:
                start = max(0, file.size - int(last))
            if start >= file.size or start >= end:
                return Reply.error(416, f"Range {range_header!r} is outside the {file.size} bytes")
            status = 206
            headers["content-range"] = f"bytes {start}-{end - 1}/{file.size}"
        data = b"" if head else file.read(start, end - start)
        return Reply(status, headers, data)
