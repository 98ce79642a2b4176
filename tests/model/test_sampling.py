"""Sampled fleet requirements (model/sampling.py): the profile fields, which sites a sample takes, the
Clopper-Pearson bounds and what they decide, and the fleet entry the run record builds from them."""

from __future__ import annotations

import hashlib
import math
import random
import textwrap
from fractions import Fraction

import pytest

from conformance.model import recompute as RC
from conformance.model import results as R
from conformance.model import sampling as S
from conformance.model.errors import ConfigError
from conformance.model.profile import load_profile

# ----------------------------------------------------------------------------------- profile fields

REQ = """\
id: p
version: "1"
title: P
requirements:
  - id: R-1
    title: most stores up
    level: must
    check: functional.http
    applies_to: edge
    expect: status == 200
"""


def _profile(tmp_path, extra: str):
    path = tmp_path / "p.yaml"
    path.write_text(REQ + textwrap.indent(textwrap.dedent(extra), "    "), encoding="utf-8")
    return load_profile(str(path))


def test_a_share_or_a_count_with_a_confidence(tmp_path):
    (r,) = _profile(tmp_path, 'sites: "95%"\nsample: " 10 % "\n').requirements
    assert r.sample == S.Sampling(share=0.1, confidence=0.95) and r.sample.raw == "10%"
    assert r.sample.text == "10 %" and r.sample.size(1000) == 100
    (r,) = _profile(tmp_path, 'sites: "95%"\nsample: 100\nconfidence: "99%"\n').requirements
    assert r.sample == S.Sampling(count=100, confidence=0.99) and r.sample.raw == 100
    assert r.sample.text == "100 sites" and r.sample.size(1000) == 100 and r.sample.size(40) == 40
    (r,) = _profile(tmp_path, 'sites: "95%"\n').requirements
    assert r.sample is None


@pytest.mark.parametrize("extra,line,field,message", [
    ('sample: "10%"\n', 11, "sample", "a sample needs a fleet quorum to judge"),
    ('sites: "90%"\nconfidence: "99%"\n', 12, "confidence", "a confidence goes with a sample"),
    ('sites: "90%"\nsample: "0%"\n', 12, "sample", "between 0 % (excluded) and 100 %, got 0%"),
    ('sites: "90%"\nsample: "150%"\n', 12, "sample", "between 0 % (excluded) and 100 %, got 150%"),
    ('sites: "90%"\nsample: 0\n', 12, "sample", "a sample takes at least 1 site, got 0"),
    ('sites: "90%"\nsample: -5\n', 12, "sample", "a sample takes at least 1 site, got -5"),
    ('sites: "90%"\nsample: ten\n', 12, "sample", '"ten" is not valid here (a share of the sites'),
    ('sites: "90%"\nsample: 12.5\n', 12, "sample", "expected string or integer, got the number 12.5"),
    ('sites: "90%"\nsample: true\n', 12, "sample", "expected string or integer, got a boolean"),
    ('sites: "90%"\nsample: 10\nconfidence: "100%"\n', 13, "confidence", "between 50 % and 100 % (excluded)"),
    ('sites: "90%"\nsample: 10\nconfidence: "20%"\n', 13, "confidence", "between 50 % and 100 % (excluded)"),
    ('sites: "90%"\nsample: 10\nconfidence: 0.95\n', 13, "confidence", "expected a string, got the number 0.95"),
])
def test_wrong_sample_fields_are_one_located_line(tmp_path, extra, line, field, message):
    with pytest.raises(ConfigError) as info:
        _profile(tmp_path, extra)
    err = info.value
    assert (err.line, err.field) == (line, f"requirements[0].{field}"), str(err)
    assert message in err.message and "\n" not in str(err)
    assert f"p.yaml:{line}: requirements[0].{field}: {err.message}" in str(err)


def test_an_override_keeps_the_sample_and_may_change_it(tmp_path):
    (tmp_path / "parent.yaml").write_text(REQ.replace("id: p\n", "id: parent\n")
                                          + '    sites: "90%"\n    sample: "10%"\n    confidence: "99%"\n')
    (tmp_path / "child.yaml").write_text(textwrap.dedent("""\
        id: child
        version: "1"
        title: Child
        extends: parent.yaml
        requirements:
          - id: R-1
            title: renamed
          - id: R-2
            title: other
            level: must
            check: functional.http
            expect: status == 200
        """))
    kept = load_profile(str(tmp_path / "child.yaml")).requirement("R-1")
    assert kept.sample == S.Sampling(share=0.1, confidence=0.99) and kept.quorum == pytest.approx(0.9)
    (tmp_path / "child.yaml").write_text((tmp_path / "child.yaml").read_text().replace(
        "    title: renamed\n", "    title: renamed\n    sample: 25\n"))
    changed = load_profile(str(tmp_path / "child.yaml")).requirement("R-1")
    assert changed.sample == S.Sampling(count=25, confidence=0.99)


