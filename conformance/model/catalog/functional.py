"""Checks of the functional suite: a site's endpoints answer (HTTP, TCP, API calls, the reference
workloads' operations), and its hosts (through pytest-testinfra) run what they should.

Host checks run on every host of the site (the target's `hosts`, testinfra specs); a site without
hosts is not measured. When a check needs several hosts' answers they are combined: booleans must hold
on every host, counts add up, free space is the smallest.
"""

from . import CheckSpec, Param
from ..units import BOOL, COUNT, RATIO, SIZE, TIME
from .common import CA_FILE, HOST_PARAMS, PROCESS, TIMEOUT

_ENDPOINT = Param("str", "name of the site endpoint to use (from the target file)", default="api")

CHECKS = [
    CheckSpec(
        name="functional.http",
        summary="An HTTP endpoint answers within a timeout with the expected status and JSON fields.",
        metrics={"status": COUNT, "latency": TIME, "json_mismatches": COUNT},
        params={
            "endpoint": _ENDPOINT,
            "path": Param("str", "path appended to the endpoint URL", default="/"),
            "method": Param("str", "HTTP method", default="GET"),
            "timeout": TIMEOUT,
            "json": Param("dict", "expected JSON fields: dotted path -> value", default=None),
            "headers": Param("dict", "request headers (values may use ${ENV} references)", default=None),
            "ca_file": CA_FILE,
        },
    ),
    CheckSpec(
        name="functional.tcp",
        summary="A TCP port accepts connections and keeps them open: one the peer closes (EOF or reset) "
                "within 0.3 s without sending a byte, as a proxy with no live backend does, is not "
                "connected.",
        metrics={"connected": BOOL, "connect_time": TIME},
        params={
            "endpoint": _ENDPOINT,
            "port": Param("int", "port to connect to instead of the endpoint's port", default=None),
            "timeout": TIMEOUT,
        },
    ),
    # -- host checks -------------------------------------------------------------------------------
    CheckSpec(
        name="functional.process",
        summary="A process matching a pattern runs on the site's hosts (default: the emulated site's process).",
        metrics={"running": BOOL, "count": COUNT},
        params={"process": PROCESS, **HOST_PARAMS},
    ),
    CheckSpec(
        name="functional.service",
        summary="A service is running under the host's init system (systemd, OpenRC, upstart or SysV).",
        metrics={"running": BOOL, "enabled": BOOL},
        params={"name": Param("str", "service name, e.g. nginx", required=True), **HOST_PARAMS},
    ),
    CheckSpec(
        name="functional.port",
        summary="A port is listening on the site's hosts, owned by the expected process.",
        metrics={"listening": BOOL, "owner_ok": BOOL},
        params={
            "port": Param("int", "port number (default: the port of `endpoint`)", default=None),
            "endpoint": _ENDPOINT,
            "proto": Param("str", "tcp or udp", default="tcp"),
            "process": Param("str", "the owner must match this (name or command-line regex); default: "
                                    "the emulated site's process tree, or any owner", default=None),
            **HOST_PARAMS,
        },
    ),
    CheckSpec(
        name="functional.package",
        summary="A package is installed, optionally at a version satisfying a constraint.",
        metrics={"installed": BOOL, "version_ok": BOOL},
        params={
            "name": Param("str", "package name", required=True),
            "version": Param("str", 'version constraint, e.g. ">= 1.2" or ">= 1.2, < 2"', default=None),
            **HOST_PARAMS,
        },
    ),
    CheckSpec(
        name="functional.file",
        summary="A file is present, with expected content and permissions.",
        metrics={"exists": BOOL, "content_ok": BOOL, "mode_ok": BOOL, "owner_ok": BOOL},
        params={
            "path": Param("str", "absolute path on the host", required=True),
            "contains": Param("str", "text the file must contain", default=None),
            "regex": Param("str", "regular expression the content must match (searched)", default=None),
            "mode": Param("str", 'exact permission bits, e.g. "0640"', default=None),
            "max_mode": Param("str", 'no permission bits beyond these, e.g. "0640" (0600 passes)', default=None),
            "owner": Param("str", "owning user name", default=None),
            **HOST_PARAMS,
        },
    ),
    CheckSpec(
        name="functional.sysctl",
        summary="A kernel parameter (sysctl) has the expected value.",
        metrics={"value": COUNT, "match": BOOL},
        params={
            "key": Param("str", "sysctl key, e.g. net.ipv4.ip_forward", required=True),
            "value": Param("any", "expected value (compared as text); `match` is recorded when given",
                           default=None),
            **HOST_PARAMS,
        },
    ),
    CheckSpec(
        name="functional.time_sync",
        summary="The host's clock agrees with the harness's (and with NTP where chrony reports it).",
        metrics={"offset": TIME, "uncertainty": TIME, "ntp_offset": TIME, "synchronized": BOOL},
        params=dict(HOST_PARAMS),
    ),
    CheckSpec(
        name="functional.disk_free",
        summary="Enough free disk space on a path (default: the emulated site's data dir, else /).",
        metrics={"free": SIZE, "free_ratio": RATIO},
        params={"path": Param("str", "path on the host", default=None), **HOST_PARAMS},
    ),
    # -- API checks --------------------------------------------------------------------------------
    CheckSpec(
        name="functional.api",
        summary="An API call answers with the expected JSON fields, headers and content digest.",
        metrics={"status": COUNT, "latency": TIME, "json_mismatches": COUNT, "header_mismatches": COUNT,
                 "digest_ok": BOOL},
        params={
            "endpoint": _ENDPOINT,
            "path": Param("str", "path appended to the endpoint URL", default="/"),
            "method": Param("str", "HTTP method", default="GET"),
            "body": Param("any", "request body: a mapping or list is sent as JSON, a string as is", default=None),
            "headers": Param("dict", "request headers (values may use ${ENV} references)", default=None),
            "json": Param("dict", "expected JSON fields: dotted path -> value", default=None),
            "headers_expected": Param("dict", "response headers: name -> text the value must contain "
                                              "(case-insensitive), true (present) or false (absent)",
                                      default=None),
            "sha256": Param("str", "expected SHA-256 (hex) of the response body", default=None),
            "timeout": TIMEOUT,
            "ca_file": CA_FILE,
        },
    ),
    CheckSpec(
        name="functional.pos_roundtrip",
        summary="Reference POS workload: a sale POSTed to /pos/transactions can be read back.",
        metrics={"ok": BOOL, "latency": TIME, "status": COUNT},
        params={"endpoint": _ENDPOINT, "timeout": TIMEOUT,
                "amount": Param("number", "amount of the test sale", default=1.0)},
    ),
    CheckSpec(
        name="functional.cache_serves",
        summary="Reference cache workload: GET /content/{key} twice; the second answer is a cache HIT.",
        metrics={"served": BOOL, "hit": BOOL},
        params={"endpoint": _ENDPOINT, "timeout": TIMEOUT,
                "key": Param("str", "content key (default: a fresh key per run)", default=None),
                "hit_header": Param("str", "response header that tells a hit", default="X-Cache"),
                "hit_value": Param("str", "its value on a hit", default="HIT")},
    ),
    CheckSpec(
        name="functional.telemetry_accepted",
        summary="Reference telemetry workload: a reading POSTed to /telemetry is accepted.",
        metrics={"accepted": BOOL, "latency": TIME, "status": COUNT},
        params={"endpoint": _ENDPOINT, "timeout": TIMEOUT,
                "sensor": Param("str", "sensor name of the test reading", default="conformance-probe")},
    ),
]
