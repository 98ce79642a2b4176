"""Which emulator defect (docs/workloads.md, `--defect`) each check's must requirements should catch, and
how the mutation test groups them into runs.

* `CHECK_MUTATIONS`: check -> the defects that break it, each with the metrics it breaks and a rule for
  which requirements can see it (a requirement that bounds none of those metrics, or bounds them too
  loosely, cannot). A requirement is caught by a mutation when its verdict on the broken site fails on
  one of the mutation's metrics.
* `GAPS` / `METRIC_GAPS`: why a must requirement cannot be caught by any site defect. These are
  findings: the requirement or the emulator needs work. They are listed in the table, not hidden.
* `PLANS`: per emulated topology, where each defect sits in which run. One run per group of defects:
  defects of different families sit on different sites (each requirement is narrowed to the site that
  carries its defect), defects that break different mechanisms may share a site (each requirement must
  then fail on its own metric), and "edge" puts a defect on every edge site (fleet checks, quorums).

Only site defects exist (`--defect SITE:DEFECT`); link impairments have no CLI switch, and no must
requirement here needs one (see docs/profiles.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable

from conformance.model.profile import Requirement

SLOW_PATH_MS = 25.0  # the slow-path defect's delay per request (slow_path_ms, docs/workloads.md)
BLOCKING_IO_MS = 8.0  # the blocking-io defect stalls the site's event loop this long per request
MEMORY_HOG_MIB = 640.0  # what the memory-hog defect allocates and holds, on top of the site's own ~40 MiB
LATENCY_METRICS = frozenset({"p50", "p90", "p95", "p99", "p999", "max", "mean", "latency"})


def _always(_: Requirement) -> bool:
    return True


def _workload(name: str) -> Callable[[Requirement], bool]:
    def rule(r: Requirement) -> bool:
        workloads = r.params.get("workloads")
        return workloads is None or name in workloads  # default: pos, content, auth
    return rule


def _outage(kind: str) -> Callable[[Requirement], bool]:
    return lambda r: (r.params.get("outage") or "partition") == kind


def _cut(mode: str) -> Callable[[Requirement], bool]:
    """A WAN cut of this mode (flap, or resync with `outage: partition`)."""
    return lambda r: (r.params.get("outage") or "partition") == "partition" and r.params.get("cut_mode") == mode


def _nothing_survives(r: Requirement) -> bool:
    """An outage after which nothing the site gave up on arrives by itself: central down, or a drop-cut.
    (A hold-cut delivers at heal what the site timed out on, so a site that drops it still resyncs.)"""
    return _outage("central")(r) or _cut("drop")(r)


def _tight_latency_bound(r: Requirement) -> bool:
    """slow-path adds 25 ms per request: only an upper bound on a latency metric of at most that sees it."""
    from conformance.model.units import to_base

    for c in r.expect.comparisons:
        if c.metric in LATENCY_METRICS and c.op in ("<", "<=") and c.unit:
            if to_base(c.value, c.unit, "time") <= SLOW_PATH_MS / 1000.0:
                return True
    return False


def _saturated_by_blocking_io(r: Requirement) -> bool:
    """blocking-io serialises requests at ~8 ms each (~125/s): a sustained rate well above that saturates
    the site, so a bound on what it achieves or on its tail latency sees it; below, it only adds 8 ms."""
    rate = r.params.get("rate")
    return isinstance(rate, (int, float)) and rate * BLOCKING_IO_MS / 1000.0 >= 1.2


def _knee_above_blocking_io(r: Requirement) -> bool:
    """A lower bound on max_rps above what a site serialised at ~8 ms per request can serve."""
    return any(c.metric == "max_rps" and c.op in (">", ">=") and c.value * BLOCKING_IO_MS / 1000.0 >= 1.2
               for c in r.expect.comparisons)


def _memory_bound_below_hog(r: Requirement) -> bool:
    from conformance.model.units import to_base

    for c in r.expect.comparisons:
        if c.metric == "rss" and c.op in ("<", "<=") and c.unit:
            if to_base(c.value, c.unit, "size") < to_base(MEMORY_HOG_MIB, "MiB", "size"):
                return True
    return False


@dataclass(frozen=True)
class Mutation:
    defect: str
    metrics: frozenset[str]
    applies: Callable[[Requirement], bool] = _always
    fleet: bool = False  # must be on every edge site: the check judges the fleet (or a quorum does)
    family: str = ""  # defects of one family never share a site


def M(defect: str, metrics: set[str], applies: Callable[[Requirement], bool] = _always, *, fleet: bool = False,
      family: str = "") -> Mutation:
    return Mutation(defect, frozenset(metrics), applies, fleet, family)


CHECK_MUTATIONS: dict[str, list[Mutation]] = {
    "resilience.partition": [
        M("forward-synchronously", {"pos_accepted"}, _workload("pos"), family="forwarding"),
        M("no-stale-cache", {"cache_served"}, _workload("content"), family="cache"),
        M("central-auth-only", {"auth_ok"}, _workload("auth"), family="auth"),
        M("health-waits-on-wan", {"availability"}, family="health-wan"),
    ],
    # duplicate-on-retry shows when a request the site timed out on still reaches central: a hold-cut
    # delivers it at heal; a drop-cut discards it, so there the site's resend is its only copy.
    "resilience.resync": [
        M("duplicate-on-retry", {"duplicates", "digest_match"}, _cut("hold"), family="forwarding"),
        M("drop-on-partition", {"delivered_ratio", "digest_match"}, _nothing_survives, family="forwarding"),
    ],
    "resilience.flap": [M("duplicate-on-retry", {"duplicates"}, _cut("hold"), family="forwarding"),
                        M("drop-on-partition", {"lost"}, _cut("drop"), family="forwarding")],
    "resilience.recovery": [M("no-fsync", {"data_survived"}, family="durability")],
    "resilience.long_outage": [M("unbounded-backlog", {"memory_growth", "memory_projected"}, family="backlog"),
                               M("renew-at-central-only", {"auth_ok"}, family="auth"),
                               M("forwarder-no-reconnect", {"delivered_ratio"}, family="forwarding")],
    "lifecycle.backup_restore": [M("restore-loses-records", {"restored_ratio", "lost_records", "digest_match"},
                                   family="restore")],
    "latency.request": [M("slow-path", set(LATENCY_METRICS), _tight_latency_bound, family="latency")],
    "latency.wan": [M("slow-path", set(LATENCY_METRICS), _tight_latency_bound, family="latency")],
    "load.sustained": [M("slow-path", set(LATENCY_METRICS), _tight_latency_bound, family="latency"),
                       M("blocking-io", {"achieved", "error_ratio", *LATENCY_METRICS}, _saturated_by_blocking_io,
                         family="blocking")],
    "load.capacity": [M("blocking-io", {"max_rps"}, _knee_above_blocking_io, family="blocking")],
    "functional.http": [M("slow-path", {"latency"}, _tight_latency_bound, family="latency"),
                        M("health-broken", {"status"}, family="health")],
    "functional.tcp": [M("exits-after-start", {"connected"}, family="down")],
    "functional.process": [M("exits-after-start", {"running"}, family="down")],
    "functional.cache_serves": [M("no-cache", {"served", "hit"}, family="cache")],
    "security.listening_ports": [M("extra-listener", {"unexpected"}, family="listener")],
    "security.secret_files": [M("world-readable-key", {"world_readable"}, family="secrets")],
    "security.tls": [M("expiring-cert", {"expiry_ok"}, family="tls")],
    "security.default_credentials": [M("default-credentials", {"accepted_defaults"}, family="credentials")],
    "footprint.memory": [M("memory-hog", {"rss"}, _memory_bound_below_hog, family="memory")],
    "data.network_efficiency": [M("raw-telemetry", {"wan_ratio", "reported_ratio", "link_ratio", "wan_bytes"},
                                  family="telemetry")],
    "data.privacy": [M("leak-personal", {"leaked_fields", "leaked_local"}, family="privacy")],
    "fleet.registry": [M("no-heartbeat", {"registered", "registered_ratio", "time_to_register"}, fleet=True,
                         family="registry")],
    "fleet.config_push": [M("ignore-config", {"reached", "reached_ratio", "propagation_time"}, fleet=True,
                            family="config")],
    # the real components of an edge-stack store (docker backend): nginx's cache, mosquitto's bridge
    "stack.http_cache": [M("nginx-no-cache", {"hit_ratio", "stale_served_ratio"}, family="nginx-cache"),
                         M("nginx-no-stale", {"stale_served_ratio"}, family="nginx-cache")],
    "stack.mqtt_bridge": [M("bridge-drops-queued", {"delivered_ratio", "lost"}, family="bridge")],
}

# Certification-length profiles: their outages last hours (a campaign would take days), so the campaign
# leaves them out. Their quick counterparts' musts are the same checks at a quick length; their own
# long-outage musts are proven to pass healthy and fail on each defect above at --duration-scale 1/100
# by the module named.
FULL_LENGTH: dict[str, str] = {
    "retail-full": "tests/suites/resilience/test_long_outage_emulated.py",
    "satcom-full": "tests/suites/resilience/test_long_outage_emulated.py (the same check, on retail-full)",
}

# Checks that no site defect of the emulator can break: why, and what would.
GAPS: dict[str, str] = {}

# Must requirements whose check has mutations, but none that breaks a metric they bound tightly enough.
METRIC_GAPS: dict[str, str] = {
    "p99": "slow-path adds 25 ms, below the bound",
    "p95": "slow-path adds 25 ms, below the bound",
    "p90": "slow-path adds 25 ms, below the bound",
    "error_ratio": "no defect makes a site fail requests under load",
    "achieved": "no defect makes a site drop requests under load",
}

# Checks that are skipped on the emulated topologies (not applicable there): allowed in healthy runs.
EXPECTED_SKIPS: set[str] = set()


def mutations_for(r: Requirement) -> list[Mutation]:
    """The mutations a requirement should catch: it bounds one of their metrics, and their rule holds."""
    bounded = set(r.expect.metrics)
    return [m for m in CHECK_MUTATIONS.get(r.check, []) if bounded & m.metrics and m.applies(r)]


def gap_reason(r: Requirement) -> str:
    if r.check in GAPS and not mutations_for(r):
        return GAPS[r.check]
    reasons = [METRIC_GAPS[m] for m in r.expect.metrics if m in METRIC_GAPS]
    return (f"{', '.join(r.expect.metrics)}: " + (reasons[0] if reasons else "no defect breaks these metrics"))


# ---------------------------------------------------------------------------------------------
# the plan: defects per run, per topology

EDGE = "edge"  # a key of DefectRun.defects: every edge site of the topology


@dataclass
class DefectRun:
    name: str
    defects: dict[str, list[str]]  # site (or EDGE) -> defects
    sites: list[str] | None = None  # --site filter (None: the sites of the narrowed requirements + central)

    def sites_with(self, defect: str) -> list[str]:
        return [s for s, ds in self.defects.items() if defect in ds and s != EDGE]

    def everywhere(self, defect: str) -> bool:
        return defect in self.defects.get(EDGE, [])


@dataclass
class Plan:
    healthy_sites: list[str] | None  # --site filter of the healthy run (None: every site)
    runs: list[DefectRun] = field(default_factory=list)
    quiet: bool = False  # the healthy run judges budgets of a few ms: run it alone, before the others
    backend: str = "local"  # `run --backend`: docker where the topology's stack runs only in containers


PLANS: dict[str, Plan] = {
    # central + store-1..3
    "retail": Plan(["central", "store-1"], [
        DefectRun("retail-a", {"store-1": ["forward-synchronously", "no-stale-cache", "central-auth-only",
                                           "leak-personal", "ignore-config", "no-heartbeat"],
                               "store-2": ["duplicate-on-retry", "extra-listener", "world-readable-key",
                                           "expiring-cert", "default-credentials", "memory-hog"],
                               "store-3": ["no-fsync"]}),
        DefectRun("retail-b", {"store-1": ["drop-on-partition", "restore-loses-records"], "store-2": ["slow-path"],
                               "store-3": ["health-broken"]}),
        # a site that exits takes every check on it down: alone; /health waiting on the WAN: its own site
        DefectRun("retail-c", {"store-1": ["exits-after-start"], "store-2": ["health-waits-on-wan"]}),
    ]),
    # central + gw-1..4
    "iot": Plan(["central", "gw-1"], [
        # the forwarding family on three gateways: drop-on-partition for the drop-cut resyncs (IOT-RES-02,
        # VID-RES-02), duplicate-on-retry for the hold-cut flaps (IOT-RES-07, VID-RES-03: one experiment)
        DefectRun("iot-a", {"gw-1": ["forward-synchronously", "raw-telemetry"], "gw-2": ["duplicate-on-retry"],
                            "gw-3": ["drop-on-partition"], "gw-4": ["blocking-io", "health-waits-on-wan"]}),
    ]),
    # central + mec-1..3
    "mec": Plan(["central", "mec-1"], [
        DefectRun("mec-a", {"mec-1": ["slow-path", "health-waits-on-wan"], "mec-3": ["no-fsync", "no-cache"],
                            "mec-2": ["forward-synchronously", "no-stale-cache", "central-auth-only"]}),
        DefectRun("mec-b", {"mec-1": ["blocking-io"]}),
    ]),
    # central + remote-1: a single site, so defects of one family need their own runs
    "satcom": Plan(None, [
        DefectRun("satcom-a", {"remote-1": ["forward-synchronously", "no-stale-cache", "central-auth-only",
                                            "no-fsync", "ignore-config"]}),
        # duplicate-on-retry (SAT-RES-11's hold-cut flap) here: satcom-a and -c carry the other forwarding defects
        DefectRun("satcom-b", {"remote-1": ["health-waits-on-wan", "duplicate-on-retry"]}),
        DefectRun("satcom-c", {"remote-1": ["drop-on-partition", "slow-path"]}),
    ]),
    # central + far-1..2; URLLC-LAT-01 judges a 3 ms budget at p90: not next to other runs
    "urllc": Plan(["central", "far-1"], [
        DefectRun("urllc-a", {"far-1": ["slow-path"],
                              "far-2": ["forward-synchronously", "no-fsync", "health-waits-on-wan"]}),
    ], quiet=True),
    # central + store-1..2 running nginx and mosquitto: only the docker backend runs them
    "edge-stack": Plan(None, [
        DefectRun("edge-stack-a", {"store-1": ["nginx-no-cache", "bridge-drops-queued"],
                                   "store-2": ["nginx-no-stale"]}),
    ], backend="docker"),
    # central + store-01..50: the fleet defects on every store; quorums need every node broken too
    "fleet-50": Plan(None, [
        DefectRun("fleet-a", {EDGE: ["no-heartbeat", "ignore-config", "slow-path"]},
                  sites=["central", "store-01", "store-02", "store-03"]),
        DefectRun("fleet-b", {"store-01": ["exits-after-start"],
                              "store-02": ["health-broken", "extra-listener", "world-readable-key", "expiring-cert",
                                           "default-credentials", "memory-hog"]}),
    ]),
}
