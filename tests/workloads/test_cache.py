"""Content cache: HIT/MISS with a TTL, STALE while central is unreachable, errors without a copy."""

from __future__ import annotations

import time

import pytest

TTL = {"cache_ttl_s": 0.3}


def test_miss_then_hit_then_refetch_after_ttl(env):
    central = env.shared_central
    edge = env.edge("cache", central.url, config=TTL)
    first = edge.get("/content/news/today?size=1000")
    assert first.status == 200 and first.headers["x-cache"] == "MISS"
    assert first.body == central.get("/origin/news/today?size=1000").body and len(first.body) == 1000
    second = edge.get("/content/news/today?size=1000")
    assert second.headers["x-cache"] == "HIT" and second.body == first.body
    central.put("/origin/news/today")          # new version at the origin
    time.sleep(0.35)
    third = edge.get("/content/news/today?size=1000")
    assert third.headers["x-cache"] == "MISS"
    assert third.body != first.body and b"v2" in third.body
    assert edge.get("/content/missing-page").status == 404


@pytest.mark.parametrize("defect", [None, "no-stale-cache"])
def test_serves_stale_copy_while_partitioned(env, defect):
    central = env.shared_central
    link = env.link(central)
    edge = env.edge("cache-part", link.url, config=TTL, defects=(defect,) if defect else ())
    fresh = edge.get("/content/menu")
    assert fresh.headers["x-cache"] == "MISS"
    link.set_mode("blackhole")
    time.sleep(0.35)                           # the copy is now expired
    answer = edge.get("/content/menu")
    if defect:
        assert answer.status in (502, 504)
        return
    assert answer.status == 200 and answer.headers["x-cache"] == "STALE" and answer.body == fresh.body
    assert answer.seconds < 1.5                # at most one fetch timeout (0.5 s here)
    again = edge.get("/content/menu")          # right after a failure: stale at once, no fetch timeout
    assert again.headers["x-cache"] == "STALE" and again.seconds < 0.45
    assert edge.get("/content/never-fetched").status in (502, 504)
    link.set_mode("pass")
    env.wait_until(lambda: edge.get("/content/menu").headers["x-cache"] in ("MISS", "HIT"), timeout=10,
                   interval=0.2, what="fresh content after the heal")


def test_serves_stale_copy_when_central_is_killed(env):
    central, _link, edge = env.central_and_edge("c-cache", "cache-kill", config=TTL)
    fresh = edge.get("/content/catalogue")
    assert fresh.headers["x-cache"] == "MISS"
    central.kill()
    time.sleep(0.35)
    answer = edge.get("/content/catalogue")
    assert answer.status == 200 and answer.headers["x-cache"] == "STALE" and answer.body == fresh.body
    assert edge.get("/content/other").status == 502   # connection refused, nothing cached
    metrics = edge.get("/metrics").body.decode()
    assert 'workload_cache_requests_total{result="stale"} 1' in metrics
