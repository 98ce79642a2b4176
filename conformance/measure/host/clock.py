"""A host's clock: its offset from the harness's clock (bracketed by ours), and what NTP says of it
(chrony's tracking, or systemd's timedatectl)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from ...model.errors import MeasurementError
from .edgehost import EdgeHost


@dataclass
class NtpState:
    offset: float | None = None  # seconds from NTP time (chrony)
    synchronized: bool | None = None
    notes: list[str] = field(default_factory=list)


class Clock:
    def __init__(self, host: EdgeHost):
        self.host = host

    def sample(self) -> tuple[float, float]:
        """(host clock - harness clock, uncertainty) in seconds, from `date +%s.%N` bracketed by our clock."""
        before = time.time()
        out = self.host.run("date +%s.%N", what="date")
        after = time.time()
        text = out.stdout.strip()
        m = re.fullmatch(r"(\d+)(?:\.(\d+))?", text)
        if out.rc != 0 or not m:
            m2 = re.match(r"(\d+)", text)
            if not m2:
                raise MeasurementError(f"host {self.host.name}: `date +%s.%N` answered {text[:60]!r}")
            host_time, extra = int(m2[1]) + 0.5, 0.5  # whole seconds only (BusyBox date without %N)
        else:
            host_time, extra = float(f"{m[1]}.{m[2] or 0}"), (0.0 if m[2] else 0.5)
        middle = (before + after) / 2
        return host_time - middle, (after - before) / 2 + extra

    def offset(self, samples: int = 3) -> tuple[float, float]:
        """The tightest bracket of a few samples, as NTP does: (offset, uncertainty) in seconds."""
        return min((self.sample() for _ in range(samples)), key=lambda s: s[1])

    def ntp(self) -> NtpState:
        host, state = self.host, NtpState()
        if host.facts.has("chronyc"):
            out = host.run("chronyc -n tracking", what="chronyc tracking")
            m = re.search(r"System time\s*:\s*([\d.]+)\s+seconds\s+(fast|slow)", out.stdout)
            if m:
                state.offset = float(m[1])
                state.notes.append(f"chrony: system time {m[1]} s {m[2]} of NTP time")
            leap = re.search(r"Leap status\s*:\s*(.+)", out.stdout)
            if leap:
                state.synchronized = "not synchron" not in leap[1].lower()
        elif host.facts.has("timedatectl") and host.facts.systemd_running:
            out = host.run("timedatectl show -p NTPSynchronized --value", what="timedatectl")
            if out.rc == 0 and out.stdout.strip() in ("yes", "no"):
                state.synchronized = out.stdout.strip() == "yes"
                state.notes.append(f"timedatectl: NTPSynchronized={out.stdout.strip()}")
        return state
