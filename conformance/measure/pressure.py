"""Pressure on the harness machine while something was measured (Linux PSI: /proc/pressure/{cpu,io,memory}).

A latency or load figure taken while tasks queued for a CPU, waited on disk I/O or stalled on memory says
as much about the machine as about the target: on an emulated deployment the sites, the WAN relays and the
harness share the same cores and disk, so a busy CI runner stretches every percentile. The kernel's
pressure-stall information counts the microseconds in which at least one task waited ("some") for each
resource; its share of a measurement window is what this module measures.

It only measures and records. What the figures mean for a verdict is decided by the one verdict rule
(conformance/model/verdict.py, `_starved`): `record_pressure` hands them over as `pressure` validity
evidence, with the site's own CPU use when it is known (TreeCpu).

Without PSI (not Linux, or a kernel built without it) nothing is measured: None, never a guess. A kernel
may offer some resources and not others; each missing one is None.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# CONTENDED_RATIO is the verdict rule's; benchmarks/cpu_pressure.py reads it from here.
from conformance.model.verdict import CONTENDED_RATIO, PRESSURE_RESOURCES

__all__ = ["CONTENDED_RATIO", "PSI_DIR", "Pressure", "PressureWindow", "TreeCpu", "own_site_pid",
           "record_pressure"]

PSI_DIR = Path("/proc/pressure")
_WAITED_FOR = {"cpu": "a CPU", "io": "I/O", "memory": "memory"}


def _some_total_us(path: Path) -> int | None:
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
    """The share (0..1) of a window in which some task waited for a CPU, for I/O, for memory; None
    for a resource the kernel does not report."""

    seconds: float
    cpu: float | None = None
    io: float | None = None
    memory: float | None = None

    def ratio(self, resource: str) -> float | None:
        return getattr(self, resource)

    def percent(self, resource: str = "cpu") -> float | None:
        ratio = self.ratio(resource)
        return None if ratio is None else round(ratio * 100.0, 1)

    def to_dict(self) -> dict[str, float | None]:
        """results.json raw.machine."""
        return {**{f"{r}_some_percent": self.percent(r) for r in PRESSURE_RESOURCES},
                "window_s": round(self.seconds, 3)}

    def text(self) -> str:
        """'some task waited for a CPU 2.4 %, for I/O 0.3 %, for memory 0 % of 6.5 s'."""
        parts = [f"for {_WAITED_FOR[r]} {self.percent(r):g} %" for r in PRESSURE_RESOURCES
                 if self.ratio(r) is not None]
        return f"some task waited {', '.join(parts)} of {self.seconds:.1f} s"


class PressureWindow:
    """Start before a measurement, `stop()` after it: the pressure in between, or None without PSI."""

    def __init__(self, root: Path = PSI_DIR) -> None:
        self._root = Path(root)
        self._start = self._read()
        self._started = time.monotonic()

    def _read(self) -> dict[str, int | None]:
        return {r: _some_total_us(self._root / r) for r in PRESSURE_RESOURCES}

    def stop(self) -> Pressure | None:
        end = self._read()
        seconds = time.monotonic() - self._started
        if seconds <= 0:
            return None
        ratios: dict[str, float | None] = {}
        for r in PRESSURE_RESOURCES:
            a, b = self._start[r], end[r]
            ratios[r] = None if a is None or b is None else max(0.0, min(1.0, (b - a) / (seconds * 1e6)))
        if all(v is None for v in ratios.values()):
            return None
        return Pressure(seconds, **ratios)


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


def own_site_pid(edge: Any) -> int | None:
    """The process of an emulated local site (labels.pid on a local:// host), whose CPU use is measured
    with the site's own figures; None for a real target or a site in a container. A site restarted since
    the target file was written (a crash test before this one) is followed by its data dir, as the host
    checks do (host/site.py resolve_site_root); None when it cannot be found."""
    if not edge.emulation or "local://" not in (edge.site.hosts or []):
        return None
    labels = edge.site.labels or {}
    try:
        pid = int(labels.get("pid"))
    except (TypeError, ValueError):
        return None
    if not labels.get("data_dir"):
        return pid
    from .host.processes import local_processes
    from .host.site import resolve_site_root

    try:
        return resolve_site_root(edge.site, local_processes())[0]
    except Exception:  # noqa: BLE001 - a process table that cannot be read: the site's CPU stays unknown
        return None


def record_pressure(edge: Any, pressure: Pressure | None, target_cores: float | None = None) -> None:
    """Note the pressure of a measurement window, attach it (raw.machine) and hand it to the verdict
    rule as `pressure` evidence. `edge` is the check's EdgeContext or a shared experiment's Recording;
    `target_cores` the site's own CPU use while measured (TreeCpu), when it is known."""
    if pressure is None:
        edge.note("pressure unknown (no /proc/pressure): a busy machine would go unnoticed")
        return
    edge.attach("machine", {**pressure.to_dict(), "target_cores": _round(target_cores)})
    edge.note(f"pressure while measuring: {pressure.text()}")
    if target_cores is not None:
        edge.note(f"the site's own processes used {target_cores:.2f} cores while measured")
    edge.evidence("pressure", **{r: pressure.percent(r) for r in PRESSURE_RESOURCES},
                  window_s=round(pressure.seconds, 3), target_cores=_round(target_cores))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