# ------------------------------------------------------------------------------------ which sites

SITES = [f"store-{i:04d}" for i in range(1, 1001)]


def test_size_of_a_share_and_of_a_count():
    ten = S.Sampling(share=0.10)
    assert [ten.size(n) for n in (1000, 999, 1001, 5, 1, 0)] == [100, 100, 101, 1, 1, 0]
    assert S.Sampling(share=1.0).size(12) == 12 and S.Sampling(share=0.5).size(12) == 6
    assert S.Sampling(count=100).size(1000) == 100 and S.Sampling(count=100).size(12) == 12


def test_the_sample_is_the_first_k_by_sha256_of_id_and_site():
    expected = sorted(SITES, key=lambda s: hashlib.sha256(f"NODE-01\0{s}".encode()).hexdigest())[:100]
    assert S.sample_of("NODE-01", S.Sampling(share=0.1), SITES) == expected


def test_the_sample_does_not_depend_on_site_order_or_on_the_run():
    chosen = S.sample_of("NODE-01", S.Sampling(share=0.1), SITES)
    shuffled = SITES[:]
    random.Random(7).shuffle(shuffled)
    assert S.sample_of("NODE-01", S.Sampling(share=0.1), shuffled) == chosen
    assert S.sample_of("NODE-01", S.Sampling(count=100), list(reversed(SITES))) == chosen
    # another requirement samples other sites
    other = S.sample_of("NODE-02", S.Sampling(share=0.1), SITES)
    assert len(other) == 100 and set(other) != set(chosen)
    # a bigger sample keeps the smaller one (the ranking is the same)
    assert set(chosen) < set(S.sample_of("NODE-01", S.Sampling(share=0.2), SITES))


def test_every_shard_sees_the_same_sample():
    """A shard plans every site of the target (it only measures its own): the sample is taken from the
    whole population, so the shards' samples are one sample."""
    from conformance.engine.shard import shard_sites

    chosen = set(S.sample_of("NODE-01", S.Sampling(share=0.1), SITES))
    per_shard = [set(S.sample_of("NODE-01", S.Sampling(share=0.1), SITES)) & set(shard_sites(SITES, k, 4))
                 for k in range(1, 5)]
    assert set().union(*per_shard) == chosen and sum(map(len, per_shard)) == 100


# ----------------------------------------------------------------------------------------- bounds


def _tail_at_least(x: int, n: int, p: Fraction) -> Fraction:
    """P(X >= x), X ~ Binomial(n, p), exactly (rational arithmetic): the brute-force check."""
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(x, n + 1))


def _cdf(x: int, n: int, p: Fraction) -> Fraction:
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(0, x + 1))


def test_known_bounds():
    assert S.lower_bound(100, 100, 0.95) == pytest.approx(0.05 ** (1 / 100)) and \
        S.lower_bound(100, 100, 0.95) == pytest.approx(0.9705, abs=5e-5)
    assert S.upper_bound(0, 100, 0.95) == pytest.approx(1 - 0.05 ** (1 / 100))
    assert S.lower_bound(97, 100, 0.95) == pytest.approx(0.9243, abs=1e-4)
    # the one-sided 95 % upper bound of 97/100 is 0.9918; 0.9938 is the two-sided 95 % one (97.5 % one-sided)
    assert S.upper_bound(97, 100, 0.95) == pytest.approx(0.9918, abs=1e-4)
    assert S.upper_bound(97, 100, 0.975) == pytest.approx(0.9938, abs=1e-4)
    assert S.lower_bound(0, 10, 0.95) == 0.0 and S.upper_bound(10, 10, 0.95) == 1.0


