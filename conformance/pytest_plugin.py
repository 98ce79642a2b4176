"""The pytest glue: requirement items, the `edge` fixture, verdicts and the run record.

A suite test is an ordinary pytest function marked with the check it implements:

    @pytest.mark.edge_check("functional.http")
    def test_http(edge):
        edge.record("status", 200)

The plugin parametrizes it with every (requirement, site) of the loaded profiles that names that
check (ids such as `test_http[BASE-FUN-01@store-1]`), hands the test an `edge` context, evaluates
the requirement's expectation against what the test recorded, and turns the outcome into a verdict
that is written to results.json at once.

This module is the pytest11 entry point: the options, the `edge`/`edge_target` fixtures and
pytest_configure, which (with --edge-profile) opens the run as an EdgePlugin object and registers it
(PLUGIN_NAME); the run's hooks are that object's methods, and pytest_unconfigure unregisters and closes
it. Which cases run is planned by engine/plan.py; each verdict is model/verdict.py's.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .engine import ini
from .engine.loadspread import load_spread_of
from .engine.parallel import ENTRY_ATTR, WORKER_INPUT, WORKER_OUTPUT
from .engine.record import now_iso
from .engine.shard import parse_shard
from .engine.plan import (Case, Plan, Selection, make_plan, narrow, narrowed_by_pytest, not_collected,
                          record_options, run_scope, unmatched_waivers)
from .model import results as R
from .model import secrets
from .model import verdict as V
from .model.errors import ConfigError, Inconclusive, MeasurementError, NotApplicable, NotMeasured
from .model.profile import Profile
from .model.target import Target, check_site_selectors
from .report.progress import bring_up_printer

MARKER = "edge_check"
CASE_ARG = "_edge_case"


@dataclass
class Measured:
    value: float
    unit: str


class EdgeContext:
    """What a check sees: its requirement, its site, and where to put what it measured."""

    def __init__(self, case: Case, session: EdgePlugin):
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

    def checkpoint(self, progress: dict[str, Any]) -> None:
        """Write what a long check measured so far into results.json now (the entry's raw `checkpoint`;
        its status stays not-run until the check ends), so a crash hours into an outage keeps the
        evidence. Only the process that writes results.json can: under -n the worker's are dropped."""
        self._session.checkpoint(self.requirement, self.site.name, progress)

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

    @property
    def load_spread(self) -> dict:
        """How the run spreads each load measurement over Locust workers (--edge-load-workers,
        --edge-load-remote-workers, --edge-load-master): LoadConfig fields, empty when not given."""
        return dict(self._session.load_spread)

    def shared(self, experiment: Callable[[EdgeContext, Recording], None]) -> None:
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

        record = getattr(self._session, "record", None)  # the run id tags what a fault installs on a site
        run_id = record.data.get("run_id") if record is not None else None
        return faults_for(self.target, self.site, allow_real=self._session.allow_faults, run_id=run_id)


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


