"""The viewer event bridge: recording, hooks, waiting, routing and cell encodings
(SPEC §3.5, §3.6, §4.3, §4.4, §6.6)."""

from __future__ import annotations

import base64
import doctest
import json
import logging
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from cellucid.server import cellsets, event_schema, events, registry
from cellucid.server import channel as channel_module
from cellucid.server.events import (
    MAX_EVENT_BYTES,
    RING_SIZE,
    InvalidEventError,
    PendingRequests,
    ViewerChannel,
    ViewerRegistry,
    ViewerState,
    decode_cells,
    encode_cells,
    new_viewer_id,
    new_viewer_token,
    validate_event_payload,
)

READY = {"type": "ready", "n_cells": 100, "dimensions": 3}
SELECTION = {"type": "selection", "cells": [4, 2, 9], "source": "lasso"}
HOVER = {"type": "hover", "cell": 5, "position": {"x": 0.5, "y": -1, "z": 0}}
CLICK = {"type": "click", "cell": 7, "button": 2, "shift": True, "ctrl": False}


@pytest.fixture
def make_channel() -> Iterator[Callable[..., ViewerChannel]]:
    """Channels that are closed after the test whatever happens."""
    made: list[ViewerChannel] = []

    def make(*args: Any, **kwargs: Any) -> ViewerChannel:
        channel = ViewerChannel(*args, **kwargs)
        made.append(channel)
        return channel

    yield make
    for channel in made:
        channel.close()


@pytest.fixture
def channel(make_channel: Callable[..., ViewerChannel]) -> ViewerChannel:
    return make_channel(name="test")


def later(delay: float, function: Callable[..., Any], *args: Any) -> threading.Thread:
    """Run ``function(*args)`` on another thread after ``delay`` seconds."""
    thread = threading.Timer(delay, function, args)
    thread.start()
    return thread


