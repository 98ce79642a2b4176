"""Checks of the resilience suite: autonomy while cut off, lossless resync, degraded WAN, crashes, flaps.

Every check injects a fault (conformance.faults): on an emulated deployment through its supervisor, on a
real one through the target's fault hooks, which run only with --allow-faults. A fault that cannot be
injected skips the requirement with the reason; it never passes. Faults are always undone (heal, reset,
resume), also when the check fails or the run is interrupted. The workload endpoints the checks use are
those of the reference workloads (docs/workloads.md): POST /pos/transactions, GET /pos/summary,
GET /content/{key}, GET /auth/check at the site, and /sink/transactions/summary, /auth/token at central.
Requirements of one check with the same params on the same site share one experiment (one partition
measured once, judged by each requirement's expectation).
"""

from . import CheckSpec, ChoiceItems, Param, QuantityItems
from ..units import BITRATE, BOOL, COUNT, RATIO, SIZE, TIME


_ENDPOINT = Param("str", "the site endpoint its clients use", default="api")
_CENTRAL_ENDPOINT = Param("str", "endpoint of the site's uplink (central) that the check reads, e.g. its "
                                 "transaction summary", default="api")
_SCALED = Param("str", "what a scaled-down duration stands for in reality (e.g. \"hours\", \"72 h\"); "
                       "noted with the verdict", default=None)
_OP_TIMEOUT = Param("duration", "timeout of each workload request (sale, content, token check)", default="3 s")
CUT_MODES = ("drop", "hold")


def _cut_mode(default: str, why: str) -> Param:
    return Param("str", "what the WAN cut does to connections: drop (a long outage: every connection across "
                        "the WAN is reset at the cut, new ones go nowhere, nothing sent before or during it "
                        "arrives later, as when TCP gives up or a NAT or firewall loses its state) or hold (a "
                        "short cut: what was in flight is held and delivered at heal, as TCP retransmits "
                        f"it); {why}", default=default, items=ChoiceItems(("drop", "hold")))


