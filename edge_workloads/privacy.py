"""Anonymisation at the edge, before anything leaves the site (white paper use case 9, Privacy).

Personal values are replaced by a keyed hash (HMAC-SHA256 with a secret that never leaves the site):
central can still count and join on "the same customer" without learning who it is. A field is
personal when its name is in the personal_fields setting (at any depth), or when it sits inside an
object named "personal".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from typing import Any

PSEUDONYM_PREFIX = "anon:"


def pseudonym(secret: bytes, value: Any) -> str:
    raw = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return PSEUDONYM_PREFIX + hmac.new(secret, raw, hashlib.sha256).hexdigest()[:24]


def anonymise(record: Any, secret: bytes, personal_fields: list[str] | tuple[str, ...]) -> Any:
    fields = set(personal_fields)

    def walk(value: Any, inside_personal: bool) -> Any:
        if isinstance(value, dict):
            return {key: (pseudonym(secret, item) if (inside_personal or key in fields)
                          and not isinstance(item, (dict, list)) else
                          walk(item, inside_personal or key in fields or key == "personal"))
                    for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, inside_personal) for item in value]
        return pseudonym(secret, value) if inside_personal else value

    return walk(record, False)


def is_local_only(record: Any) -> bool:
    return isinstance(record, dict) and record.get("local_only") is True


def load_site_secret(data_dir: str, *, world_readable: bool = False) -> bytes:
    """The site's pseudonymisation key, created once and kept in the data dir (mode 0600)."""
    path = os.path.join(data_dir, "privacy.key")
    try:
        with open(path, "rb") as f:
            secret = f.read()
        if len(secret) >= 32:
            set_key_mode(path, world_readable)
            return secret
    except FileNotFoundError:
        pass
    secret = secrets.token_bytes(32)
    write_key_file(path, secret, world_readable)
    return secret


def key_mode(world_readable: bool) -> int:
    # The world-readable-key defect: the key file is 0644, readable by every local user (a careless
    # umask, a copy made as root). security.secret_files must find it.
    return 0o644 if world_readable else 0o600


def set_key_mode(path: str, world_readable: bool) -> None:
    """Every start puts the mode right (or, with the defect, wrong), whatever an earlier run left."""
    os.chmod(path, key_mode(world_readable))


def write_key_file(path: str, data: bytes, world_readable: bool = False) -> None:
    """Atomically, durably, and never readable by others for a moment (unless the defect says so)."""
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), key_mode(world_readable))   # not left to the umask
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)
