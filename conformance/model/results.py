"""Run verdicts and the shape of results.json (schema edge-conformance/results/v2).

Statuses of one requirement at one site (decided by model/verdict.py):
  pass, fail, error (could not measure), inconclusive (measurement not valid), not-applicable (does
  not apply to the site), not-measured (applies, but could not be measured here or was left out of the
  run), waived (a failure covered by an unexpired waiver), not-run (the run ended first).
A run is non-conformant when a must failed (or, with --strict, a should/may failed); otherwise
incomplete when a must is error, inconclusive, not-measured or not-run; otherwise conformant.
"""

from __future__ import annotations

from .verdict import NOT_APPLICABLE, STATUSES, UNDECIDED

SCHEMA = "edge-conformance/results/v2"
# v1 had one "skip" for both not-applicable and not-measured; readers of old files still meet it.
LEGACY_SCHEMAS = ("edge-conformance/results/v1",)
LEGACY_STATUSES = ("skip",)

CONFORMANT = "conformant"
NON_CONFORMANT = "non-conformant"
INCOMPLETE = "incomplete"

EXIT_CODES = {CONFORMANT: 0, NON_CONFORMANT: 1, INCOMPLETE: 3}
EXIT_USAGE = 2


def counts(requirements: list[dict]) -> dict[str, int]:
    """How many entries have each status (every status present, zeros included)."""
    out = {s: 0 for s in STATUSES}
    for r in requirements:
        out[r["status"]] = out.get(r["status"], 0) + 1
    return out


def is_blocking(r: dict, strict: bool) -> bool:
    """Does this result's level make it count towards the verdict?"""
    return r["level"] == "must" or strict


FLEET_SITE = "fleet"  # the site name of a quorum requirement's aggregate entry


def fleet_outcome(members: list[dict], quorum: float) -> tuple[str, int, int, int]:
    """A quorum rule over per-site results: (status, passing, failing, applicable).

    Sites it does not apply to do not count. The fleet passes once enough sites passed, fails once
    too many failed for the quorum to be reachable, and is otherwise undecided: not-run while sites
    are pending, not-measured when every undecided site could not be measured, inconclusive when
    undecided sites could tip it either way.
    """
    applicable = [m for m in members if m["status"] not in (NOT_APPLICABLE, *LEGACY_STATUSES)]
    n = len(applicable)
    passing = sum(m["status"] in ("pass", "waived") for m in applicable)
    failing = sum(m["status"] == "fail" for m in applicable)
    if n == 0:
        return NOT_APPLICABLE, 0, 0, 0
    if passing >= quorum * n - 1e-9:
        return "pass", passing, failing, n
    if (n - failing) < quorum * n - 1e-9:
        return "fail", passing, failing, n
    undecided = [m["status"] for m in applicable if m["status"] not in ("pass", "waived", "fail")]
    if "not-run" in undecided:
        return "not-run", passing, failing, n
    if undecided and all(s == "not-measured" for s in undecided):
        return "not-measured", passing, failing, n
    return "inconclusive", passing, failing, n


def counts_toward_verdict(r: dict) -> bool:
    """Per-site members of a quorum requirement are judged through their fleet entry."""
    return not r.get("fleet_member")


def run_verdict(requirements: list[dict], strict: bool = False) -> str:
    requirements = [r for r in requirements if counts_toward_verdict(r)]
    if any(r["status"] == "fail" and is_blocking(r, strict) for r in requirements):
        return NON_CONFORMANT
    if any(r["status"] in UNDECIDED and r["level"] == "must" for r in requirements):
        return INCOMPLETE
    if strict and any(r["status"] in UNDECIDED for r in requirements):
        return INCOMPLETE
    return CONFORMANT


def exit_code(verdict: str) -> int:
    return EXIT_CODES[verdict]
