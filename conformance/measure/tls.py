"""TLS probes for management endpoints: protocol versions, certificate validity and expiry, plain HTTP.

Everything is bounded by a timeout and talks only to the host:port it is given (a declared endpoint).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import tempfile
import warnings
from dataclasses import dataclass, field

from ..model.errors import MeasurementError

LEGACY = (("TLSv1", "TLSv1"), ("TLSv1_1", "TLSv1.1"))
_GOOD = ("TLSv1.2", "TLSv1.3")


@dataclass
class TlsReport:
    speaks_tls: bool = False
    negotiated: str | None = None  # e.g. "TLSv1.3"
    legacy_accepted: list[str] = field(default_factory=list)
    legacy_untested: list[str] = field(default_factory=list)
    cert_valid: bool = False
    cert_error: str | None = None
    not_after: dt.datetime | None = None
    subject: str | None = None
    plain_http_status: int | None = None  # status of a plain-HTTP answer on the same port, if any
    plain_http_note: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def version_ok(self) -> bool:
        return self.speaks_tls and self.negotiated in _GOOD and not self.legacy_accepted

    @property
    def days_to_expiry(self) -> float | None:
        if self.not_after is None:
            return None
        return (self.not_after - dt.datetime.now(dt.UTC)).total_seconds() / 86400.0

    @property
    def plain_http_served(self) -> bool:
        # An answer with content (2xx) or a login prompt (401: credentials would travel in clear)
        # means the port serves plain HTTP; a redirect or an error page ("plain HTTP sent to HTTPS
        # port") does not.
        s = self.plain_http_status
        return s is not None and (200 <= s < 300 or s == 401)


def _connect(host: str, port: int, timeout: float) -> socket.socket:
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        raise MeasurementError(f"{host}:{port}: no connection within {timeout:g} s") from None
    except OSError as exc:
        raise MeasurementError(f"{host}:{port}: {exc.strerror or exc}") from None


def _permissive(version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if version is not None:
            ctx.minimum_version = version
            ctx.maximum_version = version
        else:
            ctx.minimum_version = ssl.TLSVersion.TLSv1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")  # so this client can still offer what old servers accept
    except ssl.SSLError:
        pass
    return ctx


def _handshake(ctx: ssl.SSLContext, host: str, port: int, server_name: str | None, timeout: float):
    sock = _connect(host, port, timeout)
    try:
        tls = ctx.wrap_socket(sock, server_hostname=server_name or None)
    except BaseException:
        sock.close()
        raise
    return tls


def probe_tls(host: str, port: int, *, server_name: str | None, ca_file: str | None,
              timeout: float) -> TlsReport:
    report = TlsReport()
    name = server_name or host
    # 1. What does the server pick when we offer everything?
    try:
        tls = _handshake(_permissive(), host, port, name, timeout)
    except (ssl.SSLError, ConnectionResetError, TimeoutError) as exc:
        report.notes.append(f"no TLS handshake on {host}:{port}: {_ssl_reason(exc)}")
    else:
        with tls:
            report.speaks_tls = True
            report.negotiated = tls.version()
            der = tls.getpeercert(binary_form=True)
        if der:
            report.not_after, report.subject = _cert_dates(der)
    if report.speaks_tls:
        # 2. Is the certificate valid for the name (system CAs or ca_file)?
        try:
            ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
        except (OSError, ssl.SSLError) as exc:
            raise MeasurementError(f"ca_file {ca_file}: {exc}") from None
        try:
            with _handshake(ctx, host, port, name, timeout):
                report.cert_valid = True
        except ssl.SSLCertVerificationError as exc:
            report.cert_error = exc.verify_message or _ssl_reason(exc)
        except ssl.SSLError as exc:
            report.cert_error = _ssl_reason(exc)
        # 3. Are legacy protocol versions refused?
        for attr, label in LEGACY:
            version = getattr(ssl.TLSVersion, attr)
            try:
                ctx = _permissive(version)
                with _handshake(ctx, host, port, name, timeout) as s:
                    got = s.version()
                if got == label:
                    report.legacy_accepted.append(label)
            except ssl.SSLError as exc:
                if "NO_PROTOCOLS_AVAILABLE" in str(exc).upper() or "NO PROTOCOLS AVAILABLE" in str(exc).upper():
                    report.legacy_untested.append(label)
            except (ConnectionResetError, TimeoutError, MeasurementError):
                pass  # refused one way or another
    # 4. Does the same port also serve plain HTTP?
    report.plain_http_status, report.plain_http_note = plain_http_status(host, port, name, timeout)
    return report


def plain_http_status(host: str, port: int, name: str, timeout: float) -> tuple[int | None, str]:
    try:
        sock = _connect(host, port, timeout)
    except MeasurementError as exc:
        return None, f"plain HTTP: {exc}"
    with sock:
        try:
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while len(data) < 4096 and b"\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (TimeoutError, OSError) as exc:
            return None, f"plain HTTP: {getattr(exc, 'strerror', None) or exc or 'no answer'}"
    line = data.split(b"\r\n", 1)[0].decode("latin-1", "replace")
    if line.startswith("HTTP/"):
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            return int(parts[1]), f"plain HTTP answered: {line[:80]}"
    if not data:
        return None, "plain HTTP: connection closed without an answer"
    return None, f"plain HTTP: no HTTP answer ({len(data)} bytes of something else)"


def _ssl_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    text = str(exc)
    if reason and reason not in text:
        return f"{reason}: {text}"
    return text or type(exc).__name__


def _cert_dates(der: bytes) -> tuple[dt.datetime | None, str | None]:
    try:
        from cryptography import x509  # noqa: PLC0415 - optional, usually installed

        cert = x509.load_der_x509_certificate(der)
        not_after = getattr(cert, "not_valid_after_utc", None)
        if not_after is None:
            not_after = cert.not_valid_after.replace(tzinfo=dt.UTC)
        return not_after, cert.subject.rfc4514_string()
    except Exception:  # noqa: BLE001 - no cryptography, or a cert it cannot read: try ssl's own decoder
        pass
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(ssl.DER_cert_to_PEM_cert(der))
        info = ssl._ssl._test_decode_cert(path)  # type: ignore[attr-defined]
        when = dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(info["notAfter"]), dt.UTC)
        subject = ",".join("=".join(x) for rdn in info.get("subject", ()) for x in rdn)
        return when, subject
    except Exception:  # noqa: BLE001 - a private decoder: a certificate it cannot read has no dates
        return None, None
    finally:
        os.unlink(path)
