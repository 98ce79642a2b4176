"""Checks of the lifecycle suite: what running thousands of unmanned sites remotely takes (OSF-2018's
zero-touch operations; OPNFV Edge Cloud test cases #9-#15).

* lifecycle.backup_restore (OPNFV-TC #15): sales, a backup while the site runs, more sales, a wipe,
  a restore from the backup; every sale from before the backup must be back, none from after it, and
  the site's record summary must equal the one read before the backup.

The operator's actions come from the emulator's supervisor (local backend) or from the target's
`backup`, `wipe` and `restore` hooks (with --allow-faults: a wipe destroys the site's data).
"""

from . import CheckSpec, Param
from ..units import BOOL, COUNT, RATIO, TIME

CHECKS = [
    CheckSpec(
        name="lifecycle.backup_restore",
        summary="Sell, back the site up while it runs, sell again, wipe it, restore the backup, and read "
                "every record back: the sales from before the backup are all there, those from after it "
                "are not, and the site's record summary (count and digest) is the one before the backup.",
        metrics={
            "restored_ratio": RATIO,   # sales acknowledged before the backup that are back after the restore
            "lost_records": COUNT,     # of those, the ones missing
            "stale_records": COUNT,    # sales made after the backup still there: not the backed-up state
            "digest_match": BOOL,      # GET /pos/summary count and digest equal to those before the backup
            "wiped": BOOL,             # the wipe emptied the site (else the restore proves nothing)
            "restore_time": TIME,      # from the restore until the site answers healthy
        },
        params={
            "endpoint": Param("str", "the site endpoint its clients use", default="api"),
            "records": Param("int", "sales made before the backup", default=40),
            "after": Param("int", "sales made after the backup (they must not come back)", default=5),
            "path": Param("str", "health path (200 with status ok, or any 2xx)", default="/health"),
            "timeout": Param("duration", "how long the site may take to be healthy after the wipe and after "
                                         "the restore", default="60 s"),
            "op_timeout": Param("duration", "timeout of each workload request", default="3 s"),
        },
    ),
]
