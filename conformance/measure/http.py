"""The one HTTP client: every way the harness talks HTTP to a site or to an emulator's control API.

    reply = request(url, method="POST", body=b"...", timeout=3)   # never raises for the network
    reply.status      # None when no answer came: then reply.kind and reply.error say why
    reply.kind        # measure.failures.classify: "timeout", "connection_refused", "tls", ...
    reply.elapsed     # seconds until the whole body was read (or until it failed)

Failures are data (a Reply with status None), so a probe can count them; `http_request` is the same
request for checks where a failure means "could not measure": it raises MeasurementError (the verdict
becomes `error`, not a wrong pass or fail). `Client` is a site's JSON API at a base URL, `call_json`
one JSON call to a control API that raises CallError with the server's own explanation.

urllib's timeout applies per socket operation, so a server that trickles bytes can hold a request
far longer than the timeout; every request runs in a worker thread and we stop waiting at the
deadline: every call has a hard overall timeout. Redirects are not followed (a check sees them).
`ca_file` verifies https against that bundle instead of the system's CAs.
"""

from __future__ import annotations

import http.client
import json
import queue
import ssl
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from ..model.errors import MeasurementError
from .failures import classify

MAX_BODY = 4 << 20
_NOT_JSON = object()


def header(headers: dict[str, str], name: str) -> str | None:
    """Case-insensitive header lookup."""
    low = name.lower()
    for key, value in headers.items():
        if key.lower() == low:
            return value
    return None


@dataclass
class Reply:
    """One request's outcome: an answer (status, headers, body) or a failure (status None, kind, error)."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    elapsed: float = 0.0  # seconds until the whole body was read, or until the request failed
    error: str | None = None  # "METHOD URL: what happened", when no answer came
    kind: str | None = None  # measure.failures.classify of what went wrong, when no answer came
    reason: str = ""  # the HTTP reason phrase of an answer; the failure's cause otherwise

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        return header(self.headers, name)

    def loads(self, empty: Any = _NOT_JSON) -> Any:
        """The body as JSON; ValueError when it is not JSON (an empty body is not, unless `empty` is given)."""
        if not self.body and empty is not _NOT_JSON:
            return empty
        return json.loads(self.body.decode("utf-8", "replace"))

    def json(self) -> Any:
        """The body as JSON; None when it is empty or not JSON."""
        try:
            return self.loads(empty=None)
        except ValueError:
            return None

    def describe(self) -> str:
        if self.status is None:
            return self.error or "no answer"
        text = self.body[:160].decode("utf-8", "replace").strip()
        return f"HTTP {self.status}" + (f" {text}" if text and not self.ok else "")

    def problem(self) -> str:
        """What went wrong, for a message: "" for a 2xx answer, the failure, or the status and body's start."""
        if self.status is None:
            return self.error or "no answer"
        return "" if self.ok else f"HTTP {self.status} {self.body[:120]!r}"

    def answered(self) -> Reply:
        """This reply, or MeasurementError when no answer came."""
        if self.status is None:
            raise MeasurementError(self.error or "no answer")
        return self


HttpResponse = Reply  # what http_request returns: always an answer


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a check sees the redirect itself
        return None


def request(url: str, *, method: str = "GET", timeout: float = 5.0, headers: dict | None = None,
            body: bytes | None = None, verify_tls: bool = True, max_body: int = MAX_BODY,
            ca_file: str | None = None) -> Reply:
    """One request with a hard overall deadline; a failure to get an answer is a Reply with status None."""
    started = time.perf_counter()

    def failed(kind: str, text: str, cause: str = "") -> Reply:
        return Reply(None, elapsed=time.perf_counter() - started, error=text, kind=kind, reason=cause or text)

    handlers: list[Any] = [_NoRedirect()]
    if url[:6].lower() == "https:":  # a TLS context costs ~30 ms (the system's CAs): only when it is used
        if not verify_tls:
            context = ssl._create_unverified_context()
        else:
            try:
                context = ssl.create_default_context(cafile=ca_file)
            except (OSError, ssl.SSLError) as exc:
                return failed("tls", f"ca_file {ca_file}: {exc}", str(exc))
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        prepared = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    except ValueError as exc:
        return failed("error", f"{method} {url}: {exc}", str(exc))

    def do() -> Reply:
        try:
            with opener.open(prepared, timeout=timeout) as resp:
                data = resp.read(max_body)
                return Reply(resp.status, dict(resp.headers.items()), data, time.perf_counter() - started,
                             reason=str(resp.reason or ""))
        except urllib.error.HTTPError as exc:  # 4xx/5xx are answers, not failures to measure
            data = exc.read(max_body) if exc.fp else b""
            return Reply(exc.code, dict(exc.headers.items()) if exc.headers else {}, data,
                         time.perf_counter() - started, reason=str(exc.reason or ""))

    # A daemon thread per request: a request stuck past its deadline must not keep the process
    # alive after Ctrl-C (executor threads are joined at exit).
    answers: queue.Queue = queue.Queue(maxsize=1)

    def worker() -> None:
        try:
            answers.put((True, do()))
        except BaseException as exc:  # noqa: BLE001 - a daemon thread: anything is handed to the caller below
            answers.put((False, exc))

    threading.Thread(target=worker, name="edge-http", daemon=True).start()
    try:
        ok, value = answers.get(timeout=timeout + 0.5)
    except queue.Empty:
        return failed("timeout", f"{method} {url}: no complete answer within {timeout:g} s", "timed out")
    if ok:
        return value
    if isinstance(value, urllib.error.URLError):
        reason = value.reason
        text = getattr(reason, "strerror", None) or str(reason)
        return failed(classify(value), f"{method} {url}: {text}", text)
    if isinstance(value, (OSError, ValueError, http.client.HTTPException)):
        return failed(classify(value), f"{method} {url}: {value}", str(value))
    raise value


