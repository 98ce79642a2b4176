"""Compare two runs: per requirement x site x metric, what changed, and whether it is a regression.

    edge-conformance compare base/results.json new/results.json --tolerance 10% --tolerance p99=5%

A metric's bad direction comes from the requirement's expectation: for `p99 <= 20 ms` up is bad, for
`throughput >= 200 rps` down is bad; metrics the expectation does not bound (and `==` comparisons)
are shown but never regress on their own. A change is a regression when it goes the bad way by more
than the tolerance (relative, `10%`, or absolute, `2 ms`; per metric with `p99=5%`) and by more than the
noise floor, a share of the expectation's limit (default 2 %: a health probe going from 1 ms to 3 ms
against a 500 ms limit is noise, a p99 going from 9 ms to 14 ms against 20 ms is not), and, for a
percentile with its raw histogram in both runs, by more than the two runs' own sampling noise: when
their 95 % confidence intervals overlap it is "within noise", not a regression (noise.py). A status that
gets worse (pass -> fail, pass -> error ...) is a regression whatever the numbers. A result of BASE that
NEW does not have is a regression too, and so is a must that a partial NEW left out (--requirement,
--suite, -k ...) unless `accept_partial`; new results are listed.

What compare reads of each run is checked first (check_run): a file that is not a whole results record,
a wrong type, an unknown status, a NaN or infinite value, the same result twice: one located line,
`file:line: field: what is wrong`. Everything is linear in the number of results (a fleet-1000 run of
30,000 results, 37 MB, compares in about 5 s: benchmarks/compare_scale.py, docs/benchmarks.md).
"""

from __future__ import annotations

import functools
import json
import math
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import Any

from ..model import catalog
from ..model import expect as E
from ..model import results as R
from ..model import units as U
from ..model.boundedio import MAX_DEPTH, MAX_JSON_BYTES, depth, finite, read_text_input
from ..model.errors import ConfigError
from ..model.verdict import left_out_by_scope
from ..report import view as V
from ..report.markdown import cell, text
from ..report.writer import check_document, parse_results
from . import noise

DEFAULT_TOLERANCE = "10%"
DEFAULT_NOISE = 0.02
# How bad a status is; a move to a higher rank is a regression when the new status is one of BAD.
# A requirement that was measured and now is not (pass -> not-measured) is a regression: a run that stops
# measuring something cannot show that it still holds. "skip" is v1's, for comparing with old files.
RANK = {"pass": 0, "waived": 1, "not-applicable": 1, "skip": 1, "not-run": 2, "inconclusive": 2,
        "not-measured": 2, "error": 3, "fail": 4}
BAD = ("fail", "error", "inconclusive", "not-measured", "not-run")
# v1's skip became one of these two: a move between them is a change of words, not of the result.
SKIP_SPLIT = ("skip", "not-applicable", "not-measured")
# A regression: a status that got worse, a metric beyond tolerance the bad way, a result of BASE that NEW
# does not have ("removed": a run that does not record a result cannot show it still holds, whatever the
# reason: a stub file, entries deleted, a changed profile; the rows name them and a changed profile is
# noted), and, when NEW is partial, a must it left out ("left-out", unless --accept-partial).
# Why regressions and not a refusal of an incomplete NEW: compare has the two records, not the profiles'
# plan (verify has it, from a bundle), so it cannot tell a complete NEW from an incomplete one; what BASE
# recorded is the least NEW must hold, and every result short of it is named in its own row, which says
# more than one refusal would, and keeps compare usable on a profile that dropped a requirement (one
# regression row each, to accept by taking NEW as the new base).
REGRESSIONS = ("worse", "removed", "left-out", "regression")
KIND_ORDER = {"worse": 0, "removed": 1, "left-out": 2, "regression": 3, "noise": 4, "new": 4, "better": 5,
              "improvement": 6, "changed": 7, "metric-added": 8, "metric-removed": 8, "same": 9}
_LEVEL_ORDER = {"must": 0, "should": 1, "may": 2}
_TOL = re.compile(r"^\s*(?:(?P<metric>[A-Za-z_][A-Za-z0-9_.]*)\s*=\s*)?(?P<value>[0-9]*\.?[0-9]+)\s*(?P<unit>\S*)\s*$")


@dataclass(frozen=True)
class Tolerance:
    relative: float | None = None  # 0.1 = 10 %
    absolute: float | None = None  # in the dimension's base unit
    absolute_unit: str = ""
    text: str = ""

    def exceeded(self, base: float, delta: float) -> bool:
        if self.absolute is not None:
            return abs(delta) > self.absolute * (1 + 1e-9)
        if base == 0:
            return delta != 0
        return abs(delta) / abs(base) > (self.relative or 0.0) * (1 + 1e-9)


