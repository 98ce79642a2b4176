"""Footprint measurements: memory, CPU over a window (idle or under a modest load), disk use.

Local hosts are read with psutil; other hosts through commands (EdgeHost); docker:// hosts also
through the Docker SDK's container stats when a daemon is reachable.
"""

from __future__ import annotations

import http.client
import os
import stat
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..model.errors import MeasurementError
from .hosts import EdgeHost

MAX_LOAD_RPS = 200.0


# ---------------------------------------------------------------------------------------------
# docker


def docker_container(name: str):
    """The container object (docker SDK), or None when the SDK or a daemon is not available."""
    try:
        import docker  # noqa: PLC0415

        client = docker.from_env(timeout=3)
        return client.containers.get(name)
    except Exception:
        return None


def docker_stats(container) -> dict | None:
    try:
        try:
            return container.stats(stream=False, one_shot=True)
        except TypeError:  # an SDK without one_shot
            return container.stats(stream=False)
    except Exception:
        return None


def docker_memory(stats: dict) -> int | None:
    """Working-set memory of a container like `docker stats` shows it (usage minus inactive cache)."""
    mem = stats.get("memory_stats") or {}
    usage = mem.get("usage")
    if usage is None:
        return None
    detail = mem.get("stats") or {}
    cache = detail.get("total_inactive_file", detail.get("inactive_file", detail.get("cache", 0)))
    return max(0, int(usage) - int(cache or 0))


def docker_cpu_seconds(stats: dict) -> float | None:
    total = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
    return None if total is None else int(total) / 1e9


# ---------------------------------------------------------------------------------------------
# disk


def local_disk_used(path: str, max_files: int = 1_000_000) -> int:
    """Bytes allocated on disk under path (like `du -s`), hard links counted once, links not followed."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise MeasurementError(f"{path}: no such file or directory") from None
    except OSError as exc:
        raise MeasurementError(f"{path}: {exc.strerror or exc}") from None
    seen: set[tuple[int, int]] = set()
    total = 0
    count = 0

    def add(s: os.stat_result) -> None:
        nonlocal total
        key = (s.st_dev, s.st_ino)
        if s.st_nlink > 1:
            if key in seen:
                return
            seen.add(key)
        total += getattr(s, "st_blocks", 0) * 512 if hasattr(s, "st_blocks") else s.st_size

    add(st)
    if not stat.S_ISDIR(st.st_mode):
        return total
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            count += 1
            if count > max_files:
                raise MeasurementError(f"{path}: more than {max_files} files; give narrower paths")
            try:
                s = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            add(s)
            if stat.S_ISDIR(s.st_mode):
                stack.append(entry.path)
    return total


def remote_disk_used(host: EdgeHost, paths: list[str]) -> int:
    host.require("du", purpose="measure disk use")
    quoted = " ".join("'" + p.replace("'", "'\\''") + "'" for p in paths)
    out = host.run(f"du -sk {quoted}", timeout=max(host.timeout, 30.0), what="du -sk")
    if out.rc != 0:
        raise MeasurementError(f"host {host.name}: du: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f'exit status {out.rc}'}")
    total = 0
    for line in out.stdout.splitlines():
        first = line.split(None, 1)[0] if line.strip() else ""
        if first.isdigit():
            total += int(first) * 1024
    return total


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
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        if parts.scheme == "https":
            import ssl

            return cls(parts.hostname, parts.port, timeout=self.timeout, context=ssl._create_unverified_context())
        return cls(parts.hostname, parts.port, timeout=self.timeout)

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


def tree_cpu_over(host: EdgeHost, pick, window: float) -> tuple[float, int, list[str]]:
    """CPU seconds the processes chosen by `pick()` (-> list of pids) used during `window` seconds.

    Processes present at both ends count their difference; processes born during the window count
    all they used; processes that ended during the window are lost (and noted).
    """
    notes: list[str] = []
    before_pids = pick()
    before = host.cpu_seconds(before_pids)
    started = time.monotonic()
    time.sleep(window)
    after_pids = pick()
    after = host.cpu_seconds(after_pids)
    elapsed = time.monotonic() - started
    used = 0.0
    for pid, seconds in after.items():
        used += seconds - before.get(pid, 0.0) if pid in before else seconds
    gone = set(before) - set(after)
    if gone:
        notes.append(f"{len(gone)} process(es) ended during the window; their last slice is not counted")
    return used / elapsed if elapsed > 0 else 0.0, len(after), notes


def host_cpu_over(host: EdgeHost, window: float) -> float:
    before = host.host_cpu_seconds()
    started = time.monotonic()
    time.sleep(window)
    after = host.host_cpu_seconds()
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


__all__ = ["SteadyLoad", "docker_container", "docker_stats", "docker_memory",
           "docker_cpu_over", "local_disk_used", "remote_disk_used", "tree_cpu_over", "host_cpu_over"]
