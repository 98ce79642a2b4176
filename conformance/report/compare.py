"""Compare two runs: per requirement x site x metric, what changed, and whether it is a regression.

    edge-conformance compare base/results.json new/results.json --tolerance 10% --tolerance p99=5%

A metric's bad direction comes from the requirement's expectation: for `p99 <= 20 ms` up is bad, for
`throughput >= 200 rps` down is bad; metrics the expectation does not bound (and `==` comparisons)
are shown but never regress on their own. A change is a regression when it goes the bad way by more
than the tolerance (relative, `10%`, or absolute, `2 ms`; per metric with `p99=5%`) and by more than the
noise floor, a share of the expectation's limit (default 2 %: a health probe going from 1 ms to 3 ms
against a 500 ms limit is noise, a p99 going from 9 ms to 14 ms against 20 ms is not). A status that
gets worse (pass -> fail, pass -> error ...) is a regression whatever the numbers. New and removed
requirements are listed.
"""

from __future__ import annotations

import json
import math
import re
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..model import catalog
from ..model import expect as E
from ..model import units as U
from ..model.errors import ConfigError
from . import view as V
from .markdown import cell, text
from .writer import load_results

DEFAULT_TOLERANCE = "10%"
DEFAULT_NOISE = 0.02
# How bad a status is; a move to a higher rank is a regression when the new status is one of BAD.
# A requirement that was measured and now is not (pass -> not-measured) is a regression: a run that stops
# measuring something cannot show that it still holds. "skip" is v1's, for comparing with old files.
RANK = {"pass": 0, "waived": 1, "not-applicable": 1, "skip": 1, "not-run": 2, "inconclusive": 2,
        "not-measured": 2, "error": 3, "fail": 4}
BAD = ("fail", "error", "inconclusive", "not-measured", "not-run")
# v1's skip became one of these two: a move between them is a change of words, not of the result.
SKIP_SPLIT = ("skip", "not-applicable", "not-measured")
KIND_ORDER = {"worse": 0, "regression": 1, "removed": 2, "new": 3, "better": 4, "improvement": 5,
              "changed": 6, "metric-added": 7, "metric-removed": 7, "same": 8}
_LEVEL_ORDER = {"must": 0, "should": 1, "may": 2}
_TOL = re.compile(r"^\s*(?:(?P<metric>[A-Za-z_][A-Za-z0-9_.]*)\s*=\s*)?(?P<value>[0-9]*\.?[0-9]+)\s*(?P<unit>\S*)\s*$")


@dataclass(frozen=True)
class Tolerance:
    relative: float | None = None  # 0.1 = 10 %
    absolute: float | None = None  # in the dimension's base unit
    absolute_unit: str = ""
    text: str = ""

    def exceeded(self, base: float, delta: float) -> bool:
        if self.absolute is not None:
            return abs(delta) > self.absolute * (1 + 1e-9)
        if base == 0:
            return delta != 0
        return abs(delta) / abs(base) > (self.relative or 0.0) * (1 + 1e-9)


def parse_tolerances(specs: list[str] | tuple[str, ...]) -> tuple[Tolerance, dict[str, Tolerance]]:
    """`10%` (all metrics), `p99=5%`, `latency=2 ms` -> (default, per metric)."""
    default = _parse_one(DEFAULT_TOLERANCE)
    per: dict[str, Tolerance] = {}
    for spec in specs:
        m = _TOL.match(spec)
        if not m:
            raise ConfigError(None, None, "--tolerance", f'cannot read "{spec}": expected e.g. 10%, p99=5% or latency=2 ms')
        tol = _parse_one(f"{m['value']}{m['unit']}", spec)
        if m["metric"]:
            per[m["metric"]] = tol
        else:
            default = tol
    return default, per


def _parse_one(value_unit: str, spec: str | None = None) -> Tolerance:
    m = re.match(r"^([0-9]*\.?[0-9]+)\s*(\S*)$", value_unit)
    value, unit = float(m[1]), m[2]
    if unit == "%":
        return Tolerance(relative=value / 100.0, text=f"{value:g}%")
    if not unit:
        raise ConfigError(None, None, "--tolerance", f'"{spec or value_unit}": give a unit: % (relative) or an '
                                                     f"absolute one such as ms")
    try:
        u = U.lookup(unit)
    except U.UnitError as e:
        raise ConfigError(None, None, "--tolerance", f'"{spec or value_unit}": {e}') from None
    return Tolerance(absolute=value * u.factor, absolute_unit=unit, text=f"{value:g} {unit}")