@pytest.mark.parametrize("module", [events, cellsets, event_schema, channel_module, registry])
def test_module_examples_run(module: types.ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_examples_cover_the_bridge() -> None:
    modules = (events, cellsets, event_schema, channel_module, registry)
    attempted = sum(doctest.testmod(m, optionflags=doctest.ELLIPSIS).attempted for m in modules)
    assert attempted > 20


def test_identifiers() -> None:
    assert MAX_EVENT_BYTES == 256 * 1024 * 1024
    ids = {new_viewer_id() for _ in range(50)}
    tokens = {new_viewer_token() for _ in range(50)}
    assert len(ids) == len(tokens) == 50
    assert all(len(i) == 16 and int(i, 16) >= 0 and i == i.lower() for i in ids)
    assert all(len(t) == 32 and int(t, 16) >= 0 and t == t.lower() for t in tokens)
    channel = ViewerChannel()
    assert len(channel.viewer_id) == 16 and len(channel.token) == 32
    assert channel.token not in repr(channel)


@pytest.mark.parametrize("bad", ["", "has space", "a&b", 7])
def test_channel_rejects_unsafe_credentials(bad: object) -> None:
    with pytest.raises(ValueError):
        ViewerChannel(viewer_id=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ViewerChannel(token=bad)  # type: ignore[arg-type]


# ---- state and ring buffer ---------------------------------------------------------


def test_state_tracks_latest_event_of_each_type(channel: ViewerChannel) -> None:
    assert channel.state == ViewerState()
    before = time.monotonic()
    for event in (READY, SELECTION, HOVER, CLICK):
        assert channel.deliver(event) is True
        assert channel.state.last_event_type == event["type"]
    state = channel.state
    assert state.ready == {"n_cells": 100, "dimensions": 3}
    assert state.hover == {"cell": 5, "position": {"x": 0.5, "y": -1, "z": 0}}
    assert state.click == {"cell": 7, "button": 2, "shift": True, "ctrl": False}
    assert state.selection is not None and state.selection["source"] == "lasso"
    cells = state.selection["cells"]
    assert isinstance(cells, np.ndarray) and cells.dtype == np.uint32
    assert cells.tolist() == [4, 2, 9] and not cells.flags.writeable
    assert state.last_event == state.click
    assert state.last_updated_at is not None and before <= state.last_updated_at <= time.monotonic()

    # A custom event moves only the last_* fields; a second hover replaces the first.
    channel.deliver({"type": "my_event", "x": [1, {"y": 2}]})
    channel.deliver({"type": "hover", "cell": None, "position": None})
    channel.deliver({"type": "my_event", "x": 3})
    state = channel.state
    assert state.hover == {"cell": None, "position": None}
    assert state.last_event_type == "my_event" and state.last_event == {"x": 3}
    assert state.click == {"cell": 7, "button": 2, "shift": True, "ctrl": False}


def test_state_is_a_snapshot(channel: ViewerChannel) -> None:
    source: dict[str, Any] = {"type": "hover", "cell": 1, "position": {"x": 1, "y": 2, "z": 3}}
    channel.deliver(source)
    source["position"]["x"] = 99  # the caller's object was copied
    snapshot = channel.state
    snapshot.hover["position"]["x"] = -1  # type: ignore[index]
    snapshot.hover = None
    assert channel.state.hover == {"cell": 1, "position": {"x": 1, "y": 2, "z": 3}}


def test_credentials_are_never_recorded(channel: ViewerChannel) -> None:
    channel.deliver({**CLICK, "viewerId": channel.viewer_id, "viewerToken": channel.token})
    assert channel.state.click == {"cell": 7, "button": 2, "shift": True, "ctrl": False}
    assert channel.token not in json.dumps(channel.recent_events())


def test_ring_buffer_keeps_the_last_512_in_order(channel: ViewerChannel) -> None:
    assert RING_SIZE == 512
    for i in range(RING_SIZE + 88):
        channel.deliver({"type": "tick", "i": i})
    recent = channel.recent_events()
    assert len(recent) == RING_SIZE
    assert [event["i"] for event in recent] == list(range(88, RING_SIZE + 88))
    assert all(set(event) == {"type", "i", "received_at"} for event in recent)
    times = [event["received_at"] for event in recent]
    assert times == sorted(times)
    recent[0]["i"] = -1
    assert channel.recent_events()[0]["i"] == 88


def test_invalid_event_is_not_recorded(channel: ViewerChannel) -> None:
    with pytest.raises(InvalidEventError, match=r"selection\.cells"):
        channel.deliver({"type": "selection", "cells": [1, 1], "source": "lasso"})
    with pytest.raises(InvalidEventError, match="type"):
        channel.deliver({"cells": []})
    assert channel.state == ViewerState() and channel.recent_events() == []


# ---- hooks ----------------------------------------------------------------------------


def test_hooks_run_in_order_message_hooks_first(channel: ViewerChannel) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    @channel.on_selection
    def first(event: dict[str, Any]) -> None:
        calls.append(("first", dict(event)))
        event["source"] = "mutated"  # must not leak into the next callback

    def second(event: dict[str, Any]) -> None:
        calls.append(("second", dict(event)))

    assert channel.on_selection(second) is second
    channel.register_hook("message", lambda event: calls.append(("message", dict(event))))
    channel.on_message(lambda event: calls.append(("message2", dict(event))))
    channel.on_click(lambda event: calls.append(("click", dict(event))))

    channel.deliver(SELECTION)
    channel.deliver(CLICK)
    channel.deliver({"type": "custom", "event": "not the type", "n": 1})
    assert channel.wait_idle()

    names = [name for name, _ in calls]
    assert names == [
        *("message", "message2", "first", "second"),
        *("message", "message2", "click"),
        *("message", "message2"),
    ]
    assert calls[0][1]["event"] == "selection" and calls[0][1]["source"] == "lasso"
    assert calls[3][1]["source"] == "lasso"
    assert calls[3][1]["cells"].tolist() == [4, 2, 9]
    assert calls[6][1] == {"cell": 7, "button": 2, "shift": True, "ctrl": False}
    assert calls[7][1] == {"event": "custom", "n": 1}  # "event" is always the type


def test_register_unregister_and_clear(channel: ViewerChannel) -> None:
    calls: list[str] = []

    def hook(event: dict[str, Any]) -> None:
        calls.append("hook")

    channel.register_hook("ready", hook)
    channel.register_hook("ready", hook)
    assert channel.unregister_hook("ready", hook) is True
    channel.deliver(READY)
    assert channel.wait_idle() and calls == ["hook"]
    assert channel.unregister_hook("ready", hook) is True
    assert channel.unregister_hook("ready", hook) is False
    assert channel.unregister_hook("never", hook) is False

    channel.on_hover(hook)
    channel.on_click(hook)
    channel.clear_hooks("hover")
    channel.deliver(HOVER)
    channel.deliver(CLICK)
    assert channel.wait_idle() and calls == ["hook", "hook"]
    channel.clear_hooks()
    channel.deliver(CLICK)
    assert channel.wait_idle() and calls == ["hook", "hook"]

    with pytest.raises(TypeError):
        channel.register_hook("ready", "not callable")  # type: ignore[type-var]
    with pytest.raises(TypeError):
        channel.register_hook("", hook)


def test_hook_exceptions_are_logged_and_swallowed(
    channel: ViewerChannel, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def broken(event: dict[str, Any]) -> None:
        raise ValueError("boom in hook")

    channel.on_click(broken)
    channel.on_click(lambda event: calls.append(event["cell"]))
    with caplog.at_level(logging.ERROR, logger="cellucid.events"):
        channel.deliver(CLICK)
        channel.deliver({**CLICK, "cell": 8})
        assert channel.wait_idle()
    assert calls == [7, 8]
    records = [r for r in caplog.records if r.name == "cellucid.events"]
    assert len(records) == 2
    assert records[0].exc_info is not None and "boom in hook" in caplog.text
    assert channel.viewer_id in records[0].getMessage()


def test_slow_hook_does_not_block_deliver(channel: ViewerChannel) -> None:
    release = threading.Event()
    started = threading.Event()

    @channel.on_ready
    def slow(event: dict[str, Any]) -> None:
        started.set()
        release.wait(5)

    try:
        channel.deliver(READY)
        assert started.wait(2)
        t0 = time.monotonic()
        for i in range(20):
            assert channel.deliver({**SELECTION, "cells": [i]})
        assert time.monotonic() - t0 < 0.2
        # Recorded (and visible to waiters) although the hook still blocks the dispatcher.
        assert channel.state.selection["cells"].tolist() == [19]  # type: ignore[index]
        assert not channel.wait_idle(timeout=0.05)
    finally:
        release.set()
    assert channel.wait_idle()


def test_wait_inside_a_hook_does_not_deadlock(channel: ViewerChannel) -> None:
    result: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    @channel.on_ready
    def wait_for_selection(event: dict[str, Any]) -> None:
        try:
            result.append(channel.wait_for_event("selection", timeout=5))
        except BaseException as error:
            errors.append(error)
        finally:
            done.set()

    def keep_selecting() -> None:
        i = 0
        while not done.is_set():
            channel.deliver({**SELECTION, "cells": [i]})
            i += 1
            time.sleep(0.02)

    channel.deliver(READY)
    feeder = threading.Thread(target=keep_selecting)
    feeder.start()
    assert done.wait(5)
    feeder.join(5)
    assert not errors
    assert len(result) == 1 and result[0]["source"] == "lasso"


# ---- waiting -----------------------------------------------------------------------


def test_wait_sees_only_events_recorded_after_the_call(channel: ViewerChannel) -> None:
    channel.deliver(SELECTION)
    with pytest.raises(TimeoutError, match="selection"):
        channel.wait_for_event("selection", timeout=0.05)
    later(0.05, channel.deliver, {**SELECTION, "source": "knn"})
    event = channel.wait_for_event("selection", timeout=5)
    assert event["source"] == "knn" and "type" not in event
    assert event["cells"].tolist() == [4, 2, 9]


def test_wait_with_predicate(channel: ViewerChannel) -> None:
    def replies() -> None:
        for request_id in ("r1", "r2", "r3"):
            channel.deliver({"type": "pong", "requestId": request_id, "t": 1})

    later(0.05, replies)
    seen: list[str] = []

    def is_r2(event: dict[str, Any]) -> bool:
        seen.append(event["requestId"])
        return event["requestId"] == "r2"

    assert channel.wait_for_event("pong", timeout=5, predicate=is_r2) == {
        "requestId": "r2",
        "t": 1,
    }
    assert seen == ["r1", "r2"]


def test_wait_predicate_errors_propagate(channel: ViewerChannel) -> None:
    later(0.02, channel.deliver, {"type": "pong", "requestId": "x"})

    def broken(event: dict[str, Any]) -> bool:
        raise KeyError("predicate")

    with pytest.raises(KeyError):
        channel.wait_for_event("pong", timeout=5, predicate=broken)


def test_wait_timeout(channel: ViewerChannel) -> None:
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        channel.wait_for_event("click", timeout=0.1)
    assert 0.09 <= time.monotonic() - t0 < 2
    with pytest.raises(TimeoutError):
        channel.wait_for_event("click", timeout=0)
    for bad in (-1, float("nan")):
        with pytest.raises(ValueError):
            channel.wait_for_event("click", timeout=bad)
    with pytest.raises(TypeError):
        channel.wait_for_event("click", timeout="1")  # type: ignore[arg-type]


def test_wait_forever_with_a_delayed_deliver(channel: ViewerChannel) -> None:
    later(0.2, channel.deliver, CLICK)
    assert channel.wait_for_event("click", timeout=None)["cell"] == 7


def test_wait_for_ready(channel: ViewerChannel) -> None:
    later(0.05, channel.deliver, READY)
    assert channel.wait_for_ready(timeout=5) == {"n_cells": 100, "dimensions": 3}
    # Already ready: returned at once, even with a zero timeout.
    assert channel.wait_for_ready(timeout=0) == {"n_cells": 100, "dimensions": 3}


# ---- close --------------------------------------------------------------------------


def new_threads(baseline: set[threading.Thread]) -> list[str]:
    """Live threads started since ``baseline`` (timers of earlier tests may end meanwhile)."""
    return sorted(t.name for t in threading.enumerate() if t not in baseline)


def test_close_wakes_waiters_and_stops_the_thread() -> None:
    baseline = set(threading.enumerate())
    channel = ViewerChannel()
    assert new_threads(baseline) == []  # the dispatcher starts lazily
    calls: list[str] = []
    channel.on_click(lambda event: calls.append("click"))
    channel.deliver(CLICK)
    assert channel.wait_idle()
    assert new_threads(baseline) == [f"cellucid-events-{channel.viewer_id}"]

    outcomes: list[BaseException] = []

    def wait(function: Callable[[], Any]) -> None:
        try:
            function()
        except BaseException as error:
            outcomes.append(error)

    waiters = [
        threading.Thread(target=wait, args=(lambda: channel.wait_for_event("selection", None),)),
        threading.Thread(target=wait, args=(lambda: channel.wait_for_ready(timeout=30),)),
    ]
    for thread in waiters:
        thread.start()
    time.sleep(0.05)
    channel.close()
    for thread in waiters:
        thread.join(2)
    assert [type(error) for error in outcomes] == [RuntimeError, RuntimeError]
    assert "closed" in str(outcomes[0])
    assert new_threads(baseline) == []
    assert threading.active_count() <= len(baseline)

    assert channel.closed
    channel.close()  # idempotent
    assert channel.deliver(CLICK) is False
    assert channel.state.click == {"cell": 7, "button": 2, "shift": True, "ctrl": False}
    with pytest.raises(RuntimeError):
        channel.wait_for_event("click", timeout=1)
    assert calls == ["click"]
    assert channel._hooks == {}


def test_close_from_inside_a_hook(make_channel: Callable[..., ViewerChannel]) -> None:
    baseline = set(threading.enumerate())
    channel = make_channel()
    closed = threading.Event()
    later_calls: list[str] = []

    @channel.on_message
    def stop(event: dict[str, Any]) -> None:
        channel.close()
        closed.set()

    channel.on_click(lambda event: later_calls.append("not run: the channel closed"))
    channel.deliver(CLICK)
    assert closed.wait(2)
    deadline = time.monotonic() + 2
    while new_threads(baseline) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert new_threads(baseline) == []
    assert later_calls == []


# ---- registry ----------------------------------------------------------------------


def post(registry: ViewerRegistry, body: object) -> tuple[int, dict[str, Any]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
    return registry.handle_event_body(raw)


def test_registry_routes_only_to_the_owner(make_channel: Callable[..., ViewerChannel]) -> None:
    registry = ViewerRegistry()
    a, b = make_channel(name="a"), make_channel(name="b")
    registry.add(a)
    registry.add(b)
    registry.add(a)  # re-adding the same channel is harmless
    assert len(registry) == 2 and a.viewer_id in registry
    assert registry.get(b.viewer_id) is b and registry.get("nope") is None

    ok = (200, {"status": "ok", "delivered": True})
    assert post(registry, {**CLICK, "viewerId": a.viewer_id, "viewerToken": a.token}) == ok
    assert post(registry, {**READY, "viewerId": b.viewer_id, "viewerToken": b.token}) == ok
    assert a.state.click is not None and a.state.ready is None
    assert b.state.ready is not None and b.state.click is None
    # a's token does not open b.
    status, _ = post(registry, {**CLICK, "viewerId": b.viewer_id, "viewerToken": a.token})
    assert status == 403 and b.state.click is None

    with pytest.raises(ValueError, match="already"):
        registry.add(ViewerChannel(a.viewer_id))
    assert registry.remove(a.viewer_id) is a and registry.remove(a.viewer_id) is None
    status, _ = post(registry, {**CLICK, "viewerId": a.viewer_id, "viewerToken": a.token})
    assert status == 404 and len(registry) == 1


def test_handle_event_body_success(make_channel: Callable[..., ViewerChannel]) -> None:
    registry = ViewerRegistry()
    channel = make_channel("v1", "tok")
    registry.add(channel)
    cells = encode_cells([3, 1, 2], 1000)
    status, body = post(
        registry,
        {
            "type": "selection",
            "viewerId": "v1",
            "viewerToken": "tok",
            "cells": cells,
            "source": "x",
        },
    )
    assert (status, body) == (200, {"status": "ok", "delivered": True})
    assert json.dumps(body, separators=(",", ":")) == '{"status":"ok","delivered":true}'
    selection = channel.state.selection
    assert selection is not None and set(selection) == {"cells", "source"}
    assert selection["cells"].tolist() == [3, 1, 2] and selection["source"] == "x"
    # Unknown event types and extra keys are accepted as they are.
    status, _ = post(
        registry,
        {"type": "console", "viewerId": "v1", "viewerToken": "tok", "level": "warn", "x": None},
    )
    assert status == 200 and channel.state.last_event == {"level": "warn", "x": None}


SECRET = "s3cr3t-token"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"\xff\xfe{}", 400, "UTF-8"),
        (b'{"type": "ready"', 400, "JSON"),
        (b"", 400, "JSON"),
        (
            b'{"type":"x","viewerId":"v1","viewerToken":"' + SECRET.encode() + b'","v":NaN}',
            400,
            "JSON",
        ),
        (b"[1, 2]", 400, "object"),
        ({"viewerId": "v1", "viewerToken": SECRET}, 400, "'type'"),
        ({"type": 3, "viewerId": "v1", "viewerToken": SECRET}, 400, "'type'"),
        ({"type": "", "viewerId": "v1", "viewerToken": SECRET}, 400, "'type'"),
        ({"type": "x", "viewerToken": SECRET}, 400, "'viewerId'"),
        ({"type": "x", "viewerId": 1, "viewerToken": SECRET}, 400, "'viewerId'"),
        ({"type": "x", "viewerId": "v1"}, 400, "'viewerToken'"),
        ({"type": "x", "viewerId": "v1", "viewerToken": None}, 400, "'viewerToken'"),
        (
            {
                "type": "selection",
                "viewerId": "v1",
                "viewerToken": SECRET,
                "cells": ["a"],
                "source": "x",
            },
            400,
            "selection.cells",
        ),
        (
            {"type": "ready", "viewerId": "v1", "viewerToken": SECRET, "n_cells": 5},
            400,
            "dimensions",
        ),
        (
            {"type": "session_bundle", "viewerId": "v1", "viewerToken": SECRET, "requestId": "r"},
            400,
            "server",
        ),
        ({"type": "x", "viewerId": "v2", "viewerToken": SECRET}, 404, "viewerId"),
        ({"type": "x", "viewerId": "v1", "viewerToken": SECRET + "x"}, 403, "viewerToken"),
        ({"type": "x", "viewerId": "v1", "viewerToken": ""}, 403, "viewerToken"),
    ],
)
def test_handle_event_body_errors(
    make_channel: Callable[..., ViewerChannel], body: object, status: int, message: str
) -> None:
    registry = ViewerRegistry()
    channel = make_channel("v1", SECRET)
    registry.add(channel)
    got_status, got_body = post(registry, body)
    assert got_status == status
    assert set(got_body) == {"status", "message"} and got_body["status"] == "error"
    assert message in got_body["message"]
    assert SECRET not in got_body["message"]
    assert channel.recent_events() == []


def test_closed_but_registered_viewer_is_404(make_channel: Callable[..., ViewerChannel]) -> None:
    registry = ViewerRegistry()
    channel = make_channel("v1", "tok")
    registry.add(channel)
    channel.close()
    assert post(registry, {**CLICK, "viewerId": "v1", "viewerToken": "tok"})[0] == 404
    with pytest.raises(ValueError, match="closed"):
        registry.add(channel)


def test_deliver_server_event(make_channel: Callable[..., ViewerChannel]) -> None:
    registry = ViewerRegistry()
    channel = make_channel()
    registry.add(channel)
    event = {"type": "session_bundle", "requestId": "r1", "status": "ok", "bytes": 10, "path": "/t"}
    later(0.05, registry.deliver_server_event, channel.viewer_id, event)
    got = channel.wait_for_event("session_bundle", 5, predicate=lambda e: e["requestId"] == "r1")
    assert got == {"requestId": "r1", "status": "ok", "bytes": 10, "path": "/t"}
    assert registry.deliver_server_event("unknown", event) is False
    with pytest.raises(InvalidEventError):
        registry.deliver_server_event(channel.viewer_id, {"type": "session_bundle", "status": "?"})


def test_check_token(make_channel: Callable[..., ViewerChannel]) -> None:
    channel = make_channel(token="abc")
    assert channel.check_token("abc")
    for wrong in ("abd", "ab", "abcd", "", None, b"abc", 123, ["abc"]):
        assert channel.check_token(wrong) is False


# ---- pending requests --------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_pending_requests_are_single_use_with_ttl() -> None:
    clock = FakeClock()
    pending = PendingRequests(clock=clock)
    pending.register("v1", "r1", ttl=10)
    pending.register("v1", "r2", ttl=10)
    pending.register("v2", "r1", ttl=30)
    assert len(pending) == 3
    assert pending.consume("v1", "r1") is True
    assert pending.consume("v1", "r1") is False  # single use
    assert pending.consume("v9", "r2") is False  # bound to its viewer
    clock.now += 10  # r2 of v1 expires exactly at its TTL
    assert pending.consume("v1", "r2") is False
    assert len(pending) == 1  # purged lazily
    pending.register("v2", "r1", ttl=50)  # renewal
    clock.now += 45
    assert pending.cancel("v2", "r1") is True and len(pending) == 0

    pending.register("v3", "a", ttl=1)
    pending.register("v3", "b", ttl=1)
    assert pending.discard_viewer("v3") == 2 and len(pending) == 0
    for ttl in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError):
            pending.register("v", "r", ttl=ttl)
    with pytest.raises(TypeError):
        pending.register("v", "r", ttl="1")  # type: ignore[arg-type]


