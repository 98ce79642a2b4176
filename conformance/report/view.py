"""A tolerant reading of a results.json dict, shared by every renderer.

Renderers get results from older harness versions, from runs interrupted mid-way and from hand-edited
files, so nothing here assumes an optional key exists or has the right type. Text that came from a
target (site names, messages, notes) is passed through `clean` before any renderer sees it: control
characters cannot be carried by XML and would let a target drive the user's terminal.
"""

from __future__ import annotations

import re
from typing import Any

from ..model import results as R
from ..model import units as U

STATUSES = R.STATUSES
LEVELS = ("must", "should", "may")
UNDECIDED = ("error", "inconclusive")

# C0/C1 controls (except tab and newline), surrogates and the two non-characters XML 1.0 forbids.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def clean(value: Any) -> str:
    """str(value) without characters that XML cannot carry or a terminal would obey."""
    if value is None:
        return ""
    text = str(value).replace("\r\n", "\n").replace("\r", "\n")
    return _UNSAFE.sub("", text)


def as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def requirements(results: dict) -> list[dict]:
    return [r for r in as_list(results.get("requirements")) if isinstance(r, dict)]


def strict(results: dict) -> bool:
    return bool(as_dict(results.get("options")).get("strict"))


def status(r: dict) -> str:
    s = r.get("status")
    return s if s in STATUSES else "not-run"


def level(r: dict) -> str:
    lv = r.get("level")
    return lv if lv in LEVELS else "must"  # unknown levels count as the strictest, never hide a failure


def is_advisory(r: dict) -> bool:
    """A failed should/may: reported, but it only blocks the verdict under --strict."""
    if status(r) != "fail":
        return False
    if "advisory" in r:
        return bool(r["advisory"])
    return level(r) != "must"


def verdict_word(results: dict) -> str:
    v = results.get("verdict")
    return str(v).upper() if v in (R.CONFORMANT, R.NON_CONFORMANT, R.INCOMPLETE) else "UNKNOWN"


def label(r: dict) -> str:
    """BASE-FUN-01@store-1."""
    return f"{clean(r.get('id') or '?')}@{clean(r.get('site') or '?')}"


def fmt_value(value: Any, unit: Any = "") -> str:
    unit = clean(unit) if unit else ""
    if value is None:
        return "-"
    if isinstance(value, (int, float)):
        try:
            return U.format_value(value, unit)
        except (OverflowError, ValueError):  # inf/nan
            return f"{value} {unit}".strip()
    return f"{clean(value)} {unit}".strip()


def measured_items(r: dict) -> list[tuple[str, str]]:
    """[(metric, '12.3 ms'), ...] in the order the check recorded them."""
    out = []
    for name, m in as_dict(r.get("measured")).items():
        if isinstance(m, dict):
            out.append((clean(name), fmt_value(m.get("value"), m.get("unit"))))
        else:
            out.append((clean(name), fmt_value(m)))
    return out


def fmt_measured(r: dict) -> str:
    return ", ".join(f"{k} = {v}" for k, v in measured_items(r))


def expected(r: dict) -> str:
    return clean(r.get("expect"))


def message(r: dict) -> str:
    return clean(r.get("message")) or f"{label(r)}: {status(r)}"


def waiver_text(w: Any) -> str:
    w = as_dict(w)
    parts = [f"waived by {clean(w.get('who') or 'unknown')}"]
    if w.get("expires"):
        parts.append(f"until {clean(w['expires'])}")
    text = " ".join(parts)
    return f"{text}: {clean(w['reason'])}" if w.get("reason") else text


def problem_groups(results: dict) -> list[tuple[str, str, list[dict]]]:
    """(key, heading, requirements) in reading order: must failures, undecided, advisory."""
    reqs = requirements(results)
    must_fail = [r for r in reqs if status(r) == "fail" and not is_advisory(r)]
    undecided = sorted((r for r in reqs if status(r) in UNDECIDED), key=lambda r: LEVELS.index(level(r)))
    advisory = [r for r in reqs if is_advisory(r)]
    adv_title = ("Should/may failures (blocking: --strict)" if strict(results)
                 else "Advisory failures (should/may; not blocking)")
    groups = [("fail", "Must failures", must_fail),
              ("undecided", "Errors and inconclusive results", undecided),
              ("advisory", adv_title, advisory)]
    return [g for g in groups if g[2]]


def count_items(results: dict) -> list[tuple[str, int]]:
    """Counts in status order; recomputed from requirements when the file has none."""
    counts = as_dict(results.get("counts"))
    if not counts:
        counts = R.counts([{"status": status(r)} for r in requirements(results)])
    out = []
    for s in STATUSES:
        try:
            out.append((s, int(counts.get(s) or 0)))
        except (TypeError, ValueError):
            out.append((s, 0))
    return out


def profile_titles(results: dict) -> list[str]:
    out = []
    for p in as_list(results.get("profiles")):
        p = as_dict(p)
        pid = clean(p.get("id") or "?")
        out.append(f"{pid} {clean(p['version'])}" if p.get("version") else pid)
    return out


def state_note(results: dict) -> str:
    """'' for a finished run; otherwise why the verdict may be partial."""
    state = results.get("state")
    not_run = sum(1 for r in requirements(results) if status(r) == "not-run")
    if state == "interrupted":
        return f"The run was interrupted: {not_run} requirement checks did not run."
    if state == "running":
        return f"The run is still in progress (or crashed): {not_run} requirement checks have not run yet."
    return ""
