"""The latency suite's fixtures: the harness's own measurement floor."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.pytest_plugin import run_plugin

CALIBRATION_RATE = 200.0  # the latency suite's default probe rate (catalog/latency.py)
CALIBRATION_DURATION_S = 2.0
# A floor's p99 needs a few hundred samples: a slow probe rate calibrates for longer, up to this.
CALIBRATION_MIN_SAMPLES = 400
CALIBRATION_MAX_DURATION_S = 5.0


class Floors:
    """The harness's own latency floor for a probe: what the prober reports against a loopback server
    that answers at once, with the probe's protocol, rate, arrivals, concurrency, payload size and
    scheduling (docs/latency.md). Each is measured once per run, the first time a check asks for it; the
    first one measured becomes results.json "calibration". A floor that cannot be measured is kept as
    such (valid: false), never raised: the checks still measure, without a floor to weigh. The request
    itself (method, path, body) is the loopback's no-op: the floor is the harness's cost, not the
    target's."""

    def __init__(self, config: pytest.Config):
        self._config = config
        self._floors: dict[tuple, dict[str, Any]] = {}

    def for_probe(self, probe: Any) -> dict[str, Any]:
        """The floor for `probe` (a measure.latency.ProbeConfig)."""
        key = (str(probe.protocol), float(probe.rate), str(probe.arrivals), int(probe.max_in_flight),
               int(probe.payload_size), bool(probe.realtime))
        if key not in self._floors:
            self._floors[key] = _measure(*key)
            plugin = run_plugin(self._config)
            if plugin is not None and not plugin.record.data.get("calibration"):
                plugin.record.set("calibration", self._floors[key])
        return self._floors[key]


def _measure(protocol: str, rate: float, arrivals: str, max_in_flight: int, payload_size: int,
             realtime: bool) -> dict[str, Any]:
    from conformance.measure.latency import calibrate

    duration = min(max(CALIBRATION_DURATION_S, CALIBRATION_MIN_SAMPLES / rate), CALIBRATION_MAX_DURATION_S)
    try:
        return calibrate(protocol, rate, duration=duration, arrivals=arrivals, max_in_flight=max_in_flight,
                         payload_size=payload_size, realtime=realtime).to_dict()
    except Exception as exc:  # noqa: BLE001 - recorded; the checks still measure
        return {"protocol": protocol, "rate": rate, "valid": False,
                "invalid_reason": f"calibration failed: {type(exc).__name__}: {exc}"}


@pytest.fixture(scope="session")
def edge_calibration(request: pytest.FixtureRequest) -> Floors:
    return Floors(request.config)
