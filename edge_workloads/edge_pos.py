"""Point-of-sale at the edge: store locally and durably, answer at once, forward to central later.

White paper use case 8: a store's tills must keep selling with no connectivity. A sale is committed
to SQLite (WAL, fsync) before the 201, then a store-and-forward loop ships pending sales to central in
batches. Every sale carries an idempotency key ("<site>/<id>") so central stores it exactly once however
often a lost acknowledgement makes us resend.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import time
import uuid
from urllib.parse import quote
from typing import Any

from aiohttp import web

from .context import Site, log
from .digest import canonical_json, payload_digest, summary_digest
from .jsonhttp import BadRequest, error, read_json, reply, require_object
from .privacy import anonymise, is_local_only
from .store import GroupCommit, transaction
from .wan import CentralClient, WanError

SCHEMA = """
CREATE TABLE IF NOT EXISTS pos_tx (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    record TEXT NOT NULL,     -- as kept at the site, personal data included; never leaves
    outbound TEXT,            -- canonical JSON central receives (anonymised); NULL when local_only
    state TEXT NOT NULL,      -- pending | forwarded | local | dropped
    forwarded_at REAL
);
CREATE INDEX IF NOT EXISTS pos_tx_state ON pos_tx (state, seq);
"""

STATES = ("pending", "forwarded", "local", "dropped")
SEND_BUFFER_BYTES = 256 * 1024   # unbounded-backlog defect: what each sale keeps in memory
# Fields the site sets on every record; the rest is the till's request as sent.
SITE_FIELDS = ("site", "created_at")


class PosService:
    def __init__(self, site: Site, central: CentralClient, privacy_secret: bytes):
        self.site = site
        self.central = central
        self.secret = privacy_secret
        self.counts = dict.fromkeys(STATES, 0)
        self.last_forward_ok: float | None = None
        self.last_forward_error: str | None = None
        self.forward_failures = 0
        self._wake = asyncio.Event()
        self._writer = GroupCommit(site.db, _insert)
        # no-fsync defect: acknowledged sales that only live in memory until the lazy writer runs.
        self._unwritten: dict[str, tuple] = {}
        # unbounded-backlog defect: a send buffer per sale made while central is unreachable, kept for good
        self._send_buffers: list[bytes] = []
        m = site.metrics
        m.counter("pos_transactions_total", "POS transactions accepted.")
        m.counter("pos_forwarded_total", "POS transactions acknowledged by central.")
        m.counter("pos_dropped_total", "POS transactions dropped (drop-on-partition defect).")
        m.counter("pos_forward_failures_total", "Failed forwarding attempts.")
        m.gauge("pos_pending_forwards", "POS transactions waiting to be forwarded.", lambda: self.pending)
        m.gauge("pos_local_only", "POS transactions that never leave the site.", lambda: self.counts["local"])
        site.status_fields["pending_forwards"] = lambda: self.pending

    @property
    def pending(self) -> int:
        return self.counts["pending"] + len(self._unwritten)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/pos/transactions", self.create)
        app.router.add_get("/pos/transactions/{id}", self.get)
        app.router.add_get("/pos/status", self.status)
        app.router.add_get("/pos/summary", self.summary)

    async def start(self) -> None:
        rows = await self.site.db.run(
            lambda c: c.execute("SELECT state, COUNT(*) FROM pos_tx GROUP BY state").fetchall())
        self.counts.update(dict(rows))
        self.site.background.run("pos-forwarder", self._forward_loop)
        if self.site.has("no-fsync"):
            self.site.background.every("pos-lazy-writer", lambda: self.site.settings.lazy_write_delay_s,
                                       self._write_lazily)

    async def stop(self) -> None:
        await self._write_unwritten()   # a clean stop keeps even the no-fsync defect's sales

    # --- handlers -------------------------------------------------------------------------------

    async def create(self, request: web.Request) -> web.Response:
        body, _size = await read_json(request)
        sale = _validate(require_object(body))
        record = {**sale, "site": self.site.name, "created_at": round(time.time(), 6)}
        leak = self.site.has("leak-personal")
        local_only = is_local_only(record) and not leak
        outbound = None
        if not local_only:
            sent = record if leak else anonymise(record, self.secret, self.site.settings.personal_fields)
            outbound = canonical_json(sent).decode()
        row = (record["id"], time.time(), json.dumps(record), outbound, "local" if local_only else "pending")

        if self.site.has("forward-synchronously") and not local_only:
            try:   # the defect: the till waits on the WAN, and fails when it is cut
                await self._send([(0, record["id"], outbound)])
            except WanError as exc:
                return error(503, f"central unreachable: {exc}")
            row = row[:4] + ("forwarded",)

        if self.site.has("no-fsync"):
            if record["id"] not in self._unwritten:
                self._unwritten[record["id"]] = row
                self.site.metrics.inc("pos_transactions_total")
            return reply(_created(row), status=201, headers=_location(row))

        if self.site.has("unbounded-backlog") and self.last_forward_error is not None:
            # the defect: an in-memory retry queue that is never trimmed, so memory grows with the backlog
            self._send_buffers.append(bytes([len(self._send_buffers) % 251 + 1]) * SEND_BUFFER_BYTES)
        outcome, existing = await self._writer.submit(row, _comparable(record))
        if outcome == "conflict":
            return error(409, f"transaction {record['id']} already exists with different content")
        if outcome == "same":
            return reply(_created(existing), status=200)
        self.counts[row[4]] += 1
        self.site.metrics.inc("pos_transactions_total")
        if row[4] == "forwarded":
            self.site.metrics.inc("pos_forwarded_total")
        self._wake.set()
        return reply(_created(row), status=201, headers=_location(row))

    async def get(self, request: web.Request) -> web.Response:
        tx_id = request.match_info["id"]
        row = self._unwritten.get(tx_id) or await self.site.db.run(
            lambda c: c.execute("SELECT id, created, record, outbound, state FROM pos_tx WHERE id = ?",
                                (tx_id,)).fetchone())
        if row is None:
            return error(404, f"no transaction {tx_id}")
        return reply({"id": row[0], "state": row[4], "record": json.loads(row[2]),
                      "sent_as": json.loads(row[3]) if row[3] else None})

    async def status(self, _request: web.Request) -> web.Response:
        return reply({
            "pending": self.pending,
            "forwarded": self.counts["forwarded"],
            "local_only": self.counts["local"],
            "dropped": self.counts["dropped"],
            "last_forward_ok": self.last_forward_ok,
            "last_forward_error": self.last_forward_error,
            "forward_failures": self.forward_failures,
        })

    async def summary(self, _request: web.Request) -> web.Response:
        """What central should hold for this site: count and digest of every record meant to leave."""
        rows = await self.site.db.run(
            lambda c: c.execute("SELECT id, outbound FROM pos_tx WHERE outbound IS NOT NULL").fetchall())
        rows += [(r[0], r[3]) for r in self._unwritten.values() if r[3] is not None]
        entries = [(tx_id, payload_digest(json.loads(outbound))) for tx_id, outbound in rows]
        return reply({"site": self.site.name, "count": len(entries), "digest": summary_digest(entries),
                      "local_only": self.counts["local"]})

    # --- store and forward ----------------------------------------------------------------------

    async def _forward_loop(self) -> None:
        settings = self.site.settings
        backoff = settings.forward_interval_s
        while True:
            self._wake.clear()   # cleared before reading, so a sale committed meanwhile wakes us again
            batch = await self.site.db.run(
                lambda c: c.execute("SELECT seq, id, outbound FROM pos_tx WHERE state = 'pending' "
                                    "ORDER BY seq LIMIT ?", (settings.forward_batch_size,)).fetchall())
            if not batch:
                await self._wake.wait()
                continue
            try:
                await self._send(batch)
            except WanError as exc:
                self.forward_failures += 1
                self.last_forward_error = str(exc)
                self.site.metrics.inc("pos_forward_failures_total")
                if self.site.has("forwarder-no-reconnect"):   # the defect: the forwarder is gone for good
                    log(self.site.name, f"forwarder-no-reconnect defect: giving up on central after: {exc}")
                    return
                if self.site.has("drop-on-partition"):
                    await self._mark(batch, "dropped")
                    self.site.metrics.inc("pos_dropped_total", len(batch))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, max(settings.forward_retry_max_s, settings.forward_interval_s))
                continue
            backoff = settings.forward_interval_s
            self.last_forward_ok = time.time()
            self.last_forward_error = None
            await self._mark(batch, "forwarded")
            self.site.metrics.inc("pos_forwarded_total", len(batch))

    async def _send(self, batch: list[tuple]) -> None:
        records = [{"key": self._key(tx_id), "id": tx_id, "record": json.loads(outbound)}
                   for _seq, tx_id, outbound in batch]
        answer = await self.central.call("POST", "/sink/transactions", channel="pos",
                                         body={"site": self.site.name, "records": records})
        if answer.status >= 300:   # central refused the batch: keep it and retry, never lose it
            raise WanError("status", f"central answered {answer.status}: {answer.body[:200]!r}")

    def _key(self, tx_id: str) -> str:
        if self.site.has("duplicate-on-retry"):   # the defect: a fresh key per attempt defeats dedupe
            return f"{self.site.name}/{tx_id}/{uuid.uuid4().hex[:12]}"
        return f"{self.site.name}/{tx_id}"

    async def _mark(self, batch: list[tuple], state: str) -> None:
        seqs = [row[0] for row in batch]
        now = time.time()

        def update(conn: sqlite3.Connection) -> None:
            conn.executemany("UPDATE pos_tx SET state = ?, forwarded_at = ? WHERE seq = ?",
                             [(state, now, seq) for seq in seqs])

        await self.site.db.run(transaction, update)
        self.counts["pending"] -= len(seqs)
        self.counts[state] += len(seqs)

    async def _write_lazily(self) -> None:
        """The no-fsync defect's writer: only sales acknowledged at least lazy_write_delay_s ago, so every
        sale stays in memory alone that long (a crash within it loses it, whenever the writer last ran)."""
        await self._write_unwritten(older_than=self.site.settings.lazy_write_delay_s)

    async def _write_unwritten(self, older_than: float | None = None) -> None:
        cutoff = time.time() - older_than if older_than is not None else None
        rows = [row for row in self._unwritten.values() if cutoff is None or row[1] <= cutoff]
        if not rows:
            return

        def write(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            conn.executemany("INSERT OR IGNORE INTO pos_tx (id, created, record, outbound, state) "
                             "VALUES (?, ?, ?, ?, ?)", rows)
            return conn.total_changes - before

        await self.site.db.run(transaction, write)
        for row in rows:
            self._unwritten.pop(row[0], None)
            self.counts[row[4]] += 1
        self._wake.set()


def _validate(sale: dict[str, Any]) -> dict[str, Any]:
    amount = sale.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount):
        raise BadRequest("amount: expected a number")
    items = sale.get("items", [])
    if not isinstance(items, list):
        raise BadRequest("items: expected a list")
    tx_id = sale.get("id")
    if tx_id is None:
        tx_id = uuid.uuid4().hex
    elif not isinstance(tx_id, str) or not tx_id or len(tx_id) > 200 or "/" in tx_id:
        raise BadRequest("id: expected a non-empty string without '/' (at most 200 characters)")
    return {**sale, "id": tx_id}


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in SITE_FIELDS}


def _insert(conn: sqlite3.Connection, row: tuple, comparable: dict[str, Any]) -> tuple[str, tuple | None]:
    """Insert a sale; a retried POST of the same sale is "same", a different sale under that id "conflict"."""
    try:
        conn.execute("INSERT INTO pos_tx (id, created, record, outbound, state) VALUES (?, ?, ?, ?, ?)", row)
        return "created", None
    except sqlite3.IntegrityError:
        existing = conn.execute("SELECT id, created, record, outbound, state FROM pos_tx WHERE id = ?",
                                (row[0],)).fetchone()
        same = existing is not None and _comparable(json.loads(existing[2])) == comparable
        return ("same" if same else "conflict"), existing


def _location(row: tuple) -> dict[str, str]:
    return {"Location": "/pos/transactions/" + quote(row[0], safe="")}


def _created(row: tuple) -> dict[str, Any]:
    return {"id": row[0], "state": row[4], "local_only": row[4] == "local"}
