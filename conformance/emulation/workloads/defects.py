"""Defect switches: named ways to break exactly one behaviour of a site.

Suites prove that a check can fail by running it against a site started with `--defects NAME`. Each
name here is part of the process contract, so the spelling never changes.
"""

from __future__ import annotations

import difflib

DEFECTS: dict[str, str] = {
    "forward-synchronously": "POS POST forwards to central inline before answering",
    "drop-on-partition": "POS records that fail to forward are dropped instead of kept",
    "duplicate-on-retry": "every forwarding attempt carries a fresh idempotency key",
    "no-stale-cache": "the content cache answers 502/504 instead of a stale copy when central is unreachable",
    "raw-telemetry": "every raw telemetry reading is shipped to central instead of aggregates",
    "central-auth-only": "token validation calls central every time",
    "slow-path": "every request handled by the site is delayed by ~25 ms",
    "leak-personal": "personal fields leave un-anonymised and local_only records are forwarded",
    "no-heartbeat": "the site never registers or heartbeats",
    "ignore-config": "the site never applies pushed config",
    "no-fsync": "POS transactions are acknowledged before being durably written",
}

# A central site only handles requests; the edge-side defects have nothing to break there.
CENTRAL_DEFECTS = frozenset({"slow-path"})


class UnknownDefect(ValueError):
    pass


def parse_defects(text: str | None) -> frozenset[str]:
    """'a, b' -> {'a', 'b'}; raises UnknownDefect naming the first bad entry."""
    names = [part.strip() for part in (text or "").split(",") if part.strip()]
    for name in names:
        if name not in DEFECTS:
            close = difflib.get_close_matches(name, DEFECTS, n=1, cutoff=0.6)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            raise UnknownDefect(
                f'unknown defect "{name}"{hint}; known defects: {", ".join(sorted(DEFECTS))}'
            )
    return frozenset(names)
