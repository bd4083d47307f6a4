"""CellucidWidget outside a notebook (SPEC §4, §6.6, §6.8): construction, traits, the
command queue, events, hooks, waiting, the comm protocol with the front end, diagnostics
and shutdown. The front end is played by the tests: they capture what the widget sends
(``widget.send``) and hand it messages (``widget._on_frontend_message``)."""

from __future__ import annotations

import gc
import json
import logging
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest
import traitlets

import cellucid
from _data import make_adata
from cellucid import widget as widget_module
from cellucid.comm_transport import viewer_page
from cellucid.serialization import MAX_PART
from cellucid.server.bundles import BUNDLE_MAGIC
from cellucid.sources.fields import DatasetFields
from cellucid.viewer import AnnDataViewer, CellucidViewer, show
from cellucid.widget import CellucidWidget

N = 80
READY = {"type": "ready", "n_cells": N, "dimensions": 2}
SELECTION = {"type": "selection", "cells": [5, 2, 9], "source": "lasso"}
HOVER = {"type": "hover", "cell": 4, "position": {"x": 0.5, "y": -1.0, "z": 0.0}}
CLICK = {"type": "click", "cell": 7, "button": 2, "shift": True, "ctrl": False}
VIEW = {"type": "view", "color_by": "cluster", "dimension": 3}
IN_JUPYTER = {"in_jupyter": True, "notebook_type": "jupyterlab"}

Sent = list[tuple[dict[str, Any], list[bytes]]]


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def adata():
    return make_adata(N, 6)


