"""A run split over machines: `run --shard K/N` measures a deterministic share of the run, and
`edge-conformance merge` joins the N shards' results.json into one record (ci/README.md, "Splitting a
run over machines").

The unit of a share is the site: the target's sites, in the target's order, are dealt round-robin
(site i goes to shard i mod N + 1), and a shard measures every requirement on its sites. A site's
requirements stay together, so a fault one of them injects on a site never meets another shard's
measurement of that site. (Faults on a central site still reach every shard's stores: shards of a
real target with --allow-faults must not run at the same time; an emulated target is brought up by
each shard on its own machine.) A shard's results are a narrowed run (`--shard K/N` in narrowed_by):
incomplete on their own. The merged record is complete only when every shard 1..N is there, from the
same profiles, the same sites and the same rules; `merge` refuses anything less (exit 2).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from ..model import results as R
from ..model.errors import ConfigError

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
MAX_SHARDS = 1000
REMEDY = "merge this shard's results with the other shards' (edge-conformance merge)"


def parse_shard(text: str, option: str = "--shard") -> tuple[int, int]:
    """K/N, with 1 <= K <= N <= MAX_SHARDS; ConfigError naming the option otherwise."""
    m = _SHARD.match(str(text))
    if not m or not 1 <= int(m[1]) <= int(m[2]) <= MAX_SHARDS:
        raise ConfigError(None, None, option, f'"{text}" is not K/N (shard K of N, 1 <= K <= N <= {MAX_SHARDS}), '
                                              "e.g. 2/4")
    return int(m[1]), int(m[2])


def shard_sites(site_names: list[str], index: int, count: int) -> list[str]:
    """The sites of shard `index` of `count`: the target's sites dealt round-robin, in its order."""
    return [name for i, name in enumerate(site_names) if i % count == index - 1]


def shard_scope(site_names: list[str], index: int, count: int) -> dict[str, Any]:
    return {"index": index, "count": count, "sites": shard_sites(site_names, index, count)}


# ------------------------------------------------------------------------------------------ merge


def _shard_of(results: dict, source: str) -> dict:
    shard = (results.get("scope") or {}).get("shard")
    if not isinstance(shard, dict) or not isinstance(shard.get("index"), int):
        raise ConfigError(source, None, "scope.shard", "not the results of a shard (run --shard K/N)")
    return shard


def _site_roles(results: dict) -> list[tuple[Any, Any]]:
    return [(s.get("name"), s.get("role")) for s in (results.get("target") or {}).get("sites") or []]


def _profiles(results: dict) -> list[tuple[Any, Any, Any]]:
    return [(p.get("id"), p.get("version"), p.get("sha256")) for p in results.get("profiles") or []]


def check_shards(shards: list[tuple[str, dict]]) -> list[tuple[str, dict, dict]]:
    """The shards in index order, once each checked to be one run's: every index 1..N exactly once, the
    same profiles (by digest), sites, rules and shard count. ConfigError names the file and what differs."""
    if not shards:
        raise ConfigError(None, None, "merge", "give the results.json of every shard")
    found = [(source, results, _shard_of(results, source)) for source, results in shards]
    count = found[0][2]["count"]
    first_source, first, _ = found[0]
    by_index: dict[int, str] = {}
    for source, results, shard in found:
        if shard["count"] != count:
            raise ConfigError(source, None, "scope.shard", f"shard {shard['index']}/{shard['count']}, but "
                                                           f"{first_source} is one of {count}")
        if shard["index"] in by_index:
            raise ConfigError(source, None, "scope.shard", f"shard {shard['index']}/{count} given twice "
                                                           f"(also {by_index[shard['index']]})")
        by_index[shard["index"]] = source
        for what, mine, theirs in (("profiles", _profiles(results), _profiles(first)),
                                   ("target sites", _site_roles(results), _site_roles(first)),
                                   ("--strict", bool((results.get("options") or {}).get("strict")),
                                    bool((first.get("options") or {}).get("strict"))),
                                   ("waivers", (results.get("options") or {}).get("waivers"),
                                    (first.get("options") or {}).get("waivers"))):
            if mine != theirs:
                raise ConfigError(source, None, what, f"differ from {first_source}'s: not shards of one run")
    missing = sorted(set(range(1, count + 1)) - set(by_index))
    if missing:
        raise ConfigError(None, None, "merge", f"shard(s) {', '.join(f'{k}/{count}' for k in missing)} missing: "
                                               "a merged run needs every shard")
    return sorted(found, key=lambda f: f[2]["index"])


