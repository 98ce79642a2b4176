"""The pytest glue: requirement items, the `edge` fixture, verdicts and the run record.

A suite test is an ordinary pytest function marked with the check it implements:

    @pytest.mark.edge_check("functional.http")
    def test_http(edge):
        edge.record("status", 200)

The plugin parametrizes it with every (requirement, site) of the loaded profiles that names that
check (ids such as `test_http[BASE-FUN-01@store-1]`), hands the test an `edge` context, evaluates
the requirement's expectation against what the test recorded, and turns the outcome into a verdict
that is written to results.json at once.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .model import catalog
from .model import results as R
from .model import secrets
from .model import verdict as V
from .model.errors import ConfigError, Inconclusive, MeasurementError, NotApplicable, NotMeasured, did_you_mean
from .model.profile import Profile, Requirement
from .model.target import Site, Target, check_site_selectors

MARKER = "edge_check"
CASE_ARG = "_edge_case"
STASH = pytest.StashKey["EdgeSession"]()


@dataclass
class Case:
    requirement: Requirement
    site: Site

    @property
    def id(self) -> str:
        return f"{self.requirement.id}@{self.site.name}"


@dataclass
class Measured:
    value: float
    unit: str


class EdgeContext:
    """What a check sees: its requirement, its site, and where to put what it measured."""

    def __init__(self, case: Case, session: EdgeSession):
        self.requirement = case.requirement
        self.site = case.site
        self.target: Target = session.target
        self.params: dict[str, Any] = dict(case.requirement.params)
        self.measured: dict[str, Measured] = {}
        self.notes: list[str] = []
        self.raw: dict[str, Any] = {}
        self.validity: list[dict] = []  # evidence about the measurement itself (model/verdict.py)
        self._session = session

    # -- recording -------------------------------------------------------------------------
    def record(self, metric: str, value: float | bool, unit: str = "") -> None:
        """Record a measured metric; `unit` must fit the metric's dimension (checked at verdict)."""
        if isinstance(value, bool):
            value = 1.0 if value else 0.0
        value = float(value)
        if not math.isfinite(value):  # NaN would compare as a failure and is not valid JSON
            raise MeasurementError(f"{metric} is not a finite number ({value})")
        self.measured[metric] = Measured(value, unit)

    def note(self, text: str) -> None:
        """A line of context shown with the verdict (what was tried, which field mismatched ...)."""
        self.notes.append(str(text))

    def attach(self, key: str, value: Any) -> None:
        """Raw data kept in results.json for audit and charts (histograms, time series ...)."""
        self.raw[key] = value

    def evidence(self, kind: str, **fields: Any) -> None:
        """Validity evidence the verdict rule weighs (model/verdict.py VALIDITY_KINDS): `samples`
        (count=N), `lower_bound` (metric=, reason=), `pressure` (cpu=, io=, memory= percent, window_s=,
        target_cores=), `invalid` (reason=; edge.inconclusive does this and stops the check)."""
        if kind not in V.VALIDITY_KINDS:
            raise ValueError(f"unknown validity evidence {kind!r} (known: {', '.join(V.VALIDITY_KINDS)})")
        self.validity.append({"kind": kind, **fields})

    # -- outcomes other than a measurement ---------------------------------------------------
    def inconclusive(self, reason: str) -> None:
        """The measurement is not valid (the prober or generator failed its own check ...): stop."""
        raise Inconclusive(reason)

    def error(self, reason: str) -> None:
        raise MeasurementError(reason)

    def not_measured(self, reason: str, remedy: str | None = None) -> None:
        """The requirement applies but cannot be measured here; `remedy`: what the user can add
        ("give the site a host", "pass --allow-faults"). Never a pass: a must left so is incomplete."""
        raise NotMeasured(reason, remedy)

    def not_applicable(self, reason: str) -> None:
        """What the requirement is about does not exist at this site. Use only when that is a fact
        about the site, not a gap in the target file (that is not_measured)."""
        raise NotApplicable(reason)

    def skip(self, reason: str) -> None:
        """Kept for checks written against earlier versions: a skip is `not-measured`."""
        raise NotMeasured(reason)

    # -- helpers for checks ------------------------------------------------------------------
    def endpoint(self, name: str | None = None) -> str:
        name = name or self.params.get("endpoint") or "api"
        try:
            return self.site.endpoint(name)
        except LookupError as exc:
            raise MeasurementError(str(exc)) from None

    @property
    def allowed_hosts(self) -> set[str]:
        """Addresses measurement traffic may go to: loopback and the target's declared endpoints."""
        return self.target.allowed_hosts()

    @property
    def ca_file(self) -> str | None:
        """CA bundle for https: the requirement's `ca_file` param, else the site's (target file)."""
        return self.params.get("ca_file") or self.site.ca_file

    @property
    def emulation(self) -> dict | None:
        return self.target.emulation

    def shared(self, experiment: Callable[["EdgeContext", "Recording"], None]) -> None:
        """Run `experiment(edge, rec)` once per (site, check, params) in this run.

        Requirements that name the same check with the same params on the same site share one
        experiment (one partition, one push ...), each judged by its own expectation; what it
        recorded is replayed into every one of them, and so is its error or skip (the same
        experiment would end the same way). Ctrl-C is not shared.
        """
        store = self._session.shared
        key = (self.site.name, self.requirement.check, json.dumps(self.params, sort_keys=True, default=str))
        entry = store.get(key)
        if entry is not None:
            first, rec, exc = entry
            rec.replay(self)
            self.note(f"measured once for {first} and this requirement (same check, params and site)")
            if exc is not None:
                raise exc
            return
        rec = Recording()
        try:
            experiment(self, rec)
        except Exception as exc:
            store[key] = (self.requirement.id, rec, exc)
            rec.replay(self)
            raise
        except (pytest.skip.Exception, NotMeasured, NotApplicable, Inconclusive) as exc:
            store[key] = (self.requirement.id, rec, exc)
            rec.replay(self)
            raise
        store[key] = (self.requirement.id, rec, None)
        rec.replay(self)

    @property
    def faults(self):
        """Fault injection for this site: the emulator's API, or the real target's hook commands
        (only with --edge-allow-faults / run --allow-faults). See conformance/faults."""
        from .faults import faults_for

        return faults_for(self.target, self.site, allow_real=self._session.allow_faults)


