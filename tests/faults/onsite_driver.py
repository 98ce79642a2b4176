"""A harness stand-in for the SIGKILL test: cuts a site's WAN through the harness's own code
(faults_for -> OnSiteFaults.partitioned, heal in a finally) and waits inside the cut to be killed.

    python onsite_driver.py TARGET_FILE SITE DURATION_S RUN_ID

Prints one JSON line once the cut is in place: {"cut_at": <time.time() just before the install>,
"installed_at": ..., "log": [...]}. SIGKILL skips every finally: only the dead-man on the site heals.
"""

from __future__ import annotations

import json
import sys
import time

from conformance.faults import faults_for
from conformance.model.target import load_target


def main() -> None:
    path, site, duration, run_id = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    faults = faults_for(load_target(path), site, allow_real=True, run_id=run_id)
    began = time.time()
    with faults.partitioned("drop", duration=duration):
        print(json.dumps({"cut_at": began, "installed_at": time.time(), "log": faults.log}), flush=True)
        time.sleep(600)


if __name__ == "__main__":
    main()
