"""Endpoints every site has: /ping, /echo, /health, /metrics; and the slow-path defect."""

from __future__ import annotations

import pytest

EXPECTED_EDGE_METRICS = (
    "workload_requests_total", "workload_pos_pending_forwards", "workload_pos_forwarded_total",
    "workload_wan_bytes_sent_total", "workload_raw_bytes_ingested_total", "workload_cache_requests_total",
    "workload_heartbeats_total", "workload_config_version", "workload_process_resident_memory_bytes",
)


def test_health_metrics_and_echo(env):
    central = env.shared_central
    edge = env.edge("basics", central.url)
    for site in (edge, central):
        health = site.get("/health")
        assert health.status == 200 and health.json()["status"] == "ok"
        assert site.get("/ping").body == b"pong"
        assert site.post("/echo", {"x": [1, 2]}).json() == {"x": [1, 2]}
        assert "workload_info{" in site.get("/metrics").body.decode()
    metrics = edge.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = metrics.body.decode()
    for name in EXPECTED_EDGE_METRICS:
        assert f"\n{name}" in text, name
    assert 'workload_requests_total{route="/ping"} 1' in text


@pytest.mark.parametrize("defect", [None, "slow-path"])
def test_ping_is_fast(env, defect):
    edge = env.edge("ping", env.shared_central.url, defects=(defect,) if defect else ())
    fastest = min(edge.get("/ping").seconds for _ in range(15))
    if defect:
        assert fastest >= 0.020
    else:
        assert fastest < 0.020
