"""Bytes an emulated WAN link carried, read from the emulator's control API (`GET /status`, the
`stats` of link `wan:<site>`): measuring what crossed the WAN, not a fault.

Reads go only to a control API on this machine's loopback, or to a deployment of the caller's own
state root (check_readable, the same rule the fault client applies to its reads)."""

from __future__ import annotations

import time

from ..model.errors import MeasurementError
from .http import call_json


def check_readable(control_url: str, run_id: str | None = None) -> None:
    """NotMeasured unless `control_url` is on loopback or a deployment of this state root."""
    from ..emulation import deployment

    if deployment.loopback_control(control_url) is None:
        deployment.owned_control(control_url, run_id)  # raises NotMeasured


class LinkBytes:
    """Bytes the emulated WAN link of a site carried towards central (bytes_up of `wan:<site>`)."""

    def __init__(self, control_url: str, site: str, *, run_id: str | None = None, timeout: float = 10.0):
        self.name = f"wan:{site}"
        self.control_url = control_url.rstrip("/")
        self.run_id, self.timeout = run_id, timeout

    def read(self) -> tuple[float, float] | None:
        """(time, bytes_up), or None when the emulator keeps no counters for the link."""
        check_readable(self.control_url, self.run_id)
        try:
            links = call_json("GET", self.control_url + "/status", timeout=self.timeout, empty={}).get("links") or []
        except (MeasurementError, AttributeError):
            return None
        for link in links:
            if link.get("name") == self.name and isinstance(link.get("stats"), dict):
                up = link["stats"].get("bytes_up")
                if isinstance(up, (int, float)):
                    return time.monotonic(), float(up)
        return None

    def background(self, seconds: float) -> float | None:
        """Bytes per second the link carries over `seconds` with nothing sent by us (heartbeats, config
        polls); None when the emulator keeps no counters for the link."""
        first = self.read()
        if first is None:
            return None
        time.sleep(seconds)
        second = self.read()
        return (second[1] - first[1]) / max(second[0] - first[0], 1e-3) if second else 0.0
