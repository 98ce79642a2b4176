"""The JSON APIs a check talks to: the site's own endpoint and its uplink's (its central site), as
measure.http Clients with the check's operation timeout (`op_timeout`, else 3 s)."""

from __future__ import annotations

from typing import Any

from ..model.errors import MeasurementError
from .http import Client


def site_client(edge) -> Client:
    return Client(edge.endpoint(edge.params.get("endpoint") or "api"), edge.params.get("op_timeout") or 3.0)


def central_client(edge) -> tuple[Any, Client]:
    """(the site's uplink, a client of its `central_endpoint`, else `api`); MeasurementError without one."""
    uplink = edge.site.uplink
    if not uplink:
        raise MeasurementError(f"site {edge.site.name} has no uplink in target {edge.target.name}: "
                               "cannot reach its central site")
    central = edge.target.site(uplink)
    name = edge.params.get("central_endpoint") or "api"
    try:
        url = central.endpoint(name)
    except LookupError as exc:
        raise MeasurementError(str(exc)) from None
    return central, Client(url, edge.params.get("op_timeout") or 3.0)