def test_removing_a_viewer_drops_its_pending_requests(
    make_channel: Callable[..., ViewerChannel],
) -> None:
    registry = ViewerRegistry()
    channel = make_channel()
    registry.add(channel)
    registry.pending.register(channel.viewer_id, "r", ttl=60)
    registry.remove(channel.viewer_id)
    assert registry.pending.consume(channel.viewer_id, "r") is False


# ---- payload validation ------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "payload", "error"),
    [
        ("ready", {"n_cells": 0, "dimensions": 1}, None),
        ("ready", {"n_cells": 10, "dimensions": 2, "extra": "older viewers"}, None),
        ("ready", {"n_cells": -1, "dimensions": 2}, "n_cells"),
        ("ready", {"n_cells": 1.5, "dimensions": 2}, "n_cells"),
        ("ready", {"n_cells": 10, "dimensions": True}, "dimensions"),
        ("ready", {"dimensions": 2}, "missing n_cells"),
        ("selection", {"cells": [], "source": "anything at all"}, None),
        ("selection", {"cells": [0, 5], "source": "range"}, None),
        ("selection", {"cells": [0, 5]}, "missing source"),
        ("selection", {"cells": [0, 5], "source": None}, "source"),
        ("selection", {"cells": "0,5", "source": "lasso"}, "selection.cells"),
        ("selection", {"cells": [1, 1], "source": "lasso"}, "duplicate"),
        ("hover", {"cell": None, "position": None}, None),
        ("hover", {"cell": 3, "position": {"x": 1, "y": 2.5, "z": 0}}, None),
        ("hover", {"cell": -3, "position": None}, "hover.cell"),
        ("hover", {"cell": 3, "position": {"x": 1, "y": 2}}, "position"),
        ("hover", {"cell": 3, "position": {"x": 1, "y": 2, "z": float("inf")}}, "position"),
        ("hover", {"cell": 3, "position": [1, 2, 3]}, "position"),
        ("click", {"cell": 0, "button": 1, "shift": False, "ctrl": True}, None),
        ("click", {"cell": None, "button": 0, "shift": False, "ctrl": False}, "click.cell"),
        ("click", {"cell": 0, "button": 3, "shift": False, "ctrl": False}, "button"),
        ("click", {"cell": 0, "button": 0, "shift": 0, "ctrl": False}, "shift"),
        ("click", {"cell": 0, "button": 0, "shift": False}, "missing ctrl"),
        ("pong", {"requestId": "r", "t": 1}, None),
        ("pong", {"t": 1}, "requestId"),
        ("debug_snapshot", {"requestId": 5}, "requestId"),
        ("command_error", {"command": "highlight", "reason": "empty"}, None),
        ("command_error", {"command": "highlight"}, "reason"),
        ("session_bundle", {"requestId": "r", "status": "error", "error": "x"}, None),
        ("session_bundle", {"requestId": "r", "status": "ok", "bytes": 3}, "path"),
        ("session_bundle", {"requestId": "r", "status": "maybe"}, "status"),
        ("my_custom", {"anything": [1, {"nested": None}]}, None),
        ("console", {"level": "warn", "message": "x", "ts": "now"}, None),
    ],
)
def test_validate_event_payload(
    event_type: str, payload: dict[str, Any], error: str | None
) -> None:
    before = json.dumps(payload)
    got = validate_event_payload(event_type, payload)
    if error is None:
        assert got is None
    else:
        assert got is not None and error in got
    assert json.dumps(payload) == before  # not modified


