"""Sampled fleet requirements: which sites a sample takes, and what the sample says about the fleet.

A requirement with a fleet quorum (`sites: "95%"`) may measure only a sample of its sites
(`sample: "10%"` or `sample: 100`, with `confidence: "95%"` by default). Two things are decided here,
for the plan (engine/plan.py), the run record and `verify` (model/recompute.py) alike:

* **Which sites.** The sites the requirement applies to are ranked by sha256("<requirement id>\\0<site
  name>") and the first k are the sample: k = ceil(share x population), at least 1, at most the
  population (a count is capped at the population). The rank of a site depends only on the requirement
  id and the site's name, never on the run, the order of the target's sites, the shard or the options,
  so every shard, `merge`, `--rerun-failed` and `verify` agree on it.
* **What the sample says.** With n sampled sites that apply, x of them passing, the exact one-sided
  Clopper-Pearson bounds of the fleet's pass share at confidence c: the lower bound L (the share
  below which x or more passes out of n would happen with probability 1 - c at most) and the upper
  bound U (likewise for x or fewer). The fleet passes when L >= quorum, fails when U < quorum, and is
  otherwise undecided. A sampled site that did not decide (error, inconclusive, not measured, not run)
  counts as failing for L and as passing for U, as in the quorum rule without sampling. A sample of
  every site (a census) has no sampling error: L and U are then the exact shares.

Pure: no I/O, no pytest, nothing of ours.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_CONFIDENCE = 0.95
MIN_CONFIDENCE = 0.5  # below even odds a "confidence" says nothing
BOUND_DIGITS = 6  # bounds recorded in results.json as shares rounded to this many decimals
_SHARE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
SAMPLE_HINT = 'a sample is a share of the sites, e.g. "10%", or a number of sites, e.g. 100'


class SamplingError(ValueError):
    """A wrong `sample:` or `confidence:`; `field` names which."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Sampling:
    """A requirement's `sample:` and `confidence:`: a share of its sites (0..1] or a count (>= 1)."""

    share: float | None = None
    count: int | None = None
    confidence: float = DEFAULT_CONFIDENCE

    def size(self, population: int) -> int:
        """How many of `population` sites the sample takes (0 only when there is none)."""
        if population <= 0:
            return 0
        if self.count is not None:
            return min(self.count, population)
        k = math.ceil((self.share or 0.0) * population - 1e-9)  # 10 % of 1,000 is 100, not 101
        return max(1, min(k, population))

    @property
    def text(self) -> str:
        """'10 %' or '100 sites', as messages and reports say it."""
        if self.count is not None:
            return f"{self.count:,} site{'' if self.count == 1 else 's'}"
        return f"{(self.share or 0.0) * 100:g} %"

    @property
    def raw(self) -> str | int:
        """As a profile writes it ("10%" or 100): for overrides and results.json."""
        return self.count if self.count is not None else f"{(self.share or 0.0) * 100:g}%"

    @property
    def confidence_text(self) -> str:
        return percent(self.confidence)