def parse_tolerances(specs: list[str] | tuple[str, ...]) -> tuple[Tolerance, dict[str, Tolerance]]:
    """`10%` (all metrics), `p99=5%`, `latency=2 ms` -> (default, per metric)."""
    default = _parse_one(DEFAULT_TOLERANCE)
    per: dict[str, Tolerance] = {}
    for spec in specs:
        m = _TOL.match(spec)
        if not m:
            raise ConfigError(None, None, "--tolerance",
                              f'cannot read "{spec}": expected e.g. 10%, p99=5% or latency=2 ms')
        tol = _parse_one(f"{m['value']}{m['unit']}", spec)
        if m["metric"]:
            per[m["metric"]] = tol
        else:
            default = tol
    return default, per


def _parse_one(value_unit: str, spec: str | None = None) -> Tolerance:
    m = re.match(r"^([0-9]*\.?[0-9]+)\s*(\S*)$", value_unit)
    value, unit = float(m[1]), m[2]
    if unit == "%":
        return Tolerance(relative=value / 100.0, text=f"{value:g}%")
    if not unit:
        raise ConfigError(None, None, "--tolerance", f'"{spec or value_unit}": give a unit: % (relative) or an '
                                                     f"absolute one such as ms")
    try:
        u = U.lookup(unit)
    except U.UnitError as e:
        raise ConfigError(None, None, "--tolerance", f'"{spec or value_unit}": {e}') from None
    return Tolerance(absolute=value * u.factor, absolute_unit=unit, text=f"{value:g} {unit}")


def parse_noise(text_: str | float) -> float:
    s = str(text_).strip()
    try:
        v = float(s[:-1]) / 100.0 if s.endswith("%") else float(s)
    except ValueError:
        raise ConfigError(None, None, "--noise", f'"{text_}": expected a share of the limit such as 2%') from None
    if not 0 <= v < 1:
        raise ConfigError(None, None, "--noise", "expected a share between 0% and 100%")
    return v


# ------------------------------------------------------------------------------------------ loading


def load_run(path: str | Path, *, slim: bool = False) -> dict:
    """A results.json, a run's output directory, or a bundle (its results.json, not verified), checked
    for what compare reads (check_run): anything else is a ConfigError, one located line (exit 2).

    `slim`: keep of each result only what compare reads (RESULT_FIELDS), dropping its raw measurements,
    notes and messages as they are parsed, so that two fleet-size runs fit in memory side by side."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    if p.is_file() and tarfile.is_tarfile(p):
        source = f"{p}[results.json]"

        def read() -> str:
            data = _bundle_results(p)
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ConfigError(source, None, None, f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    else:
        source = str(p)

        def read() -> str:
            try:
                return read_text_input(p, source, limit=MAX_JSON_BYTES, what="results.json")
            except ConfigError as e:
                raise ConfigError(source, None, None, f"cannot read results: {e.message}") from None
    text = read()
    doc = _parse(text, source, slim)
    del text  # read again only to say on which line something is wrong
    check_run(doc, source, read)
    return doc


def _parse(text: str, source: str, slim: bool) -> dict:
    """The document, its results slimmed as they are parsed; anything wrong (bad JSON, NaN, too deep)
    is left to writer.parse_results, the bounded parser every results file goes through, for its one line."""
    if slim:
        try:
            doc = json.loads(text, parse_constant=_no_constant, object_hook=_slim_result)
        except (ValueError, RecursionError):
            doc = None
        if doc is not None and depth(doc) <= MAX_DEPTH:
            return check_document(doc, source)
    return parse_results(text, source)


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _slim_result(d: dict) -> dict:
    # object_hook: called for every object, innermost first; a result is an object with these three
    if "status" in d and "id" in d and "site" in d:
        slim = {k: d[k] for k in RESULT_FIELDS if k in d}
        hist = noise.histogram_of(d)  # the raw histogram a percentile's noise band is read from
        if hist is not None:
            slim["raw"] = {"latency": {"histogram": hist[0], "unit": hist[1]}}
        return slim
    return d


def _bundle_results(p: Path) -> bytes:
    """The results.json member of a bundle, bounded like a results file (MAX_JSON_BYTES); the members before
    it are skipped, which for a gzip'd tar means decompressing them: at most BUNDLE_SCAN_BYTES of them."""
    scanned = 0
    try:
        with tarfile.open(p, mode="r:*") as tar:
            for info in tar:
                scanned += info.size
                if scanned > BUNDLE_SCAN_BYTES:
                    raise ConfigError(str(p), None, None, "the bundle is too large to read its results.json "
                                                          f"(more than {BUNDLE_SCAN_BYTES // 2**20} MiB before it)")
                parts = PurePosixPath(info.name).parts
                if len(parts) == 2 and parts[1] == "results.json" and info.isreg():
                    if info.size > MAX_JSON_BYTES:
                        raise ConfigError(str(p), None, None, f"the bundle's results.json is {info.size} bytes, more "
                                                              f"than a results.json may be ({MAX_JSON_BYTES})")
                    f = tar.extractfile(info)
                    return f.read() if f else b""
    except (tarfile.TarError, OSError, EOFError, ValueError) as e:  # gzip errors are OSError
        raise ConfigError(str(p), None, None, f"not a readable bundle (tar.gz): {e}") from None
    raise ConfigError(str(p), None, None, "the bundle has no results.json")