def merge_shards(shards: list[tuple[str, dict]], run_id: str) -> dict:
    """One results record from every shard of a run: each (requirement, site) from the shard that owns
    the site, fleet verdicts recomputed, scope as a full run's, and `shards` saying where each came from."""
    from ..model.recompute import refresh_fleets

    ordered = check_shards(shards)
    owner = {site: index for _, _, shard in ordered for site in shard.get("sites") or []
             for index in [shard["index"]]}
    entries = {index: {(r.get("profile"), r.get("id"), r.get("site")): r
                       for r in results.get("requirements") or []}
               for _, results, shard in ordered for index in [shard["index"]]}
    merged = copy.deepcopy(ordered[0][1])
    reqs = []
    for r in merged.get("requirements") or []:
        key = (r.get("profile"), r.get("id"), r.get("site"))
        index = owner.get(r.get("site"))
        reqs.append(copy.deepcopy(entries[index].get(key, r)) if index is not None else r)
    refresh_fleets(reqs)
    merged["requirements"] = reqs
    scope = merged.get("scope") or {}
    shard_flag = [n for n in scope.get("narrowed_by") or [] if str(n).split(" ")[0] in ("--shard", "--edge-shard")]
    scope["narrowed_by"] = [n for n in scope.get("narrowed_by") or [] if n not in shard_flag]
    scope["full"] = not scope["narrowed_by"]
    count = ordered[0][2]["count"]
    scope.pop("shard", None)
    scope["merged_shards"] = count
    merged["scope"] = scope
    merged["shards"] = [{"index": shard["index"], "count": count, "sites": list(shard.get("sites") or []),
                         "run_id": results.get("run_id"), "source": source, "started": results.get("started"),
                         "finished": results.get("finished"), "state": results.get("state"),
                         "verdict": results.get("verdict"), "host": results.get("host"),
                         "harness": results.get("harness")} for source, results, shard in ordered]
    applied: list = []
    for _, results, _ in ordered:
        for w in (results.get("waivers") or {}).get("applied") or []:
            if w not in applied and owner.get(w.get("site")) in (None, _shard_index(results)):
                applied.append(w)
    merged.setdefault("waivers", {"applied": [], "expired": []})["applied"] = applied
    merged["run_id"] = run_id
    merged["started"] = min(str(r.get("started") or "") for _, r, _ in ordered) or merged.get("started")
    merged["finished"] = max(str(r.get("finished") or "") for _, r, _ in ordered) or merged.get("finished")
    states = {r.get("state") for _, r, _ in ordered}  # running | finished | interrupted
    merged["state"] = next((s for s in ("interrupted", "running") if s in states), "finished")
    strict = bool((merged.get("options") or {}).get("strict"))
    merged["counts"] = R.counts(reqs)
    merged["verdict"] = R.run_verdict(reqs, strict)
    return merged


def _shard_index(results: dict) -> int | None:
    return ((results.get("scope") or {}).get("shard") or {}).get("index")


def write_merged(out_dir: Path, merged: dict) -> None:
    import json

    from ..model.atomicfile import write_atomic
    from ..report.writer import write_reports
    from .record import RESULTS_MODE

    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "results.json", json.dumps(merged, indent=2) + "\n", mode=RESULTS_MODE)
    write_reports(merged, out_dir)
