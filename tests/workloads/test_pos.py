"""Point of sale: local durable answers, store-and-forward, exactly-once delivery at central.

Each behaviour test is parametrized with the defect that breaks it: the healthy case proves the
behaviour, the defect case proves a check measuring the same thing would fail.
"""

from __future__ import annotations

import time

import pytest


def sale(i: int, **extra):
    return {"id": f"tx-{i:04d}", "amount": round(1.5 * i + 0.25, 2), "items": [{"sku": f"s{i}", "qty": 1}],
            **extra}


def central_summary(central, edge):
    return central.get(f"/sink/transactions/summary?site={edge.name}").json()


def test_forwards_every_sale_exactly_once(env):
    central = env.shared_central
    edge = env.edge("pos", central.url)
    for i in range(40):
        assert edge.post("/pos/transactions", sale(i)).status == 201
    unnamed = edge.post("/pos/transactions", {"amount": 3})
    assert unnamed.status == 201 and unnamed.json()["id"]
    env.wait_until(lambda: edge.get("/pos/status").json()["pending"] == 0, what="all forwarded")
    status = edge.get("/pos/status").json()
    assert status["forwarded"] == 41 and status["last_forward_ok"] is not None
    mine = edge.get("/pos/summary").json()
    theirs = central_summary(central, edge)
    assert theirs["count"] == mine["count"] == 41
    assert theirs["digest"] == mine["digest"]
    assert theirs["duplicates_rejected"] == 0
    got = edge.get("/pos/transactions/tx-0007").json()
    assert got["state"] == "forwarded" and got["record"]["amount"] == sale(7)["amount"]


def test_retried_post_is_idempotent_and_conflicts_are_refused(env):
    edge = env.edge("pos-idem", env.shared_central.url)
    assert edge.post("/pos/transactions", sale(1)).status == 201
    assert edge.post("/pos/transactions", sale(1)).status == 200        # the till retried
    assert edge.post("/pos/transactions", {**sale(1), "amount": 99}).status == 409
    assert edge.post("/pos/transactions", {"items": []}).status == 400   # no amount
    assert edge.post("/pos/transactions", b"not json").status == 400
    assert edge.get("/pos/transactions/nope").status == 404
    env.wait_until(lambda: edge.get("/pos/status").json()["forwarded"] == 1, what="forwarded")
    assert central_summary(env.shared_central, edge)["count"] == 1


@pytest.mark.parametrize("defect", [None, "forward-synchronously"])
def test_sale_answers_locally_while_partitioned(env, defect):
    central = env.shared_central
    link = env.link(central)
    edge = env.edge("pos-part", link.url, defects=(defect,) if defect else ())
    link.set_mode("blackhole")   # connections open, nothing ever comes back
    answer = edge.post("/pos/transactions", sale(1))
    if defect:
        # The till waited on the WAN (wan_timeout_s = 1 s) and then failed.
        assert answer.status == 503 and answer.seconds >= 0.8
        return
    # Local answers never wait for the WAN: well under wan_timeout_s (1 s) even on a loaded machine.
    assert answer.status == 201 and answer.seconds < 0.9
    for i in range(2, 11):
        reply = edge.post("/pos/transactions", sale(i))
        assert reply.status == 201 and reply.seconds < 0.9
    assert edge.get("/pos/status").json()["pending"] == 10
    assert central_summary(central, edge)["count"] == 0
    link.set_mode("pass")        # heal
    env.wait_until(lambda: edge.get("/pos/status").json()["pending"] == 0, what="forwarded after heal")
    assert central_summary(central, edge)["digest"] == edge.get("/pos/summary").json()["digest"]


@pytest.mark.parametrize("defect", [None, "drop-on-partition"])
def test_nothing_is_lost_across_a_partition(env, defect):
    central = env.shared_central
    link = env.link(central)
    link.set_mode("refuse")
    edge = env.edge("pos-drop", link.url, defects=(defect,) if defect else ())
    for i in range(5):
        assert edge.post("/pos/transactions", sale(i)).status == 201
    env.wait_until(lambda: edge.get("/pos/status").json()["forward_failures"] >= 1, what="a failed attempt")
    link.set_mode("pass")
    env.wait_until(lambda: edge.get("/pos/status").json()["pending"] == 0, what="nothing pending")
    created = edge.get("/pos/summary").json()
    received = central_summary(central, edge)
    if defect:
        assert received["count"] < created["count"] == 5
        assert edge.get("/pos/status").json()["dropped"] > 0
    else:
        assert received["count"] == created["count"] == 5
        assert received["digest"] == created["digest"]


