"""The mutation campaign: plan, run and judge every shipped profile on its reference emulated topology,
healthy and with the defects its must requirements should catch (tests/profiles/mutations.py).

Planning is pure (no process is started) so a fast test can check that every must requirement is either
placed on a defect run or a recorded gap. Running uses the real CLI, `edge-conformance run`, in
subprocesses, a few at a time. Each run gets narrowed copies of the shipped profiles (a profile file that
`extends` the shipped one): only the requirements the run is about, each on the site that carries its
defect; everything else disabled. The requirement text (check, params, expectation) is the shipped one.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from conformance.model import expect as E
from conformance.model.profile import Profile, Requirement, list_profiles, load_profile
from conformance.model.recompute import measured_of
from tests.helpers.cli import CLI, run_command

from .mutations import EXPECTED_SKIPS, FULL_LENGTH, PLANS, DefectRun, Mutation, gap_reason, mutations_for

DEFAULT_TOPOLOGY = "retail"  # what `run` brings up for a profile without a topology (engine/lifecycle.py)
LANES = 2  # one lane of healthy runs + one of defect runs: 2 cores
RUN_TIMEOUT = 420.0


def reference_topology(p: Profile) -> str:
    return p.topology or DEFAULT_TOPOLOGY


def shipped_profiles() -> list[Profile]:
    """The shipped profiles but the certification-length ones (mutations.FULL_LENGTH: hours per run)."""
    return [p for p in (load_profile(str(path)) for path in list_profiles()) if p.id not in FULL_LENGTH]


def own_musts(p: Profile) -> list[Requirement]:
    """Must requirements a profile defines or overrides itself (inherited unchanged ones belong to the parent)."""
    return [r for r in p.requirements if r.level == "must" and r.profile == p.id]


def _demands_every_site(r: Requirement) -> bool:
    """A fleet check whose expectation tolerates no missing site: one broken site is enough to fail it."""
    for c in r.expect.comparisons:
        if c.metric.endswith("_ratio") and c.op in (">=", ">") and c.unit == "%" and c.value >= 100:
            return True
    return False


# ---------------------------------------------------------------------------------------------
# planning


@dataclass
class Placement:
    profile: str
    requirement: str
    mutation: Mutation
    run: str
    site: str  # the site whose verdict shows it: the edge site, "central" (fleet checks) or "fleet" (quorum)


@dataclass
class RunSpec:
    name: str
    topology: str
    profiles: list[Profile]
    keep: dict[str, dict[str, list[str] | None]]  # profile id -> requirement id -> applies_to (None: as is)
    defects: list[str] = field(default_factory=list)
    sites: list[str] | None = None
    healthy: bool = False
    quiet: bool = False  # run alone (no other run at the same time)
    backend: str = "local"  # run --backend


@dataclass
class CampaignPlan:
    profiles: list[Profile]
    runs: dict[str, RunSpec]
    placements: list[Placement]
    gaps: dict[tuple[str, str], str]  # (profile, requirement) -> why no defect can catch it
    unplaced: list[str]  # problems: a mutation the plan has no run for


def plan_campaign(profiles: list[Profile] | None = None) -> CampaignPlan:
    profiles = profiles or shipped_profiles()
    by_topology: dict[str, list[Profile]] = defaultdict(list)
    for p in sorted(profiles, key=lambda p: (p.id != "edge-baseline", p.id)):
        by_topology[reference_topology(p)].append(p)
    runs: dict[str, RunSpec] = {}
    placements: list[Placement] = []
    gaps: dict[tuple[str, str], str] = {}
    unplaced: list[str] = []
    for topology, group in by_topology.items():
        plan = PLANS.get(topology)
        if plan is None:
            unplaced.append(f"no mutation plan for topology {topology} ({', '.join(p.id for p in group)})")
            continue
        # healthy: the first profile with everything it inherits, the others with their own musts
        keep: dict[str, dict[str, list[str] | None]] = {}
        for i, p in enumerate(group):
            reqs = [r for r in p.requirements if r.level == "must"] if i == 0 else own_musts(p)
            if reqs:
                keep[p.id] = {r.id: None for r in reqs}
        runs[f"{topology}-healthy"] = RunSpec(f"{topology}-healthy", topology, group, keep,
                                              sites=plan.healthy_sites, healthy=True, quiet=plan.quiet,
                                              backend=plan.backend)
        specs = {dr.name: RunSpec(dr.name, topology, group, {}, _defect_args(dr), dr.sites, backend=plan.backend)
                 for dr in plan.runs}
        for p in group:
            for r in own_musts(p):
                found = mutations_for(r)
                if not found:
                    gaps[(p.id, r.id)] = gap_reason(r)
                    continue
                for m in found:
                    placed = _place(p, r, m, plan.runs, specs)
                    if placed is None:
                        unplaced.append(f"{topology}: no run has defect {m.defect} where {p.id} {r.id} can see it")
                    else:
                        placements.append(placed)
        runs.update({name: spec for name, spec in specs.items() if spec.keep})
    return CampaignPlan(profiles, runs, placements, gaps, unplaced)


def _defect_args(dr: DefectRun) -> list[str]:
    return [f"{site}:{d}" for site, ds in dr.defects.items() for d in ds]


def _place(p: Profile, r: Requirement, m: Mutation, runs: list[DefectRun], specs: dict[str, RunSpec]) -> Placement | None:
    fleet_check = r.check.startswith("fleet.")
    need_everywhere = r.quorum is not None or (fleet_check and not _demands_every_site(r))
    for dr in runs:
        spec = specs[dr.name]
        if need_everywhere:
            if not dr.everywhere(m.defect):
                continue
            spec.keep.setdefault(p.id, {})[r.id] = None
            return Placement(p.id, r.id, m, dr.name, "central" if fleet_check else "fleet")
        sites = dr.sites_with(m.defect)
        if not sites and dr.everywhere(m.defect):
            sites = [s for s in (dr.sites or []) if s != "central"][:1] or (["central"] if fleet_check else [])
        if not sites:
            continue
        if fleet_check:
            spec.keep.setdefault(p.id, {})[r.id] = None
            return Placement(p.id, r.id, m, dr.name, "central")
        narrowed = spec.keep.setdefault(p.id, {}).get(r.id) or []
        if sites[0] not in narrowed:
            narrowed.append(sites[0])
        spec.keep[p.id][r.id] = narrowed
        return Placement(p.id, r.id, m, dr.name, sites[0])
    return None


# ---------------------------------------------------------------------------------------------
# running


def derived_profile(directory: Path, run: str, parent: Profile, keep: dict[str, list[str] | None],
                    source: Path) -> Path:
    """A profile extending the shipped `parent`: the kept requirements (narrowed to sites where given), the
    rest disabled. Its id is unique per run, so two narrowed profiles never share an id."""
    reqs: list[dict[str, Any]] = []
    for r in parent.requirements:
        if r.id not in keep:
            reqs.append({"id": r.id, "disabled": True})
        elif keep[r.id]:
            reqs.append({"id": r.id, "applies_to": list(keep[r.id])})
    doc = {"id": f"{parent.id}--{run}", "version": "0", "title": f"{parent.id}, narrowed for {run}",
           "extends": str(source), "requirements": reqs}
    path = directory / f"{parent.id}--{run}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _shipped_path(p: Profile) -> Path:
    from conformance.model.paths import profiles_dir

    return profiles_dir() / f"{p.id}.yaml"


@dataclass
class RunResult:
    spec: RunSpec
    code: int
    results: dict
    output: str
    seconds: float
    derived: dict[str, str]  # shipped profile id -> derived profile id
    reruns: list[str] = field(default_factory=list)  # REQ@SITE re-run once (healthy runs only)

    def entries(self, profile: str, requirement: str) -> list[dict]:
        return [e for e in self.results.get("requirements", [])
                if e["id"] == requirement and e.get("profile") in (profile, self.derived.get(profile))]


def execute(spec: RunSpec, root: Path) -> RunResult:
    work = root / spec.name
    work.mkdir(parents=True, exist_ok=True)
    args = ["run", "--target", f"emulated:{spec.topology}"]
    if spec.backend != "local":
        args += ["--backend", spec.backend]
    derived: dict[str, str] = {}
    for p in spec.profiles:
        if p.id not in spec.keep:
            continue
        path = derived_profile(work, spec.name, p, spec.keep[p.id], _shipped_path(p))
        derived[p.id] = f"{p.id}--{spec.name}"
        args += ["--profile", str(path)]
    sites = spec.sites
    if sites is None and not spec.healthy:
        narrowed = {s for reqs in spec.keep.values() for applies in reqs.values() for s in (applies or [])}
        sites = sorted(narrowed | {"central"}) if narrowed else None
    for s in sites or []:
        args += ["--site", s]
    for d in spec.defects:
        args += ["--defect", d]
    started = time.monotonic()
    code, results, output = _cli([*args, "--out", str(work / "out")], work)
    reruns: list[str] = []
    if spec.healthy and results and _not_passed(results):
        # A healthy run whose must did not pass gets one re-run of what did not pass (the product's own
        # `run --rerun-failed`): a busy machine can fail or invalidate a latency probe. The table says so.
        reruns = _not_passed(results)
        code2, merged, output2 = _cli(["run", "--rerun-failed", str(work / "out" / "results.json"),
                                       "--out", str(work / "out-rerun")], work)
        output += f"\n--- re-run of {', '.join(reruns)} ---\n{output2}"
        if merged:
            code, results = code2, merged
    (work / "output.txt").write_text(output)
    return RunResult(spec, code, results, output, time.monotonic() - started, derived, reruns)


def _not_passed(results: dict) -> list[str]:
    """REQ@SITE of the musts that count toward the verdict and did not pass (a quorum's sites only when
    the quorum itself did not pass)."""
    from conformance.model.recompute import is_fleet_entry

    entries = [e for e in results.get("requirements", []) if not left_out(e)]
    open_fleets = {(e.get("profile"), e["id"]) for e in entries
                   if is_fleet_entry(e) and e.get("status") not in DONE}
    return [f"{e['id']}@{e['site']}" for e in entries
            if e.get("level") == "must" and not is_fleet_entry(e) and e.get("status") not in DONE
            and (not e.get("fleet_member") or (e.get("profile"), e["id"]) in open_fleets)]


DONE = ("pass", "not-applicable")  # a must that needs no re-run


def left_out(entry: dict) -> bool:
    """Left out by the campaign's own narrowing (--site): not a result of the run at all."""
    from conformance.model.verdict import left_out_by_scope

    return left_out_by_scope(entry.get("ended"))