# What compare reads of a run, and what it must be. In a v2 file the top-level fields compare reads
# (TOP_FIELDS) are checked against the results JSON Schema (model/schemas/results.schema.json), and must
# be there (a stub with a verdict and no run is not a run); each result is checked here for the fields
# compare reads (RESULT_FIELDS), in one pass: the schema's validator takes about 0.4 ms a result, 12 s for
# a fleet-1000 run, where these checks take a few microseconds.
LEVELS = ("must", "should", "may")
RESULT_FIELDS = ("id", "site", "profile", "level", "status", "expect", "check", "measured", "ended")
BUNDLE_SCAN_BYTES = 512 * 2**20
TOP_FIELDS = ("schema", "run_id", "started", "state", "profiles", "target", "options", "scope", "verdict")


class _Bad(Exception):
    def __init__(self, path: tuple, message: str):
        super().__init__(message)
        self.path, self.message = path, message


def check_run(data: dict, source: str, text: str | Callable[[], str] | None = None) -> None:
    """Raise a ConfigError `file:line: field.path: what is wrong` for the first thing compare cannot
    read as recorded: types, statuses, levels, non-finite measured values, the same result twice.
    `text`: the document's text, or how to read it again, to find the line."""
    try:
        _check(data)
    except _Bad as bad:
        raise _located(bad, source, text) from None


def _located(bad: _Bad, source: str, text: str | Callable[[], str] | None) -> ConfigError:
    line = None
    try:
        line = locate(text() if callable(text) else text, bad.path) if text is not None else None
    except ConfigError:  # it changed or went away meanwhile: say what is wrong without a line
        pass
    return ConfigError(source, line, _field(bad.path) or None, bad.message)


def _field(path: tuple) -> str:
    """requirements[3].measured.p99; a key that is not plain text (a metric named with a newline ...) is
    shown quoted and escaped, so that the error stays one line."""
    out = ""
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
            continue
        step = str(step)
        shown = step if re.fullmatch(r"[A-Za-z0-9_@$-][A-Za-z0-9_.@$ -]*", step) else _shown(step)
        out += f".{shown}" if out else shown
    return out


def _shown(value: Any) -> str:
    text_ = json.dumps(value, ensure_ascii=True, default=str)
    return text_ if len(text_) <= 60 else text_[:57] + "..."


