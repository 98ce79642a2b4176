"""Fixtures of the report tests: the sample results of tests/report/samples.py."""

from __future__ import annotations

import copy

import pytest

from tests.report.samples import (HOSTILE, SAMPLES, sample_conformant, sample_interrupted, sample_legacy_v1,
                                  sample_non_conformant, sample_partial, sample_with_raw)


@pytest.fixture
def conformant() -> dict:
    return sample_conformant()


@pytest.fixture
def non_conformant() -> dict:
    return sample_non_conformant()


@pytest.fixture
def interrupted() -> dict:
    return sample_interrupted()


@pytest.fixture
def with_raw() -> dict:
    return sample_with_raw()


@pytest.fixture
def partial() -> dict:
    return sample_partial()


@pytest.fixture
def legacy_v1() -> dict:
    return sample_legacy_v1()


@pytest.fixture(params=sorted(SAMPLES))
def any_results(request) -> dict:
    return SAMPLES[request.param]()


@pytest.fixture
def injection() -> str:
    """The markup `hostile` puts into every target-controlled string."""
    return HOSTILE


@pytest.fixture
def hostile() -> dict:
    """A non-conformant run whose target-controlled text tries to break out of every format."""
    doc = copy.deepcopy(sample_with_raw())
    doc["requirements"] += sample_non_conformant()["requirements"]
    doc["target"]["name"] = HOSTILE
    doc["target"]["sites"][0]["name"] = HOSTILE
    doc["target"]["sites"][0]["endpoints"] = {"api": f"http://127.0.0.1:8081/{HOSTILE}"}
    doc["scope"]["full"] = False
    doc["scope"]["narrowed_by"] = [f"--site {HOSTILE}\x1b[31m"]
    doc["scope"]["changed_by"] = [f"--defect {HOSTILE}:slow-path"]
    for r in doc["requirements"]:
        r["site"] = HOSTILE
        r["message"] = f"{r['message']} {HOSTILE}\x1b[31m\x00\x07"
        r["notes"] = [HOSTILE]
        if r["status"] == "not-measured":
            r["ended"] = {"how": "not-measured", "reason": f"no host {HOSTILE}\x1b[2J", "remedy": f"add {HOSTILE}"}
    doc["waivers"] = {"applied": [{"id": "X", "site": HOSTILE, "reason": HOSTILE, "who": HOSTILE,
                                   "expires": "2027-01-01"}], "expired": []}
    return doc
