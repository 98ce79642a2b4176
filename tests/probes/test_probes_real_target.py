"""Probe deployment over real SSH (tests/helpers/sshbed.py: sshd on loopback; the "sites" are this machine
seen through ssh://, each with a probe directory root of its own), by the real CLI:

* `run --deploy-probes` installs a central and an edge probe, wires the edge to the central one, and the
  data and fleet musts that need the reference API pass on them; the scope records the deployment;
* a defect given as a probe option (probes.defects) fails the must that catches it;
* afterwards nothing is left: no process with the run's directory in its command line, no directory;
* a SIGKILL (or SIGTERM) of the harness mid-run leaves nothing running, and no directory, within a few seconds;
* without --deploy-probes nothing is installed;
* a site whose python lacks aiohttp: exit 2 and a message naming it, and nothing left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers.cli import popen_cli, requirement, run_cli, run_edge, write_profile
from tests.helpers.results import entry, validate_results
from tests.helpers.sshbed import SshBed


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    root = tmp_path_factory.mktemp("sshbed")
    bed = SshBed.start(root / "bed")
    yield bed
    bed.stop()


def _target(bed: SshBed, tmp_path: Path, *, python: str = sys.executable, edge_defects=(),
            probes: bool = True) -> tuple[Path, Path]:
    """(target file, the probe directory root): central `hq` and edge `store-1`, both only via ssh://."""
    root = tmp_path / "probe-root"
    host = {"spec": f"ssh://{bed.user}@127.0.0.1:{bed.port}", "ssh_identity_file": str(bed.key),
            "known_hosts": str(bed.known_hosts)}
    sites = [{"name": "hq", "role": "central", "hosts": [host]},
             {"name": "store-1", "role": "edge", "uplink": "hq", "hosts": [host]}]
    if probes:
        sites[0]["probes"] = {"python": python, "dir": str(root)}
        sites[1]["probes"] = {"python": python, "dir": str(root), "defects": list(edge_defects)}
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump({"name": "probe-lab", "sites": sites}, sort_keys=False))
    return path, root


def _profile(tmp_path: Path, within: str = "10 s") -> Path:
    return write_profile(tmp_path / "p.yaml", [
        requirement("DATA", "data.privacy", "leaked_fields == 0 and leaked_local == 0 and forwarded_ratio >= 100 %",
                    {"fields": ["customer_name", "card_number", "email"], "records": 3}, sites=["edge"]),
        requirement("REG", "fleet.registry", "registered_ratio >= 100 %", {"within": within}, sites=["central"]),
    ])


def _left(root: Path) -> tuple[str, list[str]]:
    """(processes whose command line names the probe root, what is in the root)."""
    procs = subprocess.run(["pgrep", "-af", str(root)], capture_output=True, text=True).stdout.strip()
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []
    return procs, files


def _wait_nothing_left(root: Path, within: float) -> tuple[str, list[str]]:
    deadline = time.monotonic() + within
    while True:
        left = _left(root)
        if left == ("", []) or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def test_deployed_probes_are_measured_and_removed(bed, tmp_path):
    target, root = _target(bed, tmp_path)
    started = time.monotonic()
    code, res, output = run_edge("--profile", _profile(tmp_path), "--target", target, "--deploy-probes",
                                 out=tmp_path / "out", timeout=90)
    took = time.monotonic() - started
    validate_results(res)
    for rid, site in (("DATA", "store-1"), ("REG", "hq")):
        r = entry(res, rid, site)
        assert r["status"] == "pass", (rid, r["status"], r.get("message"), output[-3000:])
    assert code == 0, output[-2000:]
    assert res["scope"]["probes"] == ["hq", "store-1"]
    assert any(c.startswith("--deploy-probes") for c in res["scope"]["changed_by"]), res["scope"]
    sites = {s["name"]: s for s in res["target"]["sites"]}
    central_url = sites["hq"]["endpoints"]["api"]
    assert central_url.startswith("http://127.0.0.1:")
    assert sites["store-1"]["endpoints"]["wan"] == central_url  # the edge probe reports to the central one
    assert res["target"]["probes_deployed"] == ["hq", "store-1"]
    assert (tmp_path / "out" / "probes" / "store-1.log").exists()
    assert _wait_nothing_left(root, 5) == ("", []), "the run left something on the site"
    print(f"deploy run: {took:.1f} s")


def test_a_probe_defect_fails_its_must_and_nothing_installed_without_the_option(bed, tmp_path):
    target, root = _target(bed, tmp_path, edge_defects=["leak-personal"])
    code, res, output = run_edge("--profile", _profile(tmp_path), "--target", target, "--deploy-probes",
                                 "--requirement", "DATA", out=tmp_path / "out", timeout=90)
    r = entry(res, "DATA", "store-1")
    assert r["status"] == "fail", (r["status"], r.get("message"), output[-3000:])
    assert r["measured"]["leaked_fields"]["value"] > 0
    assert code == 1
    assert _wait_nothing_left(root, 5) == ("", [])
    # the same target without --deploy-probes: the probes: sections are ignored, nothing is installed
    root.rmdir()  # the root (probes.dir) is the site's, made by the first install: gone, to see nothing made it
    code2, res2, output2 = run_edge("--profile", _profile(tmp_path), "--target", target, out=tmp_path / "out2",
                                    timeout=60)
    assert not root.exists(), _left(root)
    unprobed = entry(res2, "DATA", "store-1")  # the site declares no endpoint of its own
    assert unprobed["status"] == "error" and 'no endpoint "api"' in unprobed["message"], (unprobed, output2[-2000:])
    assert "probes" not in res2["target"] and res2["scope"]["probes"] == []


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_the_harness_killed_mid_run_leaves_nothing_running(bed, tmp_path, signum):
    # a registry that never sees the edge (no-heartbeat) keeps the run waiting for `within`: killed then
    target, root = _target(bed, tmp_path, edge_defects=["no-heartbeat"])
    proc = popen_cli("run", "--profile", _profile(tmp_path, within="60 s"), "--target", target, "--deploy-probes",
                     "--requirement", "REG", "--out", tmp_path / "out")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            procs, _ = _left(root)
            if procs.count("probe.pyz") >= 2 and (tmp_path / "out" / "probes" / "store-1.log").exists():
                break
            assert proc.poll() is None, proc.communicate()[0][-2000:]
            time.sleep(0.2)
        else:
            pytest.fail(f"the probes did not come up: {_left(root)}")
        time.sleep(1.0)  # the check is waiting on the registry now
        killed = time.monotonic()
        os.kill(proc.pid, signum)  # SIGKILL: the ssh child loses its stdin's writer; SIGTERM: the plugin removes
        proc.wait(20)
        left = _wait_nothing_left(root, 10)
        gone_after = time.monotonic() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert left == ("", []), f"left on the site after the harness was killed: {left}"
    print(f"nothing left {gone_after:.1f} s after the {signal.Signals(signum).name}")


def test_a_site_python_without_aiohttp_is_named(bed, tmp_path):
    python = tmp_path / "bin" / "python-bare"
    python.parent.mkdir()
    python.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")  # no site-packages: no aiohttp
    python.chmod(0o755)
    target, root = _target(bed, tmp_path, python=str(python))
    done = run_cli("run", "--profile", _profile(tmp_path), "--target", target, "--deploy-probes",
                   "--out", tmp_path / "out")
    code, output = done.returncode, done.stdout + done.stderr
    assert code == 2, output[-2000:]
    assert "probe of site hq" in output and "lacks aiohttp" in output, output[-2000:]
    assert _wait_nothing_left(root, 5) == ("", [])
