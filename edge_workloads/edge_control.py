"""The edge's management plane: register and heartbeat to central, and apply config pushed there.

Heartbeats let central see which of its many sites are alive; config polling is how a fleet-wide
change reaches sites that central cannot dial into. Both run in the background and only ever wait on
the WAN there. The applied config is kept in the data dir, so a restart during a partition keeps it.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from .version import VERSION
from .context import Site
from .jsonhttp import reply
from .wan import CentralClient, WanError

CONFIG_KV = "config_applied"


class EdgeControl:
    def __init__(self, site: Site, central: CentralClient):
        self.site = site
        self.central = central
        self.applied: dict[str, Any] = {"version": 0, "pushed": {}, "applied_at": None, "ignored": {}}
        self.central_version_seen = 0
        self.last_heartbeat_ok: float | None = None
        site.metrics.counter("heartbeats_total", "Heartbeats sent to central, by outcome.")
        site.metrics.gauge("config_version", "Version of the config applied at the site.",
                           lambda: self.applied["version"])
        site.status_fields["config_version"] = lambda: self.applied["version"]

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/config", self.show_config)
        app.router.add_get("/registry/status", self.registry_status)

    async def start(self) -> None:
        saved = await self.site.db.get_json(CONFIG_KV)
        if saved and not self.site.has("ignore-config"):
            self.applied = saved
            self.site.settings.apply_pushed(saved["pushed"])
        settings = self.site.settings
        if not self.site.has("no-heartbeat"):
            self.site.background.every("heartbeat", lambda: settings.heartbeat_interval_s, self._heartbeat)
        self.site.background.every("config-poll", lambda: settings.config_poll_interval_s, self._poll_config)

    async def show_config(self, _request: web.Request) -> web.Response:
        return reply({
            "version": self.applied["version"],
            "applied_at": self.applied["applied_at"],
            "pushed": self.applied["pushed"],
            "ignored": self.applied["ignored"],
            "central_version_seen": self.central_version_seen,
            "effective": self.site.settings.as_dict(),
        })

    async def registry_status(self, _request: web.Request) -> web.Response:
        m = self.site.metrics
        return reply({"last_heartbeat_ok": self.last_heartbeat_ok,
                      "heartbeats_ok": int(m.value("heartbeats_total", outcome="ok")),
                      "heartbeats_failed": int(m.value("heartbeats_total", outcome="failed"))})

    async def _heartbeat(self) -> None:
        beat = {"site": self.site.name, "role": "edge", "ts": time.time(), "version": VERSION,
                "config_version": self.applied["version"]}
        try:
            answer = await self.central.call("POST", "/registry/heartbeat", channel="control", body=beat)
        except WanError:
            self.site.metrics.inc("heartbeats_total", outcome="failed")
            return
        ok = answer.status < 300
        self.site.metrics.inc("heartbeats_total", outcome="ok" if ok else "rejected")
        if ok:
            self.last_heartbeat_ok = time.time()

    async def _poll_config(self) -> None:
        headers = {"If-None-Match": f'"{self.central_version_seen}"'} if self.central_version_seen else {}
        try:
            answer = await self.central.call("GET", "/config", channel="control", headers=headers)
            if answer.status != 200:
                return
            data = answer.json()
            version, pushed = int(data["version"]), data["config"]
        except (WanError, ValueError, KeyError, TypeError):
            return
        if not isinstance(pushed, dict):
            return
        self.central_version_seen = version
        if self.site.has("ignore-config") or version == self.applied["version"]:
            return
        applied_keys, ignored = self.site.settings.apply_pushed(pushed)
        self.applied = {"version": version, "pushed": pushed, "applied_at": time.time(), "ignored": ignored,
                        "applied_keys": applied_keys}
        await self.site.db.put_json(CONFIG_KV, self.applied)
