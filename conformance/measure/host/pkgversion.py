"""Package versions: constraints such as ">= 1.2, < 2" and a Debian-style version comparison.

The comparison follows dpkg's algorithm (epoch, upstream version, revision; digits compare as
numbers, `~` sorts before everything), which also orders rpm and apk versions sensibly.
"""

from __future__ import annotations

import re

_OPS = ("<=", ">=", "==", "!=", "<", ">", "=")
_CONSTRAINT = re.compile(r"^\s*(<=|>=|==|!=|<|>|=)?\s*([A-Za-z0-9.+:~_-]+)\s*$")


def parse_constraint(text: str) -> list[tuple[str, str]]:
    """'>= 1.2, < 2' -> [('>=', '1.2'), ('<', '2')]; a bare version means ==."""
    out = []
    for part in str(text).split(","):
        if not part.strip():
            continue
        m = _CONSTRAINT.match(part)
        if not m:
            raise ValueError(f'cannot read "{part.strip()}": expected e.g. ">= 1.2" or ">= 1.2, < 2"')
        op = m[1] or "=="
        out.append(("==" if op == "=" else op, m[2]))
    if not out:
        raise ValueError("empty version constraint")
    return out


def satisfies(version: str, constraint: list[tuple[str, str]]) -> bool:
    for op, want in constraint:
        c = compare(version, want)
        ok = {"<": c < 0, "<=": c <= 0, ">": c > 0, ">=": c >= 0, "==": c == 0, "!=": c != 0}[op]
        if not ok:
            return False
    return True


def _split(version: str) -> tuple[int, str, str]:
    version = version.strip()
    epoch = 0
    if ":" in version:
        e, _, rest = version.partition(":")
        if e.isdigit():
            epoch, version = int(e), rest
    upstream, _, revision = version.rpartition("-") if "-" in version else (version, "", "")
    return epoch, upstream, revision


def _order(ch: str) -> int:
    if ch == "~":
        return -1
    if ch.isalpha():
        return ord(ch)
    return ord(ch) + 256


def _compare_part(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        # non-digit prefix
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ca = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            cb = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ca != cb:
                return -1 if ca < cb else 1
            if i < len(a) and not a[i].isdigit():
                i += 1
            if j < len(b) and not b[j].isdigit():
                j += 1
        na = nb = ""
        while i < len(a) and a[i].isdigit():
            na += a[i]
            i += 1
        while j < len(b) and b[j].isdigit():
            nb += b[j]
            j += 1
        da, db = int(na or 0), int(nb or 0)
        if da != db:
            return -1 if da < db else 1
    return 0


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as version a sorts before, equal to, or after version b."""
    ea, ua, ra = _split(a)
    eb, ub, rb = _split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)
