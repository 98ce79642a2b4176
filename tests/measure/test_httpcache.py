"""measure/httpcache.py against a loopback stand-in of a caching proxy: hit ratio from the status
header, stale copies served (or not) while the origin is cut off, and the header forms it reads."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conformance.measure.http import Reply
from conformance.measure.httpcache import HttpCache, cache_status, from_cache
from conformance.model.errors import MeasurementError


class StandInCache:
    """GET /cdn/<key>: a cache of an imaginary origin, nginx-like. `store`: keep copies (else every GET is a
    MISS); `stale`: serve an expired copy while `origin_up` is false (else 504); `header`: the status
    header's name (None: no header); `ttl`: freshness in seconds. GET /ctl/origin-down and /ctl/origin-up
    cut and restore the origin (for hook commands)."""

    def __init__(self, *, ttl: float = 0.3, store: bool = True, stale: bool = True, header: str | None = "X-Cache"):
        self.ttl, self.store, self.stale, self.header = ttl, store, stale, header
        self.origin_up = True
        self.copies: dict[str, tuple[bytes, float]] = {}
        self.origin_fetches = 0
        cache = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if self.path in ("/ctl/origin-down", "/ctl/origin-up"):
                    cache.origin_up = self.path.endswith("-up")
                    self.send_response(204)
                    self.end_headers()
                    return
                status, body, state = cache.answer(self.path)
                self.send_response(status)
                if cache.header and state:
                    value = f"edge; {state.lower()}" if cache.header == "Cache-Status" else state
                    self.send_header(cache.header, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/cdn/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str) -> tuple[int, bytes, str]:
        key = path.rsplit("/", 1)[-1]
        copy = self.copies.get(key)
        now = time.monotonic()
        if copy and now - copy[1] < self.ttl:
            return 200, copy[0], "HIT"
        if not self.origin_up:
            if copy and self.stale:
                return 200, copy[0], "STALE"
            return 504, b"origin timed out", "MISS" if not copy else "EXPIRED"
        self.origin_fetches += 1
        body = f"content {key} #{self.origin_fetches}".encode()
        if self.store:
            self.copies[key] = (body, now)
        return 200, body, "EXPIRED" if copy else "MISS"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_in(request):
    caches: list[StandInCache] = []

    def make(**kw) -> StandInCache:
        caches.append(StandInCache(**kw))
        return caches[-1]

    yield make
    for c in caches:
        c.close()


def _cut_read(cache: StandInCache, probe: HttpCache, read_for: float = 0.3):
    cache.origin_up = False
    try:
        time.sleep(max(0.0, probe.expired_at(cache.ttl) + 0.05 - time.monotonic()))
        return probe.read_until(time.monotonic() + read_for)
    finally:
        cache.origin_up = True


def test_a_healthy_cache_hits_on_repeats_and_serves_stale_copies_during_a_cut(stand_in):
    cache = stand_in(ttl=0.4)
    probe = HttpCache(cache.base, ["a", "b"], timeout=2)
    probe.prime(3)
    assert probe.header == "X-Cache" and [f.cache for f in probe.first] == ["MISS", "MISS"]
    metrics, notes, detail = probe.hit_figures()
    assert dict((m, v) for m, v, _ in metrics) == {"requests": 8, "hit_ratio": 1.0}
    assert "6 of 6 repeated GETs answered from the cache (X-Cache: HIT 6)" in notes[0]
    reads = _cut_read(cache, probe)
    metrics, notes, evidence = probe.cut_figures(reads)
    got = {m: v for m, v, _ in metrics}
    assert got["stale_served_ratio"] == 1.0 and got["cut_requests"] == len(reads) >= 2
    assert got["max_cut_latency"] < 1.0 and evidence == []
    assert {f.cache for f in reads} == {"STALE"}


def test_a_cache_that_stores_nothing_has_no_hits_and_nothing_to_serve_in_a_cut(stand_in):
    cache = stand_in(store=False)
    probe = HttpCache(cache.base, ["a"], timeout=2)
    probe.prime(4)
    assert dict((m, v) for m, v, _ in probe.hit_figures()[0])["hit_ratio"] == 0.0
    metrics, notes, _ = probe.cut_figures(_cut_read(cache, probe))
    assert dict((m, v) for m, v, _ in metrics)["stale_served_ratio"] == 0.0
    assert any("-> HTTP 504 origin timed out" in n for n in notes)


def test_a_cache_without_stale_if_error_answers_the_origins_error(stand_in):
    cache = stand_in(stale=False, ttl=0.3)
    probe = HttpCache(cache.base, ["a", "b"], timeout=2)
    probe.prime(2)
    assert dict((m, v) for m, v, _ in probe.hit_figures()[0])["hit_ratio"] == 1.0
    metrics, notes, _ = probe.cut_figures(_cut_read(cache, probe))
    assert dict((m, v) for m, v, _ in metrics)["stale_served_ratio"] == 0.0
    assert "0 of" in notes[0] and "EXPIRED" in notes[0]


def test_fresh_copies_during_the_cut_leave_the_stale_ratio_undecided(stand_in):
    cache = stand_in(ttl=30)
    probe = HttpCache(cache.base, ["a"], timeout=2)
    probe.prime(1)
    cache.origin_up = False
    reads = probe.read_until(time.monotonic() + 0.1)  # read at once: still fresh
    cache.origin_up = True
    _, _, evidence = probe.cut_figures(reads)
    assert evidence and evidence[0]["kind"] == "invalid" and evidence[0]["metrics"] == ["stale_served_ratio"]
    assert "raise content_ttl" in evidence[0]["reason"]


def test_a_cache_without_a_status_header_says_nothing_and_rfc9211_is_read(stand_in):
    silent = HttpCache(stand_in(header=None).base, ["a"], timeout=2)
    silent.prime(1)
    assert silent.header is None
    rfc = stand_in(header="Cache-Status")
    probe = HttpCache(rfc.base, ["a"], timeout=2)
    probe.prime(2)
    assert probe.header == "Cache-Status"
    assert dict((m, v) for m, v, _ in probe.hit_figures()[0])["hit_ratio"] == 1.0


def test_content_that_is_not_there_is_an_error_naming_the_paths_param(stand_in):
    cache = stand_in()
    probe = HttpCache(cache.base.replace("/cdn/", "/nowhere/"), ["a"], timeout=2)
    cache.answer = lambda path: (404, b"not found", "")  # type: ignore[method-assign]
    with pytest.raises(MeasurementError, match=r"-> HTTP 404 not found: .*name it with `paths`"):
        probe.prime(1)


@pytest.mark.parametrize("name, value, cached", [
    ("X-Cache", "HIT", True), ("X-Cache", "hit", True), ("X-Cache", "STALE", True), ("X-Cache", "UPDATING", True),
    ("X-Cache", "MISS", False), ("X-Cache", "EXPIRED", False), ("X-Cache", "BYPASS", False),
    ("X-Cache", "HIT from squid.example:3128", True), ("X-Cache", "MISS from squid", False),
    ("X-Cache-Status", "REVALIDATED", True), ("Cache-Status", "ExampleCache; hit", True),
    ("Cache-Status", "OriginCache; fwd=uri-miss; stored, CDN; hit; ttl=-30", True),
    ("Cache-Status", "ExampleCache; fwd=stale; fwd-status=200", False),
])
def test_cache_status_values(name, value, cached):
    assert from_cache(name, value) is cached
    reply = Reply(200, headers={name.lower(): value})
    assert cache_status(reply) == (name, value, cached)
    assert cache_status(reply, "X-Other") == (None, None, None)
