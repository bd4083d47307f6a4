"""The command channel of plain browser tabs: ``GET /_cellucid/commands`` (PROTOCOL.md).

A real server on an OS-chosen port; pages are played by aiohttp WebSocket clients, and the
hub is fed from the test's thread as the viewer object feeds it from Python."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import numpy as np
import pytest

from _exports import write_dataset
from _server import AppServer, assert_error, request, serving
from cellucid.server.app import ServerConfig
from cellucid.server.commands import (
    CLOSE_VIEWER_STOPPED,
    CommandHub,
    ViewerNotOpenWarning,
    frame_command,
)
from cellucid.server.events import ViewerChannel
from cellucid.sources.export_folder import ExportFolderSource

TIMEOUT = 10.0


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory):
    return write_dataset(tmp_path_factory.mktemp("commands") / "ds", n=30).path


@pytest.fixture
def server(export):
    with serving(ExportFolderSource(export)) as srv:
        yield srv


@pytest.fixture
def viewer(server):
    channel = ViewerChannel(name="commands-test")
    server.config.registry.add(channel)
    yield channel
    server.config.registry.remove(channel.viewer_id)
    channel.close()


def hub_of(server, channel: ViewerChannel) -> CommandHub:
    return server.config.command_hubs.hub(channel.viewer_id)


def target(channel: ViewerChannel, token: str | None = None) -> str:
    return (
        f"/_cellucid/commands?viewerId={channel.viewer_id}"
        f"&viewerToken={channel.token if token is None else token}"
    )


class Page:
    """One WebSocket client standing in for a viewer page."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def command(self, ack: bool = True) -> tuple[dict[str, Any], np.ndarray | None]:
        """The next command (its cells joined), acknowledged unless ``ack=False``."""
        head = await self.ws.receive(timeout=TIMEOUT)
        assert head.type == aiohttp.WSMsgType.TEXT, head
        message = json.loads(head.data)
        assert message["kind"] == "command"
        cells = None
        if message.get("cells_bytes"):
            data = await self.ws.receive(timeout=TIMEOUT)
            assert data.type == aiohttp.WSMsgType.BINARY, data
            assert len(data.data) == message["bytes"]
            cells = np.frombuffer(data.data, dtype="<u4")
        if ack:
            await self.ack(message["seq"])
        return message, cells

    async def types(self, n: int) -> list[str]:
        return [(await self.command())[0]["command"]["type"] for _ in range(n)]

    async def ack(self, seq: int) -> None:
        await self.ws.send_str(json.dumps({"kind": "ack", "seq": seq}))

    async def ready(self) -> None:
        await self.ws.send_str('{"kind": "ready"}')

    async def nothing(self, seconds: float = 0.3) -> None:
        with pytest.raises(asyncio.TimeoutError):
            await self.ws.receive(timeout=seconds)


@asynccontextmanager
async def pages(server, channel: ViewerChannel, n: int = 1) -> AsyncIterator[list[Page]]:
    async with aiohttp.ClientSession() as session:
        url = f"ws://127.0.0.1:{server.port}{target(channel)}"
        sockets = [await session.ws_connect(url, autoping=True) for _ in range(n)]
        hub = hub_of(server, channel)
        await until(lambda: hub.pages >= n)
        try:
            yield [Page(ws) for ws in sockets]
        finally:
            for ws in sockets:
                await ws.close()


