"""Checks of the stack suite: the real components of an edge site judged on their own.

* `stack.http_cache`: the site's HTTP cache (nginx proxy_cache, Varnish, Squid ... named by the site's
  `cache` endpoint): the share of repeated GETs it answers itself (its cache status header: X-Cache,
  X-Cache-Status or Cache-Status), and, while the site's WAN is cut, the share of GETs of expired
  content it still answers with its cached copy (stale-if-error).
* `stack.mqtt_bridge`: the site's MQTT broker (its `mqtt` endpoint) bridged to central's (central's
  `mqtt` endpoint): messages published at the site at QoS 1 while the WAN is cut reach central after
  the heal, each counted by the id in its payload: delivered, lost, duplicated.

The cut goes through conformance.faults (the emulator's supervisor, or a real target's partition and
heal hooks with --allow-faults) and is always healed. Traffic goes only to the declared endpoints.
"""

from . import CheckSpec, ChoiceItems, Param
from ..units import COUNT, RATIO, TIME

CUT_MODES = ("drop", "hold")


def _cut_mode(why: str) -> Param:
    return Param("str", "what the WAN cut does to connections: drop (every connection across the WAN is reset "
                        "at the cut and new ones go nowhere, as in a long outage) or hold (what is in flight "
                        f"is held and delivered at heal); {why}", default="drop", items=ChoiceItems(CUT_MODES))


_OP_TIMEOUT = Param("duration", "timeout of each request, connection or acknowledgement", default="3 s")
_SCALED = Param("str", "what a scaled-down cut stands for in reality (e.g. \"hours\"); noted with the verdict",
                default=None)

CHECKS = [
    CheckSpec(
        name="stack.http_cache",
        summary="GET cacheable content through the site's HTTP cache repeatedly and measure the share it "
                "answers itself (hit_ratio, from its cache status header); then cut the site's WAN, wait "
                "until the cached copies have expired and measure the share of GETs still answered with "
                "the cached copy (stale_served_ratio: stale-if-error).",
        metrics={"hit_ratio": RATIO, "stale_served_ratio": RATIO, "requests": COUNT, "cut_requests": COUNT,
                 "max_cut_latency": TIME},
        params={
            "endpoint": Param("str", "the site endpoint of its HTTP cache: a base URL under which `paths` are "
                                     "cacheable (edge-stack: nginx's /cdn/)", default="cache"),
            "paths": Param("list", "paths of cacheable content under the endpoint (e.g. [\"logo.png\"]); "
                                   "default: fresh keys per run, for an origin that serves any path (the "
                                   "reference origin does)", default=[]),
            "keys": Param("int", "fresh keys requested when no `paths` are given", default=4),
            "repeats": Param("int", "GETs of each path after its first one: the hit ratio's sample", default=4),
            "hit_header": Param("str", "response header with the cache's status (HIT, MISS, STALE ...); "
                                       "default: the first of X-Cache, X-Cache-Status, X-Proxy-Cache, "
                                       "Cache-Status (RFC 9211) the cache sends", default=None),
            "cut": Param("bool", "measure stale serving during a WAN cut (needs the partition and heal "
                                 "faults); false: the hit ratio only", default=True),
            "content_ttl": Param("duration", "the cache's freshness lifetime (nginx proxy_cache_valid) plus "
                                             "its rounding: during the cut the paths are read only once this "
                                             "long has passed since they were fetched, so what is served is "
                                             "an expired copy", default="3 s"),
            "duration": Param("duration", "how long the expired paths are read during the cut", default="2 s",
                              scales=True),
            "cut_mode": _cut_mode("drop by default: an origin that is gone, not slow"),
            "op_timeout": _OP_TIMEOUT,
            "scaled_from": _SCALED,
        },
    ),
    CheckSpec(
        name="stack.mqtt_bridge",
        summary="Cut the site's WAN, publish messages at QoS 1 to the site's MQTT broker (each acknowledged "
                "by it), heal, and count at central's broker what its bridge delivered: each message by "
                "the id in its payload, so lost and duplicated ones are told apart.",
        metrics={"delivered_ratio": RATIO, "lost": COUNT, "duplicates": COUNT, "published": COUNT,
                 "sync_time": TIME},
        params={
            "endpoint": Param("str", "the site's broker endpoint (mqtt://host:port, mqtts://, tcp://)",
                              default="mqtt"),
            "central_endpoint": Param("str", "the broker endpoint of the site's uplink (central)", default="mqtt"),
            "topic": Param("str", "topic published at the site; it must be one the bridge forwards. {tag} "
                                  "is replaced by a fresh tag per run", default="edge-conformance/bridge/{tag}"),
            "central_topic": Param("str", "filter subscribed at central that matches where the bridge "
                                          "delivers `topic` (edge-stack: stores/{site}/{topic}); {site}, "
                                          "{topic} and {tag} are replaced. Only payloads carrying this "
                                          "run's tag are counted", default="#"),
            "messages": Param("int", "messages published during the cut", default=50),
            "duration": Param("duration", "how long the WAN stays cut (messages are published in its first "
                                          "80 %)", default="3 s", scales=True),
            "cut_mode": _cut_mode("drop by default: the bridge's connection dies, as in a long outage"),
            "timeout": Param("duration", "give up waiting for the messages at central this long after the heal",
                             default="20 s"),
            "settle": Param("duration", "keep counting this long after the last message arrived, for late "
                                        "duplicates", default="1 s"),
            "op_timeout": _OP_TIMEOUT,
            "scaled_from": _SCALED,
        },
    ),
]
