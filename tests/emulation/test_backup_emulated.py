"""Backup, wipe and restore of an emulated site through the supervisor's control API: the site keeps
selling while it is backed up, a wipe leaves it empty, a restore brings back exactly the sales made
before the backup (and none made after it), and the restore-loses-records defect loses some."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import pytest

from conformance.emulation import start_deployment
from conformance.faults.emulated import EmulatedFaults, FaultError
from conformance.model.target import load_target

TOPOLOGY = """\
sites:
  - {name: central, role: central}
  - {name: shop, role: edge}
  - {name: lossy, role: edge}
wan: {default_delay: 2 ms}
"""


def call(url: str, body: dict | None = None, timeout: float = 5.0) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    path = tmp_path_factory.mktemp("backup") / "topology.yaml"
    path.write_text(TOPOLOGY, encoding="utf-8")
    run_id = f"test-backup-{os.getpid()}-{os.urandom(2).hex()}"
    with start_deployment(str(path), run_id=run_id, defects=["lossy:restore-loses-records"], timeout=60) as dep:
        yield dep


def sell(api: str, ids: list[str]) -> None:
    for tx in ids:
        status, _ = call(f"{api}/pos/transactions", {"id": tx, "amount": 1.5})
        assert status == 201, tx


def present(api: str, ids: list[str]) -> list[str]:
    return [tx for tx in ids if call(f"{api}/pos/transactions/{tx}")[0] == 200]


def backup_cycle(deployment, site: str) -> tuple[list[str], list[str], dict, dict, dict]:
    api = load_target(deployment.target_file).site(site).endpoints["api"]
    faults = EmulatedFaults(deployment.control_url, timeout=60)
    before = [f"{site}-before-{i}" for i in range(60)]
    after = [f"{site}-after-{i}" for i in range(10)]
    sell(api, before)
    summary_before = call(f"{api}/pos/summary")[1]
    taken = faults.backup(site)
    sell(api, after)
    faults.wipe(site)
    summary_wiped = call(f"{api}/pos/summary")[1]
    faults.restore(site, taken["backup"])
    summary_restored = call(f"{api}/pos/summary")[1]
    return present(api, before), present(api, after), summary_before, summary_wiped, summary_restored, taken


def test_a_restore_gives_back_exactly_what_was_backed_up(deployment):
    kept, late, before, wiped, restored, taken = backup_cycle(deployment, "shop")
    assert taken["backup"] == "shop-1.tar.gz" and taken["files"] >= 1 and len(taken["sha256"]) == 64
    assert wiped["count"] == 0  # the wipe left the site empty
    assert len(kept) == 60 and late == []  # the backed-up state: nothing from after the backup
    assert (restored["count"], restored["digest"]) == (before["count"], before["digest"])


def test_the_lossy_restore_defect_loses_records(deployment):
    kept, late, before, _wiped, restored, _taken = backup_cycle(deployment, "lossy")
    assert len(kept) == 54 and late == []  # every tenth of the 60 gone
    assert restored["count"] == 54 and restored["digest"] != before["digest"]


def test_a_restore_of_an_unknown_backup_is_refused_and_the_site_keeps_running(deployment):
    faults = EmulatedFaults(deployment.control_url, timeout=30)
    with pytest.raises(FaultError, match="no backup"):
        faults.restore("shop", "../elsewhere.tar.gz")
    api = load_target(deployment.target_file).site("shop").endpoints["api"]
    assert call(f"{api}/health")[0] == 200
