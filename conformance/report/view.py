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
from ..model import sampling as MS
from ..model import units as U
from ..model import verdict as MV

STATUSES = R.STATUSES
# v1 files still say "skip" (not applicable and not measured in one); they must keep rendering as such.
LEGACY = R.LEGACY_STATUSES
KNOWN = STATUSES + LEGACY
# Counts in this order: v2's, with v1's "skip" beside the two statuses it became.
_ORDER = ("pass", "fail", "error", "inconclusive", "not-applicable", "not-measured", "skip", "waived", "not-run")
COUNT_ORDER = tuple(s for s in _ORDER if s in KNOWN) + tuple(s for s in KNOWN if s not in _ORDER)
LEVELS = ("must", "should", "may")
UNDECIDED = ("error", "inconclusive")
# A should/may result in one of these is advisory (model/verdict.py is_advisory).
ADVISORY_STATUSES = ("fail", "error", "inconclusive", "not-measured")

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
    return bool(as_dict(results.get("options")).get("strict") or as_dict(results.get("scope")).get("strict"))


def status(r: dict) -> str:
    s = r.get("status")
    return s if s in KNOWN else "not-run"


def level(r: dict) -> str:
    lv = r.get("level")
    return lv if lv in LEVELS else "must"  # unknown levels count as the strictest, never hide a failure


def is_advisory(r: dict, strict_run: bool = False) -> bool:
    """A should/may that failed or was not decided: reported, but it does not block the verdict.
    Under --strict (`strict_run`) nothing is advisory: every requirement counts."""
    if strict_run or status(r) not in ADVISORY_STATUSES:
        return False
    if "advisory" in r:
        return bool(r["advisory"])
    return MV.is_advisory(level(r), status(r))


def counts_toward_verdict(r: dict) -> bool:
    return R.counts_toward_verdict(r)


def ended(r: dict) -> tuple[str, str]:
    """(reason, remedy) of a result that did not measure; from its message when `ended` is missing."""
    e = as_dict(r.get("ended"))
    reason = clean(e.get("reason"))
    remedy = clean(e.get("remedy"))
    if not reason:
        reason = message(r)
    return reason, remedy


def is_unsampled(r: dict) -> bool:
    """A site outside a sampled quorum's sample: not run by design, neither a gap nor left out."""
    return R.is_unsampled(r)


def sampling_text(r: dict) -> str:
    """'sampled 100 of 1,000 sites; pass share >= 96.4 % at 95 % confidence' for the fleet entry of a
    sampled quorum requirement; '' for any other entry."""
    if r.get("site") != R.FLEET_SITE or not isinstance(r.get("sampling"), dict):
        return ""
    return clean(MS.summary(r["sampling"], status(r)))


def sampled_fleets(results: dict) -> list[tuple[dict, str, int]]:
    """(fleet entry, its sampling text, how many of its sites were outside the sample), in order."""
    reqs = requirements(results)
    outside: dict[tuple, int] = {}
    for r in reqs:
        if is_unsampled(r):
            key = (r.get("profile"), r.get("id"))
            outside[key] = outside.get(key, 0) + 1
    return [(r, text, outside.get((r.get("profile"), r.get("id")), 0)) for r in reqs if (text := sampling_text(r))]


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
    """(key, heading, requirements) in reading order: must failures, errors and inconclusive results,
    results not measured, advisory failures. Must (blocking) results come first within a group."""
    reqs = requirements(results)
    strict_run = strict(results)
    by_level = lambda rs: sorted(rs, key=lambda r: LEVELS.index(level(r)))  # noqa: E731 - stable sort
    must_fail = [r for r in reqs if status(r) == "fail" and not is_advisory(r)]
    undecided = by_level(r for r in reqs if status(r) in UNDECIDED)
    unmeasured = by_level(r for r in reqs if status(r) == "not-measured")
    advisory = [r for r in reqs if status(r) == "fail" and is_advisory(r)]  # their heading says if they block
    adv_title = ("Should/may failures (blocking: --strict)" if strict_run
                 else "Advisory failures (should/may; not blocking)")
    groups = [("fail", "Must failures", must_fail),
              ("undecided", "Errors and inconclusive results", undecided),
              ("not-measured", "Not measured", unmeasured),
              ("advisory", adv_title, advisory)]
    return [g for g in groups if g[2]]


