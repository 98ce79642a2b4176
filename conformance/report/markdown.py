"""summary.md: the short, readable verdict for pull requests and CI job summaries.

Reading order is what a reviewer needs first: verdict and scope (a narrowed run says so before anything
else), counts, what failed (must failures, then what could not be decided, then what was not measured
and what would measure it, then advisory), the full table, what does not apply, the sites closest to
their latency limits and the waivers. Cells are escaped so target text cannot break the table or inject
HTML into the page that renders it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from . import latency as L
from . import view as V

# GitHub refuses a job summary over 1 MiB per step; stay under it rather than lose the whole summary.
STEP_SUMMARY_LIMIT = 1024 * 1024 - 4096
GROUP_LABELS = 50  # requirement@site labels named under one not-measured reason; the table has them all
_TAG = re.compile(r"<(?=[A-Za-z/!?])")
_ENTITY = re.compile(r"&(?=[A-Za-z0-9#])")


def cell(value) -> str:
    """One table cell: pipes, HTML and newlines escaped."""
    text = V.clean(value).replace("\\", "\\\\").replace("|", "\\|")
    # Only what could start an HTML tag or entity is escaped, so `p99 <= 20 ms` stays readable.
    text = _ENTITY.sub("&amp;", text)
    text = _TAG.sub("&lt;", text)
    return "<br>".join(part.strip() for part in text.strip().split("\n"))


def text(value) -> str:
    """Running text outside tables: one line, no HTML."""
    return " ".join(cell(value).replace("<br>", " ").split())


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return out + [""]


def render_markdown(results: dict) -> str:
    scope = V.Scope(results)
    partial = " (PARTIAL RUN)" if scope.word == "partial" else ""
    lines = [f"# Edge conformance: {V.verdict_word(results)}{partial}", ""]
    lines += _scope(scope)
    lines += _summary(results)
    lines += _problems(results)
    lines += _sampled(results)
    lines += _full_table(results)
    lines += _not_applicable(results)
    lines += _worst_latency(results)
    lines += _waivers(results)
    return "\n".join(lines).rstrip() + "\n"


def _scope(scope: V.Scope) -> list[str]:
    """First lines after the heading: a partial run as a bold quote, so nobody reads it as a full one."""
    if scope.word == "partial":
        lines = [f"> **{text(scope.headline)}.** What it left out was not measured, so the verdict covers only "
                 "part of the profiles."]
        lines += [">", f"> {text(scope.changed)}"] if scope.changed else []
        return lines + [""]
    return [text(line) for line in scope.lines()] + [""] if scope.changed else [text(scope.headline), ""]


def _summary(results: dict) -> list[str]:
    target = V.as_dict(results.get("target"))
    reason = V.verdict_reason(results) if results.get("verdict") != "conformant" else ""
    lines = [f"**Verdict: {V.verdict_word(results)}**" + (" (strict)" if V.strict(results) else "")
             + (f": {text(reason)}" if reason else ""), ""]
    fixes = V.remedies(results)
    lines += [f"To measure them: {text('; '.join(fixes))}", ""] if fixes else []
    facts = [("Run", results.get("run_id")), ("Profiles", ", ".join(V.profile_titles(results))),
             ("Target", f"{V.clean(target.get('name'))} ({V.clean(target.get('kind'))})" if target else ""),
             ("Started", results.get("started")), ("Finished", results.get("finished"))]
    lines += [f"- {k}: {text(v)}" for k, v in facts if v]
    note = V.state_note(results)
    lines += ["", f"> **{text(note)}**"] if note else []
    counts = V.count_items(results)
    return lines + [""] + _table([s for s, _ in counts], [[n for _, n in counts]])


def _problems(results: dict) -> list[str]:
    lines = []
    for key, heading, reqs in V.problem_groups(results):
        lines += [f"## {heading} ({len(reqs)})", ""]
        if key == "not-measured":
            lines += _not_measured(reqs)
            continue
        for r in reqs:
            lines.append(f"- **{text(V.label(r))}** ({V.level(r)}, {V.status(r)}): {text(V.message(r))}")
            lines.append(f"  - measured: {text(V.fmt_measured(r)) or 'nothing'}; "
                         f"expected: {text(V.expected(r)) or '?'}")
            if V.sampling_text(r):
                lines.append(f"  - {text(V.sampling_text(r))}")
            if V.basis_text(r):  # a failure against a source's figure weighs more than one against ours
                lines.append(f"  - threshold: {text(V.basis_text(r))}")
        lines.append("")
    return lines


def _sampled(results: dict) -> list[str]:
    """Fleet requirements judged on a sample: how big, at what confidence, and the sites it left alone."""
    fleets = V.sampled_fleets(results)
    if not fleets:
        return []
    lines = [f"## Sampled fleet requirements ({len(fleets)})", "",
             "Judged on a deterministic sample of their sites at a stated confidence. The sites outside the "
             "sample were not measured, by design: they are `not-run` and no gap in the verdict.", ""]
    for r, summary, outside in fleets:
        quorum = r.get("quorum")
        wanted = f"; quorum {quorum * 100:g} %" if isinstance(quorum, (int, float)) else ""
        rest = f"; {outside} sites not in the sample" if outside else ""
        lines.append(f"- **{text(V.label(r))}** ({V.level(r)}, {V.status(r)}): {text(summary)}{text(wanted)}{rest}")
    return lines + [""]


def _not_measured(reqs: list[dict]) -> list[str]:
    """Grouped by reason and remedy: a narrowed run leaves many out for one reason, one item to read."""
    lines = ["They apply to their site but were not measured here: never a pass. A must left not measured "
             "makes the run incomplete.", ""]
    for reason, remedy, items in V.not_measured_groups(reqs):
        if len(items) == 1:
            r = items[0]
            fix = f" To measure it: {text(remedy)}" if remedy else ""
            lines.append(f"- **{text(V.label(r))}** ({V.level(r)}): {text(reason)}.{fix}")
            continue
        levels = ", ".join(f"{n} {lv}" for lv in V.LEVELS if (n := sum(V.level(r) == lv for r in items)))
        fix = f" To measure them: {text(remedy)}" if remedy else ""
        names = ", ".join(text(V.label(r)) for r in items[:GROUP_LABELS])
        more = f" and {len(items) - GROUP_LABELS} more (see All results)" if len(items) > GROUP_LABELS else ""
        lines += [f"- **{len(items)} results** ({levels}): {text(reason)}.{fix}", f"  - {names}{more}"]
    return lines + [""]


def _full_table(results: dict) -> list[str]:
    rows = [[r.get("id"), r.get("site"), V.level(r), V.status(r), V.fmt_measured(r), V.expected(r)]
            for r in V.requirements(results)]
    if not rows:
        return ["## All results", "", "No requirement results.", ""]
    return ["## All results", ""] + _table(["id", "site", "level", "status", "measured", "expected"], rows)


def _not_applicable(results: dict) -> list[str]:
    reqs = [r for r in V.requirements(results) if V.status(r) == "not-applicable"]
    if not reqs:
        return []
    lines = [f"## Not applicable ({len(reqs)})", ""]
    lines += [f"- {text(V.label(r))}: {text(V.ended(r)[0])}" for r in reqs]
    return lines + [""]


def _worst_latency(results: dict) -> list[str]:
    rows = L.worst_sites(results)
    if not rows:
        return []
    body = [[row.site, row.id, V.fmt_value(row.p99_ms, "ms"),
             V.fmt_value(row.threshold_ms, "ms") if row.threshold_ms else "-",
             f"{row.ratio:.0%}" if row.ratio is not None else "-"] for row in rows]
    return (["## Worst sites for latency", "", "p99 as a share of its limit, worst first.", ""]
            + _table(["site", "requirement", "p99", "limit", "p99 / limit"], body))


def _waivers(results: dict) -> list[str]:
    waivers = V.as_dict(results.get("waivers"))
    lines = []
    for key, heading in (("applied", "Waivers applied"), ("expired", "Waivers expired (not applied)")):
        items = [V.as_dict(w) for w in V.as_list(waivers.get(key))]
        if items:
            lines += [f"## {heading}", ""]
            lines += _table(["id", "site", "reason", "who", "expires"],
                            [[w.get("id"), w.get("site"), w.get("reason"), w.get("who"), w.get("expires")]
                             for w in items])
    return lines


def append_github_step_summary(markdown: str, env: dict | None = None) -> Path | None:
    """Append to the file named by $GITHUB_STEP_SUMMARY; None when not on GitHub Actions."""
    name = (os.environ if env is None else env).get("GITHUB_STEP_SUMMARY")
    if not name:
        return None
    if len(markdown.encode("utf-8")) > STEP_SUMMARY_LIMIT:
        cut = markdown.encode("utf-8")[:STEP_SUMMARY_LIMIT].decode("utf-8", "ignore")
        markdown = cut[: cut.rfind("\n") + 1] + "\n*(summary truncated: see summary.md)*\n"
    path = Path(name)
    with path.open("a", encoding="utf-8") as f:
        f.write(markdown if markdown.endswith("\n") else markdown + "\n")
    return path
