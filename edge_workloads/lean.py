"""Trim what a site process loads, before aiohttp is imported (the harness may run 50 sites at once).

Sites speak plain HTTP on 127.0.0.1 only (--central-url must be http://), yet importing aiohttp loads
OpenSSL and builds two TLS client contexts, and loads the brotli codec. Hiding the `ssl` and `brotli`
modules makes aiohttp take its documented "no ssl"/"no brotli" paths: measured on one idle edge, RSS
40.4 -> ~36 MiB and start-up 0.1 s faster. Any attempt at TLS then fails loudly instead of
half-working.

A site with a management interface (--mgmt-port, TLS) keeps `ssl` and pays that cost.

Only the site process's own main() calls this; a harness importing these modules keeps its
interpreter untouched.
"""

from __future__ import annotations

import sys

HIDDEN_MODULES = ("ssl", "brotli", "brotlicffi")


def prepare_site_process(tls: bool = False) -> None:
    """`tls`: the site serves its management interface over TLS (mgmt.py), so `ssl` stays."""
    if "aiohttp" in sys.modules or "ssl" in sys.modules:
        return   # too late to matter, and not our interpreter to change
    for name in HIDDEN_MODULES:
        if tls and name == "ssl":
            continue
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` raise ImportError