# ---- cell encodings ----------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def test_encode_picks_the_smaller_form_and_round_trips() -> None:
    few = [7, 0, 123]
    encoded = encode_cells(few, 10_000)
    assert encoded == {
        "encoding": "u32-base64",
        "count": 3,
        "data": b64(np.array(few, "<u4").tobytes()),
    }
    assert decode_cells(encoded).tolist() == few  # order kept

    many = list(range(1, 10_000, 3))
    encoded = encode_cells(np.array(many[::-1]), 10_000)
    assert encoded["encoding"] == "bitset-base64"
    assert set(encoded) == {"encoding", "n", "count", "data"}
    assert encoded["n"] == 10_000 and encoded["count"] == len(many)
    assert len(base64.b64decode(encoded["data"])) == 1250
    assert decode_cells(encoded).tolist() == many  # sorted

    raw = encode_cells(many, 10_000, raw=True)
    assert isinstance(raw["data"], bytes) and decode_cells(raw).tolist() == many
    for n in (0, 1, 7, 8, 9):
        assert decode_cells(encode_cells([], n)).tolist() == []
        everything = list(range(n))
        assert decode_cells(encode_cells(everything, n)).tolist() == everything


def test_bitset_bit_order() -> None:
    # Cells 0 and 9 of 10: byte 0 = 0b00000001, byte 1 = 0b00000010.
    value = {"encoding": "bitset-base64", "n": 10, "count": 2, "data": b64(bytes([1, 2]))}
    assert decode_cells(value).tolist() == [0, 9]
    assert encode_cells([9, 0], 10) == {**value, "data": "AQI="}