# ---------------------------------------------------------------------------------------------
# options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("edge-conformance", "edge-conformance requirement profiles")
    group.addoption("--edge-profile", action="append", default=[], metavar="NAME|PATH",
                    help="requirement profile to check (a shipped profile name or a YAML path); repeatable")
    group.addoption("--edge-target", default=None, metavar="PATH|emulated[:TOPOLOGY]",
                    help="target file of the deployment under test, or an emulated deployment")
    group.addoption("--edge-inventory", default=None, metavar="PATH",
                    help="Ansible inventory (INI or YAML) whose hosts are the sites, instead of --edge-target "
                         "(docs/real-targets.md)")
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
    group.addoption("--edge-deploy-probes", action="store_true", default=False,
                    help="install the reference workloads on the target file's probe sites for the run, and remove "
                         "them afterwards (docs/real-targets.md, Probes)")
    group.addoption("--edge-load-workers", type=int, default=None, metavar="N",
                    help="Locust worker processes on this machine for each load measurement (default: the "
                         "requirement's workers param, else 1)")
    group.addoption("--edge-load-remote-workers", type=int, default=0, metavar="M",
                    help="Locust workers on other machines each load measurement waits for; they join with "
                         "`python -m conformance.measure.load --join HOST:PORT --again` (docs/load.md)")
    group.addoption("--edge-load-master", default=None, metavar="HOST:PORT",
                    help="with --edge-load-remote-workers: where each load measurement's Locust master listens")
    group.addoption("--edge-shard", default=None, metavar="K/N",
                    help="measure shard K of N of the run (the target's sites dealt round-robin); join the "
                         "shards' results with `edge-conformance merge` (ci/README.md)")
    group.addoption("--edge-only", action="append", default=[], metavar="REQ@SITE",
                    help="only check these requirement@site cases (e.g. BASE-FUN-01@store-1); repeatable")
    group.addoption("--edge-requirement", action="append", default=[], metavar="ID",
                    help="only check these requirements (e.g. BASE-FUN-01), on every site; repeatable")
    group.addoption("--edge-duration-scale", default=None, metavar="FACTOR",
                    help="multiply every outage's length by FACTOR (720, 1/100): a quick profile's cuts run for "
                         "hours, a full-length profile is rehearsed in minutes; recorded (docs/resilience.md)")
    group.addoption("--edge-no-reports", action="store_true", default=False, help=argparse_suppress())
    # `edge-conformance run` brings an emulated deployment up itself and hands pytest its target file:
    # these tell the plugin what that file came from, so the scope records it (nothing is applied).
    group.addoption("--edge-emulated-from", default=None, help=argparse_suppress())
    ini.add_ini(parser)  # edge_<option> in pytest.ini / pyproject.toml: defaults for the options above


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS


def pytest_addhooks(pluginmanager) -> None:
    # Called as soon as this plugin registers: if Locust's plugin has not loaded yet, it never will.
    if not pluginmanager.has_plugin("locust"):
        pluginmanager.set_blocked("locust")


def _xdist_role(config: pytest.Config) -> str | None:
    """'controller', 'worker' or None; a distributed run that could not keep a serial run's promise is
    refused before anything starts (engine/parallel.py)."""
    from .engine import parallel

    role = parallel.xdist_role(config)
    try:
        if role == "controller":
            config.option.dist = parallel.check_distribution(
                config.option, deploy_probes=bool(config.getoption("--edge-deploy-probes")))
    except parallel.ParallelRefused as exc:
        pytest.exit(f"edge-conformance: {exc}", returncode=R.EXIT_USAGE)
    if role == "worker" and parallel.WORKER_INPUT not in config.workerinput:
        pytest.exit("edge-conformance: this pytest-xdist worker was not started by an edge-conformance run",
                    returncode=R.EXIT_USAGE)
    return role


def _block_locust(config: pytest.Config) -> None:
    # Locust's pytest plugin adds --host and `session` fixtures that would shadow ours, and
    # importing locust monkey-patches the interpreter: `-p no:locust` must always be in effect.
    plugin = config.pluginmanager.get_plugin("locust")
    if plugin is not None:
        config.pluginmanager.unregister(plugin)
    config.pluginmanager.set_blocked("locust")


def _explicit_tests(config: pytest.Config) -> list[str]:
    """Test paths the user named beyond the shipped suites (a narrower set of checks, or their own)."""
    from .model.paths import suites_dir

    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return []
    root = str(suites_dir())
    return [a for a in config.args if not str(a).startswith(root)]


def _select_suites(config: pytest.Config) -> None:
    """Without test paths, collect the shipped suites; --edge-suite adds chosen ones."""
    from .model.paths import suite_names, suites_dir

    root = suites_dir()
    wanted = config.getoption("--edge-suite")
    for name in wanted:
        if not (root / name).is_dir():
            known = suite_names()
            raise pytest.UsageError(f"--edge-suite: unknown suite \"{name}\" (suites: {', '.join(known)})")
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [str(root / n) for n in wanted] if wanted else [str(root)]
    else:
        config.args = list(config.args) + [str(root / n) for n in wanted]


# ---------------------------------------------------------------------------------------------
# configuration: the run's plugin object


PLUGIN_NAME = "edge-conformance-run"  # the EdgePlugin of this run, in config.pluginmanager
PROGRESS_NAME = "edge-conformance-progress"  # its live progress (report/progress.py), on the controller


