"""The latency suite's fixtures: the harness's own measurement floor."""

from __future__ import annotations

import pytest

from conformance.pytest_plugin import run_plugin

CALIBRATION_RATE = 200.0  # the latency suite's default probe rate (catalog/latency.py)
CALIBRATION_DURATION_S = 2.0


@pytest.fixture(scope="session")
def edge_calibration(request: pytest.FixtureRequest) -> dict:
    """The harness's own latency floor (HTTP against a loopback server, docs/latency.md), measured once
    per run when a check first asks for it, and kept as results.json "calibration". A calibration that
    cannot be measured is recorded as such (valid: false), never raised: it is context, not a verdict."""
    from conformance.measure.latency import calibrate

    try:
        floor = calibrate("http", CALIBRATION_RATE, duration=CALIBRATION_DURATION_S, realtime=True).to_dict()
    except Exception as exc:  # noqa: BLE001 - recorded; the checks still measure
        floor = {"valid": False, "invalid_reason": f"calibration failed: {type(exc).__name__}: {exc}"}
    plugin = run_plugin(request.config)
    if plugin is not None:
        plugin.record.set("calibration", floor)
    return floor
