"""IoT telemetry at the edge: ingest raw readings, aggregate per sensor per window, ship the aggregates.

White paper use cases 1 and 7: shipping every reading to a central analytics engine wastes WAN
bandwidth, so the site condenses readings into count/min/max/mean per sensor per telemetry_window_s
and sends only those. Closed windows go to a durable outbox first, so a partition delays them but
does not lose them. Raw bytes ingested and WAN bytes sent are both counted, to make the saving visible.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from typing import Any

from aiohttp import web

from .context import Site
from .jsonhttp import BadRequest, read_json, reply
from .privacy import anonymise, is_local_only
from .store import transaction
from .wan import CentralClient, WanError

SCHEMA = """
CREATE TABLE IF NOT EXISTS telemetry_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    body BLOB NOT NULL,          -- the JSON batch exactly as it will be POSTed
    readings INTEGER NOT NULL    -- raw readings the batch stands for
);
"""

MAX_BATCHES_PER_TICK = 20   # bounds one tick's work after a long partition


class TelemetryService:
    def __init__(self, site: Site, central: CentralClient, privacy_secret: bytes):
        self.site = site
        self.central = central
        self.secret = privacy_secret
        self.raw = site.has("raw-telemetry")
        # (sensor, window_start, window_s) -> [count, min, max, sum]
        self._buckets: dict[tuple[str, float, float], list[float]] = {}
        self._raw_readings: list[dict[str, Any]] = []
        self.readings = 0
        self.raw_bytes = 0
        self.local_only_readings = 0
        self.batches_sent = 0
        self.readings_sent = 0
        self.pending_batches = 0
        m = site.metrics
        m.counter("raw_bytes_ingested_total", "Telemetry body bytes received from sensors.")
        m.counter("telemetry_readings_ingested_total", "Telemetry readings received.")
        m.counter("telemetry_batches_sent_total", "Telemetry batches acknowledged by central.")
        m.gauge("telemetry_batches_pending", "Telemetry batches waiting in the outbox.",
                lambda: self.pending_batches)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/telemetry", self.ingest)
        app.router.add_get("/telemetry/stats", self.stats)

    async def start(self) -> None:
        self.pending_batches = await self.site.db.run(
            lambda c: c.execute("SELECT COUNT(*) FROM telemetry_outbox").fetchone()[0])
        self.site.background.every("telemetry-shipper", lambda: self.site.settings.telemetry_window_s,
                                   self._tick)

    async def stop(self) -> None:
        await self._close_windows(everything=True)   # a clean stop keeps the open windows

    async def ingest(self, request: web.Request) -> web.Response:
        body, size = await read_json(request)
        readings = body if isinstance(body, list) else [body]
        now = time.time()
        checked = [_validate(reading, index, now) for index, reading in enumerate(readings)]
        self.raw_bytes += size
        self.readings += len(checked)
        self.site.metrics.inc("raw_bytes_ingested_total", size)
        self.site.metrics.inc("telemetry_readings_ingested_total", len(checked))
        leak = self.site.has("leak-personal")
        window = self.site.settings.telemetry_window_s or 1.0
        for reading in checked:
            if is_local_only(reading) and not leak:
                self.local_only_readings += 1
                continue
            if self.raw:   # the defect: keep every reading for shipping as it is
                self._raw_readings.append(reading if leak else anonymise(
                    reading, self.secret, self.site.settings.personal_fields))
                continue
            start = math.floor(reading["ts"] / window) * window
            bucket = self._buckets.get((reading["sensor"], start, window))
            value = reading["value"]
            if bucket is None:
                self._buckets[(reading["sensor"], start, window)] = [1, value, value, value]
            else:
                bucket[0] += 1
                bucket[1] = min(bucket[1], value)
                bucket[2] = max(bucket[2], value)
                bucket[3] += value
        return reply({"accepted": len(checked)}, status=202)

    async def stats(self, _request: web.Request) -> web.Response:
        return reply({
            "raw_readings": self.readings,
            "raw_bytes_ingested": self.raw_bytes,
            "wan_bytes_sent": int(self.site.metrics.value("wan_bytes_sent_total", channel="telemetry")),
            "batches_sent": self.batches_sent,
            "batches_pending": self.pending_batches,
            "readings_sent": self.readings_sent,
            "local_only_readings": self.local_only_readings,
            "window_s": self.site.settings.telemetry_window_s,
            "mode": "raw" if self.raw else "aggregates",
        })

    async def _tick(self) -> None:
        await self._close_windows(everything=False)
        await self._ship()

    async def _close_windows(self, everything: bool) -> None:
        """Move finished windows (or raw readings) into the durable outbox as one batch."""
        now = time.time()
        if self.raw:
            readings, self._raw_readings = self._raw_readings, []
            if readings:
                await self._enqueue({"kind": "raw", "readings": readings}, len(readings))
            return
        done = [k for k in self._buckets if everything or k[1] + k[2] <= now]
        if not done:
            return
        aggregates = []
        for key in sorted(done, key=lambda k: (k[1], k[0])):
            count, low, high, total = self._buckets.pop(key)
            aggregates.append({"sensor": key[0], "window_start": round(key[1], 6), "window_s": key[2],
                               "count": count, "min": low, "max": high, "mean": total / count, "sum": total})
        await self._enqueue({"kind": "aggregates", "aggregates": aggregates},
                            sum(a["count"] for a in aggregates))

    async def _enqueue(self, batch: dict[str, Any], readings: int) -> None:
        batch = {"site": self.site.name, "batch_id": f"{self.site.name}/{uuid.uuid4().hex}", **batch}
        body = json.dumps(batch, separators=(",", ":")).encode()
        await self.site.db.run(lambda c: c.execute(
            "INSERT INTO telemetry_outbox (body, readings) VALUES (?, ?)", (body, readings)))
        self.pending_batches += 1

    async def _ship(self) -> None:
        for _ in range(MAX_BATCHES_PER_TICK if self.pending_batches else 0):   # idle sites stay idle
            row = await self.site.db.run(lambda c: c.execute(
                "SELECT seq, body, readings FROM telemetry_outbox ORDER BY seq LIMIT 1").fetchone())
            if row is None:
                return
            try:
                answer = await self.central.call("POST", "/telemetry/batches", channel="telemetry",
                                                 body=bytes(row[1]))
            except WanError:
                return   # stays in the outbox; the next tick retries
            if answer.status >= 300:
                return
            await self.site.db.run(transaction, lambda c, seq=row[0]: c.execute(
                "DELETE FROM telemetry_outbox WHERE seq = ?", (seq,)))
            self.pending_batches -= 1
            self.batches_sent += 1
            self.site.metrics.inc("telemetry_batches_sent_total")
            self.readings_sent += row[2]


def _validate(reading: Any, index: int, now: float) -> dict[str, Any]:
    where = f"reading {index}: "
    if not isinstance(reading, dict):
        raise BadRequest(where + "expected an object {sensor, value, ts?}")
    sensor, value, ts = reading.get("sensor"), reading.get("value"), reading.get("ts", now)
    if not isinstance(sensor, str) or not sensor:
        raise BadRequest(where + "sensor: expected a non-empty string")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadRequest(where + "value: expected a number")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
        raise BadRequest(where + "ts: expected seconds since the epoch")
    # A reading from the future would hold its window open; place it at arrival time instead.
    return {**reading, "ts": min(ts, now)}