class Recording:
    """What a shared experiment measured, replayed into every requirement that shares it."""

    def __init__(self) -> None:
        self.metrics: list[tuple[str, Any, str]] = []
        self.notes: list[str] = []
        self.raw: dict[str, Any] = {}
        self.validity: list[dict] = []

    def record(self, metric: str, value: Any, unit: str = "") -> None:
        self.metrics.append((metric, value, unit))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def attach(self, key: str, value: Any) -> None:
        self.raw[key] = value

    def evidence(self, kind: str, **fields: Any) -> None:
        self.validity.append({"kind": kind, **fields})

    def replay(self, edge: EdgeContext) -> None:
        for text in self.notes:
            edge.note(text)
        for key, value in self.raw.items():
            edge.attach(key, value)
        for item in self.validity:
            edge.evidence(**item)
        for metric, value, unit in self.metrics:
            edge.record(metric, value, unit)


@dataclass
class EdgeSession:
    profiles: list[Profile]
    target: Target
    record: Any  # engine.record.RunRecord
    strict: bool
    site_filter: list[str]
    waivers: list = field(default_factory=list)
    expired_waivers: list = field(default_factory=list)
    out_dir: Path | None = None
    cases: dict[str, list[Case]] = field(default_factory=dict)  # check -> cases
    implemented: set[str] = field(default_factory=set)
    target_cm: Any = None
    reports: bool = True
    advisories: list[str] = field(default_factory=list)
    allow_faults: bool = False
    shared: dict = field(default_factory=dict)  # EdgeContext.shared: (site, check, params) -> result
    only: set[str] = field(default_factory=set)  # --edge-only: just these REQ@SITE cases (reruns)
    requirement_filter: set[str] = field(default_factory=set)  # --edge-requirement: just these ids
    scope: dict = field(default_factory=dict)  # what narrowed or changed the run (results.json "scope")
    other_failures: int = 0  # failed pytest reports that are not requirement results
    collect_errors: list[tuple[str, str]] = field(default_factory=list)  # (path, first line of the error)

    def cases_for(self, check: str) -> list[Case]:
        return self.cases.get(check, [])


# ---------------------------------------------------------------------------------------------
# options and configuration


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("edge-conformance", "edge-conformance requirement profiles")
    group.addoption("--edge-profile", action="append", default=[], metavar="NAME|PATH",
                    help="requirement profile to check (a shipped profile name or a YAML path); repeatable")
    group.addoption("--edge-target", default=None, metavar="PATH|emulated[:TOPOLOGY]",
                    help="target file of the deployment under test, or an emulated deployment")
    group.addoption("--edge-out", default=None, metavar="DIR",
                    help="where results.json and the reports go (default ./edge-results/<run-id>)")
    group.addoption("--edge-site", action="append", default=[], metavar="NAME|ROLE",
                    help="only check these sites (names or roles); repeatable")
    group.addoption("--edge-suite", action="append", default=[], metavar="SUITE",
                    help="add a shipped suite (functional, latency, ...) to the collected tests; "
                         "without test paths, all shipped suites run")
    group.addoption("--edge-strict", action="store_true", default=False,
                    help="should/may failures also make the run non-conformant")
    group.addoption("--edge-waivers", default=None, metavar="PATH", help="waivers file")
    group.addoption("--edge-run-id", default=None, help=argparse_suppress())
    group.addoption("--edge-backend", default="local", choices=("local", "docker"),
                    help="backend for emulated targets")
    group.addoption("--edge-defect", action="append", default=[], metavar="[SITE:]DEFECT",
                    help="switch on a defect in the emulated deployment (to prove a check fails)")
    group.addoption("--edge-allow-faults", action="store_true", default=False,
                    help="allow the resilience suite to run the real target's fault hooks (partition, kill ...)")
    group.addoption("--edge-only", action="append", default=[], metavar="REQ@SITE",
                    help="only check these requirement@site cases (e.g. BASE-FUN-01@store-1); repeatable")
    group.addoption("--edge-requirement", action="append", default=[], metavar="ID",
                    help="only check these requirements (e.g. BASE-FUN-01), on every site; repeatable")
    group.addoption("--edge-no-reports", action="store_true", default=False, help=argparse_suppress())
    # `edge-conformance run` brings an emulated deployment up itself and hands pytest its target file:
    # these tell the plugin what that file came from, so the scope records it (nothing is applied).
    group.addoption("--edge-emulated-from", default=None, help=argparse_suppress())


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS


def pytest_addhooks(pluginmanager) -> None:
    # Called as soon as this plugin registers: if Locust's plugin has not loaded yet, it never will.
    if not pluginmanager.has_plugin("locust"):
        pluginmanager.set_blocked("locust")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(name): the edge-conformance check this test implements")
    _block_locust(config)
    if not config.getoption("--edge-profile"):
        return
    _refuse_xdist(config)  # before anything is started: workers would each bring up a deployment
    _select_suites(config)  # before anything is started: a bad --edge-suite must not leak a deployment
    _install_sigterm(config)  # before the target is brought up, so SIGTERM then also cleans up
    try:
        session = _open_session(config)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[STASH] = session
    # sessionfinish closes the target; this covers runs that end before the session starts
    config.add_cleanup(lambda: session.target_cm.__exit__(None, None, None))


def _refuse_xdist(config: pytest.Config) -> None:
    """pytest-xdist runs tests in worker processes that would each open the target (three emulated
    deployments for -n 2) and record verdicts the controller never sees. Until the plugin shares one
    deployment and gathers verdicts on the controller, a distributed run is refused, never run lossy."""
    numprocesses = getattr(config.option, "numprocesses", None)
    dist = getattr(config.option, "dist", "no")
    if numprocesses or (dist and dist != "no") or getattr(config.option, "tx", None):
        pytest.exit("edge-conformance: pytest-xdist (-n/--dist) is not supported with --edge-profile: "
                    "run without -n, or split the run with --edge-site/--edge-requirement across CI jobs",
                    returncode=R.EXIT_USAGE)
    if hasattr(config, "workerinput"):  # a worker started some other way
        pytest.exit("edge-conformance: cannot run inside a pytest-xdist worker", returncode=R.EXIT_USAGE)


def _block_locust(config: pytest.Config) -> None:
    # Locust's pytest plugin adds --host and `session` fixtures that would shadow ours, and
    # importing locust monkey-patches the interpreter: `-p no:locust` must always be in effect.
    plugin = config.pluginmanager.get_plugin("locust")
    if plugin is not None:
        config.pluginmanager.unregister(plugin)
    config.pluginmanager.set_blocked("locust")