@pytest.fixture(scope="module")
def export_dir(adata, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("widget") / "export"
    return Path(cellucid.prepare(adata, out, quiet=True))


@pytest.fixture(scope="module")
def h5ad_path(adata, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("widget") / "small.h5ad"
    adata.write_h5ad(path)
    return path


class Widgets:
    """Makes widgets (always ``port=0``) and closes every one after the test."""

    def __init__(self, adata) -> None:
        self.adata = adata
        self.made: list[CellucidWidget] = []

    def __call__(self, data: Any = None, cls: type = CellucidWidget, **kwargs: Any):
        kwargs.setdefault("port", 0)
        return self.track(cls(self.adata if data is None else data, **kwargs))

    def track(self, widget: CellucidWidget) -> CellucidWidget:
        self.made.append(widget)
        return widget


@pytest.fixture
def make_widget(adata) -> Iterator[Widgets]:
    widgets = Widgets(adata)
    yield widgets
    for widget in widgets.made:
        widget.close()


@pytest.fixture
def widget(make_widget: Widgets) -> CellucidWidget:
    return make_widget()


# ------------------------------------------------------------------------------ helpers


def fake_frontend(
    widget: CellucidWidget, reply: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None
) -> Sent:
    """Record what the widget sends; ``reply(command)`` may answer a command with an event,
    delivered a moment later from a Timer thread (as the viewer would)."""
    sent: Sent = []

    def send(content: dict[str, Any], buffers: list[Any] | None = None) -> None:
        sent.append((json.loads(json.dumps(content)), [bytes(b) for b in buffers or []]))
        if reply is not None and content.get("kind") == "command" and content.get("part", 0) == 0:
            event = reply(content["command"])
            if event is not None:
                threading.Timer(0.02, widget._channel.deliver, [event]).start()

    widget.send = send  # type: ignore[method-assign]
    return sent


def commands(sent: Sent) -> list[tuple[dict[str, Any], np.ndarray | None]]:
    """The commands in ``sent``, parts joined: ``(command, uint32 cells or None)``."""
    out: list[tuple[dict[str, Any], np.ndarray | None]] = []
    chunks: dict[int, list[bytes]] = {}
    for content, buffers in sent:
        if content.get("kind") != "command":
            continue
        seq = content["seq"]
        chunks.setdefault(seq, []).append(buffers[0] if buffers else b"")
        if content.get("part", 0) != content.get("parts", 1) - 1:
            continue
        data = b"".join(chunks.pop(seq))
        cells = np.frombuffer(data, dtype="<u4") if content.get("cells_bytes") else None
        out.append((content["command"], cells))
    return out


def command_types(sent: Sent) -> list[str]:
    return [command["type"] for command, _ in commands(sent)]


def replies(sent: Sent, kind: str) -> dict[str, tuple[dict[str, Any], bytes]]:
    """Complete ``fetch_reply`` / ``page`` messages by id: (first part, joined bytes)."""
    parts: dict[str, dict[int, tuple[dict[str, Any], bytes]]] = {}
    for content, buffers in sent:
        if content.get("kind") == kind:
            parts.setdefault(content["id"], {})[content["part"]] = (content, buffers[0])
    return {
        key: (got[0][0], b"".join(got[i][1] for i in range(len(got))))
        for key, got in parts.items()
        if len(got) == next(iter(got.values()))[0]["parts"]
    }


def wait_until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def deliver_when_waited(widget: CellucidWidget, *events: dict[str, Any]) -> threading.Timer:
    """A Timer that delivers ``events`` once someone waits on the widget's channel."""

    def run() -> None:
        wait_until(lambda: widget._channel._waiters)
        for event in events:
            widget._channel.deliver(event)

    timer = threading.Timer(0.05, run)
    timer.start()
    return timer


def make_ready(widget: CellucidWidget) -> None:
    assert widget._channel.deliver(READY)
    assert widget._channel.wait_idle()


def frontend(
    widget: CellucidWidget, content: dict[str, Any], buffers: Sequence[bytes] = ()
) -> None:
    widget._on_frontend_message(widget, {"view": "view-1", **content}, list(buffers))


def http_get(
    widget: CellucidWidget, path: str, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{widget.port}/{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


# ---------------------------------------------------------------------------- construction


def test_from_anndata(widget: CellucidWidget) -> None:
    assert widget.is_running
    assert widget.n_cells == N
    assert widget.fields.dimensions == (2, 3)
    assert "cluster" in widget.fields.obs_keys
    assert "slower" in widget.note
    assert widget.viewer_url.endswith("&anndata=true")
    assert repr(widget) == f"CellucidWidget(port={widget.port}, status=running)"
    status, _, body = http_get(widget, "_cellucid/health")
    assert status == 200 and json.loads(body)["type"] == "anndata"


def test_from_h5ad_path(make_widget: Widgets, h5ad_path: Path) -> None:
    widget = make_widget(str(h5ad_path))
    assert widget.n_cells == N
    assert "anndata=true" in widget.viewer_url
    assert json.loads(http_get(widget, "_cellucid/health")[2])["format"] == "h5ad"


@pytest.mark.parametrize("as_str", [False, True])
def test_from_export_folder(make_widget: Widgets, export_dir: Path, as_str: bool) -> None:
    widget = make_widget(str(export_dir) if as_str else export_dir)
    assert widget.n_cells == N
    assert widget.note == ""
    assert "anndata" not in widget.viewer_url
    assert repr(widget) == f"CellucidWidget('{export_dir}', port={widget.port}, status=running)"
    assert json.loads(http_get(widget, "_cellucid/health")[2])["type"] == "exported"


@pytest.mark.parametrize("data", [42, None, [1, 2], {"obs": 1}, b"data.h5ad"])
def test_bad_data_type(data: object) -> None:
    with pytest.raises(TypeError, match=r"data must be an AnnData.*not " + type(data).__name__):
        CellucidWidget(data, port=0)


def test_a_failed_construction_leaves_no_error_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """ipywidgets' ``Widget.__del__`` calls ``close()`` on a half-built widget too."""
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    with pytest.raises(TypeError):
        CellucidWidget(42, port=0)
    gc.collect()
    assert [f"{u.exc_type.__name__}: {u.exc_value}" for u in unraisable] == []


def test_adapter_kwargs_on_an_export_folder(export_dir: Path) -> None:
    with pytest.raises(TypeError, match=r"latent_key: AnnData options do not apply"):
        CellucidWidget(export_dir, port=0, latent_key="X_pca")


def test_anndata_flag_must_match_the_path(export_dir: Path, h5ad_path: Path) -> None:
    with pytest.raises(ValueError, match="export folder"):
        CellucidWidget(export_dir, port=0, anndata=True)
    with pytest.raises(ValueError, match="AnnData file"):
        CellucidWidget(h5ad_path, port=0, anndata=False)
    with pytest.raises(ValueError, match="transport"):
        CellucidWidget(export_dir, port=0, transport="websocket")


def test_upstream_names(make_widget: Widgets, export_dir: Path, capsys) -> None:
    viewer = make_widget(export_dir, cls=CellucidViewer)
    assert isinstance(viewer, CellucidWidget)
    assert repr(viewer) == f"CellucidViewer('{export_dir}', port={viewer.port}, status=running)"
    anndata_viewer = make_widget(cls=AnnDataViewer, height=300)
    assert repr(anndata_viewer) == f"AnnDataViewer(port={anndata_viewer.port}, status=running)"
    assert anndata_viewer.height == 300 and anndata_viewer.note
    with pytest.raises(ValueError, match="export folder"):
        AnnDataViewer(export_dir, port=0)
    shown = make_widget.track(show(export_dir, port=0))
    out = capsys.readouterr().out
    assert isinstance(shown, CellucidViewer)
    assert f"http://127.0.0.1:{shown.port}/?viewerId={shown.viewer_id}" in out
    assert "jupyter=true" not in out


def test_display_in_a_notebook_shows_the_widget(
    widget: CellucidWidget, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import IPython.display

    shown: list[object] = []
    monkeypatch.setattr(widget_module, "notebook_context", lambda: IN_JUPYTER)
    monkeypatch.setattr(IPython.display, "display", shown.append)
    widget.display()
    assert shown == [widget]
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------------------------- traits


def test_trait_values(make_widget: Widgets) -> None:
    first, second = make_widget(), make_widget(transport="http", height=420)
    for widget in (first, second):
        assert re.fullmatch(r"[0-9a-f]{16}", widget.viewer_id)
        assert re.fullmatch(r"[0-9a-f]{32}", widget.viewer_token)
        assert widget.viewer_id == widget._channel.viewer_id
        assert widget.viewer_token == widget._channel.token
        assert widget.port == widget._server.port > 0
        assert widget.port == urlsplit(widget.viewer_url).port
        assert widget.url_fixed is False
        assert widget.ready is False
        assert widget.selection.dtype == np.uint32 and widget.selection.size == 0
        assert widget.color_by is None and widget.dimension is None
        assert widget.transport_in_use is None
    assert (first.transport, second.transport) == ("auto", "http")
    assert (first.height, second.height) == (600, 420)
    assert first.viewer_id != second.viewer_id
    assert first.viewer_token != second.viewer_token
    assert first.port != second.port


def test_hover_and_click_are_none_before_any_event(widget: CellucidWidget) -> None:
    """The trait docs say ``None`` before any hover/click (like ``state.hover``)."""
    assert widget.state.hover is None and widget.state.click is None
    assert widget.hover is None
    assert widget.click is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("viewer_id", "0123456789abcdef"),
        ("viewer_token", "0" * 32),
        ("viewer_url", "http://example.org/"),
        ("url_fixed", True),
        ("port", 1234),
        ("transport", "comm"),
        ("hover", {"cell": 1, "position": None}),
        ("click", {"cell": 1, "button": 0, "shift": False, "ctrl": False}),
        ("ready", True),
    ],
)
def test_read_only_traits_refuse_assignment(widget: CellucidWidget, name: str, value: Any) -> None:
    before = getattr(widget, name)
    with pytest.raises(traitlets.TraitError, match="read-only"):
        setattr(widget, name, value)
    assert getattr(widget, name) == before


@pytest.mark.parametrize("anndata_mode", [True, False])
def test_viewer_url_format(make_widget: Widgets, export_dir: Path, anndata_mode: bool) -> None:
    widget = make_widget(None if anndata_mode else export_dir)
    parts = urlsplit(widget.viewer_url)
    assert f"{parts.scheme}://{parts.netloc}" == f"http://127.0.0.1:{widget.port}"
    assert parts.path == "/" and parts.fragment == ""
    pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
    expected = {"jupyter": "true", "viewerId": widget.viewer_id, "viewerToken": widget.viewer_token}
    if anndata_mode:
        expected["anndata"] = "true"
    assert len(pairs) == len(expected), pairs
    assert dict(pairs) == expected
    assert not re.search(r"\s", widget.viewer_url)
    assert widget.server_url == f"http://127.0.0.1:{widget.port}"
    assert widget.viewer_origin == widget.server_url


def test_client_server_url_override(make_widget: Widgets, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELLUCID_CLIENT_SERVER_URL", "https://hub.example.org/user/me/proxy/4321/")
    widget = make_widget()
    base = "https://hub.example.org/user/me/proxy/4321"
    assert widget.server_url == base
    assert widget.viewer_url == (
        f"{base}/?jupyter=true&viewerId={widget.viewer_id}"
        f"&viewerToken={widget.viewer_token}&anndata=true"
    )
    assert widget.url_fixed is True
    assert widget.viewer_origin == "https://hub.example.org"
    assert widget.port > 0 and widget.is_running


# -------------------------------------------------------------------------------- commands


def test_commands_before_ready_are_queued_then_flushed_in_order(widget: CellucidWidget) -> None:
    sent = fake_frontend(widget)
    widget.highlight_cells([5, 1], color="#00ff00")
    widget.set_color_by("cluster")
    widget.dimension = 3
    widget.reset_view()
    widget.send_message({"type": "custom", "pair": (1, 2), "nested": {"a": None}})
    widget.clear_highlights()
    widget.selection = [4, 2]
    widget.set_visibility([0], visible=False)
    assert sent == []
    make_ready(widget)
    got = commands(sent)
    assert [command["type"] for command, _ in got] == [
        "highlight",
        "setColorBy",
        "setDimension",
        "resetCamera",
        "custom",
        "clearHighlights",
        "setSelection",
        "setVisibility",
    ]
    seqs = [content["seq"] for content, _ in sent]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert got[0][0] == {"type": "highlight", "color": "#00ff00"}
    assert got[0][1].tolist() == [1, 5]
    assert got[1][0] == {"type": "setColorBy", "field": "cluster"}
    assert got[2][0] == {"type": "setDimension", "dimension": 3}
    assert got[4][0] == {"type": "custom", "pair": [1, 2], "nested": {"a": None}}
    assert got[6][1].tolist() == [2, 4]
    assert (got[7][0]["visible"], got[7][1].tolist()) == (False, [0])


def test_commands_after_ready_go_out_at_once(widget: CellucidWidget) -> None:
    make_ready(widget)
    sent = fake_frontend(widget)
    widget.reset_view()
    assert command_types(sent) == ["resetCamera"]
    widget.clear_highlights()
    assert command_types(sent) == ["resetCamera", "clearHighlights"]


def test_queue_keeps_the_newest_commands(
    widget: CellucidWidget, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    monkeypatch.setattr(widget_module, "MAX_QUEUED_COMMANDS", 3)
    sent = fake_frontend(widget)
    for i in range(5):
        widget.send_message({"type": "custom", "i": i})
    assert "too many commands before ready" in caplog.text
    make_ready(widget)
    assert [command["i"] for command, _ in commands(sent)] == [2, 3, 4]


@pytest.mark.parametrize(
    ("cells", "color", "message"),
    [
        ([], "#ff0000", "must not be empty"),
        (np.zeros(N, dtype=bool), "#ff0000", "must not be empty"),
        ([-1], "#ff0000", "negative"),
        ([N], "#ff0000", f"has {N} cells"),
        ([1.5], "#ff0000", "integer"),
        (["a"], "#ff0000", "integer"),
        (np.ones(N - 1, dtype=bool), "#ff0000", "one entry per cell"),
        ([1], "red", "#RRGGBB"),
        ([1], "#12345", "#RRGGBB"),
        ([1], "#GGGGGG", "#RRGGBB"),
        ([1], "#ff0000 ", "#RRGGBB"),
        ([1], 0xFF0000, "#RRGGBB"),
    ],
)
def test_highlight_validation(widget: CellucidWidget, cells: Any, color: Any, message: str) -> None:
    sent = fake_frontend(widget)
    make_ready(widget)
    with pytest.raises(ValueError, match=re.escape(message)):
        widget.highlight_cells(cells, color=color)
    assert sent == []


def test_highlight_cells_travel_as_uint32_bytes(widget: CellucidWidget) -> None:
    make_ready(widget)
    sent = fake_frontend(widget)
    widget.highlight_cells(np.array([79, 3, 3, 7]), color="#AbCdEf")
    mask = np.zeros(N, dtype=bool)
    mask[[0, 40]] = True
    widget.highlight_cells(mask)
    widget.highlight_cells([2.0, 6.0])
    (first, first_buffers), (second, _), (third, _) = sent
    assert first == {
        "kind": "command",
        "seq": first["seq"],
        "command": {"type": "highlight", "color": "#AbCdEf"},
        "cells_bytes": True,
        "part": 0,
        "parts": 1,
    }
    assert first_buffers == [np.array([3, 7, 79], dtype="<u4").tobytes()]
    assert [cells.tolist() for _, cells in commands(sent)] == [[3, 7, 79], [0, 40], [2, 6]]
    for content in (first, second, third):
        assert set(content) == {"kind", "seq", "command", "cells_bytes", "part", "parts"}
        assert content["command"].get("cells") is None, "cells must not travel as JSON"


def test_large_cell_lists_go_in_parts_of_at_most_4_mib(widget: CellucidWidget) -> None:
    n = 2_000_000
    widget._fields = DatasetFields("big", n, (2,), ("cluster",), lambda: ())
    make_ready(widget)
    sent = fake_frontend(widget)
    cells = np.arange(0, n, 1.6)[:1_200_000].astype(np.int64)  # 4.8 MB as uint32
    widget.highlight_cells(cells)
    assert [len(buffers[0]) for _, buffers in sent] == [MAX_PART, 4 * cells.size - MAX_PART]
    assert MAX_PART == 4 * 1024 * 1024
    assert [(content["part"], content["parts"]) for content, _ in sent] == [(0, 2), (1, 2)]
    assert len({content["seq"] for content, _ in sent}) == 1
    assert all(len(buffers) == 1 for _, buffers in sent)
    ((command, got),) = commands(sent)
    assert command == {"type": "highlight", "color": "#ff0000"}
    np.testing.assert_array_equal(got, cells)


def test_set_visibility(widget: CellucidWidget) -> None:
    make_ready(widget)
    sent = fake_frontend(widget)
    widget.set_visibility([], visible=False)
    widget.set_visibility(np.array([3, 1]))
    (empty_command, empty), (some_command, some) = commands(sent)
    assert (empty_command["visible"], empty.size) == (False, 0)
    assert (some_command["visible"], some.tolist()) == (True, [1, 3])
    assert empty_command.get("cells") is None and some_command.get("cells") is None
    with pytest.raises(ValueError, match="True or False"):
        widget.set_visibility(None, visible="yes")
    with pytest.raises(ValueError, match="negative"):
        widget.set_visibility([-2])


def test_set_visibility_none_sends_cells_null(widget: CellucidWidget) -> None:
    """SPEC §4.2: setVisibility carries ``cells: int[] | null`` (null = every cell); the
    viewer rejects a setVisibility without its ``cells`` key."""
    make_ready(widget)
    sent = fake_frontend(widget)
    widget.set_visibility(None, visible=False)
    widget.set_visibility()
    assert [command for command, _ in commands(sent)] == [
        {"type": "setVisibility", "cells": None, "visible": False},
        {"type": "setVisibility", "cells": None, "visible": True},
    ]


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"n": 1}, "string 'type'"),
        ({"type": 3}, "string 'type'"),
        ({"type": ""}, "must not be empty"),
        ({"type": "custom", "viewerId": "x"}, "'viewerId'"),
        ({"type": "custom", "viewerToken": "x"}, "'viewerToken'"),
        ({"type": "custom", "value": object()}, "plain JSON"),
        ({"type": "custom", "value": {1, 2}}, "plain JSON"),
        ({"type": "custom", "value": float("nan")}, "plain JSON"),
        ({"type": "custom", "value": [float("inf")]}, "plain JSON"),
        ("custom", "must be a dict"),
        (None, "must be a dict"),
    ],
)
def test_send_message_validation(widget: CellucidWidget, message: Any, error: str) -> None:
    make_ready(widget)
    sent = fake_frontend(widget)
    with pytest.raises(ValueError, match=re.escape(error)):
        widget.send_message(message)
    assert sent == []


def test_send_message_sends_a_copy(widget: CellucidWidget) -> None:
    make_ready(widget)
    sent = fake_frontend(widget)
    message = {"type": "note", "items": [1, "two", None, True, 2.5]}
    widget.send_message(message)
    message["items"].append("later")
    assert commands(sent) == [({"type": "note", "items": [1, "two", None, True, 2.5]}, None)]


def test_setting_traits_sends_commands(widget: CellucidWidget) -> None:
    make_ready(widget)
    sent = fake_frontend(widget)
    widget.selection = np.array([9, 3])
    widget.color_by = "Gene1"
    widget.set_color_by("cluster")
    widget.dimension = 3
    assert widget.selection.dtype == np.uint32 and widget.selection.tolist() == [3, 9]
    assert not widget.selection.flags.writeable
    got = commands(sent)
    assert [command for command, _ in got] == [
        {"type": "setSelection"},
        {"type": "setColorBy", "field": "Gene1"},
        {"type": "setColorBy", "field": "cluster"},
        {"type": "setDimension", "dimension": 3},
    ]
    assert got[0][1].tolist() == [3, 9]
    assert (widget.color_by, widget.dimension) == ("cluster", 3)


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("color_by", "no_such_field", "unknown field 'no_such_field'"),
        ("color_by", "", "non-empty string"),
        ("dimension", 5, "dimension 5 is not available; this dataset has 2D, 3D"),
        ("dimension", 1, "dimension 1 is not available"),
        ("selection", [N], "selection holds the index"),
        ("selection", [[1, 2]], "one-dimensional"),
    ],
)
def test_bad_trait_values(widget: CellucidWidget, name: str, value: Any, error: str) -> None:
    make_ready(widget)
    sent = fake_frontend(widget)
    before = getattr(widget, name)
    with pytest.raises(ValueError, match=re.escape(error)):
        setattr(widget, name, value)
    after = getattr(widget, name)
    assert np.array_equal(after, before) if name == "selection" else after == before
    assert sent == []


