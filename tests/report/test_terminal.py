"""The end-of-run table: compact, coloured only on request, immune to escape sequences from a target."""

from __future__ import annotations

from conformance.report.terminal import render_terminal


def test_table_rows_and_verdict(non_conformant):
    out = render_terminal(non_conformant, color=False)
    lines = out.splitlines()
    assert lines[0].split() == ["requirement@site", "level", "status", "measured"]
    row = next(line for line in lines if line.startswith("BASE-FUN-02@store-2"))
    assert row.split()[1:4] == ["must", "fail", "status"] and "status = 503, latency = 12.3 ms" in row
    assert "fail (advisory)" in next(line for line in lines if line.startswith("BASE-FUN-03@store-1"))
    assert "verdict: NON-CONFORMANT (1 pass, 2 fail, 1 error, 1 inconclusive, 1 skip, 1 waived, 1 not-run)" in out


def test_no_color_unless_asked(non_conformant):
    assert "\x1b[" not in render_terminal(non_conformant, color=False)
    colored = render_terminal(non_conformant, color=True)
    assert "\x1b[31mfail\x1b[0m" in colored and "\x1b[1;31mNON-CONFORMANT\x1b[0m" in colored


def test_color_keeps_columns_aligned(non_conformant):
    plain = render_terminal(non_conformant, color=False).splitlines()
    colored = render_terminal(non_conformant, color=True).splitlines()
    strip = [line.replace("\x1b[0m", "") for line in colored]
    for code in ("\x1b[32m", "\x1b[31m", "\x1b[35m", "\x1b[33m", "\x1b[2m", "\x1b[36m", "\x1b[1;31m"):
        strip = [line.replace(code, "") for line in strip]
    assert strip == plain


def test_target_cannot_inject_escape_sequences(hostile):
    hostile["requirements"][0]["site"] = "store\x1b]0;pwned\x07-1\nnext"
    out = render_terminal(hostile, color=False)
    assert "\x1b" not in out and "\x07" not in out
    assert "store]0;pwned-1 next" in out  # newlines folded: one row per result


def test_interrupted_note(interrupted):
    out = render_terminal(interrupted, color=False)
    assert "verdict: INCOMPLETE" in out and "interrupted: 1 requirement checks did not run" in out


def test_empty_results():
    out = render_terminal({"schema": "edge-conformance/results/v1"}, color=False)
    assert "(no requirement results)" in out and "verdict: UNKNOWN" in out
