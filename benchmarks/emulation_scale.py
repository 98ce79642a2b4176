"""How fast does the local emulation backend come up, and how much memory does it take? Prints ONE JSON.

    python benchmarks/emulation_scale.py [--edges 1,10,50] [--repeat 1] [--processes auto|exec|fork|both]

For each edge count N: a topology of one central site and N stores with retail's links is written to
a temp file and brought up with `start_deployment` (supervisor + linkd + N + 1 site processes, all
on 127.0.0.1). Measured:

* `bring_up_s`: from calling start_deployment until it returns (every site healthy directly and
  through its access link, target file written);
* `rss_total_mib`: summed RSS of every process labelled with the run id (supervisor, linkd, sites);
  RSS counts shared pages in each process, so this overstates real use (much so for forked sites);
* `pss_total_mib`: summed PSS (shared pages divided among their sharers): what the deployment really
  takes, the figure the 1,000-site goal is judged by;
* `site_processes`: exec (an interpreter per site) or fork (forked by the fork server, the default
  above 100 sites; EDGE_CONFORMANCE_SITE_PROCESSES forces either). `--processes both` measures each
  count both ways in the same run, and `fork_vs_exec` gives the ratios (the baseline);
* `rss_site_max_mib` / `rss_site_mean_mib`: per site process (the goal is < 60 MiB each);
* `tear_down_s`: stop() until every labelled process is gone.

Goals (2 cores): 50 edge sites up in under 30 s, under 60 MiB RSS per site; 1,000 sites up in under
60 s and under 6 GiB in total (PSS). Exit status 0 even if a goal is missed (the JSON says which); 2 if
a bring-up failed.
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
from conformance.emulation.forkserver import MODE_ENV
from conformance.emulation.procs import find_labelled

GOAL_UP_S_50 = 30.0
GOAL_SITE_RSS_MIB = 60.0
GOAL_UP_S_1000 = 60.0
GOAL_PSS_GIB_1000 = 6.0

TOPOLOGY = """\
name: scale-{n}
description: central + {n} stores, retail links (benchmark)
sites:
  - {{name: central, role: central}}
  - {{name: "store-[1-{n}]", role: edge}}
wan: {{default_delay: 20 ms, default_jitter: 2 ms, default_loss: 0.1 %, default_rate: 10 Mbit/s}}
access: {{delay: 1 ms, rate: 100 Mbit/s}}
"""


def pss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def measure(n: int, workdir: Path, processes: str) -> dict:
    path = workdir / f"scale-{n}.yaml"
    path.write_text(TOPOLOGY.format(n=n), encoding="utf-8")
    run_id = f"bench-scale-{n}-{processes}-{os.getpid()}"
    os.environ[MODE_ENV] = processes  # inherited by the supervisor
    start = time.monotonic()
    deployment = start_deployment(str(path), run_id=run_id, timeout=300)
    up = time.monotonic() - start
    try:
        time.sleep(1.0)  # let the sites settle (first heartbeats, caches) before reading RSS
        status = deployment.status()
        site_pids = {s["pid"] for s in status["sites"]}
        procs = find_labelled(run_id).get(run_id, [])
        rss, pss = {}, {}
        for p in procs:
            try:
                rss[p.pid] = p.memory_info().rss / 2**20
            except psutil.Error:
                continue
            pss[p.pid] = pss_mib(p.pid)
        site_rss = [v for pid, v in rss.items() if pid in site_pids]
    finally:
        start_down = time.monotonic()
        deployment.stop()
        down = time.monotonic() - start_down
    return {
        "edges": n, "sites": n + 1, "site_processes": status.get("site_processes"), "processes": len(rss),
        "bring_up_s": round(up, 2), "pss_total_mib": round(sum(pss.values()), 1),
        "pss_site_mean_mib": round(sum(v for pid, v in pss.items() if pid in site_pids) / max(1, len(site_rss)), 2),
        "tear_down_s": round(down, 2), "rss_total_mib": round(sum(rss.values()), 1),
        "rss_site_max_mib": round(max(site_rss), 1), "rss_site_mean_mib": round(sum(site_rss) / len(site_rss), 1),
        "rss_supervisor_mib": round(rss.get(deployment.pid, 0.0), 1),
        "rss_linkd_mib": round(rss.get(status["linkd"]["pid"], 0.0), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", default="1,10,50", help="comma-separated edge-site counts")
    parser.add_argument("--repeat", type=int, default=1, help="runs per count (the best bring-up is kept)")
    parser.add_argument("--processes", choices=("auto", "exec", "fork", "both"), default="auto",
                        help="how the sites run (both: each count both ways, compared)")
    args = parser.parse_args()
    counts = [int(x) for x in args.edges.split(",") if x.strip()]
    modes = ["exec", "fork"] if args.processes == "both" else [args.processes]
    results = []
    with tempfile.TemporaryDirectory(prefix="edge-conformance-bench-") as tmp:
        for n in counts:
            for mode in modes:
                runs = []
                for _ in range(args.repeat):
                    try:
                        runs.append(measure(n, Path(tmp), mode))
                    except Exception as exc:  # noqa: BLE001 - report, do not hide
                        print(json.dumps({"error": f"{n} edges ({mode}): {exc}"}))
                        return 2
                results.append(min(runs, key=lambda r: r["bring_up_s"]))
    by_n = {(r["edges"], r["site_processes"]): r for r in results}
    goals = {"site_rss_under_60_mib": all(r["rss_site_max_mib"] < GOAL_SITE_RSS_MIB for r in results)}
    for (n, _mode), r in by_n.items():
        if n == 50:
            goals["fifty_edges_up_under_30_s"] = r["bring_up_s"] < GOAL_UP_S_50
        if n + 1 >= 1000:
            goals[f"thousand_up_under_60_s_{r['site_processes']}"] = r["bring_up_s"] < GOAL_UP_S_1000
            goals[f"thousand_under_6_gib_{r['site_processes']}"] = r["pss_total_mib"] / 1024 < GOAL_PSS_GIB_1000
    ratios = {}
    for n in counts:
        exec_run, fork_run = by_n.get((n, "exec")), by_n.get((n, "fork"))
        if exec_run and fork_run:
            ratios[str(n)] = {"bring_up": round(fork_run["bring_up_s"] / exec_run["bring_up_s"], 3),
                              "pss_total": round(fork_run["pss_total_mib"] / exec_run["pss_total_mib"], 3)}
    print(json.dumps({"benchmark": "emulation_scale", "cpus": os.cpu_count(),
                      "load_avg_1m": round(os.getloadavg()[0], 2), "python": sys.version.split()[0],
                      "results": results, "fork_vs_exec": ratios, "goals_met": goals}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
