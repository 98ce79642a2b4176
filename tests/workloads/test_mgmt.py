"""The site's management interface (workloads/mgmt.py): TLS 1.2+ only, basic auth, security headers, and
the `default-credentials` defect. Sites are started by hand here (the --mgmt-* arguments)."""

from __future__ import annotations

import base64
import json
import os
import select
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from conformance.emulation import pki
from conformance.measure.tls import plain_http_status, probe_tls
from conformance.measure.web import version_leaks

MODULE = "edge_workloads"


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    return pki.prepare_mgmt(tmp_path_factory.mktemp("mgmt") / "pki",
                            [SimpleNamespace(name="c-mgmt", defects=()), SimpleNamespace(name="c-dflt", defects=())])


class Mgmt:
    def __init__(self, proc: subprocess.Popen, ready: dict, stderr: Path):
        self.proc, self.ready, self.stderr_path = proc, ready, stderr

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.ready['mgmt_port']}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


@pytest.fixture
def start(tmp_path, material):
    started: list[Mgmt] = []

    def run(name: str, defects: tuple[str, ...] = ()) -> Mgmt:
        argv = [sys.executable, "-m", MODULE, "--role", "central", "--name", name,
                "--data-dir", str(tmp_path / name), *material.sites[name].argv(0)]
        if defects:
            argv += ["--defects", ",".join(defects)]
        err = tmp_path / f"{name}.stderr"
        with open(err, "wb") as f:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=f)
        readable, _, _ = select.select([proc.stdout], [], [], 20)
        line = proc.stdout.readline() if readable else b""
        if not line:
            proc.kill()
            proc.wait(10)
            raise AssertionError(f"{name} did not become ready: {err.read_text()[-2000:]}")
        site = Mgmt(proc, json.loads(line), err)
        started.append(site)
        return site

    yield run
    for site in started:
        if site.proc.poll() is None:
            site.proc.terminate()
        site.proc.wait(10)
        for stream in (site.proc.stdin, site.proc.stdout):
            stream.close()


def request(url: str, ca: Path, user: str | None = None, password: str = "") -> tuple[int, dict, bytes]:
    headers = {}
    if user is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    ctx = ssl.create_default_context(cafile=str(ca))
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5, context=ctx) as r:
            return r.status, dict(r.headers.items()), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()


def test_management_needs_the_password_and_sends_security_headers(start, material):
    site = start("c-mgmt")
    password = material.password_file.read_text().strip()
    assert site.ready["mgmt_port"] not in (0, site.ready["port"])

    status, headers, _ = request(site.url + "/", material.ca_cert)
    assert status == 401
    assert headers["WWW-Authenticate"].lower().startswith("basic ")
    for name in ("X-Content-Type-Options", "Strict-Transport-Security"):
        assert name in headers, headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert version_leaks(headers) == [] and headers.get("Server") == "edge-site"

    for user, pw in (("admin", "admin"), ("admin", ""), ("root", password), ("admin", password + "x")):
        assert request(site.url + "/", material.ca_cert, user, pw)[0] == 401, (user, pw == password)

    status, headers, body = request(site.url + "/", material.ca_cert, "admin", password)
    assert status == 200 and headers["X-Content-Type-Options"] == "nosniff"
    doc = json.loads(body)
    assert doc["site"] == "c-mgmt" and doc["status"] == "ok" and doc["api_port"] == site.ready["port"]
    assert request(site.url + "/status", material.ca_cert, "admin", password)[0] == 200
    assert password not in site.stderr()


def test_tls_only_modern_versions_and_a_valid_certificate(start, material):
    site = start("c-mgmt")
    port = site.ready["mgmt_port"]
    report = probe_tls("127.0.0.1", port, server_name=None, ca_file=str(material.ca_cert), timeout=5)
    assert report.speaks_tls and report.negotiated in ("TLSv1.2", "TLSv1.3")
    assert report.cert_valid, report.cert_error
    assert 364 < report.days_to_expiry <= 365
    if report.legacy_untested:
        pytest.skip(f"this machine cannot offer {report.legacy_untested}")
    assert report.legacy_accepted == [] and report.version_ok
    # Plain HTTP on the management port gets no HTTP answer at all (the API port still speaks HTTP).
    assert plain_http_status("127.0.0.1", port, "127.0.0.1", 5)[0] is None
    assert not report.plain_http_served
    assert plain_http_status("127.0.0.1", site.ready["port"], "127.0.0.1", 5)[0] is not None


def test_default_credentials_defect_accepts_admin_admin(start, material):
    site = start("c-dflt", defects=("default-credentials",))
    password = material.password_file.read_text().strip()
    assert request(site.url + "/", material.ca_cert, "admin", "admin")[0] == 200
    assert request(site.url + "/", material.ca_cert, "admin", password)[0] == 200
    assert request(site.url + "/", material.ca_cert, "admin", "password")[0] == 401
    assert request(site.url + "/", material.ca_cert)[0] == 401


def test_no_management_interface_without_the_flags(tmp_path):
    argv = [sys.executable, "-m", MODULE, "--role", "central", "--name", "plain", "--data-dir", str(tmp_path / "p")]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        readable, _, _ = select.select([proc.stdout], [], [], 20)
        ready = json.loads(proc.stdout.readline()) if readable else {}
        assert ready.get("ready") is True and "mgmt_port" not in ready
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdin.close()
        proc.stdout.close()


def _bad(tmp_path, material, **change) -> subprocess.CompletedProcess:
    flags = {"--mgmt-port": "0", "--mgmt-cert": str(material.sites["c-mgmt"].cert),
             "--mgmt-key": str(material.sites["c-mgmt"].key), "--mgmt-password-file": str(material.password_file)}
    for k, v in change.items():
        flag = "--" + k.replace("_", "-")
        if v is None:
            flags.pop(flag)
        else:
            flags[flag] = v
    argv = [sys.executable, "-m", MODULE, "--role", "central", "--name", "bad", "--data-dir", str(tmp_path / "bad"),
            *[x for kv in flags.items() for x in kv]]
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)


def test_bad_management_arguments_are_one_line_and_exit_2(tmp_path, material):
    open_key = tmp_path / "open.key"
    open_key.write_bytes(material.sites["c-mgmt"].key.read_bytes())
    os.chmod(open_key, 0o644)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    empty = tmp_path / "empty.password"
    empty.write_text("\n")
    os.chmod(empty, 0o600)
    password = material.password_file.read_text().strip()
    cases = [
        ({"mgmt_key": None}, "--mgmt-key"),
        ({"mgmt_port": "70000"}, "--mgmt-port 70000"),
        ({"mgmt_key": str(open_key)}, "readable by others"),
        ({"mgmt_cert": str(tmp_path / "nope.pem")}, "No such file"),
        ({"mgmt_cert": str(junk)}, "--mgmt-cert"),
        ({"mgmt_password_file": str(empty)}, "empty"),
    ]
    for change, message in cases:
        done = _bad(tmp_path, material, **change)
        assert done.returncode == 2, (change, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in done.stderr, (change, done.stderr)
        assert lines[0].startswith(f"python -m {MODULE}: error:") and message in lines[0], (change, lines[0])
        assert password not in done.stderr and done.stdout == ""
