"""Site defects on the docker backend behave as on the local one (docs/workloads.md, Defects).

One small deployment (central + two stores) carries every defect under test, so it is brought up
once: `shop` has `expiring-cert`, `default-credentials` and `health-broken` (its /health lies, so
bring-up polls /ping), `kiosk` has `exits-after-start` (status 0 a second after ready: the
on-failure restart policy leaves it down). The shipped requirements fail on exactly what each
defect breaks, and pass on the healthy central.
"""

from __future__ import annotations

import json
import subprocess
import sys
import ssl
import time
import urllib.error
import urllib.request

import pytest
import yaml

from conformance.emulation import start_deployment
from conformance.emulation.deployment import EmulationError
from conformance.faults.emulated import EmulatedFaults, FaultError

pytestmark = pytest.mark.docker  # containers: slow by tests/conftest.py

TOPOLOGY = """\
name: defects
description: central and two stores, with defects
sites:
  - {name: central, role: central, resources: {cpus: 1, memory: 128 MiB}}
  - {name: shop, role: edge, resources: {cpus: 0.5, memory: 96 MiB}}
  - {name: kiosk, role: edge, resources: {cpus: 0.5, memory: 96 MiB}}
wan: {default_delay: 5 ms}
"""
DEFECTS = ["shop:expiring-cert", "shop:default-credentials", "shop:health-broken", "kiosk:exits-after-start"]


@pytest.fixture(scope="module")
def deployment(site_image, dk, tmp_path_factory):
    path = tmp_path_factory.mktemp("defects") / "defects.yaml"
    path.write_text(TOPOLOGY)
    try:
        dep = start_deployment(str(path), run_id=dk.run_id("defects"), backend="docker", defects=DEFECTS, timeout=90)
    except EmulationError as exc:
        # Docker publishes a port the backend found free a moment earlier; on a busy runner another
        # process can take it in between ("address already in use"; the backend does not retry yet:
        # noted). A new bring-up, with new ports and a new run id, once.
        if "address already in use" not in str(exc):
            raise
        dep = start_deployment(str(path), run_id=dk.run_id("defects"), backend="docker", defects=DEFECTS, timeout=90)
    try:
        yield dep
    finally:
        dep.stop()


@pytest.fixture(scope="module")
def faults(deployment):
    return EmulatedFaults(deployment.control_url)


def status_of(deployment, name: str) -> dict:
    return next(s for s in deployment.status()["sites"] if s["name"] == name)


def test_the_requirements_fail_on_what_each_defect_breaks(deployment, tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--target", str(deployment.target_file),
                           "-p", "edge-baseline", "-r", "BASE-SEC-02", "-r", "BASE-SEC-03", "-r", "BASE-HOST-01",
                           "--site", "central", "--site", "shop", "--site", "kiosk", "--out", str(out)],
                          capture_output=True, text=True, timeout=180)
    assert (out / "results.json").exists(), done.stdout[-3000:] + done.stderr[-3000:]
    results = {(r["id"], r["site"]): r for r in json.loads((out / "results.json").read_text())["requirements"]}
    assert done.returncode == 1
    for rid in ("BASE-SEC-02", "BASE-SEC-03", "BASE-HOST-01"):
        assert results[(rid, "central")]["status"] == "pass", results[(rid, "central")]["message"]
    tls, creds = results[("BASE-SEC-02", "shop")], results[("BASE-SEC-03", "shop")]
    assert tls["status"] == "fail" and tls["measured"]["days_to_expiry"]["value"] <= 7, tls["message"]
    assert tls["measured"]["expiry_ok"]["value"] in (False, 0) and tls["measured"]["cert_valid"]["value"] in (True, 1)
    assert creds["status"] == "fail" and creds["measured"]["accepted_defaults"]["value"] == 1, creds["message"]
    assert results[("BASE-HOST-01", "shop")]["status"] == "pass"   # health-broken: the process still runs
    gone = results[("BASE-HOST-01", "kiosk")]
    assert gone["status"] == "fail" and gone["measured"]["running"]["value"] in (False, 0), gone["message"]
    assert "is exited (exit 0)" in gone["message"]


def test_a_clean_exit_stays_down_and_a_kill_is_restarted(deployment, faults, dk):
    """Restart=on-failure, as the local backend: exit 0 by itself -> `exited`, not restarted; SIGKILL
    (137) -> restarted, with the management interface back on its port; `start` brings an exited one
    back (and this one exits again: that is its defect)."""
    kiosk = status_of(deployment, "kiosk")
    assert (kiosk["state"], kiosk["last_exit"], kiosk["restarts"], kiosk["pid"]) == ("exited", 0, 0, None), kiosk
    with pytest.raises(FaultError, match="not running"):
        faults.kill("kiosk")

    shop = status_of(deployment, "shop")
    faults.kill("shop")
    dk.wait_for(lambda: (s := status_of(deployment, "shop"))["restarts"] == shop["restarts"] + 1
                and s["state"] == "running", 30, "shop to be restarted after a kill")
    assert status_of(deployment, "shop")["last_exit"] == 137
    site = next(s for s in yaml.safe_load(deployment.target_file.read_text())["sites"] if s["name"] == "shop")
    ctx = ssl.create_default_context(cafile=site["ca_file"])
    with pytest.raises(urllib.error.HTTPError) as denied:   # TLS verified, then 401: it is back
        urllib.request.urlopen(site["endpoints"]["mgmt"] + "/", context=ctx, timeout=5)
    assert denied.value.code == 401

    faults.start("kiosk")
    dk.wait_for(lambda: status_of(deployment, "kiosk")["state"] == "exited", 15, "kiosk to exit again")
    time.sleep(1.5)  # longer than the restart delay: still down
    kiosk = status_of(deployment, "kiosk")
    assert (kiosk["state"], kiosk["last_exit"], kiosk["restarts"]) == ("exited", 0, 0), kiosk