def run_plugin(config: pytest.Config) -> EdgePlugin | None:
    """This run's EdgePlugin (None without --edge-profile): for fixtures and suite conftests."""
    return config.pluginmanager.get_plugin(PLUGIN_NAME)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(name): the edge-conformance check this test implements")
    _block_locust(config)
    ini.apply_ini(config)
    if not config.getoption("--edge-profile"):
        _refuse_options_without_profile(config)
        return
    role = _xdist_role(config)  # before anything is started: a refused distribution must not leak a deployment
    _select_suites(config)  # before anything is started: a bad --edge-suite must not leak a deployment
    plugin = EdgePlugin(config, role)
    try:
        plugin.open()  # on any failure, whatever it started is undone before this raises
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.pluginmanager.register(plugin, PLUGIN_NAME)
    if role is not None:
        from .engine import xdist_hooks

        xdist_hooks.register(config, plugin)


def _refuse_options_without_profile(config: pytest.Config) -> None:
    """--edge-target (or any run option) without --edge-profile would collect nothing and say only "no
    tests ran": name what is missing instead."""
    given = [o.option for o in ini.INI_OPTIONS if o.option != "--edge-profile" and ini.given(config, o)]
    if given:
        raise pytest.UsageError(f"{given[0]} needs --edge-profile: name the requirement profile(s) to check, e.g. "
                                "--edge-profile edge-baseline (`edge-conformance profiles list` shows them), "
                                "or edge_profile in pytest.ini")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Unregister the run's plugin and close what it holds (sessionfinish closed it already, unless the
    run ended before the session started)."""
    plugin = run_plugin(config)
    if plugin is not None:
        config.pluginmanager.unregister(plugin)
        plugin.close()


class EdgePlugin:
    """One run of requirement profiles against a target: registered by pytest_configure (under
    PLUGIN_NAME) while --edge-profile is given, unregistered by pytest_unconfigure.

    Its ExitStack owns everything the run holds: the SIGTERM handler (restored), the output directory's
    lock (released) and the opened target (engine/lifecycle.py: an emulated deployment is removed). It is
    closed once the reports are written (sessionfinish), and in any case at unconfigure: on Ctrl-C, on an
    error in the run, or when the run ends before its session starts.
    """

    def __init__(self, config: pytest.Config, role: str | None = None):
        self.config = config
        self.role = role  # None, or pytest-xdist's "controller" or "worker" (engine/parallel.py)
        self._stack = contextlib.ExitStack()
        self.profiles: list[Profile] = []
        self.target: Target | None = None
        self.record: Any = None  # engine.record.RunRecord
        self.waivers: list = []
        self.scope: dict = {}  # what narrowed or changed the run (results.json "scope"; engine/plan.py)
        self.plan: Plan = Plan(cases={}, entries=[])
        self.reports = not config.getoption("--edge-no-reports")
        self.writes = False  # results.json and reports (not on a pytest-xdist worker, nor with --collect-only)
        self.allow_faults = bool(config.getoption("--edge-allow-faults"))
        self.load_spread: dict = {}  # LoadConfig fields the run's load options set (load_spread_of)
        self.implemented: set[str] = set()  # checks some collected test implements
        self.shared: dict = {}  # EdgeContext.shared: (site, check, params) -> result
        self.advisories: list[str] = []
        self.other_failures = 0  # failed pytest reports that are not requirement results
        self.collect_errors: list[tuple[str, str]] = []  # (path, first line of the error)

    # -- lifetime ----------------------------------------------------------------------------------
    def open(self) -> None:
        """Load the profiles and waivers, lock the output directory, open the target and plan the run."""
        from .engine import lifecycle, outdir, outlock
        from .engine.record import RunRecord, new_run_id
        from .model.profile import load_profile
        from .model.scaling import scale_profile
        from .model.waivers import load_waivers, split_active

        opt = self.config.getoption
        with contextlib.ExitStack() as stack:
            self._install_sigterm(stack)  # before the target is brought up, so SIGTERM then also cleans up
            self.duration_scale = _duration_scale(opt("--edge-duration-scale"), bool(opt("--edge-run-id")))
            self.profiles = [scale_profile(load_profile(ref), self.duration_scale,
                                           "--duration-scale" if opt("--edge-run-id") else "--edge-duration-scale")
                             for ref in opt("--edge-profile")]
            seen = set()
            for p in self.profiles:
                if p.id in seen:
                    raise ConfigError(None, None, "--edge-profile", f"profile {p.id} given twice")
                seen.add(p.id)
            expired = []
            if opt("--edge-waivers"):
                self.waivers, expired = split_active(load_waivers(opt("--edge-waivers")))
            given = self.config.workerinput[WORKER_INPUT] if self.role == "worker" else {}
            run_id = given.get("run_id") or opt("--edge-run-id") or new_run_id()
            out_dir = Path(given.get("out_dir") or opt("--edge-out") or outdir.default_out_dir(run_id))
            # --collect-only lists what would run: it measures nothing, so it writes nothing (no lock, no
            # results.json, no reports) and leaves --out as it was.
            self.writes = self.role != "worker" and not self.config.option.collectonly
            if self.writes:  # a worker's controller holds it, and writes every file there
                # Held until the reports are written (sessionfinish); re-entrant under `edge-conformance run`.
                stack.callback(outlock.release, outlock.acquire(out_dir, run_id, option="--edge-out"))
                if not (opt("--edge-out") or opt("--edge-run-id")):  # `run` points it itself
                    outdir.point_latest(out_dir)

            inventory = opt("--edge-inventory")
            if inventory and opt("--edge-target"):
                raise ConfigError(None, None, "--edge-inventory", "give a target file (--edge-target) or an "
                                  "Ansible inventory (--edge-inventory), not both: a site is described in one place")
            target_ref = inventory or opt("--edge-target") or "emulated"
            emulated_from = opt("--edge-emulated-from")
            if given:  # the controller's target, already up: its file, never a second deployment
                target_ref, emulated_from = given["target_file"], given["target_ref"]
                inventory = target_ref if given.get("inventory") else None
            target_cm = lifecycle.open_target(
                target_ref, run_id=run_id, profiles=self.profiles, backend=opt("--edge-backend"),
                defects=[] if emulated_from else opt("--edge-defect"), inventory=inventory,
                deploy_probes=bool(opt("--edge-deploy-probes")) and not given, probe_log_dir=out_dir / "probes",
                progress=None if given else bring_up_printer(),
                **({"lab_probes": False} if given else {}))
            try:
                self.target = stack.enter_context(target_cm)
            except ConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 - the emulated deployment could not come up
                option = "--edge-inventory" if inventory else "--edge-target"
                raise pytest.UsageError(f"{option} {target_ref}: {exc}") from None

            check_site_selectors(self.target, opt("--edge-site"), "--edge-site")
            cli = bool(opt("--edge-run-id"))  # options named as `edge-conformance run` names them
            self.load_spread = load_spread_of(
                opt("--edge-load-workers"), opt("--edge-load-remote-workers"), opt("--edge-load-master"),
                emulated=self.target.kind == "emulated", option="--load-" if cli else "--edge-load-")
            self.scope = run_scope(self._selection(), self.target, emulated_from or target_ref)
            # The values of the variables the target (and the profiles' params) refer to, read now: no file
            # or line of this run holds them (model/secrets.py). A credential too short to redact is refused.
            secrets.check_lengths(self.target)
            self.record = RunRecord(out_dir / "results.json" if self.writes else None, run_id,
                                    [p.summary() for p in self.profiles],
                                    self.target.redacted(),
                                    {**record_options(self.scope, target_ref),
                                     **({"inventory": inventory} if inventory else {})},
                                    secrets=secrets.run_secret_values(self.target, self.profiles))
            self.record.data["scope"] = self.scope
            self.record.data["waivers"]["expired"] = [w.to_dict() for w in expired]
            self.plan = make_plan(self.profiles, self.target, self.scope)
            for item in self.plan.entries:
                self.record.plan(item)
            self._check_waivers_match()
            self.record.save()
            if self.writes and self.reports:  # results.json is this run's now: so are the reports, or none
                from .report.writer import remove_reports

                remove_reports(out_dir)
            self._stack = stack.pop_all()

    def checkpoint(self, requirement, site: str, progress: dict[str, Any]) -> None:
        if not self.writes:
            return
        self.record.update(requirement.profile, requirement.id, site,
                           raw={"checkpoint": {"at": now_iso(), **progress}})
        shown = self.config.pluginmanager.get_plugin(PROGRESS_NAME)
        if shown is not None and progress.get("summary"):
            shown.checkpoint(f"{requirement.id}@{site}: {progress['summary']}")

    def close(self) -> None:
        """Close the target, release the output lock, restore SIGTERM (once; later calls do nothing)."""
        self._stack.close()

    def _install_sigterm(self, stack: contextlib.ExitStack) -> None:
        # SIGTERM (a CI job cancelled, a container stopped) must end the run like Ctrl-C does, so that
        # pytest's own interrupt handling runs sessionfinish and results.json is finalised.
        def handler(signum, frame):
            raise KeyboardInterrupt(f"signal {signum}")

        try:
            previous = signal.signal(signal.SIGTERM, handler)
        except ValueError:  # not in the main thread
            return
        stack.callback(signal.signal, signal.SIGTERM, previous)

    def _selection(self) -> Selection:
        config, opt = self.config, self.config.getoption
        return Selection(
            requirements=list(opt("--edge-requirement")), suites=list(opt("--edge-suite")),
            sites=list(opt("--edge-site")), only=list(opt("--edge-only")),
            keyword=config.option.keyword or "", markers=config.option.markexpr or "",
            deselect=list(getattr(config.option, "deselect", None) or []),
            last_failed=bool(getattr(config.option, "lf", False)), collect_only=bool(config.option.collectonly),
            tests=_explicit_tests(config), defects=list(opt("--edge-defect")), backend=opt("--edge-backend"),
            allow_faults=self.allow_faults, deploy_probes=bool(opt("--edge-deploy-probes")),
            strict=bool(opt("--edge-strict")), waivers=opt("--edge-waivers"),
            load=dict(self.load_spread),
            workers=len(getattr(config.option, "tx", None) or []) if self.role == "controller" else 0,
            shard=parse_shard(opt("--edge-shard"), "--shard" if opt("--edge-run-id") else "--edge-shard")
            if opt("--edge-shard") else None,
            duration_scale=self.duration_scale,
            cli=bool(opt("--edge-run-id")))  # started by `edge-conformance run` (its option names)

    def _check_waivers_match(self) -> None:
        """A waiver that matches no requirement of these profiles or no site of this target is a typo or a
        stale entry: it would silently waive nothing. Said on stderr and recorded; refused with --strict."""
        unmatched = unmatched_waivers(self.profiles, self.target, self.waivers)
        if not unmatched:
            return
        if self.scope["strict"]:
            w, why = unmatched[0]
            raise ConfigError(w.origin, None, "waiver", f"matches nothing: {why} (--strict refuses such waivers)")
        self.record.data["waivers"]["unmatched"] = [{**w.to_dict(), "why": why} for w, why in unmatched]
        for w, why in unmatched:
            sys.stderr.write(f"edge-conformance: warning: {w.origin}: waiver {w.id}@{w.site} matches nothing and "
                             f"waives nothing: {why}\n")

    def _narrow(self, why: str) -> None:
        if narrow(self.scope, why):
            self.record.set("scope", self.scope)

    def _record_unmeasured(self, case: Case, ended: V.Ended) -> None:
        d = V.decide(case.requirement, case.site.name, ended=ended)
        self.record.update(case.requirement.profile, case.requirement.id, case.site.name, status=d.status,
                           message=d.message, advisory=d.advisory, ended=ended.to_dict())

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.role != "worker":  # pytest's terminal reporter exists by now
            from .report import progress

            progress.register(self.config, PROGRESS_NAME)

    # -- collection --------------------------------------------------------------------------------
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        marker = metafunc.definition.get_closest_marker(MARKER)
        if marker is None or not marker.args:  # no name: the module-level hook refuses it
            return
        check = marker.args[0]
        self.implemented.add(check)
        cases = self.plan.cases_for(check)
        if cases and CASE_ARG in metafunc.fixturenames:
            metafunc.parametrize(CASE_ARG, cases, ids=[c.id for c in cases], scope="function")

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config, items: list) -> None:
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
        collected = {i.get_closest_marker(MARKER).args[0] for i in keep if i.get_closest_marker(MARKER)}
        for check, cases in self.plan.cases.items():
            if check in collected:
                continue
            ended, narrowed_by = not_collected(check, self.scope, self.collect_errors, self.implemented)
            if narrowed_by:
                self._narrow(narrowed_by)
            for case in cases:
                self._record_unmeasured(case, ended)

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector):
        """A suite module that cannot be imported: remembered, so its requirements become errors that say
        why (not "no collected test implements ...") and the terminal names it."""
        report = yield
        if report.failed:
            lines = [ln.strip() for ln in str(report.longrepr).splitlines() if ln.strip()]
            first = next((ln[1:].strip() for ln in reversed(lines) if ln.startswith("E ")),
                         lines[-1] if lines else "")
            self.collect_errors.append((str(getattr(collector, "path", report.nodeid)), first))
        return report

    def pytest_deselected(self, items: list) -> None:
        """-k, -m, --deselect, --lf or another plugin left these requirement tests out: never a pass."""
        why = None
        for item in items:
            case = getattr(getattr(item, "callspec", None), "params", {}).get(CASE_ARG)
            if case is None:
                continue
            if why is None:
                why = narrowed_by_pytest(self.scope)
                self._narrow(why)
            self._record_unmeasured(case, V.Ended("not-measured", f"deselected ({why})", f"run it without {why}"))

    # -- verdicts ----------------------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        item.stash[_START] = time.monotonic()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        callspec = getattr(item, "callspec", None)
        if callspec is None or CASE_ARG not in callspec.params:
            if report.failed:  # an ordinary test beside the checks: the verdict does not see it,
                self.other_failures += 1  # so it still fails the pytest run
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
                         validity=validity, waivers=self.waivers)
            # A site of a quorum requirement is judged through its fleet entry, not on its own.
            _apply_to_report(item, report, d, self.record.secrets, blocking_allowed=case.requirement.quorum is None)
            entry = self.record.update(
                case.requirement.profile, case.requirement.id, case.site.name,
                status=d.status, message=d.message, advisory=d.advisory,
                measured={k: {"value": v, "unit": u} for k, (v, u) in measured.items()},
                ended=ended.to_dict(), validity=validity, notes=notes, raw=dict(ctx.raw) if ctx else {},
                duration=round(duration, 6), waiver=d.waiver)
            if d.waiver:
                self.record.add_applied_waiver({**d.waiver, "site": entry["site"]})
            if d.advisory:
                self.advisories.append(d.message)
            if self.role == "worker":  # xdist carries the report, and this, to the controller
                setattr(report, ENTRY_ATTR, json.dumps(entry, default=str))
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report, config: pytest.Config):
        status = getattr(report, "edge_status", None)
        if status is None:
            return None
        advisory = " (advisory)" if getattr(report, "edge_advisory", False) and status not in ("pass", "waived") else ""
        letter = {"pass": ".", "waived": "w", "fail": "F", "error": "E", "inconclusive": "i", "not-measured": "n",
                  "not-applicable": "-", "not-run": "r"}[status]
        category = {"pass": "passed", "fail": "failed"}.get(status, status)
        word = {"pass": "PASSED", "fail": "FAILED"}.get(status, status.upper())
        progress = config.pluginmanager.get_plugin(PROGRESS_NAME)
        if progress is not None and progress.letters_hidden:  # its lines say it (report/progress.py)
            letter = ""
        return category, letter, word + advisory

    # -- end of the run ----------------------------------------------------------------------------
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.role == "worker":  # the controller records and reports; it gets what was decided here
            from .engine.xdist_hooks import worker_output

            self.config.workeroutput[WORKER_OUTPUT] = worker_output(self)
            self.close()
            return
        if not self.writes:  # --collect-only: nothing was measured, pytest's own exit status stands
            self.close()
            return
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        try:
            self.record.finish("interrupted" if interrupted else "finished")
            if self.reports:
                from .report.writer import write_reports

                write_reports(self.record.data, self.record.path.parent)
        finally:
            self.close()
        # pytest exits with the verdict's code (0 conformant, 1 non-conformant, 3 incomplete), as
        # `edge-conformance run` does; an interrupted or broken session keeps pytest's own code.
        if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED):
            code = R.exit_code(self.record.data["verdict"])
            if code == 0 and self.other_failures:
                code = int(pytest.ExitCode.TESTS_FAILED)
            session.exitstatus = code

    def pytest_terminal_summary(self, terminalreporter, exitstatus: int, config: pytest.Config) -> None:
        if self.role == "worker":
            return
        from .report.terminal import WIDTH, render_terminal

        tr = terminalreporter
        if not self.writes:
            planned = sum(len(cases) for cases in self.plan.cases.values())
            tr.write_line(f"edge-conformance: --collect-only: nothing measured and nothing written "
                          f"({planned} requirement@site cases planned)")
            return
        tr.section("edge-conformance")
        # A terminal's own width; a CI log or a file gets the table's default (report/terminal.py WIDTH).
        width = config.get_terminal_writer().fullwidth if sys.stdout.isatty() else WIDTH
        text = render_terminal(self.record.data, color=tr.hasmarkup, width=width)
        tr.write(secrets.redact(text, self.record.secrets) + "\n")
        tr.write_line(f"results: {self.record.path}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked edge_check without a check name is refused (with or without --edge-profile)."""
    marker = metafunc.definition.get_closest_marker(MARKER)
    if marker is not None and not (marker.args and marker.args[0]):
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: @pytest.mark.{MARKER} needs a check name")


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture
def _edge_case(request: pytest.FixtureRequest) -> Case:
    raise pytest.UsageError("the `edge` fixture is only available to tests marked "
                            f"@pytest.mark.{MARKER}(...) while --edge-profile is given")


