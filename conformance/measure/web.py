"""HTTP helpers for API and security checks: requests with a CA file, header and credential probes.

Built on measure.http's approach (a hard overall deadline, a network failure is a MeasurementError),
with what these checks need in addition: a CA bundle for https endpoints, basic-auth attempts, and
a look at headers that leak the server's software version.
"""

from __future__ import annotations

import base64
import queue
import re
import ssl
import threading
import time
import urllib.error
import urllib.request

from ..model.errors import MeasurementError
from .http import HttpResponse, http_request


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(url: str, *, method: str = "GET", timeout: float = 5.0, headers: dict | None = None,
          body: bytes | None = None, ca_file: str | None = None, max_body: int = 4 << 20) -> HttpResponse:
    """One request with a hard deadline; `ca_file` verifies https against that bundle."""
    if not ca_file:
        return http_request(url, method=method, timeout=timeout, headers=headers, body=body, max_body=max_body)
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise MeasurementError(f"ca_file {ca_file}: {exc}") from None
    opener = urllib.request.build_opener(_NoRedirect(), urllib.request.HTTPSHandler(context=context))
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})

    def do() -> HttpResponse:
        started = time.perf_counter()
        try:
            with opener.open(request, timeout=timeout) as resp:
                data = resp.read(max_body)
                return HttpResponse(resp.status, dict(resp.headers.items()), data, time.perf_counter() - started)
        except urllib.error.HTTPError as exc:
            data = exc.read(max_body) if exc.fp else b""
            return HttpResponse(exc.code, dict(exc.headers.items()) if exc.headers else {}, data,
                                time.perf_counter() - started)

    # A daemon thread per request, like measure.http: a request stuck past its deadline must not
    # keep the process alive at exit.
    answers: queue.Queue = queue.Queue(maxsize=1)

    def worker() -> None:
        try:
            answers.put((True, do()))
        except BaseException as exc:  # handed to the caller below
            answers.put((False, exc))

    threading.Thread(target=worker, name="edge-web", daemon=True).start()
    try:
        ok, value = answers.get(timeout=timeout + 0.5)
    except queue.Empty:
        raise MeasurementError(f"{method} {url}: no complete answer within {timeout:g} s") from None
    try:
        if ok:
            return value
        raise value
    except urllib.error.URLError as exc:
        reason = exc.reason
        raise MeasurementError(f"{method} {url}: {getattr(reason, 'strerror', None) or reason}") from None
    except (OSError, ValueError) as exc:
        raise MeasurementError(f"{method} {url}: {exc}") from None


def header(headers: dict[str, str], name: str) -> str | None:
    """Case-insensitive header lookup."""
    low = name.lower()
    for key, value in headers.items():
        if key.lower() == low:
            return value
    return None


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
