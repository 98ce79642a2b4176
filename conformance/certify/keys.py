"""Ed25519 keys for signing certification bundles (cryptography, imported only when needed).

A private key is a PEM file (PKCS#8, as `edge-conformance keygen` writes it) or a file of the raw
32-byte seed (binary, or 64 hex digits). A public key is a PEM file, a raw 32-byte file (binary, 64 hex
digits or base64), or a fingerprint `sha256:<64 hex>`: the SHA-256 of the raw public key, which is how
a bundle's manifest names the key that signed it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from ..model.atomicfile import PRIVATE, PUBLIC, write_atomic
from ..model.errors import ConfigError

_FINGERPRINT = re.compile(r"^sha256:([0-9a-f]{64})$")


def _crypto():
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:  # pragma: no cover - cryptography is a dependency
        raise ConfigError(None, None, None, "signing needs the cryptography package "
                                            "(pip install cryptography)") from None
    return ed25519, serialization


def fingerprint(raw_public: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw_public).hexdigest()


@dataclass
class PublicKey:
    raw: bytes | None  # None when only the fingerprint is known
    fingerprint: str


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(str(path), None, None, f"cannot read {what}: {e.strerror or e}") from None


def _raw32(data: bytes) -> bytes | None:
    """32 raw bytes from a binary, hex or base64 file; None when it is none of those."""
    if len(data) == 32:
        return data
    text = data.strip()
    if len(text) == 64:
        try:
            return binascii.unhexlify(text)
        except (binascii.Error, ValueError):
            pass
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def load_private_key(path: str | Path):
    """An Ed25519PrivateKey from a PEM file or a raw 32-byte seed file."""
    ed25519, serialization = _crypto()
    data = _read(Path(path), "the signing key")
    if b"-----BEGIN" in data:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as e:
            raise ConfigError(str(path), None, None, f"not a usable PEM private key: {e}") from None
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ConfigError(str(path), None, None, "the signing key must be an Ed25519 key "
                                                     f"(this is {type(key).__name__})")
        return key
    seed = _raw32(data)
    if seed is None:
        raise ConfigError(str(path), None, None, "not an Ed25519 private key: expected a PEM file or a raw "
                                                 "32-byte seed (as written by `edge-conformance keygen`)")
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed)


def raw_public(private_key) -> bytes:
    _, serialization = _crypto()
    return private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_public_key(ref: str | Path) -> PublicKey:
    """A public key file (PEM or raw) or a `sha256:<hex>` fingerprint."""
    m = _FINGERPRINT.match(str(ref).strip().lower())
    if m and not Path(str(ref)).exists():
        return PublicKey(None, f"sha256:{m[1]}")
    ed25519, serialization = _crypto()
    data = _read(Path(ref), "the public key")
    if b"-----BEGIN" in data:
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError) as e:
            raise ConfigError(str(ref), None, None, f"not a usable PEM public key: {e}") from None
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise ConfigError(str(ref), None, None, f"not an Ed25519 public key ({type(key).__name__})")
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return PublicKey(raw, fingerprint(raw))
    raw = _raw32(data)
    if raw is None:
        raise ConfigError(str(ref), None, None, "not an Ed25519 public key: expected a PEM file, a raw 32-byte "
                                                "key, or a fingerprint sha256:<64 hex digits>")
    return PublicKey(raw, fingerprint(raw))


def sign(private_key, message: bytes) -> bytes:
    return private_key.sign(message)


def signature_ok(raw_public_key: bytes, signature: bytes, message: bytes) -> bool:
    ed25519, _ = _crypto()
    from cryptography.exceptions import InvalidSignature

    try:
        ed25519.Ed25519PublicKey.from_public_bytes(raw_public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def generate(prefix: str | Path, force: bool = False) -> tuple[Path, Path, str]:
    """Write PREFIX.key (PKCS#8 PEM, mode 0600) and PREFIX.pub (PEM); returns (key, pub, fingerprint)."""
    ed25519, serialization = _crypto()
    prefix = Path(prefix)
    key_path, pub_path = prefix.with_name(prefix.name + ".key"), prefix.with_name(prefix.name + ".pub")
    for p in (key_path, pub_path):
        if p.exists() and not force:
            raise ConfigError(str(p), None, None, "already exists; not overwritten (give --force to replace it)")
    if not key_path.parent.is_dir():
        raise ConfigError(str(key_path.parent), None, None, "no such directory")
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    write_atomic(key_path, pem, mode=PRIVATE)  # 0600 before a byte of it is written, whatever the umask
    write_atomic(pub_path, pub, mode=PUBLIC)
    return key_path, pub_path, fingerprint(raw_public(key))