def _cli(args: list[str], cwd: Path) -> tuple[int, dict, str]:
    out = Path(args[args.index("--out") + 1])
    code, output = run_command([*CLI, *args], timeout=RUN_TIMEOUT, cwd=cwd, timeout_fails=False, grace=30)
    path = out / "results.json"
    return code, (json.loads(path.read_text()) if path.exists() else {}), output


class Campaign:
    """Runs every run of a plan: the quiet ones alone first, then the rest in a small pool. Results are
    awaited by name."""

    def __init__(self, plan: CampaignPlan, root: Path, names: set[str] | None = None, lanes: int = LANES):
        self.plan = plan
        self.root = root
        wanted = [n for n in _order(plan) if names is None or n in names]
        self.futures: dict[str, Future] = {n: Future() for n in wanted}
        self._stop = threading.Event()
        self._driver = threading.Thread(target=self._drive, args=(wanted, lanes), name="mutation-campaign",
                                        daemon=True)
        self._driver.start()

    def _one(self, name: str) -> None:
        future = self.futures[name]
        if self._stop.is_set() or not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(execute(self.plan.runs[name], self.root))
        except BaseException as exc:  # noqa: BLE001 - handed to the test that waits for it
            future.set_exception(exc)

    def _drive(self, wanted: list[str], lanes: int) -> None:
        """Quiet runs alone; then one lane runs the healthy runs one after the other (their latency musts
        must not share two cores with another healthy run's probes and load) while the other lanes run
        the defect runs, which mostly wait on faults."""
        runs = self.plan.runs
        for name in [n for n in wanted if runs[n].quiet]:
            self._one(name)
        healthy = [n for n in wanted if runs[n].healthy and not runs[n].quiet]
        lane = threading.Thread(target=lambda: [self._one(n) for n in healthy], name="mutation-healthy")
        lane.start()
        with ThreadPoolExecutor(max_workers=max(1, lanes - 1), thread_name_prefix="mutation-run") as pool:
            for name in wanted:
                if not runs[name].healthy and not runs[name].quiet:
                    pool.submit(self._one, name)
        lane.join()

    def get(self, name: str) -> RunResult:
        return self.futures[name].result(timeout=RUN_TIMEOUT * 6)

    def close(self) -> None:
        self._stop.set()
        for future in self.futures.values():
            future.cancel()
        self._driver.join(timeout=RUN_TIMEOUT + 60)


