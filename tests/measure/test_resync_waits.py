"""measure/resync.await_resync: a central (or site) that a fault stopped may still be starting when the
fault ends (a real one takes its time): it has until the deadline to answer, like the data has to arrive;
one that never answers is an error naming the request, not a pass and not a fail."""

from __future__ import annotations

import time

import pytest

from conformance.measure.resync import await_resync
from conformance.model.errors import MeasurementError

SUMMARY = {"count": 2, "digest": "abc"}


class Site:
    def json(self, method, path, body=None, what=""):
        return SUMMARY


class Central:
    """Refuses `down` calls (like a probe still starting), then holds what the site has."""

    def __init__(self, down: int):
        self.down, self.calls = down, 0

    def json(self, method, path, body=None, what=""):
        self.calls += 1
        if self.calls <= self.down:
            raise MeasurementError(f"{what}: GET {path} -> connection refused")
        if "summary" in path:
            return SUMMARY
        return {"records": [{"id": "t-1"}, {"id": "t-2"}]}


def test_a_central_still_starting_is_waited_for():
    central = Central(down=3)
    out, notes = await_resync(Site(), central, "store-1", "t", ["t-1", "t-2"], time.monotonic(), timeout=5,
                              settle=0, in_sync_before=True)
    assert out["synced"] and out["digest_match"] and central.calls > 3, (out, notes)


def test_a_central_that_never_answers_is_an_error_after_the_deadline():
    started = time.monotonic()
    with pytest.raises(MeasurementError, match=r"connection refused \(still no answer 0\.5 s after the fault ended\)"):
        await_resync(Site(), Central(down=10**6), "store-1", "t", ["t-1"], started, timeout=0.5, settle=0,
                     in_sync_before=True)
    assert time.monotonic() - started < 5
