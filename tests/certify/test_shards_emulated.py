"""A run split over machines (engine/shard.py), by the real CLI on emulated retail (central and three
stores): `run --shard 1/2` and `--shard 2/2` each measure the requirements of their sites (dealt
round-robin: central and store-2, store-1 and store-3) and are incomplete on their own (`--shard K/N`
narrows them); `merge` joins them into a record whose statuses equal a serial run's, whose quorum is
recomputed from every site, whose bundle `verify` accepts as a full run; a defect at store-3 fails the
merged run as it fails the serial one; merging without a shard, or a shard twice, is one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.cli import requirement, run_cli, run_edge, write_profile

TARGET = ("--target", "emulated:retail")


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> Path:
    quorum = requirement("SH-FLEET", "functional.http", "status == 200", {"endpoint": "api", "path": "/health"},
                         sites=["edge"])
    quorum["sites"] = "100%"
    return write_profile(tmp_path_factory.mktemp("shards") / "p.yaml", [
        requirement("SH-UP", "functional.http", "status == 200", {"endpoint": "api", "path": "/health"}),
        requirement("SH-POS", "functional.http", "status == 200", {"endpoint": "api", "path": "/pos/status"},
                    sites=["edge"]),
        quorum])


def _statuses(res: dict) -> dict:
    return {(r["id"], r["site"]): r["status"] for r in res["requirements"]}


def _shards(profile: Path, tmp: Path, *extra: str) -> list[Path]:
    outs = []
    for k in (1, 2):
        out = tmp / f"shard-{k}"
        code, res, output = run_edge("--profile", profile, *TARGET, "--shard", f"{k}/2", *extra, out=out, timeout=180)
        assert res["scope"]["shard"]["index"] == k and f"--shard {k}/2" in res["scope"]["narrowed_by"], output[-2000:]
        mine = set(res["scope"]["shard"]["sites"])
        for r in res["requirements"]:
            if r["site"] in ("central", "store-1", "store-2", "store-3") and r["site"] not in mine:
                assert r["status"] == "not-measured" and f"(--shard {k}/2)" in r["message"], r
                assert r["ended"]["remedy"].startswith("merge it with the other shards' results")
        assert code in (1, 3)  # never conformant on its own
        outs.append(out)
    return outs


def test_merged_shards_equal_a_serial_run_and_verify_as_a_full_run(profile, tmp_path):
    code, serial, output = run_edge("--profile", profile, *TARGET, out=tmp_path / "serial", timeout=180)
    assert code == 0 and serial["verdict"] == "conformant", output[-2000:]
    s1, s2 = _shards(profile, tmp_path)
    assert json.loads((s1 / "results.json").read_text())["scope"]["shard"]["sites"] == ["central", "store-2"]
    done = run_cli("merge", s1, s2 / "results.json", "--out", tmp_path / "merged", timeout=60)
    assert done.returncode == 0 and "merged 2 shards: verdict conformant" in done.stdout, done.stderr
    merged = json.loads((tmp_path / "merged" / "results.json").read_text())
    assert _statuses(merged) == _statuses(serial)
    assert merged["scope"]["full"] and merged["scope"]["narrowed_by"] == [] and merged["scope"]["merged_shards"] == 2
    assert [s["sites"] for s in merged["shards"]] == [["central", "store-2"], ["store-1", "store-3"]]
    assert (tmp_path / "merged" / "report.html").exists() and (tmp_path / "merged" / "junit.xml").exists()
    made = run_cli("bundle", tmp_path / "merged", "--out", tmp_path / "merged.tar.gz", timeout=60)
    assert made.returncode == 0, made.stderr
    verified = run_cli("verify", tmp_path / "merged.tar.gz", timeout=60)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    partial = run_cli("bundle", s1, "--out", tmp_path / "s1.tar.gz", timeout=60)
    assert partial.returncode == 0, partial.stderr
    alone = run_cli("verify", tmp_path / "s1.tar.gz", timeout=60)
    assert alone.returncode == 3 and "--shard 1/2" in alone.stdout, alone.stdout  # a shard alone is partial


def test_a_defect_fails_the_merged_run_and_incomplete_sets_are_refused(profile, tmp_path):
    s1, s2 = _shards(profile, tmp_path, "--defect", "store-3:health-broken")
    done = run_cli("merge", s1, s2, "--out", tmp_path / "merged", timeout=60)
    merged = json.loads((tmp_path / "merged" / "results.json").read_text())
    assert done.returncode == 1 and merged["verdict"] == "non-conformant", done.stdout + done.stderr
    assert _statuses(merged)[("SH-UP", "store-3")] == "fail" and _statuses(merged)[("SH-UP", "store-1")] == "pass"
    fleet = next(r for r in merged["requirements"] if r["id"] == "SH-FLEET" and r["site"] not in
                 ("store-1", "store-2", "store-3"))
    assert fleet["status"] == "fail", fleet  # the quorum recomputed from every store
    for args, needle in (((s1,), "shard(s) 2/2 missing: a merged run needs every shard"),
                         ((s1, s1), "shard 1/2 given twice")):
        refused = run_cli("merge", *args, "--out", tmp_path / f"m{len(args)}", timeout=60)
        assert refused.returncode == 2 and needle in refused.stderr and "Traceback" not in refused.stderr, \
            refused.stderr
