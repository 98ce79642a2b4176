"""--duration-scale: outage lengths multiplied, everything else untouched, recorded, refused below 1 s."""

from __future__ import annotations

import pytest

from conformance.engine.plan import Selection, entry, run_scope
from conformance.model.errors import ConfigError
from conformance.model.profile import load_profile
from conformance.model.scaling import describe, parse_factor, scale_profile


@pytest.mark.parametrize("text, factor", [("720", 720.0), ("1/100", 0.01), ("0.5", 0.5), (" 2 ", 2.0)])
def test_factors_are_numbers_or_fractions(text, factor):
    assert parse_factor(text) == pytest.approx(factor)


@pytest.mark.parametrize("text", ["0", "-1", "x", "1/0", "1e9", ""])
def test_bad_factors_say_what_is_expected(text):
    with pytest.raises(ValueError, match="expected a"):
        parse_factor(text)


def test_describe():
    assert describe(720) == "x720" and describe(0.01) == "x1/100" and describe(0.3) == "x0.3"


def test_only_outage_lengths_scale():
    quick, full = load_profile("retail"), load_profile("retail-full")
    scaled = scale_profile(full, 0.01)
    by_id = {r.id: r for r in scaled.requirements}
    long = by_id["RTL-LONG-01"]
    assert long.params["duration"] == 72 and long.unscaled == {"duration": 7200}
    assert long.params["timeout"] == 120  # a timeout is not an outage's length
    assert by_id["RTL-RES-01"].params["duration"] == 72 and by_id["RTL-RES-01"].params["probe_timeout"] == 1
    assert by_id["RTL-RES-10"].params == {r.id: r for r in full.requirements}["RTL-RES-10"].params  # flaps: short
    assert scale_profile(quick, 1) is quick
    assert {r.id: r for r in scale_profile(quick, 1200).requirements}["RTL-RES-01"].params["duration"] == 3600


def test_a_factor_that_makes_an_outage_shorter_than_a_second_is_refused():
    with pytest.raises(ConfigError) as e:
        scale_profile(load_profile("retail"), 0.1, "--duration-scale")
    assert e.value.field == "--duration-scale"
    assert "x1/10 makes RTL-RES-01's duration (3 s, profiles/retail.yaml:" in str(e.value)
    assert "use a factor of at least 0.333" in str(e.value)


def test_the_scale_is_recorded_in_the_scope_and_every_scaled_entry():
    sel = Selection(duration_scale=0.01, cli=True)

    class Target:
        emulation, lab, kind, sites, probes_deployed = {}, None, "emulated", [], []

    scope = run_scope(sel, Target(), "emulated:retail")
    assert scope["duration_scale"] == 0.01 and scope["full"]
    assert "--duration-scale 0.01 (every outage x1/100 its profile's length)" in scope["changed_by"]
    req = {r.id: r for r in scale_profile(load_profile("retail-full"), 0.01).requirements}["RTL-LONG-01"]
    from conformance.model.target import Site
    from conformance.model.verdict import Ended

    item = entry(req, Site(name="store-1", role="edge"), Ended("not-run", "not run"))
    assert item["scaled"] == {"duration": 7200} and item["params"]["duration"] == 72
