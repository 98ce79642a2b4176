"""The supervisor's control API (HTTP/JSON on 127.0.0.1, ephemeral port): faults and status.

    GET   /                              -> {"service": "edge-conformance-supervisor", "run_id", "pid"}
    GET   /status                        -> sites (pid, port, state, restarts, ...) and links (params, stats)
    POST  /sites/{name}/kill             SIGKILL: a crash; the restart policy brings it back (~0.5 s)
    POST  /sites/{name}/stop             SIGTERM, and it stays down
    POST  /sites/{name}/start            start a stopped site (same port)
    POST  /sites/{name}/restart          stop + start (not counted in `restarts`)
    POST  /sites/{name}/pause            SIGSTOP the site's process group
    POST  /sites/{name}/resume           SIGCONT
    POST  /sites/{name}/backup           a live backup of the site's data -> {"backup": NAME, "bytes",
                                         "sha256", "files", "taken_at"} (local backend)
    POST  /sites/{name}/wipe             stop, remove the site's data, start it empty
    POST  /sites/{name}/restore          {"backup": NAME}: stop, replace its data with that backup, start
    POST  /sites/{name}/partition        cut the site's WAN link(s) (for a central site: every WAN
    POST  /sites/{name}/heal             link that ends at it); heal restores them
    POST  /links/{name}/partition        cut one link: "wan:<site>" or "access:<site>"
                                         Both partitions take an optional body {"mode": "hold"|"drop"}:
                                         hold (default) keeps what was in flight and delivers it at
                                         heal; drop resets every connection across the link, as a long
                                         outage does (conformance.emulation.link)
    POST  /links/{name}/heal
    POST  /links/{name}/reset            back to the topology's parameters, healed
    PATCH /links/{name}                  {delay_ms, jitter_ms, loss, bandwidth_bps} (any subset)
    POST  /shutdown                      -> 202; the supervisor tears everything down and exits

Site actions answer with the site's status; link actions with {"links": [LINK, ...]}.
Errors are {"error": "..."}: 400 bad input, 404 unknown site/link, 409 action does not fit the state.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..model.errors import did_you_mean
from ..model.linkparams import PARTITION_MODES
from .linkctl import LinkdError
from .procs import SpawnError
from .site import StateError

if TYPE_CHECKING:
    from .supervisor import Supervisor

SITE_ACTIONS = ("kill", "stop", "start", "restart", "pause", "resume", "partition", "heal", "backup", "wipe",
                "restore")
LINK_ACTIONS = ("partition", "heal", "reset")
LINK_FIELDS = ("delay_ms", "jitter_ms", "loss", "bandwidth_bps")


def build_app(sup: Supervisor) -> web.Application:
    async def index(_request: web.Request) -> web.Response:
        return web.json_response({"service": "edge-conformance-supervisor", "run_id": sup.run_id,
                                  "pid": os.getpid()})

    async def status(_request: web.Request) -> web.Response:
        return web.json_response(await sup.status())

    async def site_action(request: web.Request) -> web.Response:
        name, action = request.match_info["name"], request.match_info["action"]
        site = sup.site(name)
        _known_action("site", action, SITE_ACTIONS)
        if action in ("partition", "heal"):
            links = await sup.patch_links(sup.wan_links_of(name), await _cut_fields(request, action))
            return web.json_response({"links": links})
        if action == "backup":
            return web.json_response({**site.status(), "backup": await site.backup()})
        if action == "restore":
            body = await _body(request)
            if set(body) != {"backup"} or not isinstance(body["backup"], str):
                raise web.HTTPBadRequest(reason='restore takes {"backup": NAME} (the name backup answered)')
            await site.restore(body["backup"])
            return web.json_response(site.status())
        await getattr(site, action)()
        return web.json_response(site.status())

    async def link_action(request: web.Request) -> web.Response:
        name, action = request.match_info["name"], request.match_info["action"]
        links = sup.resolve_links(name)
        _known_action("link", action, LINK_ACTIONS, "; PATCH to degrade")
        if action == "reset":
            return web.json_response({"links": await sup.reset_links(links)})
        return web.json_response({"links": await sup.patch_links(links, await _cut_fields(request, action))})

    async def link_patch(request: web.Request) -> web.Response:
        links = sup.resolve_links(request.match_info["name"])
        fields = await _body(request)
        for key in fields:
            if key not in LINK_FIELDS:
                raise web.HTTPBadRequest(reason=f'unknown field "{key}"{did_you_mean(key, LINK_FIELDS)}'
                                                f" (fields: {', '.join(LINK_FIELDS)})")
        if not fields:
            raise web.HTTPBadRequest(reason=f"nothing to change: give any of {', '.join(LINK_FIELDS)}")
        return web.json_response({"links": await sup.patch_links(links, fields)})

    async def shutdown(_request: web.Request) -> web.Response:
        # Answer first: tearing down stops this very server.
        asyncio.get_running_loop().call_later(0.05, sup.request_shutdown)
        return web.json_response({"stopping": True, "run_id": sup.run_id}, status=202)

    app = web.Application(middlewares=[_json_errors])
    app.router.add_get("/", index)
    app.router.add_get("/status", status)
    app.router.add_post("/sites/{name}/{action}", site_action)
    app.router.add_post("/links/{name}/{action}", link_action)
    app.router.add_patch("/links/{name}", link_patch)
    app.router.add_post("/shutdown", shutdown)
    return app


def _known_action(kind: str, action: str, actions: tuple[str, ...], more: str = "") -> None:
    if action not in actions:
        raise web.HTTPNotFound(reason=f'unknown {kind} action "{action}"{did_you_mean(action, actions)}'
                                      f" (actions: {', '.join(actions)}{more})")


async def _cut_fields(request: web.Request, action: str) -> dict[str, Any]:
    """The link fields of a partition ({"mode": ...} picks what the cut does) or of a heal (no body)."""
    body = await _body(request)
    if action == "heal":
        if body:
            raise web.HTTPBadRequest(reason="heal takes no body")
        return {"partitioned": False}
    for key in body:
        if key != "mode":
            raise web.HTTPBadRequest(reason=f'unknown field "{key}" (partition takes {{"mode": "hold"|"drop"}})')
    mode = body.get("mode", "hold")
    if mode not in PARTITION_MODES:
        raise web.HTTPBadRequest(reason=f'mode: expected one of {", ".join(PARTITION_MODES)}, got {mode!r}'
                                        f"{did_you_mean(str(mode), PARTITION_MODES)}")
    return {"partitioned": True, "partition_mode": mode}


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json(loads=json.loads) if request.can_read_body else {}
    except ValueError as exc:
        raise web.HTTPBadRequest(reason=f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(reason="body must be a JSON object")
    return body


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _json_errors(request: web.Request, handler) -> web.StreamResponse:
    """Every answer is JSON, errors included; expected failures map to 4xx, not tracebacks."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return _error(exc.status, exc.reason)
    except LookupError as exc:
        return _error(404, str(exc.args[0]) if exc.args else "not found")
    except StateError as exc:
        return _error(409, str(exc))
    except LinkdError as exc:
        return _error(exc.status if 400 <= exc.status < 500 else 502, str(exc))
    except SpawnError as exc:
        return _error(500, f"site did not start: {exc}")
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - a JSON 500 and a log line, never a dead supervisor
        print(f"supervisor: internal error on {request.method} {request.path}: {exc!r}", file=sys.stderr,
              flush=True)
        return _error(500, f"internal error: {exc!r}")
