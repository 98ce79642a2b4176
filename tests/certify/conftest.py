"""A real run of the harness (once per session) against a loopback server, and bundle helpers."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "conformance.cli"]


def cli_env() -> dict[str, str]:
    # no CI-provided summary file, no pytest variables of the outer run (as tests/cli does)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PYTEST_"))}
    env["PYTEST_ADDOPTS"] = "-p no:hypothesispytest -p no:benchmark"
    return env

TOKEN_VAR = "EDGE_CERTIFY_TEST_TOKEN"
TOKEN = "s3cr3t-t0ken-value"


class _State:
    flaky_ok = False


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        if self.path == "/health":
            body, status = json.dumps({"status": "ok"}).encode(), 200
        elif self.path == "/flaky":
            body, status = b"{}", (200 if _State.flaky_ok else 503)
        else:
            body, status = b'{"error": "not found"}', 404
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def server():
    """Loopback HTTP: /health 200, /flaky 503 until `server.flaky_ok = True`, anything else 404."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield _State, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


CHILD_PROFILE = """\
id: certify-test
version: "1"
title: Certification test (extends the shipped baseline by name)
extends: edge-baseline
requirements:
  - id: BASE-FUN-03
    expect: status == 200 and latency <= 2 s
  - {id: CERT-BAD, title: a page that is not there, level: must, check: functional.http,
     params: {path: /missing, timeout: 5 s}, expect: status == 200}
  - {id: CERT-SHOULD, title: advisory failure, level: should, check: functional.http,
     params: {path: /missing, timeout: 5 s}, expect: status == 200}
  - {id: CERT-FLEET, title: every site healthy (quorum), level: must, check: functional.http,
     params: {path: /health, timeout: 5 s}, expect: status == 200, sites: 100%}
"""


def write_target(path: Path, url: str) -> Path:
    path.write_text(f"""name: loopback
sites:
  - name: store-1
    role: edge
    endpoints:
      api: "{url}"
    credentials:
      token: "${{{TOKEN_VAR}}}"
""", encoding="utf-8")
    return path


def certify_env() -> dict[str, str]:
    env = cli_env()
    env[TOKEN_VAR] = TOKEN
    return env


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, server) -> Path:
    """One real, non-conformant run (functional suite): a work dir holding profile, target and out/."""
    work = tmp_path_factory.mktemp("certify-run")
    (work / "certify.yaml").write_text(CHILD_PROFILE, encoding="utf-8")
    write_target(work / "target.yaml", server[1])
    proc = subprocess.run([*CLI, "run", "--profile", "certify.yaml", "--target", "target.yaml",
                           "--suite", "functional", "--out", "out"], cwd=work, env=certify_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return work


@pytest.fixture
def work(run_dir, tmp_path) -> Path:
    """A private copy of the run's work dir (tests may change files in it)."""
    dst = tmp_path / "work"
    shutil.copytree(run_dir, dst)
    return dst


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


def entry(data: dict, rid: str) -> dict:
    return next(r for r in data["requirements"] if r["id"] == rid)