@pytest.mark.parametrize("x,n,c", [(97, 100, 0.95), (4, 6, 0.95), (1, 6, 0.9), (45, 50, 0.99), (3, 4, 0.8)])
def test_bounds_against_an_exact_brute_force_sum(x, n, c):
    """At the lower bound P(X >= x) = 1 - c: just below it the exact sum is under 1 - c, just above over.
    Likewise P(X <= x) at the upper bound."""
    alpha, eps = Fraction(1 - c).limit_denominator(10**6), Fraction(1, 10**7)
    low = Fraction(S.lower_bound(x, n, c))
    assert _tail_at_least(x, n, low - eps) < alpha < _tail_at_least(x, n, low + eps)
    high = Fraction(S.upper_bound(x, n, c))
    assert _cdf(x, n, high - eps) > alpha > _cdf(x, n, high + eps)


@pytest.mark.parametrize("lo,hi,n,p", [(0, 3, 40, "0.9"), (35, 40, 40, "0.1"), (10, 30, 40, "0.5"), (0, 200, 200, "0.97"),
                                       (190, 200, 200, "0.97"), (0, 0, 7, "0.3"), (7, 7, 7, "0.3")])
def test_binomial_sum_is_the_exact_sum(lo, hi, n, p):
    """Whether the mode lies inside [lo, hi], below or above it, the walk from the mode adds what the
    exact rational sum gives."""
    q = Fraction(p)
    exact = sum(math.comb(n, i) * q ** i * (1 - q) ** (n - i) for i in range(lo, hi + 1))
    assert S.binomial_sum(lo, hi, n, float(q)) == pytest.approx(float(exact), rel=1e-12, abs=1e-300)


def test_binomial_sum_adds_up():
    assert S.binomial_sum(0, 100, 100, 0.37) == pytest.approx(1.0)
    assert S.binomial_sum(97, 100, 100, 0.9) == pytest.approx(float(_tail_at_least(97, 100, Fraction(9, 10))))
    assert S.binomial_sum(0, 1000, 1000, 0.999) == pytest.approx(1.0)  # no overflow at fleet size


# ---------------------------------------------------------------------------------------- outcomes


@pytest.mark.parametrize("passed,failed,undecided,quorum,status", [
    (100, 0, 0, 0.95, "pass"),    # L = 0.9705 >= 0.95
    (97, 3, 0, 0.95, None),       # between 0.9243 and 0.9918: the sample cannot tell
    (97, 3, 0, 0.90, "pass"),     # L = 0.9243 >= 0.90
    (97, 3, 0, 0.995, "fail"),    # U = 0.9918 < 0.995
    (80, 20, 0, 0.95, "fail"),
    (99, 0, 1, 0.95, "pass"),     # the undecided one counted as a failure: L(99, 100) = 0.9536 still passes
    (95, 0, 5, 0.95, None),       # counted as failures they would sink it, as passes they would not
])
def test_judge(passed, failed, undecided, quorum, status):
    assert S.judge(passed, failed, undecided, quorum, 0.95).status == status


def test_a_census_has_exact_bounds():
    j = S.judge(12, 0, 0, 0.95, 0.95, census=True)
    assert (j.status, j.lower, j.upper) == ("pass", 1.0, 1.0)  # a sample could only say >= 77.9 %
    assert S.judge(11, 1, 0, 0.95, 0.95, census=True).status == "fail"


def _members(sampled: dict[str, str], unsampled: int) -> list[dict]:
    out = [{"id": "Q", "profile": "p", "site": site, "status": status, "fleet_member": True, "sampled": True}
           for site, status in sampled.items()]
    return out + [{"id": "Q", "profile": "p", "site": f"out-{i}", "status": "not-run", "fleet_member": True,
                   "sampled": False} for i in range(unsampled)]


def _fleet(size="10%", confidence=0.95, quorum=0.95) -> dict:
    return {"id": "Q", "profile": "p", "site": R.FLEET_SITE, "level": "must", "status": "not-run",
            "quorum": quorum, "sampling": {"size": size, "confidence": confidence}}


def test_sites_outside_the_sample_are_no_gap():
    members = _members({f"s-{i}": "pass" for i in range(100)}, 900)
    fields = RC.fleet_fields(_fleet(), members)
    assert fields["status"] == "pass" and fields["advisory"] is False
    assert fields["sampling"] == {"size": "10%", "confidence": 0.95, "population": 1000, "sample": 100,
                                  "census": False, "passed": 100, "failed": 0, "undecided": 0,
                                  "lower": 0.970487, "upper": 1.0}
    assert fields["message"] == ("Q fleet: sampled 100 of 1,000 sites (sample: 10 %), 100 pass, 0 fail; pass share "
                                 ">= 97.04 % at 95 % confidence; expected at least 95 %")
    assert fields["measured"] == {"sites_passing": {"value": 100.0, "unit": "%"}, "sites": {"value": 100, "unit": ""}}
    assert S.summary(fields["sampling"], "pass") == "sampled 100 of 1,000 sites; pass share >= 97.04 % at 95 % confidence"