def _check(data: dict) -> None:
    v2 = data.get("schema") == R.SCHEMA
    if v2:
        _top_level_schema(data)
    statuses = R.STATUSES if v2 else (*R.STATUSES, *R.LEGACY_STATUSES)
    for key in ("run_id", "verdict", "started"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise _Bad((key,), f"expected a string, not {_shown(data[key])}")
    profiles = data.get("profiles", [])
    if not isinstance(profiles, list):
        raise _Bad(("profiles",), f"expected a list of profiles, not {_shown(profiles)}")
    for i, prof in enumerate(profiles):
        if not isinstance(prof, dict):
            raise _Bad(("profiles", i), f"expected a profile (an object), not {_shown(prof)}")
        for key in ("id", "version", "sha256"):
            if prof.get(key) is not None and not isinstance(prof[key], str):
                raise _Bad(("profiles", i, key), f"expected a string, not {_shown(prof[key])}")
    target = data.get("target")
    if target is not None and not isinstance(target, dict):
        raise _Bad(("target",), f"expected an object, not {_shown(target)}")
    if isinstance(target, dict) and target.get("name") is not None and not isinstance(target["name"], str):
        raise _Bad(("target", "name"), f"expected a string, not {_shown(target['name'])}")
    scope = data.get("scope")
    if scope is not None:
        if not isinstance(scope, dict):
            raise _Bad(("scope",), f"expected an object, not {_shown(scope)}")
        for key in ("narrowed_by", "changed_by"):
            if not isinstance(scope.get(key, []), list):
                raise _Bad(("scope", key), f"expected a list, not {_shown(scope[key])}")
        if not isinstance(scope.get("full", True), bool):
            raise _Bad(("scope", "full"), f"expected true or false, not {_shown(scope['full'])}")
    reqs = data.get("requirements", [])
    if v2 and "requirements" not in data:
        raise _Bad(("requirements",), "missing")
    seen: dict[tuple, int] = {}
    for i, e in enumerate(reqs):
        where = ("requirements", i)
        if not isinstance(e, dict):
            raise _Bad(where, f"expected a result (an object), not {_shown(e)}")
        for key in ("id", "site") + (("profile",) if v2 else ()):
            if not isinstance(e.get(key), str) or (key == "id" and not e[key]):
                raise _Bad(where + (key,), "missing" if key not in e else
                           f"expected a{' non-empty' if key == 'id' else ''} string, not {_shown(e[key])}")
        if e.get("profile") is not None and not isinstance(e["profile"], str):
            raise _Bad(where + ("profile",), f"expected a string, not {_shown(e['profile'])}")
        if e.get("status") not in statuses:
            raise _Bad(where + ("status",), "missing" if "status" not in e else
                       f"unknown status {_shown(e['status'])} (one of: {', '.join(statuses)})")
        if e.get("level") not in LEVELS:
            raise _Bad(where + ("level",), "missing" if "level" not in e else
                       f"unknown level {_shown(e['level'])} (one of: {', '.join(LEVELS)})")
        for key in ("expect", "check"):
            if e.get(key) is not None and not isinstance(e[key], str):
                raise _Bad(where + (key,), f"expected a string, not {_shown(e[key])}")
        if v2 and "measured" not in e:
            raise _Bad(where + ("measured",), "missing")
        measured = e.get("measured", {})
        if measured is None and not v2:
            measured = {}
        if not isinstance(measured, dict):
            raise _Bad(where + ("measured",), f"expected an object of measured values, not {_shown(measured)}")
        for metric, m in measured.items():
            if not isinstance(m, dict):
                raise _Bad(where + ("measured", metric), f"expected {{\"value\": ..., \"unit\": ...}}, not {_shown(m)}")
            value = m.get("value")
            if not finite(value):
                raise _Bad(where + ("measured", metric, "value"),
                           "missing" if "value" not in m else f"expected a finite number, not {_shown(value)}")
            if not isinstance(m.get("unit", ""), str):
                raise _Bad(where + ("measured", metric, "unit"), f"expected a string, not {_shown(m['unit'])}")
        ended = e.get("ended")
        if v2 and not isinstance(ended, dict):
            raise _Bad(where + ("ended",),
                       "missing" if "ended" not in e else f"expected an object, not {_shown(ended)}")
        if isinstance(ended, dict) and ended.get("reason") is not None and not isinstance(ended["reason"], str):
            raise _Bad(where + ("ended", "reason"), f"expected a string, not {_shown(ended['reason'])}")
        key = (e.get("profile"), e["id"], e["site"])
        if key in seen:
            raise _Bad(where, f"{_shown(e['id'] + '@' + e['site'])} (profile {_shown(e.get('profile'))}) appears "
                              f"twice in the file (also requirements[{seen[key]}]): which one to compare is not known")
        seen[key] = i


def _top_level_schema(data: dict) -> None:
    """Everything but the entries against the results JSON Schema: a v2 record must be complete."""
    from jsonschema.exceptions import best_match

    e = best_match(_validator().iter_errors({**data, "requirements": []}))
    if e is None:
        return
    path = tuple(e.absolute_path)
    if e.validator == "required" and isinstance(e.instance, dict):
        missing = next((k for k in e.validator_value if k not in e.instance), None)
        if missing is not None:
            raise _Bad(path + (missing,), f"missing (a {R.SCHEMA} record has it: is this a whole results.json?)")
    message = e.message if len(e.message) <= 160 else e.message[:157] + "..."
    raise _Bad(path, message)


@functools.lru_cache(maxsize=1)
def _validator():
    import jsonschema

    from ..model.paths import schemas_dir

    schema = json.loads((schemas_dir() / "results.schema.json").read_text(encoding="utf-8"))
    # the top-level fields compare reads, as the schema has them; the others (counts, host, calibration ...)
    # are not needed to compare, and some older v2 files lack them
    schema["properties"] = {k: v for k, v in schema["properties"].items() if k in TOP_FIELDS}
    schema["required"] = [k for k in schema["required"] if k in TOP_FIELDS]
    schema.pop("additionalProperties", None)
    return jsonschema.Draft202012Validator(schema)


_WS = re.compile(r"[ \t\n\r]*")


def locate(text: str, path: tuple) -> int | None:
    """The line of the value at `path` (keys and indexes) in a JSON text; for a missing key, the line of
    the object that should hold it. None when the text does not lead there. Linear in the text's size
    (values on the way are skipped by the C decoder), and run only for an error."""
    dec = json.JSONDecoder()
    try:
        pos = _WS.match(text, 0).end()
        for step in path:
            if isinstance(step, str) and text[pos] == "{":
                start, found = pos, None
                pos = _WS.match(text, pos + 1).end()
                while text[pos] != "}":
                    key, pos = dec.raw_decode(text, pos)
                    pos = _WS.match(text, pos).end() + 1  # the colon
                    pos = _WS.match(text, pos).end()
                    if key == step:  # the first one (json.loads keeps the last of duplicate keys: rare)
                        found = pos
                        break
                    _, pos = dec.raw_decode(text, pos)
                    pos = _WS.match(text, pos).end()
                    if text[pos] == ",":
                        pos = _WS.match(text, pos + 1).end()
                if found is None:
                    pos = start
                    break
                pos = found
            elif isinstance(step, int) and text[pos] == "[":
                pos = _WS.match(text, pos + 1).end()
                for _ in range(step):
                    _, pos = dec.raw_decode(text, pos)
                    pos = _WS.match(text, pos).end() + 1  # the comma
                    pos = _WS.match(text, pos).end()
            else:
                break
    except (ValueError, IndexError):
        return None
    return text.count("\n", 0, pos) + 1


# ------------------------------------------------------------------------------------------ comparing


@dataclass(slots=True)
class Row:
    kind: str  # worse|removed|left-out|regression|noise|new|better|improvement|changed|metric-*|same
    id: str
    site: str
    level: str
    metric: str | None = None
    base: str = ""
    new: str = ""
    change: str = ""
    expected: str = ""
    base_status: str = ""
    new_status: str = ""
    base_value: float | None = None  # in the base run's unit
    new_value: float | None = None  # converted to the base run's unit
    unit: str = ""
    relative: float | None = None
    tolerance: str = ""
    score: float = 0.0  # how far beyond tolerance (for ordering)
    accepted: bool = False  # left-out of a partial NEW under --accept-partial: shown, not a regression

    @property
    def label(self) -> str:
        return f"{self.id}@{self.site}"

    @property
    def regression(self) -> bool:
        return self.kind in REGRESSIONS and not self.accepted


@dataclass
class Comparison:
    base: dict
    new: dict
    rows: list[Row]
    tolerance: str
    per_metric: dict[str, str]
    noise: float
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.regression]

    def to_dict(self) -> dict:
        return self.head() | {"rows": [row_dict(r) for r in self.rows]}

    def head(self) -> dict:
        return {"base": self.base, "new": self.new, "tolerance": self.tolerance, "per_metric": self.per_metric,
                "noise": self.noise, "regressions": len(self.regressions), "notes": self.notes}


