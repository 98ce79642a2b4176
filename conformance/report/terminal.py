"""What is printed at the end of a run: the scope, the verdict table, one line for each result that did
not pass, and the verdict with its reason. Colour only when the caller asks (a TTY, no NO_COLOR).

Reading order: first what was checked (a narrowed run says so before anything else, so nobody takes a
partial run for a full one), then the table, then the reasons, which are the point of the output and so
do not need -v, and last the verdict line, which is where the eye lands when the output stops.
"""

from __future__ import annotations

from tabulate import tabulate

from . import view as V

WIDTH = 120  # the table's width: a CI log or a terminal split in two
LABEL_WIDTH = 48  # requirement@site; longer labels (fleet site names) are cut
MAX_LINES = 200  # result lines below the table; a run of thousands points to summary.md instead
MAX_REMEDIES = 6
GROUP_MIN = 3  # this many not-measured results for the same reason and remedy make one line
GROUP_LABELS = 6  # labels named on a grouped line

_RESET = "\033[0m"
_COLORS = {"pass": "\033[32m", "fail": "\033[31m", "error": "\033[35m", "inconclusive": "\033[33m",
           "not-measured": "\033[33m", "not-applicable": "\033[2m", "skip": "\033[2m", "not-run": "\033[2m",
           "waived": "\033[36m", "advisory": "\033[33m", "partial": "\033[1;33m",
           "conformant": "\033[1;32m", "non-conformant": "\033[1;31m", "incomplete": "\033[1;33m"}
# Order of the result lines: what decides the verdict first, the waived last.
_LINE_ORDER = {"fail": 0, "error": 1, "inconclusive": 2, "not-measured": 3, "not-run": 4, "waived": 5}


def _paint(text: str, key: str, color: bool) -> str:
    code = _COLORS.get(key)
    return f"{code}{text}{_RESET}" if color and code else text


def _status_word(r: dict, strict: bool) -> tuple[str, str]:
    """('fail (advisory)', colour key): an advisory result is yellow, it does not decide the verdict."""
    status = V.status(r)
    if V.is_advisory(r, strict):
        return f"{status} (advisory)", "advisory"
    return status, status


def _line(text: str) -> str:
    return " ".join(text.split())


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 3, 1)] + "..."


def render_terminal(results: dict, color: bool, width: int = WIDTH) -> str:
    """`width`: the terminal's columns (WIDTH for a log or a file); the table's measured column gets what
    the others leave of it."""
    # V.clean strips escape sequences: target text must not be able to drive the user's terminal.
    out = _scope_lines(results, color)
    out += [_table(results, color, width), ""]
    out += _result_lines(results, color)
    out += _sampled_lines(results)
    out += _verdict_lines(results, color)
    return "\n".join(out) + "\n"


def _scope_lines(results: dict, color: bool) -> list[str]:
    scope = V.Scope(results)
    headline = _line(scope.headline)
    lines = [_paint(headline, "partial", color) if scope.word == "partial" else headline]
    if scope.changed:
        lines.append(_line(scope.changed))
    return lines + [""]