CHECKS = [
    CheckSpec(
        name="resilience.partition",
        summary="Cut the site's WAN for a while and check it keeps serving locally: availability and p99 "
                "of a steady open-loop probe, sales accepted, cached content served (stale is fine), "
                "tokens issued before the cut still valid.",
        metrics={"availability": RATIO, "p99": TIME, "pos_accepted": RATIO, "cache_served": BOOL,
                 "auth_ok": BOOL, "probes": COUNT},
        params={
            "duration": Param("duration", "how long the WAN stays cut", default="5 s", scales=True),
            "rate": Param("number", "steady probe: requests per second (open loop)", default=20),
            "path": Param("str", "steady probe: path requested at the site", default="/health"),
            "probe_timeout": Param("duration", "steady probe: timeout of each request", default="1 s"),
            "workloads": Param("list", "what else is tried during the cut: pos (sales), content (a key "
                                       "fetched before the cut), auth (a token from central)",
                               default=["pos", "content", "auth"], items=ChoiceItems(("pos", "content", "auth"))),
            "pos_rate": Param("number", "sales per second posted during the cut", default=2),
            "content_ttl": Param("duration", "the site's content cache freshness: the key is fetched at "
                                             "least this long before it is read during the cut, so it "
                                             "must be served from an expired copy", default="5 s"),
            "cut_mode": _cut_mode("drop", "drop by default: the cut stands for an outage of hours"),
            "op_timeout": _OP_TIMEOUT,
            "endpoint": _ENDPOINT,
            "central_endpoint": _CENTRAL_ENDPOINT,
            "scaled_from": _SCALED,
        },
    ),
    CheckSpec(
        name="resilience.resync",
        summary="Sell during an outage (the WAN cut, or central down), end it, and check that every sale "
                "reaches central exactly once: the site's and central's transaction summaries (count, "
                "digest) agree, and how long that took.",
        metrics={"delivered_ratio": RATIO, "duplicates": COUNT, "digest_match": BOOL, "sync_time": TIME,
                 "created": COUNT},
        params={
            "duration": Param("duration", "how long the outage lasts", default="5 s", scales=True),
            "records": Param("int", "sales made during the outage", default=20),
            "outage": Param("str", "partition (the site's WAN is cut, as cut_mode says) or central (the "
                                   "uplink site is stopped: connections are refused, nothing in flight "
                                   "survives)", default="partition", items=ChoiceItems(("partition", "central"))),
            "cut_mode": _cut_mode("drop", "with outage: partition only. drop by default: a lossless "
                                          "resync is only proven when nothing the site gave up on can "
                                          "still arrive by itself; with hold, a batch the site dropped "
                                          "after a timeout reaches central anyway at heal"),
            "timeout": Param("duration", "give up waiting for the resync this long after the outage ends",
                             default="30 s"),
            "settle": Param("duration", "keep watching this long after the sync for late duplicates",
                            default="1 s"),
            "op_timeout": _OP_TIMEOUT,
            "endpoint": _ENDPOINT,
            "central_endpoint": _CENTRAL_ENDPOINT,
            "scaled_from": _SCALED,
        },
    ),
    CheckSpec(
        name="resilience.degraded",
        summary="Sweep the WAN's one-way delay, loss and bandwidth (OPNFV Edge Cloud test cases 16-18) "
                "and measure the success ratio and duration of the site's central-bound operations at "
                "each step: a sale until central has it, a content miss fetched from central.",
        metrics={"min_success_ratio": RATIO, "max_duration": TIME, "steps": COUNT},
        params={
            "delays_ms": Param("list", "one-way WAN delays to step through, in ms (or \"25 ms\")",
                               default=[5, 10, 15, 20, 25, 30], items=QuantityItems(TIME, "ms")),
            "losses": Param("list", "WAN loss rates to step through: \"5 %\" or a fraction 0.05",
                            default=["1 %", "3 %", "5 %", "8 %", "10 %"], items=QuantityItems(RATIO, "")),
            "bandwidths": Param("list", "WAN bandwidth caps to step through: \"1 Mbit/s\" or bit/s",
                                default=[], items=QuantityItems(BITRATE, "bit/s")),
            "operations": Param("list", "central-bound operations per step: pos, content",
                                default=["pos", "content"], items=ChoiceItems(("pos", "content"))),
            "ops_per_step": Param("int", "operations of each kind per step, run at once", default=3),
            "op_timeout": Param("duration", "an operation slower than this failed", default="10 s"),
            "content_size": Param("int", "bytes of each content miss", default=4096),
            "endpoint": _ENDPOINT,
        },
    ),
    CheckSpec(
        name="resilience.recovery",
        summary="Crash the site (SIGKILL) right after acknowledged sales and measure the time until it is "
                "healthy again by itself and whether the sales survived; then freeze it (SIGSTOP), check "
                "the hang shows as timeouts, resume it and check it is healthy with its data intact.",
        metrics={"recovery_time": TIME, "data_survived": BOOL, "hang_detected": BOOL, "resumed_ok": BOOL},
        params={
            "kill": Param("bool", "do the crash part", default=True),
            "pause": Param("bool", "do the hang part", default=True),
            "records": Param("int", "sales acknowledged just before the crash", default=10),
            "timeout": Param("duration", "give up waiting for the site to be healthy again", default="30 s"),
            "hang_timeout": Param("duration", "client timeout that must expose the hang", default="1 s"),
            "pause_for": Param("duration", "how long the site stays frozen", default="2 s"),
            "path": Param("str", "health path (200 with status ok, or any 2xx)", default="/health"),
            "op_timeout": _OP_TIMEOUT,
            "endpoint": _ENDPOINT,
        },
    ),
    CheckSpec(
        name="resilience.flap",
        summary="Flap the site's WAN (cut, heal, cut ...) while selling, then check every acknowledged "
                "sale reached central exactly once after the last heal and the site is healthy.",
        metrics={"lost": COUNT, "duplicates": COUNT, "healthy": BOOL, "created": COUNT, "sync_time": TIME},
        params={
            "period": Param("duration", "one flap: the link is cut, then healed for the rest of the period",
                            default="4 s"),
            "cut": Param("duration", "how long each cut lasts (default: half the period); make it longer "
                                     "than the site's own WAN request timeout, or no request ever times out "
                                     "and the retries that could duplicate are never exercised",
                         default="3 s"),
            "cycles": Param("int", "number of flaps", default=2),
            "cut_mode": _cut_mode("hold", "hold by default: flaps are short disconnections, and a held "
                                          "request that timed out reaches central at heal while the "
                                          "site resends it, which is what exposes non-idempotent "
                                          "resends (duplicates)"),
            "rate": Param("number", "sales per second during the flapping", default=4),
            "timeout": Param("duration", "give up waiting for the resync after the last heal", default="30 s"),
            "settle": Param("duration", "keep watching this long after the sync for late duplicates",
                            default="1 s"),
            "op_timeout": _OP_TIMEOUT,
            "endpoint": _ENDPOINT,
            "central_endpoint": _CENTRAL_ENDPOINT,
        },
    ),
    CheckSpec(
        name="resilience.long_outage",
        summary="Cut the site's WAN for a long outage while selling and holding a client session, and "
                "check what only a long outage shows: the backlog's growth in memory and on disk "
                "(projected to the profile's length when --duration-scale shortened it), a token that "
                "runs out during the cut renewed at the site, and every sale at central after the heal "
                "although the cut killed every connection (catch-up time).",
        metrics={"memory_growth": SIZE, "memory_projected": SIZE, "disk_growth": SIZE, "disk_projected": SIZE,
                 "auth_ok": BOOL, "renewals": COUNT, "delivered_ratio": RATIO, "duplicates": COUNT,
                 "catch_up_time": TIME, "created": COUNT},
        params={
            "duration": Param("duration", "how long the WAN stays cut", default="60 s", scales=True),
            "pos_rate": Param("number", "sales per second during the cut (and the baseline before it)", default=2),
            "token_ttl": Param("duration", "lifetime of the token central issues before the cut (default: a "
                                           "third of the cut, so it runs out during it)", default=None,
                               scales=True),
            "baseline": Param("duration", "warm-up: the same sales with the WAN up before the cut; its growth "
                                          "rate is taken from the cut's, so what grows with any sale (caches, "
                                          "logs) is not blamed on the backlog (default: a quarter of the cut, "
                                          "5 s to 10 min)", default=None),
            "sample_every": Param("duration", "time between memory and disk samples (default: a sixtieth of "
                                              "the cut, 0.5 s to 1 min)", default=None),
            "checkpoint_every": Param("duration", "how often what was measured so far is written to results.json "
                                                  "(default: a twentieth of the cut, at least 10 s)", default=None),
            "cut_mode": _cut_mode("drop", "drop by default: a long outage kills every connection"),
            "timeout": Param("duration", "give up waiting for the catch-up this long after the heal",
                             default="60 s"),
            "settle": Param("duration", "keep watching this long after the catch-up for late duplicates",
                            default="1 s"),
            "host": Param("str", "with several hosts: part of the one to measure memory and disk on", default=None),
            "op_timeout": _OP_TIMEOUT,
            "endpoint": _ENDPOINT,
            "central_endpoint": _CENTRAL_ENDPOINT,
            "scaled_from": _SCALED,
        },
    ),
]
