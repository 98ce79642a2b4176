"""Verdict rules and the shape of results.json (schema edge-conformance/results/v1).

Statuses of one requirement at one site:
  pass, fail, error (could not measure), inconclusive (measurement not valid), skip (not
  applicable), waived (a failure covered by an unexpired waiver), not-run (the run ended first).
A run is non-conformant when a must failed (or, with --strict, a should/may failed); otherwise
incomplete when a must is error, inconclusive or not-run; otherwise conformant.
"""

from __future__ import annotations

SCHEMA = "edge-conformance/results/v1"
STATUSES = ("pass", "fail", "error", "inconclusive", "skip", "waived", "not-run")
UNDECIDED = ("error", "inconclusive", "not-run")

CONFORMANT = "conformant"
NON_CONFORMANT = "non-conformant"
INCOMPLETE = "incomplete"

EXIT_CODES = {CONFORMANT: 0, NON_CONFORMANT: 1, INCOMPLETE: 3}
EXIT_USAGE = 2


def counts(requirements: list[dict]) -> dict[str, int]:
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

    Skipped sites are not applicable. The fleet passes once enough sites passed, fails once too
    many failed for the quorum to be reachable, and is otherwise undecided (not-run while sites are
    pending, inconclusive when undecided sites could tip it either way).
    """
    applicable = [m for m in members if m["status"] != "skip"]
    n = len(applicable)
    passing = sum(m["status"] in ("pass", "waived") for m in applicable)
    failing = sum(m["status"] == "fail" for m in applicable)
    if n == 0:
        return "skip", 0, 0, 0
    if passing >= quorum * n - 1e-9:
        return "pass", passing, failing, n
    if (n - failing) < quorum * n - 1e-9:
        return "fail", passing, failing, n
    if any(m["status"] == "not-run" for m in applicable):
        return "not-run", passing, failing, n
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
