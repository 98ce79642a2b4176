"""Planning a run: which (requirement, site) cases it runs, which its own options leave out, the
requirements no site of the target can take, and its scope.

Plain functions over the loaded profiles, the target and the run's selection (no pytest here: the plugin
calls them with what it read from pytest's options, tests call them directly). Every entry planned is
decided by the one verdict rule (model/verdict.py) from how it ended so far: `not-run` for a case the run
will measure, `not-measured` for one it leaves out, so a narrowed run is never conformant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..model import catalog
from ..model import results as R
from ..model import verdict as V
from ..model.errors import ConfigError, did_you_mean
from ..model.profile import Profile, Requirement
from ..model.recompute import fleet_expect, sampling_record
from ..model.sampling import not_in_sample_reason, sample_of
from ..model.target import Site, Target, is_emulated_ref

NO_SITE = "(none)"  # the site of a requirement that applies to no site of the target


@dataclass
class Case:
    requirement: Requirement
    site: Site

    @property
    def id(self) -> str:
        return f"{self.requirement.id}@{self.site.name}"


@dataclass
class Selection:
    """What the run's options select and change, as given (the plugin reads them from pytest)."""

    requirements: list[str] = field(default_factory=list)  # --edge-requirement
    suites: list[str] = field(default_factory=list)  # --edge-suite
    sites: list[str] = field(default_factory=list)  # --edge-site
    only: list[str] = field(default_factory=list)  # --edge-only REQ@SITE (reruns)
    keyword: str = ""  # -k
    markers: str = ""  # -m
    deselect: list[str] = field(default_factory=list)
    last_failed: bool = False
    collect_only: bool = False
    tests: list[str] = field(default_factory=list)  # test paths beyond the shipped suites
    defects: list[str] = field(default_factory=list)
    backend: str = "local"
    allow_faults: bool = False
    deploy_probes: bool = False
    strict: bool = False
    waivers: str | None = None
    shard: tuple[int, int] | None = None  # --shard K/N (engine/shard.py)
    load: dict = field(default_factory=dict)  # --load-workers ... as LoadConfig fields (engine/loadspread.py)
    workers: int = 0  # -n N: pytest-xdist workers (engine/parallel.py); 0 without
    duration_scale: float = 1.0  # --duration-scale (model/scaling.py): every outage's length multiplied
    cli: bool = False  # started by `edge-conformance run`: options are named as it names them


@dataclass
class Plan:
    cases: dict[str, list[Case]]  # check -> the cases this run measures, in profile order
    entries: list[dict]  # every results.json entry, in profile order: not-run, or not-measured if left out

    def cases_for(self, check: str) -> list[Case]:
        return self.cases.get(check, [])


# ------------------------------------------------------------------------------------------- scope