def test_decode_a_million_cells() -> None:
    n = 3_000_000
    cells = np.sort(np.random.default_rng(0).choice(n, 1_000_000, replace=False))
    bits = np.zeros(n, dtype=bool)
    bits[cells] = True
    bitset = {
        "encoding": "bitset-base64",
        "n": n,
        "count": cells.size,
        "data": b64(np.packbits(bits, bitorder="little").tobytes()),
    }
    decoded = decode_cells(bitset)
    assert decoded.dtype == np.uint32 and np.array_equal(decoded, cells)
    shuffled = np.random.default_rng(1).permutation(cells)
    u32 = {
        "encoding": "u32-base64",
        "count": cells.size,
        "data": b64(shuffled.astype("<u4").tobytes()),
    }
    assert np.array_equal(decode_cells(u32), shuffled)
    assert np.array_equal(decode_cells(shuffled.tolist()), shuffled)
    assert encode_cells(cells, n)["encoding"] == "bitset-base64"


def test_selection_arrives_as_a_read_only_array(channel: ViewerChannel) -> None:
    encoded = encode_cells(range(0, 5000, 2), 5000)
    channel.deliver({"type": "selection", "cells": encoded, "source": "lasso"})
    cells = channel.state.selection["cells"]  # type: ignore[index]
    assert cells.dtype == np.uint32 and cells.tolist() == list(range(0, 5000, 2))
    with pytest.raises(ValueError):
        cells[0] = 1


