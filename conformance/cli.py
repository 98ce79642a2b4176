"""The edge-conformance command line: thin, it parses arguments and calls the engine and reports.

Exit codes (contract): 0 conformant / command succeeded, 1 non-conformant, 2 usage or configuration
error, 3 incomplete (a must requirement could not be decided).
"""

from __future__ import annotations

import functools
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import click

from . import __version__
from .completion import complete_profile, complete_suite, complete_target, complete_topology
from .model import results as R
from .model.errors import ConfigError


def _seconds(param: click.Parameter, value: float) -> float:
    """A duration option: a finite number of seconds above 0 (click's FloatRange lets NaN through)."""
    if not math.isfinite(value) or value <= 0 or value > 86_400:
        raise click.BadParameter(f"{value!r} is not a number of seconds between 0 and 86400", param=param)
    return value


def _friendly_errors(fn):
    """Bad input is one line on stderr and exit 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            click.echo(f"edge-conformance: error: {exc}", err=True)
            sys.exit(R.EXIT_USAGE)
        except KeyboardInterrupt:
            click.echo("edge-conformance: interrupted", err=True)
            sys.exit(R.EXIT_CODES[R.INCOMPLETE])
        except _environment_errors() as exc:
            # The target could not be reached or brought up: nothing could be decided.
            click.echo(f"edge-conformance: error: {exc}", err=True)
            sys.exit(R.EXIT_CODES[R.INCOMPLETE])

    return wrapper


def _environment_errors() -> tuple[type[BaseException], ...]:
    from .emulation import EmulationError
    from .engine.runner import TargetUnavailable

    return (TargetUnavailable, EmulationError)


def _sigterm_as_interrupt() -> None:
    """SIGTERM (a cancelled CI job) ends a run like Ctrl-C: everything started is removed."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="edge-conformance")
def main() -> None:
    """Check an edge deployment against edge-computing requirement profiles.

    \b
    Examples:
      edge-conformance run                          # emulated retail deployment, edge-baseline
      edge-conformance run --profile edge-baseline --target my-site.yaml
      edge-conformance profiles list
      edge-conformance report edge-results/<run-id>/results.json --format md
    """


# ---------------------------------------------------------------------------------------------- run


@main.command()
@click.option("--profile", "-p", "profiles", multiple=True, metavar="NAME|PATH", shell_complete=complete_profile,
              help="Requirement profile (shipped name or YAML path); repeatable. Default: edge-baseline.")
@click.option("--target", "-t", default="emulated", show_default=True, metavar="PATH|emulated[:TOPOLOGY]",
              shell_complete=complete_target,
              help="Target file of a real deployment, or an emulated one brought up for this run.")
@click.option("--inventory", "-i", type=click.Path(path_type=Path), metavar="FILE|DIR",
              help="Ansible inventory (INI or YAML) whose hosts are the sites, instead of --target: groups "
                   "central/regional/edge or edge_conformance_role give the roles (docs/real-targets.md). "
                   "Needs ansible-core (the `ansible` extra).")
@click.option("--suite", "-s", "suites", multiple=True, metavar="SUITE", shell_complete=complete_suite,
              help="Only run these suites (functional, latency, ...); repeatable.")
@click.option("--site", "sites", multiple=True, metavar="NAME|ROLE", help="Only check these sites; repeatable.")
@click.option("--requirement", "-r", "requirements", multiple=True, metavar="ID",
              help="Only check these requirements (e.g. BASE-FUN-01), on every site; repeatable.")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path),
              help="Output directory [default: ./edge-results/<run-id>].")
@click.option("--strict", is_flag=True, help="should/may failures also make the run non-conformant.")
@click.option("--waivers", type=click.Path(dir_okay=False, path_type=Path), help="Waivers file (YAML).")
@click.option("--backend", type=click.Choice(["local", "docker"]), default="local", show_default=True,
              help="Backend for emulated targets.")
@click.option("--defect", "defects", multiple=True, metavar="[SITE:]DEFECT",
              help="Switch on a defect in the emulated deployment, to see a check catch it; repeatable.")
@click.option("--allow-faults", is_flag=True,
              help="Let the resilience suite run the real target's fault hooks (partition, kill, ...).")
@click.option("--deploy-probes", is_flag=True,
              help="Install the reference workloads on the sites whose target file has a probes: section, for "
                   "this run, and remove them afterwards (docs/real-targets.md, Probes).")