def size_text(raw: object) -> str:
    """A recorded `size` ("10%" or 100) as messages say it: '10 %', '100 sites'."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return Sampling(count=raw).text
    share = parse_share(raw)
    return Sampling(share=share).text if share is not None else "?"


def parse_share(value: object) -> float | None:
    """'95%' -> 0.95; None when `value` is not a percentage."""
    m = _SHARE.match(value) if isinstance(value, str) else None
    return float(m[1]) / 100.0 if m else None


def parse_sampling(sample: object, confidence: object = None) -> Sampling:
    """`sample:` and `confidence:` of a profile requirement; SamplingError naming the field when wrong."""
    share = count = None
    if isinstance(sample, bool) or not isinstance(sample, (str, int)):
        raise SamplingError("sample", f"{SAMPLE_HINT}, got {sample!r}")
    if isinstance(sample, int):
        if sample < 1:
            raise SamplingError("sample", f"a sample takes at least 1 site, got {sample}")
        count = sample
    else:
        share = parse_share(sample)
        if share is None:
            raise SamplingError("sample", f"{SAMPLE_HINT}, got {sample!r}")
        if not 0 < share <= 1:
            raise SamplingError("sample", f"a sample is a share of the sites between 0 % (excluded) and 100 %, "
                                       f"got {sample.strip()}")
    conf = DEFAULT_CONFIDENCE
    if confidence is not None:
        parsed = parse_share(confidence)
        if parsed is None:
            raise SamplingError("confidence", f'a confidence is a share, e.g. "95%", got {confidence!r}')
        if not MIN_CONFIDENCE <= parsed < 1:
            raise SamplingError("confidence", f"a confidence is between {MIN_CONFIDENCE * 100:g} % and 100 % "
                                           f"(excluded), got {str(confidence).strip()}")
        conf = parsed
    return Sampling(share=share, count=count, confidence=conf)


# ---------------------------------------------------------------------------------------- the sample


def rank_key(requirement_id: str, site: str) -> bytes:
    """A site's place in a requirement's sample order: sha256 of "<requirement id>\\0<site name>"."""
    return hashlib.sha256(f"{requirement_id}\0{site}".encode()).digest()


def select(requirement_id: str, sites: Iterable[str], k: int) -> list[str]:
    """The k sites of `sites` that rank first for this requirement, in rank order."""
    ranked = sorted(set(sites), key=lambda name: (rank_key(requirement_id, name), name))
    return ranked[:max(0, k)]


def sample_of(requirement_id: str, sampling: Sampling, sites: Iterable[str]) -> list[str]:
    """The sample a requirement takes of the sites it applies to, in rank order."""
    population = sorted(set(sites))
    return select(requirement_id, population, sampling.size(len(population)))


def not_in_sample_reason(sample: int, population: int, sampling: Sampling) -> str:
    """The reason recorded on a site outside the sample (its status is not-run)."""
    return f"not in the sample: {sample:,} of {population:,} sites (sample: {sampling.text})"


NOT_IN_SAMPLE = "not in the sample"


# ------------------------------------------------------------------------------------- the statistics


@functools.lru_cache(maxsize=64)
def _log_comb(n: int) -> tuple[float, ...]:
    top = math.lgamma(n + 1)
    return tuple(top - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in range(n + 1))


def binomial_sum(lo: int, hi: int, n: int, p: float) -> float:
    """P(lo <= X <= hi) for X ~ Binomial(n, p), summed term by term (no 1 - x cancellation)."""
    lo, hi = max(lo, 0), min(hi, n)
    if lo > hi:
        return 0.0
    if p <= 0.0:
        return 1.0 if lo == 0 else 0.0
    if p >= 1.0:
        return 1.0 if hi == n else 0.0
    lp, lq = math.log(p), math.log1p(-p)
    logc = _log_comb(n)

    def term(i: int) -> float:
        return math.exp(logc[i] + i * lp + (n - i) * lq)

    # The terms rise to the mode and fall after it: start at the term of [lo, hi] nearest the mode and
    # walk outwards until they no longer count (a fleet-size n then costs tens of terms, not n).
    start = min(max(int((n + 1) * p), lo), hi)
    terms = [term(start)]
    for step in (1, -1):
        i, total = start + step, terms[0]
        while lo <= i <= hi:
            t = term(i)
            terms.append(t)
            total += t
            if t <= total * _NEGLIGIBLE:
                break
            i += step
    return min(1.0, math.fsum(terms))


_NEGLIGIBLE = 1e-20  # a term this small beside the sum so far, and all beyond it, change nothing


_ITERATIONS = 64  # bisection steps: 2**-64 is below a double's resolution on [0, 1]


@functools.lru_cache(maxsize=4096)
def lower_bound(x: int, n: int, confidence: float) -> float:
    """The exact one-sided (Clopper-Pearson) lower confidence bound of a binomial share: the p at which
    P(X >= x) = 1 - confidence. 0 when x = 0; (1 - confidence) ** (1 / n) when x = n."""
    _check(x, n, confidence)
    alpha = 1.0 - confidence
    if x == 0:
        return 0.0
    if x == n:
        return alpha ** (1.0 / n)
    lo, hi = 0.0, 1.0  # P(X >= x) grows with p: below the bound it is under alpha
    for _ in range(_ITERATIONS):
        mid = (lo + hi) / 2.0
        if binomial_sum(x, n, n, mid) < alpha:
            lo = mid
        else:
            hi = mid
    return lo  # the side that is surely not above the bound


@functools.lru_cache(maxsize=4096)
def upper_bound(x: int, n: int, confidence: float) -> float:
    """The exact one-sided (Clopper-Pearson) upper confidence bound: the p at which P(X <= x) =
    1 - confidence. 1 when x = n; 1 - (1 - confidence) ** (1 / n) when x = 0."""
    _check(x, n, confidence)
    alpha = 1.0 - confidence
    if x == n:
        return 1.0
    if x == 0:
        return 1.0 - alpha ** (1.0 / n)
    lo, hi = 0.0, 1.0  # P(X <= x) falls as p grows: above the bound it is under alpha
    for _ in range(_ITERATIONS):
        mid = (lo + hi) / 2.0
        if binomial_sum(0, x, n, mid) > alpha:
            lo = mid
        else:
            hi = mid
    return hi  # the side that is surely not below the bound


def _check(x: int, n: int, confidence: float) -> None:
    if n < 1 or not 0 <= x <= n:
        raise ValueError(f"need 0 <= x <= n and n >= 1, got x = {x}, n = {n}")
    if not 0 < confidence < 1:
        raise ValueError(f"a confidence is between 0 and 1 (excluded), got {confidence}")


@dataclass(frozen=True)
class Judgement:
    """What a sample says about its fleet's pass share, and the status it gives (None: undecided,
    the caller's undecided rules say which status)."""

    status: str | None
    lower: float
    upper: float


