"""Is a site healthy: its health path answers 2xx, with `status: ok` when the answer says a status."""

from __future__ import annotations

import time

from .http import Client, Reply


def healthy(reply: Reply) -> bool:
    if not reply.ok:
        return False
    body = reply.json()
    return not (isinstance(body, dict) and "status" in body and body["status"] != "ok")


def wait_healthy(site: Client, path: str, timeout: float) -> float | None:
    """Seconds until the site answers healthy (None: not within timeout)."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        if healthy(site.call("GET", path, timeout=max(0.2, min(1.0, left)))):
            return time.monotonic() - started
        time.sleep(0.1)


def settled_health(site: Client, path: str, timeout: float, tries: int = 3, pause: float = 0.5) -> Reply:
    """The site's health answer once it is healthy, else the last of `tries` answers `pause` s apart."""
    for attempt in range(tries):
        reply = site.call("GET", path, timeout=timeout)
        if healthy(reply) or attempt == tries - 1:
            return reply
        time.sleep(pause)
    return reply
