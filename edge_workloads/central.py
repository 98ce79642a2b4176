"""The central site: origin content, sinks for what edges forward, registry, config and token issuer."""

from __future__ import annotations

from . import central_origin, central_sink, central_telemetry
from .central_auth import TokenIssuer
from .central_origin import Origin
from .central_registry import Registry
from .central_sink import TransactionSink
from .central_telemetry import TelemetrySink
from .context import Site

SCHEMA = central_origin.SCHEMA + central_sink.SCHEMA + central_telemetry.SCHEMA


def build(site: Site) -> tuple[str, list[object]]:
    """(database schema, services); each service may have add_routes(app), start() and stop()."""
    return SCHEMA, [Origin(site), TransactionSink(site), TelemetrySink(site), Registry(site), TokenIssuer(site)]