_ROW_FIELDS = [f.name for f in fields(Row)]


def row_dict(r: Row) -> dict:
    # not asdict(): it deep-copies, 10x slower for the 70,000 rows of a fleet-1000 comparison
    return {n: getattr(r, n) for n in _ROW_FIELDS} | {"regression": r.regression}


def _run_facts(results: dict) -> dict:
    return {"run_id": results.get("run_id"), "verdict": results.get("verdict"), "started": results.get("started"),
            "profiles": [{"id": p.get("id"), "version": p.get("version"), "sha256": p.get("sha256")}
                         for p in results.get("profiles") or []],
            "target": (results.get("target") or {}).get("name")}


def _entries(results: dict) -> list[dict]:
    return [r for r in results.get("requirements") or [] if isinstance(r, dict)]


def _split_keys(*runs: dict) -> set[tuple]:
    """(id, site) pairs that more than one profile of a run has: those are told apart by profile too
    (in both runs, so the same result has the same key on both sides)."""
    out: set[tuple] = set()
    for results in runs:
        seen: set[tuple] = set()
        for r in _entries(results):
            key = (r.get("id"), r.get("site"))
            if key in seen:
                out.add(key)
            seen.add(key)
    return out


def _index(results: dict, split: set[tuple] | None = None) -> dict[tuple, dict]:
    """{(id, site) or, for a split pair, (id, site, profile): entry}; linear in the entries."""
    split = _split_keys(results) if split is None else split
    out = {}
    for r in _entries(results):
        key = (r.get("id"), r.get("site"))
        out[key + ((r.get("profile"),) if key in split else ())] = r
    return out


def left_out(entry: dict) -> bool:
    """Recorded as not measured because the run's own options left it out (--requirement, --suite, -k ...)."""
    return entry.get("status") == "not-measured" and left_out_by_scope(entry.get("ended"))