@pytest.mark.parametrize("name", ["color_by", "dimension"])
def test_traits_cannot_be_cleared_from_python(widget: CellucidWidget, name: str) -> None:
    """``color_by = None`` / ``dimension = None`` has no viewer command: it must be refused
    instead of sending ``setColorBy {field: null}`` / ``setDimension {dimension: null}``."""
    make_ready(widget)
    sent = fake_frontend(widget)
    with pytest.raises((traitlets.TraitError, ValueError)):
        setattr(widget, name, None)
    assert sent == []


def test_set_color_by_refuses_ambiguous_fields(make_widget: Widgets, adata) -> None:
    ambiguous = adata.copy()
    ambiguous.obs["Gene2"] = np.arange(N, dtype=float)
    widget = make_widget(ambiguous)
    with pytest.raises(ValueError, match="both an obs key and a gene id"):
        widget.set_color_by("Gene2")


# ---------------------------------------------------------------------------------- events


def test_events_update_traits_at_once_and_observers_run_once_on_the_dispatcher(
    widget: CellucidWidget,
) -> None:
    names = ["ready", "selection", "hover", "click", "color_by", "dimension"]
    seen: list[tuple[str, Any, str]] = []
    widget.observe(
        lambda change: seen.append((change.name, change.new, threading.current_thread().name)),
        names=names,
    )
    sent = fake_frontend(widget)
    channel = widget._channel
    channel.deliver(READY)
    assert widget.ready is True
    channel.deliver(SELECTION)
    assert widget.selection.tolist() == [5, 2, 9]
    assert widget.selection.dtype == np.uint32
    assert not widget.selection.flags.writeable
    with pytest.raises(ValueError):
        widget.selection[0] = 1
    channel.deliver(HOVER)
    assert widget.hover == {"cell": 4, "position": {"x": 0.5, "y": -1.0, "z": 0.0}}
    channel.deliver(CLICK)
    assert widget.click == {"cell": 7, "button": 2, "shift": True, "ctrl": False}
    channel.deliver(VIEW)
    assert (widget.color_by, widget.dimension) == ("cluster", 3)
    assert channel.wait_idle()
    assert [name for name, _, _ in seen] == names
    assert all(thread.startswith("cellucid-events-") for _, _, thread in seen), seen
    assert seen[1][1].tolist() == [5, 2, 9]
    # the same values again change nothing: no observer call
    channel.deliver(HOVER)
    channel.deliver(VIEW)
    assert channel.wait_idle()
    assert len(seen) == len(names)
    # the viewer reported these changes: nothing goes back to it
    assert commands(sent) == []
    assert widget.state.selection["cells"].tolist() == [5, 2, 9]


