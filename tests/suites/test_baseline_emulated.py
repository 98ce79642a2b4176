"""The baseline's host, security and footprint requirements hold on a healthy emulated deployment."""

from __future__ import annotations

import json
import subprocess
import sys


from conformance.model.paths import suites_dir

MINE = ("BASE-API-", "BASE-HOST-", "BASE-SEC-", "BASE-FTP-", "WL-")


def test_baseline_on_emulated_retail(tmp_path):
    # The baseline as shipped, with a shorter idle-CPU window to keep the test quick.
    (tmp_path / "profile.yaml").write_text(
        "id: baseline-quick\nversion: '1'\ntitle: baseline, quick\nextends: edge-baseline\n"
        "requirements:\n  - {id: BASE-FTP-02, params: {window: 0.5 s}}\n"
        # and the reference workloads' round trips, on the stores
        "  - {id: WL-POS, title: pos, level: must, check: functional.pos_roundtrip, applies_to: edge,"
        " expect: 'ok == true'}\n"
        "  - {id: WL-CACHE, title: cache, level: must, check: functional.cache_serves, applies_to: edge,"
        " expect: 'served == true and hit == true'}\n"
        "  - {id: WL-TEL, title: telemetry, level: must, check: functional.telemetry_accepted,"
        " applies_to: edge, expect: 'accepted == true'}\n"
        "  - {id: WL-PORT, title: own port, level: must, check: functional.port, params: {endpoint: direct},"
        " expect: 'listening == true and owner_ok == true'}\n")
    root = suites_dir()
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pytest", *[str(root / s) for s in ("functional", "security", "footprint")],
           "-c", str(root / "pytest.ini"), "--rootdir", str(tmp_path), "-p", "no:locust",
           "-p", "no:cacheprovider", "--import-mode=importlib", "-q", "--edge-profile", str(tmp_path / "profile.yaml"),
           "--edge-target", "emulated:retail", "--edge-out", str(out), "--edge-no-reports"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=110)
    assert (out / "results.json").exists(), f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    results = json.loads((out / "results.json").read_text())
    mine = [r for r in results["requirements"] if r["id"].startswith(MINE)]
    assert len(mine) >= 13 * 4 + 3 * 3 + 4, proc.stdout[-3000:]
    bad = [f"{r['id']}@{r['site']}: {r['status']}: {r['message']}" for r in mine
           if r["status"] not in ("pass", "not-measured", "not-applicable")]
    assert not bad, "\n".join(bad)
    unmeasured = {r["id"] for r in mine if r["status"] in ("not-measured", "not-applicable")}
    # Every emulated site serves a TLS management interface with basic auth, so everything is measured.
    assert unmeasured == set(), unmeasured
    for rid in ("BASE-SEC-02", "BASE-SEC-03", "BASE-SEC-05"):
        assert {r["site"] for r in mine if r["id"] == rid and r["status"] == "pass"} == \
            {"central", "store-1", "store-2", "store-3"}, rid