def http_request(url: str, *, method: str = "GET", timeout: float = 5.0, headers: dict | None = None,
                 body: bytes | None = None, verify_tls: bool = True, max_body: int = MAX_BODY,
                 ca_file: str | None = None) -> HttpResponse:
    """request() for a check that cannot measure without an answer: a failure raises MeasurementError."""
    return request(url, method=method, timeout=timeout, headers=headers, body=body, verify_tls=verify_tls,
                   max_body=max_body, ca_file=ca_file).answered()


def send_json(url: str, *, method: str = "GET", body: Any = None, timeout: float = 5.0,
              headers: dict | None = None, max_body: int = MAX_BODY, ca_file: str | None = None) -> Reply:
    """request() with `body` sent as JSON (bytes are sent as they are, as JSON already encoded)."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    send = {"Content-Type": "application/json"} if data is not None else {}
    send.update(headers or {})
    return request(url, method=method, timeout=timeout, headers=send, body=data, max_body=max_body,
                   ca_file=ca_file)


class Client:
    """A site's JSON API at a base URL; every call has a timeout and returns a Reply."""

    def __init__(self, base: str, timeout: float, *, max_body: int = MAX_BODY, ca_file: str | None = None):
        self.base = base.rstrip("/")
        self.timeout = timeout
        self.max_body = max_body
        self.ca_file = ca_file

    def call(self, method: str, path: str, body: Any = None, headers: dict | None = None,
             timeout: float | None = None) -> Reply:
        return send_json(self.base + path, method=method, body=body, timeout=timeout or self.timeout,
                         headers=headers, max_body=self.max_body, ca_file=self.ca_file)

    def json(self, method: str, path: str, body: Any = None, what: str = "", **kw) -> Any:
        """A JSON answer, or MeasurementError saying which request failed and how."""
        r = self.call(method, path, body, **kw)
        value = r.json() if r.ok else None
        if value is None:
            raise MeasurementError(f"{what + ': ' if what else ''}{method} {self.base}{path} -> {r.describe()}")
        return value


class CallError(MeasurementError):
    """A JSON call (call_json) got no usable answer: `status` None (no answer, `kind` says why), an
    HTTP error (`status`, `detail` the server's own explanation), or an answer that is not JSON."""

    def __init__(self, message: str, *, status: int | None = None, kind: str | None = None, detail: str = ""):
        super().__init__(message)
        self.status, self.kind, self.detail = status, kind, detail


def call_json(method: str, url: str, body: Any = None, *, timeout: float = 10.0, max_body: int = 64 << 20,
              empty: Any = None) -> Any:
    """One JSON call to a control API (an emulator's supervisor or link daemon): the JSON answer
    (`empty` when the body is empty), else CallError; an error's `detail` is the answer's "error"."""
    r = send_json(url, method=method, body=body, timeout=timeout, max_body=max_body)
    if r.status is None:
        raise CallError(f"{method} {url}: no answer ({r.reason})", kind=r.kind, detail=r.reason)
    if not r.ok:
        try:
            detail = r.loads().get("error")
        except (ValueError, AttributeError):
            detail = None
        detail = str(detail or r.reason)
        raise CallError(f"{method} {url}: HTTP {r.status}: {detail}", status=r.status, detail=detail)
    try:
        return r.loads(empty)
    except ValueError as exc:
        raise CallError(f"{method} {url}: answer is not JSON ({exc})", status=r.status, kind="protocol",
                        detail=str(exc)) from None
