"""`--target emulated:fleet:N` (model/topology.py generated_topology) brings up central and N stores on the
local backend and a run measures every one of them; the target records the generated topology."""

from __future__ import annotations

from tests.helpers.cli import requirement, run_edge, write_profile


def test_a_generated_fleet_comes_up_and_is_measured(tmp_path):
    profile = write_profile(tmp_path / "p.yaml", [
        requirement("UP", "functional.http", "status == 200", {"endpoint": "api", "path": "/health"})])
    code, res, output = run_edge("--profile", profile, "--target", "emulated:fleet:12", out=tmp_path / "out",
                                 timeout=180)
    assert code == 0 and res["verdict"] == "conformant", output[-2000:]
    sites = [r["site"] for r in res["requirements"]]
    assert sites == ["central", *[f"store-{i:02d}" for i in range(1, 13)]]
    assert res["target"]["topology"] == "fleet-12"