def judge(passed: int, failed: int, undecided: int, quorum: float, confidence: float,
          census: bool = False) -> Judgement:
    """The fleet's pass share from a sample: passed, failed and undecided sampled sites (that apply).
    pass: lower >= quorum; fail: upper < quorum; otherwise None (undecided). Undecided sites count as
    failing for the lower bound and as passing for the upper one. A census's bounds are exact shares."""
    n = passed + failed + undecided
    if n == 0:
        return Judgement(None, 0.0, 1.0)
    if census:
        lower, upper = passed / n, (passed + undecided) / n
    else:
        lower, upper = lower_bound(passed, n, confidence), upper_bound(passed + undecided, n, confidence)
    if lower >= quorum - 1e-9:
        return Judgement("pass", lower, upper)
    if upper < quorum - 1e-9:
        return Judgement("fail", lower, upper)
    return Judgement(None, lower, upper)


# ------------------------------------------------------------------------------------------- words


def percent(share: float) -> str:
    """0.95 -> '95 %', 0.97049 -> '97.05 %' (two decimals at most)."""
    return f"{_trim(round(share * 100.0, 2))} %"


def percent_down(share: float) -> str:
    """A lower bound as a percentage, rounded down so the text never claims more than the bound."""
    return f"{_trim(math.floor(share * 10000.0 + 1e-9) / 100.0)} %"


def percent_up(share: float) -> str:
    """An upper bound as a percentage, rounded up so the text never claims less than the bound."""
    return f"{_trim(math.ceil(share * 10000.0 - 1e-9) / 100.0)} %"


def _trim(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def summary(sampling: dict, status: str) -> str:
    """'sampled 100 of 1,000 sites; pass share >= 96.4 % at 95 % confidence' from a fleet entry's
    `sampling` record and status ('' when the record is not one)."""
    try:
        sample, population = int(sampling["sample"]), int(sampling["population"])
        lower, upper, conf = float(sampling["lower"]), float(sampling["upper"]), float(sampling["confidence"])
    except (KeyError, TypeError, ValueError):
        return ""
    head = f"sampled {sample:,} of {population:,} sites"
    if status == "pass":
        share = f"pass share >= {percent_down(lower)}"
    elif status == "fail":
        share = f"pass share <= {percent_up(upper)}"
    else:
        share = f"pass share between {percent_down(lower)} and {percent_up(upper)}"
    return f"{head}; {share} at {percent(conf)} confidence"