def test_state_and_hover_leave(widget: CellucidWidget) -> None:
    widget._channel.deliver(HOVER)
    widget._channel.deliver({"type": "hover", "cell": None, "position": None})
    assert widget.hover == {"cell": None, "position": None}
    assert widget.state.last_event_type == "hover"
    assert widget.state.ready is None


def test_duplicate_event_ids_are_recorded_once(widget: CellucidWidget) -> None:
    calls: list[dict[str, Any]] = []
    widget.on_click(calls.append)
    messages: list[dict[str, Any]] = []
    widget.on_message(messages.append)
    channel = widget._channel
    assert channel.deliver(CLICK, event_id="evt-1")
    assert channel.deliver(CLICK, event_id="evt-1")
    frontend(widget, {"kind": "event", "eventId": "evt-1", "event": CLICK})
    assert channel.wait_idle()
    assert len(calls) == 1 and len(messages) == 1
    assert len(channel.recent_events()) == 1
    assert channel.duplicates == 2


def test_hooks(widget: CellucidWidget) -> None:
    got: list[tuple[str, Any]] = []

    @widget.on_selection
    def on_selection(event: dict[str, Any]) -> None:
        got.append(("selection", event["cells"].tolist()))

    def custom(event: dict[str, Any]) -> None:
        got.append(("custom", event))

    assert on_selection.__name__ == "on_selection"
    assert widget.register_hook("my_event", custom) is custom
    widget.on_ready(lambda event: got.append(("ready", event)))
    widget.on_hover(lambda event: got.append(("hover", event["cell"])))
    widget.on_message(lambda event: got.append(("message", event["event"])))
    channel = widget._channel
    for event in (READY, SELECTION, HOVER, {"type": "my_event", "value": [1, 2]}):
        channel.deliver(event)
    assert channel.wait_idle()
    assert got == [
        ("message", "ready"),
        ("ready", {"n_cells": N, "dimensions": 2}),
        ("message", "selection"),
        ("selection", [5, 2, 9]),
        ("message", "hover"),
        ("hover", 4),
        ("message", "my_event"),
        ("custom", {"value": [1, 2]}),
    ]
    assert widget.unregister_hook("my_event", custom) is True
    assert widget.unregister_hook("my_event", custom) is False
    widget.clear_hooks("message")
    got.clear()
    channel.deliver({"type": "my_event", "value": 3})
    channel.deliver(SELECTION)
    assert channel.wait_idle()
    assert got == [("selection", [5, 2, 9])]
    widget.clear_hooks()
    got.clear()
    channel.deliver(SELECTION)
    channel.deliver(HOVER)
    assert channel.wait_idle()
    assert got == []


