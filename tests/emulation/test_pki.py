"""The management interface's PKI (conformance.emulation.pki): private CA, site certificates, password."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import stat
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography import x509

from conformance.emulation import pki


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _days_left(cert: x509.Certificate) -> float:
    return (cert.not_valid_after_utc - dt.datetime.now(dt.UTC)).total_seconds() / 86400


@pytest.fixture
def material(tmp_path):
    sites = [SimpleNamespace(name="central", defects=()),
             SimpleNamespace(name="store-1", defects=("no-fsync",)),
             SimpleNamespace(name="store-2", defects=("expiring-cert",))]
    return pki.prepare_mgmt(tmp_path / "pki", sites, label="test")


def test_secrets_are_private_and_certificates_public(material):
    assert _mode(material.directory) == 0o700
    assert _mode(material.directory / "sites") == 0o700
    assert _mode(material.ca_key) == 0o600
    assert _mode(material.password_file) == 0o600
    assert _mode(material.ca_cert) == 0o644
    for tls in material.sites.values():
        assert _mode(tls.key) == 0o600, tls.key
        assert _mode(tls.cert) == 0o644, tls.cert
    assert not list(material.directory.rglob("*.tmp"))


def test_site_certificates_chain_to_the_ca_and_name_loopback(material):
    ca = _cert(material.ca_cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert 3000 < _days_left(ca)
    assert set(material.sites) == {"central", "store-1", "store-2"}
    for name, tls in material.sites.items():
        cert = _cert(tls.cert)
        cert.verify_directly_issued_by(ca)  # raises if not signed by the CA
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
        assert {"localhost", name} <= set(san.get_values_for_type(x509.DNSName))
        assert cert.not_valid_before_utc <= dt.datetime.now(dt.UTC)


def test_a_year_of_validity_and_seven_days_with_the_expiring_cert_defect(material):
    assert 364 < _days_left(_cert(material.sites["central"].cert)) <= 365
    assert 364 < _days_left(_cert(material.sites["store-1"].cert)) <= 365  # other defects change nothing
    assert 6 < _days_left(_cert(material.sites["store-2"].cert)) <= 7


def test_password_is_random_per_deployment_and_only_in_its_file(tmp_path, material):
    password = material.password_file.read_text().strip()
    assert len(password) >= 24
    other = pki.prepare_mgmt(tmp_path / "other", [SimpleNamespace(name="central", defects=())])
    assert other.password_file.read_text().strip() != password
    assert _cert(other.ca_cert).public_key() != _cert(material.ca_cert).public_key()  # a CA per deployment
    # the only file that holds it
    holders = [p for p in material.directory.rglob("*") if p.is_file() and password.encode() in p.read_bytes()]
    assert holders == [material.password_file]
    # and the site's arguments name the file, never the password
    argv = material.sites["central"].argv(0)
    assert password not in " ".join(argv)
    assert argv[argv.index("--mgmt-password-file") + 1] == str(material.password_file)


def test_argv_keeps_the_port(material):
    argv = material.sites["store-1"].argv(8443)
    assert argv[:2] == ["--mgmt-port", "8443"]
    assert argv[argv.index("--mgmt-cert") + 1].endswith("sites/store-1.pem")
    assert argv[argv.index("--mgmt-key") + 1].endswith("sites/store-1.key")


@pytest.mark.parametrize("server_name", ["127.0.0.1", "localhost"])
def test_tls_handshake_verifies_against_the_private_ca_only(material, server_name):
    tls = material.sites["store-1"]
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    server_ctx.load_cert_chain(tls.cert, tls.key)

    def handshake(client_ctx: ssl.SSLContext) -> str:
        a, b = socket.socketpair()
        a.settimeout(5)
        b.settimeout(5)
        errors: list[BaseException] = []

        def serve() -> None:
            try:
                with server_ctx.wrap_socket(b, server_side=True):
                    pass
            except (ssl.SSLError, OSError) as exc:
                errors.append(exc)

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        try:
            with client_ctx.wrap_socket(a, server_hostname=server_name) as s:
                return s.version() or ""
        finally:
            t.join(5)

    assert handshake(ssl.create_default_context(cafile=str(material.ca_cert))) in ("TLSv1.2", "TLSv1.3")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(ssl.create_default_context())  # the system CAs do not know the deployment's CA
