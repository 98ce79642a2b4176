"""summary.md: the short, readable verdict for pull requests and CI job summaries.

Reading order is what a reviewer needs first: verdict, counts, what failed (must failures, then what
could not be decided, then advisory), the full table, the sites closest to their latency limits and
the waivers. Cells are escaped so target text cannot break the table or inject HTML into the page
that renders it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from . import latency as L
from . import view as V

# GitHub refuses a job summary over 1 MiB per step; stay under it rather than lose the whole summary.
STEP_SUMMARY_LIMIT = 1024 * 1024 - 4096
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
    lines = [f"# Edge conformance: {V.verdict_word(results)}", ""]
    lines += _summary(results)
    lines += _problems(results)
    lines += _full_table(results)
    lines += _worst_latency(results)
    lines += _waivers(results)
    return "\n".join(lines).rstrip() + "\n"


def _summary(results: dict) -> list[str]:
    target = V.as_dict(results.get("target"))
    lines = [f"**Verdict: {V.verdict_word(results)}**" + (" (strict)" if V.strict(results) else ""), ""]
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
    for _, heading, reqs in V.problem_groups(results):
        lines += [f"## {heading} ({len(reqs)})", ""]
        for r in reqs:
            lines.append(f"- **{text(V.label(r))}** ({V.level(r)}, {V.status(r)}): {text(V.message(r))}")
            lines.append(f"  - measured: {text(V.fmt_measured(r)) or 'nothing'}; "
                         f"expected: {text(V.expected(r)) or '?'}")
        lines.append("")
    return lines


def _full_table(results: dict) -> list[str]:
    rows = [[r.get("id"), r.get("site"), V.level(r), V.status(r), V.fmt_measured(r), V.expected(r)]
            for r in V.requirements(results)]
    if not rows:
        return ["## All results", "", "No requirement results.", ""]
    return ["## All results", ""] + _table(["id", "site", "level", "status", "measured", "expected"], rows)


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
