"""A site's `ca_file` in the target file verifies its https endpoints when the params name none; a
`ca_file` param still wins. Without either, a private CA is not trusted (the checks can fail)."""

from __future__ import annotations

from tests.helpers.cli import requirement as _req


def test_site_ca_file_is_the_default_ca_bundle(fake_site, make_site, edge_run, certs, tmp_path):
    good = fake_site("--tls", certs.path("good.crt"), certs.path("good.key"), name="tls-good")
    with_ca = make_site("with-ca", good, hosts=(), endpoints={"mgmt": good.url("https")})
    with_ca["ca_file"] = certs.path("ca.pem")
    without = make_site("without-ca", good, hosts=(), endpoints={"mgmt": good.url("https")})
    wrong = make_site("wrong-ca", good, hosts=(), endpoints={"mgmt": good.url("https")})
    wrong["ca_file"] = certs.path("self.crt")  # a PEM certificate, but not the issuer
    reqs = [
        _req("TLS", "security.tls", "cert_valid == true", {"min_days": 30}),
        _req("HTTP", "functional.http", "status == 200", {"endpoint": "mgmt", "path": "/health"}),
        _req("API", "functional.api", "status == 200", {"endpoint": "mgmt", "path": "/health"}),
        _req("HDR", "security.http_headers", "missing == 0", {"endpoint": "mgmt", "path": "/health"}),
        # the param wins over the site's (wrong) ca_file
        _req("PARAM", "security.tls", "cert_valid == true", {"ca_file": certs.path("ca.pem")}, sites=["wrong-ca"]),
    ]
    res = edge_run(reqs, [with_ca, without, wrong], ["security", "functional"], name="ca-file")

    for rid in ("TLS", "HTTP", "API", "HDR"):
        assert res.status(rid, "with-ca") == "pass", res.explain(rid, "with-ca")
    assert res.status("PARAM", "wrong-ca") == "pass", res.explain("PARAM", "wrong-ca")
    for site in ("without-ca", "wrong-ca"):
        assert res.status("TLS", site) == "fail" and res.value("TLS", site, "cert_valid") == 0, res.explain("TLS", site)
        # an https request that cannot verify the certificate is a measurement error, not a pass
        assert res.status("HTTP", site) == "error", res.explain("HTTP", site)
        assert res.status("API", site) == "error", res.explain("API", site)