def _raise(event: object) -> None:
    raise RuntimeError("failed on purpose")


def test_a_raising_hook_is_logged_and_later_hooks_still_run(widget: CellucidWidget, caplog) -> None:
    seen: list[tuple[str, Any]] = []
    widget.on_message(_raise)
    widget.register_hook("my_event", _raise)
    widget.register_hook("my_event", lambda event: seen.append(("my_event", event["n"])))
    widget.on_click(lambda event: seen.append(("click", event["cell"])))
    with caplog.at_level(logging.ERROR, logger="cellucid.events"):
        for event in ({"type": "my_event", "n": 1}, CLICK, {"type": "my_event", "n": 2}):
            widget._channel.deliver(event)
        assert widget._channel.wait_idle()
    assert seen == [("my_event", 1), ("click", 7), ("my_event", 2)]
    failures = [r for r in caplog.records if r.name == "cellucid.events" and r.exc_info]
    assert len(failures) == 5, "3 message hooks and 2 my_event hooks raised"
    assert "failed on purpose" in caplog.text


def test_a_raising_ready_observer_does_not_block_the_command_queue(
    widget: CellucidWidget, caplog
) -> None:
    widget.observe(_raise, names=["ready"])
    clicks: list[int] = []
    widget.on_click(lambda event: clicks.append(event["cell"]))
    sent = fake_frontend(widget)
    widget.reset_view()
    with caplog.at_level(logging.ERROR, logger="cellucid.events"):
        make_ready(widget)
        widget._channel.deliver(CLICK)
        assert widget._channel.wait_idle()
    assert "failed on purpose" in caplog.text
    assert widget.ready is True and clicks == [7]
    assert command_types(sent) == ["resetCamera"], "queued commands were never sent"


# --------------------------------------------------------------------------------- waiting


def test_wait_for_event_while_a_timer_delivers(widget: CellucidWidget) -> None:
    widget._channel.deliver(SELECTION)  # before the call: not seen
    deliver_when_waited(widget, {**SELECTION, "cells": [1]})
    event = widget.wait_for_event("selection", timeout=5)
    assert event["cells"].tolist() == [1] and event["source"] == "lasso"
    deliver_when_waited(widget, {**CLICK, "cell": 1}, {**CLICK, "cell": 2})
    assert widget.wait_for_event("click", 5, predicate=lambda e: e["cell"] == 2)["cell"] == 2


