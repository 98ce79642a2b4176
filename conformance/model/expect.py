"""The expectation language of requirement profiles.

    expect := comparison ("and" comparison)*
    comparison := METRIC OP VALUE [UNIT]
    OP := "<=" | "<" | ">=" | ">" | "==" | "!="
    VALUE := number | true | false

Examples: `p99 <= 20 ms`, `error_ratio < 0.1 %`, `throughput >= 200 rps and p95 <= 50 ms`,
`status == 200`, `connected == true`. Parsing is separate from binding to a check's metrics, so the
syntax can be checked before we know which check a requirement uses.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass

from . import units as U

OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt,
       "==": operator.eq, "!=": operator.ne}

_COMPARISON = re.compile(
    r"""^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_.]*)\s*
        (?P<op><=|>=|==|!=|<|>)\s*
        (?P<value>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|true|false)\s*
        (?P<unit>\S+)?\s*$""",
    re.VERBOSE,
)
_AND = re.compile(r"\s+and\s+")


class ExpectError(ValueError):
    """The expectation text is malformed or does not fit the check's metrics."""


@dataclass(frozen=True)
class Comparison:
    metric: str
    op: str
    value: float
    unit: str  # '' for unitless
    text: str
    boolean: bool = False  # written as true/false

    def show(self, value: float) -> str:
        if self.boolean:
            return "true" if value else "false"
        return U.format_value(value, self.unit)

    def bound_text(self) -> str:
        """The right-hand side as written, e.g. '<= 20 ms'."""
        return f"{self.op} {self.show(self.value)}"


@dataclass(frozen=True)
class Expectation:
    comparisons: tuple[Comparison, ...]
    text: str

    @property
    def metrics(self) -> list[str]:
        return [c.metric for c in self.comparisons]

    def upper_bound(self, metrics: tuple[str, ...], dimension: str) -> tuple[str, float] | None:
        """(metric, bound in the dimension's base unit) of the first of `metrics` the expectation bounds
        from above (`<` or `<=`), e.g. the p99 a report draws as a threshold; None when none is bounded
        or the bound is not of that dimension."""
        for metric in metrics:
            for c in self.comparisons:
                if c.metric == metric and c.op in ("<", "<="):
                    try:
                        return metric, U.to_base(c.value, c.unit, dimension)
                    except U.UnitError:
                        return None
        return None


def parse(text: object) -> Expectation:
    if not isinstance(text, str) or not text.strip():
        raise ExpectError('expected an expression such as "p99 <= 20 ms"')
    comparisons = []
    for part in _AND.split(text.strip()):
        if re.search(r"\s(or|not)\s|^\s*not\s", f" {part} "):
            raise ExpectError(f'only "and" can join comparisons, in "{part.strip()}"')
        m = _COMPARISON.match(part)
        if not m:
            raise ExpectError(f'cannot read "{part.strip()}": expected METRIC OP VALUE [UNIT], '
                              f'e.g. "p99 <= 20 ms"')
        raw_value = m["value"]
        value = {"true": 1.0, "false": 0.0}.get(raw_value)
        if value is None:
            value = float(raw_value)
            if not math.isfinite(value):
                raise ExpectError(f'value "{raw_value}" is not a finite number')
        unit = m["unit"] or ""
        if unit:
            U.lookup(unit) if unit not in U.UNITS else None  # raises UnitError with did-you-mean
        comparisons.append(Comparison(m["metric"], m["op"], value, unit, part.strip(),
                                      boolean=raw_value in ("true", "false")))
    return Expectation(tuple(comparisons), text.strip())


def check_dimensions(expectation: Expectation, metric_dimensions: dict[str, str],
                     check: str, open_metrics: bool = False) -> None:
    """Raise ExpectError/UnitError if a metric is unknown to the check or its unit doesn't fit."""
    for c in expectation.comparisons:
        dim = metric_dimensions.get(c.metric)
        if dim is None:
            if open_metrics:
                continue
            from .errors import did_you_mean

            known = ", ".join(sorted(metric_dimensions)) or "none"
            raise ExpectError(f'check {check} has no metric "{c.metric}"'
                              f"{did_you_mean(c.metric, metric_dimensions)} (known: {known})")
        if dim == U.BOOL and c.op not in ("==", "!="):
            raise ExpectError(f'"{c.metric}" is true/false: compare it with == or !=')
        U.to_base(c.value, c.unit, dim)  # raises UnitError on a wrong or missing unit


@dataclass
class Outcome:
    comparison: Comparison
    measured: float | None  # in the comparison's unit, None when not measured
    ok: bool | None  # None when not measured

    def describe(self) -> str:
        c = self.comparison
        if self.measured is None:
            return f"{c.metric} not measured, expected {c.bound_text()}"
        return f"{c.metric} = {c.show(self.measured)}, expected {c.bound_text()}"


def evaluate(expectation: Expectation, measured: dict[str, tuple[float, str]],
             dimensions: dict[str, str]) -> list[Outcome]:
    """Compare measured {metric: (value, unit)} with every comparison, converting units."""
    outcomes = []
    for c in expectation.comparisons:
        if c.metric not in measured:
            outcomes.append(Outcome(c, None, None))
            continue
        value, unit = measured[c.metric]
        dim = dimensions.get(c.metric) or _dimension_of(unit, c.unit)
        base = U.to_base(value, unit, dim)
        expected_base = U.to_base(c.value, c.unit, dim)
        ok = OPS[c.op](_round(base), _round(expected_base))
        outcomes.append(Outcome(c, U.from_base(base, c.unit, dim), ok))
    return outcomes


def _dimension_of(unit: str, fallback_unit: str) -> str:
    for u in (unit, fallback_unit):
        if u:
            return U.lookup(u).dimension
    return U.COUNT


def _round(x: float) -> float:
    # Unit conversions introduce binary noise (0.1 % -> 0.0010000000000000002); compare at 12 digits.
    return float(f"{x:.12g}")
