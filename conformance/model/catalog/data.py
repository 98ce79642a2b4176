"""Checks of the data suite: what leaves a site over the WAN, how much of it, and what must never leave.

Both checks feed the site known data through its own API (the reference workloads' endpoints,
docs/workloads.md) and read what arrived at its uplink (central), so the verdict rests on what central
holds, not on what the site says it sent:

* data.network_efficiency (OSF-2018 use cases 1 and 7): raw telemetry in, WAN bytes out. The WAN bytes
  are the site's own counters (`/telemetry/stats` or `/metrics`) and, on an emulated target, the WAN
  link's byte counters from the emulator (a site could under-report): the larger ratio is judged.
* data.privacy (OSF-2018 use cases 3 and 9): records with personal fields and `local_only` records in,
  central's copy read back; no personal value and no local-only record may be there.
"""

from . import CheckSpec, Param
from .common import REQUEST_TIMEOUT
from ..units import COUNT, RATIO, SIZE, TIME


_ENDPOINT = Param("str", "name of the site endpoint its clients (sensors, tills) use", default="api")
_CENTRAL_ENDPOINT = Param("str", "endpoint of the site's uplink (central) that the check reads", default="api")

CHECKS = [
    CheckSpec(
        name="data.network_efficiency",
        summary="POST a known volume of raw telemetry to the site, wait until central has it, and measure "
                "the WAN bytes the site sent per raw byte ingested (site counters, cross-checked with the "
                "emulated WAN link's byte counters).",
        metrics={
            "wan_ratio": RATIO,        # WAN bytes / raw bytes: the larger of the site's and the link's figure
            "reported_ratio": RATIO,   # from the site's own counters
            "link_ratio": RATIO,       # from the emulated WAN link (background traffic subtracted)
            "delivered_ratio": RATIO,  # readings central accounts for / readings posted
            "raw_bytes": SIZE,         # body bytes posted to the site
            "wan_bytes": SIZE,         # bytes judged to have crossed the WAN for them
            "ship_time": TIME,         # from the last POST until central had every reading
        },
        params={
            "endpoint": _ENDPOINT,
            "central_endpoint": _CENTRAL_ENDPOINT,
            "readings": Param("int", "raw readings posted (in bodies of `batch` readings)", default=2000),
            "batch": Param("int", "readings per POST /telemetry", default=500),
            "sensors": Param("int", "distinct sensors the readings come from", default=5),
            "wait": Param("duration", "how long to wait for the data to reach central (the shipping window)",
                          default="15 s"),
            "baseline": Param("duration", "emulated targets: how long the WAN link's background traffic "
                                          "(heartbeats, config polls) is measured before posting, to "
                                          "subtract it", default="1.5 s"),
            "stats_path": Param("str", "the site's telemetry counters (JSON with raw_bytes_ingested and "
                                       "wan_bytes_sent); /metrics (Prometheus) is tried when it is missing",
                                default="/telemetry/stats"),
            "link_check": Param("bool", "emulated targets: cross-check with the WAN link's byte counters",
                                default=True),
            "timeout": REQUEST_TIMEOUT,
        },
    ),
    CheckSpec(
        name="data.privacy",
        summary="Post records with personal fields (marker values) and local_only records through the "
                "site's POS API, wait for forwarding, and read central's copy: no marker value and no "
                "local_only record may have left the site.",
        metrics={
            "leaked_fields": COUNT,     # personal values found verbatim at central
            "leaked_local": COUNT,      # local_only records found at central
            "forwarded_ratio": RATIO,   # ordinary records that reached central (nothing sent proves nothing)
            "records": COUNT,           # records posted (ordinary + local_only)
        },
        params={
            "endpoint": _ENDPOINT,
            "central_endpoint": _CENTRAL_ENDPOINT,
            "records": Param("int", "ordinary records with personal fields (and as many local_only ones)",
                             default=3),
            "fields": Param("list", "personal fields given a marker value in every record",
                            default=["customer_name", "card_number", "email"]),
            "wait": Param("duration", "how long to wait for the ordinary records to reach central",
                          default="10 s"),
            "settle": Param("duration", "after they arrived, how long to keep watching for local_only ones",
                            default="1 s"),
            "timeout": REQUEST_TIMEOUT,
        },
    ),
]
