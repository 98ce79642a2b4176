"""Small JSON helpers shared by the handlers, so every error has the same shape: {"error": "..."}."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


def reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error(status: int, message: str, **extra: Any) -> web.Response:
    return reply({"error": message, **extra}, status=status)


class BadRequest(Exception):
    """Raised by request parsing; the middleware turns it into a 400 reply."""


async def read_json(request: web.Request) -> tuple[Any, int]:
    """Parsed JSON body and its size in bytes; BadRequest when it is not JSON."""
    body = await request.read()
    try:
        return json.loads(body, parse_constant=_reject_constant), len(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None


def _reject_constant(name: str) -> None:
    # NaN and Infinity are not JSON; accepting them would make digests depend on the parser.
    raise ValueError(f"{name} is not allowed")


def require_object(value: Any, what: str = "body") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return value


def require_site(body: dict[str, Any]) -> str:
    """The reporting site's name (`site`), which every message from an edge to central carries."""
    name = body.get("site")
    if not isinstance(name, str) or not name:
        raise BadRequest("site: expected a site name")
    return name
