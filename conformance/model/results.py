"""Run verdicts and the shape of results.json (schema edge-conformance/results/v2).

Statuses of one requirement at one site (decided by model/verdict.py):
  pass, fail, error (could not measure), inconclusive (measurement not valid), not-applicable (does
  not apply to the site), not-measured (applies, but could not be measured here or was left out of the
  run), waived (a failure covered by an unexpired waiver), not-run (the run ended first).
A run is non-conformant when a must failed (or, with --strict, a should/may failed); otherwise
incomplete when a must is error, inconclusive, not-measured or not-run; otherwise conformant.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import sampling as S
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
    return _undecided_status(applicable), passing, failing, n


def _undecided_status(applicable: list[dict]) -> str:
    """A fleet neither rule decides: not-run while sites are pending, not-measured when every undecided
    site could not be measured, otherwise inconclusive."""
    undecided = [m["status"] for m in applicable if m["status"] not in ("pass", "waived", "fail")]
    if "not-run" in undecided:
        return "not-run"
    if undecided and all(s == "not-measured" for s in undecided):
        return "not-measured"
    return "inconclusive"


def is_unsampled(entry: dict) -> bool:
    """A site of a sampled quorum requirement that is not in its sample (model/sampling.py): nothing was
    measured there, by design; not a gap in the fleet's verdict, nor something the options left out."""
    return bool(entry.get("fleet_member")) and entry.get("sampled") is False


@dataclass(frozen=True)
class SampledOutcome:
    status: str
    passed: int
    failed: int
    undecided: int
    sample: int  # the members in the sample (those it turned out not to apply to included)
    lower: float
    upper: float


def sampled_fleet_outcome(members: list[dict], quorum: float, confidence: float) -> SampledOutcome:
    """The quorum rule of a sampled requirement, over all its per-site results: only the sample's count
    (`sampled` is not false), judged on the confidence bounds of the fleet's pass share
    (model/sampling.py judge); what the bounds leave undecided follows fleet_outcome's undecided rules."""
    sample = [m for m in members if m.get("sampled") is not False]
    applicable = [m for m in sample if m["status"] not in (NOT_APPLICABLE, *LEGACY_STATUSES)]
    passing = sum(m["status"] in ("pass", "waived") for m in applicable)
    failing = sum(m["status"] == "fail" for m in applicable)
    undecided = len(applicable) - passing - failing
    census = len(sample) >= len(members)
    j = S.judge(passing, failing, undecided, quorum, confidence, census=census)
    if not applicable:
        status = NOT_APPLICABLE
    else:
        status = j.status or _undecided_status(applicable)
    return SampledOutcome(status, passing, failing, undecided, len(sample), j.lower, j.upper)


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
