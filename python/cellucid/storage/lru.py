"""A thread-safe LRU of recent gene columns (or anything with ``nbytes``), bounded in entries
and bytes, whose loads are shared by concurrent callers."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any

import numpy as np

_MISSING = object()


class ColumnLRU:
    """A thread-safe LRU of recent gene columns (or any values), keyed by gene index.

    Parameters
    ----------
    maxsize
        Most entries kept (SPEC §6.5: 100 genes).
    max_bytes
        Optional bound on the summed ``nbytes`` of the entries. Mind it for large data: 100
        float32 columns of a million cells are 400 MB.

    Stored arrays are made read-only, so a cached column cannot be changed by a caller.
    :meth:`get_or_load` loads a missing key once even when many threads ask at the same time.
    """

    def __init__(self, maxsize: int = 100, max_bytes: int | None = None) -> None:
        if maxsize < 0:
            raise ValueError("maxsize must be >= 0")
        self.maxsize = int(maxsize)
        self.max_bytes = None if max_bytes is None else int(max_bytes)
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._nbytes = 0
        self._lock = threading.Lock()
        self._loading: dict[Hashable, Future[Any]] = {}
        self.hits = 0
        self.misses = 0

    @classmethod
    def _size(cls, value: Any) -> int:
        if isinstance(value, tuple):  # e.g. a sparse column: (rows, values)
            return sum(cls._size(v) for v in value)
        return int(getattr(value, "nbytes", 0) or (len(value) if isinstance(value, bytes) else 0))

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._nbytes

    def _lookup(self, key: Hashable) -> Any:
        """The value marked most recent, or ``_MISSING``; counts hits and misses (locked)."""
        if key in self._items:
            self._items.move_to_end(key)
            self.hits += 1
            return self._items[key]
        self.misses += 1
        return _MISSING

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The cached value (marked most recent), or ``default``."""
        with self._lock:
            value = self._lookup(key)
        return default if value is _MISSING else value

    def put(self, key: Hashable, value: Any) -> None:
        """Store ``value``, evicting the least recently used entries beyond the bounds."""
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
        size = self._size(value)
        with self._lock:
            if key in self._items:
                self._nbytes -= self._size(self._items.pop(key))
            if self.maxsize == 0 or (self.max_bytes is not None and size > self.max_bytes):
                return
            self._items[key] = value
            self._nbytes += size
            while len(self._items) > self.maxsize or (
                self.max_bytes is not None and self._nbytes > self.max_bytes
            ):
                _, old = self._items.popitem(last=False)
                self._nbytes -= self._size(old)

    def get_or_load(self, key: Hashable, load: Callable[[Hashable], Any]) -> Any:
        """The cached value, or ``load(key)`` stored; concurrent callers share one load."""
        with self._lock:
            value = self._lookup(key)
            if value is not _MISSING:
                return value
            fut = self._loading.get(key)
            owner = fut is None
            if owner:
                fut = self._loading[key] = Future()
        assert fut is not None
        if not owner:
            return fut.result()
        try:
            value = load(key)
            self.put(key, value)
            fut.set_result(value)
            return value
        except BaseException as exc:
            fut.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._loading.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._nbytes = 0
