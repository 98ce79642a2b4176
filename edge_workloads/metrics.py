"""Counters and gauges of a site, rendered in the Prometheus text exposition format.

Plain dicts instead of a client library: a site must stay small (tens of MiB) and start fast.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable

PREFIX = "workload_"

Labels = tuple[tuple[str, str], ...]


class Metrics:
    def __init__(self, role: str, name: str, version: str, defects: frozenset[str]):
        self.info = {"role": role, "name": name, "version": version, "defects": ",".join(sorted(defects))}
        self.started = time.time()
        self._counters: dict[str, dict[Labels, float]] = {}
        self._help: dict[str, tuple[str, str]] = {}   # name -> (type, help)
        self._gauges: dict[str, Callable[[], float]] = {}

    def counter(self, name: str, help_text: str) -> None:
        self._help[name] = ("counter", help_text)
        self._counters.setdefault(name, {})

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self._help[name] = ("gauge", help_text)
        self._gauges[name] = read

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        series = self._counters.setdefault(name, {})
        key = tuple(sorted(labels.items()))
        series[key] = series.get(key, 0) + amount

    def value(self, name: str, **labels: str) -> float:
        """One series' value; with no labels given, the sum of all series of that counter."""
        series = self._counters.get(name, {})
        if labels:
            return series.get(tuple(sorted(labels.items())), 0)
        return sum(series.values())

    def render(self) -> str:
        lines = [
            f"# HELP {PREFIX}info Site identity.",
            f"# TYPE {PREFIX}info gauge",
            f"{PREFIX}info{_labels(tuple(self.info.items()))} 1",
        ]
        for name, series in sorted(self._counters.items()):
            kind, help_text = self._help.get(name, ("counter", name))
            lines += [f"# HELP {PREFIX}{name} {help_text}", f"# TYPE {PREFIX}{name} {kind}"]
            for labels, value in sorted(series.items()) or [((), 0)]:
                lines.append(f"{PREFIX}{name}{_labels(labels)} {_number(value)}")
        gauges = dict(self._gauges)
        gauges.setdefault("uptime_seconds", lambda: time.time() - self.started)
        gauges.setdefault("process_resident_memory_bytes", resident_memory_bytes)
        for name, read in sorted(gauges.items()):
            help_text = self._help.get(name, ("gauge", name.replace("_", " ")))[1]
            lines += [f"# HELP {PREFIX}{name} {help_text}", f"# TYPE {PREFIX}{name} gauge"]
            lines.append(f"{PREFIX}{name} {_number(read())}")
        return "\n".join(lines) + "\n"


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(str(value))}"' for key, value in labels) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def resident_memory_bytes() -> float:
    """Current RSS from /proc (Linux); peak RSS elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