def not_measured_groups(reqs: list[dict]) -> list[tuple[str, str, list[dict]]]:
    """Not-measured results grouped by (reason, remedy): a run narrowed to one requirement leaves
    hundreds out for the same reason, which is one line to read, not hundreds. Groups holding a must
    first, then the biggest."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in reqs:
        groups.setdefault(ended(r), []).append(r)
    ordered = sorted(groups.items(), key=lambda kv: (min(LEVELS.index(level(r)) for r in kv[1]), -len(kv[1])))
    return [(reason, remedy, items) for (reason, remedy), items in ordered]


def count_items(results: dict) -> list[tuple[str, int]]:
    """Counts in status order, as the file records them (recomputed from its requirements when it has
    none). The statuses are the file's own: a v1 file shows its "skip" and not the v2 statuses it could
    not have had."""
    counts = as_dict(results.get("counts"))
    if not counts:
        counts = R.counts([{"status": status(r)} for r in requirements(results)])
    legacy = any(s in counts for s in LEGACY)
    out = []
    for s in COUNT_ORDER:
        try:
            n = int(counts.get(s) or 0)
        except (TypeError, ValueError):
            n = 0
        if s in counts if legacy else (s in STATUSES or n):
            out.append((s, n))
    return out


def statuses_present(results: dict) -> tuple[str, ...]:
    """The statuses a filter may offer: every v2 status, and "skip" for a v1 file that has it."""
    present = {status(r) for r in requirements(results)}
    return STATUSES + tuple(s for s in LEGACY if s in present)


# ------------------------------------------------------------------------------------------- scope


class Scope:
    """What narrowed or changed the run (results.json "scope"), as every report's first lines say it."""

    def __init__(self, results: dict):
        raw = results.get("scope")
        self.recorded = isinstance(raw, dict)
        scope = as_dict(raw)
        self.narrowed_by = [clean(x) for x in as_list(scope.get("narrowed_by")) if clean(x).strip()]
        self.changed_by = [clean(x) for x in as_list(scope.get("changed_by")) if clean(x).strip()]
        # "full" is the record's word; a record that lists what narrowed it is partial whatever it says.
        self.full = self.recorded and bool(scope.get("full", True)) and not self.narrowed_by

    @property
    def word(self) -> str:
        """full | partial | unknown (JUnit property `scope`)."""
        return "unknown" if not self.recorded else "full" if self.full else "partial"

    @property
    def headline(self) -> str:
        if not self.recorded:
            return "Scope not recorded (results from an older harness)"
        if self.full:
            return "Full run: every requirement of the profiles on every site it applies to"
        how = ", ".join(self.narrowed_by) or "options not recorded"
        return f"PARTIAL RUN: narrowed by {how}"

    @property
    def changed(self) -> str:
        """'' when nothing changed the deployment or the rules."""
        return f"Changed by: {', '.join(self.changed_by)}" if self.changed_by else ""

    def lines(self) -> list[str]:
        return [self.headline] + ([self.changed] if self.changed else [])


# ----------------------------------------------------------------------------------- verdict reason

_UNDECIDED_WORDS = {"error": "in error", "inconclusive": "inconclusive", "not-measured": "not measured",
                    "not-run": "not run"}


def _blocking(results: dict) -> list[dict]:
    """The results that decide the verdict: musts (any level with --strict), fleet entries not members."""
    strict_run = strict(results)
    return [r for r in requirements(results) if counts_toward_verdict(r) and (strict_run or level(r) == "must")]


def _n(n: int, strict_run: bool) -> str:
    noun = "requirement" if strict_run else "must"
    return f"{n} {noun}{'' if n == 1 else 's'}"


def verdict_reason(results: dict) -> str:
    """Why the run is not conformant, in counts: '2 musts failed, 20 musts not measured'; '' if it is."""
    blocking, strict_run = _blocking(results), strict(results)
    parts = []
    failed = sum(status(r) == "fail" for r in blocking)
    if failed:
        parts.append(f"{_n(failed, strict_run)} failed")
    for s in ("not-measured", "error", "inconclusive", "not-run"):
        n = sum(status(r) == s for r in blocking)
        if n:
            parts.append(f"{_n(n, strict_run)} {_UNDECIDED_WORDS[s]}")
    return ", ".join(parts)


_WORD = re.compile(r"[\w.-]+")
_SITE = "\x00"  # where a remedy named its site, in the remedy's template


def _site_template(remedy: str, site: str) -> tuple[str, str]:
    """("add a host to \\0", "store-1") when the remedy names its site once as a word; else (remedy, "")."""
    if site and [m.group(0) for m in _WORD.finditer(remedy)].count(site) == 1:
        return re.sub(rf"(?<![\w.-]){re.escape(site)}(?![\w.-])", _SITE, remedy), site
    return remedy, ""


def remedies(results: dict) -> list[str]:
    """What would let the blocking not-measured results be measured, most needed first: each remedy
    once, and remedies that differ only by the site they name merged ("add a host to store-1, store-2")."""
    needed: dict[str, list[str]] = {}  # template -> the site of each result that needs it ("" if none)
    for r in _blocking(results):
        _, remedy = ended(r)
        if status(r) == "not-measured" and remedy:
            template, site = _site_template(remedy, clean(r.get("site")))
            needed.setdefault(template, []).append(site)
    ordered = sorted(needed.items(), key=lambda kv: -len(kv[1]))
    return [t.replace(_SITE, ", ".join(dict.fromkeys(sites))) for t, sites in ordered]


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
    not_run = sum(1 for r in requirements(results) if status(r) == "not-run" and not is_unsampled(r))
    if state == "interrupted":
        return f"The run was interrupted: {not_run} requirement checks did not run."
    if state == "running":
        return f"The run is still in progress (or crashed): {not_run} requirement checks have not run yet."
    return ""


# -------------------------------------------------------------------------------------- sources


def source_index(results: dict) -> dict[str, dict]:
    """key -> the full citation record, from every profile's `sources` (what its requirements cite)."""
    index: dict[str, dict] = {}
    for p in as_list(results.get("profiles")):
        for s in as_list(as_dict(p).get("sources")):
            s = as_dict(s)
            if s.get("key"):
                index.setdefault(clean(s["key"]), s)
    return index


def citations(r: dict, index: dict[str, dict]) -> list[dict]:
    """The entry's citations: the key and place as the profile wrote them, and the full citation."""
    out = []
    for c in as_list(r.get("cites")):
        c = as_dict(c)
        key = clean(c.get("key") or "?")
        src = as_dict(index.get(key))
        out.append({"key": key, "at": clean(c.get("at")), "citation": clean(src.get("citation"))})
    return out


def basis_text(r: dict) -> str:
    """'derived: 10 ms E2E less ...', 'assumed: ...', 'source'; '' when the entry has none."""
    b = as_dict(r.get("basis"))
    kind = clean(b.get("kind"))
    if not kind:
        return ""
    note = clean(b.get("note"))
    return f"{kind}: {note}" if note else kind

