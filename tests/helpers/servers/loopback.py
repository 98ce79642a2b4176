"""A small real HTTP target on 127.0.0.1 for the load suite tests (aiohttp, a child process).

    GET  /health    200 at once
    POST /echo      the request body back
    GET  /limited   one request at a time, each held LIMITED_MS: a capacity of 1000 / LIMITED_MS per
                    second, so an open-model load above it queues without bound (a sharp knee)
    GET  /flaky     503 to every 20th request (5 %), 200 at once otherwise
    GET  /stats     {path: requests served} (itself not counted)

Run by tests.helpers.servers.script_server("loopback"): prints one JSON line {"port": N} when it
listens; stops at stdin EOF.
"""

from __future__ import annotations

import asyncio
import collections

from aiohttp import web

from tests.helpers.servers import serve

LIMITED_MS = 12.0


async def main() -> None:
    counts: collections.Counter[str] = collections.Counter()
    one_at_a_time = asyncio.Semaphore(1)

    @web.middleware
    async def count(request: web.Request, handler):
        if request.path != "/stats":
            counts[f"{request.method} {request.path}"] += 1
        return await handler(request)

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), content_type=request.content_type)

    async def limited(request: web.Request) -> web.Response:
        async with one_at_a_time:
            await asyncio.sleep(LIMITED_MS / 1000.0)
        return web.Response(text="limited")

    async def flaky(request: web.Request) -> web.Response:
        n = counts["GET /flaky"]
        return web.Response(status=503 if n % 20 == 0 else 200, text="flaky")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(dict(counts))

    app = web.Application(middlewares=[count])
    app.add_routes([web.get("/health", health), web.post("/echo", echo), web.get("/limited", limited),
                    web.get("/flaky", flaky), web.get("/stats", stats)])
    await serve(app, backlog=1024)


if __name__ == "__main__":
    asyncio.run(main())
