"""The management interface's secrets for one emulated deployment: a private CA, a server certificate
per site, and the basic-auth password (docs/emulation.md, "Management interface").

    material = prepare_mgmt(state_dir / "pki", topology.sites)
    material.ca_cert                      # what the target file names as each site's ca_file
    material.sites["store-1"].argv(port)  # the site process's --mgmt-* arguments

Layout of the directory (0700; every private key and the password file 0600):

    ca.pem  ca.key                        the deployment's CA (ECDSA P-256, CA_DAYS)
    sites/<site>.pem  sites/<site>.key    the site's server certificate: SAN 127.0.0.1, ::1, localhost
                                          and the site name; SITE_DAYS, or EXPIRING_DAYS with the
                                          `expiring-cert` defect (the provisioner's mistake, so it is
                                          made here and not in the site process)
    mgmt.password                         the management password (user MGMT_USER), random per
                                          deployment; only this file holds it in clear

The password is never logged, never put on a command line and never written to the target file: a
site reads it from the file at start. Nothing here needs asyncio (the docker backend can call it too).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..model.atomicfile import PRIVATE, PUBLIC, write_atomic

MGMT_USER = "admin"
CA_DAYS = 3650
SITE_DAYS = 365
EXPIRING_DAYS = 7            # the `expiring-cert` defect: well inside any sane renewal window
BACKDATE = dt.timedelta(minutes=5)  # tolerate a little clock skew between harness and site
EXPIRING_DEFECT = "expiring-cert"


@dataclass(frozen=True)
class SiteTls:
    name: str
    cert: Path
    key: Path
    password_file: Path

    def argv(self, port: int) -> list[str]:
        """The site process's management arguments (port 0: any free port, then kept)."""
        return ["--mgmt-port", str(port), "--mgmt-cert", str(self.cert), "--mgmt-key", str(self.key),
                "--mgmt-password-file", str(self.password_file)]


@dataclass(frozen=True)
class MgmtMaterial:
    directory: Path
    ca_cert: Path
    ca_key: Path
    password_file: Path
    sites: dict[str, SiteTls]


# ------------------------------------------------------------------------------------------ files


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


# ------------------------------------------------------------------------------------------ keys


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())  # fast (50 sites in milliseconds), TLS 1.2 and 1.3


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edge-conformance emulation"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def create_ca(directory: Path, *, label: str, days: int = CA_DAYS,
              now: dt.datetime | None = None) -> tuple[Path, Path]:
    """A new CA in `directory`: (ca.pem, ca.key)."""
    now = now or dt.datetime.now(dt.UTC)
    key = _new_key()
    subject = _name(f"edge-conformance CA {label}"[:64])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    directory = _private_dir(directory)
    cert_path, key_path = directory / "ca.pem", directory / "ca.key"
    write_atomic(key_path, _key_pem(key), mode=PRIVATE)
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=PUBLIC)
    return cert_path, key_path


def issue_server_cert(ca_cert: Path, ca_key: Path, directory: Path, site: str, *, days: int = SITE_DAYS,
                      now: dt.datetime | None = None) -> tuple[Path, Path]:
    """A server certificate for `site` signed by the CA: (sites/<site>.pem, sites/<site>.key)."""
    now = now or dt.datetime.now(dt.UTC)
    issuer = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    issuer_key = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    key = _new_key()
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                     x509.IPAddress(ipaddress.ip_address("::1")),
                                     x509.DNSName("localhost")]
    if site.lower() != "localhost":
        names.append(x509.DNSName(site.lower()))  # the container hostname with the docker backend
    cert = (x509.CertificateBuilder().subject_name(_name(site)).issuer_name(issuer.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()),
                           critical=False)
            .sign(issuer_key, hashes.SHA256()))
    out = _private_dir(directory / "sites")
    cert_path, key_path = out / f"{site}.pem", out / f"{site}.key"
    write_atomic(key_path, _key_pem(key), mode=PRIVATE)
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=PUBLIC)
    return cert_path, key_path


def new_password() -> str:
    return secrets.token_urlsafe(24)


def prepare_mgmt(directory: Path, sites: Iterable, *, label: str = "") -> MgmtMaterial:
    """CA, one certificate per site and the password, for `sites` (SiteSpecs: name, defects)."""
    directory = _private_dir(directory)
    ca_cert, ca_key = create_ca(directory, label=label or directory.parent.name)
    password_file = directory / "mgmt.password"
    write_atomic(password_file, new_password() + "\n", mode=PRIVATE)
    issued: dict[str, SiteTls] = {}
    for spec in sites:
        days = EXPIRING_DAYS if EXPIRING_DEFECT in tuple(spec.defects) else SITE_DAYS
        cert, key = issue_server_cert(ca_cert, ca_key, directory, spec.name, days=days)
        issued[spec.name] = SiteTls(spec.name, cert, key, password_file)
    return MgmtMaterial(directory, ca_cert, ca_key, password_file, issued)
