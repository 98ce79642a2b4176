"""The certification tests' helpers: the target's credential, the command line in process, and
bundles read, changed and re-packed as a tamperer would."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.cli import cli_env, write_target

TOKEN_VAR = "EDGE_CERTIFY_TEST_TOKEN"
TOKEN = "s3cr3t-t0ken-value"


def write_token_target(path: Path, url: str) -> Path:
    """One edge site, store-1, endpoint `api` at `url`, its token credential from TOKEN_VAR."""
    return write_target(path, {"api": url}, credentials={"token": f"${{{TOKEN_VAR}}}"})


def certify_env() -> dict[str, str]:
    """cli_env() with the target's credential variable set."""
    return cli_env({TOKEN_VAR: TOKEN})


@dataclass
class Proc:
    returncode: int
    stdout: str
    stderr: str


def cli(*args, cwd: Path, env: dict | None = None) -> Proc:
    """The command line, in process (click's CliRunner) from directory `cwd`; `env`: variables to set
    (None unsets). The target's credential variable is set unless `env` says otherwise."""
    from click.testing import CliRunner

    from conformance.cli import main

    old = os.getcwd()
    os.chdir(cwd)
    try:
        r = CliRunner().invoke(main, [str(a) for a in args], env={TOKEN_VAR: TOKEN, **(env or {})},
                               catch_exceptions=False)
    finally:
        os.chdir(old)
    return Proc(r.exit_code, r.stdout, r.stderr)


# ------------------------------------------------------------------ bundles: read, change, re-pack


def read_bundle(path: Path) -> tuple[str, dict[str, bytes]]:
    with tarfile.open(path, "r:gz") as tar:
        members = {}
        root = None
        for info in tar:
            root, _, rel = info.name.partition("/")
            members[rel] = tar.extractfile(info).read()
    return root, members


def write_bundle(path: Path, root: str, members: dict[str, bytes], order: list[str] | None = None) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in order or list(members):
            info = tarfile.TarInfo(f"{root}/{name}")
            info.size = len(members[name])
            tar.addfile(info, io.BytesIO(members[name]))
    path.write_bytes(gzip.compress(buf.getvalue()))
    return path


def tamper(bundle: Path, out: Path, change, fix_digests: bool = True) -> Path:
    """Re-pack `bundle` after change(members) edits it, recomputing the manifest's digests like a
    tamperer who knows the format would (the signature, if any, is left as it was)."""
    root, members = read_bundle(bundle)
    change(members)
    if fix_digests:
        manifest = json.loads(members["manifest.json"])
        manifest["files"] = {n: hashlib.sha256(d).hexdigest() for n, d in sorted(members.items())
                             if n not in ("manifest.json", "manifest.sig")}
        members["manifest.json"] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    return write_bundle(out, root, members)


def edit_results(members: dict[str, bytes], fn) -> None:
    data = json.loads(members["results.json"])
    fn(data)
    members["results.json"] = (json.dumps(data, indent=2) + "\n").encode()
