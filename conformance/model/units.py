"""Units and dimensions for expectations and measurements.

A metric has a dimension (time, ratio, ...). An expectation's unit must belong to that dimension and is
converted to the dimension's base unit before comparing, so `p99 <= 0.02 s` and `p99 <= 20 ms` are the
same requirement and `p99 <= 20 rps` is rejected when the profile is validated.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import did_you_mean

# Dimension names. "count" and "bool" are unitless.
TIME = "time"
RATIO = "ratio"
SIZE = "size"
BITRATE = "bitrate"
RATE = "rate"
COUNT = "count"
BOOL = "bool"
CPU = "cpu"
DIMENSIONS = (TIME, RATIO, SIZE, BITRATE, RATE, COUNT, BOOL, CPU)


@dataclass(frozen=True)
class Unit:
    symbol: str
    dimension: str
    factor: float  # multiply a value in this unit by factor to get the dimension's base unit


_UNITS = [
    # time, base: seconds
    Unit("ns", TIME, 1e-9), Unit("us", TIME, 1e-6), Unit("µs", TIME, 1e-6),
    Unit("ms", TIME, 1e-3), Unit("s", TIME, 1.0), Unit("min", TIME, 60.0), Unit("h", TIME, 3600.0),
    # ratio, base: fraction 0..1
    Unit("%", RATIO, 0.01), Unit("ratio", RATIO, 1.0), Unit("ppm", RATIO, 1e-6),
    # size, base: bytes
    Unit("B", SIZE, 1.0), Unit("kB", SIZE, 1e3), Unit("MB", SIZE, 1e6), Unit("GB", SIZE, 1e9),
    Unit("KiB", SIZE, 1024.0), Unit("MiB", SIZE, 1024.0**2), Unit("GiB", SIZE, 1024.0**3),
    # bitrate, base: bit/s
    Unit("bit/s", BITRATE, 1.0), Unit("kbit/s", BITRATE, 1e3), Unit("Mbit/s", BITRATE, 1e6),
    Unit("Gbit/s", BITRATE, 1e9),
    # request rate, base: requests per second
    Unit("rps", RATE, 1.0), Unit("rpm", RATE, 1 / 60.0),
    # CPU, base: cores (1.0 = one core fully busy)
    Unit("cores", CPU, 1.0), Unit("millicores", CPU, 1e-3),
]
UNITS: dict[str, Unit] = {u.symbol: u for u in _UNITS}

BASE_UNIT = {TIME: "s", RATIO: "ratio", SIZE: "B", BITRATE: "bit/s", RATE: "rps", COUNT: "",
             BOOL: "", CPU: "cores"}


class UnitError(ValueError):
    """A unit is unknown or belongs to the wrong dimension."""


def lookup(symbol: str) -> Unit:
    try:
        return UNITS[symbol]
    except KeyError:
        raise UnitError(f'unknown unit "{symbol}"{did_you_mean(symbol, UNITS)}') from None


def to_base(value: float, unit: str, dimension: str) -> float:
    """Convert value in `unit` to the base unit of `dimension`; '' means unitless."""
    if dimension in (COUNT, BOOL):
        if unit:
            raise UnitError(f'a {dimension} takes no unit, got "{unit}"')
        return float(value)
    if not unit:
        if dimension == RATIO:
            return float(value)  # a bare ratio is a fraction
        raise UnitError(f"a {dimension} needs a unit, e.g. {example_units(dimension)}")
    u = lookup(unit)
    if u.dimension != dimension:
        raise UnitError(f'unit "{unit}" is a {u.dimension}, but this metric is a {dimension}'
                        f" (use {example_units(dimension)})")
    return float(value) * u.factor


def from_base(value: float, unit: str, dimension: str) -> float:
    if dimension in (COUNT, BOOL) or (not unit and dimension == RATIO):
        return float(value)
    return float(value) / lookup(unit).factor


def example_units(dimension: str) -> str:
    return ", ".join(u.symbol for u in _UNITS if u.dimension == dimension and u.symbol != "µs")


def format_value(value: float, unit: str) -> str:
    """Human form: 38.2 ms, 0.5 %, 200 (no trailing zeros, at most 4 significant decimals)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if float(value).is_integer() and abs(value) < 1e15:
        text = str(int(value))
    else:
        if abs(value) < 1e-3 or abs(value) >= 1e6:
            text = f"{value:.4g}"
        else:  # 3 decimals, more below 1 so that 0.0015 is not shown as 0.002 (4 significant digits)
            decimals = 3 if abs(value) >= 1 else 3 - math.floor(math.log10(abs(value)))
            text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    if not unit:
        return text
    return f"{text}{unit}" if unit == "%" else f"{text} {unit}"


