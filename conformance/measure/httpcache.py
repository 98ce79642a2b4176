"""An HTTP cache measured from its clients' side (stack.http_cache): how often it answers repeated GETs
itself, and whether it still answers with its copies once they expired while the origin is cut off
(stale-if-error).

    cache = HttpCache(base, paths, timeout)
    cache.prime(repeats)                  # each path once (a miss), then `repeats` rounds
    cache.hit_figures()                   # hits among the repeats, by the cache status header
    ... cut the WAN, sleep_until(cache.expired_at(ttl)) ...
    reads = cache.read_until(deadline)    # every path at once, in rounds, during the cut
    cache.cut_figures(reads)

Whether the cache answered itself is what it says in its status header: X-Cache (nginx's
`add_header X-Cache $upstream_cache_status`, Varnish, Squid "HIT from ..."), X-Cache-Status,
X-Proxy-Cache, or RFC 9211's Cache-Status (`name; hit`). During the cut an answer counts as served
when it is a 200 with the very body the cache handed out before the cut: the origin is unreachable,
so only the cache can have given it. Every request goes through measure/http.py (hard timeout).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..model.errors import MeasurementError
from .http import Reply, request

CACHE_HEADERS = ("X-Cache", "X-Cache-Status", "X-Proxy-Cache", "Cache-Status")
# Statuses of an answer the cache gave from its own copy (nginx's $upstream_cache_status, Varnish, Squid).
FROM_CACHE = ("HIT", "STALE", "UPDATING", "REVALIDATED", "TCP_HIT", "TCP_MEM_HIT", "TCP_REFRESH_UNMODIFIED")
STALE = ("STALE", "UPDATING")
ROUND_PACE_S = 0.05  # during the cut: every path at most 20 times a second


def cache_status(reply: Reply, header: str | None = None) -> tuple[str | None, str | None, bool | None]:
    """(header name, its value, answered from the cache?) of one reply; (None, None, None) when it says
    nothing. `header`: only that one (else the first of CACHE_HEADERS present)."""
    for name in ((header,) if header else CACHE_HEADERS):
        value = reply.header(name)
        if value is None or not value.strip():
            continue
        return name, value.strip(), from_cache(name, value)
    return None, None, None


def from_cache(name: str, value: str) -> bool:
    if name.lower() == "cache-status":  # RFC 9211: members "cache-name; hit" / "cache-name; fwd=miss"
        return any("hit" in {p.strip().lower() for p in member.split(";")[1:]} for member in value.split(","))
    word = value.strip().split()[0].upper() if value.strip() else ""
    return word in FROM_CACHE


@dataclass
class Fetch:
    path: str
    status: int | None
    header: str | None          # the cache status header's name
    cache: str | None           # its value
    from_cache: bool | None     # None: the reply said nothing
    elapsed: float
    at: float                   # time.monotonic() when it ended
    body: bytes = b""
    problem: str = ""

    def brief(self) -> dict[str, Any]:
        return {"path": self.path, "status": self.status, "cache": self.cache,
                "elapsed_s": round(self.elapsed, 3), **({"problem": self.problem} if self.problem else {})}


class HttpCache:
    def __init__(self, base: str, paths: list[str], timeout: float, *, hit_header: str | None = None,
                 ca_file: str | None = None):
        if not paths:
            raise MeasurementError("no paths to request")
        self.base = base.rstrip("/")
        self.paths = [str(p).lstrip("/") for p in paths]
        self.timeout, self.hit_header, self.ca_file = timeout, hit_header, ca_file
        self.first: list[Fetch] = []
        self.repeats: list[Fetch] = []
        self.copy: dict[str, bytes] = {}       # path -> the body the cache handed out last
        self.fetched_at: dict[str, float] = {}  # path -> when the origin was last asked for it

    def url(self, path: str) -> str:
        return f"{self.base}/{path}"

    def get(self, path: str) -> Fetch:
        r = request(self.url(path), timeout=self.timeout, ca_file=self.ca_file)
        name, value, cached = cache_status(r, self.hit_header)
        return Fetch(path, r.status, name, value, cached, r.elapsed, time.monotonic(), r.body,
                     "" if r.status == 200 else r.describe())

    def _keep(self, f: Fetch) -> None:
        if f.status == 200:
            self.copy[f.path] = f.body
            if not f.from_cache:  # a miss (or a cache that says nothing): the origin was asked now
                self.fetched_at[f.path] = f.at

    def prime(self, repeats: int) -> None:
        """Each path once (it must be 200: cacheable content), then `repeats` rounds over all of them."""
        for path in self.paths:
            f = self.get(path)
            if f.status != 200:
                raise MeasurementError(f"GET {self.url(path)} -> {f.problem}: the cache endpoint must serve "
                                       "cacheable content there (name it with `paths`)")
            self.first.append(f)
            self._keep(f)
        for _ in range(max(0, repeats)):
            for path in self.paths:
                f = self.get(path)
                self.repeats.append(f)
                self._keep(f)

    @property
    def header(self) -> str | None:
        """The cache status header the cache sends (None: it sends none of them)."""
        return next((f.header for f in self.first + self.repeats if f.header), None)

    def hit_figures(self) -> tuple[list[tuple[str, Any, str]], list[str], dict[str, Any]]:
        """hit_ratio over the repeats (answers without a status header count as misses), with notes."""
        hits = sum(1 for f in self.repeats if f.from_cache)
        failed = [f for f in self.repeats if f.status != 200]
        metrics: list[tuple[str, Any, str]] = [("requests", len(self.first) + len(self.repeats), "")]
        notes: list[str] = []
        if self.repeats:
            metrics.append(("hit_ratio", hits / len(self.repeats), "ratio"))
            notes.append(f"{hits} of {len(self.repeats)} repeated GETs answered from the cache "
                         f"({self.header}: {_counts(self.repeats)})")
        if failed:
            notes.append(f"{len(failed)} repeated GETs failed, e.g. {failed[0].problem}")
        detail = {"header": self.header, "first": [f.brief() for f in self.first],
                  "repeats": [f.brief() for f in self.repeats]}
        return metrics, notes, detail

    def expired_at(self, ttl: float) -> float:
        """When every path's copy has outlived `ttl` since the origin last served it."""
        return max(self.fetched_at.values(), default=time.monotonic()) + ttl

    def read_until(self, deadline: float, pace: float = ROUND_PACE_S) -> list[Fetch]:
        """GET every path at once, in rounds at least `pace` seconds apart, until `deadline` (at least one
        round): a few clients reading, not a load test; a cache that waits on its origin holds a round
        for that long, not once per path."""
        reads: list[Fetch] = []
        with ThreadPoolExecutor(max_workers=len(self.paths), thread_name_prefix="edge-cache-read") as pool:
            while True:
                began = time.monotonic()
                reads.extend(pool.map(self.get, self.paths))
                if time.monotonic() >= deadline:
                    return reads
                time.sleep(max(0.0, min(began + pace, deadline) - time.monotonic()))

    def served(self, f: Fetch) -> bool:
        return f.status == 200 and f.body == self.copy.get(f.path)

    def cut_figures(self, reads: list[Fetch]) -> tuple[list[tuple[str, Any, str]], list[str], list[dict]]:
        """stale_served_ratio (200 with the cached body), max_cut_latency; notes; validity evidence (a cut
        during which every answer was a fresh HIT exercised no stale copy: that ratio is undecided)."""
        served = [f for f in reads if self.served(f)]
        metrics: list[tuple[str, Any, str]] = [("cut_requests", len(reads), "")]
        notes: list[str] = []
        evidence: list[dict] = []
        if reads:
            metrics.append(("stale_served_ratio", len(served) / len(reads), "ratio"))
            metrics.append(("max_cut_latency", max(f.elapsed for f in reads), "s"))
            notes.append(f"during the cut {len(served)} of {len(reads)} GETs of expired content were answered "
                         f"with the cached copy ({self.header or 'status'}: {_counts(reads)})")
        refused = [f for f in reads if not self.served(f)]
        if refused:
            f = refused[0]
            what = f.problem or "HTTP 200 with a body other than the cached copy"
            notes.append(f"e.g. GET {self.url(f.path)} -> {what}")
        fresh = [f for f in served if (f.cache or "").upper().startswith("HIT") and f.header != "Cache-Status"]
        if served and len(fresh) == len(served):
            evidence.append({"kind": "invalid", "metrics": ["stale_served_ratio"],
                             "reason": f"every copy was still fresh during the cut ({self.header}: HIT): serving "
                                       "an expired copy was not exercised; raise content_ttl above the cache's "
                                       "freshness lifetime"})
        return metrics, notes, evidence


def _counts(fetches: list[Fetch]) -> str:
    seen: dict[str, int] = {}
    for f in fetches:
        key = f.cache or (f"HTTP {f.status}" if f.status is not None else "no answer")
        seen[key] = seen.get(key, 0) + 1
    return ", ".join(f"{k} {n}" for k, n in sorted(seen.items()))
