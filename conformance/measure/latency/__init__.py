"""Open-loop latency prober with coordinated-omission correction and HDR histograms (microseconds).

    from conformance.measure.latency import ProbeConfig, run_probe
    result = run_probe(ProbeConfig("http://127.0.0.1:8080/", rate=200, duration=5))
    result.latency["p99_us"], result.valid, result.to_dict()

See docs/latency.md.
"""

from .calibrate import Floor, calibrate, measure_floor
from .config import ProbeConfig, Target, parse_target
from .histogram import decode, encode, merge_encoded, new_histogram, summarize
from .protocols import PROTOCOLS, CallbackProtocol, Protocol, make_protocol, register_protocol
from .prober import probe, run_probe
from .result import SCHEMA, LatencyResult
from .safety import TargetRefused, check_target, is_loopback_host

__all__ = [
    "PROTOCOLS", "SCHEMA", "CallbackProtocol", "Floor", "LatencyResult", "ProbeConfig", "Protocol", "Target",
    "TargetRefused",
    "calibrate", "check_target", "decode", "encode", "is_loopback_host", "make_protocol",
    "measure_floor", "merge_encoded", "new_histogram", "parse_target", "probe", "register_protocol",
    "run_probe", "summarize",
]
