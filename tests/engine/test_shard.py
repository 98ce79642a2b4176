"""Shards of a run (engine/shard.py) without running one: K/N parsing, the round-robin deal of sites, the
merge of shard records (each entry from its site's shard, scope as a full run's) and what it refuses."""

from __future__ import annotations

import copy

import pytest

from conformance.engine.shard import check_shards, merge_shards, parse_shard, shard_sites
from conformance.model.errors import ConfigError

SITES = ["central", "store-1", "store-2", "store-3"]


def test_k_of_n_and_the_round_robin_deal():
    assert parse_shard("2/3") == (2, 3) and parse_shard(" 1 / 1 ") == (1, 1)
    for bad in ("0/2", "3/2", "2", "a/b", "1/1001"):
        with pytest.raises(ConfigError, match="is not K/N"):
            parse_shard(bad)
    assert shard_sites(SITES, 1, 2) == ["central", "store-2"] and shard_sites(SITES, 2, 2) == ["store-1", "store-3"]
    assert shard_sites(SITES, 3, 5) == ["store-2"] and shard_sites(SITES, 5, 5) == []
    dealt = [s for k in range(1, 4) for s in shard_sites(SITES, k, 3)]
    assert sorted(dealt) == sorted(SITES)  # every site in exactly one shard


def _entry(site: str, status: str) -> dict:
    return {"profile": "p", "id": "R-1", "site": site, "level": "must", "status": status}


def _shard(index: int, count: int, run_id: str) -> dict:
    mine = shard_sites(SITES, index, count)
    return {"run_id": run_id, "started": f"2026-12-07T10:0{index}:00Z", "finished": f"2026-12-07T10:0{index}:30Z",
            "state": "finished", "profiles": [{"id": "p", "version": "1", "sha256": "abc"}],
            "target": {"sites": [{"name": s, "role": "central" if s == "central" else "edge"} for s in SITES]},
            "options": {"strict": False, "waivers": None},
            "scope": {"shard": {"index": index, "count": count, "sites": mine}, "full": False,
                      "narrowed_by": [f"--shard {index}/{count}"], "changed_by": []},
            "waivers": {"applied": [], "expired": []},
            "requirements": [_entry(s, "pass" if s in mine else "not-measured") for s in SITES]}


def test_merge_takes_each_site_from_its_shard_and_is_a_full_run():
    merged = merge_shards([("b", _shard(2, 2, "r2")), ("a", _shard(1, 2, "r1"))], "merged-1")
    assert [e["status"] for e in merged["requirements"]] == ["pass"] * 4
    assert merged["verdict"] == "conformant" and merged["counts"]["pass"] == 4
    assert merged["scope"]["full"] and merged["scope"]["narrowed_by"] == [] and "shard" not in merged["scope"]
    assert [(s["index"], s["run_id"], s["sites"]) for s in merged["shards"]] == [
        (1, "r1", ["central", "store-2"]), (2, "r2", ["store-1", "store-3"])]
    assert merged["run_id"] == "merged-1" and merged["started"].endswith("10:01:00Z")
    assert merged["finished"].endswith("10:02:30Z")
    failing = _shard(2, 2, "r2")
    failing["requirements"][1]["status"] = "fail"  # store-1, measured by shard 2
    assert merge_shards([("a", _shard(1, 2, "r1")), ("b", failing)], "m")["verdict"] == "non-conformant"


@pytest.mark.parametrize("change,needle", [
    (lambda shards: shards[:1], "shard(s) 2/2 missing"),
    (lambda shards: [shards[0], shards[0]], "shard 1/2 given twice"),
    (lambda shards: [shards[0], ("c", _shard(2, 3, "x"))], "shard 2/3, but a is one of 2"),
])
def test_incomplete_or_foreign_sets_are_refused(change, needle):
    shards = [("a", _shard(1, 2, "r1")), ("b", _shard(2, 2, "r2"))]
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        check_shards(change(shards))


def test_shards_of_other_profiles_or_sites_are_not_one_run():
    other = _shard(2, 2, "r2")
    other["profiles"][0]["sha256"] = "edited"
    with pytest.raises(ConfigError, match="profiles: differ from a's: not shards of one run"):
        check_shards([("a", _shard(1, 2, "r1")), ("b", other)])
    other = copy.deepcopy(_shard(2, 2, "r2"))
    other["target"]["sites"].pop()
    with pytest.raises(ConfigError, match="target sites: differ"):
        check_shards([("a", _shard(1, 2, "r1")), ("b", other)])
    unsharded = _shard(2, 2, "r2")
    del unsharded["scope"]["shard"]
    with pytest.raises(ConfigError, match=r"b: scope.shard: not the results of a shard"):
        check_shards([("a", _shard(1, 2, "r1")), ("b", unsharded)])


def test_a_bad_shard_option_is_one_line_before_anything_starts(tmp_path):
    from tests.helpers.cli import run_cli

    done = run_cli("run", "--shard", "3/2", "--out", tmp_path / "o", timeout=60)
    assert done.returncode == 2 and '--shard: "3/2" is not K/N' in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()
