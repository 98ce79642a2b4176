"""Does a site come back whole from a crash and from a hang: sales acknowledged before the fault are
still there after it, the site answers healthy again, and a frozen site is seen as frozen (no answer
within the timeout, not an error page). The caller injects the fault; every request has a timeout.
Each returns (metrics as (name, value, unit), notes, raw detail)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from ..model.errors import MeasurementError
from .health import wait_healthy
from .http import Client, Reply
from .pacing import sleep_until
from .sales import ACCEPTED, Poster, missing_sales

Found = tuple[list[tuple[str, Any, str]], list[str], dict[str, Any]]


def crash(site: Client, kill: Callable[[], Any], restart: Callable[[], Any] | None, *, path: str,
          timeout: float, op_timeout: float, records: int, tag: str) -> Found:
    """Sales, then `kill()`: the time until healthy again and whether the acknowledged sales survived.
    `restart` (when the target can) leaves a site that did not come back running."""
    poster = Poster(site, tag, 1.0, op_timeout).burst(max(1, records))
    poster.join()
    acked = poster.accepted
    if not acked:
        raise MeasurementError(f"no sale was acknowledged before the crash: {poster.first_failure()}")
    killed_at = time.monotonic()
    kill()
    back = wait_healthy(site, path, timeout)
    metrics: list[tuple[str, Any, str]] = [("recovery_time", time.monotonic() - killed_at, "s")]
    notes = []
    if back is None:
        metrics.append(("data_survived", False, ""))
        notes.append(f"not healthy again within {timeout:g} s of the crash: data could not be checked")
        if restart is not None:
            restart()
            notes.append("restarted it (restart hook) to leave it running")
    else:
        missing = missing_sales(site, acked, op_timeout)
        metrics.append(("data_survived", not missing, ""))
        if missing:
            notes.append(f"{len(missing)} of {len(acked)} sales acknowledged before the crash are gone "
                         f"after it (e.g. {missing[0]})")
    return metrics, notes, {"acknowledged": len(acked), "recovered": back is not None}


def hang(site: Client, paused: Callable[[], contextlib.AbstractContextManager], *, path: str, timeout: float,
         op_timeout: float, hang_timeout: float, pause_for: float, tag: str, fresh_id: str) -> Found:
    """Sales, then the site frozen for `pause_for` s: was the hang seen, and did the site resume whole
    (healthy, the sales still there, a new sale accepted)?"""
    poster = Poster(site, tag, 1.0, op_timeout).burst(3)
    poster.join()
    acked = poster.accepted
    answers: list[Reply] = []
    with paused():
        paused_at = time.monotonic()
        for _ in range(2):
            answers.append(site.call("GET", path, timeout=hang_timeout))
        sleep_until(paused_at + pause_for)
    detected = all(r.status is None for r in answers)  # no answer within the timeout, not an error page
    notes = []
    if not detected:
        notes.append(f"the frozen site still answered GET {path} ({'; '.join(r.describe() for r in answers)}): "
                     "the pause did not take effect, or something else answered for it")
    back = wait_healthy(site, path, timeout)
    missing = missing_sales(site, acked, op_timeout) if back is not None else acked
    fresh = site.call("POST", "/pos/transactions", {"id": fresh_id, "amount": 1.0}) \
        if back is not None else Reply(None, error="not healthy")
    resumed = back is not None and not missing and fresh.status in ACCEPTED
    if back is None:
        notes.append(f"not healthy within {timeout:g} s of resuming")
    elif missing:
        notes.append(f"{len(missing)} sales acknowledged before the freeze are gone after it")
    elif fresh.status not in ACCEPTED:
        notes.append(f"a sale after the freeze was refused: {fresh.describe()}")
    return ([("hang_detected", detected, ""), ("resumed_ok", resumed, "")], notes,
            {"answers_while_frozen": [r.describe() for r in answers], "healthy_after_s": back})
