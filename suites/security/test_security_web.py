"""Security checks on a site's HTTP endpoints: TLS on management, default credentials, headers.

Traffic goes only to the endpoints the target declares for the site, never anywhere else.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest

from conformance.measure.latency import is_loopback_host
from conformance.measure.tls import probe_tls
from conformance.measure.web import asks_for_basic_auth, basic_auth, fetch, header, version_leaks
from conformance.model.errors import MeasurementError

# A short, bounded list: the usual factory defaults and empty passwords. Never more than 10 tries.
DEFAULT_PAIRS = ("admin:admin", "admin:", "root:root", "admin:password", "root:", "admin:1234",
                 "user:user", "guest:guest", "root:toor", "admin:changeme")
MAX_PAIRS = 10


def _declared(edge, name: str) -> str:
    if name not in edge.site.endpoints:
        # A gap in the target file, not a fact of the site: every site is managed and serves somehow.
        edge.not_measured(f"site declares no {name} endpoint",
                          f"declare a `{name}` endpoint for site {edge.site.name} in the target file")
    url = edge.site.endpoints[name]
    if (urlsplit(url).hostname or "") not in edge.allowed_hosts:  # pragma: no cover - declared, so allowed
        edge.error(f"{url} is not a declared endpoint")
    return url


# ---------------------------------------------------------------------------------------------
# security.tls


@pytest.mark.edge_check("security.tls")
def test_tls(edge):
    p = edge.params
    name = p.get("endpoint") or "mgmt"
    url = _declared(edge, name)
    parts = urlsplit(url)
    host = parts.hostname
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    if not port:
        edge.error(f"{url} names no port")
    min_days = int(p.get("min_days") if p.get("min_days") is not None else 30)
    if parts.scheme == "http":
        edge.note(f"{name} endpoint {url} is declared as plain http")
    report = probe_tls(host, port, server_name=p.get("server_name"), ca_file=edge.ca_file,
                       timeout=p["timeout"])
    for n in report.notes:
        edge.note(n)
    if report.speaks_tls:
        edge.note(f"negotiated {report.negotiated}"
                  + (f"; legacy accepted: {', '.join(report.legacy_accepted)}" if report.legacy_accepted else
                     "; TLS 1.0 and 1.1 refused" if not report.legacy_untested else
                     f"; could not offer {', '.join(report.legacy_untested)} from this machine"))
        if report.cert_error:
            edge.note(f"certificate not valid for {p.get('server_name') or host}: {report.cert_error}")
        if report.subject:
            edge.note(f"certificate {report.subject}, expires {report.not_after:%Y-%m-%d}"
                      if report.not_after else f"certificate {report.subject}")
    edge.note(report.plain_http_note)
    if report.legacy_untested and not report.legacy_accepted and report.speaks_tls:
        edge.inconclusive(f"this machine's TLS library cannot offer {', '.join(report.legacy_untested)}, "
                          "so their refusal cannot be shown")
    days = report.days_to_expiry
    edge.record("tls_version_ok", report.version_ok)
    edge.record("cert_valid", report.speaks_tls and report.cert_valid)
    edge.record("days_to_expiry", int(days) if days is not None else 0)
    if days is None:
        edge.note("no certificate: days_to_expiry recorded as 0")
    edge.record("expiry_ok", days is not None and days >= min_days)
    edge.record("plain_http_refused", not report.plain_http_served)


# ---------------------------------------------------------------------------------------------
# security.default_credentials


def _pairs(edge) -> list[tuple[str, str]]:
    raw = edge.params.get("pairs") or list(DEFAULT_PAIRS)
    if len(raw) > MAX_PAIRS:
        edge.error(f"pairs: at most {MAX_PAIRS} credentials may be tried, got {len(raw)}")
    out = []
    for item in raw:
        user, sep, password = str(item).partition(":")
        if not sep:
            edge.error(f'pairs: expected "user:password", got {item!r}')
        out.append((user, password))
    return out


@pytest.mark.edge_check("security.default_credentials")
def test_default_credentials(edge):
    p = edge.params
    names = p.get("endpoints") or [n for n, u in edge.site.endpoints.items()
                                   if urlsplit(u).scheme in ("http", "https")]
    for n in names:
        if n not in edge.site.endpoints:
            edge.error(f"site declares no {n} endpoint (endpoints: {', '.join(sorted(edge.site.endpoints))})")
    pairs = _pairs(edge)
    delay = float(p.get("delay") if p.get("delay") is not None else 0.3)
    own_site = edge.emulation and all(is_loopback_host(urlsplit(edge.site.endpoints[n]).hostname or "")
                                      for n in names)
    if own_site and delay:
        # The pause spares a real box's lockout and rate limits; a site this harness started itself (on
        # loopback: an emulated target file edited to point elsewhere keeps the pause) has none, and
        # 10 pairs x 0.3 s x 51 sites would add minutes to a fleet-50 run.
        edge.note(f"no {delay:g} s pause between attempts: an emulated site this harness started")
        delay = 0.0
    path = p.get("path") or "/"
    accepted, tried, protected = 0, 0, 0
    seen = set()
    for name in names:
        base = edge.site.endpoints[name]
        url = base.rstrip("/") + "/" + path.lstrip("/")
        if urlsplit(url).scheme not in ("http", "https") or url in seen:
            continue
        seen.add(url)
        first = fetch(url, timeout=p["timeout"], ca_file=edge.ca_file)
        if not asks_for_basic_auth(first):
            edge.note(f"{name}: GET {url} -> {first.status} without credentials; no basic-auth challenge")
            continue
        protected += 1
        for user, password in pairs:
            if tried:
                time.sleep(delay)
            tried += 1
            try:
                r = fetch(url, timeout=p["timeout"], ca_file=edge.ca_file,
                          headers={"Authorization": basic_auth(user, password)})
            except MeasurementError as exc:
                edge.note(f"{name}: {user}/{'(empty)' if not password else password}: {exc}")
                continue
            if r.status not in (401, 403, 407) and r.status < 500:
                accepted += 1
                edge.note(f"{name}: default credentials {user}/{password or '(empty)'} accepted "
                          f"on {url} (status {r.status})")
        edge.note(f"{name}: tried {len(pairs)} default credential pairs on {url}")
    if not protected:
        # A fact of the site: nothing asks for credentials, so there are no default credentials to try.
        edge.not_applicable("none of the site's endpoints asks for HTTP basic-auth credentials at " + path)
    edge.record("accepted_defaults", accepted)
    edge.record("tried", tried)
    edge.record("protected", protected)


# ---------------------------------------------------------------------------------------------
# security.http_headers


@pytest.mark.edge_check("security.http_headers")
def test_http_headers(edge):
    p = edge.params
    name = p.get("endpoint") or "api"
    base = _declared(edge, name)
    url = base.rstrip("/") + "/" + (p.get("path") or "/").lstrip("/")
    r = fetch(url, timeout=p["timeout"], ca_file=edge.ca_file)
    edge.note(f"GET {url} -> {r.status}")
    required = [str(h) for h in (p.get("required") or [])]
    if urlsplit(url).scheme == "https" and p.get("hsts", True) and \
            "strict-transport-security" not in {h.lower() for h in required}:
        required.append("Strict-Transport-Security")
    missing = [h for h in required if header(r.headers, h) is None]
    for h in missing:
        edge.note(f"missing header {h}")
    leaks = version_leaks(r.headers)
    for leak in leaks:
        edge.note(f"version leak: {leak}")
    edge.record("missing", len(missing))
    edge.record("version_leaks", len(leaks))
