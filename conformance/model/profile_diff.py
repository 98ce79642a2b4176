"""What changed between two profiles (two scenarios, or two versions of one), requirement by requirement.

Profiles are compared as loaded: inheritance resolved, params validated and completed with the check's
defaults, so `duration: 3 s` and `duration: 3000 ms` are the same and a changed parent shows up in
every child. Requirements are matched by id. For a requirement present in both, these fields are
compared: check, level, expect, params (key by key), applies_to, the fleet quorum (`sites`) and its
sample (`sample` with its confidence), and the title, rationale and source texts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .profile import Profile, Requirement

# The fields that change what is checked or how it is judged, then the texts.
FIELDS = ("check", "level", "expect", "params", "applies_to", "sites", "sample", "title", "rationale", "cites",
          "basis", "source")
TEXT_FIELDS = ("rationale", "cites", "basis", "source")


@dataclass
class Change:
    field: str
    old: Any
    new: Any
    key: str | None = None  # the param, for params changes


@dataclass
class RequirementDiff:
    id: str
    old: Requirement
    new: Requirement
    changes: list[Change] = field(default_factory=list)


@dataclass
class ProfileDiff:
    a: Profile
    b: Profile
    header: list[Change] = field(default_factory=list)
    added: list[Requirement] = field(default_factory=list)
    removed: list[Requirement] = field(default_factory=list)
    changed: list[RequirementDiff] = field(default_factory=list)
    unchanged: int = 0

    @property
    def identical(self) -> bool:
        return not (self.header or self.added or self.removed or self.changed)


def _quorum(r: Requirement) -> str | None:
    return None if r.quorum is None else f"{r.quorum * 100:g}%"


def _sample(r: Requirement) -> str | None:
    return None if r.sample is None else f"{r.sample.text} at {r.sample.confidence_text} confidence"


def _shown_param(r: Requirement, key: str) -> Any:
    """A param as the profile wrote it (durations with their unit), else the effective default."""
    if key in r.raw_params:
        return r.raw_params[key]
    value = r.params.get(key)
    return "(default)" if value is None else f"{_fmt(value)} (default)"


def compare_requirements(old: Requirement, new: Requirement) -> list[Change]:
    changes: list[Change] = []
    for name in FIELDS:
        if name == "params":
            for key in sorted(set(old.params) | set(new.params)):
                if old.params.get(key) != new.params.get(key):
                    changes.append(Change("params", _shown_param(old, key), _shown_param(new, key), key))
            continue
        a: object
        b: object
        if name == "expect":
            a, b = " ".join(old.expect.text.split()), " ".join(new.expect.text.split())
        elif name == "applies_to":
            a, b = sorted(old.applies_to), sorted(new.applies_to)
        elif name == "sites":
            a, b = _quorum(old), _quorum(new)
        elif name == "sample":
            a, b = _sample(old), _sample(new)
        elif name == "cites":
            a, b = "; ".join(c.text for c in old.cites), "; ".join(c.text for c in new.cites)
        elif name == "basis":
            a, b = old.basis.text, new.basis.text
        else:
            a, b = getattr(old, name), getattr(new, name)
        if a != b:
            changes.append(Change(name, a, b))
    return changes


def diff_profiles(a: Profile, b: Profile) -> ProfileDiff:
    d = ProfileDiff(a, b)
    for name in ("id", "version", "title", "topology"):
        if getattr(a, name) != getattr(b, name):
            d.header.append(Change(name, getattr(a, name), getattr(b, name)))
    chain_a, chain_b = [c.id for c in a.chain[1:]], [c.id for c in b.chain[1:]]
    if chain_a != chain_b:
        d.header.append(Change("extends", " <- ".join(chain_a) or None, " <- ".join(chain_b) or None))
    old = {r.id: r for r in a.requirements}
    new = {r.id: r for r in b.requirements}
    d.removed = [r for r in a.requirements if r.id not in new]
    d.added = [r for r in b.requirements if r.id not in old]
    for r in b.requirements:
        if r.id in old:
            changes = compare_requirements(old[r.id], r)
            if changes:
                d.changed.append(RequirementDiff(r.id, old[r.id], r, changes))
            else:
                d.unchanged += 1
    return d


def _fmt(value: Any, limit: int = 80) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        text = "[" + ", ".join(value) + "]" if value else "[] (every site)"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, separators=(",", ":"), default=str)
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _summary(r: Requirement) -> str:
    applies = ", ".join(r.applies_to) or "every site"
    quorum = f", {r.quorum * 100:g}% of sites" if r.quorum is not None else ""
    quorum += f", sample {_sample(r)}" if r.sample is not None else ""
    return f"{r.id} [{r.level}] {r.check}: {r.expect.text}  ({applies}{quorum})  {r.title}"


def render(d: ProfileDiff) -> str:
    a, b = d.a, d.b
    lines = [f"--- {a.id} {a.version} ({a.path})", f"+++ {b.id} {b.version} ({b.path})"]
    for c in d.header:
        lines.append(f"  {c.field}: {_fmt(c.old)} -> {_fmt(c.new)}")
    if d.identical:
        lines.append(f"no differences ({len(a.requirements)} requirements)")
        return "\n".join(lines) + "\n"
    lines.append("")
    lines.append(f"added ({len(d.added)}):")
    lines += [f"  + {_summary(r)}" for r in d.added] or ["  (none)"]
    lines.append(f"removed ({len(d.removed)}):")
    lines += [f"  - {_summary(r)}" for r in d.removed] or ["  (none)"]
    lines.append(f"changed ({len(d.changed)}):")
    if not d.changed:
        lines.append("  (none)")
    for rd in d.changed:
        lines.append(f"  ~ {rd.id} {rd.new.title}")
        for c in rd.changes:
            if c.field == "params":
                lines.append(f"      params.{c.key}: {_fmt(c.old)} -> {_fmt(c.new)}")
            elif c.field in TEXT_FIELDS:
                lines.append(f"      {c.field}: changed")
            else:
                lines.append(f"      {c.field}: {_fmt(c.old)} -> {_fmt(c.new)}")
    lines.append("")
    lines.append(f"{len(d.added)} added, {len(d.removed)} removed, {len(d.changed)} changed, "
                 f"{d.unchanged} unchanged")
    return "\n".join(lines) + "\n"
