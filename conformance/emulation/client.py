"""The CLI's and the deployment code's JSON call to a supervisor or link daemon: measure.http.call_json
(the one HTTP client, a hard overall timeout) with its failures as ControlError."""

from __future__ import annotations

from typing import Any

from ..measure.http import CallError, call_json


class ControlError(RuntimeError):
    """The control API answered with an error, or did not answer in time."""

    def __init__(self, message: str, status: int | None = None):
        self.status = status
        super().__init__(message)


def call(method: str, url: str, body: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
    try:
        return call_json(method, url, body, timeout=timeout)
    except CallError as exc:
        raise ControlError(str(exc), exc.status) from None
