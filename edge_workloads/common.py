"""Endpoints and middleware every site has: /ping, /echo, /health, /metrics, request counting, and the
defects that sit in front of every handler (slow-path, blocking-io) or in /health (health-broken)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from .context import Site
from .jsonhttp import BadRequest, error, reply

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def make_middleware(site: Site):
    metrics = site.metrics
    metrics.counter("requests_total", "HTTP requests handled, by route.")
    delay = site.has("slow-path")
    blocking = site.has("blocking-io")

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        metrics.inc("requests_total", route=resource.canonical if resource is not None else "unmatched")
        if delay:
            await asyncio.sleep(site.settings.slow_path_ms / 1000.0)
        if blocking:
            # The blocking-io defect: the classic synchronous call inside async code (a blocking
            # driver, file I/O, requests.get ...). Unlike slow-path's await, it stalls the whole event
            # loop, so requests queue behind each other: at 1000 / blocking_io_ms requests/s the site
            # saturates and latency grows without bound. That is what load checks must catch.
            time.sleep(site.settings.blocking_io_ms / 1000.0)
        try:
            return await handler(request)
        except BadRequest as exc:
            return error(400, str(exc))

    return middleware


def add_basic_routes(app: web.Application, site: Site) -> None:
    async def ping(_request: web.Request) -> web.Response:
        return web.Response(body=b"pong", content_type="text/plain")

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(body=body, content_type=request.content_type or "application/octet-stream")

    health_broken = site.has("health-broken")

    async def health(_request: web.Request) -> web.Response:
        problems = [p for p in await asyncio.gather(*(check() for check in site.health_checks)) if p]
        if health_broken:
            # The health-broken defect: a health endpoint that reports the site unhealthy while every
            # other endpoint works (a failing self-check, a stale flag). Monitoring that trusts /health
            # sees a dead site; a health check (functional.http, functional.api) must fail on it.
            status = {"status": "degraded", "role": site.options.role, "name": site.name,
                      "uptime_s": round(time.time() - site.started, 3),
                      "defects": sorted(site.options.defects),
                      "problems": problems or ["self-check failed (health-broken defect)"]}
            return reply(status, status=503)
        status = {
            "status": "broken" if problems else "ok",
            "role": site.options.role,
            "name": site.name,
            "uptime_s": round(time.time() - site.started, 3),
            "defects": sorted(site.options.defects),
            **{key: read() for key, read in site.status_fields.items()},
        }
        if problems:
            status["problems"] = problems
        return reply(status, status=503 if problems else 200)

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=site.metrics.render().encode(), headers={"Content-Type": PROMETHEUS_TYPE})

    app.router.add_get("/ping", ping)
    app.router.add_post("/echo", echo)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)

    async def database_ok() -> str | None:
        try:
            await site.db.run(lambda conn: conn.execute("SELECT 1").fetchone())
            return None
        except Exception as exc:  # noqa: BLE001 - any database failure is a health problem, reported as such
            return f"database: {type(exc).__name__}: {exc}"

    site.health_checks.append(database_ok)
