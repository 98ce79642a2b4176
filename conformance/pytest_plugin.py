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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .model import catalog
from .model import recompute
from .model import results as R
from .model.errors import ConfigError, Inconclusive, MeasurementError, did_you_mean
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

    # -- outcomes other than a measurement ---------------------------------------------------
    def inconclusive(self, reason: str) -> None:
        raise Inconclusive(reason)

    def error(self, reason: str) -> None:
        raise MeasurementError(reason)

    def skip(self, reason: str) -> None:
        pytest.skip(reason)

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
        except pytest.skip.Exception as exc:
            store[key] = (self.requirement.id, rec, exc)
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

    def record(self, metric: str, value: Any, unit: str = "") -> None:
        self.metrics.append((metric, value, unit))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def attach(self, key: str, value: Any) -> None:
        self.raw[key] = value

    def replay(self, edge: EdgeContext) -> None:
        for text in self.notes:
            edge.note(text)
        for key, value in self.raw.items():
            edge.attach(key, value)
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
    _select_suites(config)  # before anything is started: a bad --edge-suite must not leak a deployment
    _install_sigterm(config)  # before the target is brought up, so SIGTERM then also cleans up
    try:
        session = _open_session(config)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[STASH] = session
    # sessionfinish closes the target; this covers runs that end before the session starts
    config.add_cleanup(lambda: session.target_cm.__exit__(None, None, None))


def _block_locust(config: pytest.Config) -> None:
    # Locust's pytest plugin adds --host and `session` fixtures that would shadow ours, and
    # importing locust monkey-patches the interpreter: `-p no:locust` must always be in effect.
    plugin = config.pluginmanager.get_plugin("locust")
    if plugin is not None:
        config.pluginmanager.unregister(plugin)
    config.pluginmanager.set_blocked("locust")


def _open_session(config: pytest.Config) -> EdgeSession:
    from .engine import lifecycle
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

    target_ref = config.getoption("--edge-target") or "emulated"
    target_cm = lifecycle.open_target(
        target_ref, run_id=run_id, profiles=profiles, backend=config.getoption("--edge-backend"),
        defects=config.getoption("--edge-defect"))
    try:
        target = target_cm.__enter__()
    except ConfigError:
        raise
    except Exception as exc:  # the emulated deployment could not come up
        raise pytest.UsageError(f"--edge-target {target_ref}: {exc}") from None
    try:
        check_site_selectors(target, config.getoption("--edge-site"), "--edge-site")
        strict = bool(config.getoption("--edge-strict"))
        options = {"strict": strict, "suites": config.getoption("--edge-suite"),
                   "sites": config.getoption("--edge-site"), "waivers": config.getoption("--edge-waivers"),
                   "target": target_ref, "defects": config.getoption("--edge-defect")}
        if config.getoption("--edge-only"):
            options["only"] = config.getoption("--edge-only")
        if config.getoption("--edge-requirement"):
            options["requirements"] = config.getoption("--edge-requirement")
        record = RunRecord(out_dir / "results.json", run_id, [p.summary() for p in profiles],
                           target.redacted(), options)
        record.data["waivers"]["expired"] = [w.to_dict() for w in expired]
        session = EdgeSession(profiles=profiles, target=target, record=record, strict=strict,
                              site_filter=config.getoption("--edge-site"), waivers=waivers,
                              expired_waivers=expired, out_dir=out_dir, target_cm=target_cm,
                              reports=not config.getoption("--edge-no-reports"),
                              allow_faults=bool(config.getoption("--edge-allow-faults")),
                              only=set(config.getoption("--edge-only")),
                              requirement_filter=set(config.getoption("--edge-requirement")))
        _plan(session)
        record.save()
    except BaseException:
        target_cm.__exit__(None, None, None)
        raise
    return session


def _plan(session: EdgeSession) -> None:
    """Every (requirement, site) the profiles ask for, in profile order, starts as not-run."""
    _check_requirement_filter(session)
    for profile in session.profiles:
        for req in profile.requirements:
            if session.requirement_filter and req.id not in session.requirement_filter:
                _plan_not_selected(session, req)
                continue
            for site in session.target.sites:
                if not site.matches(req.applies_to):
                    continue
                if session.site_filter and not site.matches(session.site_filter):
                    continue
                case = Case(req, site)
                if session.only and case.id not in session.only:
                    continue
                session.cases.setdefault(req.check, []).append(case)
                entry = _entry(req, site, "not-run", f"{case.id}: not run")
                if req.quorum is not None:
                    entry["fleet_member"] = True
                session.record.plan(entry)
            if req.quorum is not None and any(c.requirement is req for c in session.cases.get(req.check, [])):
                session.record.plan(_fleet_entry(req))
    unknown = sorted(session.only - {c.id for cases in session.cases.values() for c in cases})
    if unknown:
        raise ConfigError(None, None, "--edge-only", f"no requirement@site {', '.join(unknown)} in these profiles "
                                                     "and this target")


def _plan_not_selected(session: EdgeSession, req: Requirement) -> None:
    """A requirement left out by --requirement is in results.json as a skip, so every report shows the
    run was partial (like a suite left out by --suite), and it never counts toward the verdict."""
    for site in session.target.sites:
        if site.matches(req.applies_to) and not (session.site_filter and not site.matches(session.site_filter)):
            session.record.plan(_entry(req, site, "skip", f"{req.id}@{site.name}: skipped: not selected "
                                                          "(--requirement)"))


def _check_requirement_filter(session: EdgeSession) -> None:
    known = [r.id for p in session.profiles for r in p.requirements]
    for rid in sorted(session.requirement_filter - set(known)):
        raise ConfigError(None, None, "--edge-requirement",
                          f'no requirement "{rid}" in {", ".join(p.id for p in session.profiles)}'
                          f"{did_you_mean(rid, known)}")


