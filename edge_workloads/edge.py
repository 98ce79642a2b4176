"""An edge site: the parts of the white paper's edge, wired to one central through the WAN client."""

from __future__ import annotations

from . import edge_cache, edge_pos, edge_telemetry
from .context import Site
from .edge_auth import EdgeAuth
from .edge_cache import ContentCache
from .edge_control import EdgeControl
from .edge_pos import PosService
from .edge_telemetry import TelemetryService
from .privacy import load_site_secret
from .wan import CentralClient, WanError

SCHEMA = edge_pos.SCHEMA + edge_cache.SCHEMA + edge_telemetry.SCHEMA


def build(site: Site) -> tuple[str, list[object]]:
    """(database schema, services); each service may have add_routes(app), start() and stop()."""
    assert site.options.central_url, "an edge site needs --central-url"
    central = CentralClient(site, site.options.central_url)
    secret = load_site_secret(site.options.data_dir, world_readable=site.has("world-readable-key"))
    if site.has("health-waits-on-wan"):
        site.health_checks.append(_central_reachable(central))
    return SCHEMA, [
        central,   # first: started before and stopped after everything that calls central
        PosService(site, central, secret),
        ContentCache(site, central),
        TelemetryService(site, central, secret),
        EdgeAuth(site, central),
        EdgeControl(site, central),
    ]


def _central_reachable(central: CentralClient):
    """The health-waits-on-wan defect: /health that checks a remote dependency (central, over the WAN)
    before answering. It answers only when that call returns or times out (wan_timeout_s), and 503
    when central cannot be reached, so a WAN cut makes an autonomous site look down to every local
    probe and load balancer. resilience.partition's steady probe must see availability drop."""
    async def check() -> str | None:
        try:
            answer = await central.call("GET", "/ping", channel="control")
        except WanError as exc:
            return f"central: {exc}"
        return None if answer.status == 200 else f"central: GET /ping answered {answer.status}"
    return check
