"""Pressure (PSI: CPU, I/O, memory) around a measurement, the site's own CPU use, and what a check hands
to the verdict rule. Whether a miss under pressure is excused is the rule's (tests/model/test_verdict.py);
here: the figures are right, missing ones are None, and they arrive as `pressure` evidence the rule reads."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conformance.measure import pressure as P
from conformance.model import catalog
from conformance.model import expect as E
from conformance.model import verdict as V
from tests.helpers.edge import RecordingEdge


def psi(path: Path, some_total_us: int) -> None:
    path.write_text(f"some avg10=1.00 avg60=0.50 avg300=0.10 total={some_total_us}\n"
                    "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")


def fake_clock(monkeypatch, *times: float) -> None:
    clock = iter(times)
    monkeypatch.setattr(P.time, "monotonic", lambda: next(clock))


class FakeEdge(RecordingEdge):
    """What record_pressure needs of an EdgeContext (or a shared experiment's Recording)."""


def test_each_resource_is_the_share_of_the_window_some_task_waited(tmp_path, monkeypatch):
    for name, start in (("cpu", 1_000_000), ("io", 5_000), ("memory", 0)):
        psi(tmp_path / name, start)
    fake_clock(monkeypatch, 100.0, 102.0)
    window = P.PressureWindow(tmp_path)
    psi(tmp_path / "cpu", 1_500_000)  # 0.5 s of 2 s
    psi(tmp_path / "io", 205_000)  # 0.2 s
    psi(tmp_path / "memory", 20_000)  # 0.02 s
    got = window.stop()
    assert (got.cpu, got.io, got.memory) == (pytest.approx(0.25), pytest.approx(0.1), pytest.approx(0.01))
    assert got.seconds == 2.0 and got.percent() == 25.0 and got.percent("io") == 10.0
    assert got.to_dict() == {"cpu_some_percent": 25.0, "io_some_percent": 10.0, "memory_some_percent": 1.0,
                             "window_s": 2.0}
    assert got.text() == "some task waited for a CPU 25 %, for I/O 10 %, for memory 1 % of 2.0 s"


def test_a_resource_the_kernel_lacks_is_none_and_the_others_still_count(tmp_path, monkeypatch):
    psi(tmp_path / "cpu", 0)
    (tmp_path / "io").write_text("garbage\n")  # and no memory file at all
    fake_clock(monkeypatch, 0.0, 1.0)
    window = P.PressureWindow(tmp_path)
    psi(tmp_path / "cpu", 300_000)
    got = window.stop()
    assert got.cpu == pytest.approx(0.3) and got.io is None and got.memory is None
    assert got.to_dict()["io_some_percent"] is None
    assert got.text() == "some task waited for a CPU 30 % of 1.0 s"


@pytest.mark.parametrize("content", [None, "garbage\n", "some avg10=1.0 total=x\n"])
def test_no_psi_measures_nothing(tmp_path, content):
    if content is not None:
        for name in ("cpu", "io", "memory"):
            (tmp_path / name).write_text(content)
    assert P.PressureWindow(tmp_path).stop() is None


def test_a_counter_that_went_backwards_or_overflowed_the_window_is_clamped(tmp_path, monkeypatch):
    psi(tmp_path / "cpu", 5_000_000)
    psi(tmp_path / "io", 0)
    fake_clock(monkeypatch, 0.0, 1.0)
    window = P.PressureWindow(tmp_path)
    psi(tmp_path / "cpu", 1_000)  # a new counter (e.g. another namespace): never negative
    psi(tmp_path / "io", 9_000_000)  # more stall than time: at most the whole window
    got = window.stop()
    assert got.cpu == 0.0 and got.io == 1.0


def test_the_real_kernel_counters_move_forward_when_present():
    if all(P._some_total_us(P.PSI_DIR / r) is None for r in ("cpu", "io", "memory")):
        pytest.skip("this kernel offers no /proc/pressure")
    got = P.PressureWindow().stop()
    assert got is not None
    for r in ("cpu", "io", "memory"):
        assert got.ratio(r) is None or 0.0 <= got.ratio(r) <= 1.0


# ---------------------------------------------------------------------------------------------
# what a check records


def test_record_pressure_notes_attaches_and_hands_the_figures_to_the_rule():
    edge = FakeEdge()
    P.record_pressure(edge, P.Pressure(6.5, cpu=0.4, io=0.012, memory=0.0), target_cores=0.1234)
    assert edge.validity == [{"kind": "pressure", "cpu": 40.0, "io": 1.2, "memory": 0.0, "window_s": 6.5,
                              "target_cores": 0.123}]
    assert edge.raw["machine"] == {"cpu_some_percent": 40.0, "io_some_percent": 1.2, "memory_some_percent": 0.0,
                                   "window_s": 6.5, "target_cores": 0.123}
    assert "pressure while measuring: some task waited for a CPU 40 %, for I/O 1.2 %, for memory 0 % of 6.5 s" \
        in edge.notes
    assert "the site's own processes used 0.12 cores while measured" in edge.notes


def test_unknown_pressure_is_said_and_gives_no_evidence():
    edge = FakeEdge()
    P.record_pressure(edge, None, target_cores=0.2)
    assert edge.validity == [] and "machine" not in edge.raw and "unknown" in edge.notes[0]


def test_the_recorded_evidence_is_what_the_verdict_rule_reads():
    """End to end without a deployment: a tail miss under recorded I/O pressure is inconclusive, the
    same miss with the site's own processes busy fails (the rule's decision, fed by this module)."""
    requirement = SimpleNamespace(id="T-1", level="must", expect=E.parse("p99 <= 50 ms"),
                                  metric_dimensions=dict(catalog.get("latency.request").metrics))
    measured = {"p50": (3.0, "ms"), "p99": (80.0, "ms")}
    for cores, status in ((0.1, "inconclusive"), (0.9, "fail"), (None, "inconclusive")):
        edge = FakeEdge()
        P.record_pressure(edge, P.Pressure(6.0, cpu=0.01, io=0.3, memory=None), target_cores=cores)
        d = V.decide(requirement, "store-1", measured=measured, validity=edge.validity)
        assert d.status == status, (cores, d.message)
    quiet = FakeEdge()
    P.record_pressure(quiet, P.Pressure(6.0, cpu=0.02, io=0.01, memory=0.0))
    assert V.decide(requirement, "store-1", measured=measured, validity=quiet.validity).status == "fail"


def test_unknown_figures_in_the_evidence_validate_against_the_results_schema():
    """On a real site the site's own CPU use is often unknown, and a kernel may lack a pressure file:
    the evidence says null, which the results schema accepts (a real-target run's results.json must
    validate)."""
    import json

    import jsonschema

    edge = FakeEdge()
    P.record_pressure(edge, P.Pressure(6.0, cpu=0.3, io=0.0, memory=None), target_cores=None)
    assert edge.validity[-1]["target_cores"] is None and edge.validity[-1]["memory"] is None
    schema = json.loads((Path(P.__file__).parents[1] / "model" / "schemas" / "results.schema.json").read_text())
    jsonschema.validate(edge.validity[-1], {"$ref": "#/$defs/evidence", "$defs": schema["$defs"]})


def test_no_suite_module_keeps_its_own_contention_constants():
    """One rule: the thresholds live in model/verdict.py only."""
    assert P.CONTENDED_RATIO is V.CONTENDED_RATIO
    assert not hasattr(P, "TARGET_BUSY_CORES") and not hasattr(P, "judge_pressure")


# ---------------------------------------------------------------------------------------------
# the site's own CPU


def test_tree_cpu_measures_a_busy_child_and_not_an_idle_one():
    import subprocess
    import sys

    spin = "import time\nend = time.time() + 5\nwhile time.time() < end: pass"
    procs = {name: subprocess.Popen([sys.executable, "-c", code])
             for name, code in (("busy", spin), ("idle", "import time; time.sleep(5)"))}
    try:
        time.sleep(0.3)  # both started
        cpu = {name: P.TreeCpu(p.pid) for name, p in procs.items()}
        time.sleep(0.6)
        cores = {name: c.cores() for name, c in cpu.items()}
        assert cores["busy"] > 0.2 and cores["idle"] < 0.1, cores
    finally:
        for p in procs.values():
            p.kill()
            p.wait()
    assert P.TreeCpu(None).cores() is None


def test_own_site_pid_only_for_an_emulated_local_site(tmp_path):
    import subprocess
    import sys

    def edge(emulation, hosts, labels):
        return SimpleNamespace(emulation=emulation, site=SimpleNamespace(hosts=hosts, labels=labels))

    emulated = {"control_url": "x"}
    assert P.own_site_pid(edge(emulated, ["local://"], {"pid": "123"})) == 123
    assert P.own_site_pid(edge(None, ["local://"], {"pid": 123})) is None  # a real target
    assert P.own_site_pid(edge(emulated, ["docker://store-1"], {"pid": 123})) is None
    assert P.own_site_pid(edge(emulated, ["local://"], {})) is None
    # a site restarted since the target file was written (its old pid gone) is found by its data dir
    data_dir = str(tmp_path / "site-data")
    site = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", data_dir])
    try:
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        assert P.own_site_pid(edge(emulated, ["local://"], {"pid": gone.pid, "data_dir": data_dir})) == site.pid
        assert P.own_site_pid(edge(emulated, ["local://"], {"pid": site.pid, "data_dir": data_dir})) == site.pid
    finally:
        site.kill()
        site.wait()
    assert P.own_site_pid(edge(emulated, ["local://"], {"pid": site.pid, "data_dir": data_dir})) is None
