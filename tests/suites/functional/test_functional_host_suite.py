"""functional host checks (and the API checks) run through the plugin against local:// hosts:
pass on a healthy site, fail on a site that violates them, not measured without hosts, error on bad hosts."""

from __future__ import annotations

import os
import pwd
import time

from tests.helpers.cli import requirement as _req


def test_functional_host_checks(fake_site, make_site, edge_run, tmp_path):
    good = fake_site(name="good")
    (good.data_dir / "edge.conf").write_text("site: good\nmode: edge\n")
    os.chmod(good.data_dir / "edge.conf", 0o640)
    conf = str(good.data_dir / "edge.conf")
    site = ["good"]
    reqs = [
        # process
        _req("P-OK", "functional.process", "running == true and count >= 1", sites=site),
        _req("P-PAT", "functional.process", "running == true", {"process": "fake_site.py"}, sites=site),
        _req("P-BAD", "functional.process", "running == true", {"process": "no-such-daemon-xyz"}, sites=site),
        # port: the site's own port, owned by the site
        _req("PORT-OK", "functional.port", "listening == true and owner_ok == true", sites=site),
        _req("PORT-CLOSED", "functional.port", "listening == true", {"port": 1}, sites=site),
        _req("PORT-OWNER", "functional.port", "owner_ok == true", {"process": "no-such-owner-xyz"}, sites=site),
        # package (Debian userland here: dpkg-query)
        _req("PKG-OK", "functional.package", "installed == true and version_ok == true",
             {"name": "coreutils", "version": ">= 8.0"}, sites=site),
        _req("PKG-OLD", "functional.package", "version_ok == true",
             {"name": "coreutils", "version": ">= 999"}, sites=site),
        _req("PKG-MISSING", "functional.package", "installed == true", {"name": "no-such-package-xyz"}, sites=site),
        # file
        _req("FILE-OK", "functional.file", "exists == true and content_ok == true and mode_ok == true",
             {"path": conf, "contains": "site: good", "regex": "^mode: (edge|central)$", "mode": "0640",
              "owner": pwd.getpwuid(os.getuid()).pw_name}, sites=site),
        _req("FILE-OWNER", "functional.file", "owner_ok == true", {"path": conf, "owner": "no-such-user-xyz"},
             sites=site),
        _req("FILE-MODE", "functional.file", "mode_ok == true", {"path": conf, "max_mode": "0600"}, sites=site),
        _req("FILE-CONTENT", "functional.file", "content_ok == true", {"path": conf, "contains": "site: bad"},
             sites=site),
        _req("FILE-MISSING", "functional.file", "exists == true", {"path": conf + ".nope"}, sites=site),
        # sysctl
        _req("SYSCTL-OK", "functional.sysctl", "value >= 1", {"key": "kernel.pid_max"}, sites=site),
        _req("SYSCTL-BAD", "functional.sysctl", "match == true", {"key": "kernel.pid_max", "value": 12},
             sites=site),
        # clock and disk
        _req("TIME-OK", "functional.time_sync", "offset <= 500 ms", sites=site),
        _req("DISK-OK", "functional.disk_free", "free >= 1 MiB and free_ratio >= 0.01 %", sites=site),
        _req("DISK-BAD", "functional.disk_free", "free >= 1000000 GiB", {"path": "/"}, sites=site),
        # service: this machine has systemd installed but PID 1 is not systemd
        _req("SVC", "functional.service", "running == true", {"name": "no-such-service-xyz"}, sites=site),
        # hosts that are absent, unreachable or misconfigured
        _req("NOHOST", "functional.process", "running == true", {"process": "x"}, sites=["nohosts"]),
        _req("UNREACH", "functional.process", "running == true", {"process": "x"},
             sites=["ssh-down", "docker-missing", "bad-backend"]),
    ]
    sites = [
        make_site("good", good),
        make_site("nohosts", None, hosts=(), endpoints={"api": "http://127.0.0.1:9"}),
        make_site("ssh-down", None, hosts=("ssh://nobody@127.0.0.1:1",)),
        make_site("docker-missing", None, hosts=("docker://no-such-container-xyz",)),
        make_site("bad-backend", None, hosts=("paramiko://nobody@127.0.0.1:1",)),
    ]
    started = time.monotonic()
    res = edge_run(reqs, sites, ["functional"], name="functional")
    assert time.monotonic() - started < 60

    for rid in ("P-OK", "P-PAT", "PORT-OK", "PKG-OK", "FILE-OK", "SYSCTL-OK", "TIME-OK", "DISK-OK"):
        assert res.status(rid, "good") == "pass", res.explain(rid, "good")
    for rid in ("P-BAD", "PORT-CLOSED", "PORT-OWNER", "PKG-OLD", "PKG-MISSING", "FILE-MODE", "FILE-CONTENT",
                "FILE-MISSING", "FILE-OWNER", "SYSCTL-BAD", "DISK-BAD"):
        assert res.status(rid, "good") == "fail", res.explain(rid, "good")

    assert res.value("P-OK", "good", "count") == 1
    assert "0640" in " ".join(res("FILE-MODE", "good")["notes"])
    assert "no-such-owner-xyz" in res("PORT-OWNER", "good")["message"]

    # No systemd as PID 1 here: the service check says so instead of answering "not running".
    svc = res("SVC", "good")
    assert svc["status"] == "error", res.explain("SVC", "good")
    assert "systemd is installed but not running" in svc["message"] or "init system" in svc["message"]

    nohost = res("NOHOST", "nohosts")  # a gap in the target file: not measured, with what to add
    assert nohost["status"] == "not-measured" and "site has no hosts" in nohost["message"]
    assert nohost["ended"]["remedy"] == "give site nohosts a testinfra host in the target file (hosts: [ssh://...])"
    assert "to measure it: give site nohosts a testinfra host" in nohost["message"]
    for s in ("ssh-down", "docker-missing", "bad-backend"):
        r = res("UNREACH", s)
        assert r["status"] == "error", res.explain("UNREACH", s)
        assert r["duration"] < 10, r
    assert "Connection refused" in res("UNREACH", "ssh-down")["message"]
    assert "no-such-container-xyz" in res("UNREACH", "docker-missing")["message"] \
        or "docker" in res("UNREACH", "docker-missing")["message"].lower()


