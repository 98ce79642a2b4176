"""The site's management interface: its own port, TLS 1.2+ only, HTTP basic auth (docs/workloads.md).

What a real edge box exposes to its operator, so the security suite has something to judge
(BASE-SEC-02 TLS, BASE-SEC-03 default credentials, BASE-SEC-05 headers):

* TLS only: a plain-HTTP request on the port gets no HTTP answer (the handshake fails and the
  connection closes); TLS 1.0 and 1.1 are refused.
* Every request needs `Authorization: Basic` for user `admin` and the deployment's password
  (--mgmt-password-file); otherwise 401 with a Basic challenge. Defect `default-credentials`: admin/admin
  is accepted too.
* Every answer carries X-Content-Type-Options, Strict-Transport-Security, Cache-Control: no-store and
  X-Frame-Options, and a Server header that names no software version.
* `GET /` (and `GET /status`): the site's status as JSON.

The password lives only in this process's memory and in its 0600 file; it is never logged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import ssl
import time

from aiohttp import web

from .version import VERSION
from .context import Site
from .jsonhttp import reply
from .options import MgmtOptions

USER = "admin"
DEFAULT_PAIR = ("admin", "admin")   # accepted too with the `default-credentials` defect
REALM = "edge site management"
SERVER = "edge-site"                # no version: BASE-SEC-05
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Strict-Transport-Security": "max-age=31536000",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
SHUTDOWN_GRACE_S = 1.0


class MgmtError(Exception):
    """The interface cannot start (bad certificate or key, port taken): one line, exit 2."""


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise MgmtError(f"--mgmt-cert {cert_file} / --mgmt-key {key_file}: cannot load the certificate "
                        f"and its key ({reason})") from None
    return ctx


def _credentials(user: str, password: str) -> bytes:
    return f"{user}:{password}".encode()


class BasicAuth:
    def __init__(self, password: str, accept_default: bool):
        self._accepted = [_credentials(USER, password)]
        if accept_default:
            self._accepted.append(_credentials(*DEFAULT_PAIR))

    def allows(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "basic" or not token.strip():
            return False
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        ok = False
        for accepted in self._accepted:  # compare against all, in constant time each
            ok |= hmac.compare_digest(given, accepted)
        return ok


def build_app(site: Site, mgmt: MgmtOptions, api_port: int) -> web.Application:
    auth = BasicAuth(mgmt.password, accept_default=site.has("default-credentials"))
    metrics = site.metrics
    metrics.counter("mgmt_requests_total", "Management interface requests, by outcome.")

    @web.middleware
    async def authenticate(request: web.Request, handler) -> web.StreamResponse:
        if not auth.allows(request.headers.get("Authorization")):
            metrics.inc("mgmt_requests_total", outcome="unauthorized")
            return reply({"error": "authentication required"}, status=401,
                         headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})
        metrics.inc("mgmt_requests_total", outcome="ok")
        return await handler(request)

    async def security_headers(_request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Server"] = SERVER  # aiohttp only sets its own (versioned) one when absent
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)

    async def status(_request: web.Request) -> web.Response:
        problems = [p for p in await asyncio.gather(*(check() for check in site.health_checks)) if p]
        doc = {"site": site.name, "role": site.options.role, "status": "broken" if problems else "ok",
               "version": VERSION, "uptime_s": round(time.time() - site.started, 3), "api_port": api_port,
               "defects": sorted(site.options.defects),
               **{key: read() for key, read in site.status_fields.items()}}
        if problems:
            doc["problems"] = problems
        return reply(doc)

    app = web.Application(middlewares=[authenticate], client_max_size=64 * 1024)
    app.on_response_prepare.append(security_headers)
    app.router.add_get("/", status)
    app.router.add_get("/status", status)
    return app


async def start(site: Site, mgmt: MgmtOptions, host: str, api_port: int) -> tuple[web.AppRunner, int]:
    """Listen on host:mgmt.port with TLS; (runner, port). MgmtError when it cannot."""
    ctx = tls_context(mgmt.cert_file, mgmt.key_file)
    runner = web.AppRunner(build_app(site, mgmt, api_port), access_log=None, handle_signals=False,
                           shutdown_timeout=SHUTDOWN_GRACE_S)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, mgmt.port, ssl_context=ctx, backlog=128).start()
    except OSError as exc:
        await runner.cleanup()
        raise MgmtError(f"cannot listen on {host}:{mgmt.port} (--mgmt-port): {exc.strerror or exc}") from None
    return runner, runner.addresses[0][1]
