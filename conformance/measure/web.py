"""HTTP helpers for API and security checks: requests with a CA file, header and credential probes.

Requests go through measure.http, the one HTTP client (a hard overall deadline, a network failure is a
MeasurementError here, an optional CA bundle for https); this module adds header checks, basic-auth
attempts and a look at headers that leak the server's software version.
"""

from __future__ import annotations

import base64
import re

from .http import HttpResponse, header, http_request


fetch = http_request  # one request with a hard deadline; `ca_file` verifies https against that bundle


def header_mismatches(headers: dict[str, str], expected: dict) -> list[str]:
    """expected: name -> text the value must contain (case-insensitive), True (present), False (absent)."""
    problems = []
    for name, want in expected.items():
        got = header(headers, name)
        if want is False or want is None:
            if got is not None:
                problems.append(f"header {name} present ({got!r}), expected absent")
        elif want is True:
            if got is None:
                problems.append(f"header {name} missing")
        elif got is None:
            problems.append(f"header {name} missing, expected it to contain {str(want)!r}")
        elif str(want).lower() not in got.lower():
            problems.append(f"header {name} = {got!r}, expected it to contain {str(want)!r}")
    return problems


_VERSION = re.compile(r"[A-Za-z][\w.-]*/v?\d+(?:\.\d+)*|\b\d+\.\d+(?:\.\d+)*\b")
LEAKY_HEADERS = ("Server", "X-Powered-By", "X-AspNet-Version", "X-AspNetMvc-Version", "X-Runtime-Version")


def version_leaks(headers: dict[str, str]) -> list[str]:
    """Headers that name software with a version number (Server: nginx/1.25.3, Python/3.11 aiohttp/3.9)."""
    leaks = []
    for name in LEAKY_HEADERS:
        value = header(headers, name)
        if value and _VERSION.search(value):
            leaks.append(f"{name}: {value}")
    return leaks


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def asks_for_basic_auth(response: HttpResponse) -> bool:
    challenge = header(response.headers, "WWW-Authenticate") or ""
    return response.status == 401 and "basic" in challenge.lower()
