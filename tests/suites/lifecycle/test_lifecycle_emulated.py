"""lifecycle.backup_restore end to end on emulated retail, through the real CLI: a healthy store comes
back from its backup whole and passes RTL-LCM-01; a store whose restore loses records (the
restore-loses-records defect) fails it on the records it lost, in the same run; the healthy store is
left in step with central (a lossless resync after it still passes: the sales after the backup never
left the store); the bundle verifies."""

from __future__ import annotations

from tests.helpers.cli import CLI, run_command, run_edge
from tests.helpers.results import entry, measured


def test_backup_and_restore_passes_a_healthy_store_and_fails_a_lossy_restore(tmp_path):
    out = tmp_path / "out"
    code, results, output = run_edge("--profile", "retail", "--target", "emulated:retail", "-r", "RTL-LCM-01",
                                     "-r", "RTL-RES-05", "--site", "store-1", "--site", "store-2",
                                     "--defect", "store-2:restore-loses-records", out=out)
    assert code == 1, output  # a must failed
    healthy, lossy = entry(results, "RTL-LCM-01", "store-1"), entry(results, "RTL-LCM-01", "store-2")
    assert healthy["status"] == "pass", healthy["message"]
    assert measured(healthy, "restored_ratio") == 100.0 and measured(healthy, "stale_records") == 0
    assert measured(healthy, "wiped") == 1
    assert lossy["status"] == "fail", lossy["message"]
    assert measured(lossy, "lost_records") == 4 and measured(lossy, "restored_ratio") == 90.0  # 4 of 40
    assert "stale_records" not in lossy["message"]  # it returned to the backed-up state, minus the loss
    assert any("gone after the restore" in n for n in lossy["notes"])
    resync = entry(results, "RTL-RES-05", "store-1")  # runs after the lifecycle suite
    assert resync["status"] == "pass", resync["message"]
    bundle = tmp_path / "bundle.tar.gz"
    assert run_command([*CLI, "bundle", str(out), "-o", str(bundle)])[0] == 0
    verified, text = run_command([*CLI, "verify", str(bundle)])
    assert verified == 3 and ": OK, PARTIAL RUN" in text, text  # consistent; certifies only what it measured
