"""What to probe and how: ProbeConfig, validated on construction.

Bad values raise conformance.model.errors.ConfigError naming the field, so the CLI can print one line
and exit 2 instead of a traceback.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from conformance.model.errors import ConfigError, did_you_mean

from .schedule import ARRIVALS

_DEFAULT_PROTOCOL = {"http": "http", "https": "http", "tcp": "tcp-echo", "udp": "udp-echo"}
_DEFAULT_PORT = {"http": 80, "https": 443}


def _fail(field_name: str, message: str) -> ConfigError:
    return ConfigError(None, None, field_name, message)


@dataclass(frozen=True)
class Target:
    """The parsed target URL: scheme://host:port/path?query."""

    scheme: str
    host: str
    port: int
    path: str  # path plus query, at least "/"

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if _DEFAULT_PORT.get(self.scheme) == self.port:
            return host
        return f"{host}:{self.port}"


def parse_target(url: str) -> Target:
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PROTOCOL:
        raise _fail("target", f"unsupported scheme {scheme!r} in {url!r} (use http, https, tcp or udp)")
    try:
        port = parts.port or _DEFAULT_PORT.get(scheme)
    except ValueError as exc:
        raise _fail("target", f"bad port in {url!r}: {exc}") from None
    if not parts.hostname:
        raise _fail("target", f"no host in {url!r}")
    if not port:
        raise _fail("target", f"{scheme} target {url!r} needs an explicit port")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme, parts.hostname, port, path)


@dataclass(frozen=True)
class ProbeConfig:
    """One open-loop latency probe.

    target:        http(s)://host[:port]/path, tcp://host:port or udp://host:port. Any protocol can use
                   any URL's host and port (tcp-connect against an https URL measures its TCP setup).
    protocol:      http | http-newconn | tcp-connect | tcp-echo | udp-echo; None: from the URL scheme.
    rate:          scheduled requests per second (the open-loop arrival rate).
    duration:      seconds of measured schedule, or None when `count` is given (exactly one of them).
    count:         number of measured requests.
    warmup:        seconds of schedule sent before measuring starts; those requests are not recorded.
    arrivals:      fixed (every 1/rate s) or poisson (exponential gaps, random.Random(seed)).
    max_in_flight: bound on concurrent requests (and on pooled connections). A request that finds no free
                   slot waits, and its latency still counts from its intended send time.
    timeout:       seconds allowed for one operation (connect + request + response). The sender also
                   gives up when it is more than `timeout` behind schedule (see selfcheck).
    lag_limit_us / max_late_ratio: the self-check. The run is invalid when more than max_late_ratio of
                   sends started more than lag_limit_us late by the prober's own fault, or the event
                   loop's p99 lag exceeds lag_limit_us. Set lag_limit_us well below the budget you check
                   (a 1 ms budget cannot be judged by a prober that is 1 ms late).
    allow_hosts:   non-loopback hosts this probe may reach. Empty: loopback only.
    calibrate:     first measure the harness floor against a loopback server (result.floor).
    realtime:      run the probing thread under SCHED_FIFO (needs root or CAP_SYS_NICE; silently normal
                   otherwise, see result.realtime). Makes send timing immune to busy neighbours.
    pin_cpu:       pin the probing thread to the CPU it runs on while it probes, when it may use two
                   or more (result.cpu says which). Off by default: on a 2-core VM it measured no
                   better, in one run worse (docs/latency.md).
    """

    target: str
    protocol: str | None = None
    rate: float = 100.0
    duration: float | None = 5.0
    count: int | None = None
    warmup: float = 0.0
    arrivals: str = "fixed"
    seed: int = 0
    max_in_flight: int = 64
    timeout: float = 2.0
    method: str = "GET"
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    payload_size: int = 64
    verify_tls: bool = True
    lag_limit_us: float = 1000.0
    max_late_ratio: float = 0.01
    loop_tick_interval: float = 0.005
    allow_hosts: frozenset[str] = field(default_factory=frozenset)
    calibrate: bool = False
    realtime: bool = False
    pin_cpu: bool = False

    def __post_init__(self) -> None:
        parsed = parse_target(self.target)
        protocol = self.protocol or _DEFAULT_PROTOCOL[parsed.scheme]
        from .protocols import PROTOCOLS  # late: protocols import this module; includes registered ones

        if protocol not in PROTOCOLS:
            raise _fail("protocol", f"unknown protocol {protocol!r}{did_you_mean(protocol, PROTOCOLS)}")
        object.__setattr__(self, "protocol", protocol)
        object.__setattr__(self, "allow_hosts", frozenset(self.allow_hosts))
        if isinstance(self.headers, dict):
            object.__setattr__(self, "headers", tuple(self.headers.items()))
        if isinstance(self.body, str):
            object.__setattr__(self, "body", self.body.encode())
        object.__setattr__(self, "method", self.method.upper())
        if self.count is not None and self.count == 0:
            raise _fail("count", "must be >= 1")
        if (self.duration is None) == (self.count is None):
            if self.count is not None:  # both given: count wins, the default duration is dropped
                object.__setattr__(self, "duration", None)
            else:
                raise _fail("duration", "give either duration or count")
        self._positive("rate", self.rate)
        self._positive("timeout", self.timeout)
        self._positive("loop_tick_interval", self.loop_tick_interval)
        self._positive("lag_limit_us", self.lag_limit_us)
        if self.duration is not None:
            self._positive("duration", self.duration)
        if self.count is not None and (not isinstance(self.count, int) or self.count < 1):
            raise _fail("count", f"must be a positive integer, not {self.count!r}")
        if not (isinstance(self.warmup, (int, float)) and math.isfinite(self.warmup) and self.warmup >= 0):
            raise _fail("warmup", f"must be >= 0 seconds, not {self.warmup!r}")
        if self.arrivals not in ARRIVALS:
            raise _fail("arrivals", f"must be one of {', '.join(ARRIVALS)}{did_you_mean(self.arrivals, ARRIVALS)}")
        if not isinstance(self.max_in_flight, int) or self.max_in_flight < 1:
            raise _fail("max_in_flight", f"must be an integer >= 1, not {self.max_in_flight!r}")
        if not isinstance(self.payload_size, int) or not 8 <= self.payload_size <= 65_000:
            raise _fail("payload_size", "must be between 8 and 65000 bytes")
        if not 0 <= self.max_late_ratio < 1:
            raise _fail("max_late_ratio", "must be in [0, 1)")

    @staticmethod
    def _positive(name: str, value: float) -> None:
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise _fail(name, f"must be a number > 0, not {value!r}")

    @property
    def parsed_target(self) -> Target:
        return parse_target(self.target)

    def replace(self, **changes) -> ProbeConfig:
        return dataclasses.replace(self, **changes)