# longest first, so the lanes finish together (measured on the dev VM)
_WEIGHT = {"fleet-50-healthy": 90, "retail-healthy": 150, "satcom-healthy": 110, "mec-healthy": 100,
           "iot-healthy": 80, "retail-a": 90, "satcom-a": 60, "satcom-b": 60, "satcom-c": 60, "fleet-a": 70,
           "mec-a": 60, "iot-a": 50, "retail-b": 45, "urllc-healthy": 40, "urllc-a": 30}


def _order(plan: CampaignPlan) -> list[str]:
    return sorted(plan.runs, key=lambda n: -_WEIGHT.get(n, 50))


# ---------------------------------------------------------------------------------------------
# judging


@dataclass
class Verdict:
    profile: str
    requirement: str
    ok: bool
    text: str


def _failed_metrics(entry: dict, r: Requirement) -> dict[str, str]:
    outcomes = E.evaluate(r.expect, measured_of(entry), r.metric_dimensions)
    return {o.comparison.metric: o.describe() for o in outcomes if o.ok is False}


def judge_healthy(run: RunResult, profiles: dict[str, Profile]) -> list[Verdict]:
    verdicts = []
    for pid, reqs in run.spec.keep.items():
        p = profiles[pid]
        for rid in reqs:
            r = p.requirement(rid)
            entries = [e for e in run.entries(r.profile, rid) if not e.get("fleet_member") and not left_out(e)]
            if not entries:
                verdicts.append(Verdict(pid, rid, False, f"{pid} {rid}: no result"))
                continue
            bad = [e for e in entries if e["status"] not in DONE
                   and not (e["status"] == "not-measured" and r.check in EXPECTED_SKIPS)]
            statuses = sorted({e["status"] for e in entries})
            text = "/".join(statuses)
            if any(case.split("@")[0] == rid for case in run.reruns):
                text += " (re-run once)"
            verdicts.append(Verdict(pid, rid, not bad, text if not bad else
                                    "; ".join(f"{e['site']} {e['status']}: {e['message'][:300]}" for e in bad)))
    return verdicts


