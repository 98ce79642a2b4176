"""The expectation language: parse, bind to a check's metric dimensions, evaluate with unit conversion."""

import pytest

from conformance.model import expect as E
from conformance.model import units as U

DIMS = {"p99": U.TIME, "p95": U.TIME, "error_ratio": U.RATIO, "throughput": U.RATE, "status": U.COUNT,
        "connected": U.BOOL, "memory": U.SIZE, "bandwidth": U.BITRATE}


def test_parse_single_comparison():
    e = E.parse("p99 <= 20 ms")
    assert e.text == "p99 <= 20 ms"
    (c,) = e.comparisons
    assert (c.metric, c.op, c.value, c.unit, c.boolean) == ("p99", "<=", 20.0, "ms", False)
    assert c.bound_text() == "<= 20 ms"


def test_parse_and_joins_comparisons():
    e = E.parse("  throughput >= 200 rps and p95 <= 50 ms and error_ratio < 0.1 %  ")
    assert e.metrics == ["throughput", "p95", "error_ratio"]
    assert [c.op for c in e.comparisons] == [">=", "<=", "<"]
    assert [c.unit for c in e.comparisons] == ["rps", "ms", "%"]
    assert e.text == "throughput >= 200 rps and p95 <= 50 ms and error_ratio < 0.1 %"


@pytest.mark.parametrize("op", ["<=", "<", ">=", ">", "==", "!="])
def test_every_operator_parses(op):
    (c,) = E.parse(f"status {op} 200").comparisons
    assert c.op == op and c.value == 200.0 and c.unit == ""


@pytest.mark.parametrize("text", ["status==200", "p99<=20ms", "p99 <=20 ms"])
def test_spacing_is_free(text):
    assert len(E.parse(text).comparisons) == 1


def test_numbers():
    assert E.parse("x == -5").comparisons[0].value == -5.0
    assert E.parse("x < 1e3").comparisons[0].value == 1000.0
    assert E.parse("a.b >= .5 s").comparisons[0].value == 0.5


def test_true_false():
    t, f = E.parse("connected == true and degraded != false").comparisons
    assert (t.value, t.boolean) == (1.0, True)
    assert (f.value, f.boolean) == (0.0, True)
    assert t.bound_text() == "== true"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected an expression"),
        ("   ", "expected an expression"),
        ("status = 200", 'cannot read "status = 200"'),
        ("p99 <= 20 ms and", "cannot read"),
        ("p99 <=", "cannot read"),
        ("p99 <= 20 ms ms", "cannot read"),
        ("x == True", "cannot read"),
        ("p99 <= nan ms", "cannot read"),
        ("p99 <= 1e999 ms", "not a finite number"),
        ("status == 200 or status == 204", 'only "and" can join comparisons'),
        ("not connected == true", 'only "and" can join comparisons'),
    ],
)
def test_parse_errors(text, message):
    with pytest.raises(ValueError, match=message):
        E.parse(text)


def test_parse_rejects_non_strings():
    with pytest.raises(E.ExpectError):
        E.parse(200)
    with pytest.raises(E.ExpectError):
        E.parse(None)


def test_unknown_unit_with_did_you_mean():
    with pytest.raises(U.UnitError, match=r'unknown unit "msec" \(did you mean "ms"\?\)'):
        E.parse("p99 <= 20 msec")


def test_check_dimensions_accepts_fitting_units():
    E.check_dimensions(E.parse("p99 <= 0.02 s and memory <= 512 MiB and bandwidth >= 100 Mbit/s "
                               "and error_ratio < 0.001 and throughput >= 3000 rpm and status == 200 "
                               "and connected == true"), DIMS, "x.y")


def test_check_dimensions_rejects_wrong_dimension():
    with pytest.raises(U.UnitError, match='unit "rps" is a rate, but this metric is a time'):
        E.check_dimensions(E.parse("p99 <= 20 rps"), DIMS, "latency.request")


