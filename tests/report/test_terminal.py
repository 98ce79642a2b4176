"""The end-of-run output: scope first, a compact table, every result that did not pass, the verdict with its
reason; coloured only on request, immune to escape sequences from a target."""

from __future__ import annotations

import pytest

import re

from conformance.report import terminal as T
from conformance.report.terminal import render_terminal

from tests.report.samples import not_measured, req, results

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _block(out: str, heading: str) -> list[str]:
    """The indented lines under a heading such as 'not passed (8):'."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    block = []
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        block.append(line.strip())
    return block


def test_table_rows_and_verdict(non_conformant):
    out = render_terminal(non_conformant, color=False)
    lines = out.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("requirement@site")))
    assert lines[header].split() == ["requirement@site", "level", "status", "measured"]
    row = next(line for line in lines if line.startswith("BASE-FUN-02@store-2"))
    assert row.split()[1:4] == ["must", "fail", "status"] and "status = 503, latency = 12.3 ms" in row
    assert "fail (advisory)" in next(line for line in lines if line.startswith("BASE-FUN-03@store-1"))
    assert "error (advisory)" in next(line for line in lines if line.startswith("BASE-LAT-03@store-2"))
    assert ("verdict: NON-CONFORMANT: 1 must failed, 1 must not measured, 1 must in error, 1 must inconclusive "
            "(1 pass, 2 fail, 2 error, 1 inconclusive, 1 not-applicable, 1 not-measured, 1 waived, 1 not-run)") in out


def test_verdict_counts_are_the_results_counts(any_results):
    out = render_terminal(any_results, color=False)
    shown = re.search(r"^verdict: .*\((.*)\)$", out, re.M).group(1)
    counts = {status: n for n, status in re.findall(r"(\d+) ([a-z-]+)", shown)}
    recorded = any_results.get("counts") or {}
    if not recorded:  # an old file without counts: counted from its entries
        for r in any_results["requirements"]:
            recorded[r["status"]] = recorded.get(r["status"], 0) + 1
    assert {s: int(n) for s, n in counts.items()} == {s: n for s, n in recorded.items() if n}


def test_full_run_says_so_first(non_conformant):
    first = render_terminal(non_conformant, color=False).splitlines()[0]
    assert first.startswith("Full run")
    out = render_terminal(non_conformant, color=False)
    assert "Changed by" not in out and "defects" not in out  # nothing changed the run: nothing said


def test_partial_run_says_what_narrowed_and_changed_it_first(partial):
    lines = render_terminal(partial, color=False).splitlines()
    assert lines[0] == "PARTIAL RUN: narrowed by --suite functional security"
    assert lines[1] == "Changed by: --defect store-1:slow-path, --waivers waivers.yaml"
    colored = render_terminal(partial, color=True).splitlines()[0]
    assert colored.startswith("\x1b[1;33mPARTIAL RUN")


def test_old_results_without_scope(legacy_v1):
    out = render_terminal(legacy_v1, color=False)
    assert out.splitlines()[0].startswith("Scope not recorded")
    assert "BASE-SEC-01@store-1" in out and " skip " in out  # the v1 status still shows as it was recorded
    assert "verdict: NON-CONFORMANT: 1 must failed (1 pass, 1 fail, 1 skip)" in out
    assert "1 skipped (older results" in out


def test_every_result_that_did_not_pass_has_its_message_line(non_conformant):
    block = _block(render_terminal(non_conformant, color=False), "not passed (8):")
    expected = {r["message"] or f"{r['id']}@{r['site']}: not-run" for r in non_conformant["requirements"]
                if r["status"] not in ("pass", "not-applicable")}
    shown = {line.split(": ", 1)[1] for line in block if not line[0].isdigit()}
    assert shown == expected
    assert "1 not applicable to their site (listed in summary.md)" in block
    # what decides the verdict first: must failure, must undecided; advisory after; waived last
    order = [line.split(":")[0] for line in block]
    assert order[:4] == ["fail", "error", "inconclusive", "not-measured"]
    assert order[4:7] == ["fail (advisory)", "error (advisory)", "not-run"] and order[7] == "waived"


def test_not_measured_line_names_reason_and_remedy(non_conformant):
    out = render_terminal(non_conformant, color=False)
    assert ("not-measured: BASE-HOST-01 store-2: not measured: site store-2 has no host to check; "
            "to measure it: add a host to store-2") in out


def test_conformant_run_lists_nothing(conformant):
    out = render_terminal(conformant, color=False)
    assert "not passed" not in out and "verdict: CONFORMANT (3 pass)" in out and "to measure" not in out


def test_incomplete_verdict_says_why_and_groups_the_remedies(partial):
    out = render_terminal(partial, color=False)
    assert "verdict: INCOMPLETE: 13 musts not measured (2 pass, 1 not-applicable, 15 not-measured)" in out
    # one line of remedies for the blocking ones: identical ones once, per-site ones merged
    assert "\nto measure them: add --suite latency; add a host to store-1, store-2; pass --allow-faults\n" in out


def test_strict_counts_every_level(partial):
    partial["options"]["strict"] = True
    out = render_terminal(partial, color=False)
    assert "verdict: INCOMPLETE: 15 requirements not measured" in out
    assert "(advisory)" not in out  # under --strict nothing is advisory


def test_many_not_measured_for_one_reason_make_one_line(partial):
    block = _block(render_terminal(partial, color=False), "not passed (15):")
    grouped = [line for line in block if "10 results" in line]
    assert grouped == ["not-measured: 10 results (BASE-LAT-01@store-1, BASE-LAT-01@store-2, BASE-LAT-02@store-1, "
                       "BASE-LAT-02@store-2, BASE-LAT-03@store-1, BASE-LAT-03@store-2 and 4 more): suite latency "
                       "left out of this run (--suite functional security); to measure them: add --suite latency"]
    # two advisory ones for the same reason stay single lines; so do the per-site ones
    assert sum("BASE-LAT-06" in line for line in block) == 2
    assert sum("BASE-HOST-01" in line for line in block) == 2


def test_huge_runs_are_capped_with_a_pointer_to_the_summary():
    reqs = [req(f"BIG-{i:04d}", status="fail", message=f"BIG-{i:04d} store-1: status = 503") for i in range(1500)]
    out = render_terminal(results(reqs, "non-conformant"), color=False)
    block = _block(out, "not passed (1500):")
    assert len(block) == T.MAX_LINES + 1
    assert block[-1].startswith("... and 1300 more not passed") and "summary.md" in block[-1]
    assert "verdict: NON-CONFORMANT: 1500 musts failed (1500 fail)" in out


@pytest.mark.parametrize("width", [None, 100, 80])
def test_table_fits_the_terminal_width(non_conformant, width):
    non_conformant["requirements"][0]["measured"] = {f"metric_{i}": {"value": i * 1.5, "unit": "ms"}
                                                    for i in range(40)}
    non_conformant["requirements"][1]["site"] = "a-very-long-site-name-" * 5
    lines = render_terminal(non_conformant, color=False, **({"width": width} if width else {})).splitlines()
    table = lines[lines.index(next(line for line in lines if line.startswith("requirement@site"))):]
    table = table[:table.index("")]
    assert max(len(line) for line in table) <= (width or T.WIDTH)  # a log or a file: T.WIDTH (120)
    assert any(line.endswith("...") for line in table)


def test_no_color_unless_asked(non_conformant):
    assert "\x1b[" not in render_terminal(non_conformant, color=False)
    colored = render_terminal(non_conformant, color=True)
    assert "\x1b[31mfail\x1b[0m" in colored and "\x1b[1;31mNON-CONFORMANT: 1 must failed" in colored


def test_color_keeps_columns_aligned(non_conformant, partial):
    for doc in (non_conformant, partial):
        plain = render_terminal(doc, color=False).splitlines()
        colored = render_terminal(doc, color=True).splitlines()
        assert [_ANSI.sub("", line) for line in colored] == plain


def test_target_cannot_inject_escape_sequences(hostile):
    hostile["requirements"][0]["site"] = "store\x1b]0;pwned\x07-1\nnext"
    out = render_terminal(hostile, color=False)
    assert "\x1b" not in out and "\x07" not in out
    assert "store]0;pwned-1 next" in out  # newlines folded: one row per result


def test_interrupted_note(interrupted):
    out = render_terminal(interrupted, color=False)
    assert "verdict: INCOMPLETE: 1 must not run" in out and "interrupted: 1 requirement checks did not run" in out


def test_fleet_members_do_not_count_toward_the_reason():
    member = not_measured("FLEET-01", site="store-1")
    member["fleet_member"] = True
    fleet = req("FLEET-01", site="fleet", status="pass", quorum=0.9)
    out = render_terminal(results([member, fleet], "conformant"), color=False)
    assert "verdict: CONFORMANT (1 pass, 1 not-measured)" in out and "to measure them" not in out


def test_empty_results():
    out = render_terminal({"schema": "edge-conformance/results/v2"}, color=False)
    assert "(no requirement results)" in out and "verdict: UNKNOWN" in out
    assert out.splitlines()[0].startswith("Scope not recorded")