@pytest.fixture
def edge(request: pytest.FixtureRequest, _edge_case: Case) -> EdgeContext:
    """The check's context: requirement, site, params, and record()/note()/attach()."""
    ctx = EdgeContext(_edge_case, run_plugin(request.config))
    request.node.stash[_CTX] = ctx
    return ctx


@pytest.fixture(scope="session")
def edge_target(request: pytest.FixtureRequest) -> Target:
    """The target under test (sites, endpoints, hosts)."""
    plugin = run_plugin(request.config)
    if plugin is None:
        pytest.skip("no --edge-profile given")
    return plugin.target


_CTX = pytest.StashKey[EdgeContext]()
_START = pytest.StashKey[float]()


# ---------------------------------------------------------------------------------------------
# verdicts: what pytest shows of them


def _duration_scale(text: str | None, cli: bool) -> float:
    from .model.scaling import parse_factor

    if text in (None, ""):
        return 1.0
    try:
        return parse_factor(str(text))
    except ValueError as exc:
        raise ConfigError(None, None, "--duration-scale" if cli else "--edge-duration-scale", str(exc)) from None


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


def _apply_to_report(item: pytest.Item, report, d: V.Decision, known: dict[str, str],
                     blocking_allowed: bool = True) -> None:
    """The pytest report says what the record says; a fleet member's own failure is shown as such
    but only its fleet entry fails the pytest run."""
    item.stash[_STATUS] = d
    report.edge_status = d.status
    report.edge_advisory = d.advisory or not blocking_allowed
    # known: the run's secret values; what pytest prints of the result holds none of them either
    message = secrets.redact(d.message, known)
    report.edge_message = message  # the live progress's reason line
    outcome = PYTEST_OUTCOME[d.status]
    report.sections = [(title, secrets.redact(text, known)) for title, text in report.sections]
    if outcome == "passed":
        report.outcome, report.longrepr = "passed", None
    elif outcome == "skipped":
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, message)
    else:
        report.outcome, report.longrepr = "failed", message