def judge_placement(run: RunResult, pl: Placement, r: Requirement) -> Verdict:
    entries = {e["site"]: e for e in run.entries(pl.profile, pl.requirement)}
    entry = entries.get(pl.site)
    if entry is None:
        return Verdict(pl.profile, pl.requirement, False, f"no result on {pl.site} (sites: {sorted(entries)})")
    if entry["status"] != "fail":
        return Verdict(pl.profile, pl.requirement, False, f"{pl.site} {entry['status']}: {entry['message'][:300]}")
    members = [e for e in entries.values() if e.get("fleet_member")] if pl.site == "fleet" else [entry]
    broken = {}
    for e in members:
        broken.update({m: t for m, t in _failed_metrics(e, r).items() if m in pl.mutation.metrics})
    if not broken:
        return Verdict(pl.profile, pl.requirement, False,
                       f"{pl.site} failed, but not on {sorted(pl.mutation.metrics)}: {entry['message'][:300]}")
    first = sorted(broken)[0]
    return Verdict(pl.profile, pl.requirement, True, broken[first])


# ---------------------------------------------------------------------------------------------
# the table


def table(plan: CampaignPlan, healthy: dict[str, Verdict], caught: dict[tuple[str, str, str], Verdict],
          seconds: dict[str, float]) -> str:
    """Markdown: requirement -> healthy verdict -> defect -> caught, for every must of every profile."""
    by_req: dict[tuple[str, str], list[Placement]] = defaultdict(list)
    for pl in plan.placements:
        by_req[(pl.profile, pl.requirement)].append(pl)
    lines = ["| profile | requirement | check | healthy | defect (site, run) | caught |",
             "|---|---|---|---|---|---|"]
    for p in sorted(plan.profiles, key=lambda p: p.id):
        for r in own_musts(p):
            h = healthy.get(f"{p.id}/{r.id}")
            htext = "not run" if h is None else (h.text if h.ok else f"**FAIL** {h.text[:80]}")
            pls = by_req.get((p.id, r.id), [])
            if not pls:
                lines.append(f"| {p.id} | {r.id} | {r.check} | {htext} | none | **not caught**: "
                             f"{plan.gaps.get((p.id, r.id), '?')} |")
                continue
            for pl in pls:
                v = caught.get((p.id, r.id, pl.mutation.defect))
                ctext = "not run" if v is None else (f"yes: {v.text}" if v.ok else f"**NO**: {v.text[:120]}")
                lines.append(f"| {p.id} | {r.id} | {r.check} | {htext} | {pl.mutation.defect} "
                             f"({pl.site}, {pl.run}) | {ctext.replace('|', '/')} |")
    total = sum(seconds.values())
    lines.append("")
    lines.append(f"{len(seconds)} runs, {total:.0f} s of run time in total: "
                 + ", ".join(f"{n} {s:.0f} s" for n, s in sorted(seconds.items())))
    return "\n".join(lines) + "\n"
