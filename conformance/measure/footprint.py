"""Footprint measurements of a site's processes on a host: memory, CPU over a window (idle or under a
modest load), the processes themselves.

Hosts are read through the host modules (host/processes.py: psutil for local://, commands elsewhere);
the container of a docker:// host is read through the Docker SDK's stats when a daemon is reachable.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable
from urllib.parse import urlsplit

from ..model.errors import MeasurementError
from .host.container import docker_container, docker_cpu_seconds, docker_memory, docker_stats
from .host.edgehost import EdgeHost
from .host.processes import Proc, Processes
from .host.site import Scope, site_processes

MAX_LOAD_RPS = 200.0
MiB = 2**20


def running_processes(site: Any, host: EdgeHost, scope: Scope) -> tuple[list[Proc], list[str]]:
    """The processes of `scope` (not the whole host), and notes; MeasurementError when none runs."""
    procs, notes = site_processes(site, host, scope)
    if not procs:
        raise MeasurementError(f"host {host.name}: no process of {scope.text} is running")
    return procs, notes


def memory_used(site: Any, host: EdgeHost, scope: Scope) -> tuple[int, list[str]]:
    """Bytes of memory `scope` uses: the RSS of its processes summed, or the container's working set
    (docker stats), or the host's memory in use; and notes."""
    if scope.kind == "host":
        container = docker_container(host.container) if host.container else None
        stats = docker_stats(container) if container is not None else None
        used = docker_memory(stats) if stats else None
        if used is not None:
            return used, [f"container {host.container}: {used / MiB:.1f} MiB (docker stats)"]
        used = Processes.of(host).memory_used()
        return used, [f"{scope.text}: {used / MiB:.1f} MiB in use (MemTotal - MemAvailable)"]
    procs, notes = running_processes(site, host, scope)
    rss = sum(p.rss or 0 for p in procs)
    if any(p.rss is None for p in procs):
        notes.append(f"RSS of {sum(p.rss is None for p in procs)} process(es) not visible")
    top = sorted(procs, key=lambda p: p.rss or 0, reverse=True)[:3]
    notes.append(f"{scope.text}: {len(procs)} process(es), RSS {rss / MiB:.1f} MiB; largest: "
                 + ", ".join(f"{p.describe()} {(p.rss or 0) / MiB:.1f} MiB" for p in top))
    return rss, notes


def cpu_used(site: Any, host: EdgeHost, scope: Scope, window: float) -> tuple[float, list[str]]:
    """Cores `scope` used on average over `window` seconds (measured now), and notes."""
    if scope.kind == "host":
        container = docker_container(host.container) if host.container else None
        cores = docker_cpu_over(container, window) if container is not None else None
        if cores is None:
            cores = host_cpu_over(host, window)
        return cores, [f"{scope.text}: {cores:.3f} cores over {window:g} s"]
    running_processes(site, host, scope)  # fails early when the site is not running

    def pick() -> list[int]:
        return [p.pid for p in site_processes(site, host, scope)[0]]

    cores, count, notes = tree_cpu_over(host, pick, window)
    return cores, notes + [f"{scope.text}: {cores:.3f} cores over {window:g} s ({count} process(es))"]


# ---------------------------------------------------------------------------------------------
# load during a CPU window


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    errors: int = 0
    elapsed: float = 0.0
    last_error: str = ""

    @property
    def achieved_rps(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0


class SteadyLoad:
    """A modest, bounded request rate to one URL, from a few threads with keep-alive connections.

    Not a load test: it exists to see what a few requests per second cost the site. The URL must be
    one of the site's declared endpoints or loopback (the caller checks).
    """

    def __init__(self, url: str, rps: float, timeout: float = 2.0):
        if rps <= 0:
            raise ValueError("load_rps must be positive")
        self.rps = min(float(rps), MAX_LOAD_RPS)
        self.url = url
        self.timeout = timeout
        self.result = LoadResult()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def __enter__(self) -> SteadyLoad:
        workers = max(1, min(4, int(self.rps // 50) + 1))
        self._started = time.monotonic()
        for i in range(workers):
            t = threading.Thread(target=self._work, args=(i, workers), name=f"edge-load-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 1.0)
        self.result.elapsed = time.monotonic() - self._started

    def _connection(self) -> http.client.HTTPConnection:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if parts.scheme == "https":
            import ssl

            return http.client.HTTPSConnection(host, parts.port, timeout=self.timeout,
                                               context=ssl._create_unverified_context())
        return http.client.HTTPConnection(host, parts.port, timeout=self.timeout)

    def _work(self, index: int, workers: int) -> None:
        parts = urlsplit(self.url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        interval = workers / self.rps
        next_at = time.monotonic() + index * (1.0 / self.rps)
        conn = None
        while not self._stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            next_at += interval
            if next_at < time.monotonic() - 1.0:  # far behind: do not burst to catch up
                next_at = time.monotonic()
            try:
                if conn is None:
                    conn = self._connection()
                conn.request("GET", target, headers={"User-Agent": "edge-conformance-footprint"})
                resp = conn.getresponse()
                resp.read()
                ok = resp.status < 500
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                ok = False
                with self._lock:
                    self.result.last_error = str(exc) or type(exc).__name__
                if conn is not None:
                    conn.close()
                conn = None
            with self._lock:
                self.result.sent += 1
                if ok:
                    self.result.ok += 1
                else:
                    self.result.errors += 1
        if conn is not None:
            conn.close()


# ---------------------------------------------------------------------------------------------
# CPU over a window


def tree_cpu_over(host: EdgeHost, pick: Callable[[], list[int]], window: float) -> tuple[float, int, list[str]]:
    """CPU seconds the processes chosen by `pick()` (-> list of pids) used during `window` seconds.

    Processes present at both ends count their difference; processes born during the window count
    all they used; processes that ended during the window are lost (and noted).
    """
    notes: list[str] = []
    table = Processes.of(host)
    before = table.cpu_seconds(pick())
    started = time.monotonic()
    time.sleep(window)
    after = table.cpu_seconds(pick())
    elapsed = time.monotonic() - started
    used = 0.0
    for pid, seconds in after.items():
        used += seconds - before.get(pid, 0.0) if pid in before else seconds
    gone = set(before) - set(after)
    if gone:
        notes.append(f"{len(gone)} process(es) ended during the window; their last slice is not counted")
    return used / elapsed if elapsed > 0 else 0.0, len(after), notes


def host_cpu_over(host: EdgeHost, window: float) -> float:
    table = Processes.of(host)
    before = table.busy_cpu_seconds()
    started = time.monotonic()
    time.sleep(window)
    after = table.busy_cpu_seconds()
    return max(0.0, after - before) / max(1e-6, time.monotonic() - started)


def docker_cpu_over(container, window: float) -> float | None:
    first = docker_stats(container)
    started = time.monotonic()
    if first is None:
        return None
    time.sleep(window)
    second = docker_stats(container)
    if second is None:
        return None
    a, b = docker_cpu_seconds(first), docker_cpu_seconds(second)
    if a is None or b is None:
        return None
    return max(0.0, b - a) / max(1e-6, time.monotonic() - started)
