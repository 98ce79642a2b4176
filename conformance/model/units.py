"""Units and dimensions for expectations and measurements.

A metric has a dimension (time, ratio, ...). An expectation's unit must belong to that dimension and is
converted to the dimension's base unit before comparing, so `p99 <= 0.02 s` and `p99 <= 20 ms` are the
same requirement and `p99 <= 20 rps` is rejected when the profile is validated.
"""

from __future__ import annotations

import math
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


def parse_quantity(value: object, dimension: str, bare_unit: str) -> float:
    """A profile value such as 25, "25 ms", "5 %" or "1 Mbit/s" -> base units; a bare number is in
    `bare_unit`. Negative values, and ratios above 100 %, are refused (ValueError, UnitError)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a number or a quantity such as \"25 {bare_unit or example_units(dimension)}\"")
    try:
        if isinstance(value, str):
            number, _, unit = value.strip().partition(" ")
            base = to_base(float(number), unit.strip() or bare_unit, dimension)
        else:
            base = to_base(float(value), bare_unit, dimension)
    except OverflowError:  # an int of 300 digits
        raise ValueError("out of range") from None
    if not math.isfinite(base) or base < 0 or (dimension == RATIO and base > 1):
        raise ValueError("out of range")
    return base
