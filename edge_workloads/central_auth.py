"""Central's token issuer: signing keys, token issue, key distribution to sites, central validation.

Keys are HMAC-SHA256 secrets with a key id. Sites fetch them (GET /auth/keys) to validate locally;
central keeps the last few keys after a rotation so tokens signed just before stay valid. They live in
the data dir as `signing.key` (JSON, mode 0600: a secret file like any real issuer's key).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from aiohttp import web

from . import tokens
from .context import Site
from .jsonhttp import BadRequest, read_json, reply, require_object
from .privacy import set_key_mode, write_key_file

KEYS_KV = "signing_keys"   # where data dirs of earlier versions kept the keys (read once, if no file)
KEYS_FILE = "signing.key"
KEEP_KEYS = 3


class TokenIssuer:
    def __init__(self, site: Site):
        self.site = site
        self.keys: list[dict[str, Any]] = []   # newest first; keys[0] signs
        site.metrics.counter("tokens_issued_total", "Tokens issued.")
        site.metrics.counter("auth_checks_total", "Token checks at central, by result.")

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/auth/token", self.issue)
        app.router.add_get("/auth/keys", self.list_keys)
        app.router.add_post("/auth/keys/rotate", self.rotate)
        app.router.add_get("/auth/check", self.check)
        app.router.add_post("/auth/renew", self.renew)

    async def start(self) -> None:
        self.keys = await asyncio.to_thread(self._read_keys)
        if self.keys:
            set_key_mode(self._path, self._world_readable)
            return
        self.keys = await self.site.db.get_json(KEYS_KV, [])
        if self.keys:
            await asyncio.to_thread(self._write_keys, self.keys)
        else:
            await self._add_key()

    @property
    def _path(self) -> str:
        return os.path.join(self.site.options.data_dir, KEYS_FILE)

    @property
    def _world_readable(self) -> bool:
        return self.site.has("world-readable-key")   # the defect: see privacy.key_mode

    def _read_keys(self) -> list[dict[str, Any]]:
        try:
            with open(self._path, encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return []

    def _write_keys(self, keys: list[dict[str, Any]]) -> None:
        write_key_file(self._path, json.dumps(keys).encode(), self._world_readable)

    async def issue(self, request: web.Request) -> web.Response:
        body = require_object((await read_json(request))[0])
        subject = body.get("subject")
        if not isinstance(subject, str) or not subject:
            raise BadRequest("subject: expected a non-empty string")
        ttl = body.get("ttl_s", self.site.settings.token_ttl_s)
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
            raise BadRequest("ttl_s: expected seconds")
        token, expires = tokens.issue(self.keys[0], subject, float(ttl))
        self.site.metrics.inc("tokens_issued_total")
        return reply({"token": token, "kid": self.keys[0]["kid"], "subject": subject, "expires_at": expires})

    async def list_keys(self, _request: web.Request) -> web.Response:
        return reply({"keys": self.keys, "active": self.keys[0]["kid"]})

    async def rotate(self, _request: web.Request) -> web.Response:
        await self._add_key()
        return reply({"active": self.keys[0]["kid"], "kids": [k["kid"] for k in self.keys]})

    async def check(self, request: web.Request) -> web.Response:
        try:
            token = tokens.bearer(request.headers.get("Authorization"))
            claims = tokens.verify(token, {k["kid"]: k for k in self.keys})
        except tokens.InvalidToken as exc:
            self.site.metrics.inc("auth_checks_total", result="invalid")
            return reply({"valid": False, "error": str(exc)}, status=401)
        self.site.metrics.inc("auth_checks_total", result="valid")
        return reply({"valid": True, "subject": claims.get("sub"), "expires_at": claims["exp"],
                      "kid": tokens.key_id(token), "validated_by": "central"})

    async def renew(self, request: web.Request) -> web.Response:
        try:
            token, expires, claims = tokens.renew(tokens.bearer(request.headers.get("Authorization")),
                                                  {k["kid"]: k for k in self.keys}, self.keys[0],
                                                  self.site.settings.token_ttl_s)
        except tokens.InvalidToken as exc:
            return reply({"renewed": False, "error": str(exc)}, status=401)
        self.site.metrics.inc("tokens_issued_total")
        return reply({"token": token, "expires_at": expires, "subject": claims.get("sub"), "renewed_by": "central"})

    async def _add_key(self) -> None:
        keys = [tokens.new_key(), *self.keys][:KEEP_KEYS]
        await asyncio.to_thread(self._write_keys, keys)
        self.keys = keys
