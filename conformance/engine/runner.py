"""Run profiles against a target: validate inputs, run pytest with the plugin, return the verdict."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from ..model import results as R
from ..model import secrets
from ..model.errors import ConfigError, did_you_mean
from ..model.paths import suite_names, suites_dir
from ..model.profile import load_profile
from ..model.target import check_site_selectors, is_emulated_ref, load_target
from ..model.waivers import load_waivers
from ..report.progress import bring_up_printer
from . import outlock
from .outdir import default_out_dir, point_latest
from .inventory import load_inventory
from .lifecycle import open_target, reached_by_ssh
from .loadspread import load_spread_of
from .shard import parse_shard
from .record import new_run_id


@dataclass
class RunOptions:
    profiles: list[str] = field(default_factory=lambda: ["edge-baseline"])
    target: str = "emulated"
    inventory: Path | None = None  # an Ansible inventory instead of a target (engine/inventory.py)
    suites: list[str] = field(default_factory=list)
    sites: list[str] = field(default_factory=list)
    out: Path | None = None
    strict: bool = False
    waivers: Path | None = None
    backend: str = "local"
    defects: list[str] = field(default_factory=list)
    requirements: list[str] = field(default_factory=list)  # only these requirement ids (all sites)
    verbose: int = 0
    allow_faults: bool = False
    deploy_probes: bool = False  # the reference workloads on the target's probe sites (engine/probes.py)
    load_workers: int | None = None  # Locust workers per load measurement (engine/loadspread.py)
    load_remote_workers: int = 0
    load_master: str | None = None
    shard: str | None = None  # K/N: a deterministic share of the sites (engine/shard.py)
    workers: str | None = None  # -n N|auto: pytest-xdist workers on this machine (engine/parallel.py)
    duration_scale: str | None = None  # every outage's length multiplied (model/scaling.py)
    extra_pytest_args: list[str] = field(default_factory=list)


@dataclass
class RunOutcome:
    exit_code: int
    verdict: str | None
    out_dir: Path
    results: dict | None


def validate_inputs(opts: RunOptions) -> None:
    """Fail fast, with one located line, before anything is started."""
    from ..model.scaling import parse_factor, scale_profile

    factor = 1.0
    if opts.duration_scale:
        try:
            factor = parse_factor(opts.duration_scale)
        except ValueError as exc:
            raise ConfigError(None, None, "--duration-scale", str(exc)) from None
    known_ids: list[str] = []
    for ref in opts.profiles:
        try:
            known_ids += [r.id for r in scale_profile(load_profile(ref), factor).requirements]
        except ConfigError as exc:
            if exc.source is None and exc.field is None:
                exc.field = "--profile"
            raise
    for rid in opts.requirements:
        if rid not in known_ids:
            raise ConfigError(None, None, "--requirement", f'no requirement "{rid}" in '
                              f'{", ".join(opts.profiles)}{did_you_mean(rid, known_ids)}')
    if opts.inventory and opts.target != "emulated":
        raise ConfigError(None, None, "--inventory", "give a target file (--target) or an Ansible inventory "
                                                     "(--inventory), not both: a site is described in one place")
    if opts.deploy_probes and not opts.inventory and is_emulated_ref(opts.target) \
            and not reached_by_ssh(opts.target, [load_profile(ref) for ref in opts.profiles]):
        raise ConfigError(None, None, "--deploy-probes", "probes are deployed on the sites of a target file "
                                                         "(--target FILE) or of the SSH lab (--target "
                                                         "emulated:ssh-lab), not on an emulated target's own "
                                                         "workloads")
    if opts.inventory or not is_emulated_ref(opts.target):
        target = load_inventory(opts.inventory) if opts.inventory else load_target(opts.target)
        check_site_selectors(target, opts.sites, "--site")
        if opts.deploy_probes:
            if opts.inventory:
                raise ConfigError(None, None, "--deploy-probes", "probes are deployed on the sites of a target "
                                                                 "file (--target FILE), not an inventory")
            if opts.defects:
                raise ConfigError(None, None, "--defect", "defects can only be switched on in emulated targets "
                                                          "(a probe's go in its probes: defects)")
            from .probes import probe_sites

            probe_sites(target)
        secrets.check_lengths(target)  # a credential too short to redact: one line now, not after start
    if opts.shard:
        parse_shard(opts.shard)
    if opts.workers is not None:
        parse_workers(opts.workers)
        if opts.deploy_probes:
            raise ConfigError(None, None, "-n", "--deploy-probes with -n: the probes are deployed for one process; "
                                                "run without -n, or split the run with --shard K/N")
    load_spread_of(opts.load_workers, opts.load_remote_workers, opts.load_master,
                   emulated=is_emulated_ref(opts.target) and not opts.inventory)  # one line now, not after start
    if opts.waivers:
        load_waivers(opts.waivers)
    known = suite_names()
    for s in opts.suites:
        if s not in known:
            raise ConfigError(None, None, "--suite", f'unknown suite "{s}" (suites: {", ".join(known)})')


def parse_workers(text: str) -> int | str:
    """-n N (1..64) or auto (one per core)."""
    if str(text).strip().lower() == "auto":
        return "auto"
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 64:
        raise ConfigError(None, None, "-n", f"{text!r}: give a number of workers from 1 to 64, or auto")
    return n


def pytest_args(opts: RunOptions, run_id: str, out_dir: Path) -> list[str]:
    root = suites_dir()
    # --edge-suite, not paths: the plugin collects them, and records them as what narrowed the run
    paths = [] if opts.suites else [str(root)]
    args = ["-c", str(root / "pytest.ini"), "--rootdir", str(root), "-p", "no:locust",
            "--import-mode=importlib", "--tb=no", "-rN", "--no-header",
            # the run's progress lines replace pytest's dots and its [nn%] column (report/progress.py)
            "-o", "console_output_style=classic",
            # testinfra may already be imported (target validation), so pytest cannot rewrite it.
            "-W", "ignore::pytest.PytestAssertRewriteWarning",
            *(["--edge-inventory", str(opts.inventory)] if opts.inventory else ["--edge-target", opts.target]),
            "--edge-out", str(out_dir), "--edge-run-id", run_id,
            "--edge-backend", opts.backend,
            # installed from a wheel, pytest would warn on every run that our already imported
            # package cannot be assertion-rewritten (the suites still are)
            "-W", "ignore:Module already imported so cannot be rewritten; conformance"
                  ":pytest.PytestAssertRewriteWarning"]
    args += ["-q"] if opts.verbose == 0 else ["-v"] * opts.verbose
    for p in opts.profiles:
        args += ["--edge-profile", p]
    for s in opts.suites:
        args += ["--edge-suite", s]
    for s in opts.sites:
        args += ["--edge-site", s]
    for d in opts.defects:
        args += ["--edge-defect", d]
    for rid in opts.requirements:
        args += ["--edge-requirement", rid]
    if opts.strict:
        args.append("--edge-strict")
    if opts.allow_faults:
        args.append("--edge-allow-faults")
    if opts.deploy_probes:
        args.append("--edge-deploy-probes")
    if opts.load_workers is not None:
        args += ["--edge-load-workers", str(opts.load_workers)]
    if opts.load_remote_workers:
        args += ["--edge-load-remote-workers", str(opts.load_remote_workers)]
    if opts.load_master:
        args += ["--edge-load-master", opts.load_master]
    if opts.shard:
        args += ["--edge-shard", opts.shard]
    if opts.duration_scale:
        args += ["--edge-duration-scale", str(opts.duration_scale)]
    if opts.workers is not None:  # xdist is loaded by name: plugin autoload is off (see below)
        args += ["-p", "xdist.plugin", "-n", str(parse_workers(opts.workers))]
    if opts.waivers:
        args += ["--edge-waivers", str(opts.waivers)]
    return args + list(opts.extra_pytest_args) + paths


def _pytest_main_isolated(args: list[str]) -> int:
    """pytest.main with only our plugin: other installed plugins (locust's, which would shadow
    options and fixtures, hypothesis, benchmark ...) are not loaded into a conformance run."""
    previous = os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        return pytest.main(["-p", "conformance.pytest_plugin", *args])
    finally:
        if previous is None:
            os.environ.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
        else:
            os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = previous


class TargetUnavailable(Exception):
    """The target could not be brought up (an emulated deployment failed to start)."""


def run(opts: RunOptions) -> RunOutcome:
    validate_inputs(opts)
    run_id = new_run_id()
    out_dir = Path(opts.out) if opts.out else default_out_dir(run_id)
    profiles = [load_profile(ref) for ref in opts.profiles]
    # Before anything starts: an unwritable --out, or one another run is writing into, is one line.
    lock = outlock.acquire(out_dir, run_id)
    if not opts.out:
        point_latest(out_dir)  # ./edge-results/latest: this run, from its start
    try:
        return _run_locked(opts, run_id, out_dir, profiles)
    finally:
        outlock.release(lock)


def _run_locked(opts: RunOptions, run_id: str, out_dir: Path, profiles: list) -> RunOutcome:
    # The engine owns the target's lifetime: an emulated deployment comes up before pytest and is
    # removed after it, whatever happens (Ctrl-C and SIGTERM included).
    try:
        target_cm = open_target(opts.target, run_id=run_id, profiles=profiles, backend=opts.backend,
                                defects=opts.defects, inventory=str(opts.inventory) if opts.inventory else None,
                                lab_probes=False,  # pytest's plugin deploys an SSH lab's probes
                                progress=bring_up_printer())
        target = target_cm.__enter__()
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to bring the target up is one TargetUnavailable line
        raise TargetUnavailable(f"{opts.inventory or opts.target}: {exc}") from None
    try:
        # pytest gets the deployment's target file; the emulated ref and its defects are passed on to
        # be recorded in the scope (so --rerun-failed replays them), not applied a second time.
        file_opts = opts if opts.inventory else replace(opts, target=target.path)
        args = pytest_args(file_opts, run_id, out_dir)
        if target.kind == "emulated":
            args = ["--edge-emulated-from", opts.target, *args]
        code = _pytest_main_isolated(args)
    finally:
        target_cm.__exit__(None, None, None)
    results_path = out_dir / "results.json"
    if code == pytest.ExitCode.USAGE_ERROR or not results_path.exists():
        return RunOutcome(R.EXIT_USAGE, None, out_dir, None)
    results = json.loads(results_path.read_text(encoding="utf-8"))
    if results.get("run_id") != run_id:  # a previous run's file: this one never got to write its own
        return RunOutcome(R.EXIT_USAGE, None, out_dir, None)
    return RunOutcome(R.exit_code(results["verdict"]), results["verdict"], out_dir, results)
