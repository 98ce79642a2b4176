"""What only a long outage shows: the backlog's growth in memory and on disk, tokens that run out during
the cut, and the catch-up after it (the resilience.long_outage check).

Growth is sampled through a warm-up before the cut (the same sales, with the WAN up) and through the
cut, and judged as rates, so a cut shortened by --duration-scale still speaks about the real length.
Each rate is the least-squares slope of its samples. What the backlog adds is the cut's rate less the
warm-up's: caches and logs that fill with any sale (a database's page cache, a write-ahead log before
its checkpoint) grow alike in both and cancel, and what grows only while the site cannot forward is
left. The projection is that difference times the profile's outage length. Its noise is twice the
standard error of the difference, projected the same way (`noise_projected`): a budget that the
noise alone could break is the verdict's measurement floor.

Tokens: the client holds a token central issued before the cut, with a lifetime shorter than the cut,
and renews it at the site (POST /auth/renew) whenever less than half of its lifetime is left, as any
client library does. After the first token's expiry, the site must still accept the renewed one.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..model.errors import MeasurementError
from .http import Client
from .pacing import spawn

Sample = tuple[float, float | None, float | None]  # (monotonic time, memory bytes, disk bytes)
MIN_RENEW_GAP_S = 1.0


class GrowthSampler:
    """Samples memory and disk use every `every` s in a thread until stopped; marks where the cut began."""

    def __init__(self, read: Callable[[], tuple[float | None, float | None]], every: float):
        self.read, self.every = read, max(every, 0.2)
        self.samples: list[Sample] = []
        self.errors: list[str] = []
        self.cut_index: int | None = None
        self.heal_index: int | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> GrowthSampler:
        self._thread = spawn(self._run)
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                memory, disk = self.read()
            except Exception as exc:  # noqa: BLE001 - one failed sample is a gap, not the end of the measurement
                self.errors.append(str(exc) or type(exc).__name__)
                memory = disk = None
            with self._lock:
                self.samples.append((began, memory, disk))
            self._stop.wait(max(0.0, self.every - (time.monotonic() - began)))

    def mark_cut(self) -> None:
        with self._lock:
            self.cut_index = len(self.samples)

    def mark_heal(self) -> None:
        """What comes after the heal (the catch-up's traffic) is not the cut's growth."""
        with self._lock:
            self.heal_index = len(self.samples)

    def stop(self) -> None:
        """Stop sampling (also when never started, and again)."""
        self._stop.set()
        thread = getattr(self, "_thread", None)
        if thread is not None:
            thread.join(timeout=max(30.0, 3 * self.every))

    def snapshot(self) -> tuple[list[Sample], int]:
        """The samples up to the heal (all of them before it), and where the cut began."""
        with self._lock:
            end = self.heal_index if self.heal_index is not None else len(self.samples)
            return list(self.samples[:end]), self.cut_index if self.cut_index is not None else 0


@dataclass
class Growth:
    """One resource's growth over the cut, and what the backlog projects to over the real outage."""

    measured: float | None  # bytes: the cut's rate times its length
    rate: float | None  # bytes per second during the cut
    backlog_rate: float | None  # the cut's rate less the warm-up's
    projected: float | None  # bytes: the backlog's rate (at least 0) over the real length
    noise_projected: float | None  # what the noise alone could project to (2 standard errors)
    samples: int = 0
    series: list[tuple[float, float]] = field(default_factory=list)  # (s since the cut, bytes)


def slope(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares slope of (t, value) points and its standard error (0 for fewer than 3 points)."""
    ts = [t for t, _ in points]
    vs = [v for _, v in points]
    if len(points) < 2 or max(ts) == min(ts):
        return 0.0, 0.0
    rate, intercept = statistics.linear_regression(ts, vs)
    if len(points) < 3:
        return rate, 0.0
    t_mean = statistics.fmean(ts)
    residual = sum((v - (intercept + rate * t)) ** 2 for t, v in points) / (len(points) - 2)
    return rate, (residual / sum((t - t_mean) ** 2 for t in ts)) ** 0.5


def growth(samples: list[Sample], cut_index: int, which: int, cut_s: float, real_s: float) -> Growth:
    """The growth of column `which` (1 memory, 2 disk): the samples before `cut_index` are the warm-up."""
    def column(rows: list[Sample]) -> list[tuple[float, float]]:
        return [(s[0], float(v)) for s in rows if (v := s[which]) is not None]

    during, before = column(samples[cut_index:]), column(samples[:cut_index])
    if len(during) < 6:
        return Growth(None, None, None, None, None, len(during))
    rate, rate_se = slope(during)
    base, base_se = slope(before) if len(before) >= 4 else (0.0, 0.0)
    backlog = rate - base
    t0 = during[0][0]
    return Growth(measured=rate * cut_s, rate=rate, backlog_rate=backlog, projected=max(backlog, 0.0) * real_s,
                  noise_projected=2 * (rate_se ** 2 + base_se ** 2) ** 0.5 * real_s, samples=len(during),
                  series=[(round(t - t0, 3), v) for t, v in during])


class TokenKeeper:
    """A client's session through the cut: a token from central, renewed at the site before it runs out."""

    def __init__(self, site: Client, central: Client, subject: str, ttl: float, op_timeout: float):
        self.site, self.central, self.subject, self.ttl, self.op_timeout = site, central, subject, ttl, op_timeout
        self.token: str | None = None
        self.first_expiry: float | None = None  # wall clock
        self.expires_at: float | None = None
        self.renewals = 0
        self.failures: list[str] = []
        self.renewed_by: set[str] = set()
        self.shortest_lifetime: float | None = None  # the shortest lifetime a token came with
        self._lifetime = ttl  # of the token held now, as it came (a site may cap what is asked for)
        self._stop = threading.Event()

    def obtain(self) -> None:
        """Before the cut: a token from central, and the site accepts it."""
        issued = self.central.json("POST", "/auth/token", {"subject": self.subject, "ttl_s": self.ttl},
                                   what="a token from central")
        if not issued.get("token") or not isinstance(issued.get("expires_at"), (int, float)):
            raise MeasurementError("central issued no token with an expiry")
        self._took(issued["token"], float(issued["expires_at"]))
        self.first_expiry = self.expires_at
        check = self.check()
        if not check.ok:
            raise MeasurementError(f"before the cut the site already rejects central's fresh token: {check.describe()}")

    def _took(self, token: str, expires_at: float) -> None:
        self.token, self.expires_at = token, expires_at
        self._lifetime = max(expires_at - time.time(), 0.0)
        if self.shortest_lifetime is None or self._lifetime < self.shortest_lifetime:
            self.shortest_lifetime = self._lifetime

    def check(self):
        return self.site.call("GET", "/auth/check", headers={"Authorization": f"Bearer {self.token}"},
                              timeout=self.op_timeout)

    def start(self) -> TokenKeeper:
        self._thread = spawn(self._run)
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            assert self.expires_at is not None
            # Renew with half the token's own lifetime left (a site may give less than was asked for),
            # and never more often than once a second.
            due = self.expires_at - self._lifetime / 2
            self._stop.wait(max(MIN_RENEW_GAP_S, due - time.time()))
            if self._stop.is_set():
                return
            r = self.site.call("POST", "/auth/renew", headers={"Authorization": f"Bearer {self.token}"},
                               timeout=self.op_timeout)
            body = r.json() if r.ok else None
            body = body if isinstance(body, dict) else {}
            if r.status == 200 and body.get("token") and isinstance(body.get("expires_at"), (int, float)):
                self._took(body["token"], float(body["expires_at"]))
                self.renewals += 1
                self.renewed_by.add(str(body.get("renewed_by") or "?"))
                continue
            self.failures.append(f"renewal at {time.time() - (self.first_expiry or 0):+.1f} s from the first "
                                 f"token's expiry: {r.describe()}")
            if self.expires_at <= time.time():
                return  # the session is gone: nothing left to renew
            self._stop.wait(min(1.0, self.ttl / 10))

    def stop(self) -> None:
        """Stop renewing (also when never started, and again)."""
        self._stop.set()
        thread = getattr(self, "_thread", None)
        if thread is not None:
            thread.join(timeout=self.op_timeout + 5)
