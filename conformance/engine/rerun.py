"""`run --rerun-failed RESULTS.json`: run again only what did not pass, and merge the results.

The cases to re-run are the previous results' fail, error, inconclusive, not-run and not-measured
entries (not those the previous run's own options left out: re-running them would widen its scope).
They run with the previous run's profiles (the same files: a profile that changed since is refused, as
for a bundle), and its recorded scope: target, suites, sites, requirements, defects, backend, waivers,
--strict and --allow-faults, unless the command line gives others. The plugin gets one
`--edge-only REQ@SITE` per case, so nothing else is run.

The merged results.json (written into the new run's output directory, with its reports) is the
previous record with the re-run entries replaced by the new ones, verdict and counts recomputed, and
a note appended to its `reruns` list: the new run id, which entries were re-run, and their statuses
before and after. The new run's own, partial record is kept next to it as rerun-results.json.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from pathlib import Path

from ..model import results as R
from ..model.errors import ConfigError
from ..model.verdict import left_out_by_scope
from ..model.recompute import is_fleet_entry, refresh_fleets
from ..model.target import is_emulated_ref
from ..model.atomicfile import write_atomic
from .record import RESULTS_MODE
from .runner import RunOptions, RunOutcome
from .runner import run as run_profiles

RERUN_STATUSES = ("fail", "error", "inconclusive", "not-run", "not-measured")
PARTIAL_NAME = "rerun-results.json"
# RunOptions fields a rerun takes from the previous run unless the command line gives them
INHERITED = ("profiles", "target", "inventory", "suites", "sites", "requirements", "strict", "waivers", "defects",
             "backend", "allow_faults", "deploy_probes", "load_workers", "load_remote_workers", "load_master", "shard",
             "duration_scale")


@dataclass
class RerunPlan:
    previous: dict
    only: list[str]  # REQ@SITE
    options: RunOptions


def select(results: dict) -> list[str]:
    """The REQ@SITE of every result that did not pass (fail, error, inconclusive, not-run), in order."""
    out = []
    for r in results.get("requirements") or []:
        if is_fleet_entry(r):
            continue  # a quorum's aggregate: its sites are re-run, and it is recomputed from them
        if R.is_unsampled(r):
            continue  # outside a sampled quorum's sample: never measured, by design (model/sampling.py)
        if r.get("status") in RERUN_STATUSES and not _left_out_by_scope(r):
            case = f"{r.get('id')}@{r.get('site')}"
            if case not in out:
                out.append(case)
    return out


def _left_out_by_scope(entry: dict) -> bool:
    return entry.get("status") == "not-measured" and left_out_by_scope(entry.get("ended"))


def _previous_target(prev: dict, source: str) -> str:
    target = prev.get("target") or {}
    if target.get("kind") == "emulated":
        topology = target.get("topology") or (target.get("emulation") or {}).get("topology")
        return f"emulated:{topology}" if topology else "emulated"
    path = target.get("path") or (prev.get("options") or {}).get("target")
    if not path or is_emulated_ref(str(path)):
        return str(path or "emulated")
    if not Path(path).is_file():
        raise ConfigError(source, None, "target.path", f"the previous run's target file {path} is not here "
                                                       "(run from the directory it was started in, or give --target)")
    return str(path)


def plan(results_path: str | Path, opts: RunOptions, given: AbstractSet[str] = frozenset()) -> RerunPlan:
    """What to re-run and with which options; `given` names the RunOptions fields the user set."""
    from ..certify.bundle import locate_profile
    from ..report.writer import load_results

    source = str(results_path)
    prev = load_results(results_path, legacy=False)
    only = select(prev)
    old = prev.get("options") or {}
    changes: dict = {}
    if "profiles" not in given:
        refs = []
        for entry in prev.get("profiles") or []:
            _, files = locate_profile(entry, Path(results_path).parent, purpose="re-run")
            refs.append(str(files[0].path))
        if not refs:
            raise ConfigError(source, None, "profiles", "the previous results name no profile")
        changes["profiles"] = refs
    previous_inventory = (prev.get("target") or {}).get("inventory")
    if "target" not in given and "inventory" not in given and previous_inventory:
        if not Path(previous_inventory).is_file():
            raise ConfigError(source, None, "target.inventory", f"the previous run's inventory {previous_inventory} "
                                                                "is not here (give --inventory or --target)")
        changes["inventory"] = Path(previous_inventory)
    elif "target" not in given and "inventory" not in given:
        changes["target"] = _previous_target(prev, source)
    if "suites" not in given:
        changes["suites"] = list(old.get("suites") or [])
    if "sites" not in given:
        changes["sites"] = list(old.get("sites") or [])
    if "requirements" not in given:
        changes["requirements"] = list(old.get("requirements") or [])
    if "strict" not in given:
        changes["strict"] = bool(old.get("strict"))
    if "allow_faults" not in given:
        changes["allow_faults"] = bool(old.get("allow_faults"))
    if "deploy_probes" not in given:
        changes["deploy_probes"] = bool(old.get("deploy_probes"))
    if "backend" not in given and old.get("backend"):
        changes["backend"] = str(old["backend"])
    if "waivers" not in given and old.get("waivers"):
        if not Path(old["waivers"]).is_file():
            raise ConfigError(source, None, "options.waivers", f"the previous run's waivers file {old['waivers']} "
                                                               "is not here (give --waivers)")
        changes["waivers"] = Path(old["waivers"])
    previous_scale = float(old.get("duration_scale") or 1)
    if "duration_scale" in given:  # merged results keep one set of options: the outages must not differ
        from ..model.scaling import parse_factor

        try:
            asked = parse_factor(str(opts.duration_scale)) if opts.duration_scale else 1.0
        except ValueError as exc:
            raise ConfigError(None, None, "--duration-scale", str(exc)) from None
        if abs(asked - previous_scale) > 1e-12:
            raise ConfigError(None, None, "--duration-scale",
                              f"{asked:g} differs from the previous run's {previous_scale:g}: a re-run is merged "
                              "into that run's results, whose outages must be as long; start a new run instead")
    elif previous_scale != 1:  # the same outage lengths
        changes["duration_scale"] = str(old["duration_scale"])
    shard = (prev.get("scope") or {}).get("shard") or {}  # a shard's re-run stays that shard
    if "shard" not in given and shard.get("index"):
        changes["shard"] = f"{shard['index']}/{shard['count']}"
    spread = (prev.get("scope") or {}).get("load") or {}  # the same Locust workers (engine/loadspread.py)
    if "load_workers" not in given and spread.get("workers"):
        changes["load_workers"] = int(spread["workers"])
    if not {"load_remote_workers", "load_master"} & set(given) and spread.get("remote_workers"):
        changes["load_remote_workers"] = int(spread["remote_workers"])
        changes["load_master"] = f"{spread['master_bind_host']}:{spread['master_port']}"
    if "defects" not in given and str(changes.get("target", opts.target)).startswith("emulated"):
        changes["defects"] = list(old.get("defects") or [])
    new_opts = replace(opts, **changes)
    new_opts = replace(new_opts, extra_pytest_args=list(new_opts.extra_pytest_args)
                       + [arg for case in only for arg in ("--edge-only", case)])
    return RerunPlan(prev, only, new_opts)


def _key(r: dict) -> tuple:
    return (r.get("profile"), r.get("id"), r.get("site"))


def merge(previous: dict, new: dict, only: list[str]) -> dict:
    """The previous record with the re-run entries replaced by the new run's, and a `reruns` note."""
    merged = copy.deepcopy(previous)
    fresh = {_key(r): r for r in new.get("requirements") or []}
    wanted = set(only)
    entries = []
    reqs = merged.get("requirements") or []
    for i, r in enumerate(reqs):
        k = _key(r)
        if f"{r.get('id')}@{r.get('site')}" in wanted and k in fresh:
            entries.append({"profile": k[0], "id": k[1], "site": k[2], "before": r.get("status"),
                            "after": fresh[k].get("status")})
            reqs[i] = copy.deepcopy(fresh[k])
    known = {_key(r) for r in reqs}
    for k, r in fresh.items():  # planned by the new run only (the profiles were overridden)
        if k not in known and not is_fleet_entry(r):
            reqs.append(copy.deepcopy(r))
            entries.append({"profile": k[0], "id": k[1], "site": k[2], "before": None, "after": r.get("status")})
    merged["requirements"] = reqs
    rerun_keys = {(e["id"], e["site"]) for e in entries}
    waivers = merged.setdefault("waivers", {"applied": [], "expired": []})
    waivers["applied"] = [w for w in waivers.get("applied") or [] if (w.get("id"), w.get("site")) not in rerun_keys] \
        + list((new.get("waivers") or {}).get("applied") or [])
    expired = list(waivers.get("expired") or [])
    for w in (new.get("waivers") or {}).get("expired") or []:
        if w not in expired:
            expired.append(w)
    waivers["expired"] = expired
    note = {"run_id": new.get("run_id"), "of": previous.get("run_id"), "started": new.get("started"),
            "finished": new.get("finished"), "state": new.get("state"), "entries": entries,
            "harness": new.get("harness"), "host": new.get("host"), "options": new.get("options")}
    if new.get("target") != previous.get("target"):
        note["target"] = new.get("target")
    if new.get("profiles") != previous.get("profiles"):
        note["profiles"] = new.get("profiles")
    merged["reruns"] = list(previous.get("reruns") or []) + [note]
    merged["run_id"] = new.get("run_id")
    merged["finished"] = new.get("finished")
    merged["state"] = new.get("state")
    refresh_fleets(reqs)
    strict = bool((merged.get("options") or {}).get("strict"))
    merged["counts"] = R.counts(reqs)
    merged["verdict"] = R.run_verdict(reqs, strict)
    return merged