@click.option("--load-workers", type=int, default=None, metavar="N",
              help="Locust worker processes on this machine for each load measurement [default: the "
                   "requirement's workers param, else 1].")
@click.option("--load-remote-workers", type=int, default=0, metavar="M",
              help="Also wait for M Locust workers on other machines in each load measurement (they run "
                   "`python -m conformance.measure.load --join HOST:PORT --again`; docs/load.md).")
@click.option("--load-master", metavar="HOST:PORT",
              help="With --load-remote-workers: where each load measurement's Locust master listens.")
@click.option("--shard", metavar="K/N",
              help="Measure shard K of N (the target's sites dealt round-robin) and join the N shards' results "
                   "with `edge-conformance merge` (ci/README.md).")
@click.option("--workers", "-n", "workers", metavar="N|auto",
              help="Spread the checks over N pytest-xdist worker processes on this machine (auto: one per core); "
                   "a site's checks stay on one worker, faults, fleet, load and uplink checks run alone, and "
                   "the verdicts are a serial run's.")
@click.option("--duration-scale", metavar="FACTOR",
              help="Multiply every outage's length by FACTOR (720, 1/100): run a quick profile's cuts for hours, or "
                   "rehearse a full-length profile (retail-full ...) in minutes; recorded in every report.")
@click.option("--verbose", "-v", count=True, help="More pytest output.")
@click.option("--bundle", "make_bundle", is_flag=True,
              help="Also write a certification bundle (tar.gz) of the run into the output directory.")
@click.option("--sign-key", type=click.Path(dir_okay=False, path_type=Path), metavar="KEY",
              help="With --bundle: sign it with this Ed25519 private key (see `keygen`).")
@click.option("--rerun-failed", type=click.Path(dir_okay=False, path_type=Path), metavar="RESULTS.json",
              help="Re-run only what failed, errored, was inconclusive or not run in RESULTS.json (its "
                   "profiles, target and options unless given here) and merge the results.")
@_friendly_errors
def run(profiles, target, inventory, suites, sites, requirements, out, strict, waivers, backend, defects, allow_faults,
        deploy_probes, load_workers, load_remote_workers, load_master, shard, workers, duration_scale, verbose,
        make_bundle, sign_key, rerun_failed):
    """Run profiles against a target and write results.json, junit.xml, summary.md, report.html.

    \b
    Examples:
      edge-conformance run
      edge-conformance run --profile retail --target emulated:retail --suite resilience
      edge-conformance run --profile edge-baseline --target lab.yaml --out results/ --waivers waivers.yaml
      edge-conformance run --profile edge-baseline --inventory hosts.ini

    Exit status: 0 conformant, 1 non-conformant, 2 bad input, 3 incomplete.
    """
    from .engine.runner import RunOptions, run as run_profiles

    _sigterm_as_interrupt()
    ctx = click.get_current_context()
    if inventory is not None and ctx.get_parameter_source("target") is not click.core.ParameterSource.DEFAULT:
        raise ConfigError(None, None, "--inventory", "give a target file (--target) or an Ansible inventory "
                                                     "(--inventory), not both: a site is described in one place")
    opts = RunOptions(profiles=list(profiles) or ["edge-baseline"], target=target, inventory=inventory,
                      suites=list(suites),
                      sites=list(sites), out=out, strict=strict, waivers=waivers, backend=backend,
                      defects=list(defects), requirements=list(requirements), verbose=verbose,
                      allow_faults=allow_faults, deploy_probes=deploy_probes, load_workers=load_workers,
                      load_remote_workers=load_remote_workers, load_master=load_master, shard=shard,
                      workers=workers, duration_scale=duration_scale)
    if sign_key and not make_bundle:
        raise ConfigError(None, None, "--sign-key", "signs the bundle: give --bundle too")
    if sign_key:
        from .certify.keys import load_private_key

        load_private_key(sign_key)  # a bad key fails now, not after the run
    if rerun_failed:
        from .engine.rerun import INHERITED, run_rerun

        given = {name for name in INHERITED
                 if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT}
        outcome = run_rerun(rerun_failed, opts, given)
    else:
        outcome = run_profiles(opts)
    if make_bundle and outcome.results is not None:
        from .certify.bundle import bundle_run

        made = bundle_run(outcome.out_dir, sign_key=sign_key)
        click.echo(f"bundle: {made.path}")
    if outcome.results is None:
        click.echo("edge-conformance: error: the run could not start (see the message above)", err=True)
    else:
        click.echo(f"reports: {outcome.out_dir}")
        if os.environ.get("GITHUB_STEP_SUMMARY"):
            _append_step_summary(outcome.out_dir)
    sys.exit(outcome.exit_code)


