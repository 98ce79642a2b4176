"""A degraded access link makes a latency must fail, seen through plain pytest.

A deployment started with `edge-conformance emulate up retail --detach`; store-1's access link (its
clients' side) gets 30 ms more one-way delay through the emulator's fault API; then the shipped suite
runs as ordinary pytest tests against the deployment's target file. Every request now pays 60 ms more,
so the store's branch-local budget (RTL-LAT-01: p90 <= 20 ms) fails. The deployment is always stopped.
"""

from __future__ import annotations

import re
import sys


from conformance.faults.emulated import EmulatedFaults
from conformance.model.paths import suites_dir

from tests.helpers.cli import CLI, run_command
from tests.helpers.results import entry, measured, read_results


def _field(output: str, name: str) -> str:
    m = re.search(rf"^{name}:\s+(\S+)", output, re.MULTILINE)
    assert m, f"no {name!r} in the output of emulate up:\n{output[-2000:]}"
    return m[1]


def test_a_degraded_access_link_fails_the_must(tmp_path):
    code, output = run_command([*CLI, "emulate", "up", "retail", "--detach", "--state-dir", tmp_path / "state"],
                               timeout=90)
    assert code == 0, output[-3000:]
    run_id = _field(output, "run id")
    try:
        target, control = _field(output, "target file"), _field(output, "control")
        EmulatedFaults(control).degrade("store-1", delay_ms=30, link="access")
        out = tmp_path / "out"
        code, output = run_command([sys.executable, "-m", "pytest", suites_dir() / "latency", "--edge-target",
                                    target, "--edge-profile", "retail", "--edge-only", "RTL-LAT-01@store-1",
                                    "--edge-out", out, "-p", "no:locust", "-q"], cwd=tmp_path, timeout=90)
        results = read_results(out, code, output)
        r = entry(results, "RTL-LAT-01", "store-1")
        assert r["status"] == "fail", r["message"]
        assert measured(r, "p50") >= 60, r["message"]  # 2 x (30 + 1) ms of access link, at the least
        assert "p90 = " in r["message"] and "expected <= 20 ms" in r["message"]
        assert code == 1, output[-3000:]  # the must's pytest test failed
        assert results["calibration"]["p50_us"] > 0  # plain pytest records the floor too
    finally:
        down, text = run_command([*CLI, "emulate", "down", run_id], timeout=60)
        assert down == 0, text
