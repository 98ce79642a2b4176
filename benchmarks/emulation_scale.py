"""How fast does the local emulation backend come up, and how much memory does it take? Prints ONE JSON.

    python benchmarks/emulation_scale.py [--edges 1,10,50] [--repeat 1]

For each edge count N: a topology of one central site and N stores with retail's links is written to
a temp file and brought up with `start_deployment` (supervisor + linkd + N + 1 site processes, all
on 127.0.0.1). Measured:

* `bring_up_s`: from calling start_deployment until it returns (every site healthy directly and
  through its access link, target file written);
* `rss_total_mib`: summed RSS of every process labelled with the run id (supervisor, linkd, sites);
  RSS counts shared pages in each process, so this overstates real use a little;
* `rss_site_max_mib` / `rss_site_mean_mib`: per site process (the goal is < 60 MiB each);
* `tear_down_s`: stop() until every labelled process is gone.

Goals (2 cores): 50 edge sites up in under 30 s, under 60 MiB RSS per site. Exit status 0 even if a
goal is missed (the JSON says which); 2 if a bring-up failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil

from conformance.emulation import start_deployment
from conformance.emulation.procs import find_labelled

GOAL_UP_S_50 = 30.0
GOAL_SITE_RSS_MIB = 60.0

TOPOLOGY = """\
name: scale-{n}
description: central + {n} stores, retail links (benchmark)
sites:
  - {{name: central, role: central}}
  - {{name: "store-[1-{n}]", role: edge}}
wan: {{default_delay: 20 ms, default_jitter: 2 ms, default_loss: 0.1 %, default_rate: 10 Mbit/s}}
access: {{delay: 1 ms, rate: 100 Mbit/s}}
"""


def measure(n: int, workdir: Path) -> dict:
    path = workdir / f"scale-{n}.yaml"
    path.write_text(TOPOLOGY.format(n=n), encoding="utf-8")
    run_id = f"bench-scale-{n}-{os.getpid()}"
    start = time.monotonic()
    deployment = start_deployment(str(path), run_id=run_id, timeout=120)
    up = time.monotonic() - start
    try:
        time.sleep(1.0)  # let the sites settle (first heartbeats, caches) before reading RSS
        status = deployment.status()
        site_pids = {s["pid"] for s in status["sites"]}
        procs = find_labelled(run_id).get(run_id, [])
        rss = {}
        for p in procs:
            try:
                rss[p.pid] = p.memory_info().rss / 2**20
            except psutil.Error:
                pass
        site_rss = [v for pid, v in rss.items() if pid in site_pids]
    finally:
        start_down = time.monotonic()
        deployment.stop()
        down = time.monotonic() - start_down
    return {
        "edges": n, "sites": n + 1, "processes": len(rss), "bring_up_s": round(up, 2),
        "tear_down_s": round(down, 2), "rss_total_mib": round(sum(rss.values()), 1),
        "rss_site_max_mib": round(max(site_rss), 1), "rss_site_mean_mib": round(sum(site_rss) / len(site_rss), 1),
        "rss_supervisor_mib": round(rss.get(deployment.pid, 0.0), 1),
        "rss_linkd_mib": round(rss.get(status["linkd"]["pid"], 0.0), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", default="1,10,50", help="comma-separated edge-site counts")
    parser.add_argument("--repeat", type=int, default=1, help="runs per count (the best bring-up is kept)")
    args = parser.parse_args()
    counts = [int(x) for x in args.edges.split(",") if x.strip()]
    results = []
    with tempfile.TemporaryDirectory(prefix="edge-conformance-bench-") as tmp:
        for n in counts:
            runs = []
            for _ in range(args.repeat):
                try:
                    runs.append(measure(n, Path(tmp)))
                except Exception as exc:  # noqa: BLE001 - report, do not hide
                    print(json.dumps({"error": f"{n} edges: {exc}"}))
                    return 2
            results.append(min(runs, key=lambda r: r["bring_up_s"]))
    by_n = {r["edges"]: r for r in results}
    goals = {"site_rss_under_60_mib": all(r["rss_site_max_mib"] < GOAL_SITE_RSS_MIB for r in results)}
    if 50 in by_n:
        goals["fifty_edges_up_under_30_s"] = by_n[50]["bring_up_s"] < GOAL_UP_S_50
    print(json.dumps({"benchmark": "emulation_scale", "cpus": os.cpu_count(),
                      "load_avg_1m": round(os.getloadavg()[0], 2), "python": sys.version.split()[0],
                      "results": results, "goals_met": goals}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
