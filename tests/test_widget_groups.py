"""Highlight groups and user-defined fields on CellucidWidget (PROTOCOL.md 0.2.0):
``viewer.groups`` from the ``groups`` event (over HTTP and over the comm), ``to_obs``,
``add_field`` (validation and the binary command), ``highlight_cells(name=...)`` and the
``groups`` / ``user_fields`` event checks. The front end is played as in test_widget.py."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cellucid.annotation import (
    UNASSIGNED,
    categorical_from_groups,
    field_command,
    fill_group_cells,
    groups_by_name,
)
from cellucid.server.events import InvalidEventError, encode_cells, normalize_event
from cellucid.widget import CellucidWidget
from test_session_bundle import node_bundle
from test_widget import N, commands, fake_frontend, frontend, make_ready


@pytest.fixture(scope="module")
def adata():
    from _data import make_adata

    return make_adata(N, 6)


@pytest.fixture
def widget(adata):
    w = CellucidWidget(adata, port=0)
    yield w
    w.close()


def group(gid: str, name: str, cells: list[int], **extra: Any) -> dict[str, Any]:
    return {"id": gid, "name": name, "color": "#ff0000", "visible": True, "cells": cells, **extra}


# ------------------------------------------------------------------------------ groups event


def test_groups_event_updates_the_observable_groups_trait(widget: CellucidWidget) -> None:
    seen: list[dict[str, list[int]]] = []
    widget.observe(lambda c: seen.append({k: v.tolist() for k, v in c["new"].items()}), "groups")
    assert widget.groups == {}
    many = list(range(0, N, 2))  # 40 cells: still a JSON list; a big set is binary below
    big = encode_cells(np.arange(N // 2, N), N)
    widget._channel.deliver(
        {"type": "groups", "groups": [group("g1", "T cells", [3, 1]), group("g2", "B", big)]}
    )
    assert widget.wait_idle()
    assert list(widget.groups) == ["T cells", "B"]
    assert widget.groups["T cells"].tolist() == [1, 3]
    assert widget.groups["T cells"].dtype == np.uint32
    assert not widget.groups["B"].flags.writeable
    assert widget.groups["B"].tolist() == list(range(N // 2, N))
    # a rename is a change; the same groups again are not
    widget._channel.deliver({"type": "groups", "groups": [group("g1", "T", many)]})
    widget._channel.deliver({"type": "groups", "groups": [group("g1", "T", many)]})
    assert widget.wait_idle()
    assert seen == [{"T cells": [1, 3], "B": list(range(N // 2, N))}, {"T": many}]
    hooked: list[Any] = []
    widget.register_hook("groups", hooked.append)
    widget._channel.deliver({"type": "groups", "groups": []})
    assert widget.wait_idle()
    assert widget.groups == {} and hooked == [{"groups": []}]


def test_groups_relayed_over_the_comm_carry_their_cells_as_bytes(widget: CellucidWidget) -> None:
    a = np.array([2, 7, 9], dtype="<u4")
    b = np.zeros(-(-N // 8), dtype=np.uint8)
    b[0] = 0b1011  # cells 0, 1, 3
    event = {
        "type": "groups",
        "groups": [
            group("g1", "a", {"encoding": "u32-base64", "count": 3, "data": None}),
            group("g2", "b", {"encoding": "bitset-base64", "n": N, "count": 3, "data": None}),
        ],
    }
    payload = a.tobytes() + b.tobytes()
    message = {"kind": "event", "eventId": "p-1", "event": event, "group_bytes": [12, len(b)]}
    frontend(widget, {**message, "part": 0, "parts": 2}, [payload[:5]])
    frontend(widget, {**message, "part": 1, "parts": 2}, [payload[5:]])
    assert widget.wait_idle()
    assert {k: v.tolist() for k, v in widget.groups.items()} == {"a": [2, 7, 9], "b": [0, 1, 3]}


def test_fill_group_cells_refuses_lengths_that_do_not_match() -> None:
    event = {"groups": [group("g", "a", {"encoding": "u32-base64", "count": 1, "data": None})]}
    with pytest.raises(ValueError, match="group_bytes"):
        fill_group_cells(event, [4, 4], b"\x00" * 8)
    with pytest.raises(ValueError, match="group_bytes"):
        fill_group_cells(event, [4], b"\x00" * 5)
    with pytest.raises(ValueError, match="no binary cell set"):
        fill_group_cells({"groups": [group("g", "a", [1])]}, [0], b"")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "missing groups"),
        ({"groups": {}}, "must be a list"),
        ({"groups": [{"id": "g"}]}, "missing name, color, visible, cells"),
        ({"groups": [group("g", "a", [1], visible="yes")]}, "visible must be"),
        ({"groups": [group("g", 5, [1])]}, "name must be a string"),
        ({"groups": [group("g", "a", [-1])]}, r"groups\.groups\[0\]\.cells"),
    ],
)
def test_groups_event_checks(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidEventError, match=message):
        normalize_event({"type": "groups", **payload})


def test_user_fields_event_lets_color_by_name_the_field(widget: CellucidWidget) -> None:
    make_ready(widget)
    sent = fake_frontend(widget)
    with pytest.raises(ValueError, match="unknown field"):
        widget.color_by = "annotation"
    fields = [{"key": "annotation", "kind": "category", "categories": ["a", UNASSIGNED]}]
    widget._channel.deliver({"type": "user_fields", "fields": fields})
    assert widget.wait_idle()
    widget.color_by = "annotation"
    assert commands(sent)[-1][0] == {"type": "setColorBy", "field": "annotation"}
    with pytest.raises(InvalidEventError, match="kind must be"):
        normalize_event({"type": "user_fields", "fields": [{**fields[0], "kind": "text"}]})


def test_groups_by_name_suffixes_repeated_names() -> None:
    cells = np.array([1], dtype=np.uint32)
    payload = {"groups": [group("a", "x", cells), group("b", "x", cells), group("c", "x", cells)]}
    assert list(groups_by_name(payload)) == ["x", "x (2)", "x (3)"]


# ------------------------------------------------------------------------------ highlight name


def test_highlight_cells_with_and_without_a_name(widget: CellucidWidget) -> None:
    make_ready(widget)
    sent = fake_frontend(widget)
    widget.highlight_cells([4, 2], "#00ff00")
    widget.highlight_cells([1], "#00ff00", "my group")
    widget.highlight_cells([1], color="#00ff00", name="again")
    got = [(command, cells.tolist()) for command, cells in commands(sent)]
    assert got == [
        ({"type": "highlight", "color": "#00ff00"}, [2, 4]),
        ({"type": "highlight", "color": "#00ff00", "name": "my group"}, [1]),
        ({"type": "highlight", "color": "#00ff00", "name": "again"}, [1]),
    ]
    for bad in ("", "   ", 3, "x" * 257):
        with pytest.raises(ValueError, match="name"):
            widget.highlight_cells([1], "#00ff00", bad)


# ------------------------------------------------------------------------------ add_field


def test_add_field_sends_category_codes_as_bytes(widget: CellucidWidget, adata) -> None:
    make_ready(widget)
    sent = fake_frontend(widget)
    labels = pd.Categorical(np.where(np.arange(N) % 3 == 0, "x", "y"), categories=["y", "x"])
    labels[5] = np.nan
    widget.add_field("py_labels", labels)
    (head, _), *_ = [m for m in sent if m[0].get("kind") == "command"]
    assert head["values_dtype"] == "uint8" and "cells_bytes" not in head
    ((command, _),) = commands(sent)
    assert command == {
        "type": "addField",
        "name": "py_labels",
        "kind": "category",
        "categories": ["y", "x"],
    }
    data = b"".join(b[0] for m, b in sent if m.get("kind") == "command")
    codes = np.frombuffer(data, dtype=np.uint8)
    assert codes[5] == 255, "a missing value is the largest code"
    assert codes[0] == 1 and codes[1] == 0 and len(codes) == N
    widget.color_by = "py_labels"  # known to Python at once
    assert commands(sent)[-1][0] == {"type": "setColorBy", "field": "py_labels"}


def test_add_field_sends_numbers_as_float32_and_aligns_series(
    widget: CellucidWidget, adata
) -> None:
    make_ready(widget)
    sent = fake_frontend(widget)
    values = pd.Series(np.arange(N, dtype=np.float64), index=adata.obs_names)[::-1]  # reversed
    widget.add_field("py_score", values)
    head = next(m for m, _ in sent if m.get("kind") == "command")
    assert head["values_dtype"] == "float32"
    assert head["command"]["kind"] == "continuous" and head["command"]["categories"] is None
    data = b"".join(b[0] for m, b in sent if m.get("kind") == "command")
    assert np.frombuffer(data, dtype="<f4").tolist() == list(range(N)), "put in obs order"


@pytest.mark.parametrize(
    ("name", "values", "error", "message"),
    [
        ("f", np.zeros(N - 1), ValueError, f"{N - 1} entries, but the dataset has {N} cells"),
        ("f", np.zeros((N, 2)), TypeError, "categorical .* or numeric"),
        ("f", np.zeros(N, dtype="datetime64[ns]"), TypeError, "or numeric"),
        ("", np.zeros(N), ValueError, "non-empty string"),
        ("cluster", np.zeros(N), ValueError, "already an obs key"),
        ("f", pd.Series(np.zeros(N), index=[f"x{i}" for i in range(N)]), ValueError, "obs_names"),
        ("f", pd.Categorical([np.nan] * N, categories=[]), ValueError, "no category"),
    ],
)
def test_add_field_errors_name_the_fix(
    widget: CellucidWidget, name: str, values: Any, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        widget.add_field(name, values)


def test_field_command_kinds() -> None:
    names = lambda: pd.RangeIndex(4)  # noqa: E731
    command, codes = field_command("b", np.array([True, False, True, True]), 4, names)
    assert command["categories"] == ["False", "True"] and codes.tolist() == [1, 0, 1, 1]
    command, codes = field_command("s", ["a", None, "b", "a"], 4, names)
    assert command["categories"] == ["a", "b"] and codes.tolist() == [0, 255, 1, 0]
    many = [f"c{i}" for i in range(300)]
    command, codes = field_command("w", pd.Categorical(many[:4], categories=many), 4, names)
    assert codes.dtype == np.uint16 and codes.tolist() == [0, 1, 2, 3]
    command, values = field_command("n", pd.array([1, None, 3, 4], dtype="Int64"), 4, names)
    assert command["kind"] == "continuous" and np.isnan(values[1]) and values.dtype == np.float32


# ------------------------------------------------------------------------------ to_obs


def test_to_obs_of_the_groups(widget: CellucidWidget, adata) -> None:
    widget._channel.deliver(
        {"type": "groups", "groups": [group("g1", "T", [0, 2]), group("g2", "B", [2, 3])]}
    )
    assert widget.wait_idle()
    column = widget.to_obs()
    assert column.index.equals(adata.obs_names)
    assert list(column.cat.categories) == ["T", "B", UNASSIGNED]
    assert column.iloc[:5].tolist() == ["T", "unassigned", "T", "B", "unassigned"]
    adata2 = adata.copy()
    adata2.obs["groups"] = column  # ready for adata.obs
    assert adata2.obs["groups"].iloc[2] == "T"


def test_categorical_from_groups_refuses_a_group_called_unassigned() -> None:
    with pytest.raises(ValueError, match="rename it"):
        categorical_from_groups({UNASSIGNED: np.array([0], np.uint32)}, 2, pd.RangeIndex(2), "x")


def test_to_obs_of_a_user_field_reads_the_session(
    widget: CellucidWidget, adata, tmp_path: Path
) -> None:
    make_ready(widget)
    codes = [i % 3 for i in range(N)]
    session = {
        "datasetFingerprint": {"sourceType": "cellucid-export", "datasetId": "x", "cellCount": N},
        "userDefinedFields": [
            {
                "id": "user-1",
                "key": "annotation",
                "kind": "category",
                "categories": ["T", "B", UNASSIGNED],
                "source": "obs",
                "codes": codes,
            }
        ],
    }
    body = node_bundle(tmp_path / "s.cellucid-session", session).read_bytes()

    def reply(command: dict[str, Any]) -> None:
        if command["type"] == "requestSessionBundle":
            path = (
                f"_cellucid/session_bundle?viewerId={widget.viewer_id}"
                f"&viewerToken={widget.viewer_token}&requestId={command['requestId']}"
            )
            threading.Timer(0.02, widget._files.answer, ["POST", path, {}, body]).start()

    fake_frontend(widget, reply)
    widget._views["v"] = {"since": 0}  # displayed
    column = widget.to_obs("annotation", timeout=10)
    assert column.name == "annotation" and column.index.equals(adata.obs_names)
    assert column.tolist()[:4] == ["T", "B", "unassigned", "T"]
    with pytest.raises(KeyError, match="it has: 'annotation'"):
        widget.to_obs("nope", timeout=10)


def test_to_obs_of_an_export_is_indexed_by_position(adata, tmp_path: Path) -> None:
    import cellucid

    export = cellucid.prepare(adata, tmp_path / "export", quiet=True)
    w = CellucidWidget(export, port=0)
    try:
        w._channel.deliver({"type": "groups", "groups": [group("g1", "T", [1])]})
        assert w.wait_idle()
        column = w.to_obs()
        assert isinstance(column.index, pd.RangeIndex) and len(column) == N
        assert column.iloc[:2].tolist() == ["unassigned", "T"]
    finally:
        w.close()
