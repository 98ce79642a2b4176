"""Command line of a site process (the process contract in docs/workloads.md).

python -m edge_workloads --role central|edge --name NAME --data-dir DIR
    [--central-url URL] [--port 0] [--defects d1,d2] [--site-config JSON|@FILE]
    [--mgmt-port 0 --mgmt-cert PEM --mgmt-key PEM --mgmt-password-file FILE]

Every bad argument is one line on stderr and exit 2; nothing here prints a traceback.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from .defects import CENTRAL_DEFECTS, UnknownDefect, parse_defects
from .mgmt_args import add_mgmt_arguments, mgmt_options
from .options import SiteOptions
from .settings import Settings, SettingsError

PROG = "python -m edge_workloads"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:   # one line instead of argparse's usage block
        raise UsageError(message)


def parse_args(argv: Sequence[str] | None) -> SiteOptions:
    parser = _Parser(prog=PROG, description="Run one emulated site (edge or central).")
    parser.add_argument("--role", required=True, choices=("central", "edge"))
    parser.add_argument("--name", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--central-url", help="central's base URL (the WAN link relay); edge only")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--defects", default="", help="comma-separated defect switches")
    parser.add_argument("--site-config", default=None, help="JSON object of settings, or @FILE")
    add_mgmt_arguments(parser)
    args = parser.parse_args(argv)

    if not NAME_PATTERN.fullmatch(args.name):
        raise UsageError(f"--name {args.name!r}: use letters, digits, '.', '_' and '-' (at most 64)")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: expected 0..65535")
    if args.role == "edge":
        if not args.central_url:
            raise UsageError("--central-url is required for --role edge")
        if not re.fullmatch(r"http://[^/\s]+(/\S*)?", args.central_url):
            raise UsageError(f"--central-url {args.central_url!r}: expected http://HOST:PORT")
    try:
        defects = parse_defects(args.defects)
    except UnknownDefect as exc:
        raise UsageError(f"--defects: {exc}") from None
    site_config = _site_config(args.site_config)
    try:
        Settings(site_config)
    except SettingsError as exc:
        raise UsageError(f"--site-config: {exc}") from None
    if args.role == "central" and defects - CENTRAL_DEFECTS:
        unused = ", ".join(sorted(defects - CENTRAL_DEFECTS))
        print(f"{PROG}: note: defects with no effect on a central site: {unused}", file=sys.stderr)
    try:
        mgmt = mgmt_options(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return SiteOptions(role=args.role, name=args.name, data_dir=args.data_dir,
                       central_url=args.central_url if args.role == "edge" else None,
                       port=args.port, defects=defects, site_config=site_config, mgmt=mgmt)


def _site_config(text: str | None) -> dict:
    if text is None or not text.strip():
        return {}
    source = "--site-config"
    if text.startswith("@"):
        source = text[1:]
        try:
            with open(source, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise UsageError(f"--site-config {source}: {exc.strerror or exc}") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{source}: not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{source}: expected a JSON object of settings")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    try:
        options = parse_args(argv)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    from .lean import prepare_site_process

    prepare_site_process(tls=options.mgmt is not None)
    import asyncio   # only now: asyncio imports ssl when it can (see lean.py)

    from .runtime import StartupError, serve

    try:
        return asyncio.run(serve(options))
    except StartupError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:   # Ctrl-C before the signal handlers were installed
        return 130
