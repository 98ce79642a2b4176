"""Does a site come back from a backup exactly as it was backed up (OPNFV Edge Cloud test case #15: a
restore returns the site to the backed-up state)? The caller gives the operator's actions (the
emulator's supervisor or the target's hooks); every request has a timeout.

    sales -> summary -> backup -> more sales -> wipe -> restore -> read back

The site's own records decide, read through its ordinary API: each sale acknowledged before the backup
must be back (GET /pos/transactions/{id}), none made after it may be (the restore returns to the
backed-up state, it does not merge), and the site's summary of its records (count and digest,
GET /pos/summary) must equal the one read just before the backup. The sales after the backup are
local-only: they never reach central, so central holds nothing the restore takes from the site. The
wipe must be seen to empty the site, or the restore proved nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..model.errors import MeasurementError
from .health import wait_healthy
from .http import Client
from .sales import Poster, missing_sales

Found = tuple[list[tuple[str, Any, str]], list[str], dict[str, Any]]
SUMMARY_PATH = "/pos/summary"
LOCAL_ONLY = {"local_only": True}


def _summary(site: Client, timeout: float, when: str) -> dict[str, Any]:
    body = site.json("GET", SUMMARY_PATH, what=f"the site's record summary {when}", timeout=timeout)
    if not isinstance(body, dict) or "count" not in body:
        raise MeasurementError(f"GET {SUMMARY_PATH} {when}: no record count in {str(body)[:120]!r}")
    return body


def _sell(site: Client, tag: str, count: int, op_timeout: float, when: str, extra: dict | None = None) -> list[str]:
    poster = Poster(site, tag, 1.0, op_timeout, extra).burst(max(1, count))
    poster.join()
    if not poster.accepted:
        raise MeasurementError(f"no sale was acknowledged {when}: {poster.first_failure()}")
    return list(poster.accepted)


def backup_restore(site: Client, backup: Callable[[], str], wipe: Callable[[], Any],
                   restore: Callable[[str], Any], *, path: str, timeout: float, op_timeout: float,
                   records: int, after: int, tag: str) -> Found:
    """Back up, wipe and restore the site; metrics restored_ratio, lost_records, stale_records,
    digest_match, wiped, restore_time."""
    before = _sell(site, f"{tag}-before", records, op_timeout, "before the backup")
    summary_before = _summary(site, op_timeout, "before the backup")
    reference = backup()
    # Local-only (never forwarded): central never holds what the restore takes away from the site, so the
    # site leaves this check in step with central and a later check comparing the two (a resync's
    # digest) sees nothing of this one.
    later = _sell(site, f"{tag}-after", after, op_timeout, "after the backup", LOCAL_ONLY)

    wipe()
    if wait_healthy(site, path, timeout) is None:
        raise MeasurementError(f"the site was not healthy within {timeout:g} s of the wipe (GET {path})")
    summary_wiped = _summary(site, op_timeout, "after the wipe")
    sample = before[:5]  # a few read back by id as well: an empty summary alone could be a broken one
    gone = set(missing_sales(site, sample, op_timeout))
    wiped = int(summary_wiped["count"]) == 0 and all(i in gone for i in sample)

    restore_started = time.monotonic()
    restore(reference)
    back = wait_healthy(site, path, timeout)
    restore_time = time.monotonic() - restore_started
    metrics: list[tuple[str, Any, str]] = [("wiped", wiped, ""), ("restore_time", restore_time, "s")]
    notes = [f"{len(before)} sales before the backup ({reference}), {len(later)} after it; then wiped "
             f"(the site held {summary_wiped['count']} records after the wipe) and restored"]
    if not wiped:
        notes.append("the wipe did not empty the site: the restore cannot be told from what was left")
    if back is None:
        notes.append(f"not healthy within {timeout:g} s of the restore: its records could not be read")
        return metrics, notes, {"backup": reference, "before": len(before), "after": len(later)}

    lost = missing_sales(site, before, op_timeout)
    gone_later = set(missing_sales(site, later, op_timeout))
    stale = [i for i in later if i not in gone_later]
    summary_after = _summary(site, op_timeout, "after the restore")
    digest_match = (summary_after.get("count"), summary_after.get("digest")) == \
        (summary_before.get("count"), summary_before.get("digest"))
    metrics += [("restored_ratio", 100.0 * (len(before) - len(lost)) / len(before), "%"),
                ("lost_records", len(lost), ""), ("stale_records", len(stale), ""),
                ("digest_match", digest_match, "")]
    if lost:
        notes.append(f"{len(lost)} of {len(before)} sales made before the backup are gone after the restore "
                     f"(e.g. {lost[0]})")
    if stale:
        notes.append(f"{len(stale)} sales made after the backup are still there: the restore did not return "
                     "the site to the backed-up state")
    if not digest_match:
        notes.append(f"record summary before the backup: {summary_before.get('count')} records, digest "
                     f"{str(summary_before.get('digest'))[:16]}; after the restore: {summary_after.get('count')}, "
                     f"{str(summary_after.get('digest'))[:16]}")
    return metrics, notes, {"backup": reference, "before": len(before), "after": len(later),
                            "summary_before": summary_before, "summary_after": summary_after}
