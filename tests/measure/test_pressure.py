"""CPU pressure (PSI) around a measurement, and the rule that a latency miss on a CPU-starved machine is
inconclusive rather than the target's failure."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conformance.measure import pressure as P
from conformance.model import catalog
from conformance.model import expect as E
from conformance.model.errors import Inconclusive

LATENCY = frozenset({"p50", "p90", "p99", "mean"})  # as the latency suite passes it


def psi(path: Path, some_total_us: int) -> None:
    path.write_text(f"some avg10=1.00 avg60=0.50 avg300=0.10 total={some_total_us}\n"
                    "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")


class FakeEdge:
    def __init__(self, expect: str, **measured: float):
        self.requirement = SimpleNamespace(expect=E.parse(expect),
                                           metric_dimensions=dict(catalog.get("latency.request").metrics))
        units = {"error_ratio": "%"}
        self.measured = {k: SimpleNamespace(value=v, unit=units.get(k, "ms")) for k, v in measured.items()}
        self.notes, self.raw = [], {}

    def note(self, text):
        self.notes.append(text)

    def attach(self, key, value):
        self.raw[key] = value

    def inconclusive(self, reason):
        raise Inconclusive(reason)


def test_the_window_is_the_share_of_time_some_task_waited(tmp_path, monkeypatch):
    f = tmp_path / "cpu"
    psi(f, 1_000_000)
    clock = iter([100.0, 102.0])
    monkeypatch.setattr(P.time, "monotonic", lambda: next(clock))
    window = P.PressureWindow(f)
    psi(f, 1_500_000)  # 0.5 s of stall in 2 s
    got = window.stop()
    assert got.some_ratio == pytest.approx(0.25) and got.percent() == 25.0
    assert got.to_dict() == {"cpu_some_percent": 25.0, "window_s": 2.0}


@pytest.mark.parametrize("content", [None, "garbage\n", "some avg10=1.0 total=x\n"])
def test_no_psi_measures_nothing(tmp_path, content):
    f = tmp_path / "cpu"
    if content is not None:
        f.write_text(content)
    assert P.PressureWindow(f).stop() is None


def test_the_real_kernel_counter_moves_forward_when_present():
    if P._some_total_us() is None:
        pytest.skip("this kernel offers no /proc/pressure/cpu")
    got = P.PressureWindow().stop()
    assert got is not None and 0.0 <= got.some_ratio <= 1.0


def test_a_tail_miss_under_cpu_starvation_is_inconclusive():
    edge = FakeEdge("p99 <= 10 ms and error_ratio == 0 %", p50=3.0, p99=14.0, error_ratio=0.0)
    with pytest.raises(Inconclusive, match=r"CPU-starved .*40 %.*median was within budget: p99"):
        P.judge_pressure(edge, P.Pressure(0.40, 6.0), LATENCY)
    assert edge.raw["machine"] == {"cpu_some_percent": 40.0, "window_s": 6.0}


def test_a_moved_median_is_the_targets_even_on_a_busy_machine():
    edge = FakeEdge("p90 <= 20 ms", p50=27.0, p90=29.0)  # e.g. 25 ms added to every request
    P.judge_pressure(edge, P.Pressure(0.6, 6.0), LATENCY)  # stands: the plugin fails it
    edge = FakeEdge("p50 <= 2 ms and p99 <= 50 ms", p50=3.0, p99=60.0)  # one explained, one not
    P.judge_pressure(edge, P.Pressure(0.6, 6.0), LATENCY)


def test_a_latency_miss_on_a_quiet_machine_stands():
    edge = FakeEdge("p99 <= 10 ms", p50=3.0, p99=14.0)
    P.judge_pressure(edge, P.Pressure(0.02, 6.0), LATENCY)  # no verdict change: the plugin fails it
    assert any("2 %" in n for n in edge.notes)


def test_errors_are_the_targets_even_on_a_busy_machine():
    edge = FakeEdge("p99 <= 10 ms and error_ratio == 0 %", p50=3.0, p99=14.0, error_ratio=5.0)
    P.judge_pressure(edge, P.Pressure(0.9, 6.0), LATENCY)  # error_ratio fails too: not explained by CPU


def test_a_pass_on_a_busy_machine_stays_a_pass():
    edge = FakeEdge("p99 <= 10 ms", p50=3.0, p99=4.0)
    P.judge_pressure(edge, P.Pressure(0.9, 6.0), LATENCY)


def test_unknown_pressure_is_said():
    edge = FakeEdge("p99 <= 10 ms", p50=3.0, p99=14.0)
    P.judge_pressure(edge, None, LATENCY)
    assert "machine" not in edge.raw and "unknown" in edge.notes[0]


def test_a_busy_target_does_not_get_its_tail_excused():
    edge = FakeEdge("p99 <= 10 ms", p50=3.0, p99=14.0)
    P.judge_pressure(edge, P.Pressure(0.4, 6.0), LATENCY, target_cores=0.9)  # stands: its own load
    assert any("used 0.90 cores" in n for n in edge.notes)
    with pytest.raises(Inconclusive):  # a quiet site on a starved machine: excused
        P.judge_pressure(FakeEdge("p99 <= 10 ms", p50=3.0, p99=14.0), P.Pressure(0.4, 6.0), LATENCY,
                         target_cores=0.1)


def test_max_jitter_and_spread_misses_are_never_excused():
    edge = FakeEdge("max <= 10 ms", p50=3.0, max=40.0)
    P.judge_pressure(edge, P.Pressure(0.9, 6.0), LATENCY)  # not a stretched bound: stands


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
