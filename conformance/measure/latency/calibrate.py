"""The harness's own measurement floor: what the prober reports against a target that answers at once.

A loopback server (HTTP no-op, TCP echo, UDP echo) runs outside the prober's event loop, by default in
a child process, and the prober measures it with the same protocol, rate and concurrency as the real
probe. Anything a real target shows below this floor is the harness, not the target; a 1 ms budget with
a 0.3 ms floor leaves 0.7 ms for the target.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from .config import ProbeConfig
from .loopback import LoopbackServer, LoopbackServerProcess
from .runloop import run_until_done
from .timing import new_probe_loop

DEFAULT_FLOOR_DURATION_S = 1.0
DEFAULT_FLOOR_WARMUP_S = 0.2


@dataclass
class Floor:
    protocol: str
    rate: float
    server: str  # "process" | "thread"
    samples: int
    p50_us: int | None
    p90_us: int | None
    p99_us: int | None
    p99_9_us: int | None
    max_us: int | None
    mean_us: float | None
    service_p50_us: int | None
    service_p99_us: int | None
    valid: bool
    invalid_reason: str | None
    histogram: str  # encoded HDR of latency-from-intended

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __str__(self) -> str:
        return f"measurement floor ({self.protocol}, {self.rate:g}/s) p50 {self.p50_us} us, p99 {self.p99_us} us"


def floor_config(config: ProbeConfig, url: str, duration: float = DEFAULT_FLOOR_DURATION_S) -> ProbeConfig:
    """The probe `config` pointed at a loopback server: same protocol, rate and concurrency.

    HTTPS targets are calibrated over plain HTTP (the loopback server has no certificate), so the
    floor does not include TLS record processing.
    """
    return config.replace(target=url, duration=duration, count=None, warmup=DEFAULT_FLOOR_WARMUP_S,
                          allow_hosts=frozenset(), calibrate=False)


async def measure_floor(config: ProbeConfig, *, duration: float = DEFAULT_FLOOR_DURATION_S,
                        server: str = "process") -> Floor:
    """Probe a loopback server with the settings of `config` and return the floor."""
    from .prober import probe  # late: the prober imports this module for config.calibrate

    if server == "process":
        loopback = LoopbackServerProcess(realtime=config.realtime)
    elif server == "thread":
        loopback = LoopbackServer()
    else:
        raise ValueError("server must be 'process' or 'thread'")
    starting = asyncio.ensure_future(asyncio.to_thread(loopback.start))  # a child process: ~0.2 s
    try:
        await asyncio.shield(starting)
        result = await probe(floor_config(config, loopback.url_for(config.protocol), duration))
    finally:
        # Cancelled (Ctrl-C) while the server was starting: its thread still starts it; stop it after.
        await asyncio.wait([starting])
        await asyncio.to_thread(loopback.stop)
    lat = result.latency
    return Floor(protocol=result.protocol, rate=result.rate, server=server, samples=result.samples,
                 p50_us=lat["p50_us"], p90_us=lat["p90_us"], p99_us=lat["p99_us"], p99_9_us=lat["p99_9_us"],
                 max_us=lat["max_us"], mean_us=lat["mean_us"], service_p50_us=result.service["p50_us"],
                 service_p99_us=result.service["p99_us"], valid=result.valid,
                 invalid_reason=result.invalid_reason, histogram=result.histograms["latency"])


def calibrate(protocol: str = "http", rate: float = 500.0, *, duration: float = DEFAULT_FLOOR_DURATION_S,
              max_in_flight: int = 64, payload_size: int = 64, arrivals: str = "fixed",
              server: str = "process", realtime: bool = False) -> Floor:
    """Synchronous floor measurement, e.g. calibrate("tcp-echo", 1000) -> Floor(p50_us=45, ...)."""
    base = ProbeConfig(target="http://127.0.0.1:9/", protocol=protocol, rate=rate, duration=duration,
                       max_in_flight=max_in_flight, payload_size=payload_size, arrivals=arrivals,
                       realtime=realtime)
    return run_until_done(lambda: new_probe_loop(max_in_flight),
                          lambda: measure_floor(base, duration=duration, server=server))