def _fleet_entry(req: Requirement) -> dict:
    """The aggregate verdict of a quorum requirement (`sites: 95%`) over its per-site results."""
    fleet = Site(name=R.FLEET_SITE, role=R.FLEET_SITE)
    entry = _entry(req, fleet, "not-run", f"{req.id} fleet: not run")
    entry["quorum"] = req.quorum
    entry["expect"] = f"sites_passing >= {req.quorum * 100:g} % (each site: {req.expect.text})"
    return entry


def _entry(req: Requirement, site: Site, status: str, message: str) -> dict:
    return {"id": req.id, "title": req.title, "profile": req.profile, "site": site.name,
            "role": site.role, "level": req.level, "check": req.check, "suite": req.suite,
            "status": status, "advisory": False, "expect": req.expect.text, "measured": {},
            "message": message, "source": req.source, "rationale": req.rationale,
            "duration": 0.0, "params": req.params, "waiver": None, "notes": [], "raw": {}}


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
    # Requirements whose check no collected test implements are skipped with the reason.
    collected_suites = {i.get_closest_marker(MARKER).args[0] for i in keep if i.get_closest_marker(MARKER)}
    for check, cases in edge.cases.items():
        if check in collected_suites:
            continue
        suite = catalog.suite_of(check)
        reason = (f"suite {suite} not selected" if check not in edge.implemented
                  and catalog.get(check) is not None else f"no collected test implements check {check}")
        for case in cases:
            edge.record.update(case.requirement.profile, case.requirement.id, case.site.name,
                               status="skip", message=f"{case.id}: skipped: {reason}")


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
        return report
    case: Case = callspec.params[CASE_ARG]
    if call.when == "call" or (call.when == "setup" and report.outcome != "passed"):
        ctx = item.stash.get(_CTX, None)
        duration = time.monotonic() - item.stash.get(_START, time.monotonic())
        verdict = _verdict(case, ctx, call, report, session)
        # A site of a quorum requirement is judged through its fleet entry, not on its own.
        _apply_to_report(report, verdict, session, blocking_allowed=case.requirement.quorum is None)
        entry = session.record.update(
            case.requirement.profile, case.requirement.id, case.site.name,
            status=verdict.status, message=verdict.message, advisory=verdict.advisory,
            measured={k: {"value": v.value, "unit": v.unit} for k, v in (ctx.measured.items() if ctx else [])},
            notes=list(ctx.notes) if ctx else [], raw=dict(ctx.raw) if ctx else {},
            duration=round(duration, 6), waiver=verdict.waiver)
        if verdict.waiver:
            session.record.add_applied_waiver({**verdict.waiver, "site": entry["site"]})
        if verdict.advisory:
            session.advisories.append(verdict.message)
    return report


@dataclass
class Verdict:
    status: str
    message: str
    advisory: bool = False
    waiver: dict | None = None


def _verdict(case: Case, ctx: EdgeContext | None, call: pytest.CallInfo, report, session: EdgeSession) -> Verdict:
    req, prefix = case.requirement, f"{case.requirement.id} {case.site.name}"
    notes = f" ({'; '.join(ctx.notes)})" if ctx and ctx.notes else ""
    excinfo = call.excinfo
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        return Verdict("skip", f"{prefix}: skipped: {reason.removeprefix('Skipped: ')}")
    if excinfo is not None:
        exc = excinfo.value
        if isinstance(exc, Inconclusive):
            return Verdict("inconclusive", f"{prefix}: inconclusive: {exc}{notes}", advisory=req.level != "must")
        if isinstance(exc, AssertionError) and call.when == "call":
            text = str(exc).split("\n")[0] or "assertion failed"
            return _maybe_waive(Verdict("fail", f"{prefix}: {text}{notes}"), case, session)
        kind = "" if isinstance(exc, MeasurementError) else f"{type(exc).__name__}: "
        where = " (in setup)" if call.when == "setup" else ""
        return Verdict("error", f"{prefix}: could not measure{where}: {kind}{exc}{notes}",
                       advisory=req.level != "must")
    assert ctx is not None
    # The same rules `edge-conformance verify` uses to recompute a verdict from a bundle.
    measured = {k: (v.value, v.unit) for k, v in ctx.measured.items()}
    d = recompute.decide(req, case.site.name, measured, ctx.notes, session.waivers)
    return Verdict(d.status, d.message, advisory=d.advisory if d.status != "pass" else False, waiver=d.waiver)


def _maybe_waive(v: Verdict, case: Case, session: EdgeSession) -> Verdict:
    for w in session.waivers:
        if w.covers(case.requirement.id, case.site.name):
            return Verdict("waived", f"{v.message} [waived until {w.expires}: {w.reason} ({w.who})]",
                           waiver=w.to_dict())
    v.advisory = case.requirement.level != "must"
    return v


def _apply_to_report(report, verdict: Verdict, session: EdgeSession, blocking_allowed: bool = True) -> None:
    """A blocking failure fails the pytest test; advisories and waivers pass with a note."""
    blocking = (not verdict.advisory or session.strict) and blocking_allowed
    if verdict.status in ("pass", "waived"):
        report.outcome = "passed"
        report.longrepr = None
    elif verdict.status == "skip":
        report.outcome = "skipped"
    elif blocking:
        report.outcome = "failed"
        report.longrepr = verdict.message
    else:
        report.outcome = "passed"
        report.longrepr = None


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
    tr.write(render_terminal(data, color=tr.hasmarkup) + "\n")
    tr.write_line(f"results: {edge.record.path}")
