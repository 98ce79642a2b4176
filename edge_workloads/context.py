"""What every part of a site shares: its options, settings, database, metrics and background tasks."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .metrics import Metrics
from .options import SiteOptions
from .settings import Settings
from .store import Database


class Background:
    """Long-running loops of a site. A failing step is logged and retried, never fatal."""

    def __init__(self, site_name: str):
        self._site_name = site_name
        self._tasks: list[asyncio.Task] = []

    def run(self, name: str, loop_fn: Callable[[], Awaitable[None]]) -> None:
        self._tasks.append(asyncio.create_task(self._guard(name, loop_fn), name=name))

    def every(self, name: str, interval: Callable[[], float], step: Callable[[], Awaitable[Any]]) -> None:
        """Run step, then sleep interval() (read each time so pushed config takes effect)."""
        async def loop() -> None:
            while True:
                await step()
                await asyncio.sleep(max(interval(), 0.01))
        self.run(name, loop)

    async def _guard(self, name: str, loop_fn: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await loop_fn()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a bug in one loop must not take the site down
                log(self._site_name, f"{name}: {type(exc).__name__}: {exc}; restarting in 1 s")
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


class Site:
    def __init__(self, options: SiteOptions, settings: Settings, db: Database, metrics: Metrics):
        self.options = options
        self.name = options.name
        self.settings = settings
        self.db = db
        self.metrics = metrics
        self.background = Background(options.name)
        self.health_checks: list[Callable[[], Awaitable[str | None]]] = []
        self.status_fields: dict[str, Callable[[], Any]] = {}
        self.started = time.time()

    def has(self, defect: str) -> bool:
        return defect in self.options.defects


def log(site_name: str, message: str) -> None:
    # stdout carries only the ready line (the harness parses it); everything else goes to stderr.
    print(f"[{site_name}] {message}", file=sys.stderr, flush=True)