def test_the_three_outcomes_of_a_sampled_fleet():
    statuses = {f"s-{i}": "pass" for i in range(97)} | {f"f-{i}": "fail" for i in range(3)}
    fields = RC.fleet_fields(_fleet(), _members(statuses, 900))
    assert fields["status"] == "inconclusive"
    assert fields["message"].endswith("the sample cannot tell at 95 % confidence: between 92.42 % and 99.18 % of "
                                      "the fleet passes, the quorum is 95 %")
    assert RC.fleet_fields(_fleet(quorum=0.9), _members(statuses, 900))["status"] == "pass"
    failed = RC.fleet_fields(_fleet(quorum=0.995), _members(statuses, 900))
    assert failed["status"] == "fail" and "pass share <= 99.18 % at 95 % confidence" in failed["message"]
    assert S.summary(failed["sampling"], "fail") == "sampled 100 of 1,000 sites; pass share <= 99.18 % at 95 % confidence"


def test_undecided_sites_of_the_sample_keep_the_quorum_rules():
    pending = {f"s-{i}": "pass" for i in range(90)} | {f"r-{i}": "not-run" for i in range(10)}
    assert RC.fleet_fields(_fleet(), _members(pending, 900))["status"] == "not-run"
    unmeasured = {f"s-{i}": "pass" for i in range(90)} | {f"r-{i}": "not-measured" for i in range(10)}
    assert RC.fleet_fields(_fleet(), _members(unmeasured, 900))["status"] == "not-measured"
    erred = {f"s-{i}": "pass" for i in range(90)} | {f"r-{i}": "error" for i in range(10)}
    fields = RC.fleet_fields(_fleet(), _members(erred, 900))
    assert fields["status"] == "inconclusive" and fields["sampling"]["undecided"] == 10
    assert "90 pass, 0 fail, 10 not decided" in fields["message"]
    # not-applicable sites of the sample do not count; a sample no site of which applies is not applicable
    na = {f"s-{i}": "pass" for i in range(100)} | {"n-1": "not-applicable"}
    assert RC.fleet_fields(_fleet(), _members(na, 899))["sampling"]["passed"] == 100
    assert RC.fleet_fields(_fleet(), _members({"n-1": "not-applicable"}, 9))["status"] == "not-applicable"


def test_a_fleet_without_sampling_is_judged_as_before():
    members = [{"id": "Q", "profile": "p", "site": f"s-{i}", "status": "pass", "fleet_member": True}
               for i in range(19)] + [{"id": "Q", "profile": "p", "site": "x", "status": "fail", "fleet_member": True}]
    fleet = {"id": "Q", "profile": "p", "site": R.FLEET_SITE, "level": "must", "quorum": 0.95}
    fields = RC.fleet_fields(fleet, members)
    assert "sampling" not in fields and fields["status"] == "pass"
    assert fields["message"] == "Q fleet: 19 of 20 sites pass (95 %), 1 fail; expected at least 95 %"


def test_outside_the_sample_is_told_apart():
    assert R.is_unsampled({"fleet_member": True, "sampled": False})
    assert not R.is_unsampled({"fleet_member": True, "sampled": True})
    assert not R.is_unsampled({"fleet_member": True})
    assert S.not_in_sample_reason(100, 1000, S.Sampling(share=0.1)) == \
        "not in the sample: 100 of 1,000 sites (sample: 10 %)"


def test_profiles_diff_and_explain_show_the_sample(tmp_path):
    from conformance.model.profile_diff import diff_profiles, render
    from tests.helpers.cli import run_cli

    (tmp_path / "a.yaml").write_text(REQ + '    sites: "95%"\n    sample: "10%"\n')
    (tmp_path / "b.yaml").write_text(REQ + '    sites: "95%"\n    sample: 100\n    confidence: "99%"\n')
    d = diff_profiles(load_profile(str(tmp_path / "a.yaml")), load_profile(str(tmp_path / "b.yaml")))
    assert "sample: 10 % at 95 % confidence -> 100 sites at 99 % confidence" in render(d)
    proc = run_cli("profiles", "explain", str(tmp_path / "b.yaml"), "R-1")
    assert proc.returncode == 0, proc.stderr
    assert "sample:    100 of those sites (the same ones every run), the quorum judged at 99 % confidence" \
        in proc.stdout
