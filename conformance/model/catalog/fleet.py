"""Checks of the fleet suite: central management of many sites over the WAN.

These are fleet-level checks: one measurement per requirement, on the central site, over every edge site
whose uplink it is (OSF-2018 §Challenges: monitoring and orchestrating many sites at once; OPNFV-TC #12,
central view of edge resources kept current). Name them with `applies_to: [central]`; on a site that is
nobody's uplink they are skipped with the reason. They use the reference workloads' management API
(docs/workloads.md): `GET /registry/sites` and `GET|PUT /config` at central, `GET /config` at each edge.
"""

from . import CheckSpec, Param
from .common import REQUEST_TIMEOUT
from ..units import COUNT, RATIO, TIME


_SITES = Param("list", "which sites of the target count as the fleet: names or roles, among the sites whose "
                       "uplink is the checked (central) site", default=["edge"])
_ENDPOINT = Param("str", "endpoint of the central site the check talks to", default="api")

CHECKS = [
    CheckSpec(
        name="fleet.registry",
        summary="Central's site registry sees the fleet alive: how many sites send a heartbeat that "
                "central records after the check starts, and how long until enough of them did.",
        metrics={"registered": COUNT, "registered_ratio": RATIO, "time_to_register": TIME},
        params={
            "sites": _SITES,
            "min_sites": Param("int", "count any site the registry sees alive and need this many (for a "
                                      "fleet larger than the target file lists); default: every fleet "
                                      "site of the target, by name", default=None),
            "within": Param("duration", "how long to wait for the heartbeats", default="10 s"),
            "endpoint": _ENDPOINT,
            "timeout": REQUEST_TIMEOUT,
        },
    ),
    CheckSpec(
        name="fleet.config_push",
        summary="PUT a new config version at central and measure how long until every fleet site reports "
                "it applied (GET /config at each site) and which share of them did.",
        metrics={"reached_ratio": RATIO, "reached": COUNT, "propagation_time": TIME},
        params={
            "sites": _SITES,
            "config": Param("dict", "the config to push (default: central's current config plus a "
                                    "`conformance_probe` key with a fresh value)", default=None),
            "within": Param("duration", "how long to wait for every site to apply it", default="15 s"),
            "endpoint": _ENDPOINT,
            "site_endpoint": Param("str", "endpoint of each fleet site where GET /config is read",
                                   default="api"),
            "timeout": REQUEST_TIMEOUT,
        },
    ),
]
