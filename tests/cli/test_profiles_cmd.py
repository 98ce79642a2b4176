"""`edge-conformance profiles list | show | validate | explain | checks`."""

from __future__ import annotations

from tests.helpers.cli import run_cli, write_profile


def test_list():
    proc = run_cli("profiles", "list")
    assert proc.returncode == 0, proc.stderr
    line = next(row for row in proc.stdout.splitlines() if row.startswith("edge-baseline "))
    assert "requirements" in line and "must" in line


def test_show():
    proc = run_cli("profiles", "show", "edge-baseline")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("edge-baseline ")
    for rid in ("BASE-FUN-01", "BASE-FUN-02", "BASE-FUN-03"):
        assert rid in proc.stdout
    assert "status == 200" in proc.stdout


def test_show_inherited(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text("id: child\nversion: '2'\ntitle: Child\nextends: edge-baseline\nrequirements:\n"
                     "  - {id: BASE-FUN-03, disabled: true}\n"
                     "  - {id: C-1, title: port, level: must, check: functional.tcp, expect: connected == true}\n")
    proc = run_cli("profiles", "show", child)
    assert proc.returncode == 0, proc.stderr
    assert "child 2 <- edge-baseline" in proc.stdout
    assert "BASE-FUN-01" in proc.stdout and "C-1" in proc.stdout and "BASE-FUN-03" not in proc.stdout


def test_validate(tmp_path):
    good = write_profile(tmp_path / "good.yaml", [
        "{id: R-1, title: up, level: must, check: functional.http, expect: status == 200}"])
    proc = run_cli("profiles", "validate", good, "edge-baseline", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "good.yaml: ok (test-profile 0, 1 requirements)" in proc.stdout
    assert "edge-baseline" in proc.stdout
    bad = write_profile(tmp_path / "bad.yaml", [
        "{id: R-1, title: up, level: must, check: functional.http, expect: status == 200}",
        "{id: R-2, title: up, level: must, check: functional.http, expect: latency <= 2 msec}"])
    proc = run_cli("profiles", "validate", good, bad, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ('edge-conformance: error: bad.yaml:6: requirements[1].expect: '
                                   'unknown unit "msec" (did you mean "ms"?)')


def test_validate_unknown_name():
    proc = run_cli("profiles", "validate", "edge-basline")
    assert proc.returncode == 2
    assert 'unknown profile "edge-basline" (did you mean "edge-baseline"?)' in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


def test_explain():
    proc = run_cli("profiles", "explain", "edge-baseline", "BASE-FUN-01")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("BASE-FUN-01 (edge-baseline")
    for label in ("check:", "expect:", "rationale:", "cites:", "basis:", "defined:"):
        assert label in out
    assert "functional.http" in out and "OSF-2018" in out
    # the full citation under the key and place
    assert '= B. Cohen, G. Kathirvel' in out and '"Cloud Edge Computing: Beyond the Data Center", 2018.' in out
    # by requirement id alone, searched in every shipped profile
    proc = run_cli("profiles", "explain", "BASE-FUN-02")
    assert proc.returncode == 0 and proc.stdout.startswith("BASE-FUN-02 (edge-baseline")
    # the whole profile
    proc = run_cli("profiles", "explain", "edge-baseline")
    assert proc.returncode == 0 and proc.stdout.count("rationale:") >= 3


def test_sources_lists_the_bibliography_and_who_cites_it():
    proc = run_cli("profiles", "sources", "retail")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("OSF-2018: ") and "Beyond the Data Center" in line for line in lines)
    cited = next(line for line in lines if line.startswith("  cited by") and "retail RTL-RES-02" in line)
    assert cited
    everything = run_cli("profiles", "sources")
    assert everything.returncode == 0 and "3GPP-TS-22.186: " in everything.stdout


def test_explain_unknown_requirement():
    proc = run_cli("profiles", "explain", "edge-baseline", "NOPE-1")
    assert proc.returncode == 2 and 'has no requirement "NOPE-1"' in proc.stderr
    proc = run_cli("profiles", "explain", "NOPE-1")
    assert proc.returncode == 2 and 'no shipped profile has requirement "NOPE-1"' in proc.stderr


def test_checks():
    proc = run_cli("profiles", "checks")
    assert proc.returncode == 0, proc.stderr
    assert "functional.http:" in proc.stdout and "functional.tcp:" in proc.stdout
    assert "metrics: status (count), latency (time)" in proc.stdout
