"""One HTTP request with a hard overall timeout.

urllib's timeout applies per socket operation, so a server that trickles bytes can hold a request
far longer than the timeout; we run the request in a worker thread and stop waiting at the deadline.
A network failure raises MeasurementError (the verdict becomes `error`, not a wrong pass or fail).
"""

from __future__ import annotations

import queue
import ssl
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from ..model.errors import MeasurementError



@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float  # seconds until the whole body was read


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a check sees the redirect itself
        return None


def http_request(url: str, *, method: str = "GET", timeout: float = 5.0, headers: dict | None = None,
                 body: bytes | None = None, verify_tls: bool = True, max_body: int = 4 << 20,
                 ca_file: str | None = None) -> HttpResponse:
    """`ca_file` verifies https against that bundle instead of the system's CAs."""
    if not verify_tls:
        context = ssl._create_unverified_context()
    else:
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
        except urllib.error.HTTPError as exc:  # 4xx/5xx are answers, not failures to measure
            data = exc.read(max_body) if exc.fp else b""
            return HttpResponse(exc.code, dict(exc.headers.items()) if exc.headers else {}, data,
                                time.perf_counter() - started)

    # A daemon thread per request: a request stuck past its deadline must not keep the process
    # alive after Ctrl-C (executor threads are joined at exit).
    answers: queue.Queue = queue.Queue(maxsize=1)

    def worker() -> None:
        try:
            answers.put((True, do()))
        except BaseException as exc:  # handed to the caller below
            answers.put((False, exc))

    threading.Thread(target=worker, name="edge-http", daemon=True).start()
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
        text = getattr(reason, "strerror", None) or str(reason)
        raise MeasurementError(f"{method} {url}: {text}") from None
    except (OSError, ValueError) as exc:
        raise MeasurementError(f"{method} {url}: {exc}") from None
