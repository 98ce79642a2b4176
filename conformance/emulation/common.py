"""Small helpers shared by the supervisor's modules (every backend): its log, its one ready line, and
running coroutines together.

The supervisor's stderr is its log (a file of the harness, or STATE_DIR/logs/supervisor.log when
detached); its stdout carries exactly one JSON line, the ready line the harness waits for.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from collections.abc import Awaitable, Iterable
from typing import Any


def log(message: str) -> None:
    """One line in the supervisor's log."""
    print(f"supervisor: {message}", file=sys.stderr, flush=True)


def emit(message: dict[str, Any]) -> None:
    """One JSON line on stdout for the harness (the ready line); nobody reading is not an error."""
    try:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()
    except OSError:
        pass  # nobody reads our stdout any more


async def gather_all(aws: Iterable[Awaitable[Any]]) -> None:
    """Run concurrently; on the first failure cancel the rest and raise it."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    if not tasks:
        return
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def raise_open_files_limit() -> None:
    """Open files up to the hard limit: a thousand sites are two pipes each to the supervisor and two
    relays each in linkd, past the usual soft limit of 1024."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else max(soft, 65536),
                                                        hard))
        except (ValueError, OSError):
            pass   # as high as we may: a smaller deployment still fits
