"""Signed bearer tokens: HMAC-SHA256 with a key id, so an edge can validate with a cached key.

Format: v1.<kid>.<base64url(JSON claims)>.<base64url(HMAC-SHA256(secret, "v1.<kid>.<claims>"))>
Claims: {"sub": subject, "iat": issued-at, "exp": expiry} (seconds since the epoch).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any


class InvalidToken(Exception):
    pass


def new_key() -> dict[str, Any]:
    return {"kid": secrets.token_hex(4), "alg": "HS256", "secret": _b64(secrets.token_bytes(32)),
            "created": time.time()}


def issue(key: dict[str, Any], subject: str, ttl_s: float, now: float | None = None) -> tuple[str, float]:
    now = time.time() if now is None else now
    expires = now + ttl_s
    claims = _b64(json.dumps({"sub": subject, "iat": round(now, 3), "exp": round(expires, 3)},
                             separators=(",", ":")).encode())
    signed = f"v1.{key['kid']}.{claims}"
    return f"{signed}.{_b64(_sign(key, signed))}", expires


def key_id(token: str) -> str:
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != "v1":
        raise InvalidToken("malformed token")
    return parts[1]


def verify(token: str, keys: dict[str, dict[str, Any]], now: float | None = None) -> dict[str, Any]:
    """Claims of a valid token; InvalidToken says why not."""
    kid = key_id(token)
    key = keys.get(kid)
    if key is None:
        raise InvalidToken(f"unknown key id {kid}")
    signed, _, signature = token.rpartition(".")
    try:
        given = _unb64(signature)
        claims = json.loads(_unb64(signed.split(".")[2]))
    except ValueError:
        raise InvalidToken("malformed token") from None
    if not hmac.compare_digest(given, _sign(key, signed)):
        raise InvalidToken("bad signature")
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), (int, float)):
        raise InvalidToken("malformed claims")
    if claims["exp"] < (time.time() if now is None else now):
        raise InvalidToken("token expired")
    return claims


def renew(token: str, keys: dict[str, dict[str, Any]], signing_key: dict[str, Any], max_ttl_s: float,
          now: float | None = None) -> tuple[str, float, dict[str, Any]]:
    """A fresh token for the subject of a still-valid `token`, with its lifetime (at most max_ttl_s),
    signed with `signing_key`: (token, expires_at, the old claims). InvalidToken for an invalid one:
    only a holder of a valid token renews, so renewal extends a session, never starts one."""
    claims = verify(token, keys, now)
    lifetime = float(claims["exp"]) - float(claims.get("iat", claims["exp"]))
    ttl = min(max(lifetime, 1.0), max_ttl_s)
    fresh, expires = issue(signing_key, str(claims.get("sub", "")), ttl, now)
    return fresh, expires, claims


def bearer(authorization: str | None) -> str:
    if not authorization or not authorization.startswith("Bearer "):
        raise InvalidToken("missing Authorization: Bearer token")
    return authorization[len("Bearer "):].strip()


def _sign(key: dict[str, Any], signed: str) -> bytes:
    return hmac.new(_unb64(key["secret"]), signed.encode(), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None