def run_rerun(results_path: str | Path, opts: RunOptions, given: AbstractSet[str] = frozenset()) -> RunOutcome:
    """Plan, run the failed cases, merge; results.json in the new output directory is the merged record."""
    p = plan(results_path, opts, given)
    if not p.only:
        print(f"edge-conformance: nothing to re-run: no result in {results_path} failed, errored, was "
              "inconclusive or not run", file=sys.stderr)
        verdict = p.previous.get("verdict", R.CONFORMANT)
        return RunOutcome(R.exit_code(verdict), verdict, Path(results_path).parent, p.previous)
    outcome = run_profiles(p.options)
    if outcome.results is None:
        return outcome
    merged = merge(p.previous, outcome.results, p.only)
    write_merged(outcome.out_dir, outcome.results, merged)
    return RunOutcome(R.exit_code(merged["verdict"]), merged["verdict"], outcome.out_dir, merged)


def write_merged(out_dir: Path, partial: dict, merged: dict) -> None:
    from ..report.writer import write_reports

    write_atomic(out_dir / PARTIAL_NAME, json.dumps(partial, indent=2) + "\n", mode=RESULTS_MODE)
    write_atomic(out_dir / "results.json", json.dumps(merged, indent=2) + "\n", mode=RESULTS_MODE)
    write_reports(merged, out_dir)