def run_scope(sel: Selection, target: Target, target_ref: str) -> dict:
    """What narrowed or changed this run, for results.json "scope" and the first lines of every report.

    `narrowed_by` lists, in words, each option that leaves a requirement out of the run (the verdict of a
    narrowed run can only be incomplete or non-conformant); `changed_by` each that changes the
    deployment or the rules (defects, --strict, waivers, faults allowed)."""
    emulation = target.emulation or target.lab or {}  # an SSH lab is an emulated deployment too
    scope: dict[str, Any] = {
        "cli": sel.cli,
        "requirements": list(sel.requirements), "suites": list(sel.suites),
        "sites": list(sel.sites), "only": list(sel.only),
        "keyword": sel.keyword or "", "markers": sel.markers or "",
        "deselect": list(sel.deselect),
        "last_failed": bool(sel.last_failed),
        "collect_only": bool(sel.collect_only),
        "tests": list(sel.tests),
        "defects": list(sel.defects),
        "backend": emulation.get("backend") or (sel.backend if is_emulated_ref(target_ref) else None),
        "topology": emulation.get("topology"),
        "emulated": target.kind == "emulated" or is_emulated_ref(target_ref),
        "allow_faults": bool(sel.allow_faults),
        "probes": list(target.probes_deployed),
        "strict": bool(sel.strict),
        "waivers": sel.waivers,
        "duration_scale": sel.duration_scale,
    }
    if sel.shard is not None:  # a deterministic share of the sites (engine/shard.py)
        from .shard import shard_scope

        scope["shard"] = shard_scope([site.name for site in target.sites], *sel.shard)
    # Our own selectors narrow the run by being given; pytest's (-k, -m, --deselect, --lf, test paths)
    # only when they leave out a requirement's test: see narrowed_by_pytest.
    narrowed = [f"{flag_} {' '.join(map(str, scope[key]))}" for key, flag_ in
                (("requirements", flag(scope, "requirement")), ("suites", flag(scope, "suite")),
                 ("sites", flag(scope, "site")),
                 ("only", "--edge-only")) if scope[key]]
    if scope["collect_only"]:
        narrowed.append("--collect-only")
    if scope.get("shard"):
        narrowed.append(f"{flag(scope, 'shard')} {scope['shard']['index']}/{scope['shard']['count']}")
    changed = [f"--defect {d}" for d in scope["defects"]]
    if scope["strict"]:
        changed.append("--strict")
    if scope["waivers"]:
        changed.append(f"--waivers {scope['waivers']}")
    if scope["allow_faults"]:
        changed.append("--allow-faults")
    if sel.duration_scale != 1:  # the outages ran longer or shorter than the profiles say
        from ..model.scaling import describe

        factor = sel.duration_scale
        changed.append(f"{flag(scope, 'duration-scale')} {factor:g} "
                       f"(every outage {describe(factor)} its profile's length)")
    if sel.deploy_probes:
        changed.append(f"{flag(scope, 'deploy-probes')} ({', '.join(scope['probes'])})")
    if sel.load:  # changes what generates the load: recorded, and named in every report
        from .loadspread import changed_by as load_changed_by

        scope["load"] = dict(sel.load)
        changed += load_changed_by(sel.load, flag(scope, "load-"))
    if sel.workers:  # how the run was executed: recorded and shown, though the verdicts are a serial run's
        from .parallel import changed_by as parallel_changed_by

        scope["parallel"] = {"workers": sel.workers, "dist": "loadgroup"}
        changed.append(parallel_changed_by(sel.workers))
    scope["narrowed_by"], scope["changed_by"] = narrowed, changed
    scope["full"] = not narrowed
    return scope


def record_options(scope: dict, target_ref: str) -> dict:
    """results.json "options": how the run was asked for (the scope says what that did to it)."""
    options = {"strict": scope["strict"], "suites": scope["suites"], "sites": scope["sites"],
               "waivers": scope["waivers"], "target": target_ref, "defects": scope["defects"],
               "backend": scope["backend"], "allow_faults": scope["allow_faults"]}
    if scope.get("probes"):
        options["deploy_probes"] = True
    if scope.get("duration_scale", 1) != 1:
        options["duration_scale"] = scope["duration_scale"]
    for key in ("only", "requirements", "keyword", "markers", "deselect", "tests"):
        if scope.get(key):
            options[key] = scope[key]
    return options


def flag(scope: dict, name: str) -> str:
    """The option as the user typed it: `--site` under `edge-conformance run`, `--edge-site` under pytest."""
    return f"--{name}" if scope.get("cli") else f"--edge-{name}"


def narrowed_by_pytest(scope: dict) -> str:
    """Which of pytest's own selectors left a requirement's test out, in words."""
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


def narrow(scope: dict, why: str) -> bool:
    """Add `why` to what narrowed the run; False when it was already there."""
    if why in scope["narrowed_by"]:
        return False
    scope["narrowed_by"].append(why)
    scope["full"] = False
    return True


# -------------------------------------------------------------------------------------------- plan


SHARD_REMEDY = "merge it with the other shards' results (edge-conformance merge)"


