"""A real run of the harness (once per session) against a loopback server (helpers: tests.helpers.certify)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.certify import certify_env, write_token_target
from tests.helpers.cli import CLI
from tests.helpers.servers import StubServer


@pytest.fixture(scope="session")
def server():
    """Loopback HTTP: /health 200, /flaky 503 until `server.flaky_ok = True`, anything else 404."""
    with StubServer() as stub:
        yield stub, stub.url


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


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, server) -> Path:
    """One real, non-conformant run (functional suite): a work dir holding profile, target and out/."""
    work = tmp_path_factory.mktemp("certify-run")
    (work / "certify.yaml").write_text(CHILD_PROFILE, encoding="utf-8")
    write_token_target(work / "target.yaml", server[1])
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