@functools.lru_cache(maxsize=4096)
def _expectation(text_: str) -> E.Expectation | None:
    try:  # a fleet entry's expectation ends with "(each site: ...)"
        return E.parse(text_.split(" (each site:")[0])
    except (E.ExpectError, U.UnitError):
        return None


def _comparison(entry: dict, metric: str) -> E.Comparison | None:
    exp = _expectation(str(entry.get("expect") or ""))
    if exp is None:
        return None
    return next((c for c in exp.comparisons if c.metric == metric), None)


def _dimension(entry: dict, metric: str, unit: str, comparison: E.Comparison | None) -> str:
    spec = catalog.get(str(entry.get("check") or ""))
    if spec and metric in spec.metrics:
        return spec.metrics[metric]
    for u in (unit, comparison.unit if comparison else ""):
        if u and u in U.UNITS:
            return U.UNITS[u].dimension
    return U.COUNT


def _value(m: Any) -> tuple[float, str] | None:
    if isinstance(m, dict) and isinstance(m.get("value"), (int, float)) and not isinstance(m.get("value"), bool):
        return float(m["value"]), str(m.get("unit") or "")
    return None


def _pct(rel: float | None) -> str:
    if rel is None:
        return ""
    if math.isinf(rel):
        return "new value (base 0)"
    return f"{rel * 100:+.1f}%"


def _metric_rows(key: tuple, b: dict, n: dict, default: Tolerance, per: dict[str, Tolerance],
                 noise: float) -> list[Row]:
    rows = []
    level = str(n.get("level") or b.get("level"))
    bm, nm = b.get("measured") or {}, n.get("measured") or {}
    for metric in list(dict.fromkeys([*bm, *nm])):
        bv, nv = _value(bm.get(metric)), _value(nm.get(metric))
        comparison = _comparison(n, metric) or _comparison(b, metric)
        expected = comparison.bound_text() if comparison else ""
        common = dict(id=key[0], site=key[1], level=level, metric=metric, expected=expected,
                      base_status=str(b.get("status")), new_status=str(n.get("status")))
        if bv is None or nv is None:
            if bv is None and nv is None:
                continue
            shown = U.format_value(*(bv or nv))
            rows.append(Row("metric-added" if bv is None else "metric-removed",
                            base="" if bv is None else shown, new="" if nv is None else shown, **common))
            continue
        dim = _dimension(n, metric, nv[1] or bv[1], comparison)
        try:
            base_b, new_b = U.to_base(bv[0], bv[1], dim), U.to_base(nv[0], nv[1], dim)
            new_in_base_unit = U.from_base(new_b, bv[1], dim)
        except U.UnitError:
            rows.append(Row("changed", base=U.format_value(*bv), new=U.format_value(*nv),
                            change="units not comparable", **common))
            continue
        if not all(math.isfinite(x) for x in (base_b, new_b, new_in_base_unit, new_b - base_b)):
            rows.append(Row("changed", base=U.format_value(*bv), new=U.format_value(*nv),
                            change="too large to compare", **common))
            continue
        delta = new_b - base_b
        rel = (delta / abs(base_b)) if base_b else (math.inf if delta else 0.0)
        tol = per.get(metric, default)
        direction = None
        if comparison and comparison.op in ("<", "<="):
            direction = "up"
        elif comparison and comparison.op in (">", ">="):
            direction = "down"
        exceeded = tol.exceeded(base_b, delta)
        if exceeded and comparison and direction:
            try:
                bound = abs(U.to_base(comparison.value, comparison.unit, dim))
            except U.UnitError:
                bound = 0.0
            if bound and abs(delta) < noise * bound:
                exceeded = False
        bad = direction == "up" and delta > 0 or direction == "down" and delta < 0
        if not exceeded:
            kind = "same"
        elif direction is None:
            kind = "changed"
        else:
            kind = "regression" if bad else "improvement"
        within = _within_noise(b, n, metric, bv[1], dim) if kind == "regression" else None
        if tol.absolute is not None:
            score = abs(delta) / tol.absolute if tol.absolute else math.inf
        else:
            score = abs(rel) / tol.relative if tol.relative else math.inf
        change = _pct(rel) if base_b else ("" if not delta else _pct(math.inf))
        if within:
            kind, change = "noise", f"{change} {within}"
        rows.append(Row(kind, base=U.format_value(*bv), new=U.format_value(new_in_base_unit, bv[1]),
                        change=change,
                        base_value=bv[0], new_value=new_in_base_unit, unit=bv[1],
                        relative=None if math.isinf(rel) else rel, tolerance=tol.text,
                        score=min(score, 1e9), **common))
    return rows


