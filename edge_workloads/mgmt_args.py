"""The management interface's command line (see mgmt.py); no asyncio/aiohttp imports (see lean.py).

    --mgmt-port N             serve the management interface over TLS on 127.0.0.1:N (0: any free port)
    --mgmt-cert PEM           the server certificate (chain) for it
    --mgmt-key PEM            its private key (must not be readable by group or others)
    --mgmt-password-file F    the basic-auth password of user `admin`, first line (same rule)

All four together, or none (no management interface). The password is read here, once, so that it
never has to appear on a command line or in the environment.
"""

from __future__ import annotations

import argparse
import os
import stat

from .options import MgmtOptions

MGMT_FLAGS = ("--mgmt-port", "--mgmt-cert", "--mgmt-key", "--mgmt-password-file")
MAX_PASSWORD_BYTES = 1024


def add_mgmt_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mgmt-port", type=int, default=None,
                        help="serve the TLS management interface on this port (0: any free port)")
    parser.add_argument("--mgmt-cert", default=None, help="PEM server certificate of the management interface")
    parser.add_argument("--mgmt-key", default=None, help="PEM private key of that certificate (mode 0600)")
    parser.add_argument("--mgmt-password-file", default=None,
                        help="file whose first line is the management password (mode 0600)")


def mgmt_options(args: argparse.Namespace) -> MgmtOptions | None:
    """None without --mgmt-port; ValueError (one line, no secret in it) for anything wrong."""
    given = {flag: getattr(args, flag[2:].replace("-", "_")) for flag in MGMT_FLAGS}
    if all(v is None for v in given.values()):
        return None
    missing = [flag for flag, v in given.items() if v is None]
    if missing:
        raise ValueError(f"{', '.join(missing)}: the management interface needs all of {', '.join(MGMT_FLAGS)}")
    port = args.mgmt_port
    if not 0 <= port <= 65535:
        raise ValueError(f"--mgmt-port {port}: expected 0..65535")
    if port and port == args.port:
        raise ValueError(f"--mgmt-port {port}: must differ from --port")
    _readable("--mgmt-cert", args.mgmt_cert, secret=False)
    _readable("--mgmt-key", args.mgmt_key, secret=True)
    _readable("--mgmt-password-file", args.mgmt_password_file, secret=True)
    try:
        with open(args.mgmt_password_file, "rb") as f:
            raw = f.read(MAX_PASSWORD_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"--mgmt-password-file {args.mgmt_password_file}: {exc.strerror or exc}") from None
    lines = raw.splitlines()
    password = lines[0].decode("utf-8", "replace") if lines else ""
    if len(raw) > MAX_PASSWORD_BYTES:
        raise ValueError(f"--mgmt-password-file {args.mgmt_password_file}: expected one line of at most "
                         f"{MAX_PASSWORD_BYTES} bytes")
    if not password.strip():
        raise ValueError(f"--mgmt-password-file {args.mgmt_password_file}: the password is empty")
    return MgmtOptions(port=port, cert_file=args.mgmt_cert, key_file=args.mgmt_key, password=password)


def _readable(flag: str, path: str, *, secret: bool) -> None:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ValueError(f"{flag} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{flag} {path}: not a regular file")
    if secret and st.st_mode & 0o077:
        raise ValueError(f"{flag} {path}: readable by others (mode {stat.S_IMODE(st.st_mode):04o}); "
                         "a secret must be 0600")
