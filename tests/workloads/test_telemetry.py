"""IoT telemetry: aggregated at the edge, so WAN bytes are a small fraction of the raw bytes."""

from __future__ import annotations

import pytest

SENSORS = ("temp-1", "temp-2", "vibration-7")
READINGS_PER_POST = 250
POSTS = 8


def readings(post: int):
    return [{"sensor": SENSORS[i % len(SENSORS)], "value": float((post * 31 + i * 7) % 100) - 20.0}
            for i in range(READINGS_PER_POST)]


def expected_stats():
    values = {s: [] for s in SENSORS}
    for post in range(POSTS):
        for r in readings(post):
            values[r["sensor"]].append(r["value"])
    return {s: {"count": len(v), "min": min(v), "max": max(v), "mean": sum(v) / len(v)} for s, v in values.items()}


@pytest.mark.parametrize("defect", [None, "raw-telemetry"])
def test_aggregates_locally_and_ships_condensed_batches(env, defect):
    central = env.shared_central
    edge = env.edge("iot", central.url, defects=(defect,) if defect else ())
    for post in range(POSTS):
        assert edge.post("/telemetry", readings(post)).status == 202
    assert edge.post("/telemetry", {"sensor": "door", "value": 1}).status == 202   # a single reading
    total = POSTS * READINGS_PER_POST + 1
    summary = env.wait_until(
        lambda: (s := central.get(f"/telemetry/summary?site={edge.name}").json())["readings"] == total and s,
        what="every reading accounted for at central")
    for sensor, stats in expected_stats().items():
        got = summary["sensors"][sensor]
        assert got["count"] == stats["count"] and got["min"] == stats["min"] and got["max"] == stats["max"]
        assert got["mean"] == pytest.approx(stats["mean"])
    # central stores a batch before the edge hears the answer and empties its outbox
    stats = env.wait_until(lambda: (s := edge.get("/telemetry/stats").json())["batches_pending"] == 0 and s,
                           what="empty outbox")
    assert stats["raw_readings"] == total
    raw, wan = stats["raw_bytes_ingested"], stats["wan_bytes_sent"]
    assert raw > 10_000
    if defect:
        assert wan >= raw / 2, (wan, raw)
        assert summary["raw_readings_received"] == total
    else:
        assert wan * 10 < raw, (wan, raw)
        assert summary["raw_readings_received"] == 0
        assert summary["aggregates_received"] < total / 10
    assert f"workload_raw_bytes_ingested_total {raw}" in edge.get("/metrics").body.decode()


def test_partition_delays_but_does_not_lose_aggregates(env):
    central = env.shared_central
    link = env.link(central)
    link.set_mode("refuse")
    edge = env.edge("iot-part", link.url)
    for post in range(3):
        assert edge.post("/telemetry", readings(post)).status == 202
    env.wait_until(lambda: edge.get("/telemetry/stats").json()["batches_pending"] >= 1, what="outbox")
    assert central.get(f"/telemetry/summary?site={edge.name}").json()["readings"] == 0
    link.set_mode("pass")
    env.wait_until(lambda: central.get(f"/telemetry/summary?site={edge.name}").json()["readings"]
                   == 3 * READINGS_PER_POST, what="aggregates after the heal")


def test_rejects_bad_readings(env):
    edge = env.edge("iot-bad", env.shared_central.url)
    assert edge.post("/telemetry", {"sensor": "x"}).status == 400
    assert edge.post("/telemetry", [{"sensor": "x", "value": 1}, {"value": 2}]).status == 400
    assert edge.post("/telemetry", {"sensor": "x", "value": True}).status == 400
    assert edge.get("/telemetry/stats").json()["raw_readings"] == 0
