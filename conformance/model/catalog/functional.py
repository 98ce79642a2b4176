"""Checks of the functional suite."""

from . import CheckSpec, Param
from ..units import BOOL, COUNT, TIME

_ENDPOINT = Param("str", "name of the site endpoint to use (from the target file)", default="api")
_TIMEOUT = Param("duration", "give up after this long, e.g. 5 s", default="5 s")

CHECKS = [
    CheckSpec(
        name="functional.http",
        suite="functional",
        summary="An HTTP endpoint answers within a timeout with the expected status and JSON fields.",
        metrics={"status": COUNT, "latency": TIME, "json_mismatches": COUNT},
        params={
            "endpoint": _ENDPOINT,
            "path": Param("str", "path appended to the endpoint URL", default="/"),
            "method": Param("str", "HTTP method", default="GET"),
            "timeout": _TIMEOUT,
            "json": Param("dict", "expected JSON fields: dotted path -> value", default=None),
            "headers": Param("dict", "request headers (values may use ${ENV} references)", default=None),
            "ca_file": Param("str", "CA bundle to verify https endpoints with (default: the site's "
                                    "ca_file in the target file, else system CAs)", default=None),
        },
    ),
    CheckSpec(
        name="functional.tcp",
        suite="functional",
        summary="A TCP port accepts connections and keeps them open: one the peer closes (EOF or reset) "
                "within 0.3 s without sending a byte, as a proxy with no live backend does, is not "
                "connected.",
        metrics={"connected": BOOL, "connect_time": TIME},
        params={
            "endpoint": _ENDPOINT,
            "port": Param("int", "port to connect to instead of the endpoint's port", default=None),
            "timeout": _TIMEOUT,
        },
    ),
]
