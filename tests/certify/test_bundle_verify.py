"""Certification bundles: made from a real run, verified offline, and tampering caught."""

from __future__ import annotations

import json
import os
import stat
import tarfile

import pytest

from conformance.certify import bundle as B
from conformance.certify import verify as V

from tests.helpers.certify import TOKEN, TOKEN_VAR, cli, edit_results, read_bundle, tamper, write_bundle
from tests.helpers.results import entry

pytest.importorskip("cryptography")  # a dependency of the package; named here for a clear skip


@pytest.fixture
def made(work):
    """An unsigned bundle of the session's run."""
    proc = cli("bundle", "out", "--out", "bundle.tar.gz", cwd=work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return work / "bundle.tar.gz"


@pytest.fixture
def keypair(work):
    proc = cli("keygen", "vendor", cwd=work)
    assert proc.returncode == 0, proc.stderr
    return work / "vendor.key", work / "vendor.pub"


@pytest.fixture
def signed(work, keypair):
    proc = cli("bundle", "out", "--sign-key", keypair[0], "--out", "signed.tar.gz", cwd=work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "signed by: sha256:" in proc.stdout
    return work / "signed.tar.gz"


def verify(path, *args, cwd):
    # The run behind these bundles is narrowed to the functional suite (quick): a partial run, which
    # verify exits 3 for unless accepted (tests/certify/test_scope.py covers that rule).
    return cli("verify", path, "--accept-partial", *args, cwd=cwd)


# ------------------------------------------------------------------------------------------ contents


def test_bundle_round_trips_through_verify(made, work):
    root, members = read_bundle(made)
    results = json.loads(members["results.json"])
    assert root == f"edge-conformance-{results['run_id']}"
    for name in ("manifest.json", "results.json", "junit.xml", "summary.md", "report.html", "target.json",
                 "environment.json", "profiles/certify-test/0/certify.yaml",
                 "profiles/certify-test/1/edge-baseline.yaml", "raw/CERT-BAD@store-1.json",
                 "raw/BASE-FUN-01@store-1.json"):
        assert name in members, sorted(members)
    assert members["results.json"] == (work / "out" / "results.json").read_bytes()  # byte for byte
    manifest = json.loads(members["manifest.json"])
    assert manifest["schema"] == B.SCHEMA
    assert set(manifest["files"]) == set(members) - {"manifest.json"}
    chain = manifest["profiles"][0]["chain"]
    assert [c["ref"] for c in chain] == [None, "edge-baseline"]
    env = json.loads(members["environment.json"])
    assert env["harness"]["version"] and env["cpu_count"] and "pyyaml" in {k.lower() for k in env["packages"]}
    assert json.loads(members["target.json"])["sites"][0]["credentials"] == {"token": "${%s}" % TOKEN_VAR}
    raw = json.loads(members["raw/CERT-BAD@store-1.json"])
    assert raw["measured"]["status"]["value"] == 404

    proc = verify(made, cwd=work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ": OK" in proc.stdout and "results recomputed" in proc.stdout and "not signed" in proc.stdout


def test_bundle_is_deterministic(made, work):
    again = cli("bundle", "out", "--out", "again.tar.gz", cwd=work)
    assert again.returncode == 0, again.stderr
    assert (work / "again.tar.gz").read_bytes() == made.read_bytes()
    with tarfile.open(made) as tar:
        infos = tar.getmembers()
    names = [i.name.split("/", 1)[1] for i in infos]
    assert names[0] == "manifest.json" and names[1:] == sorted(names[1:])
    assert len({i.mtime for i in infos}) == 1 and all(i.uid == 0 and i.uname == "" for i in infos)


def test_default_output_is_next_to_results(work):
    proc = cli("bundle", "out", cwd=work)
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads((work / "out" / "results.json").read_text())["run_id"]
    assert (work / "out" / f"edge-conformance-{run_id}.tar.gz").is_file()


def test_bundle_run_function_for_run_bundle(work, monkeypatch):
    monkeypatch.setenv(TOKEN_VAR, TOKEN)  # as in the run that just used it; unset, bundling is refused
    made = B.bundle_run(work / "out")  # what `run --bundle` calls (cwd-independent paths below)
    assert made.path.parent == work / "out"


def test_verify_uses_the_embedded_baseline_not_the_installed_one(made, work, monkeypatch, tmp_path):
    # The reviewer's installation has no (or another) edge-baseline: the embedded copy must be used.
    empty = tmp_path / "no-profiles"
    empty.mkdir()
    monkeypatch.setattr("conformance.model.profile.profiles_dir", lambda: empty)
    result = V.verify_bundle(made)
    assert result.ok, result.render()


def test_changed_embedded_profile_is_caught(made, work):
    def loosen(members):
        name = "profiles/certify-test/0/certify.yaml"
        members[name] = members[name].replace(b"path: /missing, timeout: 5 s}, expect: status == 200}",
                                              b"path: /missing, timeout: 5 s}, expect: status == 404}", 1)

    bad = tamper(made, work / "bad.tar.gz", loosen)
    proc = verify(bad, cwd=work)
    assert proc.returncode == 1, proc.stdout
    assert "profile certify-test: the embedded files have digest" in proc.stdout


# ------------------------------------------------------------------------------------------ refusals


def test_profile_changed_since_the_run_is_refused(work):
    p = work / "certify.yaml"
    p.write_text(p.read_text().replace("latency <= 2 s", "latency <= 3 s"))
    proc = cli("bundle", "out", cwd=work)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "changed since the run" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_profile_not_found_is_a_clear_error(work, tmp_path):
    assert cli("bundle", work / "out", "--out", tmp_path / "a.tar.gz", cwd=tmp_path).returncode == 0  # found above out/
    (work / "moved").mkdir()
    (work / "certify.yaml").rename(work / "moved" / "certify.yaml")
    proc = cli("bundle", work / "out", cwd=tmp_path)
    assert proc.returncode == 2 and "certify-test: file not found" in proc.stderr
    proc = cli("bundle", work / "out", "--profile", work / "moved" / "certify.yaml", cwd=tmp_path)  # ... unless given
    assert proc.returncode == 0, proc.stderr


def test_a_credential_value_never_ends_up_in_a_bundle(work):
    results = work / "out" / "results.json"
    data = json.loads(results.read_text())
    entry(data, "BASE-FUN-01")["notes"].append(f"Authorization: Bearer {TOKEN}")
    results.write_text(json.dumps(data, indent=2))
    proc = cli("bundle", "out", cwd=work)
    assert proc.returncode == 2
    assert f"${{{TOKEN_VAR}}}" in proc.stderr and TOKEN not in proc.stderr
    # the scan looks for the values of the bundling environment: unset, the value cannot be looked for, and
    # bundling is refused unless told (test_bundle_hardening.py)
    assert cli("bundle", "out", cwd=work, env={TOKEN_VAR: None}).returncode == 2
    assert cli("bundle", "out", "--no-secret-check", cwd=work, env={TOKEN_VAR: None}).returncode == 0


# ------------------------------------------------------------------------------------------ signatures


def test_keygen_writes_a_private_key_only_the_owner_can_read(work, keypair):
    key, pub = keypair
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert b"PRIVATE KEY" in key.read_bytes() and b"PUBLIC KEY" in pub.read_bytes()
    again = cli("keygen", "vendor", cwd=work)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_signed_bundle_verifies_with_its_key(signed, keypair, work):
    proc = verify(signed, "--pubkey", keypair[1], cwd=work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(the given key)" in proc.stdout
    fingerprint = json.loads(read_bundle(signed)[1]["manifest.json"])["signature"]["key_fingerprint"]
    assert verify(signed, "--pubkey", fingerprint, cwd=work).returncode == 0
    out = json.loads(verify(signed, "--json", cwd=work).stdout)
    assert out["ok"] and out["signature_valid"] and out["signed_by"] == fingerprint


def test_raw_seed_key_signs_too(work):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    seed = os.urandom(32)
    (work / "seed.bin").write_bytes(seed)
    pub = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    (work / "seed.pub").write_bytes(pub)
    assert cli("bundle", "out", "--sign-key", "seed.bin", "--out", "s.tar.gz", cwd=work).returncode == 0
    assert verify(work / "s.tar.gz", "--pubkey", "seed.pub", cwd=work).returncode == 0


def test_wrong_key_fails(signed, work):
    assert cli("keygen", "other", cwd=work).returncode == 0
    proc = verify(signed, "--pubkey", work / "other.pub", cwd=work)
    assert proc.returncode == 1
    assert "not by the given key" in proc.stdout


def test_tampered_signed_bundle_fails_on_the_signature(signed, keypair, work):
    bad = tamper(signed, work / "bad.tar.gz", lambda m: edit_results(
        m, lambda d: entry(d, "CERT-SHOULD").__setitem__("title", "edited after signing")))
    proc = verify(bad, cwd=work)
    assert proc.returncode == 1
    assert "bad signature" in proc.stdout
    assert verify(bad, "--pubkey", keypair[1], cwd=work).returncode == 1


def test_forged_signature_fails(signed, work):
    import base64

    def forge(members):
        sig = bytearray(base64.b64decode(members["manifest.sig"]))
        sig[0] ^= 1
        members["manifest.sig"] = base64.b64encode(bytes(sig)) + b"\n"

    proc = verify(tamper(signed, work / "forged.tar.gz", forge, fix_digests=False), cwd=work)
    assert proc.returncode == 1 and "bad signature" in proc.stdout


def test_pubkey_requires_a_signature(made, signed, keypair, work):
    proc = verify(made, "--pubkey", keypair[1], cwd=work)
    assert proc.returncode == 1 and "not signed" in proc.stdout

    def strip(members):
        del members["manifest.sig"]
        manifest = json.loads(members["manifest.json"])
        del manifest["signature"]
        members["manifest.json"] = json.dumps(manifest).encode()

    stripped = tamper(signed, work / "stripped.tar.gz", strip)
    assert verify(stripped, "--pubkey", keypair[1], cwd=work).returncode == 1
    assert verify(stripped, cwd=work).returncode == 0  # consistent but unsigned: see docs/certification.md

    def drop_sig_file(members):
        del members["manifest.sig"]

    proc = verify(tamper(signed, work / "nosig.tar.gz", drop_sig_file, fix_digests=False), cwd=work)
    assert proc.returncode == 1 and "manifest.sig is missing" in proc.stdout


# ------------------------------------------------------------------------------------------ tampering


def _flip(members):
    edit_results(members, lambda d: entry(d, "CERT-BAD").update(status="pass", message="CERT-BAD store-1: ok"))


def _edit_number(members):
    edit_results(members, lambda d: entry(d, "BASE-FUN-01")["measured"]["status"].update(value=503.0))


@pytest.mark.parametrize("change, expected", [
    (_flip, "CERT-BAD@store-1: results say pass, measured status = 404 gives fail"),
    (_edit_number, "BASE-FUN-01@store-1: results say pass, measured status = 503 gives fail"),
])
def test_edited_results_fail_verification_even_with_fixed_digests(made, work, change, expected):
    proc = verify(tamper(made, work / "t.tar.gz", change), cwd=work)
    assert proc.returncode == 1, proc.stdout
    assert expected in proc.stdout


def test_flipped_verdict_names_every_consequence(made, work):
    proc = verify(tamper(made, work / "t.tar.gz", _flip), cwd=work)
    # the other musts of the baseline cannot be measured on this target: incomplete, not conformant
    assert "run: results say non-conformant, the statuses give incomplete" in proc.stdout
    assert "raw/CERT-BAD@store-1.json: status differs from results.json" in proc.stdout
    assert "summary.md does not match results.json" in proc.stdout


@pytest.mark.parametrize("change, expected", [
    (lambda d: d.update(verdict="conformant"), "run: results say conformant, the statuses give non-conformant"),
    (lambda d: d["counts"].update(fail=0), "run: counts differ from the statuses"),
    (lambda d: entry(d, "CERT-BAD").update(level="may"), "CERT-BAD@store-1: results say level may, the profile says must"),
    (lambda d: entry(d, "CERT-BAD").update(expect="status == 404"), 'results say expect "status == 404"'),
    (lambda d: d["requirements"].remove(entry(d, "CERT-BAD")),
     "CERT-BAD@store-1: the profile plans it, but results.json has no result for it"),
    (lambda d: entry(d, "CERT-BAD").update(status="not-applicable", advisory=False),
     "CERT-BAD@store-1: results say not-applicable, measured status = 404 gives fail"),
    (lambda d: entry(d, "CERT-BAD").update(status="not-measured", advisory=False),
     "CERT-BAD@store-1: results say not-measured, measured status = 404 gives fail"),
    (lambda d: entry(d, "CERT-BAD").update(status="waived", waiver={"id": "CERT-BAD", "site": "store-1",
                                                                    "reason": "x", "who": "me", "expires": "2999-01-01"}),
     "results say waived, but the run had no waivers"),
    (lambda d: next(r for r in d["requirements"] if r["site"] == "fleet").update(status="fail"),
     "CERT-FLEET@fleet: results say fail, its sites give pass"),
    (lambda d: next(r for r in d["requirements"] if r["id"] == "CERT-FLEET" and r["site"] == "store-1").update(
        status="fail"), "CERT-FLEET@store-1: results say fail, measured status = 200 gives pass"),
])
def test_other_edits_are_named(made, work, change, expected):
    def edit(members):
        edit_results(members, change)
        members.pop("raw/CERT-BAD@store-1.json", None)  # a careful tamperer drops what would differ ...
        manifest = json.loads(members["manifest.json"])
        manifest["raw"] = [r for r in manifest["raw"] if r["id"] != "CERT-BAD"]
        members["manifest.json"] = json.dumps(manifest).encode()

    proc = verify(tamper(made, work / "t.tar.gz", edit), cwd=work)
    assert proc.returncode == 1
    assert expected in proc.stdout, proc.stdout


def test_digest_mismatch_unlisted_and_duplicate_members(made, work):
    proc = verify(tamper(made, work / "a.tar.gz", _flip, fix_digests=False), cwd=work)
    assert proc.returncode == 1 and "results.json: sha256" in proc.stdout and "changed after bundling" in proc.stdout

    root, members = read_bundle(made)
    members["extra.txt"] = b"hello"
    proc = verify(write_bundle(work / "b.tar.gz", root, members), cwd=work)
    assert proc.returncode == 1 and "extra.txt is in the bundle but not listed in the manifest" in proc.stdout

    root, members = read_bundle(made)
    order = list(members) + ["results.json"]
    proc = verify(write_bundle(work / "c.tar.gz", root, members, order=order), cwd=work)
    assert proc.returncode == 1 and "results.json appears twice" in proc.stdout


def test_edited_report_is_caught(made, work):
    def edit(members):
        members["summary.md"] = members["summary.md"].replace(b"NON-CONFORMANT", b"CONFORMANT")

    proc = verify(tamper(made, work / "t.tar.gz", edit), cwd=work)
    assert proc.returncode == 1 and "summary.md does not match results.json" in proc.stdout


def test_unreadable_input_exits_2(work):
    (work / "junk.tar.gz").write_bytes(b"not a tar")
    for path in ("junk.tar.gz", "absent.tar.gz"):
        proc = verify(work / path, cwd=work)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stderr.startswith("edge-conformance: error:") and "Traceback" not in proc.stderr
