"""The baseline's management requirements on an emulated deployment, through the real CLI.

Every emulated site serves a TLS management interface (endpoint `mgmt`, the deployment's private CA as
the site's `ca_file`), so BASE-SEC-02 (TLS), BASE-SEC-03 (default credentials) and BASE-SEC-05
(headers) are measured, never left not measured: they pass on a healthy deployment, and the `expiring-cert` and
`default-credentials` defects make BASE-SEC-02 and BASE-SEC-03 fail on the metric they break. BASE-SEC-01
(listening ports) must still pass with the extra declared port. The management password never reaches
the target file, the logs or the reports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conformance.emulation import start_deployment
from conformance.model.profile import load_profile

REPO = Path(__file__).resolve().parents[2]
KEEP = ("BASE-SEC-01", "BASE-SEC-02", "BASE-SEC-03", "BASE-SEC-05")


def _profile(tmp_path: Path) -> Path:
    """edge-baseline with every requirement but KEEP disabled (a narrowed run of the shipped ones)."""
    baseline = load_profile("edge-baseline")
    reqs = [{"id": r.id, "disabled": True} for r in baseline.requirements if r.id not in KEEP]
    assert {r.id for r in baseline.requirements} >= set(KEEP)
    path = tmp_path / "mgmt-only.yaml"
    path.write_text(yaml.safe_dump({"id": "edge-baseline-mgmt", "version": "0", "title": "baseline, management",
                                    "extends": "edge-baseline", "requirements": reqs}, sort_keys=False))
    return path


def _cli(tmp_path: Path, *args: str) -> tuple[int, dict, str, Path]:
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    done = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--profile", str(_profile(tmp_path)),
                           *args, "--out", str(out)], capture_output=True, text=True, timeout=180,
                          cwd=tmp_path, env=env)
    output = done.stdout + done.stderr
    results = out / "results.json"
    assert results.exists(), f"exit {done.returncode}\n{output[-4000:]}"
    return done.returncode, json.loads(results.read_text()), output, out


def _by(results: dict) -> dict[tuple[str, str], dict]:
    return {(r["id"], r["site"]): r for r in results["requirements"]}


def _value(entry: dict, metric: str) -> float:
    return entry["measured"][metric]["value"]


def test_management_requirements_pass_on_a_healthy_deployment_and_keep_the_secret(tmp_path):
    state_dir = tmp_path / "state"
    with start_deployment("retail", state_dir=state_dir, run_id=f"test-mgmt-{os.getpid()}-{os.urandom(2).hex()}",
                          timeout=60) as dep:
        password = (state_dir / "pki" / "mgmt.password").read_text().strip()
        assert len(password) >= 24
        target = yaml.safe_load(dep.target_file.read_text())
        for site in target["sites"]:
            assert site["endpoints"]["mgmt"].startswith("https://127.0.0.1:"), site
            assert site["ca_file"] == str(state_dir / "pki" / "ca.pem")
        code, results, output, out = _cli(tmp_path, "--target", str(dep.target_file),
                                          "--site", "store-1", "--site", "central")
        logs = {p: p.read_bytes() for p in (state_dir / "logs").glob("*.log")}
        state_files = {p: p.read_bytes() for p in (dep.target_file, state_dir / "state.json")}
    by = _by(results)
    for rid in KEEP:
        for site in ("store-1", "central"):
            entry = by[(rid, site)]
            assert entry["status"] == "pass", f"{rid}@{site}: {entry['status']}: {entry['message']} {entry['notes']}"
    # --site store-1 --site central leaves store-2 and store-3 not measured: incomplete, never conformant
    assert code == 3 and results["verdict"] == "incomplete", output[-3000:]
    assert {by[(rid, s)]["status"] for rid in KEEP for s in ("store-2", "store-3")} == {"not-measured"}
    for site in ("store-1", "central"):
        assert _value(by[("BASE-SEC-02", site)], "days_to_expiry") >= 360
        assert _value(by[("BASE-SEC-03", site)], "protected") == 1
        assert _value(by[("BASE-SEC-03", site)], "tried") == 10
        sec03 = by[("BASE-SEC-03", site)]  # no pause between attempts on a site the harness started
        assert any(n.startswith("no 0.3 s pause between attempts") for n in sec03["notes"]), sec03["notes"]
    # The password is in its 0600 file only: not in the target file, state, logs, output or reports.
    assert logs, "no logs to look at"
    leaks = [str(p) for p, data in {**logs, **state_files}.items() if password.encode() in data]
    leaks += [str(p) for p in out.rglob("*") if p.is_file() and password.encode() in p.read_bytes()]
    assert not leaks and password not in output, leaks


@pytest.mark.parametrize("defect, broken, metric, bad", [
    ("expiring-cert", "BASE-SEC-02", "expiry_ok", 0),
    ("default-credentials", "BASE-SEC-03", "accepted_defaults", 1),
])
def test_each_management_defect_fails_its_requirement(tmp_path, defect, broken, metric, bad):
    code, results, output, _ = _cli(tmp_path, "--target", "emulated:retail", "--site", "store-1",
                                    "--defect", f"store-1:{defect}")
    by = _by(results)
    entry = by[(broken, "store-1")]
    assert entry["status"] == "fail", f"{entry['status']}: {entry['message']} {entry['notes']}"
    assert _value(entry, metric) == bad, entry["measured"]
    assert code == 1, output[-3000:]
    # Only that requirement breaks: the others are measured and pass.
    for rid in KEEP:
        if rid != broken:
            other = by[(rid, "store-1")]
            assert other["status"] == "pass", f"{rid}: {other['status']}: {other['message']}"
    if defect == "expiring-cert":
        assert _value(entry, "days_to_expiry") < 8 and _value(entry, "cert_valid") == 1
    else:
        assert any("admin/admin accepted" in n for n in entry["notes"]), entry["notes"]