def _append_step_summary(out_dir: Path) -> None:
    summary = out_dir / "summary.md"
    if summary.exists():
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as f:
            f.write(summary.read_text(encoding="utf-8") + "\n")


# ---------------------------------------------------------------------------------------- profiles


@main.group()
def profiles() -> None:
    """List, show, validate and explain requirement profiles.

    \b
    Examples:
      edge-conformance profiles list
      edge-conformance profiles validate my-profile.yaml
      edge-conformance profiles explain BASE-FUN-01
    """


@profiles.command("list")
@_friendly_errors
def profiles_list():
    """List the shipped profiles.

    \b
    Example:
      edge-conformance profiles list
    """
    from .model.profile import list_profiles, load_profile

    for path in list_profiles():
        p = load_profile(str(path))
        musts = sum(r.level == "must" for r in p.requirements)
        click.echo(f"{p.id:<24} {p.version:<6} {len(p.requirements):>3} requirements ({musts} must)  {p.title}")


@profiles.command("show")
@click.argument("ref", metavar="NAME|PATH", shell_complete=complete_profile)
@_friendly_errors
def profiles_show(ref):
    """Show a profile's requirements (with inherited ones resolved).

    \b
    Example:
      edge-conformance profiles show edge-baseline
    """
    from .model.profile import load_profile

    p = load_profile(ref)
    chain = " <- ".join(f"{c.id} {c.version}" for c in p.chain)
    click.echo(f"{p.id} {p.version}: {p.title}\n  from {p.path} ({chain}), sha256 {p.sha256[:16]}")
    if p.topology:
        click.echo(f"  emulated topology: {p.topology}")
    for r in p.requirements:
        applies = ", ".join(r.applies_to) or "all sites"
        click.echo(f"  {r.id:<14} {r.level:<6} {r.check:<22} {r.expect.text}   [{applies}]  {r.title}")


@profiles.command("validate")
@click.argument("refs", nargs=-1, required=True, metavar="NAME|PATH...", shell_complete=complete_profile)
@_friendly_errors
def profiles_validate(refs):
    """Validate profiles strictly; the first problem is printed as file:line: field: message.

    \b
    Example:
      edge-conformance profiles validate my-profile.yaml
    """
    from .model.profile import load_profile

    for ref in refs:
        p = load_profile(ref)
        click.echo(f"{p.path}: ok ({p.id} {p.version}, {len(p.requirements)} requirements)")


@profiles.command("explain")
@click.argument("ref", metavar="PROFILE|REQUIREMENT-ID", shell_complete=complete_profile)
@click.argument("requirement", required=False, metavar="[REQUIREMENT-ID]")
@_friendly_errors
def profiles_explain(ref, requirement):
    """Explain requirements: what is checked, the expectation, rationale, full citations and basis.

    \b
    Examples:
      edge-conformance profiles explain edge-baseline
      edge-conformance profiles explain edge-baseline BASE-FUN-01
      edge-conformance profiles explain BASE-FUN-01        # searched in every shipped profile
    """
    from .model import catalog
    from .model.profile import list_profiles, load_profile
    from .model.sources import describe_basis, registry

    if requirement is None and not _looks_like_profile(ref):
        found = []
        for path in list_profiles():
            p = load_profile(str(path))
            if p.requirement(ref) and p.requirement(ref).profile == p.id:
                found.append((p, p.requirement(ref)))
        if not found:
            raise ConfigError(None, None, None, f'no shipped profile has requirement "{ref}"')
        pairs = found
    else:
        p = load_profile(ref)
        reqs = p.requirements if requirement is None else [p.requirement(requirement)]
        if reqs == [None]:
            raise ConfigError(p.path, None, None, f'profile {p.id} has no requirement "{requirement}"')
        pairs = [(p, r) for r in reqs]
    for p, r in pairs:
        spec = catalog.get(r.check)
        click.echo(f"{r.id} ({p.id} {p.version}) [{r.level}] {r.title}")
        click.echo(f"  check:     {r.check}" + (f" - {spec.summary}" if spec else ""))
        click.echo(f"  applies:   {', '.join(r.applies_to) or 'every site'}")
        click.echo(f"  expect:    {r.expect.text}")
        if r.params:
            shown = ", ".join(f"{k}={v}" for k, v in r.params.items() if v is not None)
            click.echo(f"  params:    {shown}")
        if r.quorum is not None:
            click.echo(f"  fleet:     at least {r.quorum * 100:g}% of sites must pass")
        if r.sample is not None:
            size = f"{r.sample.count:,}" if r.sample.count is not None else r.sample.text
            click.echo(f"  sample:    {size} of those sites (the same ones every run), the quorum judged "
                       f"at {r.sample.confidence_text} confidence")
        click.echo(f"  rationale: {r.rationale or '-'}")
        known = {**registry(), **p.sources}
        for c in r.cites:
            click.echo(f"  cites:     {c.text}")
            click.echo(f"             = {known[c.key].citation()}")
        click.echo(f"  basis:     {describe_basis(r.basis)}")
        if r.source or not r.cites:
            click.echo(f"  source:    {r.source or '-'}")
        click.echo(f"  defined:   {r.origin}\n")