def _within_noise(b: dict, n: dict, metric: str, unit: str, dim: str) -> str | None:
    """"(within noise: ...)" when the two runs' histograms cannot tell the percentiles apart (noise.py)."""
    found = noise.bands(b, n, metric)
    if found is None or not noise.overlap(found[0], found[1]):
        return None
    base_band, new_band, hist_unit = found

    def shown(x: noise.Band) -> str:
        try:
            low, high = (U.from_base(U.to_base(v, hist_unit, dim), unit, dim) for v in (x.low, x.high))
        except U.UnitError:
            return "?"
        return f"{U.format_value(low, unit)}-{U.format_value(high, unit)}"
    return (f"(within noise: 95 % intervals from {base_band.samples} and {new_band.samples} samples overlap, "
            f"base {shown(base_band)}, new {shown(new_band)})")


def _status_row(key: tuple, bs: str, ns: str, n: dict) -> Row:
    common = dict(id=key[0], site=key[1], level=str(n.get("level")), expected=str(n.get("expect") or ""),
                  base_status=bs, new_status=ns, change=f"{bs} -> {ns}")
    if "skip" in (bs, ns) and bs in SKIP_SPLIT and ns in SKIP_SPLIT:
        return Row("changed", **{**common, "change": f"{bs} -> {ns} (v1's skip is now not-applicable or "
                                                      "not-measured)"})
    if ns not in RANK:  # never from a checked file; a status compare does not know is not a pass
        return Row("worse", **common)
    worse = RANK[ns] > RANK.get(bs, 3) and ns in BAD
    return Row("worse" if worse else "better", **common)


def _scope_notes(base: dict, new: dict) -> list[str]:
    """A partial run cannot show that what it left out still holds: say so next to the comparison."""
    notes = []
    for which, results in (("base", base), ("new", new)):
        scope = V.Scope(results)
        if scope.word == "partial":
            how = ", ".join(scope.narrowed_by) or "how not recorded"
            notes.append(f"the {which} run was partial (narrowed by {how}): what it left out was not measured")
        if scope.changed_by:
            notes.append(f"the {which} run was changed by {', '.join(scope.changed_by)}")
    return notes


def _partial(results: dict) -> bool:
    return V.Scope(results).word == "partial" or any(left_out(e) for e in _entries(results))


def _verdict_note(which: str, results: dict) -> str | None:
    """A record whose verdict does not follow from its statuses (an edited or hand-made file)."""
    reqs = _entries(results)
    if results.get("schema") != R.SCHEMA or not all(e.get("status") in R.STATUSES for e in reqs):
        return None
    strict = bool((results.get("options") or {}).get("strict")) if isinstance(results.get("options"), dict) else False
    verdict = R.run_verdict(reqs, strict)
    if results.get("verdict") != verdict:
        return f"the {which} run says {results.get('verdict')}, but its statuses give {verdict}: the file was edited"
    return None


def compare_runs(base: dict, new: dict, tolerances: list[str] | tuple[str, ...] = (),
                 noise: float | str = DEFAULT_NOISE, accept_partial: bool = False) -> Comparison:
    """Compare NEW with BASE. `accept_partial`: the musts a partial NEW left out are shown, but are not
    regressions (for a vendor's own narrowed re-check, never for a gate on a full run)."""
    default, per = parse_tolerances(tolerances)
    noise = parse_noise(noise) if isinstance(noise, str) else float(noise)
    split = _split_keys(base, new)
    bi, ni = _index(base, split), _index(new, split)
    new_partial = _partial(new)
    rows: list[Row] = []
    for key in list(dict.fromkeys([*bi, *ni])):
        b, n = bi.get(key), ni.get(key)
        if b is None or n is None:
            e = b or n
            rows.append(Row("removed" if n is None else "new", id=key[0], site=key[1], level=str(e.get("level")),
                            expected=str(e.get("expect") or ""),
                            base_status=str(b.get("status")) if b else "", new_status=str(n.get("status")) if n else "",
                            change="missing from the new run" if n is None else "not in the base run"))
            continue
        bs, ns = str(b.get("status")), str(n.get("status"))
        if new_partial and left_out(n) and (bs != ns or n.get("level") == "must"):
            rows.append(Row("left-out", id=key[0], site=key[1], level=str(n.get("level")),
                            expected=str(n.get("expect") or ""), base_status=bs, new_status=ns,
                            change=(f"{bs} -> {ns}: " if bs != ns else "") + "left out of the new run",
                            accepted=accept_partial))
        elif bs != ns:
            rows.append(_status_row(key, bs, ns, n))
        rows += _metric_rows(key, b, n, default, per, noise)
    rows.sort(key=lambda r: (KIND_ORDER["changed"] if r.accepted else KIND_ORDER.get(r.kind, 9),
                             _LEVEL_ORDER.get(r.level, 3), -r.score, r.label, r.metric or ""))
    c = Comparison(_run_facts(base), _run_facts(new), rows, default.text,
                   {k: v.text for k, v in per.items()}, noise)
    bp = {p["id"]: p["sha256"] for p in c.base["profiles"]}
    for p in c.new["profiles"]:
        if p["id"] in bp and bp[p["id"]] != p["sha256"]:
            c.notes.append(f"profile {p['id']} differs between the runs (sha256 {str(bp[p['id']])[:12]} -> "
                           f"{str(p['sha256'])[:12]}): expectations may have changed")
    if c.base["target"] != c.new["target"]:
        c.notes.append(f"the runs checked different targets ({c.base['target']} -> {c.new['target']})")
    missing = sum(r.kind == "removed" for r in rows)
    if missing:
        c.notes.append(f"{missing} result{'s' if missing != 1 else ''} of the base run "
                       f"{'are' if missing != 1 else 'is'} missing from the new run: each is a regression "
                       "(a run that does not record a result cannot show it still holds)")
    c.notes += _scope_notes(base, new)
    left = [r for r in rows if r.kind == "left-out"]
    if left:
        c.notes.append(f"{len(left)} result{'s' if len(left) != 1 else ''} left out of the partial new run "
                       + ("shown, not counted as regressions (--accept-partial)" if accept_partial else
                          "count as regressions (--accept-partial accepts a partial run)"))
    elif new_partial and accept_partial:
        c.notes.append("--accept-partial: the new run is partial")
    c.notes += [n for n in (_verdict_note("base", base), _verdict_note("new", new)) if n]
    return c