@pytest.mark.parametrize("defect", [None, "duplicate-on-retry"])
def test_lost_acknowledgements_do_not_duplicate(env, defect):
    central = env.shared_central
    link = env.link(central)
    edge = env.edge("pos-dup", link.url, defects=(defect,) if defect else ())
    link.set_mode("ack-loss")    # central stores each batch, the edge never hears back
    for i in range(8):
        assert edge.post("/pos/transactions", sale(i)).status == 201
    env.wait_until(lambda: central_summary(central, edge)["count"] >= 8, what="central got the batch")
    env.wait_until(lambda: edge.get("/pos/status").json()["forward_failures"] >= 2, what="retries")
    assert edge.get("/pos/status").json()["pending"] == 8
    link.set_mode("pass")
    env.wait_until(lambda: edge.get("/pos/status").json()["pending"] == 0, what="acknowledged")
    received = central_summary(central, edge)
    created = edge.get("/pos/summary").json()
    if defect:
        assert received["count"] > 8
        assert received["digest"] != created["digest"]
    else:
        assert received["count"] == 8
        assert received["duplicates_rejected"] >= 8
        assert received["digest"] == created["digest"]


@pytest.mark.parametrize("defect", [None, "no-fsync"])
def test_acknowledged_sales_survive_sigkill_and_forwarding_resumes(env, defect):
    central = env.shared_central
    link = env.link(central)
    link.set_mode("refuse")
    edge = env.edge("pos-kill", link.url, defects=(defect,) if defect else ())
    for i in range(6):
        assert edge.post("/pos/transactions", sale(i)).status == 201
    edge.kill()                  # SIGKILL right after the last 201
    edge.restart()
    kept = [edge.get(f"/pos/transactions/tx-{i:04d}").status for i in range(6)]
    if defect:
        assert kept.count(404) > 0, "no-fsync must lose acknowledged sales on SIGKILL"
        return
    assert kept == [200] * 6
    assert edge.get("/pos/status").json()["pending"] == 6
    link.set_mode("pass")
    env.wait_until(lambda: edge.get("/pos/status").json()["pending"] == 0, what="forwarding resumed")
    received = central_summary(central, edge)
    assert received["count"] == 6
    assert received["digest"] == edge.get("/pos/summary").json()["digest"]


@pytest.mark.parametrize("defect", [None, "forwarder-no-reconnect"])
def test_forwarding_resumes_after_the_connection_is_killed(env, defect):
    central = env.shared_central
    link = env.link(central)
    edge = env.edge("pos-reconnect", link.url, defects=(defect,) if defect else ())
    assert edge.post("/pos/transactions", sale(0)).status == 201
    env.wait_until(lambda: edge.get("/pos/status").json()["forwarded"] == 1, what="the first sale forwarded")
    link.set_mode("refuse")  # every connection across the link is reset, new ones refused
    for i in range(1, 4):
        assert edge.post("/pos/transactions", sale(i)).status == 201
    env.wait_until(lambda: edge.get("/pos/status").json()["forward_failures"] >= 1, what="a failed attempt")
    link.set_mode("pass")
    if defect:
        time.sleep(3)  # several retry intervals (forward_retry_max_s is 1 s): none comes
        status = edge.get("/pos/status").json()
        assert status["pending"] == 3 and status["forwarded"] == 1
        return
    env.wait_until(lambda: edge.get("/pos/status").json()["pending"] == 0, what="the backlog forwarded")
    assert central_summary(central, edge)["count"] == 4


def _rss(process) -> int:
    with open(f"/proc/{process.pid}/status", encoding="ascii") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


@pytest.mark.parametrize("defect", [None, "unbounded-backlog"])
def test_the_backlog_does_not_grow_memory(env, defect):
    central = env.shared_central
    link = env.link(central)
    link.set_mode("refuse")
    edge = env.edge("pos-backlog", link.url, defects=(defect,) if defect else ())
    for i in range(20):  # warm-up: first-time allocations, and the first failed forwarding attempt
        edge.post("/pos/transactions", sale(1000 + i))
    env.wait_until(lambda: edge.get("/pos/status").json()["forward_failures"] >= 1, what="a failed attempt")
    before = _rss(edge.proc)
    for i in range(200):
        assert edge.post("/pos/transactions", sale(i)).status == 201
    grown = _rss(edge.proc) - before
    if defect:
        assert grown > 40 * 2**20, grown  # 200 x 256 KiB = 50 MiB kept
    else:
        assert grown < 8 * 2**20, grown