def _looks_like_profile(ref: str) -> bool:
    from .model.paths import profiles_dir

    return "/" in ref or ref.endswith((".yaml", ".yml")) or (profiles_dir() / f"{ref}.yaml").exists()


@profiles.command("sources")
@click.argument("refs", nargs=-1, metavar="[NAME|PATH...]", shell_complete=complete_profile)
@click.option("--markdown", is_flag=True, help="Print docs/sources.md: the registry with who cites each source.")
@_friendly_errors
def profiles_sources(refs, markdown):
    """List the sources requirements cite: the registry (profiles/sources.yaml) and profiles' own.

    With profiles named, only the sources they cite, and the requirements citing each.

    \b
    Examples:
      edge-conformance profiles sources
      edge-conformance profiles sources retail
      edge-conformance profiles sources --markdown > docs/sources.md
    """
    from .model.profile import list_profiles, load_profile
    from .model.sources import registry, render_markdown

    loaded = [load_profile(r) for r in refs] if refs else [load_profile(str(p)) for p in list_profiles()]
    cited_by: dict[str, list[str]] = {}
    known = dict(registry())
    for p in loaded:
        known.update(p.sources)
        for r in p.requirements:
            if r.profile != p.id:
                continue  # an inherited requirement is listed under the profile that defines it
            for key in dict.fromkeys(c.key for c in r.cites):
                cited_by.setdefault(key, []).append(f"{p.id} {r.id}")
    if markdown:
        click.echo(render_markdown(registry(), cited_by), nl=False)
        return
    keys = sorted(cited_by if refs else known, key=str.lower)
    for key in keys:
        click.echo(f"{key}: {known[key].citation()}")
        if cited_by.get(key):
            click.echo(f"  cited by {len(cited_by[key])}: {', '.join(cited_by[key])}")


@profiles.command("checks")
def profiles_checks():
    """List the checks a profile can name, with their metrics and params.

    \b
    Example:
      edge-conformance profiles checks
    """
    from .model import catalog

    for name, spec in sorted(catalog.CHECKS.items()):
        metrics = ", ".join(f"{m} ({d})" for m, d in spec.metrics.items())
        click.echo(f"{name}: {spec.summary}\n  metrics: {metrics}")
        if spec.params:
            click.echo("  params:  " + ", ".join(spec.params))


@profiles.command("diff")
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@_friendly_errors
def profiles_diff(a, b):
    """Compare two profiles, or two versions of one: requirements added, removed and changed.

    A and B are shipped profile names or YAML paths; inheritance is resolved first, so a change in a
    parent shows in its children. Exit status 0 whatever the differences (2 for a bad profile).

    \b
    Examples:
      edge-conformance profiles diff retail ucpe
      edge-conformance profiles diff old/retail.yaml profiles/retail.yaml
    """
    from .model.profile import load_profile
    from .model.profile_diff import diff_profiles, render

    click.echo(render(diff_profiles(load_profile(a), load_profile(b))), nl=False)


@profiles.command("coverage")
@click.argument("refs", nargs=-1, metavar="[NAME|PATH...]", shell_complete=complete_profile)
@click.option("--tests", "extra", multiple=True, type=click.Path(path_type=Path), metavar="PATH",
              help="Also scan these test files or directories (your own custom.* checks); repeatable.")
