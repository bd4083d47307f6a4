"""Routes of the viewer's embedding switch (PROTOCOL.md): thin handlers over
:class:`~cellucid.sources.embeddings.ObsmEmbeddings`.

``GET /_cellucid/embeddings?dataset=<id>`` lists the AnnData's usable obsm embeddings;
``GET /_cellucid/embedding?dataset=<id>&key=<obsm key>&dim=<1|2|3>`` returns one as float32
bytes, normalised like ``points_{d}d.bin``. Export folders hold only the embeddings they
were exported with: both routes answer 404 there.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..sources.embeddings import EmbeddingError, ObsmEmbeddings
from .compare import CompareRequestError, find_dataset

if TYPE_CHECKING:
    from .app import ServerConfig


def embeddings_of(config: ServerConfig, dataset_id: str | None) -> ObsmEmbeddings:
    """The source's embeddings for the named dataset (``CompareRequestError`` 404/400)."""
    find_dataset(config.source, dataset_id)
    found = getattr(config.source, "embeddings", None)
    if not isinstance(found, ObsmEmbeddings):
        raise CompareRequestError(
            404, "this server shows only the embeddings of its export (no obsm to choose from)"
        )
    return found


async def listing(request: web.Request) -> web.Response:
    from .app import CONFIG, error_response, json_response

    config = request.app[CONFIG]
    loop = asyncio.get_running_loop()
    try:  # off the event loop: a source still reading its file makes this wait
        found = await loop.run_in_executor(
            config.executor, embeddings_of, config, request.query.get("dataset")
        )
    except CompareRequestError as exc:
        return error_response(exc.status, exc.message)
    body: dict[str, Any] = await loop.run_in_executor(config.executor, found.listing)
    return json_response(body)


async def points(request: web.Request) -> web.Response:
    from .app import CONFIG, error_response

    config = request.app[CONFIG]
    query = request.query
    loop = asyncio.get_running_loop()
    try:
        found = await loop.run_in_executor(
            config.executor, embeddings_of, config, query.get("dataset")
        )
    except CompareRequestError as exc:
        return error_response(exc.status, exc.message)
    key, dim_text = query.get("key"), query.get("dim", "")
    if not key or not dim_text.isdigit():
        return error_response(400, "key=<obsm key> and dim=<1|2|3> are required")
    try:
        data = await loop.run_in_executor(config.executor, found.points, key, int(dim_text))
    except EmbeddingError as exc:
        return error_response(404, str(exc))
    return web.Response(
        body=data,
        headers={"Content-Type": "application/octet-stream", "Cache-Control": "no-cache"},
    )
