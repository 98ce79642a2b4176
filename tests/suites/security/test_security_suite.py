"""security checks run through the plugin: pass on a healthy site, fail on each violation."""

from __future__ import annotations

import os

from tests.helpers.cli import requirement as _req


def test_security_host_and_http_checks(fake_site, make_site, edge_run, tmp_path):
    good = fake_site("--child", "--basic-auth", "operator:Xk2-long-unguessable", name="good")
    bad = fake_site("--extra-listen", "--bad-headers", "--basic-auth", "admin:admin", name="bad")
    # secrets: 0600 in the good data dir, world-readable in the bad one (and a harmless readable file)
    (good.data_dir / "privacy.key").write_bytes(b"k" * 32)
    os.chmod(good.data_dir / "privacy.key", 0o600)
    (good.data_dir / "readme.txt").write_text("hello")
    os.chmod(good.data_dir / "readme.txt", 0o644)
    sub = bad.data_dir / "conf"
    sub.mkdir()
    (sub / "api-token").write_text("t0k3n")
    os.chmod(sub / "api-token", 0o644)
    (bad.data_dir / "server.key").write_text("key")
    os.chmod(bad.data_dir / "server.key", 0o604)

    reqs = [
        _req("PORTS", "security.listening_ports", "unexpected == 0", {"allow": ["22/tcp"]},
             sites=["good", "bad"]),
        _req("PORTS-STRICT", "security.listening_ports", "unexpected == 0",
             {"allow_endpoints": False, "allow": []}, sites=["good"]),
        _req("SECRETS", "security.secret_files", "world_readable == 0", sites=["good", "bad"]),
        _req("CREDS", "security.default_credentials", "accepted_defaults == 0",
             {"delay": "0.01 s", "path": "/"}, sites=["good", "bad"]),
        _req("CREDS-NONE", "security.default_credentials", "accepted_defaults == 0",
             {"delay": "0.01 s", "path": "/health"}, sites=["good"]),
        _req("HEADERS", "security.http_headers", "missing == 0 and version_leaks == 0", {"path": "/health"},
             sites=["good", "bad"]),
        _req("TLS-ABSENT", "security.tls", "tls_version_ok == true", sites=["good"]),
    ]
    sites = [make_site("good", good), make_site("bad", bad)]
    res = edge_run(reqs, sites, ["security"], name="security")

    for rid in ("PORTS", "SECRETS", "CREDS", "HEADERS"):
        assert res.status(rid, "good") == "pass", res.explain(rid, "good")
        assert res.status(rid, "bad") == "fail", res.explain(rid, "bad")

    # the unexpected socket is named with its port and process
    extra = bad.info["extra_port"]
    msg = res("PORTS", "bad")["message"]
    assert f"tcp/{extra}" in msg and f"pid {bad.pid}" in msg, msg
    assert res.value("PORTS", "bad", "unexpected") == 1
    # without the endpoint allowance, the site's own API port is unexpected
    assert res.status("PORTS-STRICT", "good") == "fail"

    notes = " ".join(res("SECRETS", "bad")["notes"])
    assert "api-token" in notes and "server.key" in notes and res.value("SECRETS", "bad", "world_readable") == 2
    assert res.value("SECRETS", "good", "scanned") >= 2

    assert "admin/admin accepted" in res("CREDS", "bad")["message"]
    assert res.value("CREDS", "good", "tried") == 10
    # /health asks for no credentials: there are no default credentials to try, a fact of the site
    assert res.status("CREDS-NONE", "good") == "not-applicable", res.explain("CREDS-NONE", "good")

    hdr = " ".join(res("HEADERS", "bad")["notes"])
    assert "X-Content-Type-Options" in hdr and "FakeSite/1.2.3" in hdr

    tls = res("TLS-ABSENT", "good")  # a gap in the target file: not measured, never not-applicable
    assert tls["status"] == "not-measured" and "no mgmt endpoint" in tls["message"]
    assert tls["ended"]["remedy"] == "declare a `mgmt` endpoint for site good in the target file"


def test_security_tls(fake_site, make_site, edge_run, certs):
    sites = {
        "tls-good": fake_site("--tls", certs.path("good.crt"), certs.path("good.key"), name="tls-good"),
        "tls-self": fake_site("--tls", certs.path("self.crt"), certs.path("self.key"), name="tls-self"),
        "tls-soon": fake_site("--tls", certs.path("soon.crt"), certs.path("soon.key"), name="tls-soon"),
        "tls-legacy": fake_site("--tls", certs.path("good.crt"), certs.path("good.key"), "--tls-legacy",
                                name="tls-legacy"),
        "plain": fake_site(name="plain"),
    }
    if os.path.exists(certs.path("expired.crt")):
        sites["tls-expired"] = fake_site("--tls", certs.path("expired.crt"), certs.path("expired.key"),
                                         name="tls-expired")
    expect = ("tls_version_ok == true and cert_valid == true and expiry_ok == true "
              "and plain_http_refused == true and days_to_expiry >= 30")
    reqs = [
        _req("TLS", "security.tls", expect, {"ca_file": certs.path("ca.pem"), "min_days": 30}),
        _req("TLS-SYSTEM-CA", "security.tls", "cert_valid == true", sites=["tls-good"]),
        _req("HSTS", "security.http_headers", "missing == 0",
             {"endpoint": "mgmt", "ca_file": certs.path("ca.pem"), "path": "/health"},
             sites=["tls-good"]),
    ]
    target = []
    for name, site in sites.items():
        scheme = "http" if name == "plain" else "https"
        target.append(make_site(name, site, hosts=(), endpoints={"mgmt": site.url(scheme)}))
    res = edge_run(reqs, target, ["security"], name="tls")

    assert res.status("TLS", "tls-good") == "pass", res.explain("TLS", "tls-good")
    assert res.value("TLS", "tls-good", "days_to_expiry") >= 363
    assert res.status("HSTS", "tls-good") == "pass", res.explain("HSTS", "tls-good")
    # our test CA is not a system CA
    assert res.status("TLS-SYSTEM-CA", "tls-good") == "fail"

    self_signed = res("TLS", "tls-self")
    assert self_signed["status"] == "fail" and res.value("TLS", "tls-self", "cert_valid") == 0
    assert "self-signed" in " ".join(self_signed["notes"]) or "self signed" in " ".join(self_signed["notes"])

    assert res.status("TLS", "tls-soon") == "fail"
    assert res.value("TLS", "tls-soon", "expiry_ok") == 0 and res.value("TLS", "tls-soon", "cert_valid") == 1

    legacy = res("TLS", "tls-legacy")
    assert legacy["status"] == "fail", res.explain("TLS", "tls-legacy")
    assert res.value("TLS", "tls-legacy", "tls_version_ok") == 0
    assert "TLSv1" in " ".join(legacy["notes"])

    plain = res("TLS", "plain")
    assert plain["status"] == "fail", res.explain("TLS", "plain")
    assert res.value("TLS", "plain", "plain_http_refused") == 0
    assert res.value("TLS", "plain", "tls_version_ok") == 0

    if "tls-expired" in sites:
        expired = res("TLS", "tls-expired")
        assert expired["status"] == "fail"
        assert res.value("TLS", "tls-expired", "days_to_expiry") < 0
        assert "expired" in " ".join(expired["notes"])
