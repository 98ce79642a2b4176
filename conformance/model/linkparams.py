"""A link's parameters: what an emulated WAN or access link does to traffic.

One class for the whole life of a link: a topology file declares the shaping (model/topology.py,
SHAPING_FIELDS), the supervisor hands it to the relay, the relay (conformance.emulation.link) applies
it, and the control API changes it while a run goes on (partitions included). Validated on
construction, so no invalid parameter set exists, whichever way it was built.

Pure data: imports nothing of ours outside conformance.model.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from .errors import did_you_mean

PARTITION_MODES = ("hold", "drop")
SHAPING_FIELDS = ("delay_ms", "jitter_ms", "loss", "bandwidth_bps")


@dataclasses.dataclass(frozen=True)
class LinkParams:
    """What a link does to traffic.  Immutable; `replace` returns a validated copy.

    delay_ms is ONE-WAY, per direction; loss a fraction 0..1; bandwidth_bps None is unlimited.
    """

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    bandwidth_bps: int | None = None
    partitioned: bool = False
    partition_mode: str = "hold"  # what a cut does to connections: "hold" or "drop" (conformance.emulation.link)

    FIELDS = ("delay_ms", "jitter_ms", "loss", "bandwidth_bps", "partitioned", "partition_mode")

    def __post_init__(self) -> None:
        # Validate here so no invalid parameter set can exist, whichever way it was built.
        set_ = object.__setattr__
        set_(self, "delay_ms", _number("delay_ms", self.delay_ms, low=0.0))
        set_(self, "jitter_ms", _number("jitter_ms", self.jitter_ms, low=0.0))
        set_(self, "loss", _number("loss", self.loss, low=0.0, high=1.0))
        if self.bandwidth_bps is not None:
            bps = _number("bandwidth_bps", self.bandwidth_bps, low=0.0)
            if bps < 1 or bps != int(bps):
                raise ValueError(f"bandwidth_bps: must be a whole number >= 1 or null, got {self.bandwidth_bps!r}")
            set_(self, "bandwidth_bps", int(bps))
        if not isinstance(self.partitioned, bool):
            raise ValueError(f"partitioned: must be true or false, got {self.partitioned!r}")
        if self.partition_mode not in PARTITION_MODES:
            raise ValueError(f"partition_mode: must be one of {', '.join(PARTITION_MODES)}, "
                             f"got {self.partition_mode!r}{did_you_mean(str(self.partition_mode), PARTITION_MODES)}")

    def replace(self, **changes: Any) -> LinkParams:
        _check_fields(changes)
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], base: LinkParams | None = None) -> LinkParams:
        """Parameters from JSON-like data; missing fields come from `base` (defaults if None)."""
        _check_fields(data)
        return (base or cls()).replace(**data)

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.FIELDS}

    @property
    def drops_connections(self) -> bool:
        """A drop-cut is on: connections across the link do not survive it."""
        return self.partitioned and self.partition_mode == "drop"

    def shaping(self) -> dict[str, Any]:
        """What a topology declares of a link (SHAPING_FIELDS; partitions are a run's business)."""
        return {f: getattr(self, f) for f in SHAPING_FIELDS}


def _number(name: str, value: Any, *, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: must be a number, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"between {low:g} and {high:g}" if high is not None else f">= {low:g}"
        raise ValueError(f"{name}: must be {bounds}, got {value!r}")
    return float(value)


def _check_fields(data: Mapping[str, Any]) -> None:
    for key in data:
        if key not in LinkParams.FIELDS:
            raise ValueError(f"unknown field {key!r}{did_you_mean(key, LinkParams.FIELDS)}")
