"""Central's management plane: the site registry (heartbeats) and the versioned config sites poll.

Heartbeats arrive every second from every site, so they update memory and a snapshot goes to the
database every SNAPSHOT_EVERY_S (an fsync per heartbeat would be wasted on data that is rewritten
each second). Config changes are rare and written at once.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from .context import Site
from .jsonhttp import read_json, reply, require_object, require_site

REGISTRY_KV = "registry_sites"
CONFIG_KV = "config"
SNAPSHOT_EVERY_S = 2.0


class Registry:
    def __init__(self, site: Site):
        self.site = site
        self.sites: dict[str, dict[str, Any]] = {}
        self.config: dict[str, Any] = {"version": 0, "config": {}, "updated_at": None}
        self._dirty = False
        site.metrics.counter("heartbeats_received_total", "Heartbeats received from sites.")
        site.metrics.gauge("registered_sites", "Sites that ever sent a heartbeat.", lambda: len(self.sites))
        site.metrics.gauge("config_version", "Current config version.", lambda: self.config["version"])

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/registry/heartbeat", self.heartbeat)
        app.router.add_get("/registry/sites", self.list_sites)
        app.router.add_get("/config", self.get_config)
        app.router.add_put("/config", self.put_config)

    async def start(self) -> None:
        self.sites = await self.site.db.get_json(REGISTRY_KV, {})
        self.config = await self.site.db.get_json(CONFIG_KV, self.config)
        self.site.background.every("registry-snapshot", lambda: SNAPSHOT_EVERY_S, self._snapshot)

    async def stop(self) -> None:
        await self._snapshot()

    async def heartbeat(self, request: web.Request) -> web.Response:
        beat = require_object((await read_json(request))[0])
        name = require_site(beat)
        now = time.time()
        previous = self.sites.get(name, {})
        self.sites[name] = {
            "last_seen": now,
            "first_seen": previous.get("first_seen", now),
            "heartbeats": previous.get("heartbeats", 0) + 1,
            "ts": beat.get("ts"),
            "role": beat.get("role"),
            "version": beat.get("version"),
            "config_version": beat.get("config_version"),
        }
        self._dirty = True
        self.site.metrics.inc("heartbeats_received_total")
        return reply({"ok": True, "config_version": self.config["version"]})

    async def list_sites(self, _request: web.Request) -> web.Response:
        now = time.time()
        return reply({"now": now, "sites": {name: {**info, "age_s": round(now - info["last_seen"], 3)}
                                            for name, info in sorted(self.sites.items())}})

    async def get_config(self, request: web.Request) -> web.Response:
        etag = f'"{self.config["version"]}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return reply(self.config, headers={"ETag": etag})

    async def put_config(self, request: web.Request) -> web.Response:
        pushed = require_object((await read_json(request))[0], "config")
        config = {"version": self.config["version"] + 1, "config": pushed, "updated_at": time.time()}
        await self.site.db.put_json(CONFIG_KV, config)
        self.config = config
        return reply(config)

    async def _snapshot(self) -> None:
        if self._dirty:
            self._dirty = False
            await self.site.db.put_json(REGISTRY_KV, self.sites)