_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(\S.*?)?\s*$")
_EXAMPLE = {TIME: '"20 ms"', RATIO: '"0.1 %"', SIZE: '"512 MiB"', BITRATE: '"10 Mbit/s"', RATE: '"100 rps"',
            CPU: '"0.5 cores"', COUNT: "10", BOOL: "true"}


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_quantity(value: object, dimension: str, bare_unit: str | None = None, *,
                   units: Iterable[str] | None = None, aliases: Mapping[str, str] | None = None,
                   maximum: float | None = None, example: str | None = None, name: str | None = None) -> float:
    """The one reader of a quantity written in a file: 25, "25 ms", "25ms", "0.1 %", "10 Mbit/s",
    "512 MiB" -> a float in the dimension's base unit (s, fraction, B, bit/s, rps, cores).

    The caller states its policy: `bare_unit` is the unit of a bare number (None: a unit is required,
    but a bare 0 is 0 in any unit); `units` the symbols accepted (default: every unit of the
    dimension); `aliases` other spellings of them (looked up lower-cased); `maximum` in base units.
    Negative and non-finite values, and ratios above 100 %, are always refused. Every refusal is a
    ValueError whose message names the value, ready to follow a file:line: field prefix.
    """
    example = example or _EXAMPLE.get(dimension, "")
    shown = _shown(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected {name or 'a ' + dimension} such as {example}, got {shown}")
    unit = ""
    if isinstance(value, str):
        m = _QUANTITY.match(value)
        if not m:
            if value.strip().startswith("-"):
                raise ValueError(f"{shown} cannot be negative")
            raise ValueError(f"expected {name or 'a ' + dimension} such as {example}, got {shown}")
        number: object = m[1]
        unit = m[2] or ""
    else:
        number = value
    try:
        amount = float(number)  # type: ignore[arg-type]
    except OverflowError:  # an int of 300 digits
        raise ValueError(f"{shown} is out of range") from None
    if not math.isfinite(amount):  # .nan, .inf, 1e999
        raise ValueError(f"{shown} is not a finite number")
    if amount < 0:
        raise ValueError(f"{shown} cannot be negative")
    if aliases:
        unit = aliases.get(unit.lower(), unit)
    accepted = tuple(units) if units is not None else tuple(
        u.symbol for u in _UNITS if u.dimension == dimension)
    if not unit:
        if bare_unit is None and amount != 0:
            raise ValueError(f"{shown} needs a unit, e.g. {example}")
        unit = bare_unit or ""
    elif unit not in accepted:
        known = UNITS.get(unit)
        if known is not None and known.dimension != dimension:
            raise ValueError(f'unit "{unit}" in {shown} is a {known.dimension}, not a {dimension}'
                             f" (use {', '.join(u for u in accepted if u != 'µs')})")
        raise ValueError(f'unknown unit "{unit}" in {shown}{did_you_mean(unit, accepted)}'
                         f" (use {', '.join(u for u in accepted if u != 'µs')})")
    base = to_base(amount, unit, dimension) if unit or dimension in (RATIO, COUNT, BOOL) else amount
    if not math.isfinite(base):
        raise ValueError(f"{shown} is out of range")
    if dimension == RATIO and base > 1:
        raise ValueError(f"{shown} is out of range (above 100 %)")
    if maximum is not None and base > maximum:
        raise ValueError(f"{shown} is out of range (more than {format_value(maximum, BASE_UNIT[dimension])})")
    return base
