"""The stack checks against a stand-in real target (docs/stack.md, "Pointing the checks at a real nginx or
broker"): mosquitto brokers of our own, central and one per store bridged to it through a linkd link with
the configuration the docker backend writes (healthy on store-1, `bridge-drops-queued` on store-2), and a
loopback HTTP cache per store (serving stale copies on store-1, not on store-2), declared as `cache` and
`mqtt` endpoints in a target file. The WAN cut is made by the stores' partition and heal hooks (only with
--allow-faults): they partition the linkd link and cut the cache's origin. Skipped without mosquitto."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from conformance.emulation.docker import siteinit
from tests.helpers.cli import requirement, run_edge, write_profile
from tests.helpers.processes import ReadyChild
from tests.measure.test_httpcache import StandInCache
from tests.measure.test_mqtt import MOSQUITTO, free_port, start_broker

CTL = Path(__file__).resolve().parents[1] / "resilience" / "standin_ctl.py"
STORES = {"store-1": [], "store-2": ["bridge-drops-queued"]}


def _linkd_put(control: str, link: str, upstream: int) -> int:
    req = urllib.request.Request(f"http://{control}/links/{link}", method="PUT",
                                 data=json.dumps({"upstream": f"127.0.0.1:{upstream}"}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())["listen_port"]


def _site_broker(root: Path, name: str, uplink: int, defects: list[str]) -> tuple[subprocess.Popen, int]:
    """mosquitto with siteinit's configuration for an edge site (bridged to 127.0.0.1:uplink)."""
    port = free_port()
    data = root / f"{name}-data"
    data.mkdir()
    os.chmod(data, 0o777)  # mosquitto drops to its own user for its persistence file
    conf = siteinit.mosquitto_conf({"name": name, "mqtt_port": port, "mqtt_uplink": f"127.0.0.1:{uplink}",
                                    "defects": defects})
    conf = conf.replace("/var/lib/mosquitto/", f"{data}/").replace(f"listener {port} 0.0.0.0",
                                                                    f"listener {port} 127.0.0.1")
    (root / f"{name}.conf").write_text(conf)
    proc = subprocess.Popen([MOSQUITTO, "-c", str(root / f"{name}.conf")], stdout=subprocess.DEVNULL,
                            stderr=open(root / f"{name}.log", "wb"))
    return proc, port


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    root = tmp_path_factory.mktemp("stack-standin")
    procs: list[subprocess.Popen] = []
    caches: list[StandInCache] = []
    linkd = None
    try:
        central, central_port = start_broker(root, "", "central")
        procs.append(central)
        linkd = ReadyChild([sys.executable, "-m", "conformance.emulation.linkd"], root / "linkd.log")
        control = f"127.0.0.1:{linkd.ready['control_port']}"
        sites = [{"name": "central", "role": "central", "endpoints": {"mqtt": f"mqtt://127.0.0.1:{central_port}"}}]
        for name, defects in STORES.items():
            link = _linkd_put(control, f"wan:{name}", central_port)
            broker, port = _site_broker(root, name, link, defects)
            procs.append(broker)
            cache = StandInCache(ttl=1.0, stale=not defects)
            caches.append(cache)
            ctl = f"{sys.executable} {CTL} --control {control}"
            origin = f"{sys.executable} -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)'"
            base = cache.base.removesuffix("/cdn/")
            sites.append({
                "name": name, "role": "edge", "uplink": "central",
                "endpoints": {"cache": cache.base, "mqtt": f"mqtt://127.0.0.1:{port}"},
                "hooks": {"partition": {"command": f"{ctl} partition wan:{{site}} && {origin} {base}/ctl/origin-down"},
                          "heal": {"command": f"{ctl} heal wan:{{site}} && {origin} {base}/ctl/origin-up"}}})
        target = root / "target.yaml"
        target.write_text(yaml.safe_dump({"name": "stack-standin", "sites": sites}, sort_keys=False))
        yield root, target
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(5)
        for cache in caches:
            cache.close()
        if linkd is not None:
            linkd.stop()


def test_the_stack_checks_through_hooks_on_a_real_broker_and_cache(standin, tmp_path):
    root, target = standin
    profile = write_profile(tmp_path / "stack.yaml", [
        requirement("S-CACHE", "stack.http_cache", "hit_ratio >= 90 % and stale_served_ratio == 100 %",
                    {"keys": 2, "repeats": 3, "content_ttl": "1 s", "duration": "0.5 s"}, ["edge"], "must"),
        requirement("S-MQTT", "stack.mqtt_bridge", "delivered_ratio == 100 % and lost == 0",
                    {"messages": 10, "duration": "2 s", "timeout": "8 s", "central_topic": "stores/{site}/{topic}"},
                    ["edge"], "must"),
    ])
    code, results, output = run_edge("--profile", profile, "--target", target, "--allow-faults",
                                     out=tmp_path / "out", timeout=120)
    got = {(r["id"], r["site"]): r for r in results["requirements"]}
    for rid in ("S-CACHE", "S-MQTT"):
        assert got[(rid, "store-1")]["status"] == "pass", got[(rid, "store-1")]["message"]
    cache, bridge = got[("S-CACHE", "store-2")], got[("S-MQTT", "store-2")]
    assert cache["status"] == "fail" and cache["measured"]["stale_served_ratio"]["value"] == 0, cache["message"]
    assert cache["measured"]["hit_ratio"]["value"] == 1.0
    assert bridge["status"] == "fail" and bridge["measured"]["lost"]["value"] > 0, bridge["message"]
    assert code == 1, output[-2000:]
    hooks = [n for n in got[("S-MQTT", "store-1")]["notes"] if "partition" in n or "heal" in n]
    assert hooks, got[("S-MQTT", "store-1")]["notes"]