@_friendly_errors
def profiles_coverage(refs, extra):
    """Show the suite test that implements every requirement's check (default: every shipped profile).

    The suites are read with ast (`@pytest.mark.edge_check("...")` on test functions), nothing runs.
    Exit status 1 when a requirement's check has no implementing test (it would always be skipped).

    \b
    Examples:
      edge-conformance profiles coverage
      edge-conformance profiles coverage my-profile.yaml --tests tests/my_checks.py
    """
    from .model.coverage import coverage, render, scan_suites, shipped_implementations
    from .model.profile import list_profiles, load_profile

    loaded = [load_profile(r) for r in refs] if refs else [load_profile(str(p)) for p in list_profiles()]
    impls = shipped_implementations()
    for check, found in scan_suites([Path(e) for e in extra]).items():
        impls.setdefault(check, []).extend(found)
    rows = coverage(loaded, impls)
    click.echo(render(rows, loaded), nl=False)
    missing = [r for r in rows if not r.covered]
    if missing:
        named = ", ".join(f"{r.profile} {r.requirement.id} ({r.requirement.check})" for r in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        click.echo(f"edge-conformance: error: {len(missing)} requirements are not covered by any suite "
                   f"test: {named}{more}", err=True)
        sys.exit(1)


# ------------------------------------------------------------------------------------------ report


@main.command()
@click.argument("results_file", metavar="RESULTS.json|RUN_DIR", type=click.Path(path_type=Path))
@click.option("--format", "-f", "fmt", type=click.Choice(["junit", "md", "html", "terminal", "all"]),
              default="terminal", show_default=True)
@click.option("--out", "-o", type=click.Path(path_type=Path),
              help="Write to this file (or directory with --format all) instead of standard output.")
@_friendly_errors
def report(results_file, fmt, out):
    """Re-render reports from a results.json (or a run's output directory).

    \b
    Examples:
      edge-conformance report edge-results/20261126T1200Z-ab12cd/results.json --format md
      edge-conformance report edge-results/latest --format md
      edge-conformance report results.json --format all --out reports/
    """
    from .report import writer

    if results_file.is_dir():
        results_file = results_file / "results.json"

    if out and fmt != "all":  # refused before the work: a directory, a FIFO, the results file itself
        writer.check_output_path(out, protect=[results_file])
    results = writer.load_results(results_file)
    if fmt == "all":
        written = writer.write_reports(results, Path(out or results_file.parent))
        for path in written.values():
            click.echo(str(path))
        return
    text = writer.render(results, fmt)
    if out:
        writer.write_report_file(out, text, protect=[results_file])
    else:
        click.echo(text)


# ----------------------------------------------------------------------------------------- emulate


@main.group()
def emulate() -> None:
    """Bring emulated edge deployments up and down on this machine (no root, no Docker needed).

    \b
    Examples:
      edge-conformance emulate up retail --detach
      edge-conformance emulate status
      edge-conformance emulate down --all
    """


@emulate.command("up")
@click.argument("topology", default="retail", metavar="[TOPOLOGY]", shell_complete=complete_topology)
@click.option("--detach", is_flag=True, help="Return once it is up and leave it running (stop with `emulate down`).")
@click.option("--defect", "defects", multiple=True, metavar="[SITE:]DEFECT", help="Switch on a defect; repeatable.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the target file, logs and site data go [default: a temporary directory].")
@click.option("--timeout", default=60.0, show_default=True, callback=lambda ctx, param, v: _seconds(param, v),
              help="Seconds to wait for every site to be healthy.")
@click.option("--backend", type=click.Choice(["local", "docker"]), default="local", show_default=True,
              help="Processes on this machine (local) or a container per site (docker, docs/docker-backend.md).")
@_friendly_errors
def emulate_up(topology, detach, defects, state_dir, timeout, backend):
    """Start an emulated deployment and write a target file for it.

    \b
    Examples:
      edge-conformance emulate up retail --detach
      edge-conformance emulate up edge-stack --backend docker --detach
      pytest --edge-target <the printed target file> --edge-profile edge-baseline
      edge-conformance emulate down RUN_ID
    Topologies: retail, iot, satcom, mec, urllc, fleet-50, fleet:N (any size), edge-stack and ssh-lab
    (docker), or a YAML file.
    """
    from .emulation import start_deployment

    from .report.progress import bring_up_printer

    dep = start_deployment(topology, state_dir=state_dir, defects=list(defects), timeout=timeout,
                           detach=detach, keep=state_dir is not None, backend=backend, progress=bring_up_printer())
    click.echo(f"run id:      {dep.run_id}\nbackend:     {backend}\ntarget file: {dep.target_file}\n"
               f"control:     {dep.control_url}")
    if detach:
        click.echo(f"stop it with: edge-conformance emulate down {dep.run_id}")
        return
    click.echo("running; press Ctrl-C to stop")
    _sigterm_as_interrupt()
    try:
        while dep.running:
            time.sleep(0.5)
        click.echo("edge-conformance: the deployment stopped", err=True)
        sys.exit(R.EXIT_CODES[R.INCOMPLETE])
    except KeyboardInterrupt:
        pass
    finally:
        dep.stop()


@emulate.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--others", is_flag=True,
              help="Also list deployments of other state roots (shown as not ours; never stopped from here).")
