"""The data and fleet checks against a real target (no emulator): a central and two edge workload
processes on loopback, described by a target file. Network efficiency then rests on the sites' own
counters (there is no WAN link to cross-check), and every check passes on healthy sites and fails on the
site started with its defect. The emulated side (link counters, every shipped profile) is
test_mutation.py's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers.cli import cli_env
from tests.helpers.processes import ReadyChild

WORKLOAD = [sys.executable, "-m", "edge_workloads"]
FAST = json.dumps({"heartbeat_interval_s": 0.5, "config_poll_interval_s": 0.5})

PROFILE = """\
id: real-data-fleet
version: "1"
title: data and fleet checks on a real target
requirements:
  - {id: NE, title: condensed, level: must, check: data.network_efficiency, applies_to: edge,
     params: {readings: 1000, wait: 8 s}, expect: wan_ratio <= 10 % and delivered_ratio >= 100 %}
  - {id: PRIV, title: anonymised, level: must, check: data.privacy, applies_to: edge,
     params: {wait: 5 s}, expect: leaked_fields == 0 and leaked_local == 0}
  - {id: REG, title: registry, level: must, check: fleet.registry, applies_to: central,
     params: {within: 4 s}, expect: registered_ratio >= 100 %}
  - {id: CFG, title: config, level: must, check: fleet.config_push, applies_to: central,
     params: {within: 4 s}, expect: reached_ratio >= 100 %}
"""


def _site(root: Path, role: str, name: str, *extra: str) -> ReadyChild:
    """A workload process; its ready line has its port (`.url`)."""
    return ReadyChild([*WORKLOAD, "--role", role, "--name", name, "--data-dir", str(root / name), "--port", "0",
                       *extra], root / f"{name}.log", grace=10)


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    sites = []
    try:
        central = _site(root, "central", "central")
        sites.append(central)
        good = _site(root, "edge", "good-1", "--central-url", central.url, "--site-config", FAST)
        sites.append(good)
        bad = _site(root, "edge", "bad-1", "--central-url", central.url, "--site-config", FAST,
                   "--defects", "raw-telemetry,leak-personal,no-heartbeat,ignore-config")
        sites.append(bad)
        doc = {"name": "real-loopback", "sites": [
            {"name": "central", "role": "central", "endpoints": {"api": central.url}},
            {"name": "good-1", "role": "edge", "uplink": "central", "endpoints": {"api": good.url}},
            {"name": "bad-1", "role": "edge", "uplink": "central", "endpoints": {"api": bad.url}}]}
        path = root / "target.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        (root / "profile.yaml").write_text(PROFILE)
        yield root
    finally:
        for s in reversed(sites):
            s.stop()


def _run(root: Path, *args: str) -> tuple[int, dict, str]:
    out = root / ("out-" + "-".join(a.strip("-") for a in args if not a.startswith("/"))[:40])
    proc = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--profile", str(root / "profile.yaml"),
                           "--target", str(root / "target.yaml"), "--out", str(out), *args],
                          env=cli_env(), capture_output=True, text=True, timeout=180, cwd=root)
    results = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    return proc.returncode, results, proc.stdout + proc.stderr


def _entries(results: dict) -> dict[tuple[str, str], dict]:
    return {(e["id"], e["site"]): e for e in results.get("requirements", [])}


def test_healthy_site_passes_on_its_own_counters(target):
    code, results, output = _run(target, "--site", "good-1")
    got = _entries(results)
    ne, priv = got[("NE", "good-1")], got[("PRIV", "good-1")]
    assert ne["status"] == "pass" and priv["status"] == "pass", output[-3000:]
    assert "link_ratio" not in ne["measured"]  # nothing to cross-check on a real target
    assert ne["measured"]["wan_ratio"]["value"] == ne["measured"]["reported_ratio"]["value"] < 0.1
    assert any("site counters (/telemetry/stats)" in n for n in ne["notes"])
    assert priv["measured"]["forwarded_ratio"]["value"] == 1
    assert code == 3, output[-3000:]  # narrowed to --site good-1: the other sites' musts are not measured


def test_each_check_fails_on_its_defect(target):
    code, results, output = _run(target)
    got = _entries(results)
    assert got[("NE", "bad-1")]["status"] == "fail" and got[("NE", "bad-1")]["measured"]["wan_ratio"]["value"] > 0.5
    priv = got[("PRIV", "bad-1")]
    assert priv["status"] == "fail"
    assert priv["measured"]["leaked_fields"]["value"] == 9 and priv["measured"]["leaked_local"]["value"] == 3
    reg, cfg = got[("REG", "central")], got[("CFG", "central")]
    assert reg["status"] == "fail" and reg["measured"]["registered"]["value"] == 1
    assert any("no heartbeat from bad-1" in n for n in reg["notes"]), reg["notes"]
    assert cfg["status"] == "fail" and cfg["measured"]["reached_ratio"]["value"] == 0.5
    assert any(n.startswith("bad-1: applied version 0") for n in cfg["notes"]), cfg["notes"]
    assert code == 1, output[-3000:]


def test_fleet_checks_skip_on_a_site_that_is_nobodys_uplink(target, tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text(PROFILE.replace("applies_to: central", "applies_to: good-1"))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--profile", str(profile),
                           "--target", str(target / "target.yaml"), "--out", str(out), "--suite", "fleet"],
                          env=cli_env(), capture_output=True, text=True, timeout=120)
    got = _entries(json.loads((out / "results.json").read_text()))
    for rid in ("REG", "CFG"):
        assert got[(rid, "good-1")]["status"] == "not-applicable"  # a fact of the site: no fleet to manage
        assert "runs on a central site (applies_to: [central])" in got[(rid, "good-1")]["message"]
    assert proc.returncode == 3, proc.stdout[-2000:]  # narrowed to --suite fleet: incomplete
    assert os.path.exists(out / "report.html")