def _open_session(config: pytest.Config) -> EdgeSession:
    from .engine import lifecycle, outlock
    from .engine.record import RunRecord, new_run_id
    from .model.profile import load_profile
    from .model.waivers import load_waivers, split_active

    profiles = [load_profile(ref) for ref in config.getoption("--edge-profile")]
    seen = set()
    for p in profiles:
        if p.id in seen:
            raise ConfigError(None, None, "--edge-profile", f"profile {p.id} given twice")
        seen.add(p.id)
    waivers, expired = [], []
    if config.getoption("--edge-waivers"):
        waivers, expired = split_active(load_waivers(config.getoption("--edge-waivers")))
    run_id = config.getoption("--edge-run-id") or new_run_id()
    out = config.getoption("--edge-out")
    out_dir = Path(out) if out else Path.cwd() / "edge-results" / run_id
    # Held until the reports are written (sessionfinish); re-entrant under `edge-conformance run`.
    lock = outlock.acquire(out_dir, run_id, option="--edge-out")
    config.add_cleanup(lambda: outlock.release(lock))

    target_ref = config.getoption("--edge-target") or "emulated"
    emulated_from = config.getoption("--edge-emulated-from")
    target_cm = lifecycle.open_target(
        target_ref, run_id=run_id, profiles=profiles, backend=config.getoption("--edge-backend"),
        defects=[] if emulated_from else config.getoption("--edge-defect"))
    try:
        target = target_cm.__enter__()
    except ConfigError:
        raise
    except Exception as exc:  # the emulated deployment could not come up
        raise pytest.UsageError(f"--edge-target {target_ref}: {exc}") from None
    try:
        check_site_selectors(target, config.getoption("--edge-site"), "--edge-site")
        strict = bool(config.getoption("--edge-strict"))
        scope = run_scope(config, target, emulated_from or target_ref)
        options = {"strict": strict, "suites": config.getoption("--edge-suite"),
                   "sites": config.getoption("--edge-site"), "waivers": config.getoption("--edge-waivers"),
                   "target": target_ref, "defects": config.getoption("--edge-defect"),
                   "backend": scope["backend"], "allow_faults": scope["allow_faults"]}
        for key in ("only", "requirements", "keyword", "markers", "deselect", "tests"):
            if scope.get(key):
                options[key] = scope[key]
        # The values of the variables the target (and the profiles' params) refer to, read now: no file
        # or line of this run holds them (model/secrets.py). A credential too short to redact is refused.
        secrets.check_lengths(target)
        record = RunRecord(out_dir / "results.json", run_id, [p.summary() for p in profiles],
                           target.redacted(), options, secrets=secrets.run_secret_values(target, profiles))
        record.data["scope"] = scope
        record.data["waivers"]["expired"] = [w.to_dict() for w in expired]
        session = EdgeSession(profiles=profiles, target=target, record=record, strict=strict,
                              site_filter=config.getoption("--edge-site"), waivers=waivers,
                              expired_waivers=expired, out_dir=out_dir, target_cm=target_cm,
                              reports=not config.getoption("--edge-no-reports"),
                              allow_faults=bool(config.getoption("--edge-allow-faults")),
                              only=set(config.getoption("--edge-only")),
                              requirement_filter=set(config.getoption("--edge-requirement")), scope=scope)
        _plan(session)
        _check_waivers_match(session)
        record.save()
    except BaseException:
        target_cm.__exit__(None, None, None)
        raise
    return session


NO_SITE = "(none)"  # the site of a requirement that applies to no site of the target


def _plan(session: EdgeSession) -> None:
    """Every (requirement, site) the profiles ask for, in profile order, starts as not-run; what the
    run's own options leave out starts (and stays) not-measured, so a narrowed run is never conformant."""
    _check_requirement_filter(session)
    known = {f"{r.id}@{s.name}" for p in session.profiles for r in p.requirements for s in session.target.sites
             if s.matches(r.applies_to)}
    unknown = sorted(session.only - known)
    if unknown:
        raise ConfigError(None, None, "--edge-only", f"no requirement@site {', '.join(unknown)} in these profiles "
                                                     "and this target")
    for profile in session.profiles:
        for req in profile.requirements:
            sites = [site for site in session.target.sites if site.matches(req.applies_to)]
            if not sites:
                _plan_no_site(session, req)
                continue
            for site in sites:
                case = Case(req, site)
                left_out = _left_out_by(session, case)
                entry = _entry(req, site, V.Ended("not-run", "not run"))
                if left_out:
                    entry = _entry(req, site, V.Ended("not-measured", f"left out of this run ({left_out})",
                                                      f"run it without {left_out.split(' ')[0]}"))
                else:
                    session.cases.setdefault(req.check, []).append(case)
                if req.quorum is not None:
                    entry["fleet_member"] = True
                session.record.plan(entry)
            if req.quorum is not None:
                session.record.plan(_fleet_entry(req))


def _check_waivers_match(session: EdgeSession) -> None:
    """A waiver that matches no requirement of these profiles or no site of this target is a typo or a
    stale entry: it would silently waive nothing. Said on stderr and recorded; refused with --strict."""
    ids = {r.id for p in session.profiles for r in p.requirements}
    sites = {s.name for s in session.target.sites}
    unmatched = []
    for w in session.waivers:
        if w.id not in ids:
            unmatched.append((w, f'no requirement "{w.id}" in {", ".join(p.id for p in session.profiles)}'
                                 f"{did_you_mean(w.id, ids)}"))
        elif w.site != "all" and w.site not in sites:
            unmatched.append((w, f'no site "{w.site}" in target {session.target.name}{did_you_mean(w.site, sites)}'))
    if not unmatched:
        return
    if session.strict:
        w, why = unmatched[0]
        raise ConfigError(w.origin, None, "waiver", f"matches nothing: {why} (--strict refuses such waivers)")
    session.record.data["waivers"]["unmatched"] = [{**w.to_dict(), "why": why} for w, why in unmatched]
    for w, why in unmatched:
        sys.stderr.write(f"edge-conformance: warning: {w.origin}: waiver {w.id}@{w.site} matches nothing and "
                         f"waives nothing: {why}\n")


