"""A tiny real HTTP target on 127.0.0.1 for the latency suite tests (aiohttp, a child process).

    GET /slow      answers 200 after DELAY ms (asyncio.sleep: concurrent requests overlap)
    GET /flaky     answers 503 to every 20th request (5 %), 200 at once otherwise
    GET /health    200 at once

Run by tests.helpers.servers.script_server("delay"): prints one JSON line {"port": N} when it
listens; stops at stdin EOF.
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

from tests.helpers.servers import serve


async def main(delay_ms: float) -> None:
    count = 0

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(delay_ms / 1000.0)
        return web.Response(text="slow")

    async def flaky(request: web.Request) -> web.Response:
        nonlocal count
        count += 1
        return web.Response(status=503 if count % 20 == 0 else 200, text="flaky")

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.add_routes([web.get("/slow", slow), web.get("/flaky", flaky), web.get("/health", health)])
    await serve(app)


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 20.0))