async def until(condition, timeout: float = TIMEOUT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def run(coro) -> Any:
    """Run ``coro`` on a fresh event loop in its own thread: the session's Playwright (sync
    API) keeps a loop running in the main thread, where ``asyncio.run`` refuses to start."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, asyncio.wait_for(coro, 30)).result()


def quietly(hub: CommandHub, *args: Any, **kwargs: Any) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ViewerNotOpenWarning)
        return hub.send(*args, **kwargs)


# ------------------------------------------------------------------------------ framing
def test_frames_mirror_the_comm_a_json_header_then_uint32_bytes():
    out = frame_command(7, {"type": "setVisibility", "visible": False}, np.array([9, 1, 4]))
    assert json.loads(out.text) == {
        "kind": "command",
        "seq": 7,
        "command": {"type": "setVisibility", "visible": False},
        "cells_bytes": True,
        "bytes": 12,
    }
    assert np.frombuffer(out.data, "<u4").tolist() == [9, 1, 4]
    plain = frame_command(8, {"type": "setVisibility", "cells": None, "visible": True})
    assert plain.data is None and "cells_bytes" not in json.loads(plain.text)


# ------------------------------------------------------------------------------ the route
@pytest.mark.parametrize(
    ("query", "status"),
    [("", 400), ("?viewerId=nobody&viewerToken=x", 404), (None, 403)],
)
def test_credentials_are_checked_before_the_upgrade(server, viewer, query, status):
    path = target(viewer, token="wrong") if query is None else "/_cellucid/commands" + query
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    resp = request(server.port, "GET", path, upgrade)
    assert_error(resp, status)
    assert resp.header("Upgrade") is None
    assert hub_of(server, viewer).pages == 0


def test_a_plain_get_is_told_to_upgrade(server, viewer):
    assert "WebSocket" in assert_error(server.get(target(viewer)), 400)
    assert server.request("POST", target(viewer), {"Content-Length": "0"}, b"").status == 405


def test_commands_arrive_in_order_with_binary_cells(server, viewer):
    async def scenario():
        hub = hub_of(server, viewer)
        async with pages(server, viewer) as (page,):
            assert hub.send({"type": "setColorBy", "field": "cluster"}) == "pages"
            hub.send({"type": "highlight", "color": "#ff0000"}, np.array([3, 5], np.uint32))
            hub.send({"type": "setVisibility", "cells": None, "visible": True})
            hub.send({"type": "setSelection"}, np.zeros(0, np.uint32))
            got = [await page.command() for _ in range(4)]
            assert [m["seq"] for m, _ in got] == [1, 2, 3, 4]
            assert got[0][0]["command"] == {"type": "setColorBy", "field": "cluster"}
            assert got[1][1].tolist() == [3, 5]
            assert got[2][1] is None and got[2][0]["command"]["cells"] is None
            assert got[3][1].tolist() == []
            await until(lambda: hub.info()["pages"][0]["acked_seq"] == 4)
            info = hub.info()
            assert info["attached"] == 1 and info["queued"] == 0
            assert info["last_delivery"]["seq"] == 4
            assert info["pages"][0]["backlog"] == 0

    run(scenario())


def test_commands_wait_while_no_page_is_attached_and_python_is_told(server, viewer):
    hub = hub_of(server, viewer)
    hub.page_url = "http://example/viewer?x"
    with pytest.warns(ViewerNotOpenWarning, match=r"no browser page.*http://example/viewer\?x"):
        assert hub.send({"type": "setColorBy", "field": "a"}) == "queued"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # told once, not at every command
        hub.send({"type": "highlight", "color": "#00ff00"}, np.array([1], np.uint32))
    assert hub.info()["queued"] == 2
    # a notebook widget shows the viewer: nothing is kept for tabs
    assert hub.send({"type": "resetCamera"}, retain=False) == "skipped"

    async def scenario():
        async with pages(server, viewer) as (page,):
            first, second = await page.command(), await page.command()
            assert first[0]["command"]["field"] == "a"
            assert second[1].tolist() == [1]
            assert hub.info()["queued"] == 0

    run(scenario())


def test_unacknowledged_commands_are_queued_again_for_the_next_page(server, viewer):
    hub = hub_of(server, viewer)

    async def scenario():
        async with pages(server, viewer) as (page,):
            hub.send({"type": "setColorBy", "field": "a"})
            hub.send({"type": "resetCamera"})
            await page.command(ack=True)
            await page.command(ack=False)  # received, then the page reloads
            await until(lambda: hub.info()["pages"][0]["acked_seq"] == 1)
        await until(lambda: hub.pages == 0)
        with pytest.warns(ViewerNotOpenWarning, match="went away"):
            hub.send({"type": "clearHighlights"})
        async with pages(server, viewer) as (page,):
            assert await page.types(2) == ["resetCamera", "clearHighlights"]

    run(scenario())


def test_two_pages_get_every_command_but_requests_go_to_one(server, viewer):
    hub = hub_of(server, viewer)

    async def scenario():
        async with pages(server, viewer, 2) as (first, second):
            await second.ready()
            await until(lambda: any(p["ready"] for p in hub.info()["pages"]))
            hub.send({"type": "setColorBy", "field": "a"})
            hub.send({"type": "ping", "requestId": "r1"})
            hub.send({"type": "clearHighlights"})
            assert await first.types(2) == ["setColorBy", "clearHighlights"]
            assert await second.types(3) == ["setColorBy", "ping", "clearHighlights"]
            await first.nothing()

    run(scenario())


def test_a_request_left_unanswered_by_a_closing_page_goes_to_another(server, viewer):
    hub = hub_of(server, viewer)

    async def scenario():
        async with pages(server, viewer, 2) as (first, second):
            hub.send({"type": "requestSessionBundle", "requestId": "r1"})
            await first.command(ack=False)
            await first.ws.close()
            message, _ = await second.command()
            assert message["command"] == {"type": "requestSessionBundle", "requestId": "r1"}

    run(scenario())


def test_the_queue_is_bounded_and_overflow_is_reported(server, viewer):
    hub = hub_of(server, viewer)
    hub.max_queued = 3
    with pytest.warns(ViewerNotOpenWarning) as caught:
        for i in range(5):
            hub.send({"type": "setColorBy", "field": f"f{i}"})
    assert any("the oldest are dropped" in str(w.message) for w in caught)
    info = hub.info()
    assert info["queued"] == 3 and info["dropped"] == 2

    async def scenario():
        async with pages(server, viewer) as (page,):
            fields = [(await page.command())[0]["command"]["field"] for _ in range(3)]
            assert fields == ["f2", "f3", "f4"]

    run(scenario())


def test_a_page_that_falls_behind_is_closed(server, viewer):
    hub = hub_of(server, viewer)
    hub.max_backlog = 2

    async def scenario():
        async with pages(server, viewer) as (page,):
            for _ in range(3):
                hub.send({"type": "resetCamera"})
            closed = None
            while closed is None:
                message = await page.ws.receive(timeout=TIMEOUT)
                if message.type == aiohttp.WSMsgType.CLOSE:
                    closed = message.data
            assert closed == 4008
        await until(lambda: hub.pages == 0)
        assert quietly(hub, {"type": "resetCamera"}) == "queued"
        assert hub.info()["queued"] == 4  # nothing acknowledged is lost

    run(scenario())


def test_stopping_the_viewer_writes_pending_commands_then_closes(server, viewer):
    hub = hub_of(server, viewer)

    async def scenario():
        async with pages(server, viewer) as (page,):
            hub.send({"type": "freeze"})
            hub.close()
            message, _ = await page.command()
            assert message["command"] == {"type": "freeze"}
            closing = await page.ws.receive(timeout=TIMEOUT)
            assert closing.type == aiohttp.WSMsgType.CLOSE
            assert closing.data == CLOSE_VIEWER_STOPPED
        assert hub.send({"type": "resetCamera"}) == "skipped"

    run(scenario())


def test_server_shutdown_closes_the_pages(export):
    channel = ViewerChannel(name="shutdown")
    config = ServerConfig(source=ExportFolderSource(export))
    config.registry.add(channel)
    srv = AppServer(config).__enter__()

    async def scenario():
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"ws://127.0.0.1:{srv.port}{target(channel)}")
            await until(lambda: hub_of(srv, channel).pages == 1)
            stopping = asyncio.get_running_loop().run_in_executor(None, srv.__exit__)
            message = await ws.receive(timeout=TIMEOUT)
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            await stopping

    try:
        run(scenario())
    finally:
        channel.close()
