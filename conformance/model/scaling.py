"""--duration-scale: run every outage of a run longer or shorter than its profile says.

A quick profile cuts the WAN for seconds where the sources speak of hours; a full-length profile
(retail-full, satcom-full ...) cuts it for the hours. The scale multiplies the params a check declares
as an outage's length (catalog Param(scales=True)): 720 runs a quick 5 s cut for an hour, 1/100 rehearses a
full profile's 2 h cut in 72 s. Nothing else changes (timeouts, rates, probe lengths). The factor is
recorded in results.json (options, scope "changed_by") and every scaled param keeps its profile value
(entry "scaled"), so each report says what a measured 72 s stood for; checks that project growth to the
real length (resilience.long_outage) use it.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

from . import catalog
from .errors import ConfigError
from .profile import Profile, Requirement

MIN_SCALED_S = 1.0  # an outage shorter than this measures nothing a site does about an outage
MAX_FACTOR = 100_000.0


def parse_factor(text: str) -> float:
    """'0.01', '1/100', '720' -> the factor; ValueError with the reason."""
    try:
        value = float(Fraction(str(text).strip()))
    except (ValueError, ZeroDivisionError):
        raise ValueError(f'expected a positive number or fraction such as 720 or 1/100, got "{text}"') from None
    if not 0 < value <= MAX_FACTOR:
        raise ValueError(f"expected a factor above 0 and at most {MAX_FACTOR:g}, got {text}")
    return value


def describe(factor: float) -> str:
    """'x720' or 'x1/100' as people say it."""
    if factor >= 1:
        return f"x{factor:g}"
    inverse = 1 / factor
    return f"x1/{inverse:g}" if abs(inverse - round(inverse)) < 1e-9 else f"x{factor:g}"


def scale_profile(profile: Profile, factor: float, option: str = "--duration-scale") -> Profile:
    """The profile with every outage length multiplied by `factor` (the profile itself if 1)."""
    if factor == 1:
        return profile
    return dataclasses.replace(profile, requirements=[_scale(r, factor, option) for r in profile.requirements])


def _scale(req: Requirement, factor: float, option: str) -> Requirement:
    spec = catalog.get(req.check)
    if spec is None:
        return req
    params, unscaled = dict(req.params), {}
    for name, param in spec.params.items():
        value = params.get(name)
        if not param.scales or not isinstance(value, (int, float)) or value <= 0:
            continue  # nothing to scale (a zero-length outage is the check's to refuse)
        scaled = value * factor
        if scaled < MIN_SCALED_S:
            raise ConfigError(None, None, option,
                              f"{describe(factor)} makes {req.id}'s {name} ({value:g} s, {req.origin}) "
                              f"{scaled:.3g} s, below {MIN_SCALED_S:g} s: use a factor of at least "
                              f"{MIN_SCALED_S / value:.3g}")
        params[name], unscaled[name] = round(scaled, 6), value
    return dataclasses.replace(req, params=params, unscaled=unscaled) if unscaled else req