def _left_out_by(session: EdgeSession, case: Case) -> str:
    """The option that leaves this case out of the run ('' when it runs)."""
    if session.requirement_filter and case.requirement.id not in session.requirement_filter:
        return _flag(session.scope, "requirement") + " " + " ".join(sorted(session.requirement_filter))
    if session.site_filter and not case.site.matches(session.site_filter):
        return _flag(session.scope, "site") + " " + " ".join(session.site_filter)
    if session.only and case.id not in session.only:
        return "--edge-only (a re-run of what did not pass)"
    return ""


def _plan_no_site(session: EdgeSession, req: Requirement) -> None:
    """A requirement for a role the target has no site of: it applies to the deployment (the profile
    asks for it), and nothing here can measure it."""
    roles = " or ".join(req.applies_to) if req.applies_to else "any role"
    site = Site(name=NO_SITE, role=",".join(req.applies_to))
    session.record.plan(_entry(req, site, V.Ended("not-measured", f"the target has no site with role or name "
                                                                  f"{roles}", f"add a {roles} site to the target")))


def _check_requirement_filter(session: EdgeSession) -> None:
    known = [r.id for p in session.profiles for r in p.requirements]
    for rid in sorted(session.requirement_filter - set(known)):
        raise ConfigError(None, None, "--edge-requirement",
                          f'no requirement "{rid}" in {", ".join(p.id for p in session.profiles)}'
                          f"{did_you_mean(rid, known)}")


def _fleet_entry(req: Requirement) -> dict:
    """The aggregate verdict of a quorum requirement (`sites: 95%`) over its per-site results."""
    fleet = Site(name=R.FLEET_SITE, role=R.FLEET_SITE)
    entry = _entry(req, fleet, V.Ended("not-run", "not run"))
    entry["quorum"] = req.quorum
    entry["expect"] = f"sites_passing >= {req.quorum * 100:g} % (each site: {req.expect.text})"
    return entry


def _entry(req: Requirement, site: Site, ended: V.Ended) -> dict:
    """A results.json entry for a case that has not measured anything (yet): decided by the rule."""
    d = V.decide(req, site.name, ended=ended)
    return {"id": req.id, "title": req.title, "profile": req.profile, "site": site.name,
            "role": site.role, "level": req.level, "check": req.check, "suite": req.suite,
            "status": d.status, "advisory": d.advisory, "expect": req.expect.text, "measured": {},
            "message": d.message, "ended": ended.to_dict(), "validity": [], "source": req.source,
            "rationale": req.rationale, "duration": 0.0, "params": req.params, "waiver": None, "notes": [],
            "raw": {}}


def run_scope(config: pytest.Config, target: Target, target_ref: str) -> dict:
    """What narrowed or changed this run, for results.json "scope" and the first lines of every report.

    `narrowed_by` lists, in words, each option that leaves a requirement out of the run (the verdict of a
    narrowed run can only be incomplete or non-conformant); `changed_by` each that changes the
    deployment or the rules (defects, --strict, waivers, faults allowed)."""
    from .model.target import is_emulated_ref

    opt = config.getoption
    emulation = target.emulation or {}
    scope: dict[str, Any] = {
        "cli": bool(opt("--edge-run-id")),  # started by `edge-conformance run` (its option names)
        "requirements": list(opt("--edge-requirement")), "suites": list(opt("--edge-suite")),
        "sites": list(opt("--edge-site")), "only": list(opt("--edge-only")),
        "keyword": config.option.keyword or "", "markers": config.option.markexpr or "",
        "deselect": list(getattr(config.option, "deselect", None) or []),
        "last_failed": bool(getattr(config.option, "lf", False)),
        "collect_only": bool(config.option.collectonly),
        "tests": _explicit_tests(config),
        "defects": list(opt("--edge-defect")),
        "backend": emulation.get("backend") or (opt("--edge-backend") if is_emulated_ref(target_ref) else None),
        "topology": emulation.get("topology"),
        "emulated": bool(target.emulation) or is_emulated_ref(target_ref),
        "allow_faults": bool(opt("--edge-allow-faults")),
        "strict": bool(opt("--edge-strict")),
        "waivers": opt("--edge-waivers"),
    }
    # Our own selectors narrow the run by being given; pytest's (-k, -m, --deselect, --lf, test paths)
    # only when they leave out a requirement's test: see _narrowed_by_pytest.
    narrowed = [f"{flag} {' '.join(map(str, scope[key]))}" for key, flag in
                (("requirements", _flag(scope, "requirement")), ("suites", _flag(scope, "suite")),
                 ("sites", _flag(scope, "site")),
                 ("only", "--edge-only")) if scope[key]]
    if scope["collect_only"]:
        narrowed.append("--collect-only")
    changed = [f"--defect {d}" for d in scope["defects"]]
    if scope["strict"]:
        changed.append("--strict")
    if scope["waivers"]:
        changed.append(f"--waivers {scope['waivers']}")
    if scope["allow_faults"]:
        changed.append("--allow-faults")
    scope["narrowed_by"], scope["changed_by"] = narrowed, changed
    scope["full"] = not narrowed
    return scope