def _table(results: dict, color: bool, width: int = WIDTH) -> str:
    reqs = V.requirements(results)
    if not reqs:
        return "(no requirement results)"
    strict = V.strict(results)
    labels = [_cut(_line(V.label(r)), min(LABEL_WIDTH, max(width // 3, 16))) for r in reqs]
    words = [_status_word(r, strict) for r in reqs]
    # The measured column gets what is left of the width. tabulate makes a column as wide as its widest
    # cell or its header plus two, and puts two spaces between columns.
    used = sum(max(len(header) + 2, *map(len, cells)) for header, cells in
               (("requirement@site", labels), ("level", ["should"]), ("status", [w for w, _ in words]))) + 3 * 2
    room = max(width - used, 12)
    rows = [[label, V.level(r), _paint(word, key, color), _cut(_line(_measured(r)), room)]
            for label, r, (word, key) in zip(labels, reqs, words)]
    return tabulate(rows, headers=["requirement@site", "level", "status", "measured"], tablefmt="simple",
                    disable_numparse=True)


def _measured(r: dict) -> str:
    """The measured column: a sampled fleet says how it was sampled first; a site outside the sample why
    nothing is there."""
    if V.is_unsampled(r):
        return "(not in the sample)"
    sampled = V.sampling_text(r)
    return f"{sampled}; {V.fmt_measured(r)}" if sampled else V.fmt_measured(r)


def _sampled_lines(results: dict) -> list[str]:
    """One line per sampled fleet requirement, whatever its status: the sample and its confidence."""
    lines = []
    for r, summary, outside in V.sampled_fleets(results):
        rest = f" ({outside} sites not in the sample, not measured by design)" if outside else ""
        lines.append(f"  {_line(V.label(r))} {V.status(r)}: {_line(summary)}{rest}")
    return [f"sampled ({len(lines)}):", *lines, ""] if lines else []


def _result_lines(results: dict, color: bool) -> list[str]:
    """One line per result that did not pass (its message says why, and for a not-measured result what
    would measure it); not-applicable results as one count. At most MAX_LINES."""
    strict = V.strict(results)
    # Sites outside a fleet's sample were not run by design: counted in _sampled_lines, not listed here.
    reqs = [r for r in V.requirements(results) if V.status(r) in _LINE_ORDER and not V.is_unsampled(r)]
    # Blocking results before advisory ones, then by status, waived last; stable, so in profile order.
    reqs.sort(key=lambda r: (V.status(r) == "waived", not (strict or V.level(r) == "must"),
                             _LINE_ORDER[V.status(r)]))
    items = _grouped(reqs, strict)
    lines = [_item_line(item, strict, color) for item in items[:MAX_LINES]]
    if len(items) > MAX_LINES:
        rest = sum(len(item) for item in items[MAX_LINES:])
        lines.append(f"  ... and {rest} more not passed: every one is in summary.md next to results.json "
                     "(edge-conformance report results.json --format md)")
    statuses = [V.status(r) for r in V.requirements(results)]
    if "not-applicable" in statuses:
        lines.append(f"  {statuses.count('not-applicable')} not applicable to their site (listed in summary.md)")
    if "skip" in statuses:  # a v1 file: its "skip" was either of not-applicable and not-measured
        lines.append(f"  {statuses.count('skip')} skipped (older results: not applicable or not measured)")
    return [f"not passed ({len(reqs)}):", *lines, ""] if lines else []


def _grouped(reqs: list[dict], strict: bool) -> list[list[dict]]:
    """Each result alone, except not-measured ones that share status word, reason and remedy with at
    least GROUP_MIN - 1 others: a run narrowed to one suite leaves the rest out for one reason, and
    that is one line to read, not hundreds. A group stands where its first result would."""
    keys = [(_status_word(r, strict), V.ended(r)) if V.status(r) == "not-measured" else None for r in reqs]
    sizes: dict = {}
    for key in keys:
        sizes[key] = sizes.get(key, 0) + 1
    items: list[list[dict]] = []
    placed: dict = {}
    for r, key in zip(reqs, keys):
        if key is not None and sizes[key] >= GROUP_MIN:
            if key in placed:
                placed[key].append(r)
                continue
            placed[key] = [r]
            items.append(placed[key])
        else:
            items.append([r])
    return items


def _item_line(item: list[dict], strict: bool, color: bool) -> str:
    word, key = _status_word(item[0], strict)
    if len(item) == 1:
        return f"  {_paint(word, key, color)}: {_line(V.message(item[0]))}"
    reason, remedy = V.ended(item[0])
    names = ", ".join(_line(V.label(r)) for r in item[:GROUP_LABELS])
    more = f" and {len(item) - GROUP_LABELS} more" if len(item) > GROUP_LABELS else ""
    fix = f"; to measure them: {remedy}" if remedy else ""
    return f"  {_paint(word, key, color)}: {len(item)} results ({names}{more}): {_line(reason + fix)}"


def _verdict_lines(results: dict, color: bool) -> list[str]:
    word = V.verdict_word(results)
    reason = V.verdict_reason(results) if word in ("NON-CONFORMANT", "INCOMPLETE") else ""
    counts = ", ".join(f"{n} {s}" for s, n in V.count_items(results) if n)
    verdict = _paint(word + (f": {reason}" if reason else ""), V.clean(results.get("verdict")), color)
    lines = [f"verdict: {verdict}" + (f" ({counts})" if counts else "")]
    fixes = V.remedies(results)
    if fixes:
        more = len(fixes) - MAX_REMEDIES
        lines.append("to measure them: " + _line("; ".join(fixes[:MAX_REMEDIES]))
                     + (f"; and {more} more (see summary.md)" if more > 0 else ""))
    note = V.state_note(results)
    return lines + ([note] if note else [])
