"""Does central hold what a site has: the site's transaction summary against central's copy
(`GET /pos/summary` at the site, `GET /sink/transactions[/summary]?site=` at central), waited for
after a fault, with late duplicates watched for. Every request has a timeout."""

from __future__ import annotations

import collections
import time
from typing import Any
from urllib.parse import quote

from ..model.errors import MeasurementError
from .http import Client


def summaries(site: Client, central: Client, name: str) -> tuple[dict, dict]:
    edge = site.json("GET", "/pos/summary", what="the site's transaction summary")
    hub = central.json("GET", f"/sink/transactions/summary?site={quote(name)}", what="central's summary")
    return edge, hub


def in_sync(edge: dict, hub: dict) -> bool:
    return edge.get("count") == hub.get("count") and edge.get("digest") == hub.get("digest")


def _diverged(edge: dict, hub: dict) -> bool:
    """Central never forgets: once it holds more than the site, the digests can never agree again."""
    return (hub.get("count") or 0) > (edge.get("count") or 0)


def wait_in_sync(site: Client, central: Client, name: str, timeout: float) -> tuple[bool, dict, dict]:
    deadline = time.monotonic() + timeout
    while True:
        edge, hub = summaries(site, central, name)
        if in_sync(edge, hub) or _diverged(edge, hub) or time.monotonic() >= deadline:
            return in_sync(edge, hub), edge, hub
        time.sleep(0.2)


def before_fault(site: Client, central: Client, name: str, timeout: float, fault: str) -> tuple[bool, list[str]]:
    """Whether the site and central agree before the fault (waited for up to `timeout`), with a note if not."""
    agreed, edge, hub = wait_in_sync(site, central, name, timeout)
    if agreed:
        return True, []
    return False, [f"the site was not in sync with central before the {fault} (site count {edge.get('count')}, "
                   f"central count {hub.get('count')})"]


def central_copies(central: Client, name: str, tag: str) -> collections.Counter:
    """How many times central holds each of our sale ids."""
    listing = central.json("GET", f"/sink/transactions?site={quote(name)}&limit=1000000",
                           what="central's transactions")
    return collections.Counter(r.get("id") for r in listing.get("records", [])
                               if str(r.get("id", "")).startswith(tag + "-"))


def await_resync(site: Client, central: Client, name: str, tag: str, created: list[str], healed_at: float,
                 timeout: float, settle: float, in_sync_before: bool) -> tuple[dict[str, Any], list[str]]:
    """Wait until central holds what the site has; then watch `settle` s more for late duplicates.
    Returns the figures and the notes that explain them.

    When the two summaries agreed before the fault, "synced" is their digests agreeing again (every
    record the site has is at central exactly once, unaltered). Otherwise (an earlier fault left them
    apart) it is every sale made during this fault having arrived. Central never forgets a record, so
    once it holds more than the site, the digests can never agree again: then only our sales are
    awaited.
    """
    deadline = healed_at + timeout
    synced_at = None
    made = set(created)
    while True:
        try:
            edge, hub = summaries(site, central, name)
            if in_sync_before and in_sync(edge, hub):
                synced_at = time.monotonic()
                break
            if not in_sync_before or _diverged(edge, hub):
                copies = central_copies(central, name, tag)
                if all(copies.get(i, 0) > 0 for i in made):
                    synced_at = time.monotonic()
                    break
        except MeasurementError as exc:
            # a site or central that was stopped may still be starting (a real one takes its time):
            # it has until the deadline to answer, like the data has to arrive
            if time.monotonic() >= deadline:
                raise MeasurementError(f"{exc} (still no answer {timeout:g} s after the fault ended)") from None
            time.sleep(0.2)
            continue
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    if synced_at is not None and settle > 0:
        time.sleep(settle)
        edge, hub = summaries(site, central, name)
    copies = central_copies(central, name, tag)
    delivered = sum(1 for i in created if copies.get(i, 0) > 0)
    duplicates = sum(max(0, copies.get(i, 0) - 1) for i in created)
    phantoms = sum(c for i, c in copies.items() if i not in made)
    out = {"created": len(created), "delivered": delivered, "duplicates": duplicates, "phantoms": phantoms,
           "digest_match": in_sync(edge, hub), "synced": synced_at is not None,
           "sync_time": (synced_at or time.monotonic()) - healed_at,
           "site_summary": edge, "central_summary": hub}
    notes = []
    if synced_at is None:
        notes.append(f"not in sync {timeout:g} s after the fault ended: central holds {delivered} of the "
                     f"{len(created)} sales made, {duplicates} extra copies; site count {edge.get('count')}, "
                     f"central count {hub.get('count')}")
    elif not out["digest_match"]:
        notes.append(f"central and the site disagree: site count {edge.get('count')}, central count "
                     f"{hub.get('count')} (digests differ)")
    if phantoms:
        notes.append(f"central holds {phantoms} sale(s) that the site refused (answered with an error)")
    if duplicates:
        notes.append(f"{duplicates} extra copies of the sales are stored at central "
                     f"(duplicates rejected by central: {hub.get('duplicates_rejected')})")
    return out, notes
