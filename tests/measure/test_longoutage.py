"""The long-outage figures: growth rates from samples, the backlog's share of them, and their noise."""

from __future__ import annotations

import random

import pytest

from conformance.measure.longoutage import growth, slope

MiB = 2**20


def samples(cut_extra: float, *, base_rate: float = 8e3, noise: float = 0.02 * MiB, warm: int = 20,
            cut: int = 60, every: float = 1.2, seed: int = 1) -> list[tuple[float, float, float]]:
    """(t, memory, disk): memory grows base_rate B/s throughout and cut_extra B/s more during the cut."""
    rng = random.Random(seed)
    rows = []
    for i in range(warm + cut):
        t = i * every
        extra = cut_extra * (t - warm * every) if i >= warm else 0.0
        rows.append((t, 40 * MiB + base_rate * t + extra + rng.gauss(0, noise), 1e6 + 5e3 * t))
    return rows


def test_slope_and_its_standard_error():
    assert slope([(0, 1.0), (1, 3.0), (2, 5.0)]) == (2.0, 0.0)
    rate, se = slope([(t, 2.0 * t + (0.5 if t % 2 else -0.5)) for t in range(10)])
    assert rate == pytest.approx(2.0, abs=0.2) and 0 < se < 0.2
    assert slope([(1, 5.0)]) == (0.0, 0.0)


def test_what_grows_with_any_sale_is_not_the_backlogs():
    g = growth(samples(0), 20, 1, cut_s=72, real_s=7200)
    assert g.rate == pytest.approx(8e3, rel=0.2)  # the cut grew as the warm-up did
    assert g.projected < 3 * g.noise_projected  # within what the noise could read
    disk = growth(samples(0), 20, 2, cut_s=72, real_s=7200)
    assert disk.projected == pytest.approx(0, abs=1e-3 * MiB) and disk.measured == pytest.approx(5e3 * 72, rel=0.01)


def test_a_leak_that_only_the_cut_shows_is_projected_to_the_real_length():
    g = growth(samples(520e3), 20, 1, cut_s=72, real_s=7200)
    assert g.backlog_rate == pytest.approx(520e3, rel=0.05)
    assert g.projected / MiB == pytest.approx(520e3 * 7200 / MiB, rel=0.05)  # ~3.5 GiB
    assert g.measured / MiB == pytest.approx((520e3 + 8e3) * 72 / MiB, rel=0.05)
    assert g.noise_projected < g.projected / 50


def test_too_few_samples_measure_nothing():
    g = growth(samples(0, cut=4), 20, 1, cut_s=5, real_s=7200)
    assert g.measured is None and g.projected is None and g.samples == 4


def test_without_a_warm_up_the_cut_rate_is_the_backlogs():
    g = growth(samples(0, warm=0), 0, 1, cut_s=72, real_s=7200)
    assert g.backlog_rate == pytest.approx(8e3, rel=0.2)


def test_what_a_measured_outage_stood_for():
    from conformance.measure.outagelength import fmt_seconds, outage_note

    assert [fmt_seconds(s) for s in (72, 7200, 86400, 90, 5400, 0.5)] == ["72 s", "2 h", "1 d", "1.5 min", "1.5 h",
                                                                        "0.5 s"]
    assert outage_note({"duration": 7200}, {}, "cut", 72) == "duration scaled: the 72 s cut stands for the profile's 2 h"
    assert outage_note({}, {"scaled_from": "hours"}, "cut", 3) == "scaled down: the 3 s cut stands for hours"
    assert outage_note({}, {}, "cut", 3) is None
    assert outage_note({"duration": 3}, {}, "cut", 3600) == "duration scaled: the cut lasted 1 h, the profile's 3 s lengthened"
