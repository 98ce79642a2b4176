"""Retail judged on the SSH lab (tests/helpers/sshlab.py): store servers stood in for by containers with a
real sshd, reached by the harness ONLY through ssh:// hosts with strict host keys. By the real CLI,
`edge-conformance run --profile retail --target LAB --deploy-probes --allow-faults`:

* the probes go to the lab sites over ssh (a zipapp run by the site's python), the store's WAN is cut by
  nft inside the store's own network namespace (the built-in fault, through its ssh host), and the
  partition, resync, flap, fleet and data requirements of retail are measured (none not-measured) and pass;
* the same defects that fail retail's musts on the emulated deployment fail them here
  (forward-synchronously: RTL-RES-02; leak-personal: RTL-DATA-01);
* a SIGKILL of the harness's whole process group mid-partition leaves the sites healed (the dead-man
  removes the cut within duration + margin) and clean (no probe running, no probe directory).

What is observed on the sites (nft ruleset, processes, /tmp) is read with `docker exec`; everything the
harness measures goes through ssh and the published probe ports. Slow (the module name) and marked docker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.helpers.cli import CLI, cli_env, run_edge
from tests.helpers.results import entry, validate_results
from tests.helpers.sshlab import TestLab
from tests.helpers.waits import wait_for

pytestmark = pytest.mark.docker

MEASURED = ("RTL-RES-01", "RTL-RES-02", "RTL-RES-03", "RTL-RES-04", "RTL-RES-05", "RTL-RES-10", "RTL-FLT-01", "RTL-FLT-02",
            "RTL-DATA-01")
ON_CENTRAL = ("RTL-FLT-01", "RTL-FLT-02")
CUT_S, KILL_MARGIN_S = 3.0, 3.0  # RTL-RES-01's cut; a short dead-man margin for the SIGKILL test


@pytest.fixture(scope="module")
def lab(docker_client, site_image, tmp_path_factory):
    lab = TestLab.start(docker_client, site_image.tag, tmp_path_factory.mktemp("sshlab"))
    try:
        code, out = lab.sh("store-1", "command -v sshd nft && test -x /usr/local/bin/lab-python3")
        assert code == 0, f"the site image lacks sshd or nft (BASE_PACKAGES): {out}"
        yield lab
    finally:
        lab.stop()
    assert lab.left() == {"containers": [], "networks": []}


def _requirements(*ids: str) -> list[str]:
    return [a for rid in ids for a in ("--requirement", rid)]


def _cut(lab: TestLab) -> str:
    return lab.sh("store-1", "nft list ruleset 2>&1")[1]


def _probes_left(lab: TestLab) -> dict[str, str]:
    """Per site: probe processes and probe directories still there ('' when none)."""
    left = {}
    for site in lab.sites:
        out = lab.sh(site.name, "pgrep -af '[p]robe.pyz'; ls -d /tmp/edge-conformance-probe-* 2>/dev/null; "
                                "pgrep -af 'edgeconf[-]deadman'; true")[1].strip()
        left[site.name] = out
    return left


def _clean(lab: TestLab) -> bool:
    return "edgeconf" not in _cut(lab) and not any(_probes_left(lab).values())


def _reaches_central(lab: TestLab) -> bool:
    """The store's packets reach central's address (ping: the probes may be gone, the cut drops ICMP too)."""
    return lab.sh("store-1", f"ping -c 1 -W 1 {lab.site('hq').address} >/dev/null")[0] == 0


def test_retail_on_the_ssh_lab_measures_and_passes(lab, tmp_path):
    target = lab.target(tmp_path / "lab.yaml")
    started = time.monotonic()
    code, res, output = run_edge("--profile", "retail", "--target", target, "--deploy-probes", "--allow-faults",
                                 *_requirements(*MEASURED), out=tmp_path / "out", timeout=150)
    took = time.monotonic() - started
    validate_results(res)  # a real site's unknown CPU use is null in the pressure evidence
    for rid in MEASURED:
        r = entry(res, rid, "hq" if rid in ON_CENTRAL else "store-1")
        assert r["status"] == "pass", (rid, r["status"], r.get("message"), r.get("notes"), output[-3000:])
    # the musts --requirement left out are not-measured (scope.narrowed_by): incomplete, exit 3, and no fail
    assert code == 3 and res["verdict"] == "incomplete", (code, output[-2000:])
    others = {r["status"] for r in res["requirements"] if r["id"] not in MEASURED}
    assert others <= {"not-measured", "not-applicable"}, others
    notes = " ".join(entry(res, "RTL-RES-01", "store-1")["notes"])
    hq = lab.site("hq")
    assert f"nft: {hq.address}) on store-1" in notes, notes  # cut inside the store, through its ssh host
    assert f"tag edgeconf:{res['run_id']}:" in notes, notes
    assert res["target"]["probes_deployed"] == ["hq", "store-1"]
    assert wait_for(lambda: _clean(lab), 10, "nothing left on the lab sites"), _probes_left(lab)
    assert _reaches_central(lab)
    print(f"retail on the SSH lab: {len(MEASURED)} requirements measured and passed in {took:.1f} s")


def test_the_same_defects_fail_the_same_musts(lab, tmp_path):
    target = lab.target(tmp_path / "lab.yaml", defects={"store-1": ["forward-synchronously", "leak-personal"]})
    code, res, output = run_edge("--profile", "retail", "--target", target, "--deploy-probes", "--allow-faults",
                                 *_requirements("RTL-RES-02", "RTL-DATA-01"), out=tmp_path / "out", timeout=120)
    for rid in ("RTL-RES-02", "RTL-DATA-01"):
        r = entry(res, rid, "store-1")
        assert r["status"] == "fail", (rid, r["status"], r.get("message"), output[-3000:])
    assert code == 1, output[-2000:]
    assert wait_for(lambda: _clean(lab), 10, "nothing left on the lab sites"), _probes_left(lab)


def test_sigkill_mid_partition_leaves_the_sites_healed_and_clean(lab, tmp_path):
    target = lab.target(tmp_path / "lab.yaml", margin=f"{KILL_MARGIN_S:g} s")
    argv = [*CLI, "run", "--profile", "retail", "--target", target, "--deploy-probes", "--allow-faults",
            *_requirements("RTL-RES-01"), "--out", tmp_path / "out"]
    run = subprocess.Popen([str(a) for a in argv], env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, start_new_session=True)  # its own group: the kill takes all of it
    try:
        wait_for(lambda: "edgeconf" in _cut(lab) or run.poll() is not None, 60, "the run's cut", interval=0.05)
        assert run.poll() is None, run.communicate()[0][-2000:]
        os.killpg(run.pid, signal.SIGKILL)  # mid-cut: the harness and its group; no finally of it runs
        killed = time.monotonic()
        run.communicate(timeout=10)
        assert not _reaches_central(lab), "the cut is gone although nothing healed it yet"
        wait_for(lambda: "edgeconf" not in _cut(lab), CUT_S + KILL_MARGIN_S + 5, "the dead-man removing the cut",
                 interval=0.1)
        healed = time.monotonic() - killed
        wait_for(lambda: _clean(lab), 10, "no probe and no dead-man left on the sites")
        clean = time.monotonic() - killed
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate(timeout=10)
    assert healed < CUT_S + KILL_MARGIN_S + 2.0, healed
    assert _reaches_central(lab)
    print(f"SIGKILL mid-partition: cut removed by the dead-man {healed:.1f} s after the kill "
          f"(cut {CUT_S:g} s + margin {KILL_MARGIN_S:g} s), sites clean {clean:.1f} s after it")
