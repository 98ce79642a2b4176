"""Fixtures for the host/security/footprint suite tests: fake site processes, certificates, and a
runner that executes the real suites through the plugin in a subprocess and returns results.json."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conformance.model.paths import suites_dir

from tests.helpers.processes import stop_at_eof

HERE = Path(__file__).resolve().parent
FAKE_SITE = HERE / "fake_site.py"


class FakeSite:
    def __init__(self, proc: subprocess.Popen, info: dict, data_dir: Path):
        self.proc = proc
        self.info = info
        self.data_dir = data_dir

    @property
    def port(self) -> int:
        return self.info["port"]

    @property
    def pid(self) -> int:
        return self.info["pid"]

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_at_eof(self.proc, 3)


@pytest.fixture
def fake_site(tmp_path):
    """start(*flags, name=...) -> FakeSite; every site is stopped at teardown."""
    started: list[FakeSite] = []

    def start(*flags: str, name: str = "site") -> FakeSite:
        data_dir = tmp_path / f"data-{name}"
        data_dir.mkdir(exist_ok=True)
        ready = tmp_path / f"ready-{name}.json"
        proc = subprocess.Popen([sys.executable, str(FAKE_SITE), "--ready-file", str(ready),
                                 "--data-dir", str(data_dir), *flags],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while not ready.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"fake site {name} exited: {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"fake site {name} did not start")
            time.sleep(0.02)
        site = FakeSite(proc, json.loads(ready.read_text()), data_dir)
        started.append(site)
        return site

    yield start
    for site in started:  # all at once: each takes a moment to shut its server down
        try:
            site.proc.stdin.close()
        except OSError:
            pass
    for site in started:
        site.stop()


def site_entry(name: str, site: FakeSite | None = None, *, hosts=("local://",), endpoints=None, labels=None,
               role: str = "edge") -> dict:
    entry: dict = {"name": name, "role": role}
    eps = dict(endpoints or {})
    if site is not None:
        eps.setdefault("api", site.url())
        entry["labels"] = {"pid": site.pid, "data_dir": str(site.data_dir), "workload": "fake", **(labels or {})}
    elif labels:
        entry["labels"] = labels
    if eps:
        entry["endpoints"] = eps
    if hosts:
        entry["hosts"] = list(hosts)
    return entry


def run_edge(tmp_path: Path, requirements: list[dict], sites: list[dict], suites: list[str],
             name: str = "run", timeout: float = 90, env: dict | None = None) -> dict:
    """Run the shipped suites through the plugin in a subprocess; return (results by (id, site), raw)."""
    work = tmp_path / name
    work.mkdir()
    profile = {"id": f"test-{name}", "version": "1", "title": "suite test", "requirements": requirements}
    target = {"name": f"target-{name}", "sites": sites}
    (work / "profile.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    (work / "target.yaml").write_text(yaml.safe_dump(target, sort_keys=False))
    out = work / "out"
    root = suites_dir()
    cmd = [sys.executable, "-m", "pytest", *[str(root / s) for s in suites], "-c", str(root / "pytest.ini"),
           "--rootdir", str(work), "-p", "no:locust", "-p", "no:cacheprovider", "--import-mode=importlib",
           "-q", "--edge-profile", str(work / "profile.yaml"), "--edge-target", str(work / "target.yaml"),
           "--edge-out", str(out), "--edge-no-reports"]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout, env=env)
    results_file = out / "results.json"
    if not results_file.exists():
        raise AssertionError(f"no results.json; exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    data = json.loads(results_file.read_text())
    data["_stdout"] = proc.stdout
    data["_exit"] = proc.returncode
    return data


class Results:
    def __init__(self, data: dict):
        self.data = data
        self.by = {(r["id"], r["site"]): r for r in data["requirements"]}

    def __call__(self, rid: str, site: str) -> dict:
        try:
            return self.by[(rid, site)]
        except KeyError:
            raise AssertionError(f"no result for {rid}@{site}; have {sorted(self.by)}") from None

    def status(self, rid: str, site: str) -> str:
        return self(rid, site)["status"]

    def value(self, rid: str, site: str, metric: str) -> float:
        return self(rid, site)["measured"][metric]["value"]

    def explain(self, rid: str, site: str) -> str:
        r = self(rid, site)
        return f"{r['status']}: {r['message']} notes={r.get('notes')}"


@pytest.fixture
def edge_run(tmp_path):
    def run(requirements, sites, suites, name="run", timeout=90, env=None) -> Results:
        return Results(run_edge(tmp_path, requirements, sites, suites, name=name, timeout=timeout, env=env))

    return run


# ---------------------------------------------------------------------------------------------
# certificates


class Certs:
    def __init__(self, root: Path):
        self.root = root

    def path(self, name: str) -> str:
        return str(self.root / name)


def _write_certs(root: Path) -> Certs:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    now = dt.datetime.now(dt.UTC)

    def key():
        return ec.generate_private_key(ec.SECP256R1())

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def pem_key(k):
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())

    ca_key = key()
    ca = (x509.CertificateBuilder().subject_name(name("edge test CA")).issuer_name(name("edge test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    (root / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])

    def leaf(fname, *, issuer_key, issuer_name, days_before, days_after):
        k = key()
        cert = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(issuer_name)
                .public_key(k.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now + dt.timedelta(days=days_before))
                .not_valid_after(now + dt.timedelta(days=days_after))
                .add_extension(san, critical=False).sign(issuer_key, hashes.SHA256()))
        (root / f"{fname}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (root / f"{fname}.key").write_bytes(pem_key(k))
        os.chmod(root / f"{fname}.key", 0o600)

    leaf("good", issuer_key=ca_key, issuer_name=ca.subject, days_before=-1, days_after=365)
    leaf("soon", issuer_key=ca_key, issuer_name=ca.subject, days_before=-1, days_after=5)
    leaf("expired", issuer_key=ca_key, issuer_name=ca.subject, days_before=-30, days_after=-1)
    self_key = key()
    leaf("self", issuer_key=self_key, issuer_name=name("127.0.0.1"), days_before=-1, days_after=365)
    return Certs(root)


def _write_certs_openssl(root: Path) -> Certs:  # pragma: no cover - only without `cryptography`
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=root)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
        "-out", "ca.pem", "-days", "3650", "-subj", "/CN=edge test CA")
    ext = root / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for fname, days in (("good", 365), ("soon", 5)):
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{fname}.key",
            "-out", f"{fname}.csr", "-subj", "/CN=127.0.0.1")
        run("x509", "-req", "-in", f"{fname}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{fname}.crt", "-days", str(days), "-extfile", str(ext))
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "self.key",
        "-out", "self.crt", "-days", "365", "-subj", "/CN=127.0.0.1", "-addext",
        "subjectAltName=IP:127.0.0.1")
    # openssl x509 cannot back-date; an expired certificate needs `cryptography`.
    return Certs(root)


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> Certs:
    root = tmp_path_factory.mktemp("certs")
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return _write_certs_openssl(root)
    return _write_certs(root)


@pytest.fixture
def make_site():
    """make_site(name, fake_site_or_None, hosts=..., endpoints=..., labels=...) -> a target site entry."""
    return site_entry
