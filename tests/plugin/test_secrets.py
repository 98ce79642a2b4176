"""Issue 15: a credential's value never reaches what a run writes or prints.

A user's own check gets the site's credential and leaks it every way a check can: a note, raw data,
an error it raises, an assertion message, a not-measured reason, and its own stdout/stderr. The value
must be in none of results.json, junit.xml, summary.md, report.html, pytest's stdout and stderr: each
holds the reference `${VAR}` instead.
"""

from __future__ import annotations

import json
import os
import textwrap

import pytest
import yaml

from conformance.model import secrets as S

from tests.plugin.sandbox import FAST, SITES, req

VAR = "EDGE_PLUGIN_TEST_TOKEN"

LEAKY = '''
import sys

import pytest


@pytest.mark.edge_check("custom.leaky")
def test_leaky(edge):
    token = edge.site.credential("api_token")
    edge.note(f"sent Authorization: Bearer {token}")
    edge.attach("response", {"echo": {"header": "Bearer " + token, token: [1, 2]}, "n": 7})
    print(f"stdout of the check: {token}")
    print(f"stderr of the check: {token}", file=sys.stderr)
    mode = edge.params["mode"]
    if mode == "raise":
        raise RuntimeError(f"401 Unauthorized for token {token}")
    if mode == "assert":
        assert token == "something else", f"the site echoed {token}"
    if mode == "unmeasured":
        edge.not_measured(f"the site refused {token}", f"rotate {token}")
    edge.record("value", 1)
'''


def _sites(token_var: str = VAR) -> list[dict]:
    sites = [dict(s) for s in SITES]
    for s in sites:
        s["credentials"] = {"api_token": "${" + token_var + "}"}
    return sites


def _run(pytester, requirements, *args, subprocess: bool = False):
    profile = pytester.path / "profile.yaml"
    profile.write_text(yaml.safe_dump({"id": "mine", "version": "1", "title": "Mine",
                                       "requirements": requirements}, sort_keys=False))
    target = pytester.path / "target.yaml"
    target.write_text(yaml.safe_dump({"name": "lab", "sites": _sites()}, sort_keys=False))
    test_file = pytester.path / "test_leaky.py"
    test_file.write_text(textwrap.dedent(LEAKY))
    out = pytester.path / "out"
    # With reports, in a child process: the real stdout and stderr, and an in-process run that renders
    # report.html leaves the next in-process run of the same test process without the plugin.
    runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    result = runner("-p", "no:locust", *FAST, "--edge-profile", str(profile), "--edge-target",
                    str(target), "--edge-out", str(out), "-rA", *args, str(test_file))
    return result, out


def test_a_leaked_credential_is_in_no_report_and_no_output(pytester, monkeypatch):
    token = "tok-" + os.urandom(12).hex()
    monkeypatch.setenv(VAR, token)
    reqs = [req("LEAK-RAISE", mode="raise", check="custom.leaky", expect="value == 1"),
            req("LEAK-ASSERT", mode="assert", check="custom.leaky", expect="value == 1"),
            req("LEAK-NM", mode="unmeasured", check="custom.leaky", expect="value == 1"),
            req("LEAK-PASS", mode="pass", check="custom.leaky", expect="value == 1")]
    result, out = _run(pytester, reqs, subprocess=True)
    stdout, stderr = result.stdout.str(), result.stderr.str()
    files = {name: (out / name).read_text(encoding="utf-8")
             for name in ("results.json", "junit.xml", "summary.md", "report.html")}
    written = {**files, "stdout": stdout, "stderr": stderr}
    for where, text in written.items():
        assert token not in text, f"the credential's value is in {where}"
        assert S.find(text, {VAR: token}) is None, f"a form of the credential's value is in {where}"
    # it was there to leak, and each place shows the reference instead
    data = json.loads(files["results.json"])
    by_id = {e["id"]: e for e in data["requirements"]}
    ref = "${" + VAR + "}"
    assert by_id["LEAK-RAISE"]["status"] == "error"
    assert f"could not measure: RuntimeError: 401 Unauthorized for token {ref}" in by_id["LEAK-RAISE"]["message"]
    assert by_id["LEAK-ASSERT"]["status"] == "fail" and ref in by_id["LEAK-ASSERT"]["message"]
    assert by_id["LEAK-NM"]["status"] == "not-measured"
    assert by_id["LEAK-NM"]["ended"] == {"how": "not-measured", "reason": f"the site refused {ref}",
                                         "remedy": f"rotate {ref}"}
    for rid in ("LEAK-RAISE", "LEAK-PASS"):
        assert by_id[rid]["notes"] == [f"sent Authorization: Bearer {ref}"]
        assert by_id[rid]["raw"]["response"] == {"echo": {"header": f"Bearer {ref}", ref: [1, 2]}, "n": 7}
    assert by_id["LEAK-PASS"]["status"] == "pass"
    assert f"401 Unauthorized for token {ref}" in files["junit.xml"]
    assert f"401 Unauthorized for token {ref}" in stdout  # pytest's own lines for the result
    assert f"stdout of the check: {ref}" in stdout  # the check's captured output, shown with its failure


def test_a_credential_too_short_to_redact_is_refused_before_the_run(pytester, monkeypatch):
    monkeypatch.setenv(VAR, "abc")
    result, out = _run(pytester, [req("LEAK-PASS", mode="pass", check="custom.leaky", expect="value == 1")])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert (f"target.yaml: sites[0].credentials.api_token: the value of ${{{VAR}}} is shorter than "
            f"{S.MIN_SECRET_LENGTH} characters") in err
    assert "abc" not in err.replace("characters", "")
    assert not (out / "results.json").exists()