def test_check_dimensions_rejects_unknown_metric_with_suggestion():
    with pytest.raises(E.ExpectError, match=r'check latency.request has no metric "p999" \(did you mean "p99"\?\)'):
        E.check_dimensions(E.parse("p999 <= 20 ms"), DIMS, "latency.request")


def test_check_dimensions_open_metrics_for_custom_checks():
    E.check_dimensions(E.parse("anything <= 3"), {}, "custom.x", open_metrics=True)


def test_bool_metric_needs_equality():
    with pytest.raises(E.ExpectError, match="compare it with == or !="):
        E.check_dimensions(E.parse("connected >= true"), DIMS, "functional.tcp")


def test_missing_unit_for_time_metric():
    with pytest.raises(U.UnitError, match="a time needs a unit"):
        E.check_dimensions(E.parse("p99 <= 20"), DIMS, "x")


# -- evaluation --------------------------------------------------------------------------------


def _eval(text, measured, dims=DIMS):
    return E.evaluate(E.parse(text), measured, dims)


def test_evaluate_converts_units():
    (o,) = _eval("p99 <= 20 ms", {"p99": (0.019, "s")})
    assert o.ok is True
    assert o.measured == pytest.approx(19.0)  # shown in the expectation's unit
    assert o.describe() == "p99 = 19 ms, expected <= 20 ms"
    (o,) = _eval("p99 <= 20 ms", {"p99": (21000, "us")})
    assert o.ok is False
    assert o.describe() == "p99 = 21 ms, expected <= 20 ms"


@pytest.mark.parametrize(
    ("op", "value", "ok"),
    [("<=", 20, True), ("<=", 21, False), ("<", 20, False), ("<", 19, True), (">=", 20, True),
     (">=", 19, False), (">", 20, False), (">", 21, True), ("==", 20, True), ("==", 21, False),
     ("!=", 21, True), ("!=", 20, False)],
)
def test_evaluate_every_operator(op, value, ok):
    (o,) = _eval(f"p99 {op} 20 ms", {"p99": (value, "ms")})
    assert o.ok is ok


def test_evaluate_bare_ratio_against_percent_and_float_noise():
    # 0.1 % is 0.0010000000000000002 after conversion; 0.001 measured must still be == and >=
    for op, ok in (("<=", True), (">=", True), ("==", True), ("<", False), (">", False), ("!=", False)):
        (o,) = _eval(f"error_ratio {op} 0.1 %", {"error_ratio": (0.001, "")})
        assert o.ok is ok, op
    (o,) = _eval("error_ratio < 0.1 %", {"error_ratio": (0.2, "%")})
    assert o.ok is False and o.describe() == "error_ratio = 0.2%, expected < 0.1%"


def test_evaluate_sizes_and_bitrates():
    (o,) = _eval("memory <= 1 GiB", {"memory": (1024, "MiB")})
    assert o.ok is True
    (o,) = _eval("bandwidth >= 100 Mbit/s", {"bandwidth": (99_999_999, "bit/s")})
    assert o.ok is False


def test_evaluate_booleans():
    (o,) = _eval("connected == true", {"connected": (0.0, "")})
    assert o.ok is False and o.describe() == "connected = false, expected == true"
    (o,) = _eval("connected == true", {"connected": (1.0, "")})
    assert o.ok is True


def test_evaluate_reports_each_comparison_and_missing_metrics():
    outcomes = _eval("status == 200 and p99 <= 20 ms", {"status": (200, "")})
    assert [o.ok for o in outcomes] == [True, None]
    assert outcomes[1].describe() == "p99 not measured, expected <= 20 ms"


def test_evaluate_rejects_measurement_in_wrong_dimension():
    with pytest.raises(U.UnitError):
        _eval("p99 <= 20 ms", {"p99": (5, "rps")})


def test_evaluate_custom_metric_dimension_from_units():
    (o,) = _eval("depth <= 3", {"depth": (5, "")}, dims={})
    assert o.ok is False and o.describe() == "depth = 5, expected <= 3"
    (o,) = _eval("wait <= 2 s", {"wait": (1500, "ms")}, dims={})
    assert o.ok is True
