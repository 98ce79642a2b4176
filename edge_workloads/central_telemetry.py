"""Central's telemetry sink: merge condensed batches (or raw readings) into per-sensor window stats.

Raw readings (sent by the raw-telemetry defect) are folded into the same table, so the summary reads
the same either way and a check can compare readings counts and bytes received.
"""

from __future__ import annotations

import math
import sqlite3
import time
from typing import Any

from aiohttp import web

from .context import Site
from .jsonhttp import BadRequest, read_json, reply, require_object, require_site
from .store import transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS telemetry_batches (
    batch_id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    kind TEXT NOT NULL,          -- aggregates | raw
    items INTEGER NOT NULL,      -- aggregates or raw readings in the batch
    readings INTEGER NOT NULL,   -- raw readings the batch stands for
    bytes INTEGER NOT NULL,
    received REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS telemetry_agg (
    site TEXT NOT NULL,
    sensor TEXT NOT NULL,
    window_start REAL NOT NULL,
    window_s REAL NOT NULL,
    count INTEGER NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    sum REAL NOT NULL,
    PRIMARY KEY (site, sensor, window_start, window_s)
);
"""

RAW_WINDOW_S = 1.0   # central's own window for folding raw readings


class TelemetrySink:
    def __init__(self, site: Site):
        self.site = site
        site.metrics.counter("telemetry_batches_received_total", "Telemetry batches stored, by kind.")
        site.metrics.counter("telemetry_bytes_received_total", "Telemetry batch body bytes received.")

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/telemetry/batches", self.receive)
        app.router.add_get("/telemetry/summary", self.summary)

    async def receive(self, request: web.Request) -> web.Response:
        data, size = await read_json(request)
        batch = require_object(data)
        site_name = require_site(batch)
        batch_id, kind = batch.get("batch_id"), batch.get("kind")
        if not isinstance(batch_id, str) or not batch_id:
            raise BadRequest("batch_id: expected a string")
        if kind == "aggregates":
            rows = [_aggregate_row(site_name, require_object(a, "aggregates[]"))
                    for a in _list(batch, "aggregates")]
            items = len(rows)
        elif kind == "raw":
            readings = _list(batch, "readings")
            rows = [_raw_row(site_name, require_object(r, "readings[]")) for r in readings]
            items = len(readings)
        else:
            raise BadRequest('kind: expected "aggregates" or "raw"')
        meta = (batch_id, site_name, kind, items, sum(r[4] for r in rows), size, time.time())
        stored = await self.site.db.run(transaction, lambda c: _store(c, meta, rows))
        if stored:
            self.site.metrics.inc("telemetry_batches_received_total", kind=kind)
            self.site.metrics.inc("telemetry_bytes_received_total", size)
        return reply({"stored": stored, "duplicate": not stored})

    async def summary(self, request: web.Request) -> web.Response:
        site_name = request.query.get("site")

        def read(conn: sqlite3.Connection) -> dict[str, Any]:
            where, args = ("WHERE site = ?", (site_name,)) if site_name else ("", ())
            totals = {kind: (n, items, readings, size) for kind, n, items, readings, size in conn.execute(
                "SELECT kind, COUNT(*), SUM(items), SUM(readings), SUM(bytes) FROM telemetry_batches "
                f"{where} GROUP BY kind", args)}
            sensors = {sensor: {"count": count, "min": low, "max": high, "mean": total / count}
                       for sensor, count, low, high, total in conn.execute(
                           "SELECT sensor, SUM(count), MIN(min), MAX(max), SUM(sum) FROM telemetry_agg "
                           f"{where} GROUP BY sensor", args)}
            agg, raw = totals.get("aggregates", (0, 0, 0, 0)), totals.get("raw", (0, 0, 0, 0))
            return {"site": site_name, "batches": agg[0] + raw[0], "aggregates_received": agg[1],
                    "raw_readings_received": raw[1], "readings": agg[2] + raw[2],
                    "bytes_received": agg[3] + raw[3], "sensors": sensors}

        return reply(await self.site.db.run(read))


def _list(batch: dict[str, Any], field: str) -> list[Any]:
    value = batch.get(field)
    if not isinstance(value, list):
        raise BadRequest(f"{field}: expected a list")
    return value


def _number(item: dict[str, Any], field: str) -> float:
    value = item.get(field)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadRequest(f"{field}: expected a number")
    return value


def _aggregate_row(site_name: str, a: dict[str, Any]) -> tuple:
    count = _number(a, "count")
    if count < 1 or count != int(count):
        raise BadRequest("count: expected a whole number >= 1")
    total = _number(a, "sum") if "sum" in a else _number(a, "mean") * count
    return (site_name, str(a.get("sensor")), _number(a, "window_start"), _number(a, "window_s"),
            int(count), _number(a, "min"), _number(a, "max"), total)


def _raw_row(site_name: str, r: dict[str, Any]) -> tuple:
    value, ts = _number(r, "value"), _number(r, "ts")
    return (site_name, str(r.get("sensor")), math.floor(ts / RAW_WINDOW_S) * RAW_WINDOW_S, RAW_WINDOW_S,
            1, value, value, value)


def _store(conn: sqlite3.Connection, meta: tuple, rows: list[tuple]) -> bool:
    before = conn.total_changes
    conn.execute("INSERT OR IGNORE INTO telemetry_batches (batch_id, site, kind, items, readings, bytes, "
                 "received) VALUES (?, ?, ?, ?, ?, ?, ?)", meta)
    if conn.total_changes == before:
        return False   # a batch resent after a lost acknowledgement: already counted
    conn.executemany(
        "INSERT INTO telemetry_agg (site, sensor, window_start, window_s, count, min, max, sum) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, sensor, window_start, window_s) DO UPDATE SET "
        "count = count + excluded.count, min = MIN(min, excluded.min), max = MAX(max, excluded.max), "
        "sum = sum + excluded.sum", rows)
    return True
