"""What a measured outage stood for: the note every outage check records with its verdict.

An outage runs as long as its params say, which --duration-scale may have changed from the profile's
value (Requirement.unscaled), and which a quick profile documents as standing for a longer real one
(`scaled_from: "hours"`). The note says both, so no report passes off a 72 s cut as a 2 h one.
"""

from __future__ import annotations


def fmt_seconds(seconds: float) -> str:
    """'72 s', '2 h', '1.5 min', '1 d' as people write lengths: the largest unit that gives a whole or
    a half number."""
    units = (("d", 86400), ("h", 3600), ("min", 60))
    for unit, size in units:
        if seconds >= size and (2 * seconds / size).is_integer():
            return f"{seconds / size:g} {unit}"
    if seconds < 100:
        return f"{seconds:.3g} s"
    unit, size = next((u, s) for u, s in units if seconds >= s)
    return f"{seconds / size:.1f} {unit}"


def outage_note(unscaled: dict[str, float], params: dict, what: str, seconds: float,
                param: str = "duration") -> str | None:
    """'duration scaled: the 72 s cut stands for the profile's 2 h' (or the scaled_from note); None
    when the outage ran as the profile says and the profile says nothing about it."""
    if param in unscaled:
        profile = fmt_seconds(unscaled[param])
        if seconds < unscaled[param]:
            return f"duration scaled: the {fmt_seconds(seconds)} {what} stands for the profile's {profile}"
        return f"duration scaled: the {what} lasted {fmt_seconds(seconds)}, the profile's {profile} lengthened"
    if params.get("scaled_from"):
        return f"scaled down: the {seconds:g} s {what} stands for {params['scaled_from']}"
    return None
