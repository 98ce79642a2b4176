"""bundle (issue 15): a credential whose value cannot be known here is refused; --out never loses a file."""

from __future__ import annotations

import json

import pytest

from conformance.model.errors import ConfigError
from conformance.certify import bundle as B

from tests.helpers.certify import TOKEN, TOKEN_VAR, cli, read_bundle
from tests.helpers.results import entry


def _one_line(proc, *must: str) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for m in must:
        assert m in lines[0], lines[0]
    return lines[0]


def _bundles(work):
    return sorted(p.name for p in (work / "out").glob("*.tar.gz"))


# ------------------------------------------------------------------------------- 6. secrets


def test_an_unset_credential_is_refused_unless_told(work):
    results = work / "out" / "results.json"
    data = json.loads(results.read_text())
    entry(data, "BASE-FUN-01")["notes"].append(f"Authorization: Bearer {TOKEN}")
    results.write_text(json.dumps(data, indent=2))
    # the variable is not set where the bundle is made: its value cannot be looked for, so no bundle
    proc = cli("bundle", "out", cwd=work, env={TOKEN_VAR: None})
    line = _one_line(proc, "out/results.json: target: ", f"${{{TOKEN_VAR}}} is not set here",
                     "give --no-secret-check to bundle without that check")
    assert TOKEN not in line and _bundles(work) == []
    # told explicitly: bundled, with a warning naming what was not looked for
    proc = cli("bundle", "out", "--no-secret-check", cwd=work, env={TOKEN_VAR: None})
    assert proc.returncode == 0, proc.stderr
    assert (f"warning: --no-secret-check: ${{{TOKEN_VAR}}} is not set here: the bundle was not checked for "
            "their values") in proc.stderr
    # with the variable set, the value is found whatever the option says
    proc = cli("bundle", "out", "--no-secret-check", "--out", "again.tar.gz", cwd=work)
    _one_line(proc, f"contains the value of ${{{TOKEN_VAR}}}")
    assert not (work / "again.tar.gz").exists()


def test_a_set_credential_bundles_without_warnings(work):
    proc = cli("bundle", "out", cwd=work)
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr


def test_a_short_credential_is_said_not_looked_for(work):
    proc = cli("bundle", "out", cwd=work, env={TOKEN_VAR: "abc"})
    assert proc.returncode == 0, proc.stderr
    assert f"${{{TOKEN_VAR}}} is shorter than {B.MIN_SECRET_LENGTH} characters: its value was not looked for" \
        in proc.stderr


def test_variables_of_the_target_file_count_too(work):
    """A hook's ${VAR} is only in the target file: unset, it is refused like a credential."""
    target = work / "target.yaml"
    target.write_text(target.read_text() + "    hooks:\n      partition: {command: \"fw ${EDGE_HOOK_PASS}\"}\n")
    proc = cli("bundle", "out", cwd=work, env={"EDGE_HOOK_PASS": None})
    _one_line(proc, "${EDGE_HOOK_PASS} is not set here")
    assert cli("bundle", "out", cwd=work, env={"EDGE_HOOK_PASS": "long-enough-pass"}).returncode == 0


def test_an_unreadable_target_file_is_refused_unless_told(work, tmp_path):
    (work / "target.yaml").rename(work / "moved.yaml")
    proc = cli("bundle", "out", cwd=work)
    _one_line(proc, "the target file target.yaml cannot be read for the variables it refers to")
    proc = cli("bundle", "out", "--no-secret-check", cwd=work)
    assert proc.returncode == 0 and "the bundle was not checked for the values of the variables that file " \
                                   "refers to" in proc.stderr, proc.stderr


def test_the_target_file_is_found_from_another_directory(work, tmp_path):
    """Relative to where the run was started (an ancestor of the results), as profiles are."""
    assert cli("bundle", work / "out", "--out", tmp_path / "b.tar.gz", cwd=tmp_path).returncode == 0


def test_secret_references_api(work):
    data = json.loads((work / "out" / "results.json").read_text())
    refs = B.secret_references(data, work / "out")
    assert refs.unset == [TOKEN_VAR] or refs.values.get(TOKEN_VAR) == TOKEN  # depends on the test's env
    warnings: list[str] = []
    with pytest.raises(ConfigError, match="is not set here"):
        B.check_secrets(B.Secrets(unset=["X_TOKEN"]), secret_check=True, where="r.json", warnings=warnings)
    B.check_secrets(B.Secrets(unset=["X_TOKEN"]), secret_check=False, where="r.json", warnings=warnings)
    assert warnings and "${X_TOKEN}" in warnings[0]


# ------------------------------------------------------------------------------- 4. --out


def test_out_at_an_existing_file_that_is_not_a_bundle_is_refused(work):
    (work / "notes.txt").write_text("mine")
    _one_line(cli("bundle", "out", "--out", "notes.txt", cwd=work),
              "notes.txt: exists and is not a bundle: refusing to replace it")
    assert (work / "notes.txt").read_text() == "mine"


def test_out_at_the_runs_results_is_refused(work):
    before = (work / "out" / "results.json").read_bytes()
    _one_line(cli("bundle", "out", "--out", "out/results.json", cwd=work),
              "out/results.json: is the run's results.json: the bundle would replace what was measured")
    assert (work / "out" / "results.json").read_bytes() == before


def test_out_at_an_earlier_bundle_replaces_it(work):
    assert cli("bundle", "out", "--out", "b.tar.gz", cwd=work).returncode == 0
    first = (work / "b.tar.gz").read_bytes()
    assert cli("bundle", "out", "--out", "b.tar.gz", cwd=work).returncode == 0
    assert (work / "b.tar.gz").read_bytes() == first  # deterministic, and replaced in place
    root, members = read_bundle(work / "b.tar.gz")
    assert root.startswith("edge-conformance-") and "results.json" in members


def test_out_below_a_file_or_at_a_device_is_one_line(work):
    (work / "file").write_text("x")
    _one_line(cli("bundle", "out", "--out", "file/b.tar.gz", cwd=work),
              "file/b.tar.gz: cannot write the bundle: a part of the path is a file, not a directory")
    _one_line(cli("bundle", "out", "--out", "/dev/null", cwd=work), "/dev/null: is not a regular file")


def test_out_at_a_directory_puts_the_bundle_in_it(work):
    (work / "bundles").mkdir()
    proc = cli("bundle", "out", "--out", "bundles", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert [p.name.startswith("edge-conformance-") for p in (work / "bundles").iterdir()] == [True]
    # a directory already at the bundle's own name inside it is refused, not replaced
    name = next((work / "bundles").iterdir()).name
    (work / "bundles" / name).unlink()
    (work / "bundles" / name).mkdir()
    _one_line(cli("bundle", "out", "--out", "bundles", cwd=work), f"{name}: is a directory")


def test_results_json_is_bundled_byte_for_byte(work):
    """The bundle's results.json is the bytes that were read and checked (read once)."""
    data = json.loads((work / "out" / "results.json").read_text())
    text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    (work / "out" / "results.json").write_text(text, encoding="utf-8")
    assert cli("bundle", "out", "--out", "b.tar.gz", cwd=work).returncode == 0
    assert read_bundle(work / "b.tar.gz")[1]["results.json"] == text.encode("utf-8")
