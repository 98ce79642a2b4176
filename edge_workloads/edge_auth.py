"""Local authentication at the edge: validate central-issued tokens with cached signing keys.

A site must keep authenticating users while its WAN is down, so validation never calls central. Keys
come from GET {central}/auth/keys in the background and are kept in the data dir, so even a site
restarted during a partition still validates. A token that would expire during a long outage is
renewed at the site (POST /auth/renew): the holder of a still-valid token gets a fresh one for the
same subject and lifetime, signed with the newest cached key. The keys are shared secrets the site
already holds to validate, so renewing there gives it no power it did not have.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from . import tokens
from .context import Site
from .jsonhttp import error, reply
from .wan import CentralClient, WanError

KEYS_KV = "auth_keys"
MIN_REFRESH_GAP_S = 1.0   # also the retry interval until the first keys arrive


class EdgeAuth:
    def __init__(self, site: Site, central: CentralClient):
        self.site = site
        self.central = central
        self.keys: dict[str, dict[str, Any]] = {}
        self.keys_fetched_at: float | None = None
        self._want_refresh = asyncio.Event()
        site.metrics.counter("auth_checks_total", "Token checks, by result (valid, invalid, unavailable).")
        site.metrics.counter("auth_renewals_total", "Token renewals, by where (edge, central, unavailable).")
        site.metrics.gauge("auth_keys_cached", "Signing keys cached at the site.", lambda: len(self.keys))

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/auth/check", self.check)
        app.router.add_get("/auth/keys/status", self.keys_status)
        app.router.add_post("/auth/renew", self.renew)

    async def start(self) -> None:
        cached = await self.site.db.get_json(KEYS_KV)
        if cached:
            self.keys = {key["kid"]: key for key in cached["keys"]}
            self.keys_fetched_at = cached.get("fetched_at")
        self.site.background.run("auth-key-refresh", self._refresh_loop)

    async def check(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization")
        if self.site.has("central-auth-only"):
            return await self._check_at_central(authorization)
        try:
            claims = tokens.verify(tokens.bearer(authorization), self.keys)
        except tokens.InvalidToken as exc:
            if str(exc).startswith("unknown key id"):
                self._want_refresh.set()   # maybe central rotated keys: fetch them soon
            return self._invalid(str(exc))
        self.site.metrics.inc("auth_checks_total", result="valid")
        return reply({"valid": True, "subject": claims.get("sub"), "expires_at": claims["exp"],
                      "kid": tokens.key_id(tokens.bearer(authorization)), "validated_by": "edge"})

    async def renew(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization")
        if self.site.has("renew-at-central-only"):
            return await self._renew_at_central(authorization)
        newest = max(self.keys.values(), key=lambda k: k.get("created", 0), default=None)
        if newest is None:
            return error(503, "no signing keys cached yet", renewed=False)
        try:
            token, expires, claims = tokens.renew(tokens.bearer(authorization), self.keys, newest,
                                                  self.site.settings.token_ttl_s)
        except tokens.InvalidToken as exc:
            return reply({"renewed": False, "error": str(exc)}, status=401)
        self.site.metrics.inc("auth_renewals_total", result="edge")
        return reply({"token": token, "expires_at": expires, "subject": claims.get("sub"), "renewed_by": "edge"})

    async def _renew_at_central(self, authorization: str | None) -> web.Response:
        """The defect: renewal is a WAN round trip, so a token that runs out during an outage cannot be
        renewed and its holder is locked out until the WAN is back."""
        try:
            answer = await self.central.call("POST", "/auth/renew", channel="auth",
                                             headers={"Authorization": authorization or ""})
        except WanError as exc:
            self.site.metrics.inc("auth_renewals_total", result="unavailable")
            return error(503, f"cannot renew: {exc}", renewed=False)
        self.site.metrics.inc("auth_renewals_total", result="central")
        return web.Response(body=answer.body, status=answer.status, content_type="application/json")

    async def keys_status(self, _request: web.Request) -> web.Response:
        return reply({"kids": sorted(self.keys), "fetched_at": self.keys_fetched_at})

    async def _check_at_central(self, authorization: str | None) -> web.Response:
        """The defect: every check is a WAN round trip, so auth fails whenever the WAN does."""
        try:
            answer = await self.central.call("GET", "/auth/check", channel="auth",
                                             headers={"Authorization": authorization or ""})
        except WanError as exc:
            self.site.metrics.inc("auth_checks_total", result="unavailable")
            return error(503, f"cannot validate: {exc}", valid=False)
        try:
            data = answer.json()
        except ValueError:
            data = {"valid": False, "error": "central sent no JSON"}
        valid = answer.status == 200
        self.site.metrics.inc("auth_checks_total", result="valid" if valid else "invalid")
        if valid:
            data["validated_by"] = "central"
        return reply(data, status=answer.status)

    def _invalid(self, reason: str) -> web.Response:
        self.site.metrics.inc("auth_checks_total", result="invalid")
        return reply({"valid": False, "error": reason}, status=401,
                     headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})

    async def _refresh_loop(self) -> None:
        while True:
            await self._refresh()
            # At most one refresh per MIN_REFRESH_GAP_S, so tokens with made-up key ids cannot make
            # the site hammer central; then wait for the interval or an unknown key id, whichever first.
            await asyncio.sleep(MIN_REFRESH_GAP_S)
            interval = self.site.settings.key_refresh_interval_s if self.keys else MIN_REFRESH_GAP_S
            self._want_refresh.clear()
            try:
                await asyncio.wait_for(self._want_refresh.wait(), timeout=max(interval - MIN_REFRESH_GAP_S, 0))
            except TimeoutError:
                pass

    async def _refresh(self) -> None:
        try:
            answer = await self.central.call("GET", "/auth/keys", channel="auth")
            keys = answer.json()["keys"] if answer.status == 200 else None
        except (WanError, ValueError, KeyError, TypeError):
            return
        if not keys:
            return
        self.keys = {key["kid"]: key for key in keys}
        self.keys_fetched_at = time.time()
        await self.site.db.put_json(KEYS_KV, {"keys": keys, "fetched_at": self.keys_fetched_at})
