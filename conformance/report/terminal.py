"""The compact table printed at the end of a run. Colour only when the caller asks (a TTY, no NO_COLOR)."""

from __future__ import annotations

from tabulate import tabulate

from . import view as V

_RESET = "\033[0m"
_COLORS = {"pass": "\033[32m", "fail": "\033[31m", "error": "\033[35m", "inconclusive": "\033[33m",
           "skip": "\033[2m", "not-run": "\033[2m", "waived": "\033[36m",
           "conformant": "\033[1;32m", "non-conformant": "\033[1;31m", "incomplete": "\033[1;33m"}


def _paint(text: str, key: str, color: bool) -> str:
    code = _COLORS.get(key)
    return f"{code}{text}{_RESET}" if color and code else text


def _status(r: dict, color: bool) -> str:
    if V.is_advisory(r):  # yellow, not red: it does not decide the verdict without --strict
        return _paint("fail (advisory)", "inconclusive", color)
    return _paint(V.status(r), V.status(r), color)


def _line(text: str) -> str:
    return " ".join(text.split())


def render_terminal(results: dict, color: bool) -> str:
    # V.clean strips escape sequences: target text must not be able to drive the user's terminal.
    rows = [[_line(V.label(r)), V.level(r), _status(r, color), _line(V.fmt_measured(r))]
            for r in V.requirements(results)]
    table = tabulate(rows, headers=["requirement@site", "level", "status", "measured"],
                     tablefmt="simple", disable_numparse=True) if rows else "(no requirement results)"
    counts = ", ".join(f"{n} {s}" for s, n in V.count_items(results) if n)
    verdict = _paint(V.verdict_word(results), V.clean(results.get("verdict")), color)
    lines = [table, "", f"verdict: {verdict}" + (f" ({counts})" if counts else "")]
    note = V.state_note(results)
    return "\n".join(lines + ([note] if note else [])) + "\n"
