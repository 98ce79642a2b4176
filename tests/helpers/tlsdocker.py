"""This machine's Docker engine seen as a site's engine over TCP with TLS both ways (tcp://127.0.0.1:PORT,
`--tlsverify`), for the docker probe runtime's `engine:` (docs/real-targets.md, "Runtimes"), where no
second daemon can be started: an asyncio TLS server on loopback that requires a client certificate signed
by its CA and relays each connection to /var/run/docker.sock (attach and hijacked streams included: it
is a byte relay).

    proxy = TlsDocker.start(root)   # root/ca.pem, server.pem/.key, client.pem/.key
    proxy.url, proxy.ca, proxy.cert, proxy.key
    proxy.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DOCKER_SOCKET = "/var/run/docker.sock"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, key: Any, cert: x509.Certificate) -> None:
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = path.with_suffix(".key")
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)


def make_pki(root: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate (clientAuth), all EC P-256."""
    root.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("test docker CA")).issuer_name(_name("test docker CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    _write(root / "ca", ca_key, ca)
    for name, usage, sans in (("server", ExtendedKeyUsageOID.SERVER_AUTH,
                               [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                              ("client", ExtendedKeyUsageOID.CLIENT_AUTH, [])):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(_name(f"test docker {name}")).issuer_name(ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        _write(root / name, key, builder.sign(ca_key, hashes.SHA256()))


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


@dataclass
class TlsDocker:
    root: Path
    port: int = 0
    loop: asyncio.AbstractEventLoop | None = None
    server: asyncio.AbstractServer | None = None
    thread: threading.Thread | None = None
    refused: int = 0  # TLS handshakes that failed (no or a wrong client certificate)

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    ca = property(lambda self: self.root / "ca.pem")
    cert = property(lambda self: self.root / "client.pem")
    key = property(lambda self: self.root / "client.key")

    @classmethod
    def start(cls, root: Path) -> TlsDocker:
        make_pki(root)
        proxy = cls(root)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(root / "server.pem", root / "server.key")
        context.load_verify_locations(root / "ca.pem")
        context.verify_mode = ssl.CERT_REQUIRED
        proxy.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def serve() -> None:
            proxy.server = await asyncio.start_server(proxy._relay, "127.0.0.1", 0, ssl=context)
            proxy.port = proxy.server.sockets[0].getsockname()[1]
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(proxy.loop)
            proxy.loop.set_exception_handler(lambda loop, ctx: None)  # failed handshakes: counted, not logged
            proxy.loop.run_until_complete(serve())
            proxy.loop.run_forever()

        proxy.thread = threading.Thread(target=run, name="tls-docker", daemon=True)
        proxy.thread.start()
        if not ready.wait(10):
            raise RuntimeError("the TLS relay to Docker did not start")
        return proxy

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(DOCKER_SOCKET)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        for w in (writer, up_writer):
            with contextlib.suppress(Exception):
                w.close()

    def stop(self) -> None:
        if self.loop is None:
            return

        async def close() -> None:
            if self.server is not None:
                self.server.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self.thread is not None:
            self.thread.join(10)
