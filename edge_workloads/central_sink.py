"""Central's transaction sink: store forwarded POS records exactly once per idempotency key.

The summary (count, duplicates rejected, digest) lets a check compare central with what each edge says
it created (GET {edge}/pos/summary): equal digests mean nothing was lost, duplicated or altered.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from aiohttp import web

from .context import Site
from .digest import canonical_json, payload_digest, summary_digest
from .jsonhttp import BadRequest, read_json, reply, require_object, require_site
from .store import transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS sink_tx (
    key TEXT PRIMARY KEY,         -- idempotency key sent by the edge
    site TEXT NOT NULL,
    id TEXT NOT NULL,
    payload TEXT NOT NULL,        -- canonical JSON as received
    payload_digest TEXT NOT NULL,
    received REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sink_tx_site ON sink_tx (site, id);
CREATE TABLE IF NOT EXISTS sink_tx_stats (
    site TEXT PRIMARY KEY,
    duplicates_rejected INTEGER NOT NULL DEFAULT 0
);
"""


class TransactionSink:
    def __init__(self, site: Site):
        self.site = site
        site.metrics.counter("sink_records_total", "POS records stored at central.")
        site.metrics.counter("sink_duplicates_total", "POS records rejected as duplicates.")

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/sink/transactions", self.receive)
        app.router.add_get("/sink/transactions/summary", self.summary)
        app.router.add_get("/sink/transactions", self.list)

    async def receive(self, request: web.Request) -> web.Response:
        body = require_object((await read_json(request))[0])
        site_name = require_site(body)
        records = body.get("records")
        if not isinstance(records, list):
            raise BadRequest("records: expected a list")
        rows = [_row(site_name, require_object(item, f"records[{i}]"), i) for i, item in enumerate(records)]
        accepted, duplicates = await self.site.db.run(transaction, lambda c: _store(c, site_name, rows))
        self.site.metrics.inc("sink_records_total", accepted)
        self.site.metrics.inc("sink_duplicates_total", duplicates)
        return reply({"accepted": accepted, "duplicates": duplicates})

    async def summary(self, request: web.Request) -> web.Response:
        site_name = request.query.get("site")

        def read(conn: sqlite3.Connection) -> dict[str, Any]:
            where, args = ("WHERE site = ?", (site_name,)) if site_name else ("", ())
            entries = conn.execute(f"SELECT id, payload_digest FROM sink_tx {where}", args).fetchall()
            dup = conn.execute(f"SELECT COALESCE(SUM(duplicates_rejected), 0) FROM sink_tx_stats {where}",
                               args).fetchone()[0]
            return {"site": site_name, "count": len(entries), "duplicates_rejected": dup,
                    "digest": summary_digest(entries)}

        return reply(await self.site.db.run(read))

    async def list(self, request: web.Request) -> web.Response:
        site_name = request.query.get("site")
        try:
            limit = int(request.query.get("limit", "1000"))
        except ValueError:
            raise BadRequest("limit: expected a whole number") from None
        where, args = ("WHERE site = ?", (site_name,)) if site_name else ("", ())
        rows = await self.site.db.run(lambda c: c.execute(
            f"SELECT key, site, id, payload, received FROM sink_tx {where} ORDER BY received, key LIMIT ?",
            (*args, limit)).fetchall())
        return reply({"records": [{"key": k, "site": s, "id": i, "record": json.loads(p), "received": r}
                                  for k, s, i, p, r in rows]})


def _row(site_name: str, item: dict[str, Any], index: int) -> tuple:
    key, record_id, record = item.get("key"), item.get("id"), item.get("record")
    if not isinstance(key, str) or not key:
        raise BadRequest(f"records[{index}].key: expected an idempotency key")
    if not isinstance(record_id, str) or not record_id:
        raise BadRequest(f"records[{index}].id: expected a record id")
    return key, site_name, record_id, canonical_json(record).decode(), payload_digest(record), time.time()


def _store(conn: sqlite3.Connection, site_name: str, rows: list[tuple]) -> tuple[int, int]:
    before = conn.total_changes
    conn.executemany("INSERT OR IGNORE INTO sink_tx (key, site, id, payload, payload_digest, received) "
                     "VALUES (?, ?, ?, ?, ?, ?)", rows)
    accepted = conn.total_changes - before
    duplicates = len(rows) - accepted
    if duplicates:
        conn.execute("INSERT INTO sink_tx_stats (site, duplicates_rejected) VALUES (?, ?) ON CONFLICT(site) "
                     "DO UPDATE SET duplicates_rejected = duplicates_rejected + excluded.duplicates_rejected",
                     (site_name, duplicates))
    return accepted, duplicates
