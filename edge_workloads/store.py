"""Durable state of a site: one SQLite database in WAL mode under --data-dir.

synchronous=FULL makes every commit fsync the WAL, so an acknowledged write survives SIGKILL and power
loss. All statements run on one dedicated thread: sqlite3 calls block, and an fsync must never stall
the event loop that answers /ping.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

KV_SCHEMA = "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);"


class Database:
    def __init__(self, path: str):
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None

    async def open(self, schema: str) -> None:
        await self.run(self._open, schema)

    def _open(self, _conn: None, schema: str) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(KV_SCHEMA + schema)
        self._conn = conn

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(connection, *args) on the database thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._conn, *args))

    async def close(self) -> None:
        if self._conn is not None:
            await self.run(lambda conn: conn.close())
            self._conn = None
        self._executor.shutdown(wait=True)

    async def get_json(self, key: str, default: Any = None) -> Any:
        return await self.run(kv_get, key, default)

    async def put_json(self, key: str, value: Any) -> None:
        await self.run(kv_put, key, value)


def kv_get(conn: sqlite3.Connection, key: str, default: Any = None) -> Any:
    row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
    return json.loads(row[0]) if row else default


def kv_put(conn: sqlite3.Connection, key: str, value: Any) -> None:
    conn.execute(
        "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, json.dumps(value)),
    )


def transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run fn inside BEGIN IMMEDIATE ... COMMIT (one fsync for many rows)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


class GroupCommit:
    """Writes from many concurrent requests share one COMMIT, so one fsync acknowledges them all.

    Each caller still waits for its own row to be durable; under load the fsync cost is divided by
    the number of requests that arrived while the previous commit was running.
    """

    def __init__(self, db: Database, apply_one: Callable[..., T]):
        self._db = db
        self._apply_one = apply_one   # apply_one(conn, *args) -> result, inside the transaction
        self._queue: list[tuple[tuple, asyncio.Future]] = []
        self._drainer: asyncio.Task | None = None

    async def submit(self, *args: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((args, future))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    results = await self._db.run(
                        transaction, lambda conn, batch=batch: [self._apply_one(conn, *args) for args, _ in batch])
                except Exception as exc:  # noqa: BLE001 - whatever apply_one raised is each waiting caller's answer
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results):
                    if not future.done():   # a caller that gave up (client went away) is skipped
                        future.set_result(result)
        finally:
            self._drainer = None


def database_path(data_dir: str) -> str:
    return os.path.join(data_dir, "site.sqlite3")
