"""footprint checks run through the plugin: a lean idle site fits the budgets, a heavy one does not."""

from __future__ import annotations

from tests.helpers.cli import requirement as _req


def test_footprint_checks(fake_site, make_site, edge_run):
    lean = fake_site("--child", name="lean")
    heavy = fake_site("--rss-mb", "300", "--busy", name="heavy")
    (lean.data_dir / "db.sqlite").write_bytes(b"x" * 100_000)
    (heavy.data_dir / "db.sqlite").write_bytes(b"x" * 3_000_000)
    both = ["lean", "heavy"]
    reqs = [
        _req("MEM", "footprint.memory", "rss <= 150 MiB", sites=both),
        _req("CPU", "footprint.cpu", "cpu <= 0.1 cores", {"window": "0.5 s"}, sites=both),
        _req("CPU-LOAD", "footprint.cpu", "cpu <= 0.8 cores and achieved_rps >= 15 rps",
             {"window": "1 s", "load_rps": 20, "path": "/health"}, sites=["lean"]),
        _req("DISK", "footprint.disk", "used <= 1 MiB", sites=both),
        _req("PROCS", "footprint.processes", "count <= 2", sites=["lean"]),
        _req("PROCS-TIGHT", "footprint.processes", "count <= 1", sites=["lean"]),
        _req("MEM-SITE", "footprint.memory", "rss <= 1 GiB", {"scope": "site"}, sites=["noscope"]),
        _req("MEM-HOST", "footprint.memory", "rss >= 1 MiB", sites=["noscope"]),
        _req("MEM-PATTERN", "footprint.memory", "rss >= 200 MiB",
             {"process": "--ready-file \\S*ready-heavy"}, sites=["noscope"]),
        _req("DISK-NONE", "footprint.disk", "used <= 1 MiB", sites=["noscope"]),
    ]
    sites = [make_site("lean", lean), make_site("heavy", heavy),
             make_site("noscope", None, endpoints={"api": lean.url()})]
    res = edge_run(reqs, sites, ["footprint"], name="footprint")

    for rid in ("MEM", "CPU", "DISK"):
        assert res.status(rid, "lean") == "pass", res.explain(rid, "lean")
        assert res.status(rid, "heavy") == "fail", res.explain(rid, "heavy")
    assert res.value("MEM", "heavy", "rss") >= 300  # MiB, the ballast is resident
    assert res.status("CPU-LOAD", "lean") == "pass", res.explain("CPU-LOAD", "lean")
    assert "load: " in " ".join(res("CPU-LOAD", "lean")["notes"])
    # the lean site has a child: the tree has two processes
    assert res.value("PROCS", "lean", "count") == 2 and res.status("PROCS", "lean") == "pass"
    assert res.status("PROCS-TIGHT", "lean") == "fail"
    # a site whose processes are unknown: not measured with scope: site (never a pass), whole host otherwise
    mem_site = res("MEM-SITE", "noscope")
    assert mem_site["status"] == "not-measured", res.explain("MEM-SITE", "noscope")
    assert mem_site["ended"]["remedy"].startswith("give the requirement a `process` param")
    assert res.status("MEM-HOST", "noscope") == "pass"
    assert "whole host" in " ".join(res("MEM-HOST", "noscope")["notes"])
    assert res.status("MEM-PATTERN", "noscope") == "pass", res.explain("MEM-PATTERN", "noscope")
    disk_none = res("DISK-NONE", "noscope")
    assert disk_none["status"] == "not-measured" and "labels.data_dir" in disk_none["ended"]["remedy"]
