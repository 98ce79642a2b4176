"""What a load run should do, checked before any process starts.

Harness side: imports only the standard library and `conformance.model`, never locust or gevent.
A `LoadConfig` travels to the Locust child processes as JSON (`to_dict` / `from_dict`), so every field
is plain data.

Safety: a load run sends real traffic. `check_targets_allowed` refuses every host that is not loopback
unless the caller names it in an explicit allow-list (the harness passes the addresses of sites it
started or that the user declared in the target file).
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from conformance.model.errors import ConfigError, did_you_mean

from .scenarios import ENDPOINTS, SCENARIOS, scenario_spec

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


class UnsafeTargetError(ConfigError):
    """The target is not loopback and not in the caller's allow-list."""


@dataclass(frozen=True)
class Endpoint:
    """One weighted request of the `endpoints` scenario."""

    name: str
    url: str  # a path ("/items") joined to the run's URL, or an absolute URL
    method: str = "GET"
    weight: float = 1.0
    body: Any = None  # dict/list -> JSON body, str -> raw body, None -> no body


@dataclass(frozen=True)
class GuardConfig:
    """Thresholds of the saturation guard (see guard.py for why each exists)."""

    cpu_percent: float = 90.0  # a generator process above this share of one core is "hot"
    cpu_sustained_share: float = 0.5  # ... and saturated when hot in at least this share of samples
    rate_tolerance: float = 0.10  # achieved may fall this fraction short of offered
    dropped_tolerance: float = 0.01  # share of arrivals that may find no free user
    error_tolerance: float = 0.05  # above this failure ratio a shortfall is blamed on the target
    loop_lag_p99_ms: float = 100.0  # gevent loop this late at p99 = generator starved of CPU
    # Only a target whose median takes at least this long can be the one holding every user (an
    # overloaded target); a fast one that runs the users out means too few users for the rate.
    slow_target_p50_ms: float = 100.0