def _flag(scope: dict, name: str) -> str:
    """The option as the user typed it: `--site` under `edge-conformance run`, `--edge-site` under pytest."""
    return f"--{name}" if scope.get("cli") else f"--edge-{name}"


def _narrowed_by_pytest(config: pytest.Config) -> str:
    """Which of pytest's own selectors left a requirement's test out, in words."""
    scope = config.stash[STASH].scope
    parts = []
    if scope["keyword"]:
        parts.append(f"-k {scope['keyword']}")
    if scope["markers"]:
        parts.append(f"-m {scope['markers']}")
    if scope["deselect"]:
        parts.append("--deselect " + " ".join(scope["deselect"]))
    if scope["last_failed"]:
        parts.append("--last-failed")
    return ", ".join(parts) or "deselected by a pytest plugin"


def _narrow(edge: EdgeSession, why: str) -> None:
    if why not in edge.scope["narrowed_by"]:
        edge.scope["narrowed_by"].append(why)
        edge.scope["full"] = False
        edge.record.set("scope", edge.scope)


def _explicit_tests(config: pytest.Config) -> list[str]:
    """Test paths the user named beyond the shipped suites (a narrower set of checks, or their own)."""
    from .model.paths import suites_dir

    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return []
    root = str(suites_dir())
    return [a for a in config.args if not str(a).startswith(root)]


def _select_suites(config: pytest.Config) -> None:
    """Without test paths, collect the shipped suites; --edge-suite adds chosen ones."""
    from .model.paths import suites_dir

    root = suites_dir()
    wanted = config.getoption("--edge-suite")
    for name in wanted:
        if not (root / name).is_dir():
            known = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
            raise pytest.UsageError(f"--edge-suite: unknown suite \"{name}\" (suites: {', '.join(known)})")
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [str(root / n) for n in wanted] if wanted else [str(root)]
    else:
        config.args = list(config.args) + [str(root / n) for n in wanted]


def _install_sigterm(config: pytest.Config) -> None:
    # SIGTERM (a CI job cancelled, a container stopped) must end the run like Ctrl-C does, so that
    # pytest's own interrupt handling runs sessionfinish and results.json is finalised.
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not in the main thread
        return
    config.add_cleanup(lambda: signal.signal(signal.SIGTERM, previous))


# ---------------------------------------------------------------------------------------------
# collection


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker(MARKER)
    if marker is None:
        return
    session = metafunc.config.stash.get(STASH, None)
    check = marker.args[0] if marker.args else None
    if not check:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: @pytest.mark.{MARKER} needs a check name")
    if session is None:
        return
    session.implemented.add(check)
    cases = session.cases_for(check)
    if cases and CASE_ARG in metafunc.fixturenames:
        metafunc.parametrize(CASE_ARG, cases, ids=[c.id for c in cases], scope="function")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    edge = config.stash.get(STASH, None)
    if edge is None:
        return
    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker(MARKER)
        if marker is None:
            keep.append(item)
        elif CASE_ARG in getattr(getattr(item, "callspec", None), "params", {}):
            keep.append(item)
        else:
            drop.append(item)  # a check that no requirement of these profiles asks for
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    # Requirements whose check no collected test implements cannot be measured in this run.
    collected_checks = {i.get_closest_marker(MARKER).args[0] for i in keep if i.get_closest_marker(MARKER)}
    for check, cases in edge.cases.items():
        if check in collected_checks:
            continue
        suite = catalog.suite_of(check)
        # A module that failed to import may be the one implementing it: its suite's if one matches.
        broken = [e for e in edge.collect_errors if f"/{suite}/" in e[0]] or edge.collect_errors
        if broken:
            ended = V.Ended("error", f"not collected: {broken[0][0]} could not be collected: {broken[0][1]}")
        elif catalog.get(check) is not None and check not in edge.implemented:
            if edge.scope["tests"] or edge.scope["suites"]:
                why = (_flag(edge.scope, "suite") + " " + " ".join(edge.scope["suites"])) if edge.scope["suites"] else \
                    "test paths " + " ".join(edge.scope["tests"])
                _narrow(edge, why)
                ended = V.Ended("not-measured", f"suite {suite} left out of this run ({why})",
                                f"add {_flag(edge.scope, 'suite')} {suite}" if edge.scope["suites"]
                                else f"add --edge-suite {suite}")
            else:
                ended = V.Ended("not-measured", f"suite {suite} was not collected", f"collect the {suite} suite")
        else:
            ended = V.Ended("not-measured", f"no collected test implements check {check}",
                            f"add the test file that implements {check} to the pytest command")
        for case in cases:
            _record_unmeasured(edge, case, ended)


