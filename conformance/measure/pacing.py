"""Pacing for probes that run beside a fault: sleep to a deadline, work in daemon threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def sleep_until(deadline: float) -> None:
    """Sleep until time.monotonic() reaches `deadline` (in short naps: Ctrl-C is seen at once)."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.2))


def spawn(fn: Callable, *args) -> threading.Thread:
    """Run fn(*args) in a started daemon thread: Ctrl-C never waits on it."""
    thread = threading.Thread(target=fn, args=args, daemon=True)
    thread.start()
    return thread