U32_OK = {"encoding": "u32-base64", "count": 2, "data": b64(np.array([1, 2], "<u4").tobytes())}
BITSET_OK = {"encoding": "bitset-base64", "n": 10, "count": 2, "data": b64(bytes([6, 0]))}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({**U32_OK, "data": "not base64!"}, "base64"),
        ({**U32_OK, "data": "AQAAAAIAAAA"}, "base64"),  # missing padding
        ({**U32_OK, "data": 12}, "base64"),
        ({**U32_OK, "count": 3}, "bytes"),
        ({**U32_OK, "count": 1}, "bytes"),  # trailing bytes
        ({**U32_OK, "count": -1}, "count"),
        ({**U32_OK, "count": True}, "count"),
        ({**U32_OK, "data": b64(np.array([4, 4], "<u4").tobytes())}, "duplicate"),
        ({**U32_OK, "n": 10}, "exactly the keys"),
        ({"encoding": "u32-base64", "count": 0}, "exactly the keys"),
        ({**U32_OK, "encoding": "u16-base64"}, "encoding"),
        ({**BITSET_OK, "count": 3}, "count"),
        ({**BITSET_OK, "data": b64(bytes([6, 4]))}, "beyond n"),  # cell 10 of n=10
        ({**BITSET_OK, "data": b64(bytes([6]))}, "bytes"),
        ({**BITSET_OK, "data": b64(bytes([6, 0, 0]))}, "bytes"),  # trailing bytes
        ({**BITSET_OK, "n": -1}, "cells.n"),
        ({**BITSET_OK, "n": 2**32 + 1}, "cells.n"),
        ([1, 2, 2], "duplicate"),
        ([1, -2], "non-negative"),
        ([1, 2**32], "2**32"),
        ([1, 2**70], "2**63"),
        ([1, 2.0], "integers"),
        ([True, 1], "integers"),
        ([1, None], "integers"),
        ([[1]], "integers"),
        (np.array([1.0]), "integer array"),
        (np.array([[1]]), "integer array"),
        ("1,2", "list"),
        (None, "list"),
    ],
)
def test_decode_rejects_malformed_cells(value: object, message: str) -> None:
    with pytest.raises(InvalidEventError, match=message.replace("*", r"\*")):
        decode_cells(value)


def test_valid_fixtures_decode() -> None:
    assert decode_cells(U32_OK).tolist() == [1, 2]
    assert decode_cells(BITSET_OK).tolist() == [1, 2]
    assert decode_cells(np.array([3, 1], dtype=np.int8)).tolist() == [3, 1]


def test_encode_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="not below n_cells"):
        encode_cells([5], 5)
    with pytest.raises(ValueError, match="duplicate"):
        encode_cells([1, 1], 5)
    with pytest.raises(ValueError, match="n_cells"):
        encode_cells([], 2**32 + 1)
    with pytest.raises(TypeError):
        encode_cells([1], 5.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("count", [3, 40, 700])
def test_encode_cells_checked_fast_path_gives_the_same_bytes(count):
    cells = np.random.default_rng(count).permutation(1000)[:count].astype(np.uint32)
    assert encode_cells(cells, 1000, checked=True) == encode_cells(cells, 1000)
    # a list is still validated whatever `checked` says
    with pytest.raises(ValueError, match=r"twice|duplicate"):
        encode_cells([1, 1], 10, checked=True)
