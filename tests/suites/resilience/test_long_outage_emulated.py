"""Certification-length runs, rehearsed: retail-full's long-outage requirements (2-hour cuts) at
--duration-scale 1/100 (72 s cuts) pass on the healthy retail topology, fail on the matching defects,
record the scale in every report, and write checkpoints into results.json during the cut.

The runs are real `edge-conformance run` children, one store each, started together (they mostly wait
on the cut): the healthy one and one per defect. The defect runs wait 20 s for the catch-up instead of
the profile's 2 minutes, so the forwarder that never reconnects does not hold CI for that long.
"""

from __future__ import annotations

import html
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers.cli import run_edge
from tests.helpers.results import entries

LONG = ["RTL-LONG-01", "RTL-LONG-02", "RTL-LONG-03", "RTL-LONG-04"]

# defect -> (site, the requirement it must fail, the metric that shows it)
DEFECTS = {
    "unbounded-backlog": ("store-1", "RTL-LONG-01", "memory_projected"),
    "renew-at-central-only": ("store-2", "RTL-LONG-03", "auth_ok"),
    "forwarder-no-reconnect": ("store-3", "RTL-LONG-04", "delivered_ratio"),
}


def _defect_profile(path: Path) -> Path:
    """retail-full's long-outage requirements with a 20 s catch-up wait (the cut comes from the scale)."""
    lines = ["id: retail-full-defects", "version: '0'", "title: retail-full, short catch-up wait",
             "extends: retail-full", "requirements:"]
    lines += [f"  - {{id: {rid}, params: {{timeout: 20 s}}}}" for rid in LONG]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _watch_checkpoints(results: Path, stop: threading.Event, seen: list[dict]) -> None:
    """Read results.json while the run goes on: the checkpoints written before the check ended."""
    while not stop.wait(1.0):
        try:
            data = json.loads(results.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for r in data.get("requirements", []):
            point = (r.get("raw") or {}).get("checkpoint")
            if point and r.get("status") == "not-run":
                seen.append({"id": r["id"], "site": r["site"], **point})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("long-outage")
    seen: list[dict] = []
    stop = threading.Event()

    def run(name: str, profile: str, site: str, defect: str | None = None):
        out = root / name
        if name == "healthy":
            threading.Thread(target=_watch_checkpoints, args=(out / "results.json", stop, seen), daemon=True).start()
        args = ["--profile", profile, "--target", "emulated:retail", "--site", site, "--duration-scale", "1/100"]
        for rid in LONG:
            args += ["--requirement", rid]
        if defect:
            args += ["--defect", f"{site}:{defect}"]
        return run_edge(*args, out=out, cwd=root, timeout=300)

    shorter_wait = str(_defect_profile(root / "defects.yaml"))
    with ThreadPoolExecutor(max_workers=1 + len(DEFECTS)) as pool:
        futures = {"healthy": pool.submit(run, "healthy", "retail-full", "store-1")}
        futures.update({d: pool.submit(run, d, shorter_wait, site, d) for d, (site, _, _) in DEFECTS.items()})
        done = {name: f.result(timeout=600) for name, f in futures.items()}
    stop.set()
    return {**done, "checkpoints": seen, "root": root}


def test_the_healthy_store_passes_every_long_outage_requirement(runs):
    code, results, output = runs["healthy"]
    got = entries(results)
    bad = [f"{rid}: {got[(rid, 'store-1')]['status']}: {got[(rid, 'store-1')]['message']}" for rid in LONG
           if got[(rid, "store-1")]["status"] != "pass"]
    assert not bad, "\n".join(bad) + output[-2000:]
    first = got[("RTL-LONG-01", "store-1")]
    assert first["params"]["duration"] == 72 and first["scaled"] == {"duration": 7200}
    assert any("the 72 s cut stands for the profile's 2 h" in n for n in first["notes"]), first["notes"]
    assert any(n.startswith("memory: ") and "over 2 h" in n for n in first["notes"]), first["notes"]
    measured = first["measured"]
    assert measured["auth_ok"]["value"] == 1 and measured["renewals"]["value"] >= 2
    assert measured["delivered_ratio"]["value"] == 1 and measured["created"]["value"] >= 100
    assert {v["kind"] for v in first["validity"]} >= {"floor", "pressure"}


def test_the_scale_is_recorded_and_shown_in_every_report(runs):
    code, results, output = runs["healthy"]
    assert results["options"]["duration_scale"] == 0.01 and results["scope"]["duration_scale"] == 0.01
    shown = "--duration-scale 0.01 (every outage x1/100 its profile's length)"
    assert shown in results["scope"]["changed_by"]
    out = runs["root"] / "healthy"
    for name in ("summary.md", "junit.xml", "report.html"):
        assert shown in html.unescape((out / name).read_text(encoding="utf-8")), name
    assert shown in output
    page = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="src-OSF-MVP"' in page and "<th>basis</th>" in page  # the full citations and the basis


def test_checkpoints_are_written_during_the_cut(runs):
    points = [p for p in runs["checkpoints"] if p["id"] == "RTL-LONG-01" and p["site"] == "store-1"]
    assert points, "no checkpoint seen in results.json during the cut"
    assert all(0 < p["elapsed_s"] <= 75 and p["cut_s"] == 72 and p["real_s"] == 7200 for p in points)
    assert max(p["sales_attempted"] for p in points) > 0 and "memory_bytes" in points[-1]


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_each_long_outage_must_fails_on_its_defect(runs, defect):
    code, results, output = runs[defect]
    site, rid, metric = DEFECTS[defect]
    got = entries(results)
    r = got[(rid, site)]
    assert r["status"] == "fail", f"{rid}@{site}: {r['message']}"
    assert f"{metric} = " in r["message"], r["message"]
    assert r["scaled"] == {"duration": 7200} and r["params"]["duration"] == 72  # the full profile at 1/100
    # the defect breaks its own requirement only: the other long-outage musts still pass on that store
    others = [o for o in LONG if o != rid and got[(o, site)]["level"] == "must"]
    assert all(got[(o, site)]["status"] == "pass" for o in others), [(o, got[(o, site)]["message"]) for o in others]
    assert code == 1, output[-2000:]
