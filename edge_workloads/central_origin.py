"""Central's content origin: deterministic content per key, with a version and an ETag.

Content is generated, not stored, so any key works and two centrals agree byte for byte. PUT bumps a
key's version (new content, new ETag), which lets a check watch an edge cache pick up a change.
"""

from __future__ import annotations

import hashlib

from aiohttp import web

from .context import Site
from .jsonhttp import BadRequest, error, reply

SCHEMA = """
CREATE TABLE IF NOT EXISTS origin_versions (key TEXT PRIMARY KEY, version INTEGER NOT NULL);
"""

DEFAULT_SIZE = 256
MAX_SIZE = 16 * 1024 * 1024
MISSING_PREFIX = "missing"   # keys starting with this answer 404, to exercise the edge's 404 path


def content(key: str, version: int, size: int) -> bytes:
    line = f"content {key} v{version}\n".encode()
    return (line * (size // len(line) + 1))[:size]


class Origin:
    def __init__(self, site: Site):
        self.site = site
        self.versions: dict[str, int] = {}
        site.metrics.counter("origin_requests_total", "Origin content requests, by result.")

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/origin/{key:.+}", self.get)
        app.router.add_put("/origin/{key:.+}", self.bump)

    async def start(self) -> None:
        rows = await self.site.db.run(lambda c: c.execute("SELECT key, version FROM origin_versions").fetchall())
        self.versions = dict(rows)

    async def get(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        if key.startswith(MISSING_PREFIX):
            self.site.metrics.inc("origin_requests_total", result="missing")
            return error(404, f"no content {key}")
        size = _size(request.query.get("size"))
        version = self.versions.get(key, 1)
        body = content(key, version, size)
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        headers = {"ETag": etag, "X-Content-Version": str(version), "Cache-Control": "max-age=60"}
        if request.headers.get("If-None-Match") == etag:
            self.site.metrics.inc("origin_requests_total", result="not_modified")
            return web.Response(status=304, headers=headers)
        self.site.metrics.inc("origin_requests_total", result="ok")
        return web.Response(body=body, content_type="text/plain", headers=headers)

    async def bump(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        version = self.versions.get(key, 1) + 1
        await self.site.db.run(lambda c: c.execute(
            "INSERT INTO origin_versions (key, version) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET version = excluded.version", (key, version)))
        self.versions[key] = version
        return reply({"key": key, "version": version})


def _size(text: str | None) -> int:
    if text is None:
        return DEFAULT_SIZE
    try:
        size = int(text)
    except ValueError:
        raise BadRequest("size: expected a whole number of bytes") from None
    if not 0 <= size <= MAX_SIZE:
        raise BadRequest(f"size: expected 0..{MAX_SIZE}")
    return size
