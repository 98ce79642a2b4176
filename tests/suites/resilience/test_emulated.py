"""The resilience suite end to end on emulated deployments: every shipped profile's resilience
requirements pass on its healthy topology, and every must fails on its matching defect.

Each case is a real `edge-conformance run --profile P --target emulated:T --suite resilience` in a
subprocess, read back from results.json. The runs are independent deployments, so they are started
together (a few at a time) when the first test needs them.

Defect runs narrow a shipped profile (tests.helpers.cli.narrowed_profile): the same
requirements, each checked on one site, with one defect per site (`--defect SITE:DEFECT`), so a
failure can only come from that site's defect. satcom has a single remote site, so the four
partition/crash defects share it; each one breaks a different metric, and each requirement must fail
on its own metric.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers.cli import narrowed_profile, run_edge
from tests.helpers.results import entries

LANES = 3  # deployments at once: 2 cores, and the checks are mostly waiting on faults


@dataclass
class Run:
    target: str
    profiles: list = field(default_factory=list)  # shipped names, or (parent, {req: site|None})
    sites: list[str] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    # (requirement id, site, metric, "false" | "<1" | ">0"): must fail on exactly that metric
    broken: list[tuple[str, str, str, str]] = field(default_factory=list)


HEALTHY = {
    "retail": Run("emulated:retail", ["retail"], ["store-1"]),
    "ucpe": Run("emulated:retail", ["ucpe"], ["store-1"]),
    "iot": Run("emulated:iot", ["iot"], ["gw-1"]),
    "satcom": Run("emulated:satcom", ["satcom"]),
    "mec": Run("emulated:mec", ["mec"], ["mec-1"]),
}

DEFECTS = {
    "retail-cut": Run(
        "emulated:retail",
        [("retail", {"RTL-RES-02": "store-1", "RTL-RES-03": "store-2", "RTL-RES-04": "store-3"})],
        defects=["store-1:forward-synchronously", "store-2:no-stale-cache", "store-3:central-auth-only"],
        broken=[("RTL-RES-02", "store-1", "pos_accepted", "<1"), ("RTL-RES-03", "store-2", "cache_served", "false"),
                ("RTL-RES-04", "store-3", "auth_ok", "false")]),
    # The lossless resyncs cut with drop (a long outage): a site that drops what it failed to forward
    # loses it on a plain partition as when central is down. The flaps cut with hold (short cuts), where
    # a request the site timed out on still arrives at heal: that is where a non-idempotent resend shows.
    "retail-data": Run(
        "emulated:retail",
        [("retail", {"RTL-RES-06": "store-1", "RTL-RES-05": "store-1", "RTL-RES-10": "store-2",
                     "RTL-RES-08": "store-3"})],
        defects=["store-1:drop-on-partition", "store-2:duplicate-on-retry", "store-3:no-fsync"],
        broken=[("RTL-RES-06", "store-1", "delivered_ratio", "<1"), ("RTL-RES-05", "store-1", "delivered_ratio", "<1"),
                ("RTL-RES-10", "store-2", "duplicates", ">0"), ("RTL-RES-08", "store-3", "data_survived", "false")]),
    "ucpe-data": Run(
        "emulated:retail",
        [("ucpe", {"UCPE-RES-03": "store-1", "UCPE-RES-02": "store-1", "UCPE-RES-06": "store-2",
                   "UCPE-RES-04": "store-3"})],
        defects=["store-1:drop-on-partition", "store-2:duplicate-on-retry", "store-3:no-fsync"],
        broken=[("UCPE-RES-03", "store-1", "delivered_ratio", "<1"), ("UCPE-RES-02", "store-1", "delivered_ratio", "<1"),
                ("UCPE-RES-06", "store-2", "duplicates", ">0"), ("UCPE-RES-04", "store-3", "data_survived", "false")]),
    "iot-defects": Run(
        "emulated:iot",
        [("iot", {"IOT-RES-01": "gw-1", "IOT-RES-02": "gw-3", "IOT-RES-03": "gw-3"})],
        defects=["gw-1:forward-synchronously", "gw-3:drop-on-partition"],
        broken=[("IOT-RES-01", "gw-1", "pos_accepted", "<1"), ("IOT-RES-02", "gw-3", "delivered_ratio", "<1"),
                ("IOT-RES-03", "gw-3", "delivered_ratio", "<1")]),
    "satcom-site": Run(
        "emulated:satcom",
        [("satcom", {"SAT-RES-02": None, "SAT-RES-03": None, "SAT-RES-04": None, "SAT-RES-08": None})],
        defects=["forward-synchronously", "no-stale-cache", "central-auth-only", "no-fsync"],
        broken=[("SAT-RES-02", "remote-1", "pos_accepted", "<1"), ("SAT-RES-03", "remote-1", "cache_served", "false"),
                ("SAT-RES-04", "remote-1", "auth_ok", "false"), ("SAT-RES-08", "remote-1", "data_survived", "false")]),
    "satcom-drop": Run("emulated:satcom", [("satcom", {"SAT-RES-05": None, "SAT-RES-06": None})],
                       defects=["drop-on-partition"],
                       broken=[("SAT-RES-05", "remote-1", "delivered_ratio", "<1"),
                               ("SAT-RES-06", "remote-1", "delivered_ratio", "<1")]),
}

RUNS = {**HEALTHY, **DEFECTS}
# longest first, so the lanes finish together
ORDER = ["retail", "retail-data", "ucpe-data", "satcom", "ucpe", "iot", "mec", "iot-defects", "retail-cut",
         "satcom-site", "satcom-drop"]


class Runs:
    def __init__(self, root: Path, names: set[str]):
        self.root = root
        self.pool = ThreadPoolExecutor(max_workers=LANES, thread_name_prefix="edge-run")
        self.futures: dict[str, Future] = {n: self.pool.submit(self._run, n) for n in ORDER if n in names}

    def _run(self, name: str):
        spec = RUNS[name]
        work = self.root / name
        work.mkdir()
        args = ["--target", spec.target, "--suite", "resilience"]
        for i, p in enumerate(spec.profiles):
            if isinstance(p, tuple):
                parent, keep = p
                p = str(narrowed_profile(work / f"profile-{i}.yaml", parent, keep, pid=f"{parent}-{name}"))
            args += ["--profile", p]
        for s in spec.sites:
            args += ["--site", s]
        for d in spec.defects:
            args += ["--defect", d]
        return run_edge(*args, out=work / "out", cwd=work, timeout=240)

    def get(self, name: str):
        return self.futures[name].result(timeout=400)

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory):
    wanted = {item.callspec.params["name"] for item in request.session.items
              if item.module is request.module and hasattr(item, "callspec") and "name" in item.callspec.params}
    r = Runs(tmp_path_factory.mktemp("emulated-runs"), wanted or set(RUNS))
    yield r
    r.close()


def _resilience(results: dict) -> dict:
    return {key: r for key, r in entries(results).items() if r["check"].startswith("resilience.")}


@pytest.mark.parametrize("name", list(HEALTHY))
def test_healthy_topology_passes_every_resilience_requirement(runs, name):
    code, results, output = runs.get(name)
    got = {key: r for key, r in _resilience(results).items()
           if not str(r["ended"].get("reason", "")).startswith("left out of this run")}  # --site narrows it
    assert got, output[-3000:]
    bad = [f"{rid}@{site} {r['status']}: {r['message']}" for (rid, site), r in got.items() if r["status"] != "pass"]
    assert not bad, "\n".join(bad)
    assert code == 3, output[-3000:]  # narrowed to --suite resilience: at best incomplete, never conformant
    assert results["scope"]["narrowed_by"][0] == "--suite resilience"
    profile = RUNS[name].profiles[0]
    assert {r["profile"] for r in got.values()} == {profile}


def _holds(value: float, rule: str) -> bool:
    return {"false": value == 0, "<1": value < 1, ">0": value > 0}[rule]


@pytest.mark.parametrize("name", list(DEFECTS))
def test_every_must_fails_on_its_matching_defect(runs, name):
    code, results, output = runs.get(name)
    got = _resilience(results)
    expected = {(rid, site) for rid, site, _, _ in RUNS[name].broken}
    assert set(got) == expected, f"checked {sorted(got)}, expected {sorted(expected)}\n{output[-3000:]}"
    for rid, site, metric, rule in RUNS[name].broken:
        r = got[(rid, site)]
        assert r["level"] == "must"
        assert r["status"] == "fail", f"{rid}@{site}: {r['message']}"
        assert metric in r["measured"], f"{rid}@{site}: {metric} not measured: {r['message']}"
        value = r["measured"][metric]["value"]
        assert _holds(value, rule), f"{rid}@{site}: {metric} = {value}, expected {rule}: {r['message']}"
        assert f"{metric} = " in r["message"], r["message"]  # the verdict names the broken metric
    assert code == 1, output[-3000:]


def test_reports_carry_the_scaled_duration_and_the_sweep_tables(runs):
    code, results, output = runs.get("retail")
    got = _resilience(results)
    cut = got[("RTL-RES-01", "store-1")]
    assert any("scaled down: the 3 s cut stands for hours to days" in n for n in cut["notes"]), cut["notes"]
    assert "3 s here" in cut["title"]
    assert cut["raw"]["latency"]["histogram"]
    shared = got[("RTL-RES-02", "store-1")]
    assert any("measured once for RTL-RES-01" in n for n in shared["notes"])
    assert shared["measured"]["pos_accepted"] == cut["measured"]["pos_accepted"]
    sweep = got[("RTL-RES-11", "store-1")]["raw"]
    assert sweep["sweep"]["param"] == "delay_ms" and [row["value"] for row in sweep["sweep"]["rows"]] == [25, 50, 100, 150]
    assert [t["param"] for t in sweep["sweeps"]] == ["delay_ms", "loss", "bandwidth"]
    assert [row["value"] for row in sweep["sweeps"][1]["rows"]] == [1, 3, 5, 8, 10]
    assert all(set(row) >= {"value", "success_ratio", "duration_s"} for t in sweep["sweeps"] for row in t["rows"])
    html = (runs.root / "retail" / "out" / "report.html").read_text()
    assert "delay_ms (ms)" in html  # the report draws the main sweep as a table
