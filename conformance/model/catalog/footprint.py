"""Checks of the footprint suite: does the edge stack fit a small box (memory, CPU, disk, processes)."""

from . import CheckSpec, Param
from .common import HOST_PARAMS, PROCESS
from ..units import CPU, COUNT, RATE, SIZE

_SCOPE = Param("str", 'which processes: "auto" (the site\'s if known, else the whole host), "site" (skip '
                      'when the site\'s processes are unknown) or "host"', default="auto")

CHECKS = [
    CheckSpec(
        name="footprint.memory",
        summary="Resident memory of the site's processes (process tree summed), or of the container/host.",
        metrics={"rss": SIZE},
        params={"process": PROCESS, "scope": _SCOPE, **HOST_PARAMS},
    ),
    CheckSpec(
        name="footprint.cpu",
        summary="CPU used by the site's processes over a window, idle or under a modest request rate.",
        metrics={"cpu": CPU, "achieved_rps": RATE},
        params={
            "window": Param("duration", "how long to measure", default="3 s"),
            "load_rps": Param("number", "send this many requests per second to the site's own endpoint "
                                        "during the window (at most 200; default: idle)", default=None),
            "endpoint": Param("str", "endpoint the load goes to", default="api"),
            "path": Param("str", "path the load requests", default="/health"),
            "process": PROCESS,
            "scope": _SCOPE,
            **HOST_PARAMS,
        },
    ),
    CheckSpec(
        name="footprint.disk",
        summary="Disk used by the edge stack: the given paths, or the emulated site's data dir.",
        metrics={"used": SIZE},
        params={
            "paths": Param("list", "paths whose disk use is summed (default: the emulated site's data dir; "
                                   "skipped when none)", default=None),
            **HOST_PARAMS,
        },
    ),
    CheckSpec(
        name="footprint.processes",
        summary="Number of processes (and threads, where visible) the site runs.",
        metrics={"count": COUNT, "threads": COUNT},
        params={"process": PROCESS, "scope": _SCOPE, **HOST_PARAMS},
    ),
]
