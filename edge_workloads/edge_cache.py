"""Content cache at the edge in front of central's origin (white paper: content caching, immersive).

GET /content/{key} answers from the local copy while it is younger than cache_ttl_s (X-Cache: HIT),
fetches from GET {central}/origin/{key} otherwise (MISS), and when central cannot be reached serves the
expired copy (STALE) rather than an error. Right after a WAN failure the stale copy is served at once
and refreshed in the background, so a partitioned site does not make every user wait for a timeout.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import NamedTuple

from aiohttp import web

from .context import Site
from .jsonhttp import error
from .wan import CentralClient, WanError

SCHEMA = """
CREATE TABLE IF NOT EXISTS content_cache (
    key TEXT PRIMARY KEY,      -- the raw path and query after /content/
    body BLOB NOT NULL,
    etag TEXT,
    content_type TEXT,
    fetched_at REAL NOT NULL
);
"""

PREFIX = "/content/"


class Entry(NamedTuple):
    body: bytes
    etag: str | None
    content_type: str | None
    fetched_at: float


class OriginMissing(Exception):
    pass


class ContentCache:
    def __init__(self, site: Site, central: CentralClient):
        self.site = site
        self.central = central
        self._inflight: dict[str, asyncio.Future] = {}
        site.metrics.counter("cache_requests_total", "Content requests, by result (hit, miss, stale, error).")

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(PREFIX + "{key:.+}", self.get)

    async def get(self, request: web.Request) -> web.Response:
        key = request.raw_path[len(PREFIX):]
        # The no-cache defect: a "cache" that never keeps anything (a TTL of 0, a cache that was never
        # wired in). Every GET is a MISS fetched from central over the WAN; functional.cache_serves
        # must see no HIT on a repeated request.
        entry = None if self.site.has("no-cache") else await self.site.db.run(_load, key)
        stale_allowed = not self.site.has("no-stale-cache")
        if entry is not None and time.time() - entry.fetched_at < self.site.settings.cache_ttl_s:
            return self._serve(entry, "HIT")
        if entry is not None and stale_allowed and self.central.is_down():
            self._refresh_in_background(key)
            return self._serve(entry, "STALE")
        try:
            fresh = await self._fetch(key)
        except OriginMissing:
            self._count("miss")
            return error(404, f"origin has no content {key}")
        except WanError as exc:
            if entry is not None and stale_allowed:
                return self._serve(entry, "STALE")
            self._count("error")
            return error(504 if exc.kind == "timeout" else 502, f"origin unreachable: {exc}")
        return self._serve(fresh, "MISS")

    def _serve(self, entry: Entry, result: str) -> web.Response:
        self._count(result.lower())
        headers = {"X-Cache": result, "Age": str(max(0, int(time.time() - entry.fetched_at))),
                   "Content-Type": entry.content_type or "application/octet-stream"}
        if entry.etag:
            headers["ETag"] = entry.etag
        if result == "STALE":
            headers["Warning"] = '110 - "Response is Stale"'
        return web.Response(body=entry.body, headers=headers)

    def _count(self, result: str) -> None:
        self.site.metrics.inc("cache_requests_total", result=result)

    async def _fetch(self, key: str) -> Entry:
        """One origin fetch per key at a time; concurrent misses share it."""
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(self._fetch_and_store(key))
            self._inflight[key] = future
            future.add_done_callback(lambda f: (self._inflight.pop(key, None), f.cancelled() or f.exception()))
        return await asyncio.shield(future)

    def _refresh_in_background(self, key: str) -> None:
        if key not in self._inflight:
            task = asyncio.ensure_future(self._fetch(key))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())   # failures are expected here

    async def _fetch_and_store(self, key: str) -> Entry:
        answer = await self.central.call("GET", "/origin/" + key, channel="cache",
                                         timeout=self.site.settings.cache_fetch_timeout_s)
        if answer.status == 404:
            raise OriginMissing(key)
        if answer.status != 200:
            raise WanError("status", f"origin answered {answer.status}")
        entry = Entry(answer.body, answer.headers.get("ETag"), answer.headers.get("Content-Type"), time.time())
        if not self.site.has("no-cache"):   # the no-cache defect stores nothing (see get)
            await self.site.db.run(_save, key, entry)
        return entry


def _load(conn: sqlite3.Connection, key: str) -> Entry | None:
    row = conn.execute("SELECT body, etag, content_type, fetched_at FROM content_cache WHERE key = ?",
                       (key,)).fetchone()
    return Entry(*row) if row else None


def _save(conn: sqlite3.Connection, key: str, entry: Entry) -> None:
    conn.execute("INSERT OR REPLACE INTO content_cache (key, body, etag, content_type, fetched_at) "
                 "VALUES (?, ?, ?, ?, ?)", (key, entry.body, entry.etag, entry.content_type, entry.fetched_at))
