"""The catalogue of checks a profile may name.

Each suite declares its checks here, as data: the metrics a check records (with their dimension, so
expectations can be validated before anything runs) and the params it accepts. The suite's pytest
test for a check is tied to it by `@pytest.mark.edge_check("name")`. Users' own checks, named
`custom.<anything>`, are accepted with any metrics and params; their units are checked at run time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import did_you_mean


@dataclass(frozen=True)
class Param:
    kind: str  # "str" | "int" | "number" | "bool" | "dict" | "list" | "duration" | "any"
    doc: str
    required: bool = False
    default: object = None
    items: QuantityItems | ChoiceItems | None = None  # what each list element (or a str param) must be
    # An outage's length: --duration-scale multiplies it (model/scaling.py), so a quick profile's 5 s cut
    # can run for hours and a full-length profile's day-long outage can be rehearsed in minutes.
    scales: bool = False


@dataclass(frozen=True)
class QuantityItems:
    """List elements are quantities of one dimension: 25, "25 ms"; a bare number is in `bare_unit`."""

    dimension: str
    bare_unit: str

    def problem(self, value: object) -> str | None:
        from ..units import parse_quantity

        try:
            parse_quantity(value, self.dimension, self.bare_unit)
        except ValueError as exc:
            return str(exc)
        return None


@dataclass(frozen=True)
class ChoiceItems:
    """List elements are names from a fixed set."""

    choices: tuple[str, ...]

    def problem(self, value: object) -> str | None:
        if value in self.choices:
            return None
        return f"{value!r} is not one of {', '.join(self.choices)}{did_you_mean(str(value), self.choices)}"


@dataclass(frozen=True)
class CheckSpec:
    name: str  # SUITE.CHECK
    summary: str
    metrics: dict[str, str]  # metric -> dimension (see model.units)
    params: dict[str, Param] = field(default_factory=dict)
    # "site": one verdict per (requirement, site); "fleet": per requirement over all matching sites.
    scope: str = "site"

    @property
    def suite(self) -> str:
        return self.name.split(".", 1)[0]


CUSTOM_PREFIX = "custom."


def _collect() -> dict[str, CheckSpec]:
    # Every module in this package but common.py declares a CHECKS list; one module per suite.
    import importlib
    import pkgutil

    checks: dict[str, CheckSpec] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for spec in getattr(module, "CHECKS", []):
            if spec.name in checks:  # pragma: no cover - a programming error caught by tests
                raise RuntimeError(f"check {spec.name} declared twice")
            checks[spec.name] = spec
    return checks


CHECKS: dict[str, CheckSpec] = _collect()


def is_custom(name: str) -> bool:
    return name.startswith(CUSTOM_PREFIX) and len(name) > len(CUSTOM_PREFIX)


def get(name: str) -> CheckSpec | None:
    return CHECKS.get(name)


def unknown_check_message(name: str) -> str:
    return (f'unknown check "{name}"{did_you_mean(name, CHECKS)}; '
            f'see "edge-conformance profiles checks", or name your own check "custom.<name>"')


def suite_of(name: str) -> str:
    spec = CHECKS.get(name)
    if spec:
        return spec.suite
    return "custom" if is_custom(name) else name.split(".", 1)[0]
