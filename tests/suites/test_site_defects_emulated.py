"""End to end, with the real CLI: each site-level defect of the emulator (docs/workloads.md) makes the
shipped must requirement it is for fail, while the same requirement passes on a healthy site of the
same deployment (`edge-conformance run --target emulated:TOPO --defect SITE:DEFECT`). Defects that
share a site break only their own requirement.
"""

from __future__ import annotations

import json
import subprocess
import sys


CLI = [sys.executable, "-m", "conformance.cli", "run"]


def run(tmp_path, *args: str, timeout: float = 180) -> dict[tuple[str, str, str], dict]:
    """(profile, requirement, site) -> its entry in results.json."""
    out = tmp_path / "out"
    proc = subprocess.run([*CLI, *args, "--out", str(out)], capture_output=True, text=True, timeout=timeout)
    assert (out / "results.json").exists(), f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    results = json.loads((out / "results.json").read_text())
    assert proc.returncode == 1 and results["verdict"] == "non-conformant", proc.stdout[-3000:]
    return {(r["profile"], r["id"], r["site"]): r for r in results["requirements"]  # without the rest of
            if not (r["status"] == "not-measured"                                      # the profile: left out
                    and "left out of this run" in r["ended"].get("reason", ""))}       # by -r and --site


def statuses(results, site: str, profile: str | None = None) -> dict[str, str]:
    return {rid: r["status"] for (p, rid, s), r in results.items() if s == site and (profile is None or p == profile)}


def test_health_process_listener_and_key_defects_break_the_baseline(tmp_path):
    results = run(tmp_path, "--target", "emulated:retail", "-p", "edge-baseline",
                  *[x for rid in ("BASE-FUN-01", "BASE-API-01", "BASE-FUN-02", "BASE-HOST-01", "BASE-SEC-01",
                                  "BASE-SEC-04") for x in ("-r", rid)],
                  "--site", "store-1", "--site", "store-2", "--site", "store-3",
                  "--defect", "store-2:health-broken", "--defect", "store-2:extra-listener",
                  "--defect", "store-2:world-readable-key", "--defect", "store-3:exits-after-start")
    # Healthy: every one passes.
    assert set(statuses(results, "store-1").values()) == {"pass"}, statuses(results, "store-1")
    # Three defects on one site: each fails exactly its own requirements.
    assert statuses(results, "store-2") == {
        "BASE-FUN-01": "fail", "BASE-API-01": "fail",   # health-broken (BASE-API-01 is a should)
        "BASE-SEC-01": "fail",                          # extra-listener
        "BASE-SEC-04": "fail",                          # world-readable-key
        "BASE-FUN-02": "pass", "BASE-HOST-01": "pass"}
    by = {rid: r for (_, rid, s), r in results.items() if s == "store-2"}
    assert "JSON field status = 'degraded'" in by["BASE-API-01"]["message"]
    assert "unexpected: tcp/" in by["BASE-SEC-01"]["message"] and "on 127.0.0.1" in by["BASE-SEC-01"]["message"]
    assert "privacy.key (0644)" in by["BASE-SEC-04"]["message"]
    # exits-after-start: the process is gone (not restarted), and the access link's port, which
    # still accepts, is not taken for a live service.
    dead = {rid: r for (_, rid, s), r in results.items() if s == "store-3"}
    assert dead["BASE-HOST-01"]["status"] == "fail" and "is not running" in dead["BASE-HOST-01"]["message"]
    assert dead["BASE-FUN-02"]["status"] == "fail"
    assert "accepted, then closed at once" in dead["BASE-FUN-02"]["message"]
    assert dead["BASE-SEC-04"]["status"] == "pass"


def test_memory_hog_and_no_cache_break_footprint_and_caching(tmp_path):
    results = run(tmp_path, "--target", "emulated:retail", "-p", "ucpe", "-p", "naas", "-p", "content-caching",
                  "-r", "BASE-FTP-01", "-r", "CDN-FUN-01", "--site", "store-1", "--site", "store-2",
                  "--defect", "store-2:memory-hog", "--defect", "store-2:no-cache")
    for profile, rid in (("ucpe", "BASE-FTP-01"), ("naas", "BASE-FTP-01"), ("content-caching", "CDN-FUN-01")):
        healthy, broken = results[(profile, rid, "store-1")], results[(profile, rid, "store-2")]
        assert healthy["level"] == "must" and healthy["status"] == "pass", healthy["message"]
        assert broken["status"] == "fail", broken["message"]
    assert results[("ucpe", "BASE-FTP-01", "store-2")]["measured"]["rss"]["value"] >= 640
    assert results[("ucpe", "BASE-FTP-01", "store-1")]["measured"]["rss"]["value"] < 200
    cache = results[("content-caching", "CDN-FUN-01", "store-2")]
    assert cache["measured"]["served"]["value"] in (True, 1) and cache["measured"]["hit"]["value"] in (False, 0)


def test_health_waiting_on_the_wan_breaks_availability_during_a_cut(tmp_path):
    results = run(tmp_path, "--target", "emulated:retail", "-p", "retail", "-r", "RTL-RES-01",
                  "--site", "store-1", "--site", "store-3", "--defect", "store-3:health-waits-on-wan")
    healthy, broken = results[("retail", "RTL-RES-01", "store-1")], results[("retail", "RTL-RES-01", "store-3")]
    assert healthy["status"] == "pass", healthy["message"]
    assert broken["status"] == "fail", broken["message"]
    assert broken["measured"]["availability"]["value"] < 0.99
    # Only the health probe waits on the WAN: sales, stale content and tokens still work locally.
    for metric in ("pos_accepted", "cache_served", "auth_ok"):
        assert broken["measured"][metric]["value"] in (True, 1, 1.0), (metric, broken["message"])


def test_blocking_io_breaks_sustained_iot_load(tmp_path):
    results = run(tmp_path, "--target", "emulated:iot", "-p", "iot", "-r", "IOT-LOAD-01",
                  "--site", "gw-1", "--site", "gw-2", "--defect", "gw-2:blocking-io")
    healthy, broken = results[("iot", "IOT-LOAD-01", "gw-1")], results[("iot", "IOT-LOAD-01", "gw-2")]
    assert healthy["status"] == "pass", healthy["message"]
    # A fail, not inconclusive: the generator was idle; the site held every user.
    assert broken["status"] == "fail", broken["message"]
    assert broken["measured"]["achieved"]["value"] < 190 and broken["measured"]["p99"]["value"] > 100