def make_plan(profiles: list[Profile], target: Target, scope: dict) -> Plan:
    """Every (requirement, site) the profiles ask for, in profile order, starts as not-run; what the
    run's own options (scope: requirements, sites, only) leave out starts (and stays) not-measured.
    A --edge-requirement or --edge-only that names nothing here is a ConfigError."""
    requirement_filter, only = set(scope["requirements"]), set(scope["only"])
    check_requirement_filter(profiles, requirement_filter)
    known = {f"{r.id}@{s.name}" for p in profiles for r in p.requirements for s in target.sites
             if s.matches(r.applies_to)}
    unknown = sorted(only - known)
    if unknown:
        raise ConfigError(None, None, "--edge-only", f"no requirement@site {', '.join(unknown)} in these profiles "
                                                     "and this target")
    plan = Plan(cases={}, entries=[])
    for profile in profiles:
        for req in profile.requirements:
            sites = sites_for(req, target.sites)
            if not sites:
                plan.entries.append(no_site_entry(req))
                continue
            # A sampled quorum measures only its deterministic sample (model/sampling.py), whatever the
            # options: the other sites are planned not-run, marked `sampled: false`, and stay so.
            sample = set(sample_of(req.id, req.sample, [s.name for s in sites])) if req.sample else None
            for site in sites:
                case = Case(req, site)
                if sample is not None and site.name not in sample:
                    plan.entries.append(not_sampled_entry(req, site, len(sample), len(sites)))
                    continue
                why = left_out_by(case, scope)
                if why:
                    remedy = SHARD_REMEDY if "shard" in why.split(" ")[0] else f"run it without {why.split(' ')[0]}"
                    item = entry(req, site, V.Ended("not-measured", f"left out of this run ({why})", remedy))
                else:
                    item = entry(req, site, V.Ended("not-run", "not run"))
                    plan.cases.setdefault(req.check, []).append(case)
                if req.quorum is not None:
                    item["fleet_member"] = True
                if sample is not None:
                    item["sampled"] = True
                plan.entries.append(item)
            if req.quorum is not None:
                plan.entries.append(fleet_entry(req, len(sites)))
    return plan


def sites_for(req: Requirement, sites: list[Site]) -> list[Site]:
    """The sites a requirement applies to (its applies_to names roles or sites; none: every site)."""
    return [site for site in sites if site.matches(req.applies_to)]


def planned_keys(profiles: list[Profile], sites: list[Site]) -> list[tuple[str, str, str]]:
    """(profile, requirement id, site) of every entry make_plan plans on these sites, in its order,
    whatever the run's options left out (those are planned too, as not-measured): what `verify` expects
    a run's results to hold."""
    keys: list[tuple[str, str, str]] = []
    for profile in profiles:
        for req in profile.requirements:
            names = [site.name for site in sites_for(req, sites)] or [NO_SITE]
            keys += [(req.profile, req.id, name) for name in names]
            if req.quorum is not None and names != [NO_SITE]:
                keys.append((req.profile, req.id, R.FLEET_SITE))
    return keys


def check_requirement_filter(profiles: list[Profile], wanted: set[str]) -> None:
    known = [r.id for p in profiles for r in p.requirements]
    for rid in sorted(wanted - set(known)):
        raise ConfigError(None, None, "--edge-requirement",
                          f'no requirement "{rid}" in {", ".join(p.id for p in profiles)}'
                          f"{did_you_mean(rid, known)}")


def left_out_by(case: Case, scope: dict) -> str:
    """The option that leaves this case out of the run ('' when it runs)."""
    if scope["requirements"] and case.requirement.id not in scope["requirements"]:
        return flag(scope, "requirement") + " " + " ".join(sorted(set(scope["requirements"])))
    if scope["sites"] and not case.site.matches(scope["sites"]):
        return flag(scope, "site") + " " + " ".join(scope["sites"])
    if scope["only"] and case.id not in scope["only"]:
        return "--edge-only (a re-run of what did not pass)"
    shard = scope.get("shard")
    if shard and case.site.name not in shard["sites"]:
        return f"{flag(scope, 'shard')} {shard['index']}/{shard['count']}"
    return ""


def no_site_entry(req: Requirement) -> dict:
    """A requirement for a role the target has no site of: it applies to the deployment (the profile
    asks for it), and nothing here can measure it."""
    roles = " or ".join(req.applies_to) if req.applies_to else "any role"
    site = Site(name=NO_SITE, role=",".join(req.applies_to))
    return entry(req, site, V.Ended("not-measured", f"the target has no site with role or name {roles}",
                                    f"add a {roles} site to the target"))