@dataclass(frozen=True)
class LoadConfig:
    url: str  # base URL: http(s)://host:port[/prefix], or tcp://host:port for tcp_echo
    rate: float  # offered load in requests/s, summed over all workers (open model)
    duration_s: float  # length of the paced measurement window
    scenario: str = ENDPOINTS  # "endpoints" or a built-in: pos, content, telemetry, tcp_echo
    endpoints: tuple[Endpoint, ...] = ()
    users: int | None = None  # concurrency cap (all workers); None -> derived from rate
    workers: int = 1  # load-generating processes on this machine (>1 adds a Locust master)
    remote_workers: int = 0  # extra workers the master waits for (started on other machines)
    master_bind_host: str = "127.0.0.1"
    master_port: int = 0  # 0 -> a free port
    allow_hosts: tuple[str, ...] = ()
    request_timeout_s: float = 10.0
    start_tolerance_s: float = 0.01  # an arrival no user can start within this is dropped (pacer.py)
    timeout_s: float | None = None  # hard limit for the whole run; None -> derived
    connect_timeout_s: float = 30.0  # how long the master waits for its workers
    content_keys: tuple[str, ...] = tuple(f"k{i}" for i in range(64))
    payload_bytes: int = 64  # tcp_echo message size
    cpu_affinity: tuple[int, ...] | None = None  # pin generator processes (like taskset)
    guard: GuardConfig = field(default_factory=GuardConfig)

    # ---- derived values -------------------------------------------------------------------

    @property
    def requests_per_iteration(self) -> int:
        return scenario_spec(self.scenario).requests_per_iteration

    @property
    def iteration_rate(self) -> float:
        """Arrivals per second: the pacer starts iterations, a `pos` iteration makes 2 requests."""
        return self.rate / self.requests_per_iteration

    @property
    def total_users(self) -> int:
        """Enough users for 100 ms of latency at the offered rate (Little's law), at least 10."""
        if self.users is not None:
            return self.users
        wanted = math.ceil(self.iteration_rate * 0.1)
        return int(min(5000, max(10, 2 * self.total_workers, wanted)))

    @property
    def total_workers(self) -> int:
        return self.workers + self.remote_workers

    @property
    def distributed(self) -> bool:
        """A Locust master is needed as soon as more than one process generates load."""
        return self.total_workers > 1

    @property
    def hard_timeout_s(self) -> float:
        if self.timeout_s is not None:
            return self.timeout_s
        startup = 30.0 + (self.connect_timeout_s if self.distributed else 0.0)
        return self.duration_s + self.request_timeout_s + startup

    # ---- (de)serialisation ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> LoadConfig:
        """Build and validate; every problem is a ConfigError naming the field."""
        if not isinstance(data, dict):
            raise ConfigError(source, None, "load", "expected a mapping")
        data = dict(data)
        if "duration" in data and "duration_s" not in data:  # friendly alias
            data["duration_s"] = data.pop("duration")
        known = {f for f in cls.__dataclass_fields__}
        for key in data:
            if key not in known:
                raise ConfigError(source, None, f"load.{key}", "unknown field" + did_you_mean(key, known))
        for required in ("url", "rate", "duration_s"):
            if required not in data:
                raise ConfigError(source, None, f"load.{required}", "required")
        if "endpoints" in data and data["endpoints"] and "scenario" not in data:
            data["scenario"] = ENDPOINTS
        data["endpoints"] = tuple(_endpoint(e, i, source) for i, e in enumerate(data.get("endpoints") or ()))
        data["guard"] = _guard(data.get("guard") or {}, source)
        for key in ("allow_hosts", "content_keys", "cpu_affinity"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        config = cls(**data)
        config.validate(source)
        return config

    def validate(self, source: str | None = None) -> None:
        def bad(name: str, message: str) -> ConfigError:
            return ConfigError(source, None, f"load.{name}", message)

        if self.scenario not in SCENARIOS:
            raise bad("scenario", f"unknown scenario {self.scenario!r}" + did_you_mean(self.scenario, SCENARIOS))
        if not _positive(self.rate):
            raise bad("rate", "must be a number > 0 (requests/s)")
        if not _positive(self.duration_s):
            raise bad("duration_s", "must be a number > 0 (seconds)")
        if not _positive(self.request_timeout_s):
            raise bad("request_timeout_s", "must be a number > 0 (seconds)")
        if not _positive(self.start_tolerance_s) or self.start_tolerance_s > 1:
            raise bad("start_tolerance_s", "must be a number in (0, 1] (seconds)")
        if self.cpu_affinity is not None and not all(isinstance(c, int) and c >= 0 for c in self.cpu_affinity):
            raise bad("cpu_affinity", "must be a list of CPU numbers")
        if self.users is not None and (not isinstance(self.users, int) or self.users < self.total_workers):
            raise bad("users", "must be an integer >= the number of workers")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise bad("workers", "must be an integer >= 1")
        if not isinstance(self.remote_workers, int) or self.remote_workers < 0:
            raise bad("remote_workers", "must be an integer >= 0")
        if not isinstance(self.master_port, int) or not 0 <= self.master_port <= 65535:
            raise bad("master_port", "must be a port number (0 = any free port)")
        scheme = urlsplit(self.url).scheme
        wanted = scenario_spec(self.scenario).schemes
        if scheme not in wanted or not urlsplit(self.url).hostname:
            raise bad("url", f"expected {' or '.join(s + '://host:port' for s in wanted)}, got {self.url!r}")
        if self.scenario == "tcp_echo" and not urlsplit(self.url).port:
            raise bad("url", "tcp_echo needs a port: tcp://host:port")
        if self.scenario == ENDPOINTS and not self.endpoints:
            raise bad("endpoints", "the endpoints scenario needs at least one endpoint")
        if self.scenario != ENDPOINTS and self.endpoints:
            raise bad("endpoints", f"only used by the endpoints scenario, not by {self.scenario!r}")
        names = [e.name for e in self.endpoints]
        if len(set(names)) != len(names):
            raise bad("endpoints", "endpoint names must be unique (they key the results)")
        if self.scenario == "content" and not self.content_keys:
            raise bad("content_keys", "needs at least one key")
        if not isinstance(self.payload_bytes, int) or not 1 <= self.payload_bytes <= 65536:
            raise bad("payload_bytes", "must be an integer in 1..65536")


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _endpoint(raw: Any, index: int, source: str | None) -> Endpoint:
    where = f"load.endpoints[{index}]"
    if isinstance(raw, Endpoint):
        return raw
    if not isinstance(raw, dict):
        raise ConfigError(source, None, where, "expected a mapping with name, method, url, weight")
    unknown = set(raw) - {"name", "method", "url", "weight", "body"}
    if unknown:
        raise ConfigError(source, None, f"{where}.{sorted(unknown)[0]}", "unknown field")
    if not isinstance(raw.get("url"), str) or not raw["url"]:
        raise ConfigError(source, None, f"{where}.url", "required: a path or an absolute URL")
    method = str(raw.get("method", "GET")).upper()
    if method not in HTTP_METHODS:
        raise ConfigError(source, None, f"{where}.method", f"unknown HTTP method {method!r}")
    weight = raw.get("weight", 1)
    if not _positive(weight):
        raise ConfigError(source, None, f"{where}.weight", "must be a number > 0")
    return Endpoint(name=str(raw.get("name") or raw["url"]), url=raw["url"], method=method,
                    weight=float(weight), body=raw.get("body"))


def _guard(raw: Any, source: str | None) -> GuardConfig:
    if isinstance(raw, GuardConfig):
        return raw
    if not isinstance(raw, dict):
        raise ConfigError(source, None, "load.guard", "expected a mapping")
    known = GuardConfig.__dataclass_fields__
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(source, None, f"load.guard.{key}", "unknown field" + did_you_mean(key, known))
        if not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(source, None, f"load.guard.{key}", "must be a number >= 0")
    return GuardConfig(**{k: float(v) for k, v in raw.items()})


# ---- safety: only loopback unless explicitly allowed ---------------------------------------------


def target_hosts(config: LoadConfig) -> list[str]:
    """Every host the run would send traffic to (the base URL and absolute endpoint URLs)."""
    hosts = [urlsplit(config.url).hostname or ""]
    for endpoint in config.endpoints:
        parts = urlsplit(endpoint.url)
        if parts.scheme and parts.hostname:
            hosts.append(parts.hostname)
    return hosts


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and the name localhost. Other names are not resolved: a DNS answer can change
    between this check and the run, so names must be allow-listed explicitly."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_targets_allowed(config: LoadConfig, allow_hosts: tuple[str, ...] | list[str] = ()) -> None:
    """Raise UnsafeTargetError for any non-loopback host that is not allow-listed."""
    allowed = {h.lower().strip("[]") for h in (*config.allow_hosts, *allow_hosts)}
    for host in target_hosts(config):
        if not is_loopback(host) and host.lower().strip("[]") not in allowed:
            raise UnsafeTargetError(
                None, None, "load.url",
                f"refusing to send load to {host!r}: not loopback and not in the allow-list "
                "(pass allow_hosts=[...] / --allow-host for sites you started or declared)")
