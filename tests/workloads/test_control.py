"""Management plane: registration and heartbeats, and config pushed at central applied at the edge."""

from __future__ import annotations

import time

import pytest


@pytest.mark.parametrize("defect", [None, "no-heartbeat"])
def test_edge_registers_and_heartbeats(env, defect):
    central = env.shared_central
    edge = env.edge("beat", central.url, defects=(defect,) if defect else ())

    def registered():
        return central.get("/registry/sites").json()["sites"].get(edge.name)

    if defect:
        # Prove the WAN works (keys arrive), then allow several heartbeat intervals (0.2 s each).
        env.wait_until(lambda: edge.get("/auth/keys/status").json()["kids"], what="WAN traffic")
        time.sleep(1.0)
        assert registered() is None
        return
    first = env.wait_until(registered, timeout=5, what="registration")
    later = env.wait_until(lambda: (r := registered())["heartbeats"] >= first["heartbeats"] + 3 and r,
                           timeout=5, what="repeated heartbeats")
    assert later["age_s"] < 2 and later["role"] == "edge" and later["version"]


@pytest.mark.parametrize("defect", [None, "ignore-config"])
def test_pushed_config_is_applied(env, defect):
    # config is global to a central: not the shared one
    central, _link, edge = env.central_and_edge("c-config", "cfg", defects=(defect,) if defect else ())
    pushed = central.put("/config", {"cache_ttl_s": 42, "not_a_setting": 1}).json()
    assert pushed["version"] == 1
    env.wait_until(lambda: edge.get("/config").json()["central_version_seen"] == 1, what="config seen")
    shown = edge.get("/config").json()
    if defect:
        assert shown["version"] == 0 and shown["effective"]["cache_ttl_s"] != 42
        return
    assert shown["version"] == 1 and shown["effective"]["cache_ttl_s"] == 42
    assert "not_a_setting" in shown["ignored"]
    env.wait_until(lambda: central.get("/registry/sites").json()["sites"][edge.name]["config_version"] == 1,
                   what="config version reported in heartbeats")
    central.kill()
    edge.restart()                          # applied config is kept across a restart
    assert edge.get("/config").json()["version"] == 1
    assert edge.get("/config").json()["effective"]["cache_ttl_s"] == 42
