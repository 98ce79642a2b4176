"""Sales at a site's point of sale (the reference workloads' `/pos/transactions`, docs/workloads.md):
an open-loop poster, one sale until central has it, and which acknowledged sales a site still holds.
Every request has a timeout; every failure is data (measure.http.Reply)."""

from __future__ import annotations

import collections
import threading
import time
from urllib.parse import quote

from ..model.errors import MeasurementError
from .http import Client, Reply
from .pacing import sleep_until, spawn

ACCEPTED = (200, 201)


class Poster:
    """Sales on an open-loop schedule (one thread per sale, so a slow answer never delays the next)."""

    def __init__(self, site: Client, tag: str, rate: float, timeout: float, extra: dict | None = None):
        """`extra`: fields added to every sale (e.g. {"local_only": True}: a sale that never leaves the site)."""
        self.site, self.tag, self.rate, self.timeout = site, tag, rate, timeout
        self.extra = dict(extra or {})
        self.lock = threading.Lock()
        self.results: list[tuple[str, Reply]] = []
        self.threads: list[threading.Thread] = []
        self.stop = threading.Event()
        self.count = 0

    def post_one(self, index: int) -> None:
        sale_id = f"{self.tag}-{index}"
        body = {"id": sale_id, "amount": round(1 + index % 50 * 0.5, 2),
                "items": [{"sku": "resilience-check", "qty": 1 + index % 3}], **self.extra}
        reply = self.site.call("POST", "/pos/transactions", body, timeout=self.timeout)
        with self.lock:
            self.results.append((sale_id, reply))

    def start(self, until: float) -> Poster:
        self.until = until

        def schedule() -> None:
            t0 = time.monotonic()
            i = 0
            while not self.stop.is_set():
                due = t0 + i / self.rate
                if due >= until:
                    break
                sleep_until(due)
                if self.stop.is_set():
                    break
                self.threads.append(spawn(self.post_one, i))
                i += 1
            self.count = i

        self.scheduler = spawn(schedule)
        return self

    def burst(self, n: int) -> Poster:
        """n sales at once."""
        self.threads = [spawn(self.post_one, i) for i in range(n)]
        self.count = n
        return self

    def join(self) -> None:
        """Wait for the schedule (until its end, or stop) and for every sale's answer."""
        if hasattr(self, "scheduler"):
            self.scheduler.join(max(0.0, self.until - time.monotonic()) + self.timeout + 5)
        for t in list(self.threads):
            t.join(self.timeout + 2)

    @property
    def accepted(self) -> list[str]:
        with self.lock:
            return [sale_id for sale_id, r in self.results if r.status in ACCEPTED]

    def statuses(self) -> dict[str, int]:
        with self.lock:
            return dict(collections.Counter(str(r.status) if r.status else "no answer" for _, r in self.results))

    def acceptance(self, during: str) -> tuple[list[tuple[str, float, str]], list[str], dict]:
        """`pos_accepted` (the ratio of sales accepted `during` a fault), notes and the raw counts."""
        attempted, accepted = len(self.results), len(self.accepted)
        if attempted == 0:
            raise MeasurementError(f"no sale was attempted during {during}")
        notes = [] if accepted == attempted else [
            f"sales during {during}: {accepted} of {attempted} accepted; e.g. {self.first_failure()}"]
        return ([("pos_accepted", accepted / attempted, "ratio")], notes,
                {"attempted": attempted, "accepted": accepted, "statuses": self.statuses()})

    def first_failure(self) -> str | None:
        with self.lock:
            for _, r in self.results:
                if r.status not in ACCEPTED:
                    return r.describe()
        return None


def sale_until_forwarded(site: Client, sale_id: str, timeout: float) -> tuple[bool, float, str]:
    """A sale until central has acknowledged it (the site reports it forwarded): (ok, seconds, why not)."""
    started = time.monotonic()
    deadline = started + timeout
    r = site.call("POST", "/pos/transactions", {"id": sale_id, "amount": 2.5}, timeout=timeout)
    if r.status not in ACCEPTED:
        return False, time.monotonic() - started, f"sale refused: {r.describe()}"
    path = f"/pos/transactions/{quote(sale_id, safe='')}"
    while time.monotonic() < deadline:
        state = site.call("GET", path, timeout=max(0.2, min(2.0, deadline - time.monotonic())))
        body = state.json() if state.ok else None
        if isinstance(body, dict) and body.get("state") == "forwarded":
            return True, time.monotonic() - started, ""
        time.sleep(0.05)
    return False, time.monotonic() - started, f"not at central within {timeout:g} s"


def missing_sales(site: Client, ids: list[str], timeout: float) -> list[str]:
    """The sales among `ids` that the site no longer holds."""
    return [i for i in ids
            if site.call("GET", f"/pos/transactions/{quote(i, safe='')}", timeout=timeout).status != 200]