def _record_unmeasured(edge: EdgeSession, case: Case, ended: V.Ended) -> None:
    d = V.decide(case.requirement, case.site.name, ended=ended)
    edge.record.update(case.requirement.profile, case.requirement.id, case.site.name, status=d.status,
                       message=d.message, advisory=d.advisory, ended=ended.to_dict())


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    """A suite module that cannot be imported: remembered, so its requirements become errors that say
    why (not "no collected test implements ...") and the terminal names it."""
    report = yield
    edge = collector.config.stash.get(STASH, None)
    if edge is not None and report.failed:
        lines = [ln.strip() for ln in str(report.longrepr).splitlines() if ln.strip()]
        first = next((ln[1:].strip() for ln in reversed(lines) if ln.startswith("E ")), lines[-1] if lines else "")
        edge.collect_errors.append((str(getattr(collector, "path", report.nodeid)), first))
    return report


def pytest_deselected(items: list) -> None:
    """-k, -m, --deselect, --lf or another plugin left these requirement tests out: never a pass."""
    if not items:
        return
    config = items[0].config
    edge = config.stash.get(STASH, None)
    if edge is None:
        return
    why = None
    for item in items:
        case = getattr(getattr(item, "callspec", None), "params", {}).get(CASE_ARG)
        if case is None:
            continue
        if why is None:
            why = _narrowed_by_pytest(config)
            _narrow(edge, why)
        _record_unmeasured(edge, case, V.Ended("not-measured", f"deselected ({why})", f"run it without {why}"))


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture
def _edge_case(request: pytest.FixtureRequest) -> Case:
    raise pytest.UsageError("the `edge` fixture is only available to tests marked "
                            f"@pytest.mark.{MARKER}(...) while --edge-profile is given")


@pytest.fixture
def edge(request: pytest.FixtureRequest, _edge_case: Case) -> EdgeContext:
    """The check's context: requirement, site, params, and record()/note()/attach()."""
    session = request.config.stash[STASH]
    ctx = EdgeContext(_edge_case, session)
    request.node.stash[_CTX] = ctx
    return ctx


@pytest.fixture(scope="session")
def edge_target(request: pytest.FixtureRequest) -> Target:
    """The target under test (sites, endpoints, hosts)."""
    session = request.config.stash.get(STASH, None)
    if session is None:
        pytest.skip("no --edge-profile given")
    return session.target


# -- latency suite: the measurement floor ---------------------------------------------------------
CALIBRATION_RATE = 200.0  # the latency suite's default probe rate (catalog/latency.py)
CALIBRATION_DURATION_S = 2.0


@pytest.fixture(scope="session")
def edge_calibration(request: pytest.FixtureRequest) -> dict:
    """The harness's own latency floor (HTTP against a loopback server, docs/latency.md), measured once
    per run when a check first asks for it, and kept as results.json "calibration". A calibration that
    cannot be measured is recorded as such (valid: false), never raised: it is context, not a verdict."""
    from .measure.latency import calibrate

    try:
        floor = calibrate("http", CALIBRATION_RATE, duration=CALIBRATION_DURATION_S, realtime=True).to_dict()
    except Exception as exc:  # noqa: BLE001 - recorded; the checks still measure
        floor = {"valid": False, "invalid_reason": f"calibration failed: {type(exc).__name__}: {exc}"}
    session = request.config.stash.get(STASH, None)
    if session is not None:
        session.record.set("calibration", floor)
    return floor


_CTX = pytest.StashKey[EdgeContext]()
_START = pytest.StashKey[float]()


# ---------------------------------------------------------------------------------------------
# verdicts


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_START] = time.monotonic()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    session = item.config.stash.get(STASH, None)
    callspec = getattr(item, "callspec", None)
    if session is None or callspec is None or CASE_ARG not in callspec.params:
        if session is not None and report.failed:  # an ordinary test beside the checks: the verdict
            session.other_failures += 1  # does not see it, so it still fails the pytest run
        return report
    case: Case = callspec.params[CASE_ARG]
    if call.when == "call" or (call.when == "setup" and report.outcome != "passed"):
        ctx = item.stash.get(_CTX, None)
        duration = time.monotonic() - item.stash.get(_START, time.monotonic())
        ended, validity = _how_it_ended(call, report), list(ctx.validity) if ctx else []
        if isinstance(call.excinfo.value if call.excinfo else None, Inconclusive):
            validity.append({"kind": "invalid", "reason": str(call.excinfo.value)})
        measured = {k: (v.value, v.unit) for k, v in ctx.measured.items()} if ctx else {}
        notes = list(ctx.notes) if ctx else []
        d = V.decide(case.requirement, case.site.name, measured=measured, notes=notes, ended=ended,
                     validity=validity, waivers=session.waivers)
        # A site of a quorum requirement is judged through its fleet entry, not on its own.
        _apply_to_report(item, report, d, session, blocking_allowed=case.requirement.quorum is None)
        entry = session.record.update(
            case.requirement.profile, case.requirement.id, case.site.name,
            status=d.status, message=d.message, advisory=d.advisory,
            measured={k: {"value": v, "unit": u} for k, (v, u) in measured.items()},
            ended=ended.to_dict(), validity=validity, notes=notes, raw=dict(ctx.raw) if ctx else {},
            duration=round(duration, 6), waiver=d.waiver)
        if d.waiver:
            session.record.add_applied_waiver({**d.waiver, "site": entry["site"]})
        if d.advisory:
            session.advisories.append(d.message)
    return report


