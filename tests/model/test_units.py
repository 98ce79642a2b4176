"""Units and dimensions: conversion to base units, dimension checks, did-you-mean, human formatting."""

import math

import pytest

from conformance.model import units as U


@pytest.mark.parametrize(
    ("value", "unit", "dimension", "base"),
    [
        (1500, "us", U.TIME, 1.5e-3),
        (1500, "µs", U.TIME, 1.5e-3),
        (20, "ms", U.TIME, 0.02),
        (2, "s", U.TIME, 2.0),
        (2, "min", U.TIME, 120.0),
        (0.1, "%", U.RATIO, 0.001),
        (0.25, "ratio", U.RATIO, 0.25),
        (0.25, "", U.RATIO, 0.25),  # a bare ratio is a fraction
        (512, "B", U.SIZE, 512.0),
        (2, "KiB", U.SIZE, 2048.0),
        (3, "MiB", U.SIZE, 3 * 1024**2),
        (1, "GiB", U.SIZE, 1024**3),
        (1, "kB", U.SIZE, 1000.0),
        (800, "bit/s", U.BITRATE, 800.0),
        (100, "Mbit/s", U.BITRATE, 1e8),
        (200, "rps", U.RATE, 200.0),
        (120, "rpm", U.RATE, 2.0),
        (7, "", U.COUNT, 7.0),
    ],
)
def test_to_base(value, unit, dimension, base):
    assert U.to_base(value, unit, dimension) == pytest.approx(base)


@pytest.mark.parametrize(("unit", "dimension"), [("ms", U.TIME), ("%", U.RATIO), ("MiB", U.SIZE),
                                                 ("Mbit/s", U.BITRATE), ("rps", U.RATE)])
def test_round_trip(unit, dimension):
    assert U.from_base(U.to_base(12.5, unit, dimension), unit, dimension) == pytest.approx(12.5)


def test_dimension_mismatch_time_vs_rps():
    with pytest.raises(U.UnitError, match=r'unit "rps" is a rate, but this metric is a time'):
        U.to_base(20, "rps", U.TIME)
    with pytest.raises(U.UnitError, match=r'unit "ms" is a time, but this metric is a rate'):
        U.to_base(20, "ms", U.RATE)


def test_size_vs_bitrate_are_different_dimensions():
    with pytest.raises(U.UnitError):
        U.to_base(1, "MiB", U.BITRATE)
    with pytest.raises(U.UnitError):
        U.to_base(1, "Mbit/s", U.SIZE)


def test_unknown_unit_suggests_the_close_one():
    with pytest.raises(U.UnitError) as info:
        U.lookup("msec")
    assert str(info.value) == 'unknown unit "msec" (did you mean "ms"?)'
    with pytest.raises(U.UnitError, match=r'unknown unit "furlongs"$'):
        U.lookup("furlongs")


def test_missing_and_superfluous_units():
    with pytest.raises(U.UnitError, match="a time needs a unit"):
        U.to_base(20, "", U.TIME)
    with pytest.raises(U.UnitError, match='a count takes no unit, got "ms"'):
        U.to_base(20, "ms", U.COUNT)
    with pytest.raises(U.UnitError, match="a bool takes no unit"):
        U.to_base(1, "%", U.BOOL)


def test_every_unit_is_in_a_known_dimension_and_every_dimension_has_a_base():
    for unit in U.UNITS.values():
        assert unit.dimension in U.DIMENSIONS
        assert unit.factor > 0 and math.isfinite(unit.factor)
    for dim, base in U.BASE_UNIT.items():
        if base:
            assert U.UNITS[base].factor == 1.0 and U.UNITS[base].dimension == dim


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (38.2, "ms", "38.2 ms"),
        (0.5, "%", "0.5%"),
        (200, "", "200"),
        (200.0, "", "200"),
        (1.23456, "s", "1.235 s"),
        (38.25, "ms", "38.25 ms"),
        (0.0015, "s", "0.0015 s"),  # not rounded to 0.002: a bound must be shown as written
        (0.0016, "", "0.0016"),
        (0.0001234, "s", "0.0001234 s"),
        (-3.5, "ms", "-3.5 ms"),
        (True, "", "true"),
        (False, "", "false"),
        (1.0, "Mbit/s", "1 Mbit/s"),
        (0.1, "%", "0.1%"),
    ],
)
def test_format_value(value, unit, text):
    assert U.format_value(value, unit) == text


def test_format_value_keeps_close_values_apart():
    # a failure message "p99 = 0.002 s, expected <= 0.002 s" would be nonsense
    assert U.format_value(0.0016, "s") != U.format_value(0.0015, "s")
