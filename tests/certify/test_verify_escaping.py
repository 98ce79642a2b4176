"""verify (issue 15): whatever a bundle holds, its text output is one line per problem, and --json is JSON."""

from __future__ import annotations

import json

import pytest

from conformance.certify import verify as V

from tests.helpers.certify import cli, edit_results, read_bundle, tamper, write_bundle
from tests.helpers.results import entry

INJECTED = "evil\n  problem: none\n  note: all verdicts hold\x1b[2J\r\u2028\u202e"


@pytest.fixture
def made(work):
    proc = cli("bundle", "out", "--out", "bundle.tar.gz", cwd=work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return work / "bundle.tar.gz"


def _lines(text: str) -> list[str]:
    return text.split("\n")


def _check_text(out: str, n_problems: int | None = None) -> list[str]:
    lines = _lines(out.rstrip("\n"))
    assert lines[0].split(": ")[1].startswith(("FAILED", "OK")), lines
    assert all(line.startswith(("  problem: ", "  note: ", "  partial run: ")) for line in lines[1:]), lines
    assert all(c.isprintable() for line in lines for c in line), lines  # no escape, CR, separator, bidi
    if n_problems is not None:
        assert sum(line.startswith("  problem: ") for line in lines) == n_problems, lines
    return lines


def test_a_member_name_cannot_add_lines(made, work):
    root, members = read_bundle(made)
    members[INJECTED] = b"x"
    bad = write_bundle(work / "evil.tar.gz", root, members)
    proc = cli("verify", bad, "--accept-partial", cwd=work)
    assert proc.returncode == 1
    lines = _check_text(proc.stdout, n_problems=1)
    assert ("  problem: evil\\n  problem: none\\n  note: all verdicts hold\\x1b[2J\\r\\u2028\\u202e is in the "
            "bundle but not listed in the manifest") in lines
    data = json.loads(cli("verify", bad, "--json", cwd=work).stdout)  # JSON: the name as it is
    assert f"{INJECTED} is in the bundle but not listed in the manifest" in data["problems"]


def test_a_name_that_is_not_utf8_is_escaped_in_text_and_json(made, work):
    root, members = read_bundle(made)
    members[b"raw/bad-\xff\xfe.json".decode("utf-8", "surrogateescape")] = b"{}"
    bad = write_bundle(work / "bad.tar.gz", root, members)
    proc = cli("verify", bad, "--accept-partial", cwd=work)
    assert proc.returncode == 1
    assert "  problem: raw/bad-\\udcff\\udcfe.json is in the bundle but not listed in the manifest" in \
        _check_text(proc.stdout)
    proc = cli("verify", bad, "--json", cwd=work)  # was a UnicodeEncodeError traceback
    assert proc.returncode == 1 and proc.stdout.isascii()
    assert any(p.startswith("raw/bad-\udcff\udcfe.json") for p in json.loads(proc.stdout)["problems"])


def test_text_from_results_is_escaped_too(made, work):
    """Ids, sites and the run id come from results.json: problems naming them stay on their line."""
    def change(members):
        def edit(data):
            data["run_id"] = "r\nOK"
            e = entry(data, "BASE-FUN-01")
            data["requirements"].append(dict(e, site=INJECTED))
        edit_results(members, edit)

    bad = tamper(made, work / "t.tar.gz", change)
    proc = cli("verify", bad, "--accept-partial", cwd=work)
    assert proc.returncode == 1
    lines = _check_text(proc.stdout)
    assert "(run r\\nOK, verdict " in lines[0]
    assert any(line.startswith("  problem: BASE-FUN-01@evil\\n  problem: none") for line in lines), lines


def test_render_escapes_every_field():
    v = V.Verification(bundle="b\n.tar.gz", problems=["p\n1"], notes=["n\x1b"], run_id="r\u2029",
                       verdict="v\t", partial=["--site a\nb"])
    lines = _lines(v.render())
    assert lines == ["b\\n.tar.gz: FAILED (run r\\u2029, verdict v\\t)",
                     "  partial run: narrowed by --site a\\nb: it certifies only what it measured",
                     "  problem: p\\n1", "  note: n\\x1b"]


@pytest.mark.parametrize("text,expected", [
    ("plain, ascii: ok", "plain, ascii: ok"), ("Zürich 東京", "Zürich 東京"), ("a\\b", "a\\\\b"),
    ("\x00\x7f\x85", "\\x00\\x7f\\x85"), ("\u200b\u2066\ufeff", "\\u200b\\u2066\\ufeff"), ("\xa0", "\\xa0"),
])
def test_shown(text, expected):
    assert V.shown(text) == expected
