"""Waiting: `wait_for` polls a condition until it holds; `tagged`/`wait_gone` find the processes that
carry a run's tag (see `tests.helpers.cli.run_edge_watched`)."""

from __future__ import annotations

import time
from typing import Any
from collections.abc import Callable

TAG_VAR = "EDGE_LOADSUITE_TEST_TAG"  # every process a tagged run starts inherits it
LOAD_NEEDLES = ("locust", "conformance.measure.load")  # the command lines of a load measurement


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition",
             interval: float = 0.05) -> Any:
    """The first true value of `predicate()`, polled every `interval` s; after `timeout` s an
    AssertionError naming `what` and the last value (an exception the predicate raised is retried and,
    when it was the last outcome, named and chained)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        error = None
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last = error = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {last!r})") from error
        time.sleep(interval)


def tagged(tag: str, needles: tuple[str, ...] | None = LOAD_NEEDLES) -> list[tuple[int, str]]:
    """(pid, command line) of live processes carrying `tag` in TAG_VAR whose command line has one of
    `needles` (None: any process carrying the tag)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if not cmd or (needles and not any(n in cmd for n in needles)):
                continue
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get(TAG_VAR) == tag:
                found.append((proc.pid, cmd))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def descendants(pid: int, needles: tuple[str, ...] = LOAD_NEEDLES) -> list[tuple[int, str]]:
    """(pid, command line) of the processes below `pid` whose command line has one of `needles` (cheap
    enough to poll during a run)."""
    import psutil

    found = []
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return found
    for child in children:
        try:
            cmd = " ".join(child.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if any(n in cmd for n in needles):
            found.append((child.pid, cmd))
    return found


def wait_gone(tag: str, needles: tuple[str, ...] | None = LOAD_NEEDLES, timeout: float = 10.0) -> list:
    """The tagged processes still alive after waiting up to `timeout` s for them to go."""
    deadline = time.monotonic() + timeout
    while True:
        left = tagged(tag, needles)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)
