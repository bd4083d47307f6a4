"""Credentials for pages opened without any: ``POST /_cellucid/viewers`` (PROTOCOL.md).

A plain ``cellucid serve`` tab has no ``viewerId``/``viewerToken`` in its URL. To use the
authenticated routes (compare groups), it asks for a viewer channel of its own. CORS keeps
other web sites from reading the answer; at most :data:`MAX_PAGE_VIEWERS` such channels
exist at once, the oldest being closed first.
"""

from __future__ import annotations

import threading
from collections import deque

from .channel import ViewerChannel
from .registry import ViewerRegistry

MAX_PAGE_VIEWERS = 64
MAX_BODY = 1024


class PageViewers:
    """The page channels one server made, oldest first."""

    def __init__(self, registry: ViewerRegistry, limit: int = MAX_PAGE_VIEWERS) -> None:
        self.registry = registry
        self.limit = limit
        self._ids: deque[str] = deque()
        self._lock = threading.Lock()

    def mint(self) -> dict[str, str]:
        """A new page viewer: ``{"viewerId", "viewerToken"}``."""
        channel = ViewerChannel(name="page")
        self.registry.add(channel)
        with self._lock:
            self._ids.append(channel.viewer_id)
            old = [self._ids.popleft() for _ in range(max(0, len(self._ids) - self.limit))]
        for viewer_id in old:
            gone = self.registry.remove(viewer_id)
            if gone is not None:
                gone.close()
        return {"viewerId": channel.viewer_id, "viewerToken": channel.token}

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)
