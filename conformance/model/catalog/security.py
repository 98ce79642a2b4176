"""Checks of the security suite: what listens, how management is protected, what leaks."""

from . import CheckSpec, Param
from .common import CA_FILE, HOST_PARAMS, PROCESS, TIMEOUT
from ..units import BOOL, COUNT


CHECKS = [
    CheckSpec(
        name="security.listening_ports",
        summary="Nothing listens on the site's hosts beyond an allowlist (and the site's declared endpoints).",
        metrics={"unexpected": COUNT, "listening": COUNT},
        params={
            "allow": Param("list", 'allowed ports: 22, "22/tcp", "53/udp"', default=None),
            "allow_endpoints": Param("bool", "the ports of the site's declared endpoints are allowed", default=True),
            "proto": Param("str", "tcp, udp or both", default="both"),
            "ignore_loopback": Param("bool", "ignore sockets bound only to loopback", default=False),
            "process": PROCESS,
            **HOST_PARAMS,
        },
    ),
    CheckSpec(
        name="security.tls",
        summary="A management endpoint is served only over TLS >= 1.2 with a valid, not-expiring certificate.",
        metrics={"tls_version_ok": BOOL, "cert_valid": BOOL, "days_to_expiry": COUNT, "expiry_ok": BOOL,
                 "plain_http_refused": BOOL},
        params={
            "endpoint": Param("str", "name of the management endpoint; skipped when the site does not "
                                     "declare it", default="mgmt"),
            "ca_file": Param("str", "CA bundle to verify the certificate with (default: the site's ca_file, "
                                    "else system CAs)", default=None),
            "server_name": Param("str", "name the certificate must be valid for (default: the URL's host)",
                                 default=None),
            "min_days": Param("int", "expiry_ok is true when the certificate is valid at least this long",
                              default=30),
            "timeout": TIMEOUT,
        },
    ),
    CheckSpec(
        name="security.default_credentials",
        summary="No default or empty credentials are accepted by the site's HTTP basic-auth endpoints.",
        metrics={"accepted_defaults": COUNT, "tried": COUNT, "protected": COUNT},
        params={
            "endpoints": Param("list", "names of the site's endpoints to try (default: every http(s) "
                                       "endpoint); only declared endpoints are ever tried", default=None),
            "path": Param("str", "path that asks for credentials", default="/"),
            "pairs": Param("list", 'credentials to try instead of the built-in list, "user:password" '
                                   "(at most 10)", default=None),
            "delay": Param("duration", "pause between attempts", default="0.3 s"),
            "timeout": TIMEOUT,
            "ca_file": CA_FILE,
        },
    ),
    CheckSpec(
        name="security.secret_files",
        summary="No world-readable secret files (keys, tokens, .env ...) under the given paths.",
        metrics={"world_readable": COUNT, "scanned": COUNT},
        params={
            "paths": Param("list", "directories to scan (default: the emulated site's data dir); "
                                   "skipped when none", default=None),
            "patterns": Param("list", "file name patterns (shell globs) of secrets",
                              default=["*.key", "*.pem", "*token*", "*secret*", "*.env", ".env", "*.p12",
                                       "*.pfx", "id_rsa*", "id_ed25519*"]),
            "max_files": Param("int", "stop after looking at this many files (error when reached)",
                               default=200000),
            **HOST_PARAMS,
        },
    ),
    CheckSpec(
        name="security.http_headers",
        summary="An HTTP endpoint sends security headers and does not leak its server software's version.",
        metrics={"missing": COUNT, "version_leaks": COUNT},
        params={
            "endpoint": Param("str", "name of the site endpoint; skipped when the site does not declare it",
                              default="api"),
            "path": Param("str", "path to request", default="/"),
            "required": Param("list", "headers that must be present (Strict-Transport-Security is added "
                                      "for https)", default=["X-Content-Type-Options"]),
            "hsts": Param("bool", "require Strict-Transport-Security on https endpoints", default=True),
            "timeout": TIMEOUT,
            "ca_file": CA_FILE,
        },
    ),
]