@_friendly_errors
def emulate_status(as_json, others):
    """List the emulated deployments (and leftovers) of this state root.

    The state root is $EDGE_CONFORMANCE_STATE_ROOT, else $XDG_RUNTIME_DIR/edge-conformance, else
    <tmp>/edge-conformance-<uid>; deployments started under another one are not ours.

    \b
    Example:
      edge-conformance emulate status
    """
    from dataclasses import asdict

    from .emulation import list_running
    from .emulation.state import root_label

    runs = list_running(others=True)
    shown = [r for r in runs if r.ours or others]
    hidden = len(runs) - len(shown)
    if as_json:
        click.echo(json.dumps([asdict(r) for r in shown], indent=2))
        return
    if not any(r.ours for r in runs):
        click.echo(f"no emulated deployments in this state root ({root_label()})")
    for r in shown:
        if not r.ours:
            state = "not ours"
        elif r.alive:
            state = f"running (run pid {r.held_by})" if r.held_by else "running"
        else:
            state = ("leftover processes" if r.processes else "leftover containers" if r.containers
                     else "stale entry")
        what = f"{len(r.processes)} processes" + (f", {len(r.containers)} containers" if r.containers else "")
        where = (r.target_file or "") if r.ours else f"state root {r.state_root or 'unknown'}"
        click.echo(f"{r.run_id}  {r.topology or '?':<10} {r.backend or '?':<6} {state:<18} {what}  {where}")
    if hidden:
        click.echo(f"({hidden} deployment(s) of other state roots not shown: --others lists them)")


@emulate.command("down")
@click.argument("run_ids", nargs=-1, metavar="[RUN_ID...]")
@click.option("--all", "all_", is_flag=True,
              help="Remove every deployment and leftover of this state root, except runs in progress.")
@_friendly_errors
def emulate_down(run_ids, all_):
    """Stop emulated deployments of this state root and remove everything they started.

    --all stops the detached deployments of this state root and the leftovers of those whose
    supervisor is gone; a run in progress (attached to a live harness) is left alone unless named.
    Nothing of another state root is ever touched.

    \b
    Examples:
      edge-conformance emulate down 20261126T120000Z-ab12cd
      edge-conformance emulate down --all
    """
    from .emulation import list_running, stop_all, stop_run
    from .emulation.state import root_label

    if not run_ids and not all_:
        raise ConfigError(None, None, None, "name a RUN_ID (see `emulate status`) or give --all")
    held = [r for r in list_running() if r.held_by] if all_ else []
    stopped = stop_all() if all_ else [r for r in run_ids if stop_run(r)]
    for rid in stopped:
        click.echo(f"stopped {rid}")
    for r in held:
        if r.run_id not in stopped:
            click.echo(f"left {r.run_id} running: a run in progress (harness pid {r.held_by}); "
                       f"stop it there, or name it: emulate down {r.run_id}")
    missing = [] if all_ else [r for r in run_ids if r not in stopped]
    if missing:
        foreign = {r.run_id: r for r in list_running(others=True) if not r.ours}
        whose = [f"{m} belongs to another state root ({foreign[m].state_root or 'unknown'}): not ours to stop"
                 for m in missing if m in foreign]
        raise ConfigError(None, None, None, "; ".join(whose) if len(whose) == len(missing) else
                          f"no emulated deployment {', '.join(missing)} in this state root ({root_label()})"
                          + (f"; {'; '.join(whose)}" if whose else ""))