# ------------------------------------------------------------------------------------------ output


_FLAG = {"worse": "REGRESSION", "regression": "REGRESSION", "removed": "REGRESSION (missing)",
         "left-out": "REGRESSION (left out)", "new": "new",
         "better": "better", "improvement": "improved", "changed": "changed", "metric-added": "new metric",
         "metric-removed": "metric gone", "same": "within tolerance", "noise": "within noise"}


def render_markdown(c: Comparison, show_all: bool = False) -> str:
    n = len(c.regressions)
    head = f"# Edge conformance comparison: {n} regression{'s' if n != 1 else ''}" if n else \
        "# Edge conformance comparison: no regression"
    lines = [head, "",
             f"**Base** {text(c.base['run_id'])} ({text(c.base['verdict'])}) -> **new** {text(c.new['run_id'])} "
             f"({text(c.new['verdict'])})", ""]
    per = ", ".join(f"{k}: {v}" for k, v in c.per_metric.items())
    lines += [f"Tolerance {c.tolerance}" + (f" ({per})" if per else "")
              + f"; changes smaller than {c.noise * 100:g}% of a requirement's limit are noise.", ""]
    lines += [f"- {text(note)}" for note in c.notes] + ([""] if c.notes else [])
    shown = [r for r in c.rows if show_all or r.kind != "same"]
    hidden = len(c.rows) - len(shown)
    if shown:
        lines += ["| | requirement@site | level | metric | base | new | change | expected | status |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in shown:
            status = (r.base_status if r.base_status == r.new_status
                      else f"{r.base_status or '-'} -> {r.new_status or '-'}")
            flag = "left out (accepted)" if r.kind == "left-out" and r.accepted else _FLAG.get(r.kind, r.kind)
            cells = [flag, r.label, r.level, r.metric or "", r.base, r.new, r.change,
                     r.expected, status]
            lines.append("| " + " | ".join(cell(x) for x in cells) + " |")
        lines.append("")
    if hidden:
        lines += [f"{hidden} metric{'s' if hidden != 1 else ''} within tolerance not shown (--all shows them).", ""]
    if not c.rows:
        lines += ["Nothing to compare: neither run has results.", ""]
    return "\n".join(lines)


def render_json(c: Comparison) -> str:
    return "".join(iter_json(c))


def iter_json(c: Comparison, chunk: int = 1000):
    """The comparison as JSON, in pieces (the CLI writes them as they come): indented, but one row a line.
    json's indented encoder is pure Python and holds every token: for the 70,000 rows of a fleet-1000
    comparison it takes 10 s and 250 MB, where this takes 1 s and a few MB at a time."""
    head = json.dumps(c.head(), indent=2, default=str)
    if not c.rows:
        yield head[:-2] + ',\n  "rows": []\n}\n'
        return
    yield head[:-2] + ',\n  "rows": [\n    '
    for i in range(0, len(c.rows), chunk):
        part = ",\n    ".join(json.dumps(row_dict(r), default=str) for r in c.rows[i:i + chunk])
        yield ("" if i == 0 else ",\n    ") + part
    yield "\n  ]\n}\n"
