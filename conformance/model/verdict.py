"""The one verdict rule: a requirement's status at one site, from what was recorded.

Every status in results.json is decided here, by `decide`, from four things the run records for each
(requirement, site):

- `measured`: the metrics the check recorded ({metric: (value, unit)});
- `ended`: how the check ended (ENDINGS): it measured to the end, or its own assertion failed, or it
  could not measure (error), or the requirement could not be measured here (not-measured: no host, no
  endpoint, no hook, faults not allowed, left out of the run), or does not apply to the site, or the run
  ended first (not-run). With a reason and, for not-measured, the one thing that would let it run;
- `validity`: evidence about the measurement itself (VALIDITY_KINDS): the prober's or the generator's
  own self-check, the sample count, a metric that is only a lower bound, and the pressure on the
  harness's own machine while it measured;
- the active waivers, and the requirement (level, expectation, metric dimensions).

The pytest plugin calls it when a check ends, the run record never decides anything of its own, and
`edge-conformance verify` calls it again on every entry of a bundle, so an edited status, number or
piece of evidence is caught. Pure: no I/O, no pytest, nothing of ours but model/.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from . import expect as E
from . import units as U

# ------------------------------------------------------------------------------------------- statuses

STATUSES = ("pass", "fail", "error", "inconclusive", "not-applicable", "not-measured", "waived", "not-run")
# A must in one of these leaves the run incomplete: it applies, and it was not decided.
UNDECIDED = ("error", "inconclusive", "not-measured", "not-run")
# Not a result of the site at all: the requirement does not apply to it.
NOT_APPLICABLE = "not-applicable"

# How a check ended (results.json entry "ended.how").
ENDINGS = ("measured", "assertion", "error", "not-measured", "not-applicable", "not-run")

# Kinds of validity evidence (results.json entry "validity": a list of {"kind": ..., ...}). `invalid`
# may name the `metrics` it invalidates (else it invalidates the whole measurement). `floor` is what a
# metric reads when nothing it measures happens (its noise, in `unit`): an upper bound closer to it
# than FLOOR_RATIO times cannot tell the site from the measurement, so it is inconclusive, unless the
# value is over the bound by more than FLOOR_RATIO floors (no noise explains that: it fails). A `strict`
# floor (the latency prober's own floor, a bias added to every value rather than scatter around it):
# a bound under FLOOR_RATIO of it is inconclusive whatever was measured (the harness cannot resolve such
# a budget at all); above that, a value over the bound by less than one floor is inconclusive too (the
# harness's own share could be all of the miss), and a bound within FLOOR_NOTE_RATIO of its floor is
# judged with its message saying how close ("budget 3 ms is 6x the measurement floor").
VALIDITY_KINDS = ("invalid", "samples", "lower_bound", "pressure", "floor")
FLOOR_RATIO = 3.0
FLOOR_NOTE_RATIO = 10.0

# ------------------------------------------------------------------------------------- sample counts

# Samples a comparison on a metric needs before it can be judged: about 10 / (1 - q) for a percentile
# q (ten samples beyond it), 20 for a median or a mean.
MIN_SAMPLES = {"p50": 20, "p75": 40, "p90": 100, "p95": 200, "p99": 1000, "p999": 10_000,
               "spread": 1000, "jitter": 100, "mean": 20}
# An upper bound on a ratio of failures needs at least 1/bound samples to be able to see one failure.
FAILURE_RATIOS = ("error_ratio", "timeout_ratio")

# ------------------------------------------------------------------------------------------ pressure

# A measurement during which some task waited for a CPU, for disk I/O or for memory this share of the
# time or more was taken on a starved machine. benchmarks/cpu_pressure.py on 2 cores: a quiet probe sees
# 0.4-2.4 % CPU pressure, one busy neighbour 1 %, two 15-32 % (p99 x10 while the median did not move),
# three 63 % (p99 x34).
CONTENDED_RATIO = 0.10
PRESSURE_RESOURCES = ("cpu", "io", "memory")
# A site whose own processes used this much CPU while measured is (part of) the pressure it felt: a
# CPU-hungry target must not get its tail excused by the load it makes itself. A reference site
# answering 200 requests/s uses about 0.1-0.2 of a core.
TARGET_BUSY_CORES = 0.5
# The figures starvation can stretch: a task queued behind busy neighbours answers late now and then,
# which moves the tail and the mean, not the median. The miss is excused only while the median (p50) is
# still within the same bound. Not max (one stall is enough, whatever the machine), not jitter or
# spread (not on the median's scale), and never errors, timeouts, lost data or anything else.
STRETCHABLE = frozenset({"p50", "p75", "p90", "p95", "p99", "p999", "mean"})
MEDIAN = "p50"


@dataclass
class Decision:
    """A status with the message every report shows for it."""

    status: str
    message: str
    advisory: bool = False
    waiver: dict | None = None
    detail: str = ""  # the measured values that decided it, e.g. "status = 503"
    outcomes: list[E.Outcome] = field(default_factory=list)


@dataclass
class Ended:
    """How a check ended: results.json entry "ended"."""

    how: str = "measured"
    reason: str = ""
    remedy: str | None = None  # not-measured: the one thing that would let it be measured

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"how": self.how}
        if self.reason:
            out["reason"] = self.reason
        if self.remedy:
            out["remedy"] = self.remedy
        return out

    @classmethod
    def from_dict(cls, d: Any) -> Ended:
        if not isinstance(d, dict):
            return cls("not-run", "no record of how the check ended")
        how = str(d["how"]) if d.get("how") in ENDINGS else "error"
        reason = str(d.get("reason") or "") if d.get("how") in ENDINGS else f"unknown ending {d.get('how')!r}"
        return cls(how, reason, d.get("remedy") or None)


LEFT_OUT = "left out of this run"  # in every not-measured reason the run's own options caused
DESELECTED = "deselected ("


def left_out_by_scope(ended: Any) -> bool:
    """A not-measured result that the run's own options (--requirement, --site, --suite, -k ...) left
    out, as opposed to one the target could not measure (no host, no hook ...)."""
    if not isinstance(ended, dict) or ended.get("how") != "not-measured":
        return False
    reason = str(ended.get("reason") or "")
    return LEFT_OUT in reason or reason.startswith(DESELECTED)


def is_advisory(level: str, status: str) -> bool:
    """A result that did not pass and does not block the verdict (a should or may)."""
    return level != "must" and status in ("fail", "error", "inconclusive", "not-measured")


def notes_suffix(notes: list[str] | None) -> str:
    return f" ({'; '.join(notes)})" if notes else ""


def not_measured_text(reason: str, remedy: str | None) -> str:
    return f"not measured: {reason}" + (f"; to measure it: {remedy}" if remedy else "")


def decide(requirement: Any, site: str, *, measured: dict[str, tuple[float, str]] | None = None,
           notes: list[str] | None = None, ended: Ended | dict | None = None,
           validity: list[dict] | None = None, waivers: list | None = None) -> Decision:
    """The status of `requirement` (a model.profile.Requirement: id, level, expect, metric_dimensions)
    at `site`, from what the run recorded. `waivers`: the active ones (Waiver objects or dicts)."""
    measured = dict(measured or {})
    ended = ended if isinstance(ended, Ended) else Ended.from_dict(ended) if ended is not None else Ended()
    validity = [v for v in (validity or []) if isinstance(v, dict)]
    prefix = f"{requirement.id} {site}"
    suffix = notes_suffix(notes)
    level = requirement.level

    def made(status: str, message: str, **kw: Any) -> Decision:
        return Decision(status, message, advisory=is_advisory(level, status), **kw)

    if ended.how == "not-run":
        return made("not-run", f"{requirement.id}@{site}: {ended.reason or 'not run'}")
    if ended.how == "not-applicable":
        return made(NOT_APPLICABLE, f"{prefix}: not applicable: {ended.reason}")
    if ended.how == "not-measured":
        return made("not-measured", f"{prefix}: {not_measured_text(ended.reason, ended.remedy)}")
    if ended.how == "error":
        return made("error", f"{prefix}: {ended.reason}{suffix}")
    # An invalid measurement leaves the requirement undecided; evidence naming `metrics` (what the
    # invalid part measured, e.g. a steady probe beside other measurements) only when it judges one.
    judged = set(requirement.expect.metrics)
    invalid = [v for v in validity if v.get("kind") == "invalid"
               and (not isinstance(v.get("metrics"), list) or judged & set(map(str, v["metrics"])))]
    if invalid:
        return made("inconclusive", f"{prefix}: inconclusive: {invalid[0].get('reason')}{suffix}")
    unknown = [v.get("kind") for v in validity if v.get("kind") not in VALIDITY_KINDS]
    if unknown:
        return made("error", f"{prefix}: unknown validity evidence {unknown[0]!r}")
    if ended.how == "assertion":
        return _waivable(made("fail", f"{prefix}: {ended.reason or 'assertion failed'}{suffix}"),
                         requirement, site, waivers)

    try:
        outcomes = E.evaluate(requirement.expect, measured, requirement.metric_dimensions)
    except (ValueError, E.ExpectError, U.UnitError) as exc:
        return made("error", f"{prefix}: cannot compare with the expectation: {exc}", detail=f"cannot compare: {exc}")
    missing = [o for o in outcomes if o.ok is None]
    if missing:
        text = "; ".join(o.describe() for o in missing)
        return made("error", f"{prefix}: {text}{suffix}", detail=text, outcomes=outcomes)

    reason = (_too_few_samples(requirement, outcomes, validity) or _lower_bound(outcomes, validity)
              or _below_floor(outcomes, requirement.metric_dimensions, validity)
              or _starved(outcomes, measured, validity))
    if reason:
        return made("inconclusive", f"{prefix}: inconclusive: {reason}{suffix}", outcomes=outcomes)

    close = near_floor(outcomes, requirement.metric_dimensions, validity)
    close_text = f" [{close}]" if close else ""
    failed = [o for o in outcomes if not o.ok]
    if failed:
        detail = "; ".join(_value_text(o) for o in failed) + close_text
        message = f"{prefix}: {'; '.join(o.describe() for o in failed)}{close_text}{suffix}"
        return _waivable(made("fail", message, detail=detail, outcomes=outcomes), requirement, site, waivers)
    shown = "; ".join(o.describe().replace(", expected ", " (expected ") + ")" for o in outcomes)
    return Decision("pass", f"{prefix}: {shown}{close_text}",
                    detail="; ".join(_value_text(o) for o in outcomes) + close_text, outcomes=outcomes)


# ------------------------------------------------------------------------------------------- waivers


def waived_message(fail_message: str, waiver: dict) -> str:
    return f"{fail_message} [waived until {waiver['expires']}: {waiver['reason']} ({waiver['who']})]"


def _waivable(d: Decision, requirement: Any, site: str, waivers: list | None) -> Decision:
    for w in waivers or []:
        w = w if isinstance(w, dict) else w.to_dict()
        if w.get("id") == requirement.id and w.get("site") in ("all", site):
            return Decision("waived", waived_message(d.message, w), waiver=w, detail=d.detail, outcomes=d.outcomes)
    return d


def _value_text(o: E.Outcome) -> str:
    return f"{o.comparison.metric} = {o.comparison.show(o.measured)}" if o.measured is not None else \
        f"{o.comparison.metric} not measured"


# ------------------------------------------------------------------------------------------ validity


def min_samples(c: E.Comparison) -> int:
    """Samples a comparison needs before it can be judged (0: any number will do)."""
    if c.metric in MIN_SAMPLES:
        return MIN_SAMPLES[c.metric]
    if c.metric in FAILURE_RATIOS and c.op in ("<", "<="):
        try:
            bound = U.to_base(c.value, c.unit, U.RATIO)
        except U.UnitError:
            return 0
        return math.ceil(1.0 / bound - 1e-9) if bound > 0 else 0
    return 0


def _too_few_samples(requirement: Any, outcomes: list[E.Outcome], validity: list[dict]) -> str:
    """Inconclusive when a comparison needs more samples than were measured, unless one that had
    enough already fails (then the expectation fails whatever the rest would say)."""
    counts = [v.get("count") for v in validity if v.get("kind") == "samples"]
    if not counts or not isinstance(counts[0], (int, float)):
        return ""
    count = counts[0]
    short = [(need, o.comparison) for o in outcomes if count < (need := min_samples(o.comparison))]
    if not short:
        return ""
    undecided = {c.metric for _, c in short}
    if any(o.ok is False and o.comparison.metric not in undecided for o in outcomes):
        return ""
    need, c = max(short, key=lambda item: item[0])
    return f"{c.metric} needs at least {need} samples, got {count:g}"


def _lower_bound(outcomes: list[E.Outcome], validity: list[dict]) -> str:
    """A metric recorded as a lower bound of the truth (a capacity search that stopped before the
    knee) decides a `>=` that holds and a `<=` that fails; anything else about it is undecided."""
    bounds = {v.get("metric"): v for v in validity if v.get("kind") == "lower_bound"}
    if not bounds:
        return ""
    decided_fail = any(o.ok is False and (o.comparison.metric not in bounds or o.comparison.op in ("<", "<="))
                       for o in outcomes)
    if decided_fail:
        return ""
    undecided = [o for o in outcomes if o.comparison.metric in bounds
                 and ((o.comparison.op in (">", ">=") and not o.ok) or (o.comparison.op in ("<", "<=") and o.ok)
                      or o.comparison.op in ("==", "!="))]
    if not undecided:
        return ""
    o = undecided[0]
    why = bounds[o.comparison.metric].get("reason") or "the search stopped before the knee"
    shown = o.comparison.show(o.measured) if o.measured is not None else "not measured"
    return (f"{o.comparison.metric} is only a lower bound ({shown}, {why}): "
            f"{o.comparison.text.strip()} cannot be decided")


def _floored(outcomes: list[E.Outcome], dimensions: dict[str, str], validity: list[dict]):
    """(outcome, floor in the comparison's unit, floor evidence) for each upper bound with a floor."""
    floors = {v.get("metric"): v for v in validity if v.get("kind") == "floor"}
    for o in outcomes:
        f = floors.get(o.comparison.metric)
        value = f.get("value") if f else None
        if f is None or o.comparison.op not in ("<", "<=") or not isinstance(value, (int, float)) or value <= 0:
            continue
        c = o.comparison
        dim = dimensions.get(c.metric) or E._dimension_of(str(f.get("unit") or ""), c.unit)
        try:
            floor = U.from_base(U.to_base(float(value), str(f.get("unit") or ""), dim), c.unit, dim)
        except (ValueError, U.UnitError):
            continue
        yield o, floor, f


def _below_floor(outcomes: list[E.Outcome], dimensions: dict[str, str], validity: list[dict]) -> str:
    """An upper bound within FLOOR_RATIO of the metric's measurement floor cannot be decided (unless
    another comparison fails: then the requirement fails on that one)."""
    undecided, undecided_metrics = "", set()
    for o, floor, f in _floored(outcomes, dimensions, validity):
        c = o.comparison
        why = f" ({f['reason']})" if f.get("reason") else ""
        strict = bool(f.get("strict"))
        beyond_noise = not strict and o.measured is not None and o.measured > c.value + FLOOR_RATIO * floor
        text = ""
        if c.value < FLOOR_RATIO * floor and not beyond_noise:
            text = (f"{c.metric}: the budget {c.bound_text()} is under {FLOOR_RATIO:g}x the measurement "
                    f"floor {c.show(floor)}{why}")
        elif strict and o.measured is not None and c.value < o.measured <= c.value + floor:
            text = (f"{c.metric} = {c.show(o.measured)} is over the budget {c.bound_text()} by less than the "
                    f"measurement floor {c.show(floor)}{why}")
        if text:
            undecided_metrics.add(c.metric)
            undecided = undecided or text
    if undecided and any(o.ok is False and o.comparison.metric not in undecided_metrics for o in outcomes):
        return ""  # another comparison fails, decided: the requirement fails on it
    return undecided


def near_floor(outcomes: list[E.Outcome], dimensions: dict[str, str], validity: list[dict]) -> str:
    """'p90 budget 3 ms is 6x the measurement floor 0.5 ms' for each judged upper bound closer than
    FLOOR_NOTE_RATIO to its strict floor ('' when none is): said in the message and the report's row.
    Strict floors only: the messages of results made before them (verify recomputes those) stay as
    they were."""
    parts = []
    for o, floor, f in _floored(outcomes, dimensions, validity):
        c = o.comparison
        if f.get("strict") and FLOOR_RATIO * floor <= c.value < FLOOR_NOTE_RATIO * floor:
            parts.append(f"{c.metric} budget {c.show(c.value)} is {c.value / floor:.1f}x the measurement floor "
                         f"{c.show(floor)}")
    return "; ".join(parts)


def pressure_figures(item: dict) -> str:
    """'CPU 23 %, I/O 1.2 % of 6.5 s' from a pressure evidence item."""
    parts = [f"{name} {item[key]:g} %" for name, key in (("CPU", "cpu"), ("I/O", "io"), ("memory", "memory"))
             if isinstance(item.get(key), (int, float))]
    window = item.get("window_s")
    return ", ".join(parts) + (f" of {window:g} s" if isinstance(window, (int, float)) else "")


def starved_resources(item: dict) -> list[str]:
    return [r for r in PRESSURE_RESOURCES
            if isinstance(item.get(r), (int, float)) and item[r] >= CONTENDED_RATIO * 100.0]


def _starved(outcomes: list[E.Outcome], measured: dict[str, tuple[float, str]], validity: list[dict]) -> str:
    """A failing tail or mean, measured while the harness's machine was starved, whose median was still
    within the same bound: the machine's tail, not the target's. Anything else fails as measured."""
    failing = [o for o in outcomes if o.ok is False]
    if not failing:
        return ""
    for item in (v for v in validity if v.get("kind") == "pressure"):
        starved = starved_resources(item)
        if not starved:
            continue
        cores = item.get("target_cores")
        if isinstance(cores, (int, float)) and cores >= TARGET_BUSY_CORES:
            continue  # the site itself was busy: judged as measured
        if not all(_explained(o.comparison, measured) for o in failing):
            continue
        names = ", ".join(sorted({o.comparison.metric for o in failing}))
        return (f"the harness's machine was starved while measuring (some task waited {pressure_figures(item)}; "
                f"limit {CONTENDED_RATIO * 100:g} % for {', '.join(starved)}) and the median was within "
                f"budget: {names} over budget may be the machine's tail, not the target's; rerun on a "
                "quieter machine")
    return ""


# The percentile each stretchable metric is, to tell whether it falls among the failed requests.
PERCENTILE_OF = {"p50": 50.0, "p75": 75.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


def _failed_share(measured: dict[str, tuple[float, str]]) -> float:
    """The share of requests that failed (errors and timeouts), 0..1, from what was recorded."""
    total = 0.0
    for metric in FAILURE_RATIOS:
        if metric in measured:
            try:
                total += U.to_base(*measured[metric], U.RATIO)
            except U.UnitError:
                continue
    return total


def _explained(c: E.Comparison, measured: dict[str, tuple[float, str]]) -> bool:
    if c.metric not in STRETCHABLE or c.op not in ("<", "<=") or not c.unit or MEDIAN not in measured:
        return False
    # A percentile that falls among the failed requests (ranked last, at the timeout) is their share,
    # not a stretched tail: starvation does not turn answers into errors.
    q = PERCENTILE_OF.get(c.metric)
    if q is not None and _failed_share(measured) * 100.0 >= 100.0 - q - 1e-9:
        return False
    try:
        median = U.to_base(*measured[MEDIAN], U.TIME)
        return median <= U.to_base(c.value, c.unit, U.TIME)
    except U.UnitError:
        return False
