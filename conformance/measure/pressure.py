"""CPU pressure on the harness machine while something was measured (Linux PSI, /proc/pressure/cpu).

A latency or load figure taken while runnable tasks queued for a CPU says as much about the machine as
about the target: on an emulated deployment the sites, the WAN relays and the harness share the same
cores, so a busy CI runner stretches every percentile. The kernel's pressure-stall information counts the
microseconds in which at least one task waited for a CPU ("some"); its share of a measurement window is
the figure we report next to the result, and what decides whether a failed latency verdict on an
emulated deployment is the deployment's fault or the machine's (docs/latency.md, "CPU pressure").

Without PSI (not Linux, or a kernel built without it) nothing is measured: None, never a guess.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

PSI_CPU = Path("/proc/pressure/cpu")


def _some_total_us(path: Path = PSI_CPU) -> int | None:
    """The cumulative 'some' stall time in microseconds, or None when the kernel does not offer it."""
    try:
        text = path.read_text()
    except OSError:  # missing, or EOPNOTSUPP when PSI is compiled in but disabled (psi=0)
        return None
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "some":
            for item in fields[1:]:
                key, _, value = item.partition("=")
                if key == "total":
                    try:
                        return int(value)
                    except ValueError:
                        return None
    return None


@dataclass(frozen=True)
class Pressure:
    """The share of a window in which some task waited for a CPU."""

    some_ratio: float  # 0..1
    seconds: float

    def percent(self) -> float:
        return round(self.some_ratio * 100.0, 1)

    def to_dict(self) -> dict[str, float]:
        return {"cpu_some_percent": self.percent(), "window_s": round(self.seconds, 3)}


class PressureWindow:
    """Start before a measurement, `stop()` after it: the CPU pressure in between, or None."""

    def __init__(self, path: Path = PSI_CPU) -> None:
        self._path = path
        self._start_us = _some_total_us(path)
        self._started = time.monotonic()

    def stop(self) -> Pressure | None:
        end_us = _some_total_us(self._path)
        seconds = time.monotonic() - self._started
        if self._start_us is None or end_us is None or seconds <= 0:
            return None
        ratio = max(0.0, min(1.0, (end_us - self._start_us) / (seconds * 1e6)))
        return Pressure(ratio, seconds)


class TreeCpu:
    """CPU time used by a process and its descendants between construction and `cores()`, in cores
    (1.0 = one core busy the whole time). For an emulated site's own process tree (labels.pid)."""

    def __init__(self, pid: int | None) -> None:
        self._pid = pid
        self._started = time.monotonic()
        self._start = self._total()

    def _total(self) -> float | None:
        import psutil

        if self._pid is None:
            return None
        try:
            root = psutil.Process(self._pid)
            procs = [root, *root.children(recursive=True)]
        except (psutil.Error, OSError):
            return None
        total = 0.0
        for proc in procs:
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except (psutil.Error, OSError):  # a child that ended meanwhile
                continue
        return total

    def cores(self) -> float | None:
        end, seconds = self._total(), time.monotonic() - self._started
        if self._start is None or end is None or seconds <= 0:
            return None
        return max(0.0, (end - self._start) / seconds)


# A site whose own processes used this much CPU during the probe is (part of) the pressure it felt: a
# CPU-hungry target must not get its tail excused by the load it makes itself. A reference site
# answering 200 requests/s uses about 0.1-0.2 of a core.
TARGET_BUSY_CORES = 0.5

# A latency verdict that fails while tasks waited for a CPU this share of the probe or more is not
# trusted. benchmarks/cpu_pressure.py on 2 cores: a quiet probe sees 0.4-2.4 %, one busy neighbour
# 1 %, two 15-32 % (p99 x10 while the median did not move), three 63 % (p99 x34).
CONTENDED_RATIO = 0.10


def judge_pressure(edge, pressure: Pressure | None, stretched: frozenset[str],
                   target_cores: float | None = None) -> None:
    """Note the CPU pressure of a measurement, and make a failing verdict inconclusive when the machine
    was CPU-starved and starvation can explain every failing comparison.

    Starvation stretches the tail: a task queued behind busy neighbours answers late now and then. It
    does not move the median (see the benchmark), nor turn answers into errors within the timeout. So a
    failing upper bound on a figure in `stretched` is explained when the measured p50 is still within
    that bound; when even the median is over it, the whole distribution moved, which is the target's
    doing, and the failure stands. So do failures on anything else (error or timeout ratios) and passes,
    and every failure of a target whose own processes used TARGET_BUSY_CORES or more (`target_cores`,
    known for an emulated local site): then the pressure is at least partly its own making.
    """
    from conformance.model import expect as E
    from conformance.model import units as U

    if pressure is None:
        edge.note("CPU pressure unknown (no /proc/pressure/cpu): a busy machine would go unnoticed")
        return
    edge.attach("machine", pressure.to_dict())
    edge.note(f"CPU pressure while measuring: some task waited for a CPU {pressure.percent():g} % of "
              f"{pressure.seconds:.1f} s")
    if target_cores is not None:
        edge.note(f"the site's own processes used {target_cores:.2f} cores while measured")
    if pressure.some_ratio < CONTENDED_RATIO:
        return
    if target_cores is not None and target_cores >= TARGET_BUSY_CORES:
        return  # the site itself was busy: judged as measured
    requirement = edge.requirement
    measured = {k: (v.value, v.unit) for k, v in edge.measured.items()}
    try:
        outcomes = E.evaluate(requirement.expect, measured, requirement.metric_dimensions)
        median_s = U.to_base(*measured["p50"], U.TIME) if "p50" in measured else None
        failing = [o.comparison for o in outcomes if o.ok is False]
        explained = [c for c in failing if c.metric in stretched and c.op in ("<", "<=") and c.unit
                     and median_s is not None and median_s <= U.to_base(c.value, c.unit, U.TIME)]
    except (ValueError, KeyError, E.ExpectError, U.UnitError):
        return  # the plugin reports the expectation's own problem
    if failing and len(explained) == len(failing):
        names = ", ".join(sorted({c.metric for c in failing}))
        edge.inconclusive(
            f"the harness machine was CPU-starved during the measurement ({pressure.percent():g} % of the "
            f"time some task waited for a CPU, limit {CONTENDED_RATIO * 100:g} %) and the median was "
            f"within budget: {names} over budget may be the machine's tail, not the target's; rerun on a "
            "quieter machine")