def test_api_checks(fake_site, make_site, edge_run):
    import hashlib

    good = fake_site(name="api-good")
    bad = fake_site("--no-cache-hit", "--reject-telemetry", "--lose-sales", "--bad-headers", name="api-bad")
    body_sha = hashlib.sha256(b"hello edge\n").hexdigest()
    reqs = [
        _req("API-HEALTH", "functional.api", "status == 200 and json_mismatches == 0 and header_mismatches == 0",
             {"path": "/health", "json": {"status": "ok"},
              "headers_expected": {"Content-Type": "application/json", "X-Content-Type-Options": "nosniff"}}),
        _req("API-DIGEST", "functional.api", "digest_ok == true", {"path": "/", "sha256": body_sha}),
        _req("API-FIELD", "functional.api", "json_mismatches == 0", {"path": "/health", "json": {"status": "broken"}}),
        _req("POS", "functional.pos_roundtrip", "ok == true and latency <= 2 s"),
        _req("CACHE", "functional.cache_serves", "served == true and hit == true"),
        _req("TELEMETRY", "functional.telemetry_accepted", "accepted == true"),
    ]
    res = edge_run(reqs, [make_site("good", good, hosts=()), make_site("bad", bad, hosts=())], ["functional"],
                   name="api")
    for rid in ("API-HEALTH", "API-DIGEST", "POS", "CACHE", "TELEMETRY"):
        assert res.status(rid, "good") == "pass", res.explain(rid, "good")
    assert res.status("API-FIELD", "good") == "fail"
    for rid in ("POS", "CACHE", "TELEMETRY"):
        assert res.status(rid, "bad") == "fail", res.explain(rid, "bad")
    # bad headers: the expected X-Content-Type-Options is missing
    assert res.status("API-HEALTH", "bad") == "fail"
    assert any("X-Content-Type-Options" in n for n in res("API-HEALTH", "bad")["notes"])
