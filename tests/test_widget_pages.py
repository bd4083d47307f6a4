"""Viewers used from a script: every command also goes to the server's command hub, for pages
in plain browser tabs (python/cellucid/widget_pages.py, PROTOCOL.md "Command channel").
Pages are played by aiohttp WebSocket clients; no browser, no notebook."""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import numpy as np
import pytest

from _data import make_adata
from cellucid import widget_pages
from cellucid.server.commands import CLOSE_VIEWER_STOPPED, ViewerNotOpenWarning
from cellucid.widget import CellucidWidget
from test_server_commands import run

N = 60
IN_JUPYTER = {"in_jupyter": True, "notebook_type": "jupyterlab"}


@pytest.fixture(scope="module")
def adata():
    return make_adata(N, 4)


@pytest.fixture
def viewer(adata):
    widget = CellucidWidget(adata, port=0)
    yield widget
    widget.close()


def commands_url(widget: CellucidWidget) -> str:
    return (
        f"ws://127.0.0.1:{widget.port}/_cellucid/commands"
        f"?viewerId={widget.viewer_id}&viewerToken={widget.viewer_token}"
    )


@asynccontextmanager
async def page(widget: CellucidWidget) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A WebSocket client standing in for a page in a tab, attached when this yields."""
    async with aiohttp.ClientSession() as session, session.ws_connect(commands_url(widget)) as ws:
        while widget._hub is not None and widget._hub.pages == 0:
            await asyncio.sleep(0.01)
        yield ws


async def receive_commands(widget: CellucidWidget, n: int) -> list[tuple[dict[str, Any], Any]]:
    """Connect as a page, read ``n`` commands (cells joined), acknowledge them."""
    out = []
    async with page(widget) as ws:
        await ws.send_str('{"kind": "ready"}')
        for _ in range(n):
            head = json.loads((await ws.receive(timeout=10)).data)
            cells = None
            if head.get("cells_bytes"):
                cells = np.frombuffer((await ws.receive(timeout=10)).data, "<u4").tolist()
            await ws.send_str(json.dumps({"kind": "ack", "seq": head["seq"]}))
            out.append((head["command"], cells))
    return out


def test_commands_before_a_page_opens_wait_and_python_names_the_url(viewer):
    assert "jupyter=true" not in viewer.page_url and viewer.viewer_id in viewer.page_url
    with pytest.warns(ViewerNotOpenWarning, match="no browser page") as told:
        viewer.color_by = "cluster"
    assert viewer.page_url in str(told[0].message)
    assert told[0].filename == __file__, "the warning points at the caller's line"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        viewer.highlight_cells([4, 2], color="#00ff00")
        viewer.set_visibility(None, visible=False)
    channel = viewer.command_channel
    assert channel["queued"] == 3 and channel["attached"] == 0
    assert channel["last_command"]["outcome"] == "queued"
    assert channel["widget_shown"] is False
    got = run(receive_commands(viewer, 3))
    assert got == [
        ({"type": "setColorBy", "field": "cluster"}, None),
        ({"type": "highlight", "color": "#00ff00"}, [2, 4]),
        ({"type": "setVisibility", "visible": False, "cells": None}, None),
    ]
    assert viewer.command_channel["queued"] == 0


def test_in_a_notebook_before_display_python_also_suggests_displaying(adata, monkeypatch):
    monkeypatch.setattr(widget_pages, "notebook_context", lambda: IN_JUPYTER)
    widget = CellucidWidget(adata, port=0)
    try:
        with pytest.warns(ViewerNotOpenWarning, match="or display the viewer in this notebook"):
            widget.reset_view()
        assert widget.command_channel["queued"] == 1
    finally:
        widget.close()


def test_a_widget_shown_in_a_notebook_keeps_nothing_for_tabs(viewer, monkeypatch):
    monkeypatch.setattr(widget_pages, "notebook_context", lambda: IN_JUPYTER)
    viewer._repr_mimebundle_()  # IPython displayed it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        viewer.reset_view()
    channel = viewer.command_channel
    assert channel["widget_shown"] is True
    assert channel["queued"] == 0 and channel["last_command"]["outcome"] == "skipped"
    viewer._send_command({"type": "ping", "requestId": "r"})
    assert viewer.command_channel["commands_sent"] == 1, "requests are for the widget only"


def test_stopping_the_viewer_freezes_attached_pages(viewer):
    async def scenario():
        async with page(viewer) as ws:
            await asyncio.get_running_loop().run_in_executor(None, viewer.close)
            head = json.loads((await ws.receive(timeout=10)).data)
            assert head["command"] == {"type": "freeze"}
            closing = await ws.receive(timeout=10)
            assert closing.type == aiohttp.WSMsgType.CLOSE
            assert closing.data == CLOSE_VIEWER_STOPPED

    run(scenario())
    assert viewer.command_channel == {"closed": True, "widget_shown": False}
