"""summary.md: verdict first, failures in order, a safe table, worst latency sites, waivers."""

from __future__ import annotations

import re

from conformance.report.markdown import STEP_SUMMARY_LIMIT, append_github_step_summary, cell, render_markdown


def _section(md: str, heading: str) -> str:
    start = md.index(heading)
    end = md.find("\n## ", start + 1)
    return md[start:] if end < 0 else md[start:end]


def test_verdict_line_and_counts(non_conformant):
    md = render_markdown(non_conformant)
    assert md.startswith("# Edge conformance: NON-CONFORMANT\n")
    assert ("**Verdict: NON-CONFORMANT**: 1 must failed, 1 must not measured, 1 must in error, "
            "1 must inconclusive\n") in md
    assert "| pass | fail | error | inconclusive | not-applicable | not-measured | waived | not-run |" in md
    assert "| 1 | 2 | 2 | 1 | 1 | 1 | 1 | 1 |" in md


def test_full_run_scope_comes_first(non_conformant):
    lines = render_markdown(non_conformant).splitlines()
    assert lines[2].startswith("Full run: every requirement")
    assert "Changed by" not in "\n".join(lines) and "defects" not in "\n".join(lines)


def test_partial_run_says_so_prominently(partial):
    md = render_markdown(partial)
    lines = md.splitlines()
    assert lines[0] == "# Edge conformance: INCOMPLETE (PARTIAL RUN)"
    assert lines[2].startswith("> **PARTIAL RUN: narrowed by --suite functional security.**")
    assert lines[4] == "> Changed by: --defect store-1:slow-path, --waivers waivers.yaml"
    assert "**Verdict: INCOMPLETE**: 13 musts not measured\n" in md
    assert "\nTo measure them: add --suite latency; add a host to store-1, store-2; pass --allow-faults\n" in md


def test_changed_run_says_what_changed_it(non_conformant):
    non_conformant["scope"]["changed_by"] = ["--strict", "--allow-faults"]
    lines = render_markdown(non_conformant).splitlines()
    assert lines[2].startswith("Full run") and lines[3] == "Changed by: --strict, --allow-faults"


def test_old_results_render_with_their_skip(legacy_v1):
    md = render_markdown(legacy_v1)
    assert md.splitlines()[2] == "Scope not recorded (results from an older harness)"
    assert "| pass | fail | error | inconclusive | skip | waived | not-run |" in md
    assert "| BASE-SEC-01 | store-1 | must | skip |" in md


def test_no_emoji_in_status_words(any_results):
    md = render_markdown(any_results)
    assert not re.search("[\U0001F300-\U0001FAFF\u2600-\u27BF]", md)


def test_failures_first_in_order_must_undecided_advisory(non_conformant):
    md = render_markdown(non_conformant)
    must = md.index("## Must failures (1)")
    undecided = md.index("## Errors and inconclusive results (3)")
    unmeasured = md.index("## Not measured (1)")
    advisory = md.index("## Advisory failures")
    table = md.index("## All results")
    assert must < undecided < unmeasured < advisory < table
    assert "BASE-FUN-02@store-2" in _section(md, "## Must failures")
    assert "BASE-LAT-01@store-1" in _section(md, "## Errors and inconclusive")
    assert "BASE-FUN-03@store-1" in _section(md, "## Advisory failures")
    assert "BASE-FUN-03" not in _section(md, "## Must failures")


def test_failure_names_measured_and_expected(non_conformant):
    must = _section(render_markdown(non_conformant), "## Must failures")
    assert "measured: status = 503, latency = 12.3 ms; expected: status == 200" in must


def test_strict_marks_advisory_failures_blocking(non_conformant):
    non_conformant["options"]["strict"] = True
    md = render_markdown(non_conformant)
    assert "## Should/may failures (blocking: --strict)" in md
    assert "**Verdict: NON-CONFORMANT** (strict): 2 requirements failed" in md


def test_not_measured_lists_reason_and_remedy(non_conformant):
    section = _section(render_markdown(non_conformant), "## Not measured")
    assert ("- **BASE-HOST-01@store-2** (must): site store-2 has no host to check. To measure it: add a host to "
            "store-2") in section


def test_not_measured_for_one_reason_is_one_item(partial):
    section = _section(render_markdown(partial), "## Not measured (15)")
    assert ("- **12 results** (10 must, 2 should): suite latency left out of this run (--suite functional "
            "security). To measure them: add --suite latency") in section
    names = next(line for line in section.splitlines() if line.startswith("  - BASE-LAT-01@store-1"))
    assert names.count("@") == 12
    # musts before the rest, each per-site reason on its own
    assert section.index("12 results") < section.index("BASE-HOST-01@store-1") < section.index("BASE-SEC-02")


def test_not_measured_names_are_capped(partial):
    extra = [dict(partial["requirements"][2], id=f"BASE-LAT-{i:03d}") for i in range(100)]
    partial["requirements"] += extra
    section = _section(render_markdown(partial), "## Not measured")
    assert "**112 results**" in section and "and 62 more (see All results)" in section


