"""The resilience suite against a stand-in REAL target (local processes we control), through fault hooks.

The hooks partition/heal/degrade a linkd we started (standin_ctl.py) and pause/resume the edge process;
marker files prove which hooks ran. Covered: hooks never run without --allow-faults (skip), a missing
hook skips, a failing hook is an error that names it (and no secret), heal runs after Ctrl-C, and with
every hook in place the checks measure and pass.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import yaml

from tests.helpers.cli import popen_cli, run_edge
from tests.helpers.results import entries
from tests.helpers.waits import wait_for

SECRET = "standin-s3cr3t-token"


def _profile(path, requirements):
    path.write_text(yaml.safe_dump({"id": path.stem, "version": "0", "title": "stand-in checks",
                                    "requirements": requirements}, sort_keys=False))
    return path


def _cut_hooks(standin, partition: str | None = None) -> dict:
    """partition/heal hooks that drive our linkd; each leaves a marker file named after the site ({site})."""
    py, ctl, control = sys.executable, standin.ctl("x")[1], standin.control

    def step(action: str) -> str:
        return (f'"{py}" "{ctl}" --control {control} --log "{standin.root}/hooks.log" {action} wan:store-1 && '
                f'touch "{standin.root}/{action}-{{site}}.marker"')

    return {"partition": {"command": partition or step("partition"), "timeout": "10 s"},
            "heal": {"command": step("heal"), "timeout": "10 s"}}


def test_permission_missing_hook_and_failing_hook(standin, tmp_path):
    sites = {
        "store-ok": _cut_hooks(standin),
        "store-noheal": {"partition": _cut_hooks(standin)["partition"]},
        "store-fail": _cut_hooks(
            standin, partition='echo "trying" >&2; echo "partition refused for token ${STANDIN_SECRET}" >&2; exit 3'),
    }
    target = standin.target(tmp_path / "target.yaml", sites)
    profile = _profile(tmp_path / "gate.yaml", [{
        "id": "G-01", "title": "keeps answering while cut", "level": "must", "check": "resilience.partition",
        "applies_to": "edge", "params": {"duration": "1 s", "workloads": []}, "expect": "availability >= 99 %"}])
    env = {"STANDIN_SECRET": SECRET}

    # 1. without --allow-faults: every requirement is skipped and no hook runs
    code, results, output = run_edge("--profile", profile, "--target", target, "--suite", "resilience",
                                   out=tmp_path / "no-permission", env=env)
    got = entries(results, "G-")
    assert {r["status"] for r in got.values()} == {"not-measured"}, output[-2000:]
    assert all("not measured: fault hooks not allowed; to measure it: pass --allow-faults" in r["message"]
               for r in got.values())
    assert not list(standin.root.glob("*.marker"))
    assert code == 3  # musts that apply and were not measured: never conformant

    # 2. with --allow-faults: passes where the hooks are complete, skips without heal, errors on failure
    code, results, output = run_edge("--profile", profile, "--target", target, "--suite", "resilience",
                                   "--allow-faults", out=tmp_path / "allowed", env=env)
    got = entries(results, "G-")
    ok, noheal, fail = got[("G-01", "store-ok")], got[("G-01", "store-noheal")], got[("G-01", "store-fail")]
    assert ok["status"] == "pass", ok["message"]
    assert noheal["status"] == "not-measured" and "no fault hook: heal" in noheal["message"]
    assert "add a `heal` fault hook to site store-noheal" in noheal["message"]
    assert fail["status"] == "error", fail["message"]
    assert "hook partition failed with exit code 3" in fail["message"]
    assert "last stderr line: partition refused for token ${STANDIN_SECRET}" in fail["message"]
    assert SECRET not in (tmp_path / "allowed" / "results.json").read_text()
    assert SECRET not in output
    assert code == 3  # a must could not be decided: incomplete
    assert standin.marker("partition-store-ok").exists() and standin.marker("heal-store-ok").exists()
    assert not standin.marker("partition-store-noheal").exists()  # never cut without a way back
    assert standin.marker("heal-store-fail").exists()  # a failed partition is healed all the same
    assert standin.link()["partitioned"] is False


def test_checks_pass_on_a_healthy_real_target_through_hooks(standin, tmp_path):
    edge_pid = standin.edge.pid
    hooks = _cut_hooks(standin)
    hooks["degrade"] = {"command": standin.ctl("degrade", "{delay_ms}", "{jitter_ms}", "{loss}", "{bandwidth_bps}"),
                        "timeout": "10 s"}
    hooks["pause"] = {"command": f"kill -STOP {edge_pid}", "timeout": "5 s"}
    hooks["resume"] = {"command": ["kill", "-CONT", str(edge_pid)], "timeout": "5 s"}
    target = standin.target(tmp_path / "target.yaml", {"store-1": hooks})
    profile = _profile(tmp_path / "real.yaml", [
        {"id": "R-01", "title": "autonomy", "level": "must", "check": "resilience.partition", "applies_to": "edge",
         "params": {"duration": "2 s", "content_ttl": "1 s"},
         "expect": "availability >= 99 % and pos_accepted >= 100 % and cache_served == true and auth_ok == true"},
        {"id": "R-02", "title": "resync", "level": "must", "check": "resilience.resync", "applies_to": "edge",
         "params": {"duration": "3 s", "records": 10, "timeout": "15 s"},
         "expect": "delivered_ratio >= 100 % and duplicates == 0 and digest_match == true"},
        {"id": "R-03", "title": "hang", "level": "must", "check": "resilience.recovery", "applies_to": "edge",
         "params": {"kill": False, "hang_timeout": "0.5 s", "pause_for": "1 s"},
         "expect": "hang_detected == true and resumed_ok == true"},
        {"id": "R-04", "title": "degraded", "level": "must", "check": "resilience.degraded", "applies_to": "edge",
         "params": {"delays_ms": [10], "losses": ["2 %"], "bandwidths": ["1 Mbit/s"], "ops_per_step": 2},
         "expect": "min_success_ratio >= 90 % and max_duration <= 5 s"},
        {"id": "R-05", "title": "crash", "level": "must", "check": "resilience.recovery", "applies_to": "edge",
         "params": {"pause": False}, "expect": "data_survived == true"},
        {"id": "R-06", "title": "central down", "level": "must", "check": "resilience.resync", "applies_to": "edge",
         "params": {"outage": "central"}, "expect": "delivered_ratio >= 100 %"},
    ])
    (standin.root / "hooks.log").unlink(missing_ok=True)
    code, results, output = run_edge("--profile", profile, "--target", target, "--suite", "resilience",
                                   "--allow-faults", out=tmp_path / "out")
    got = entries(results, "R-")
    for rid in ("R-01", "R-02", "R-03", "R-04"):
        assert got[(rid, "store-1")]["status"] == "pass", got[(rid, "store-1")]["message"]
    crash = got[("R-05", "store-1")]
    assert crash["status"] == "not-measured" and "no fault hook: kill" in crash["message"]
    down = got[("R-06", "store-1")]  # central has no hooks at all: named in the reason
    assert down["status"] == "not-measured" and "no fault hook: stop (site central)" in down["message"]
    assert "to measure it: add a `stop` fault hook to site central" in down["message"]
    assert code == 3, output[-2000:]  # two musts could not be measured: incomplete
    # the hooks ran as written, with the placeholders filled; reset = degrade with zeros
    log = (standin.root / "hooks.log").read_text().splitlines()
    assert "degrade wan:store-1 10 0 0 0" in log and "degrade wan:store-1 0 0 0.02 0" in log
    assert "degrade wan:store-1 0 0 0 1000000" in log and log.count("degrade wan:store-1 0 0 0 0") == 3
    assert standin.marker("partition-store-1").exists() and standin.marker("heal-store-1").exists()
    # partition and resync default to a drop-cut; the hook was told, and so was heal
    assert log.count("partition wan:store-1 drop") == 2 and log.count("heal wan:store-1 drop") == 2, log
    assert standin.link()["partition_mode"] == "drop"  # the stand-in's linkd made the cut it was asked for
    notes = " ".join(got[("R-01", "store-1")]["notes"])
    assert "hook partition (" in notes and "exit 0" in notes
    link = standin.link()
    assert link["partitioned"] is False and link["delay_ms"] == 0 and link["bandwidth_bps"] is None


def test_ctrl_c_during_a_partition_still_heals(standin, tmp_path):
    target = standin.target(tmp_path / "target.yaml", {"store-1": _cut_hooks(standin)})
    profile = _profile(tmp_path / "long.yaml", [{
        "id": "C-01", "title": "a long cut", "level": "must", "check": "resilience.partition",
        "applies_to": "edge", "params": {"duration": "60 s", "workloads": []}, "expect": "availability >= 99 %"}])
    for m in ("partition-store-1", "heal-store-1"):
        standin.marker(m).unlink(missing_ok=True)
    proc = popen_cli("run", "--profile", profile, "--target", target, "--suite", "resilience", "--allow-faults",
                     "--out", tmp_path / "out", stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: standin.marker("partition-store-1").exists() or proc.poll() is not None, 60,
                 "the partition hook to run")
        assert proc.poll() is None, proc.communicate()[0][-2000:]
        assert standin.link()["partitioned"] is True
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGINT)  # Ctrl-C, mid-partition
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert standin.marker("heal-store-1").exists(), output[-2000:]
    assert standin.link()["partitioned"] is False
    assert proc.returncode != 0


def test_resync_with_central_down_through_central_stop_and_start_hooks(standin, tmp_path):
    """`outage: central` on a real target: central's own stop/start hooks take it down and back. The
    stand-in's central is "stopped" by SIGSTOP (it accepts connections and never answers, as a hung or
    powered-off box behind a load balancer would look) and started by SIGCONT."""
    pid = standin.central.pid
    central_hooks = {"stop": {"command": f"kill -STOP {pid}", "timeout": "5 s"},
                     "start": {"command": ["kill", "-CONT", str(pid)], "timeout": "5 s"}}
    target = standin.target(tmp_path / "target.yaml", {"store-1": {}}, central_hooks=central_hooks)
    profile = _profile(tmp_path / "central.yaml", [
        {"id": "R-06", "title": "central down", "level": "must", "check": "resilience.resync",
         "applies_to": "edge", "params": {"outage": "central", "duration": "3 s", "records": 10, "timeout": "20 s"},
         "expect": "delivered_ratio >= 100 % and duplicates == 0 and digest_match == true"}])
    code, results, output = run_edge("--profile", profile, "--target", target, "--suite", "resilience",
                                   "--allow-faults", out=tmp_path / "out")
    r = entries(results, "R-")[("R-06", "store-1")]
    assert r["status"] == "pass", (r["message"], r["notes"])
    notes = " ".join(r["notes"])
    assert "hook stop (" in notes and "hook start (" in notes, notes
    assert code == 0, output[-2000:]
