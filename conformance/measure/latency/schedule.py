"""When each request is meant to be sent: the open-loop arrival schedule.

Offsets are integer nanoseconds from the start of the run. They are generated lazily so a long run at
a high rate costs no memory, and they never depend on how the target answers (that is what makes the
prober open loop). Poisson arrivals use their own seeded random.Random, so the same seed gives the
same schedule on every machine and run.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

ARRIVALS = ("fixed", "poisson")


def arrival_offsets_ns(rate: float, arrivals: str = "fixed", seed: int = 0) -> Iterator[int]:
    """Endless increasing send offsets (ns) for `rate` requests per second.

    fixed: exactly every 1/rate seconds (i * 1e9 / rate, computed from i so rounding never drifts).
    poisson: exponential gaps with mean 1/rate, drawn from random.Random(seed).
    """
    if rate <= 0:
        raise ValueError("rate must be > 0")
    if arrivals == "fixed":
        interval = 1e9 / rate
        i = 0
        while True:
            yield round(i * interval)
            i += 1
    elif arrivals == "poisson":
        rng = random.Random(seed)
        t = 0.0
        while True:
            yield round(t)
            t += rng.expovariate(rate) * 1e9
    else:
        raise ValueError(f"arrivals must be one of {ARRIVALS}, not {arrivals!r}")
