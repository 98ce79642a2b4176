"""A blocking JSON-over-HTTP call with a timeout (stdlib only), for talking to a supervisor."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any


class ControlError(RuntimeError):
    """The control API answered with an error, or did not answer in time."""

    def __init__(self, message: str, status: int | None = None):
        self.status = status
        super().__init__(message)


def call(method: str, url: str, body: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error")
        except (ValueError, AttributeError, OSError):
            message = None
        raise ControlError(f"{method} {url}: HTTP {exc.code}: {message or exc.reason}", exc.code) from None
    except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ControlError(f"{method} {url}: no answer ({reason})") from None
    except ValueError as exc:
        raise ControlError(f"{method} {url}: answer is not JSON ({exc})") from None
