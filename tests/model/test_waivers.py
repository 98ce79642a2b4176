"""Waivers: active until their expiry date, covering one site or all."""

import datetime as dt
import textwrap

import pytest

from conformance.model.errors import ConfigError
from conformance.model.waivers import load_waivers, split_active


def write(tmp_path, text):
    path = tmp_path / "w.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


WAIVERS = """\
    waivers:
      - id: REQ-1
        site: store-2
        reason: vendor fix due in release 4.2
        who: jane.doe@example.com
        expires: 2027-01-31
      - id: REQ-2
        site: all
        reason: known limitation
        who: ops@example.com
        expires: "2020-06-30"
"""


def test_load_and_cover(tmp_path):
    w1, w2 = load_waivers(write(tmp_path, WAIVERS))
    assert w1.expires == dt.date(2027, 1, 31) and w2.expires == dt.date(2020, 6, 30)
    assert w1.covers("REQ-1", "store-2")
    assert not w1.covers("REQ-1", "store-1") and not w1.covers("REQ-3", "store-2")
    assert w2.covers("REQ-2", "store-1") and w2.covers("REQ-2", "central")
    assert w1.origin.endswith(":2")
    assert w1.to_dict()["expires"] == "2027-01-31"


def test_active_versus_expired_by_date(tmp_path):
    waivers = load_waivers(write(tmp_path, WAIVERS))
    active, expired = split_active(waivers, today=dt.date(2026, 1, 1))
    assert [w.id for w in active] == ["REQ-1"] and [w.id for w in expired] == ["REQ-2"]
    active, expired = split_active(waivers, today=dt.date(2027, 1, 30))
    assert [w.id for w in active] == ["REQ-1"]
    active, expired = split_active(waivers, today=dt.date(2027, 1, 31))  # ignored from its date on
    assert active == [] and len(expired) == 2
    active, expired = split_active(waivers, today=dt.date(2019, 1, 1))
    assert len(active) == 2 and expired == []


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("waivers: {}\n", 1, "waivers", "expected a list"),
        ("- id: x\n", 1, None, 'one key, "waivers"'),
        ("waivers: []\nextra: 1\n", 1, None, 'one key, "waivers"'),
        ("waivers:\n  - just text\n", 2, "waivers[0]", "expected a mapping"),
        ("waivers:\n  - {id: R, site: all, reason: r, who: w, expires: 2027-13-01}\n", 2, "waivers[0].expires",
         'cannot read "2027-13-01"'),
        ("waivers:\n  - {id: R, site: all, reason: r, who: w, expires: tomorrow}\n", 2, "waivers[0].expires",
         "expected a date"),
        ("waivers:\n  - {id: R, site: all, reason: '', who: w, expires: 2027-01-01}\n", 2, "waivers[0].reason",
         "non-empty string"),
        ("waivers:\n  - {id: R, site: all, reason: r, who: w}\n", 2, "waivers[0]", 'missing required key "expires"'),
        ("waivers:\n  - {id: R, site: all, reason: r, who: w, expires: 2027-01-01, sites: x}\n", 2,
         "waivers[0].sites", 'did you mean "site"'),
    ],
)
def test_waiver_errors(tmp_path, text, line, field, message):
    with pytest.raises(ConfigError) as info:
        load_waivers(write(tmp_path, text))
    assert (info.value.line, info.value.field) == (line, field), str(info.value)
    assert message in info.value.message