def fleet_entry(req: Requirement, population: int) -> dict:
    """The aggregate verdict of a quorum requirement (`sites: 95%`) over its per-site results; with a
    sample, its `sampling` record (the figures are filled in from the members, model/recompute.py)."""
    fleet = Site(name=R.FLEET_SITE, role=R.FLEET_SITE)
    item = entry(req, fleet, V.Ended("not-run", "not run"))
    item["quorum"] = req.quorum
    item["expect"] = fleet_expect(req)
    if req.sample is not None:
        item["sampling"] = sampling_record(req.sample, population)
    return item


def not_sampled_entry(req: Requirement, site: Site, sample: int, population: int) -> dict:
    """A site of a sampled quorum that is not in the sample: nothing is measured there (not-run, with
    the reason), and it is no gap in the fleet's verdict (`sampled: false`)."""
    assert req.sample is not None, "only a sampled requirement leaves sites out of its sample"
    item = entry(req, site, V.Ended("not-run", not_in_sample_reason(sample, population, req.sample)))
    item["fleet_member"] = True
    item["sampled"] = False
    return item


def entry(req: Requirement, site: Site, ended: V.Ended) -> dict:
    """A results.json entry for a case that has not measured anything (yet): decided by the rule."""
    d = V.decide(req, site.name, ended=ended)
    return {"id": req.id, "title": req.title, "profile": req.profile, "site": site.name,
            "role": site.role, "level": req.level, "check": req.check, "suite": req.suite,
            "status": d.status, "advisory": d.advisory, "expect": req.expect.text, "measured": {},
            "message": d.message, "ended": ended.to_dict(), "validity": [], "source": req.source_text,
            "cites": [c.to_dict() for c in req.cites], "basis": req.basis.to_dict(),
            "rationale": req.rationale, "duration": 0.0, "params": req.params, "waiver": None, "notes": [],
            "raw": {}, **({"scaled": req.unscaled} if req.unscaled else {})}


# ------------------------------------------------------------------------------- after collection


def not_collected(check: str, scope: dict, collect_errors: list[tuple[str, str]],
                  implemented: set[str]) -> tuple[V.Ended, str | None]:
    """How the cases of a check that no collected test implements end, and what narrowed the run to
    leave it out (None: nothing the user chose; the scope is unchanged)."""
    suite = catalog.suite_of(check)
    # A module that failed to import may be the one implementing it: its suite's if one matches.
    broken = [e for e in collect_errors if f"/{suite}/" in e[0]] or collect_errors
    if broken:
        return V.Ended("error", f"not collected: {broken[0][0]} could not be collected: {broken[0][1]}"), None
    if catalog.get(check) is not None and check not in implemented:
        if scope["tests"] or scope["suites"]:
            why = (flag(scope, "suite") + " " + " ".join(scope["suites"])) if scope["suites"] else \
                "test paths " + " ".join(scope["tests"])
            remedy = f"add {flag(scope, 'suite')} {suite}" if scope["suites"] else f"add --edge-suite {suite}"
            return V.Ended("not-measured", f"suite {suite} left out of this run ({why})", remedy), why
        return V.Ended("not-measured", f"suite {suite} was not collected", f"collect the {suite} suite"), None
    return V.Ended("not-measured", f"no collected test implements check {check}",
                   f"add the test file that implements {check} to the pytest command"), None


def unmatched_waivers(profiles: list[Profile], target: Target, waivers: list) -> list[tuple[Any, str]]:
    """Waivers that match no requirement of these profiles or no site of this target (a typo or a stale
    entry: they would silently waive nothing), each with why."""
    ids = {r.id for p in profiles for r in p.requirements}
    sites = {s.name for s in target.sites}
    unmatched = []
    for w in waivers:
        if w.id not in ids:
            unmatched.append((w, f'no requirement "{w.id}" in {", ".join(p.id for p in profiles)}'
                                 f"{did_you_mean(w.id, ids)}"))
        elif w.site != "all" and w.site not in sites:
            unmatched.append((w, f'no site "{w.site}" in target {target.name}{did_you_mean(w.site, sites)}'))
    return unmatched