def _how_it_ended(call: pytest.CallInfo, report) -> V.Ended:
    """The check's own ending, as the verdict rule takes it (model/verdict.py ENDINGS)."""
    exc = call.excinfo.value if call.excinfo is not None else None
    if isinstance(exc, NotMeasured):
        return V.Ended("not-measured", exc.reason, exc.remedy)
    if isinstance(exc, NotApplicable):
        return V.Ended("not-applicable", str(exc))
    if report.skipped:  # pytest.skip() from a check or a fixture: it was not measured
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        return V.Ended("not-measured", reason.removeprefix("Skipped: "))
    if exc is None or isinstance(exc, Inconclusive):
        return V.Ended("measured")
    if isinstance(exc, AssertionError) and call.when == "call":
        return V.Ended("assertion", str(exc).split("\n")[0] or "assertion failed")
    kind = "" if isinstance(exc, MeasurementError) else f"{type(exc).__name__}: "
    where = " (in setup)" if call.when == "setup" else ""
    return V.Ended("error", f"could not measure{where}: {kind}{exc}")


# pytest's outcome and terminal category for each status: the terminal's count line and any JUnit a
# CI derives from pytest count exactly what results.json counts. Undecided statuses are "skipped" for
# pytest (the run is not over, it is incomplete) under their own names.
PYTEST_OUTCOME = {"pass": "passed", "waived": "passed", "fail": "failed", "error": "failed",
                  "inconclusive": "skipped", "not-measured": "skipped", "not-applicable": "skipped",
                  "not-run": "skipped"}
_STATUS = pytest.StashKey[V.Decision]()


def _apply_to_report(item: pytest.Item, report, d: V.Decision, session: EdgeSession,
                     blocking_allowed: bool = True) -> None:
    """The pytest report says what the record says; a fleet member's own failure is shown as such
    but only its fleet entry fails the pytest run."""
    item.stash[_STATUS] = d
    report.edge_status = d.status
    report.edge_advisory = d.advisory or not blocking_allowed
    outcome = PYTEST_OUTCOME[d.status]
    known = session.record.secrets  # what pytest prints of the result holds no secret value either
    message = secrets.redact(d.message, known)
    report.sections = [(title, secrets.redact(text, known)) for title, text in report.sections]
    if outcome == "passed":
        report.outcome, report.longrepr = "passed", None
    elif outcome == "skipped":
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, message)
    else:
        report.outcome, report.longrepr = "failed", message


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report, config: pytest.Config):
    status = getattr(report, "edge_status", None)
    if status is None:
        return None
    advisory = " (advisory)" if getattr(report, "edge_advisory", False) and status not in ("pass", "waived") else ""
    letter = {"pass": ".", "waived": "w", "fail": "F", "error": "E", "inconclusive": "i", "not-measured": "n",
              "not-applicable": "-", "not-run": "r"}[status]
    category = {"pass": "passed", "fail": "failed"}.get(status, status)
    word = {"pass": "PASSED", "fail": "FAILED"}.get(status, status.upper())
    return category, letter, word + advisory


# ---------------------------------------------------------------------------------------------
# end of the run


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    edge = session.config.stash.get(STASH, None)
    if edge is None:
        return
    interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
    try:
        edge.record.finish("interrupted" if interrupted else "finished")
        if edge.reports:
            _write_reports(edge)
    finally:
        edge.target_cm.__exit__(None, None, None)
    # pytest exits with the verdict's code (0 conformant, 1 non-conformant, 3 incomplete), as
    # `edge-conformance run` does; an interrupted or broken session keeps pytest's own code.
    if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED):
        code = R.exit_code(edge.record.data["verdict"])
        if code == 0 and edge.other_failures:
            code = int(pytest.ExitCode.TESTS_FAILED)
        session.exitstatus = code


def _write_reports(edge: EdgeSession) -> None:
    from .report.writer import write_reports

    write_reports(edge.record.data, edge.record.path.parent)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    edge = config.stash.get(STASH, None)
    if edge is None:
        return
    data = edge.record.data
    from .report.terminal import render_terminal

    tr = terminalreporter
    tr.section("edge-conformance")
    tr.write(secrets.redact(render_terminal(data, color=tr.hasmarkup), edge.record.secrets) + "\n")
    tr.write_line(f"results: {edge.record.path}")