def test_not_applicable_listed_with_reason(non_conformant):
    section = _section(render_markdown(non_conformant), "## Not applicable (1)")
    assert "- BASE-SEC-01@store-1: no endpoint asks for credentials" in section


def test_conformant_run_has_no_failure_sections(conformant):
    md = render_markdown(conformant)
    assert "## Must failures" not in md and "## Errors" not in md and "## Advisory" not in md
    assert "**Verdict: CONFORMANT**" in md


def test_full_table_has_every_result(non_conformant):
    table = _section(render_markdown(non_conformant), "## All results")
    assert "| id | site | level | status | measured | expected |" in table
    assert "| BASE-FUN-02 | store-2 | must | fail | status = 503, latency = 12.3 ms | status == 200 |" in table
    assert len([line for line in table.splitlines() if line.startswith("| BASE-")]) == 10
    assert "| BASE-HOST-01 | store-2 | must | not-measured |" in table


def test_cells_escape_pipes_newlines_and_html():
    assert cell("a|b") == "a\\|b"
    assert cell("line1\nline2") == "line1<br>line2"
    assert cell("<script>x</script>") == "&lt;script>x&lt;/script>"
    assert cell("p99 <= 20 ms") == "p99 <= 20 ms"


def test_hostile_text_cannot_break_table_rows(hostile, injection):
    for r in hostile["requirements"]:
        r["message"] += "\n| fake | row |"
        r["site"] = "a|b\nc"
    table = _section(render_markdown(hostile), "## All results")
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert all(row.count(" | ") - row.count("\\| ") == 5 for row in rows)  # six cells in every row
    md = render_markdown(hostile)
    assert "<script>" not in md and "<img" not in md and "\x1b" not in md
    assert "&lt;script>alert(1)&lt;/script>" in _section(md, "## Not measured")  # reason and remedy, as text
    assert md.splitlines()[0].endswith("(PARTIAL RUN)") and "--site &lt;script>" in md  # scope, as text


def test_worst_sites_for_latency_ranked_by_ratio(with_raw):
    worst = _section(render_markdown(with_raw), "## Worst sites for latency")
    lines = [line for line in worst.splitlines() if line.startswith("| store")]
    assert lines[0].startswith("| store-2 | RCB-LAT-01 | 38.2 ms | 20 ms | 191% |")
    assert lines[1].startswith("| store-1 | RCB-LAT-01 | 9.1 ms | 20 ms | 45% |")


def test_worst_sites_from_a_p99_metric_without_raw(conformant):
    conformant["requirements"][0].update(expect="p99 <= 10 ms", measured={"p99": {"value": 15, "unit": "ms"}})
    worst = _section(render_markdown(conformant), "## Worst sites for latency")
    assert "| store-1 | BASE-FUN-01 | 15 ms | 10 ms | 150% |" in worst


def test_waivers_applied_and_expired(non_conformant):
    md = render_markdown(non_conformant)
    assert "| BASE-FUN-04 | store-1 | vendor fix due in 4.2 | jane.doe@example.com | 2027-01-31 |" in \
        _section(md, "## Waivers applied")
    assert "| BASE-FUN-09 | all | old exemption | ops | 2026-01-01 |" in _section(md, "## Waivers expired")


def test_interrupted_run_says_so(interrupted):
    md = render_markdown(interrupted)
    assert "**Verdict: INCOMPLETE**" in md
    assert "interrupted: 1 requirement checks did not run" in md
    assert "| 1 | 0 | 0 | 0 | 0 | 0 | 0 | 1 |" in md  # counts recomputed: the file had none


def test_step_summary_appended_when_env_set(monkeypatch, tmp_path, conformant):
    target = tmp_path / "summary"
    target.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    md = render_markdown(conformant)
    assert append_github_step_summary(md) == target
    assert target.read_text() == "earlier step\n" + md


def test_step_summary_noop_without_env(monkeypatch, tmp_path):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.chdir(tmp_path)
    assert append_github_step_summary("# x\n") is None
    assert list(tmp_path.iterdir()) == []


def test_step_summary_truncated_below_github_limit(tmp_path):
    target = tmp_path / "summary"
    huge = "".join(f"| row {i} |\n" for i in range(200_000))
    append_github_step_summary(huge, env={"GITHUB_STEP_SUMMARY": str(target)})
    written = target.read_bytes()
    assert len(written) <= STEP_SUMMARY_LIMIT + 100
    assert written.endswith(b"*(summary truncated: see summary.md)*\n")


def test_odd_measured_values_render(conformant):
    conformant["requirements"][0]["measured"] = {"connected": {"value": True, "unit": ""},
                                                 "p99": {"value": None, "unit": "ms"}, "raw": 3}
    row = next(line for line in render_markdown(conformant).splitlines() if line.startswith("| BASE-FUN-01 | store-1"))
    assert "connected = true, p99 = -, raw = 3" in row