def parse_noise(text_: str | float) -> float:
    s = str(text_).strip()
    try:
        v = float(s[:-1]) / 100.0 if s.endswith("%") else float(s)
    except ValueError:
        raise ConfigError(None, None, "--noise", f'"{text_}": expected a share of the limit such as 2%') from None
    if not 0 <= v < 1:
        raise ConfigError(None, None, "--noise", "expected a share between 0% and 100%")
    return v


# ------------------------------------------------------------------------------------------ loading


def load_run(path: str | Path) -> dict:
    """A results.json, a run's output directory, or a bundle (its results.json, not verified)."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    if p.is_file() and tarfile.is_tarfile(p):
        from .verify import read_members

        _, members, _ = read_members(p)
        if "results.json" not in members:
            raise ConfigError(str(p), None, None, "the bundle has no results.json")
        tmp = json.loads(members["results.json"].decode("utf-8"))
        if not isinstance(tmp, dict) or "requirements" not in tmp:
            raise ConfigError(str(p), None, None, "the bundle's results.json is not a results file")
        return tmp
    return load_results(p)


# ------------------------------------------------------------------------------------------ comparing


@dataclass
class Row:
    kind: str  # worse | regression | removed | new | better | improvement | changed | metric-* | same
    id: str
    site: str
    level: str
    metric: str | None = None
    base: str = ""
    new: str = ""
    change: str = ""
    expected: str = ""
    base_status: str = ""
    new_status: str = ""
    base_value: float | None = None  # in the base run's unit
    new_value: float | None = None  # converted to the base run's unit
    unit: str = ""
    relative: float | None = None
    tolerance: str = ""
    score: float = 0.0  # how far beyond tolerance (for ordering)

    @property
    def label(self) -> str:
        return f"{self.id}@{self.site}"

    @property
    def regression(self) -> bool:
        return self.kind in ("worse", "regression")


@dataclass
class Comparison:
    base: dict
    new: dict
    rows: list[Row]
    tolerance: str
    per_metric: dict[str, str]
    noise: float
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.regression]

    def to_dict(self) -> dict:
        return {"base": self.base, "new": self.new, "tolerance": self.tolerance, "per_metric": self.per_metric,
                "noise": self.noise, "regressions": len(self.regressions), "notes": self.notes,
                "rows": [asdict(r) | {"regression": r.regression} for r in self.rows]}


def _run_facts(results: dict) -> dict:
    return {"run_id": results.get("run_id"), "verdict": results.get("verdict"), "started": results.get("started"),
            "profiles": [{"id": p.get("id"), "version": p.get("version"), "sha256": p.get("sha256")}
                         for p in results.get("profiles") or []],
            "target": (results.get("target") or {}).get("name")}


def _index(results: dict) -> dict[tuple, dict]:
    reqs = [r for r in results.get("requirements") or [] if isinstance(r, dict)]
    dup = {(r.get("id"), r.get("site")) for r in reqs
           if sum(1 for x in reqs if (x.get("id"), x.get("site")) == (r.get("id"), r.get("site"))) > 1}
    out = {}
    for r in reqs:
        key = (r.get("id"), r.get("site"))
        out[key + ((r.get("profile"),) if key in dup else ())] = r
    return out


def _comparison(entry: dict, metric: str) -> E.Comparison | None:
    try:  # a fleet entry's expectation ends with "(each site: ...)"
        exp = E.parse(str(entry.get("expect") or "").split(" (each site:")[0])
    except (E.ExpectError, U.UnitError):
        return None
    return next((c for c in exp.comparisons if c.metric == metric), None)


def _dimension(entry: dict, metric: str, unit: str, comparison: E.Comparison | None) -> str:
    spec = catalog.get(str(entry.get("check") or ""))
    if spec and metric in spec.metrics:
        return spec.metrics[metric]
    for u in (unit, comparison.unit if comparison else ""):
        if u and u in U.UNITS:
            return U.UNITS[u].dimension
    return U.COUNT


def _value(m: Any) -> tuple[float, str] | None:
    if isinstance(m, dict) and isinstance(m.get("value"), (int, float)) and not isinstance(m.get("value"), bool):
        return float(m["value"]), str(m.get("unit") or "")
    return None


def _pct(rel: float | None) -> str:
    if rel is None:
        return ""
    if math.isinf(rel):
        return "new value (base 0)"
    return f"{rel * 100:+.1f}%"


def _metric_rows(key: tuple, b: dict, n: dict, default: Tolerance, per: dict[str, Tolerance],
                 noise: float) -> list[Row]:
    rows = []
    level = str(n.get("level") or b.get("level"))
    bm, nm = b.get("measured") or {}, n.get("measured") or {}
    for metric in list(dict.fromkeys([*bm, *nm])):
        bv, nv = _value(bm.get(metric)), _value(nm.get(metric))
        comparison = _comparison(n, metric) or _comparison(b, metric)
        expected = comparison.bound_text() if comparison else ""
        common = dict(id=key[0], site=key[1], level=level, metric=metric, expected=expected,
                      base_status=str(b.get("status")), new_status=str(n.get("status")))
        if bv is None or nv is None:
            if bv is None and nv is None:
                continue
            shown = U.format_value(*(bv or nv))
            rows.append(Row("metric-added" if bv is None else "metric-removed",
                            base="" if bv is None else shown, new="" if nv is None else shown, **common))
            continue
        dim = _dimension(n, metric, nv[1] or bv[1], comparison)
        try:
            base_b, new_b = U.to_base(bv[0], bv[1], dim), U.to_base(nv[0], nv[1], dim)
            new_in_base_unit = U.from_base(new_b, bv[1], dim)
        except U.UnitError:
            rows.append(Row("changed", base=U.format_value(*bv), new=U.format_value(*nv),
                            change="units not comparable", **common))
            continue
        delta = new_b - base_b
        rel = (delta / abs(base_b)) if base_b else (math.inf if delta else 0.0)
        tol = per.get(metric, default)
        direction = None
        if comparison and comparison.op in ("<", "<="):
            direction = "up"
        elif comparison and comparison.op in (">", ">="):
            direction = "down"
        exceeded = tol.exceeded(base_b, delta)
        if exceeded and comparison and direction:
            try:
                bound = abs(U.to_base(comparison.value, comparison.unit, dim))
            except U.UnitError:
                bound = 0.0
            if bound and abs(delta) < noise * bound:
                exceeded = False
        bad = direction == "up" and delta > 0 or direction == "down" and delta < 0
        if not exceeded:
            kind = "same"
        elif direction is None:
            kind = "changed"
        else:
            kind = "regression" if bad else "improvement"
        if tol.absolute is not None:
            score = abs(delta) / tol.absolute if tol.absolute else math.inf
        else:
            score = abs(rel) / tol.relative if tol.relative else math.inf
        rows.append(Row(kind, base=U.format_value(*bv), new=U.format_value(new_in_base_unit, bv[1]),
                        change=_pct(rel) if base_b else ("" if not delta else _pct(math.inf)),
                        base_value=bv[0], new_value=new_in_base_unit, unit=bv[1],
                        relative=None if math.isinf(rel) else rel, tolerance=tol.text,
                        score=min(score, 1e9), **common))
    return rows


def _status_row(key: tuple, bs: str, ns: str, n: dict) -> Row:
    common = dict(id=key[0], site=key[1], level=str(n.get("level")), expected=str(n.get("expect") or ""),
                  base_status=bs, new_status=ns, change=f"{bs} -> {ns}")
    if "skip" in (bs, ns) and bs in SKIP_SPLIT and ns in SKIP_SPLIT:
        return Row("changed", **{**common, "change": f"{bs} -> {ns} (v1's skip is now not-applicable or "
                                                      "not-measured)"})
    worse = RANK.get(ns, 3) > RANK.get(bs, 3) and ns in BAD
    return Row("worse" if worse else "better", **common)


def _scope_notes(base: dict, new: dict) -> list[str]:
    """A partial run cannot show that what it left out still holds: say so next to the comparison."""
    notes = []
    for which, results in (("base", base), ("new", new)):
        scope = V.Scope(results)
        if scope.word == "partial":
            how = ", ".join(scope.narrowed_by) or "how not recorded"
            notes.append(f"the {which} run was partial (narrowed by {how}): what it left out was not measured")
        if scope.changed_by:
            notes.append(f"the {which} run was changed by {', '.join(scope.changed_by)}")
    return notes


def compare_runs(base: dict, new: dict, tolerances: list[str] | tuple[str, ...] = (),
                 noise: float | str = DEFAULT_NOISE) -> Comparison:
    default, per = parse_tolerances(tolerances)
    noise = parse_noise(noise) if isinstance(noise, str) else float(noise)
    bi, ni = _index(base), _index(new)
    rows: list[Row] = []
    for key in list(dict.fromkeys([*bi, *ni])):
        b, n = bi.get(key), ni.get(key)
        if b is None or n is None:
            e = b or n
            rows.append(Row("removed" if n is None else "new", id=key[0], site=key[1], level=str(e.get("level")),
                            expected=str(e.get("expect") or ""),
                            base_status=str(b.get("status")) if b else "", new_status=str(n.get("status")) if n else ""))
            continue
        bs, ns = str(b.get("status")), str(n.get("status"))
        if bs != ns:
            rows.append(_status_row(key, bs, ns, n))
        rows += _metric_rows(key, b, n, default, per, noise)
    rows.sort(key=lambda r: (KIND_ORDER.get(r.kind, 9), _LEVEL_ORDER.get(r.level, 3), -r.score, r.label,
                             r.metric or ""))
    c = Comparison(_run_facts(base), _run_facts(new), rows, default.text,
                   {k: v.text for k, v in per.items()}, noise)
    bp = {p["id"]: p["sha256"] for p in c.base["profiles"]}
    for p in c.new["profiles"]:
        if p["id"] in bp and bp[p["id"]] != p["sha256"]:
            c.notes.append(f"profile {p['id']} differs between the runs (sha256 {str(bp[p['id']])[:12]} -> "
                           f"{str(p['sha256'])[:12]}): expectations may have changed")
    if c.base["target"] != c.new["target"]:
        c.notes.append(f"the runs checked different targets ({c.base['target']} -> {c.new['target']})")
    c.notes += _scope_notes(base, new)
    return c


# ------------------------------------------------------------------------------------------ output


_FLAG = {"worse": "REGRESSION", "regression": "REGRESSION", "removed": "removed", "new": "new",
         "better": "better", "improvement": "improved", "changed": "changed", "metric-added": "new metric",
         "metric-removed": "metric gone", "same": "within tolerance"}


def render_markdown(c: Comparison, show_all: bool = False) -> str:
    n = len(c.regressions)
    head = f"# Edge conformance comparison: {n} regression{'s' if n != 1 else ''}" if n else \
        "# Edge conformance comparison: no regression"
    lines = [head, "",
             f"**Base** {text(c.base['run_id'])} ({text(c.base['verdict'])}) -> **new** {text(c.new['run_id'])} "
             f"({text(c.new['verdict'])})", ""]
    per = ", ".join(f"{k}: {v}" for k, v in c.per_metric.items())
    lines += [f"Tolerance {c.tolerance}" + (f" ({per})" if per else "")
              + f"; changes smaller than {c.noise * 100:g}% of a requirement's limit are noise.", ""]
    lines += [f"- {text(note)}" for note in c.notes] + ([""] if c.notes else [])
    shown = [r for r in c.rows if show_all or r.kind != "same"]
    hidden = len(c.rows) - len(shown)
    if shown:
        lines += ["| | requirement@site | level | metric | base | new | change | expected | status |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in shown:
            status = r.base_status if r.base_status == r.new_status else f"{r.base_status or '-'} -> {r.new_status or '-'}"
            cells = [_FLAG.get(r.kind, r.kind), r.label, r.level, r.metric or "", r.base, r.new, r.change,
                     r.expected, status]
            lines.append("| " + " | ".join(cell(x) for x in cells) + " |")
        lines.append("")
    if hidden:
        lines += [f"{hidden} metric{'s' if hidden != 1 else ''} within tolerance not shown (--all shows them).", ""]
    if not c.rows:
        lines += ["Nothing to compare: neither run has results.", ""]
    return "\n".join(lines)


def render_json(c: Comparison) -> str:
    return json.dumps(c.to_dict(), indent=2, default=str) + "\n"