# ------------------------------------------------------------------- certification (bundles, verify)
# bundle, verify, compare, keygen, metrics: see docs/certification.md and ci/README.md.


@main.command()
@click.argument("shards", nargs=-1, required=True, metavar="SHARD_RESULTS...", type=click.Path(path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the merged results.json and reports (made if missing; not one holding a "
                   "results.json already).")
@_friendly_errors
def merge(shards, out):
    """Join the results of every shard of a run (`run --shard K/N`) into one results.json and its reports.

    Each SHARD_RESULTS is a shard's results.json or its output directory. Refused (exit 2) unless every
    shard 1..N is there, from the same profiles, sites and rules. Bundle the merged directory with
    `edge-conformance bundle OUT`; `verify` then recomputes every verdict as for any run.

    \b
    Examples:
      edge-conformance merge shard-1/ shard-2/ shard-3/ --out merged/

    Exit status: the merged verdict's (0 conformant, 1 non-conformant, 3 incomplete); 2 bad input.
    """
    from .engine.record import new_run_id
    from .engine.shard import merge_shards, write_merged
    from .model import results as R
    from .report.writer import load_results

    if (out / "results.json").exists():
        raise ConfigError(str(out / "results.json"), None, "--out",
                          "already holds a results.json: give a new directory")
    loaded = []
    for path in shards:
        file = path / "results.json" if path.is_dir() else path
        loaded.append((str(file), load_results(file, legacy=False)))
    merged = merge_shards(loaded, new_run_id())
    write_merged(out, merged)
    click.echo(f"merged {len(loaded)} shards: verdict {merged['verdict']}")
    click.echo(f"results: {out / 'results.json'}")
    sys.exit(R.exit_code(merged["verdict"]))


@main.command()
@click.argument("results_dir", metavar="RESULTS_DIR", type=click.Path(path_type=Path))
@click.option("--sign-key", type=click.Path(dir_okay=False, path_type=Path), metavar="KEY",
              help="Sign the manifest with this Ed25519 private key (PEM, or a raw 32-byte seed file).")
@click.option("--out", "-o", type=click.Path(path_type=Path), metavar="FILE",
              help="Bundle file to write [default: RESULTS_DIR/edge-conformance-<run-id>.tar.gz].")
@click.option("--profile", "profile_hints", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              metavar="PATH", help="Where a profile file of the run is, if not at the path results.json records.")
@click.option("--waivers", "waivers_hint", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
              help="Where the run's waivers file is, if not at the path results.json records.")
@click.option("--no-secret-check", is_flag=True,
              help="Bundle even when a credential variable the target names is not set here, so that its "
                   "value cannot be looked for in the bundle (refused otherwise; values that are set are "
                   "still looked for). A warning names what was not checked.")
@_friendly_errors
def bundle(results_dir, sign_key, out, profile_hints, waivers_hint, no_secret_check):
    """Make a certification bundle (tar.gz) of a run, optionally signed.

    It holds results.json, the reports, raw measurements, the exact profiles (refused if a profile
    file changed since the run), the emulated topology, the redacted target, an environment
    fingerprint and a manifest of SHA-256 digests.

    \b
    Examples:
      edge-conformance bundle edge-results/20261126T1200Z-ab12cd
      edge-conformance bundle edge-results/latest --sign-key vendor.key --out submission.tar.gz
    """
    from .certify.bundle import make_bundle

    made = make_bundle(results_dir, out=out, sign_key=sign_key, profile_hints=list(profile_hints),
                       waivers_hint=waivers_hint, secret_check=not no_secret_check)
    for w in made.warnings:
        click.echo(f"edge-conformance: warning: {w}", err=True)
    click.echo(f"bundle: {made.path}")
    if made.signed_by:
        click.echo(f"signed by: {made.signed_by}")


@main.command()
@click.argument("bundle_file", metavar="BUNDLE", type=click.Path(path_type=Path))
@click.option("--pubkey", metavar="KEY", help="Require a signature by this Ed25519 public key "
              "(PEM file, raw 32-byte file, or its fingerprint sha256:<hex>).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--accept-partial", is_flag=True, help="Exit 0 for a consistent bundle of a narrowed run "
              "(--requirement, --site, -k ...), which otherwise exits 3.")
@_friendly_errors
def verify(bundle_file, pubkey, as_json, accept_partial):
    """Verify a bundle offline: digests, signature, and every verdict recomputed.

    Verdicts are recomputed from the raw measured values and the profiles embedded in the bundle;
    the run's verdict and counts must follow from them.

    \b
    Examples:
      edge-conformance verify submission.tar.gz
      edge-conformance verify submission.tar.gz --pubkey vendor.pub

    Exit status: 0 everything holds, 1 a mismatch or tampering (the reasons are listed), 2 unreadable
    input, 3 everything holds but the run was partial (narrowed by its options; see --accept-partial).
    """
    from .certify.verify import verification_json, verify_bundle

    _sigterm_as_interrupt()  # a cancelled CI job: the unpacked bundle's temp dir is removed on the way out
    result = verify_bundle(bundle_file, pubkey=pubkey)
    click.echo(verification_json(result) if as_json else result.render(), nl=not as_json)
    sys.exit(result.exit_code(accept_partial))


@main.command()
@click.argument("base", metavar="BASE", type=click.Path(path_type=Path))
@click.argument("new", metavar="NEW", type=click.Path(path_type=Path))
@click.option("--tolerance", "tolerances", multiple=True, metavar="[METRIC=]AMOUNT",
              help="Allowed change in the bad direction: 10% (default), p99=5%, latency=2ms; repeatable.")
@click.option("--noise", default="2%", show_default=True, metavar="SHARE",
              help="Ignore changes smaller than this share of the requirement's limit.")
@click.option("--format", "-f", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@click.option("--all", "show_all", is_flag=True, help="Also list metrics within tolerance.")
@click.option("--accept-partial", is_flag=True, help="The musts a partial NEW run left out (--requirement, "
              "--suite, -k ...) are shown but are not regressions (for a narrowed re-check; never for a gate).")
@_friendly_errors
def compare(base, new, tolerances, noise, fmt, show_all, accept_partial):
    """Compare two runs (results.json, run directories or bundles); exit 1 on a regression.

    A regression: a status that got worse, a metric beyond the tolerance the bad way, a result of BASE
    missing from NEW, or a must that a partial NEW left out (unless --accept-partial). A file that is
    not a whole results record (or has a NaN, a wrong type ...) is refused: one line, exit 2.

    \b
    Examples:
      edge-conformance compare baseline/results.json edge-results/latest/results.json
      edge-conformance compare old.tar.gz new.tar.gz --tolerance 10% --tolerance p99=5% --format json
    """
    from .certify.compare import compare_runs, iter_json, load_run, render_markdown

    result = compare_runs(load_run(base, slim=True), load_run(new, slim=True), list(tolerances), noise=noise,
                          accept_partial=accept_partial)
    if fmt == "json":
        for piece in iter_json(result):  # piece by piece: a fleet's comparison is tens of MB
            click.echo(piece, nl=False)
    else:
        click.echo(render_markdown(result, show_all=show_all), nl=False)
    sys.exit(1 if result.regressions else 0)


@main.command()
@click.argument("prefix", metavar="OUT_PREFIX", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace existing key files.")
@_friendly_errors
def keygen(prefix, force):
    """Create an Ed25519 key pair for signing bundles: OUT_PREFIX.key (mode 0600) and OUT_PREFIX.pub.

    \b
    Example:
      edge-conformance keygen vendor        # writes vendor.key and vendor.pub
    """
    from .certify.keys import generate

    key_path, pub_path, fingerprint = generate(prefix, force=force)
    click.echo(f"private key: {key_path} (keep it secret)\npublic key:  {pub_path}\nfingerprint: {fingerprint}")


@main.command()
@click.argument("results_file", metavar="RESULTS", type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path), help="Write to this file.")
@_friendly_errors
def metrics(results_file, out):
    """Write a run's results as OpenMetrics text (for GitLab's metrics report).

    \b
    Example:
      edge-conformance metrics edge-results/latest --out metrics.txt
    """
    from .report import writer
    from .certify.compare import load_run
    from .report.openmetrics import render_openmetrics

    # RESULTS may be a run's directory: its results.json is the file to keep
    protect = [results_file, results_file / "results.json"]
    if out:  # refused before the work, as `report --out`: a directory, a FIFO or device, a run's record
        writer.check_output_path(out, protect=protect, directory_hint="")
    text = render_openmetrics(load_run(results_file))
    if out:  # atomic; a path that cannot be written is one line too
        writer.write_report_file(out, text, protect=protect, directory_hint="")
    else:
        click.echo(text, nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
