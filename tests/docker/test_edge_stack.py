"""edge-stack on docker: nginx serves stale content while central is cut off, mosquitto queues
messages while the WAN is down and delivers them after heal, and the suites' endpoints still work."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest
import yaml

from conformance.emulation import start_deployment
from conformance.faults.emulated import EmulatedFaults

pytestmark = pytest.mark.docker  # containers: slow by tests/conftest.py
TTL_S = 2  # edge-stack.yaml: cache_ttl_s (nginx counts whole seconds: a copy goes stale within TTL + 1 s)


@pytest.fixture(scope="module")
def stack(site_image, dk):
    dep = start_deployment("edge-stack", run_id=dk.run_id("stack"), backend="docker", timeout=90)
    try:
        yield dep
    finally:
        dep.stop()


@pytest.fixture(scope="module")
def sites(stack):
    return {s["name"]: s for s in yaml.safe_load(stack.target_file.read_text())["sites"]}


@pytest.fixture(scope="module")
def faults(stack):
    return EmulatedFaults(stack.control_url)


def fetch(url: str, timeout: float = 10.0) -> tuple[int, str | None, bytes, float]:
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.headers.get("X-Cache"), resp.read(), time.perf_counter() - start
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("X-Cache"), exc.read(), time.perf_counter() - start


def container(sites, name: str) -> str:
    return sites[name]["labels"]["container"]


def test_the_sites_run_the_real_stack_and_the_suites_endpoints(sites):
    for name in ("store-1", "store-2"):
        ps = subprocess.run(["docker", "exec", container(sites, name), "ps", "-eo", "comm"],
                            capture_output=True, text=True, timeout=30).stdout.split()
        assert {"nginx", "mosquitto", "python3"} <= set(ps)
        s = sites[name]
        status, _, body, _ = fetch(s["endpoints"]["api"] + "/health")  # through nginx
        assert status == 200 and json.loads(body)["role"] == "edge"
        assert fetch(s["endpoints"]["app"] + "/health")[0] == 200   # the workload itself
        req = urllib.request.Request(s["endpoints"]["api"] + "/pos/transactions", data=b'{"amount": 1}',
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 201
        assert s["labels"]["stack"] == ["nginx", "mosquitto"]
        assert urlsplit(s["endpoints"]["mqtt"]).scheme == "mqtt"
        assert s["endpoints"]["cache"] == s["endpoints"]["direct"] + "/cdn/"
    assert sites["central"]["labels"]["stack"] == ["mosquitto"]


def test_nginx_serves_stale_content_while_central_is_partitioned(sites, faults, dk):
    cdn = sites["store-1"]["endpoints"]["api"] + "/cdn/"
    key = f"stale-{time.time_ns()}"
    status, cache, body, _ = fetch(cdn + key)
    assert (status, cache) == (200, "MISS") and body.startswith(f"content {key} v1".encode())
    assert fetch(cdn + key)[1] == "HIT"
    time.sleep(TTL_S + 1.2)  # the copy is now stale
    try:
        faults.partition("store-1")
        for _ in range(3):
            status, cache, stale_body, seconds = fetch(cdn + key)
            assert status == 200 and cache in ("STALE", "UPDATING"), cache
            assert stale_body == body
            assert seconds < 1.0  # served at once, not after the origin timeout
        status, cache, _, seconds = fetch(cdn + f"never-cached-{time.time_ns()}")
        assert status == 504 and seconds < 5.0  # nothing to serve: the origin timed out
    finally:
        faults.heal("store-1")
    dk.wait_for(lambda: fetch(cdn + key)[1] == "HIT", 15, "a fresh copy after heal", interval=0.5)


def test_mosquitto_queues_while_partitioned_and_delivers_after_heal(sites, faults, dk):
    topic = f"sales/{time.time_ns()}"
    received: list[str] = []
    sub = subprocess.Popen(["docker", "exec", container(sites, "central"), "mosquitto_sub", "-h", "127.0.0.1",
                            "-p", str(urlsplit(sites["central"]["endpoints"]["mqtt"]).port),
                            "-t", f"stores/store-2/{topic}", "-q", "1", "-C", "5", "-W", "90"],
                           stdout=subprocess.PIPE, text=True)
    reader = threading.Thread(target=lambda: received.extend(line.strip() for line in sub.stdout), daemon=True)
    reader.start()
    port = str(urlsplit(sites["store-2"]["endpoints"]["mqtt"]).port)
    pub = ["docker", "exec", container(sites, "store-2"), "mosquitto_pub", "-h", "127.0.0.1", "-p", port,
           "-t", topic, "-q", "1"]
    try:
        # The bridge works: one message through before the cut.
        dk.wait_for(lambda: subprocess.run(pub + ["-m", "m0"], timeout=30).returncode == 0 and
                    dk.wait_for(lambda: "m0" in received, 5, "m0"), 30, "the bridge to carry m0", interval=1)
        faults.partition("store-2")
        for i in range(1, 5):
            assert subprocess.run(pub + ["-m", f"m{i}"], timeout=30).returncode == 0  # the local broker takes it
        time.sleep(2.0)
        assert received == ["m0"]  # nothing crossed the cut WAN
    finally:
        faults.heal("store-2")
    dk.wait_for(lambda: len(received) >= 5, 45, "the queued messages after heal", interval=0.5)
    assert received == ["m0", "m1", "m2", "m3", "m4"]
    sub.wait(30)


def test_a_dead_nginx_takes_the_site_down_and_it_comes_back(stack, sites, dk):
    def site():
        return next(s for s in stack.status()["sites"] if s["name"] == "store-2")

    before = site()["restarts"]
    subprocess.run(["docker", "exec", container(sites, "store-2"), "sh", "-c", "kill -9 $(cat /run/nginx.pid)"],
                   check=True, timeout=30)
    dk.wait_for(lambda: site()["restarts"] == before + 1 and site()["state"] == "running", 40,
                "store-2 to be restarted after nginx died")
    assert fetch(sites["store-2"]["endpoints"]["api"] + "/health")[0] == 200


def test_the_management_interface_is_the_workloads_own_port_not_nginx(sites):
    import ssl

    for name in ("store-1", "central"):
        s = sites[name]
        mgmt = urlsplit(s["endpoints"]["mgmt"])
        assert mgmt.scheme == "https" and mgmt.port not in {urlsplit(u).port for k, u in s["endpoints"].items()
                                                             if k != "mgmt"}
        ctx = ssl.create_default_context(cafile=s["ca_file"])
        try:
            urllib.request.urlopen(s["endpoints"]["mgmt"] + "/", context=ctx, timeout=5)
            raise AssertionError("no credentials, yet not refused")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401 and exc.headers["Server"] == "edge-site"   # the workload, not nginx
        ss = subprocess.run(["docker", "exec", container(sites, name), "ss", "-Htlnp", f"sport = :{mgmt.port}"],
                            capture_output=True, text=True, timeout=30).stdout
        assert "0.0.0.0:" in ss and "python3" in ss and "nginx" not in ss, ss
