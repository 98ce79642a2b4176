"""The JSON APIs a check talks to: the site's own endpoint and its uplink's (its central site), as
measure.http Clients with the check's operation timeout (`op_timeout`, else 3 s)."""

from __future__ import annotations

from typing import Any

from ..model.errors import MeasurementError
from .http import MAX_BODY, Client


def site_client(edge, timeout: float | None = None, *, max_body: int = MAX_BODY) -> Client:
    """The site's `endpoint` (else `api`); `timeout` defaults to the check's op_timeout, else 3 s."""
    return Client(edge.endpoint(edge.params.get("endpoint") or "api"),
                  timeout or edge.params.get("op_timeout") or 3.0, max_body=max_body)


def central_client(edge, timeout: float | None = None, *, max_body: int = MAX_BODY) -> tuple[Any, Client]:
    """(the site's uplink, a client of its `central_endpoint`, else `api`); MeasurementError without one."""
    uplink = edge.site.uplink
    if not uplink:
        raise MeasurementError(f"site {edge.site.name} has no uplink in target {edge.target.name}: "
                               "cannot reach its central site")
    try:
        central = edge.target.site(uplink)
        url = central.endpoint(edge.params.get("central_endpoint") or "api")
    except LookupError as exc:
        raise MeasurementError(str(exc)) from None
    return central, Client(url, timeout or edge.params.get("op_timeout") or 3.0, max_body=max_body)