def test_wait_for_event_from_another_thread_with_the_comm_transport(
    make_widget: Widgets, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(widget_module, "notebook_context", lambda: IN_JUPYTER)
    widget = make_widget(transport="comm")
    result: dict[str, Any] = {}

    def wait() -> None:
        try:
            result["event"] = widget.wait_for_event("click", timeout=5)
        except BaseException as exc:  # reported below
            result["error"] = exc

    waiter = threading.Thread(target=wait)
    waiter.start()
    deliver_when_waited(widget, CLICK)
    waiter.join(10)
    assert "error" not in result, result
    assert result["event"]["cell"] == 7


def test_wait_for_ready_returns_at_once_when_ready(
    make_widget: Widgets, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(widget_module, "notebook_context", lambda: IN_JUPYTER)
    widget = make_widget(transport="comm")
    widget._channel.deliver(READY)
    started = time.monotonic()
    assert widget.wait_for_ready(timeout=30) == {"n_cells": N, "dimensions": 2}
    assert widget.wait_for_ready(timeout=0) == {"n_cells": N, "dimensions": 2}
    assert time.monotonic() - started < 1


def test_wait_for_ready_waits_for_a_late_ready(widget: CellucidWidget) -> None:
    deliver_when_waited(widget, READY)
    assert widget.wait_for_ready(timeout=5)["n_cells"] == N


@pytest.mark.parametrize("call", ["wait_for_event", "wait_for_ready"])
@pytest.mark.parametrize("how", ["transport", "view"])
def test_waiting_on_the_main_thread_with_the_comm_transport_raises(
    make_widget: Widgets, monkeypatch: pytest.MonkeyPatch, call: str, how: str
) -> None:
    monkeypatch.setattr(widget_module, "notebook_context", lambda: IN_JUPYTER)
    if how == "transport":
        widget = make_widget(transport="comm")
    else:  # the front end chose the comm for a widget with transport="auto"
        widget = make_widget()
        frontend(
            widget, {"kind": "view", "action": "transport", "transport": "comm", "via": "comm"}
        )
        assert widget.transport_in_use == "comm"
    args = ("selection",) if call == "wait_for_event" else ()
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="hook"):
        getattr(widget, call)(*args, timeout=30)
    assert time.monotonic() - started < 1


def test_http_transport_waits_on_the_main_thread_in_jupyter(
    widget: CellucidWidget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(widget_module, "notebook_context", lambda: IN_JUPYTER)
    with pytest.raises(TimeoutError):
        widget.wait_for_event("selection", timeout=0.05)


def test_timeout_message_hints_at_display(widget: CellucidWidget) -> None:
    with pytest.raises(TimeoutError, match=r"within 0\.05 s.*not displayed.*display\(\)"):
        widget.wait_for_event("selection", timeout=0.05)
    with pytest.raises(TimeoutError, match="not displayed"):
        widget.wait_for_ready(timeout=0.05)
    frontend(widget, {"kind": "view", "action": "render"})
    with pytest.raises(TimeoutError, match=r"debug_connection\(\)") as info:
        widget.wait_for_event("selection", timeout=0.05)
    assert "not displayed" not in str(info.value)


# ---------------------------------------------------------------------- front-end messages


@pytest.mark.parametrize("dense", [False, True])
def test_frontend_selection_bytes_in_parts(widget: CellucidWidget, dense: bool) -> None:
    cells = np.arange(0, N, 2 if dense else 7, dtype=np.uint32)
    if dense:
        bits = np.zeros((N + 7) // 8 * 8, dtype=bool)
        bits[cells] = True
        data = np.packbits(bits, bitorder="little").tobytes()
        encoded = {"encoding": "bitset-base64", "n": N, "count": int(cells.size), "data": None}
    else:
        data = cells.astype("<u4").tobytes()
        encoded = {"encoding": "u32-base64", "count": int(cells.size), "data": None}
    half = len(data) // 2
    message = {
        "kind": "event",
        "eventId": "sel-1",
        "event": {"type": "selection", "cells": encoded, "source": "lasso"},
        "parts": 2,
    }
    frontend(widget, {**message, "part": 1}, [data[half:]])
    assert widget.selection.size == 0 and widget.state.selection is None
    frontend(widget, {**message, "part": 0}, [data[:half]])
    assert widget.selection.tolist() == cells.tolist()
    assert widget.state.selection["source"] == "lasso"
    # the same event by HTTP (same id) is a duplicate
    assert widget._channel.deliver({**SELECTION, "cells": [1]}, event_id="sel-1")
    assert widget.selection.tolist() == cells.tolist()


def test_frontend_plain_and_invalid_events(widget: CellucidWidget, caplog) -> None:
    frontend(widget, {"kind": "event", "eventId": "h-1", "event": HOVER})
    assert widget.hover["cell"] == 4
    with caplog.at_level(logging.WARNING, logger="cellucid.widget"):
        frontend(widget, {"kind": "event", "eventId": "h-2", "event": {**HOVER, "cell": -4}})
        frontend(widget, {"kind": "event", "eventId": "h-3", "event": {"no": "type"}})
    assert widget.hover["cell"] == 4
    assert caplog.text.count("ignored a event message") == 2
    frontend(widget, {"kind": "unknown"})
    widget._on_frontend_message(widget, "not a dict", [])
    assert widget.state.last_event_type == "hover"


def test_view_messages_track_the_transport(widget: CellucidWidget) -> None:
    assert widget.transport_in_use is None
    frontend(widget, {"view": "a", "kind": "view", "action": "render"})
    assert widget.transport_in_use is None
    frontend(
        widget,
        {"view": "a", "kind": "view", "action": "transport", "transport": "http", "via": "proxy"},
    )
    assert widget.transport_in_use == "http"
    frontend(
        widget,
        {"view": "b", "kind": "view", "action": "transport", "transport": "comm", "via": "comm"},
    )
    assert widget.transport_in_use == "comm"
    frontend(widget, {"view": "b", "kind": "view", "action": "closed"})
    assert widget.transport_in_use == "http"
    assert widget.is_running


def test_the_widget_releases_itself_after_the_last_view_closed(
    widget: CellucidWidget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(widget_module, "RELEASE_AFTER_S", 0.2)
    port = widget.port
    for view in ("a", "b"):
        frontend(widget, {"view": view, "kind": "view", "action": "render"})
    frontend(widget, {"view": "a", "kind": "view", "action": "closed"})
    time.sleep(0.4)
    assert widget.is_running, "one view is still open"
    frontend(widget, {"view": "b", "kind": "view", "action": "closed"})
    wait_until(lambda: not widget.is_running, timeout=5)
    assert widget._channel.closed
    assert repr(widget) == f"CellucidWidget(port={port}, status=stopped)"
    with pytest.raises(RuntimeError, match="closed"):
        widget.reset_view()


def test_a_view_that_comes_back_keeps_the_widget(
    widget: CellucidWidget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(widget_module, "RELEASE_AFTER_S", 0.2)
    frontend(widget, {"kind": "view", "action": "render"})
    frontend(widget, {"kind": "view", "action": "closed"})
    frontend(widget, {"view": "view-2", "kind": "view", "action": "render"})
    time.sleep(0.5)
    assert widget.is_running
    assert not widget._channel.closed


@pytest.mark.parametrize(
    "path",
    [
        "_cellucid/health",
        "_cellucid/datasets",
        "dataset_identity.json",
        "obs_manifest.json",
        "points_2d.bin",
        "obs/cluster.codes.u8",
        "var/Gene1.values.f32",
        "points_2d.bin.gz",
    ],
)
def test_fetch_is_answered_with_the_http_bytes(widget: CellucidWidget, path: str) -> None:
    sent = fake_frontend(widget)
    frontend(
        widget,
        {
            "kind": "fetch",
            "id": "view-1:7",
            "path": path,
            "method": "GET",
            "headers": {},
            "part": 0,
            "parts": 1,
        },
        [b""],
    )
    wait_until(lambda: replies(sent, "fetch_reply"))
    ((head, body),) = replies(sent, "fetch_reply").values()
    status, headers, http_body = http_get(widget, path, **{"Accept-Encoding": "identity"})
    assert head["id"] == "view-1:7" and head["status"] == status == 200
    assert body == http_body
    assert head["headers"]["content-type"] == headers["Content-Type"]


def test_fetch_with_range_and_a_missing_file(widget: CellucidWidget) -> None:
    sent = fake_frontend(widget)
    fetch = {"kind": "fetch", "method": "GET", "part": 0, "parts": 1}
    frontend(
        widget, {**fetch, "id": "r", "path": "points_2d.bin", "headers": {"Range": "bytes=4-11"}}
    )
    frontend(widget, {**fetch, "id": "m", "path": "obs/nothing.codes.u8", "headers": {}})
    wait_until(lambda: len(replies(sent, "fetch_reply")) == 2)
    got = replies(sent, "fetch_reply")
    full = http_get(widget, "points_2d.bin")[2]
    assert got["r"][0]["status"] == 206 and got["r"][1] == full[4:12]
    assert got["r"][0]["headers"]["content-range"] == f"bytes 4-11/{len(full)}"
    assert got["m"][0]["status"] == 404
    assert json.loads(got["m"][1])["status"] == "error"


def test_fetch_posting_an_event_in_parts(widget: CellucidWidget) -> None:
    sent = fake_frontend(widget)
    body = json.dumps(
        {**CLICK, "viewerId": widget.viewer_id, "viewerToken": widget.viewer_token}
    ).encode()
    fetch = {
        "kind": "fetch",
        "id": "post-1",
        "path": "_cellucid/events?eventId=click-9",
        "method": "POST",
        "headers": {"Content-Type": "application/json"},
        "parts": 2,
    }
    frontend(widget, {**fetch, "part": 0}, [body[:10]])
    frontend(widget, {**fetch, "part": 1}, [body[10:]])
    wait_until(lambda: replies(sent, "fetch_reply"))
    ((head, answer),) = replies(sent, "fetch_reply").values()
    assert head["status"] == 200 and json.loads(answer) == {"status": "ok", "delivered": True}
    assert widget.click["cell"] == 7
    assert widget._channel.deliver(CLICK, event_id="click-9")
    assert len(widget._channel.recent_events()) == 1


def test_page_request_is_answered_with_the_viewer_page(widget: CellucidWidget) -> None:
    sent = fake_frontend(widget)
    frontend(widget, {"kind": "page_request", "id": "view-1:page"})
    wait_until(lambda: replies(sent, "page"))
    ((head, data),) = replies(sent, "page").values()
    assert head["id"] == "view-1:page"
    assert set(head["sizes"]) == {"html", "css", "js"}
    assert sum(head["sizes"].values()) == len(data)
    assert all(len(buffers[0]) <= MAX_PART for _, buffers in sent)
    assert data == viewer_page(widget._config.ui_dir)[1]
    assert b"__CELLUCID_JS_URL__" in data[: head["sizes"]["html"]]


def test_frontend_log_reaches_the_debug_report(widget: CellucidWidget) -> None:
    frontend(widget, {"kind": "log", "level": "error", "message": "probe failed"})
    report = widget.debug_connection(timeout=0.2)
    assert [(e["level"], e["message"]) for e in report["frontend_console"]] == [
        ("error", "probe failed")
    ]


# --------------------------------------------------------------------------------- closing


def test_close(widget: CellucidWidget) -> None:
    make_ready(widget)
    sent = fake_frontend(widget)
    port, channel, server = widget.port, widget._channel, widget._server
    assert http_get(widget, "_cellucid/health")[0] == 200
    widget.close()
    widget.close()
    assert command_types(sent) == ["freeze"]
    assert not widget.is_running
    assert channel.closed
    assert widget.viewer_id not in server.registry
    assert repr(widget) == f"CellucidWidget(port={port}, status=stopped)"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with pytest.raises(RuntimeError, match="closed"):
        widget.highlight_cells([1])
    with pytest.raises(RuntimeError, match="closed"):
        widget.wait_for_event("selection", timeout=5)


def test_no_threads_remain_after_closing_many_widgets(adata) -> None:
    before = set(threading.enumerate())
    for _ in range(20):
        widget = CellucidWidget(adata, port=0)
        try:
            widget._channel.deliver(READY)  # starts the dispatcher thread
            assert http_get(widget, "points_2d.bin")[0] == 200  # and the data executor
            frontend(widget, {"kind": "page_request", "id": "x"})  # and the comm pool
        finally:
            widget.close()

    def leftovers() -> list[str]:
        return [
            t.name
            for t in threading.enumerate()
            if t not in before and t.name.startswith("cellucid-") and t.is_alive()
        ]

    deadline = time.monotonic() + 5
    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftovers() == []


# -------------------------------------------------------------------------------- sessions


def _displayed_and_ready(widget: CellucidWidget) -> None:
    frontend(widget, {"kind": "view", "action": "render"})
    make_ready(widget)


def test_get_session_bundle_times_out(widget: CellucidWidget) -> None:
    _displayed_and_ready(widget)
    sent = fake_frontend(widget)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"no session bundle from the viewer within 0\.3 s"):
        widget.get_session_bundle(timeout=0.3)
    assert time.monotonic() - started < 2
    ((command, _),) = commands(sent)
    assert command["type"] == "requestSessionBundle"
    assert re.fullmatch(r"[0-9a-f]{32}", command["requestId"])
    assert len(widget._server.registry.pending) == 0, "the upload slot was not cancelled"


def test_get_session_bundle_when_not_displayed(widget: CellucidWidget, capsys) -> None:
    with pytest.raises(TimeoutError, match="not displayed"):
        widget.get_session_bundle(timeout=0.1)
    assert f"?viewerId={widget.viewer_id}" in capsys.readouterr().out


def test_get_session_bundle_without_time_left_times_out(widget: CellucidWidget) -> None:
    _displayed_and_ready(widget)
    fake_frontend(widget)
    with pytest.raises(TimeoutError):
        widget.get_session_bundle(timeout=0)


def test_get_session_bundle_after_close(widget: CellucidWidget) -> None:
    _displayed_and_ready(widget)
    widget.close()
    with pytest.raises(RuntimeError, match=r"closed|stopped"):
        widget.get_session_bundle(timeout=1)


@pytest.mark.parametrize("answer", ["session_bundle", "command_error"])
def test_get_session_bundle_error_event(widget: CellucidWidget, answer: str) -> None:
    _displayed_and_ready(widget)

    def reply(command: dict[str, Any]) -> dict[str, Any] | None:
        if command["type"] != "requestSessionBundle":
            return None
        if answer == "command_error":
            reason = f"no session for {command['requestId']}: quota exceeded"
            return {"type": "command_error", "command": "requestSessionBundle", "reason": reason}
        return {
            "type": "session_bundle",
            "requestId": command["requestId"],
            "status": "error",
            "error": "quota exceeded",
        }

    fake_frontend(widget, reply)
    with pytest.raises(RuntimeError, match=r"could not send its session bundle: .*quota exceeded"):
        widget.get_session_bundle(timeout=5)


def test_get_session_bundle_uploaded_over_the_comm(widget: CellucidWidget) -> None:
    _displayed_and_ready(widget)
    body = BUNDLE_MAGIC + b"\x00" * 40
    answers: list[int] = []

    def upload(request_id: str) -> None:
        path = (
            f"_cellucid/session_bundle?viewerId={widget.viewer_id}"
            f"&viewerToken={widget.viewer_token}&requestId={request_id}"
        )
        answers.append(widget._files.answer("POST", path, {}, body).status)

    def reply(command: dict[str, Any]) -> None:
        if command["type"] == "requestSessionBundle":
            threading.Timer(0.02, upload, [command["requestId"]]).start()

    fake_frontend(widget, reply)
    bundle = widget.get_session_bundle(timeout=5)
    try:
        assert answers == [200]
        assert bundle.is_temporary
        assert bundle.path.read_bytes() == body
    finally:
        bundle.cleanup()
    assert not bundle.path.exists()


# ----------------------------------------------------------------------------- diagnostics

SPEC_REPORT_KEYS = {
    "viewer_id",
    "viewer_url",
    "server_url",
    "displayed",
    "notebook_context",
    "server_running",
    "state",
    "jupyter_server_proxy",
    "client_server_url",
    "server_health",
    "server_info",
    "server_datasets",
    "dataset_identity_url",
    "dataset_identity",
    "viewer_index_probe",
    "recent_events",
    "frontend_roundtrip",
    "frontend_debug_snapshot",
    "frontend_console",
}


def test_debug_connection_outside_a_browser(widget: CellucidWidget) -> None:
    widget._channel.deliver(HOVER)
    started = time.monotonic()
    report = widget.debug_connection(timeout=5)
    assert time.monotonic() - started < 3, "nothing waits for a viewer that is not ready"
    assert set(report) >= SPEC_REPORT_KEYS
    assert not [key for key in report if key.endswith("_error")], report
    local = f"http://127.0.0.1:{widget.port}"
    assert report["viewer_id"] == widget.viewer_id
    assert widget.viewer_token not in json.dumps(report, default=str)
    assert report["viewer_url"].startswith(f"{local}/?jupyter=true&viewerId={widget.viewer_id}")
    assert report["server_url"] == report["client_server_url"] == local
    assert report["displayed"] is False
    assert report["notebook_context"] == {"in_jupyter": False, "notebook_type": None}
    assert report["server_running"] is True
    assert report["state"]["ready"] is None
    assert report["jupyter_server_proxy"]["installed"] is True
    assert report["server_health"] == json.loads(http_get(widget, "_cellucid/health")[2])
    assert report["server_health"]["n_cells"] == N
    assert report["server_info"]["port"] == widget.port
    assert report["server_datasets"]["datasets"][0]["path"] == "/"
    assert report["dataset_identity_url"] == f"{local}/dataset_identity.json"
    assert report["dataset_identity"]["stats"]["n_cells"] == N
    assert report["viewer_index_probe"]["status"] == 200
    assert report["viewer_index_probe"]["content_type"].startswith("text/html")
    assert report["recent_events"]["count"] == 1
    assert report["recent_events"]["by_type"] == {"hover": 1}
    assert report["frontend_roundtrip"]["ok"] is False
    assert "ready" in report["frontend_roundtrip"]["error"]
    assert report["frontend_debug_snapshot"]["ok"] is False
    assert report["frontend_console"] == []


def test_debug_connection_round_trip_with_a_ready_viewer(widget: CellucidWidget) -> None:
    make_ready(widget)
    snapshot = {"ts": 1, "locationHref": "x", "origin": "o", "serverUrl": "s", "connected": True}
    snapshot |= {"parentOrigin": "p", "userAgent": "node"}

    def reply(command: dict[str, Any]) -> dict[str, Any] | None:
        if command["type"] == "ping":
            return {"type": "pong", "requestId": command["requestId"], "t": 1}
        if command["type"] == "debug_snapshot":
            return {"type": "debug_snapshot", "requestId": command["requestId"], **snapshot}
        return None

    fake_frontend(widget, reply)
    report = widget.debug_connection(timeout=5)
    assert report["frontend_roundtrip"]["ok"] is True
    assert report["frontend_roundtrip"]["pong"]["t"] == 1
    assert report["frontend_debug_snapshot"]["ok"] is True
    assert report["frontend_debug_snapshot"]["debug_snapshot"]["userAgent"] == "node"
    assert report["state"]["ready"] == {"n_cells": N, "dimensions": 2}


def test_debug_connection_after_close(widget: CellucidWidget) -> None:
    widget.close()
    report = widget.debug_connection(timeout=0.2)
    assert report["server_running"] is False
    assert "server_health" not in report
    assert report["frontend_roundtrip"]["ok"] is False


def test_an_event_over_http_tells_the_transport_before_the_view_reports(
    widget: CellucidWidget,
) -> None:
    """Inside the displaying cell the front end's report (comm) is not there yet; an event
    that came over HTTP already shows the viewer is on the http transport."""
    import json as _json
    from urllib.request import Request, urlopen

    assert widget.transport_in_use is None
    body = {"type": "ready", "viewerId": widget.viewer_id, "viewerToken": widget.viewer_token}
    body |= {"n_cells": widget.n_cells, "dimensions": 2}
    request = Request(
        f"http://127.0.0.1:{widget.port}/_cellucid/events?eventId=p-1",
        data=_json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urlopen(request, timeout=10) as answer:
        assert answer.status == 200
    assert widget.transport_in_use == "http"
    assert widget._channel.delivered_via == {"http": 1}
    # the comm's copy of the same event is a duplicate and changes nothing
    widget._channel.deliver(body, event_id="p-1", via="comm")
    assert widget._channel.delivered_via == {"http": 1}
    assert widget._channel.duplicates == 1
