"""The defects that break a site as a whole (its health, process, listeners, key files, memory, cache,
event loop): each changes exactly the behaviour it names, and the healthy site shows the opposite.

End-to-end proofs that the profiles' requirements catch them are in tests/suites/test_site_defects_emulated.py.
"""

from __future__ import annotations

import os
import socket
import stat
import threading
import time

import psutil
import pytest


def _edge(env, name, defect, **kw):
    return env.edge(name, env.shared_central.url, defects=(defect,) if defect else (), **kw)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _listeners(pid: int) -> set[tuple[str, int]]:
    return {(c.laddr.ip, c.laddr.port) for c in psutil.Process(pid).net_connections("tcp")
            if c.status == psutil.CONN_LISTEN}


@pytest.mark.parametrize("defect", [None, "health-broken"])
def test_health_tells_the_truth(env, defect):
    edge = _edge(env, "health", defect)
    health = edge.get("/health")
    # Everything else works either way.
    assert edge.get("/ping").body == b"pong"
    assert edge.post("/pos/transactions", {"amount": 2.5}).status == 201
    assert edge.get("/content/health-defect").status == 200
    assert edge.post("/telemetry", {"sensor": "t", "value": 1}).status == 202
    if defect:
        assert health.status == 503
        body = health.json()
        assert body["status"] == "degraded" and body["problems"] and body["name"] == edge.name
    else:
        assert health.status == 200 and health.json()["status"] == "ok"


@pytest.mark.parametrize("defect", [None, "exits-after-start"])
def test_main_process_keeps_running(env, defect):
    edge = _edge(env, "exits", defect)
    ready_at = time.monotonic()
    assert edge.get("/ping").status == 200   # ready and serving first, either way
    if defect:
        assert edge.proc.wait(timeout=10) == 0   # a clean exit, by itself
        assert time.monotonic() - ready_at >= 0.5
        log = edge.stderr()
        assert "exits-after-start defect: exiting with status 0" in log and "Traceback" not in log
    else:
        time.sleep(1.5)   # past the defect's second
        assert edge.alive() and edge.get("/ping").status == 200


@pytest.mark.parametrize("defect", [None, "extra-listener"])
def test_listens_only_on_its_port(env, defect):
    edge = _edge(env, "listen", defect)
    listeners = _listeners(edge.proc.pid)
    own = ("127.0.0.1", edge.port)
    if not defect:
        assert listeners == {own}
        return
    extra = listeners - {own}
    assert own in listeners and len(extra) == 1
    host, port = extra.pop()
    assert host == "127.0.0.1" and port != edge.port  # the local backend never listens beyond loopback
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:   # a debug port: closes at once
        sock.settimeout(2)
        assert sock.recv(1) == b""
    assert edge.get("/ping").status == 200 and edge.get("/health").status == 200


@pytest.mark.parametrize("defect", [None, "world-readable-key"])
def test_secret_key_files_are_private(env, defect):
    defects = (defect,) if defect else ()
    central = env.central(f"c-keys-{defect or 'ok'}", defects=defects)
    edge = _edge(env, "keys", defect)
    want = 0o644 if defect else 0o600
    for path in (os.path.join(edge.data_dir, "privacy.key"), os.path.join(central.data_dir, "signing.key")):
        assert _mode(path) == want, path
    # The keys still do their job: central issues and checks tokens with its signing key.
    token = central.post("/auth/token", {"subject": "keys"}).json()["token"]
    assert central.get("/auth/check", headers={"Authorization": f"Bearer {token}"}).status == 200
    assert central.post("/auth/keys/rotate").status == 200
    assert _mode(os.path.join(central.data_dir, "signing.key")) == want   # rewritten with the same mode


def test_key_modes_are_put_right_at_every_start(env):
    """A data dir left by a run with the defect is private again once the site starts without it
    (and the keys are kept: tokens signed before the restart still validate)."""
    def central(defects=()):
        return env.spawn("central", "c-remode", defects=defects).wait_ready()

    first = central(("world-readable-key",))
    path = os.path.join(first.data_dir, "signing.key")
    assert _mode(path) == 0o644
    token = first.post("/auth/token", {"subject": "remode"}).json()["token"]
    assert first.terminate() == 0
    second = central()
    assert _mode(path) == 0o600
    assert second.get("/auth/check", headers={"Authorization": f"Bearer {token}"}).status == 200


@pytest.mark.parametrize("defect", [None, "memory-hog"])
def test_memory_footprint(env, defect):
    edge = _edge(env, "memory", defect)
    rss = psutil.Process(edge.proc.pid).memory_info().rss / 2**20
    if defect:
        assert rss >= 640, rss          # touched, so resident; and held while the site runs
        time.sleep(0.2)
        assert psutil.Process(edge.proc.pid).memory_info().rss / 2**20 >= 640
    else:
        assert rss < 200, rss
    assert edge.get("/ping").status == 200 and edge.get("/health").status == 200


@pytest.mark.parametrize("defect", [None, "no-cache"])
def test_repeated_content_is_served_from_the_cache(env, defect):
    edge = _edge(env, "nocache", defect)
    answers = [edge.get("/content/repeat?size=500") for _ in range(3)]
    assert all(a.status == 200 and a.body == answers[0].body and len(a.body) == 500 for a in answers)
    results = [a.headers["x-cache"] for a in answers]
    metrics = edge.get("/metrics").body.decode()
    fetched = 3 if defect else 1
    assert f'workload_wan_requests_total{{channel="cache",outcome="ok"}} {fetched}' in metrics
    assert results == (["MISS"] * 3 if defect else ["MISS", "HIT", "HIT"])


@pytest.mark.parametrize("defect", [None, "health-waits-on-wan"])
def test_health_does_not_wait_on_the_wan(env, defect):
    link = env.link(env.shared_central)
    edge = env.edge("health-wan", link.url, defects=(defect,) if defect else ())   # wan_timeout_s 1.0
    assert edge.get("/health").status == 200   # WAN up: healthy either way
    link.set_mode("blackhole")
    health = edge.get("/health")
    ping = edge.get("/ping")
    assert ping.status == 200 and ping.seconds < 0.5   # only /health waits
    if defect:
        assert health.status == 503 and health.seconds >= 0.9
        assert any(p.startswith("central:") for p in health.json()["problems"])
    else:
        assert health.status == 200 and health.seconds < 0.5
    link.set_mode("pass")
    env.wait_until(lambda: edge.get("/health").status == 200, timeout=5, interval=0.1, what="health after the heal")


@pytest.mark.parametrize("defect", [None, "blocking-io"])
def test_concurrent_requests_do_not_queue(env, defect):
    """blocking-io stalls the event loop (not just the request, as slow-path does): N concurrent
    requests take at least N x 8 ms together."""
    edge = _edge(env, "blocking", defect)
    n = 24
    barrier = threading.Barrier(n)
    seconds: list[float] = []

    def one() -> None:
        barrier.wait()
        seconds.append(edge.get("/ping", timeout=10).seconds)

    edge.get("/ping")
    started = time.perf_counter()
    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    wall = time.perf_counter() - started
    assert len(seconds) == n
    if defect:
        assert wall >= n * 0.008 * 0.95 and max(seconds) >= (n - 2) * 0.008, (wall, max(seconds))
        assert min(edge.get("/ping").seconds for _ in range(3)) >= 0.008
    else:
        assert wall < n * 0.008 * 0.75, wall
