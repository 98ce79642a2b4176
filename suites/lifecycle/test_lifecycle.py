"""lifecycle.*: running unmanned sites remotely (zero-touch operations, OPNFV Edge Cloud test cases #9-#15).

* backup and restore (OPNFV-TC #15): sales at the site, a backup while it runs, more sales, a wipe, a
  restore from the backup, then every record read back through the site's own API
  (conformance/measure/restore.py). The operator's actions are `edge.faults` backup/wipe/restore: the
  emulator's supervisor (local backend), or the target's `backup`, `wipe` and `restore` hooks, which run
  only with --allow-faults (a wipe destroys the site's data). Without them the requirement is
  not-measured, naming the hook to add; it never passes.

The check decides no status itself: it records what it found and the one verdict rule
(conformance/model/verdict.py) judges it.
"""

from __future__ import annotations

import uuid

import pytest

from conformance.measure.health import wait_healthy
from conformance.measure.restore import backup_restore
from conformance.measure.siteapi import site_client
from conformance.model.errors import MeasurementError


@pytest.mark.edge_check("lifecycle.backup_restore")
def test_backup_restore(edge, request):
    edge.shared(_backup_restore)


def _backup_restore(edge, rec) -> None:
    p = edge.params
    faults = edge.faults  # not-measured here on a real target without --allow-faults
    faults.require("backup", "wipe", "restore")
    site = site_client(edge)
    path, timeout, op_timeout = p["path"] or "/health", float(p["timeout"]), float(p["op_timeout"])
    if wait_healthy(site, path, min(timeout, 10.0)) is None:
        raise MeasurementError(f"the site is not healthy before the backup (GET {path})")
    metrics, notes, raw = backup_restore(
        site, faults.backup, faults.wipe, faults.restore, path=path, timeout=timeout, op_timeout=op_timeout,
        records=int(p["records"]), after=int(p["after"]), tag=f"lcm-{uuid.uuid4().hex[:10]}")
    for metric, value, unit in metrics:
        rec.record(metric, value, unit)
    for text in notes:
        rec.note(text)
    rec.attach("backup_restore", raw)
    if faults.kind != "emulated":  # hook commands on a real site: what was done there
        for line in faults.log:
            rec.note(line)
