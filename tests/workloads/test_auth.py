"""Local authentication: tokens issued by central validate at the edge while the WAN is cut."""

from __future__ import annotations

import time

import pytest


def bearer(token: str):
    return {"Authorization": f"Bearer {token}"}


def keys_cached(edge):
    return edge.get("/auth/keys/status").json()["kids"]


@pytest.mark.parametrize("defect", [None, "central-auth-only"])
def test_tokens_validate_at_the_edge_while_partitioned(env, defect):
    central = env.shared_central
    link = env.link(central)
    edge = env.edge("auth", link.url, defects=(defect,) if defect else ())
    token = central.post("/auth/token", {"subject": "cashier-7"}).json()["token"]
    env.wait_until(lambda: keys_cached(edge), what="signing keys at the edge")
    online = edge.get("/auth/check", headers=bearer(token))
    assert online.status == 200 and online.json()["subject"] == "cashier-7"
    link.set_mode("blackhole")
    answer = edge.get("/auth/check", headers=bearer(token))
    if defect:
        assert answer.status == 503 and answer.json()["valid"] is False
        return
    # no WAN round trip: well under wan_timeout_s (1 s)
    assert answer.status == 200 and answer.json()["valid"] is True and answer.seconds < 0.9
    assert answer.json()["validated_by"] == "edge"


def test_invalid_tokens_are_refused_locally(env):
    central = env.shared_central
    link = env.link(central)
    edge = env.edge("auth-bad", link.url)
    good = central.post("/auth/token", {"subject": "alice"}).json()["token"]
    short = central.post("/auth/token", {"subject": "bob", "ttl_s": 0.2}).json()["token"]
    env.wait_until(lambda: keys_cached(edge), what="signing keys at the edge")
    link.set_mode("blackhole")
    head, _, signature = good.rpartition(".")
    tampered = head + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    forged_subject = good.split(".")
    forged_subject[2] = "eyJzdWIiOiJtYWxsb3J5IiwiZXhwIjo0MTAyNDQ0ODAwfQ"   # {"sub":"mallory","exp":...}
    time.sleep(0.25)
    for token in (tampered, ".".join(forged_subject), short, "garbage", "v1.nokey.e30.AAAA"):
        answer = edge.get("/auth/check", headers=bearer(token))
        assert answer.status == 401 and answer.json()["valid"] is False, token
    assert edge.get("/auth/check").status == 401
    assert edge.get("/auth/check", headers=bearer(good)).status == 200


def test_cached_keys_survive_a_restart_during_a_partition(env):
    central = env.shared_central
    link = env.link(central)
    edge = env.edge("auth-restart", link.url)
    token = central.post("/auth/token", {"subject": "manager"}).json()["token"]
    env.wait_until(lambda: keys_cached(edge), what="signing keys at the edge")
    link.set_mode("refuse")
    edge.restart()
    assert edge.get("/auth/check", headers=bearer(token)).status == 200


def test_rotated_keys_reach_the_edge(env):
    central, _link, edge = env.central_and_edge("c-rotate", "auth-rotate")
    env.wait_until(lambda: keys_cached(edge), what="signing keys at the edge")
    central.post("/auth/keys/rotate")
    token = central.post("/auth/token", {"subject": "new-key"}).json()["token"]
    # The first check sees an unknown key id, refuses, and makes the edge fetch keys at once.
    env.wait_until(lambda: edge.get("/auth/check", headers=bearer(token)).status == 200, timeout=10,
                   interval=0.2, what="the rotated key at the edge")


@pytest.mark.parametrize("defect", [None, "renew-at-central-only"])
def test_a_valid_token_is_renewed_at_the_edge_while_partitioned(env, defect):
    central = env.shared_central
    link = env.link(central)
    edge = env.edge("auth-renew", link.url, defects=(defect,) if defect else ())
    issued = central.post("/auth/token", {"subject": "till-3", "ttl_s": 30}).json()
    env.wait_until(lambda: keys_cached(edge), what="signing keys at the edge")
    link.set_mode("blackhole")
    answer = edge.post("/auth/renew", headers=bearer(issued["token"]))
    if defect:
        assert answer.status == 503 and answer.json()["renewed"] is False
        return
    renewed = answer.json()
    assert answer.status == 200 and renewed["renewed_by"] == "edge" and renewed["subject"] == "till-3"
    assert renewed["token"] != issued["token"] and renewed["expires_at"] > issued["expires_at"]
    assert renewed["expires_at"] - time.time() == pytest.approx(30, abs=2)  # the same lifetime
    check = edge.get("/auth/check", headers=bearer(renewed["token"]))
    assert check.status == 200 and check.json()["subject"] == "till-3"


def test_only_a_valid_token_is_renewed(env):
    central = env.shared_central
    link = env.link(central)
    edge = env.edge("auth-renew-bad", link.url)
    short = central.post("/auth/token", {"subject": "gone", "ttl_s": 0.2}).json()["token"]
    env.wait_until(lambda: keys_cached(edge), what="signing keys at the edge")
    time.sleep(0.3)
    for token in (short, "garbage", "v1.nokey.e30.AAAA"):
        answer = edge.post("/auth/renew", headers=bearer(token))
        assert answer.status == 401 and answer.json()["renewed"] is False, token
    assert edge.post("/auth/renew").status == 401


def test_central_renews_too(env):
    central = env.shared_central
    token = central.post("/auth/token", {"subject": "online", "ttl_s": 60}).json()["token"]
    answer = central.post("/auth/renew", headers=bearer(token))
    assert answer.status == 200 and answer.json()["renewed_by"] == "central"
    assert central.post("/auth/renew", headers=bearer("garbage")).status == 401
