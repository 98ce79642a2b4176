"""Configuration errors that name the file, the line and the field.

Every problem with user input (profiles, targets, topologies, waivers, arguments) is raised as a
ConfigError and printed by the CLI as one line, `file:line: field.path: what is wrong`, with exit 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfigError(Exception):
    """Bad user input, located as precisely as we can."""

    def __init__(self, source: str | None, line: int | None, field: str | None, message: str):
        self.source = source
        self.line = line
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = []
        if self.source:
            parts.append(f"{self.source}:{self.line}" if self.line else self.source)
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ' (did you mean "x"?)' suffix when a close match exists, else ''."""
    matches = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f' (did you mean "{matches[0]}"?)' if matches else ""


def field_path(parts: Iterable[object]) -> str:
    """('requirements', 3, 'expect') -> 'requirements[3].expect'."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


class MeasurementError(Exception):
    """A check could not measure (endpoint unreachable, host lacks a tool, ...): verdict `error`."""


class Inconclusive(Exception):
    """The measurement ran but is not valid (generator saturated, too few samples): `inconclusive`."""


class NotMeasured(Exception):
    """The requirement applies to the site but cannot be measured here (no host, no endpoint, no fault
    hook, faults not allowed, a backend that cannot do it): `not-measured`, which never passes.
    `remedy` is the one thing the user can add to measure it ("add a host to the site ...")."""

    def __init__(self, reason: str, remedy: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.remedy = remedy


class NotApplicable(Exception):
    """What the requirement is about does not exist at this site (e.g. no endpoint asks for
    credentials, so there are no default credentials to try): `not-applicable`."""
