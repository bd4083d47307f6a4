"""SIGTERM handled like Ctrl+C in the command line's long-running commands."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable


def interrupt_on_signals() -> Callable[[], None]:
    """In the main thread, make SIGINT and SIGTERM raise ``KeyboardInterrupt``; returns a
    function that restores the previous handlers (a no-op elsewhere).

    SIGINT may be ignored (a shell starts background jobs that way) and SIGTERM kills without
    cleanup by default: as ``KeyboardInterrupt`` both run the ``finally`` blocks that stop a
    server or remove an export's staging folder.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, interrupt)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore
