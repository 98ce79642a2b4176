"""resilience.*: autonomy while cut off, lossless resync, degraded WAN sweeps, crash recovery, link flaps.

Each check injects a fault through `edge.faults` (the emulator's supervisor, or the real target's hooks
with --allow-faults; a fault that cannot be injected leaves the requirement not measured, with the reason)
and always undoes it (heal, reset, resume, start), also on failure and on Ctrl-C. The workload traffic
goes only to the site's own endpoint and its uplink's (loopback or declared endpoints), with a timeout on
every request.

Requirements naming the same check with the same params on the same site share one experiment: the
first one measures, the others are judged on the same numbers (their notes say so).

The checks decide no status themselves: the one verdict rule (conformance/model/verdict.py) judges what
they record. Around every experiment they record the pressure on the harness's machine (PSI: CPU, I/O,
memory) and the emulated site's own CPU use as `pressure` evidence, so a timing taken on a starved machine
is judged as the latency suite's are (partition records the steady probe's p50 next to its p99 for that).
A steady probe whose own self-check failed (it fell behind its own schedule) is an invalid measurement of
what it measured (availability, p99, probes): inconclusive, never a fail of the site.
"""

from __future__ import annotations

import functools
import time
import uuid
from typing import Any

import pytest

from conformance.measure.cutoff import WORKLOADS, CutOff
from conformance.measure.health import healthy, settled_health, wait_healthy
from conformance.measure.pacing import sleep_until
from conformance.measure import footprint as F
from conformance.measure.host.disk import disk_used
from conformance.measure.host.site import scope_for, site_data_dir, site_hosts
from conformance.measure.longoutage import GrowthSampler, TokenKeeper, growth
from conformance.measure.outagelength import fmt_seconds, outage_note
from conformance.measure.pressure import PressureWindow, TreeCpu, own_site_pid, record_pressure
from conformance.measure.recovery import crash, hang
from conformance.measure.resync import await_resync, before_fault
from conformance.measure.sales import Poster
from conformance.measure.siteapi import central_client, site_client
from conformance.measure.steady import SteadyProbe, figures, invalid_evidence, latency_raw
from conformance.measure.wansweep import OPERATIONS, sweep, sweep_figures, sweeps_of
from conformance.model.catalog.resilience import CUT_MODES  # what a WAN cut does to connections
from conformance.model.errors import MeasurementError, NotMeasured


def _tag(kind: str) -> str:
    return f"res-{kind}-{uuid.uuid4().hex[:10]}"


def _cut_mode(params: dict, default: str = "drop") -> str:
    """The WAN cut's mode; the catalogue fills in the default, so `default` only serves direct calls."""
    mode = params.get("cut_mode") or default
    if mode not in CUT_MODES:  # the catalogue declares str params without choices: checked here
        raise MeasurementError(f"cut_mode: expected one of {', '.join(CUT_MODES)}, got {mode!r}")
    return mode


def _fault_log(rec, faults) -> None:
    if faults.kind != "emulated":  # hook commands and built-in faults on a real site: what was done there
        for line in faults.log:
            rec.note(line)


def _scaled(rec, edge, what: str, seconds: float) -> None:
    note = outage_note(edge.requirement.unscaled, edge.params, what, seconds)
    if note:
        rec.note(note)


def _put(rec, metrics: list[tuple[str, Any, str]], notes: list[str]) -> None:
    """Record what a probe of conformance.measure found."""
    for metric, value, unit in metrics:
        rec.record(metric, value, unit)
    for text in notes:
        rec.note(text)


# ---------------------------------------------------------------------------------------------
# resilience.partition


@pytest.mark.edge_check("resilience.partition")
def test_partition(edge, request):
    edge.shared(_partition)


def _partition(edge, rec) -> None:
    p = edge.params
    workloads = list(p.get("workloads") or [])
    unknown = sorted(set(workloads) - set(WORKLOADS))
    if unknown:
        raise MeasurementError(f"workloads: unknown {', '.join(unknown)} (known: {', '.join(WORKLOADS)})")
    cut_mode = _cut_mode(p)
    faults = edge.faults  # SKIP here on a real target without --allow-faults
    faults.require("partition", "heal")
    site = site_client(edge)
    duration, op_timeout = float(p["duration"]), float(p["op_timeout"])
    tag = _tag("cut")
    cutoff = CutOff(site, lambda: central_client(edge)[1], workloads, tag, op_timeout)
    cutoff.prime()

    # The content is read halfway through the cut, once the cached copy has expired.
    if cutoff.fetched_at is not None:
        sleep_until(cutoff.fetched_at + float(p["content_ttl"]) + 0.3 - duration / 2)
    window, site_cpu = PressureWindow(), TreeCpu(own_site_pid(edge))  # the cut's timings: see record_pressure
    probe = SteadyProbe(edge, site.base + "/" + (p["path"] or "/").lstrip("/"), float(p["rate"]), duration,
                        float(p["probe_timeout"]))
    poster = Poster(site, f"{tag}-sale", max(float(p["pos_rate"]), 1.0 / duration), op_timeout)
    with faults.partitioned(cut_mode, duration=duration):
        cut_at = time.monotonic()
        probe.start()
        if "pos" in workloads:
            poster.start(until=cut_at + duration)
        sleep_until(cut_at + duration / 2)
        cutoff.read()
        sleep_until(cut_at + duration)
        poster.stop.set()
    healed_at = time.monotonic()
    _fault_log(rec, faults)
    rec.note(f"WAN cut ({cut_mode}) for {healed_at - cut_at:.1f} s")
    _scaled(rec, edge, "cut", duration)

    result = probe.join()
    record_pressure(rec, window.stop(), site_cpu.cores())
    _put(rec, *figures(result, float(p["probe_timeout"])))
    for evidence in invalid_evidence(result):  # what the probe measured is undecided, nothing else
        rec.evidence(**evidence)
    rec.attach("latency", latency_raw(result))
    detail: dict[str, Any] = {"duration_s": round(healed_at - cut_at, 3), "probe": result.summary_line(),
                              "probe_valid": result.valid, "probe_invalid_reason": result.invalid_reason}

    if "pos" in workloads:
        poster.join()
        metrics, notes, detail["pos"] = poster.acceptance("the cut")
        _put(rec, metrics, notes)
    metrics, notes, read = cutoff.figures(healed_at)
    _put(rec, metrics, notes)
    detail.update(read)
    rec.attach("partition", detail)


# ---------------------------------------------------------------------------------------------
# resilience.resync


@pytest.mark.edge_check("resilience.resync")
def test_resync(edge, request):
    edge.shared(_resync)


def _resync(edge, rec) -> None:
    p = edge.params
    outage = p.get("outage") or "partition"
    if outage not in ("partition", "central"):
        raise MeasurementError(f'outage: expected "partition" or "central", got {outage!r}')
    faults = edge.faults
    central_site, central = central_client(edge)
    duration, timeout = float(p["duration"]), float(p["timeout"])
    if outage == "partition":
        cut_mode = _cut_mode(p)
        faults.require("partition", "heal")
        injector, fault = faults, lambda: faults.partitioned(cut_mode, duration=duration)
        what = f"WAN cut ({cut_mode})"
    else:
        injector = faults.for_site(central_site)
        injector.require("stop", "start")
        fault = functools.partial(injector.stopped, duration=duration)
        what = f"{central_site.name} down"
    site = site_client(edge)
    name = edge.site.name

    in_sync, notes = before_fault(site, central, name, min(timeout, 10.0), "outage")
    _put(rec, [], notes)
    tag = _tag("sync")
    records = max(1, int(p["records"]))
    poster = Poster(site, tag, records / (duration * 0.9), float(p["op_timeout"]))
    window, site_cpu = PressureWindow(), TreeCpu(own_site_pid(edge))  # the outage and the resync wait
    with fault():
        began = time.monotonic()
        poster.start(until=began + duration * 0.9)
        poster.join()  # all of them, even if the schedule ran late
        sleep_until(began + duration)
    healed_at = time.monotonic()
    _fault_log(rec, injector)
    rec.note(f"{what} for {healed_at - began:.1f} s")
    _scaled(rec, edge, "outage", duration)

    created = poster.accepted
    rec.record("created", len(created))
    if not created:
        raise MeasurementError(f"no sale was accepted during the outage ({poster.statuses()}; e.g. "
                               f"{poster.first_failure()}): nothing to resync")
    if len(created) < len(poster.results):
        rec.note(f"{len(poster.results) - len(created)} of {len(poster.results)} sales were refused during the "
                 f"outage (e.g. {poster.first_failure()}); only accepted ones must reach central")
    out, notes = await_resync(site, central, name, tag, created, healed_at, timeout, float(p["settle"]), in_sync)
    _put(rec, [], notes)
    record_pressure(rec, window.stop(), site_cpu.cores())
    rec.record("delivered_ratio", out["delivered"] / len(created), "ratio")
    rec.record("duplicates", out["duplicates"])
    rec.record("digest_match", out["digest_match"])
    rec.record("sync_time", out["sync_time"], "s")
    rec.attach("resync", {k: v for k, v in out.items()})


# ---------------------------------------------------------------------------------------------
# resilience.degraded


@pytest.mark.edge_check("resilience.degraded")
def test_degraded(edge, request):
    edge.shared(_degraded)


def _degraded(edge, rec) -> None:
    p = edge.params
    sweeps = sweeps_of(p)
    ops = list(p.get("operations") or [])
    unknown = sorted(set(ops) - set(OPERATIONS))
    if unknown or not ops:
        raise MeasurementError(f"operations: expected pos and/or content, got {ops!r}")
    faults = edge.faults
    faults.require("degrade", "reset")
    site = site_client(edge)
    timeout = float(p["op_timeout"])
    window, site_cpu = PressureWindow(), TreeCpu(own_site_pid(edge))  # the whole sweep
    out = sweep(site, sweeps, ops, max(1, int(p["ops_per_step"])), timeout, int(p["content_size"]), _tag("wan"),
                faults.degraded)
    record_pressure(rec, window.stop(), site_cpu.cores())
    _fault_log(rec, faults)
    rec.attach("sweep", out["tables"][0])
    rec.attach("sweeps", out["tables"])
    _put(rec, *sweep_figures(out, timeout))


# ---------------------------------------------------------------------------------------------
# resilience.recovery


@pytest.mark.edge_check("resilience.recovery")
def test_recovery(edge, request):
    edge.shared(_recovery)


def _recovery(edge, rec) -> None:
    p = edge.params
    if not p["kill"] and not p["pause"]:
        raise MeasurementError("kill and pause are both off: nothing to do")
    faults = edge.faults
    faults.require(*(["kill"] if p["kill"] else []), *(["pause", "resume"] if p["pause"] else []))
    site = site_client(edge)
    path, timeout, op_timeout = p["path"] or "/health", float(p["timeout"]), float(p["op_timeout"])
    if wait_healthy(site, path, min(timeout, 10.0)) is None:
        raise MeasurementError(f"the site is not healthy before the faults (GET {path})")

    window, site_cpu = PressureWindow(), TreeCpu(own_site_pid(edge))  # the crash and the hang
    if p["kill"]:
        metrics, notes, raw = crash(site, faults.kill, faults.restart if faults.supports("restart") else None,
                                    path=path, timeout=timeout, op_timeout=op_timeout, records=int(p["records"]),
                                    tag=_tag("crash"))
        _put(rec, metrics, notes)
        rec.attach("crash", raw)
    if p["pause"]:
        paused = functools.partial(faults.paused, duration=float(p["pause_for"]))  # a real site's dead-man
        metrics, notes, raw = hang(site, paused, path=path, timeout=timeout, op_timeout=op_timeout,
                                   hang_timeout=float(p["hang_timeout"]), pause_for=float(p["pause_for"]),
                                   tag=_tag("hang"), fresh_id=_tag("after-hang"))
        _put(rec, metrics, notes)
        rec.attach("hang", raw)
    record_pressure(rec, window.stop(), site_cpu.cores())  # a killed site's own CPU is unknown: None
    _fault_log(rec, faults)


# ---------------------------------------------------------------------------------------------
# resilience.flap


@pytest.mark.edge_check("resilience.flap")
def test_flap(edge, request):
    edge.shared(_flap)


def _flap(edge, rec) -> None:
    p = edge.params
    cut_mode = _cut_mode(p, default="hold")
    faults = edge.faults
    faults.require("partition", "heal")
    _, central = central_client(edge)
    site = site_client(edge)
    period, cycles, timeout = float(p["period"]), max(1, int(p["cycles"])), float(p["timeout"])
    cut = float(p["cut"]) if p.get("cut") is not None else period / 2
    if not 0 < cut < period:
        raise MeasurementError(f"cut ({cut:g} s) must be shorter than the period ({period:g} s)")
    name = edge.site.name
    in_sync, notes = before_fault(site, central, name, min(timeout, 10.0), "flapping")
    _put(rec, [], notes)
    tag = _tag("flap")
    window, site_cpu = PressureWindow(), TreeCpu(own_site_pid(edge))  # the flapping and the resync wait
    began = time.monotonic()
    poster = Poster(site, tag, float(p["rate"]), float(p["op_timeout"])).start(until=began + period * cycles)
    try:
        for c in range(cycles):
            start = began + c * period
            sleep_until(start)
            with faults.partitioned(cut_mode, duration=cut):
                sleep_until(start + cut)
        sleep_until(began + period * cycles)
    finally:
        poster.stop.set()
    poster.join()
    healed_at = time.monotonic()
    _fault_log(rec, faults)
    rec.note(f"{cycles} flaps of {period:g} s (cut {cut:g} s, {cut_mode}; healed {period - cut:g} s)")
    created = poster.accepted
    rec.record("created", len(created))
    if not created:
        raise MeasurementError(f"no sale was accepted while the link flapped: {poster.first_failure()}")
    out, notes = await_resync(site, central, name, tag, created, healed_at, timeout, float(p["settle"]), in_sync)
    _put(rec, [], notes)
    record_pressure(rec, window.stop(), site_cpu.cores())
    rec.record("lost", out["created"] - out["delivered"])
    rec.record("duplicates", out["duplicates"])
    rec.record("sync_time", out["sync_time"], "s")
    health = settled_health(site, "/health", float(p["op_timeout"]))
    rec.record("healthy", healthy(health))
    if not healthy(health):
        rec.note(f"after the flapping GET /health -> {health.describe()}")
    rec.attach("flap", {k: v for k, v in out.items()})


# ---------------------------------------------------------------------------------------------
# resilience.long_outage


@pytest.mark.edge_check("resilience.long_outage")
def test_long_outage(edge, request):
    edge.shared(_long_outage)


MiB = 2**20


def _growth_reader(edge) -> tuple[Any, str | None]:
    """A function reading (memory, disk) of the site, and why there is none (no host, no data dir)."""
    try:
        host = site_hosts(edge.site, edge.params)[0]
    except NotMeasured as exc:
        return None, f"{exc.reason}; to measure memory and disk growth: {exc.remedy}"
    scope = scope_for(edge.site, edge.params, host)
    data_dir = site_data_dir(edge.site, host)

    def read() -> tuple[float | None, float | None]:
        memory, _ = F.memory_used(edge.site, host, scope)
        return float(memory), float(disk_used(host, [data_dir])) if data_dir else None

    return read, None if data_dir else "the site declares no data dir (labels.data_dir): disk growth not measured"


def _long_outage(edge, rec) -> None:
    p = edge.params
    cut_mode = _cut_mode(p)
    faults = edge.faults
    faults.require("partition", "heal")
    site = site_client(edge)
    central_site, central = central_client(edge)
    name = edge.site.name
    duration = float(p["duration"])
    if duration <= 0:
        raise MeasurementError(f"duration must be above 0 s, got {duration:g} s")
    real = float(edge.requirement.unscaled.get("duration", duration))  # what the cut stands for
    token_ttl = float(p.get("token_ttl") or duration / 3)
    baseline = float(p.get("baseline") or min(max(duration / 4, 5.0), 600.0))
    every = float(p.get("sample_every") or min(max(duration / 60, 0.5), 60.0))
    checkpoint_every = float(p.get("checkpoint_every") or max(duration / 20, 10.0))
    rate = max(float(p["pos_rate"]), 1.0 / duration)
    op_timeout = float(p["op_timeout"])
    tag = _tag("long")

    read, unmeasured = _growth_reader(edge)
    if unmeasured:
        rec.note(unmeasured)
    in_sync, notes = before_fault(site, central, name, min(float(p["timeout"]), 10.0), "outage")
    _put(rec, [], notes)
    keeper = TokenKeeper(site, central, f"{tag}-user", token_ttl, op_timeout)
    keeper.obtain()
    sampler = GrowthSampler(read, every) if read else None
    warmup, poster = Poster(site, _tag("warm"), rate, op_timeout), Poster(site, tag, rate, op_timeout)
    try:  # whatever ends the check (a failed hook, Ctrl-C), nothing it started goes on into the next one
        if sampler:
            sampler.start()
        # The warm-up: the same sales with the WAN up, so what grows with any sale is not the backlog's.
        warmup.start(until=time.monotonic() + baseline).join()
        window, site_cpu = PressureWindow(), TreeCpu(own_site_pid(edge))
        with faults.partitioned(cut_mode, duration=duration):
            cut_at = time.monotonic()
            if sampler:
                sampler.mark_cut()
            keeper.start()
            poster.start(until=cut_at + duration)
            next_checkpoint = cut_at + checkpoint_every
            while time.monotonic() < cut_at + duration:
                sleep_until(min(next_checkpoint, cut_at + duration))
                if time.monotonic() >= next_checkpoint:
                    edge.checkpoint(_progress(sampler, poster, keeper, cut_at, duration, real))
                    next_checkpoint += checkpoint_every
            poster.stop.set()
            keeper.stop()
            # The session outlived its first token: the site must accept the renewed one now.
            late = keeper.check() if keeper.first_expiry is not None and time.time() > keeper.first_expiry else None
            if sampler:
                sampler.mark_heal()
        healed_at = time.monotonic()
    finally:
        warmup.stop.set()
        poster.stop.set()
        keeper.stop()
        if sampler:
            sampler.stop()
    _fault_log(rec, faults)
    rec.note(f"WAN cut ({cut_mode}) for {healed_at - cut_at:.1f} s")
    _scaled(rec, edge, "cut", duration)

    poster.join()
    created = poster.accepted
    rec.record("created", len(created))
    if late is None:
        rec.note(f"the first token (lifetime {token_ttl:g} s) had not run out by the end of the cut: give "
                 "token_ttl shorter than the cut")
    else:
        rec.record("auth_ok", late.ok and not keeper.failures)
        rec.record("renewals", keeper.renewals)
        rec.note(f"token: lifetime {token_ttl:g} s, renewed {keeper.renewals} times at the site during the cut; "
                 f"after the first token's expiry the site answered {late.describe()}")
        if keeper.shortest_lifetime is not None and keeper.shortest_lifetime < 0.9 * token_ttl:
            rec.note(f"token: the site gave tokens as short as {keeper.shortest_lifetime:.0f} s (asked for "
                     f"{token_ttl:g} s); the client renewed at half of each token's own lifetime")
        for failure in keeper.failures[:3]:
            rec.note(f"token {failure}")

    if sampler:
        samples, cut_index = sampler.snapshot()
        for which, metric in ((1, "memory"), (2, "disk")):
            g = growth(samples, cut_index, which, duration, real)
            if g.measured is None:
                rec.note(f"{metric}: too few samples during the cut ({g.samples}) to measure growth")
                continue
            rec.record(f"{metric}_growth", g.measured / MiB, "MiB")
            rec.record(f"{metric}_projected", g.projected / MiB, "MiB")
            noise = f" (the samples' scatter alone could read {g.noise_projected / MiB:.1f} MiB)" \
                if g.noise_projected is not None else ""
            rec.note(f"{metric}: {g.measured / MiB:+.1f} MiB over the {duration:g} s cut ({g.rate / 1024:+.1f} KiB/s "
                     f"from {g.samples} samples; {g.backlog_rate / 1024:+.1f} KiB/s against the warm-up with the WAN "
                     "up), "
                     f"so the backlog adds {g.projected / MiB:.1f} MiB over {fmt_seconds(real)}{noise}")
            if g.noise_projected:
                rec.evidence("floor", metric=f"{metric}_projected", value=round(g.noise_projected / MiB, 3),
                             unit="MiB", reason="what the samples' scatter alone could project to")
            rec.attach(f"{metric}_series", {"unit": "B", "cut_s": duration, "samples": g.series})
        if sampler.errors:
            rec.note(f"{len(sampler.errors)} samples failed, e.g. {sampler.errors[0]}")

    if not created:
        raise MeasurementError(f"no sale was accepted during the cut ({poster.statuses()}; e.g. "
                               f"{poster.first_failure()}): no backlog to catch up")
    out, notes = await_resync(site, central, name, tag, created, healed_at, float(p["timeout"]),
                              float(p["settle"]), in_sync)
    _put(rec, [], notes)
    record_pressure(rec, window.stop(), site_cpu.cores())
    rec.record("delivered_ratio", out["delivered"] / len(created), "ratio")
    rec.record("duplicates", out["duplicates"])
    rec.record("catch_up_time", out["sync_time"], "s")
    rec.attach("long_outage", {"duration_s": round(healed_at - cut_at, 3), "real_s": real, "created": len(created),
                               "renewals": keeper.renewals, "token_ttl_s": token_ttl})


def _progress(sampler, poster, keeper, cut_at: float, duration: float, real: float) -> dict:
    """What a checkpoint says: how far into the cut, sales made, renewals, the latest memory and disk."""
    elapsed = time.monotonic() - cut_at
    stands = f", standing for {fmt_seconds(real)}" if real != duration else ""
    summary = (f"cut {elapsed / duration:.0%} ({fmt_seconds(round(elapsed))} of {fmt_seconds(duration)}{stands}), "
               f"{poster.count or len(poster.results):,} sales, {keeper.renewals} token renewals")
    progress = {"summary": summary, "elapsed_s": round(elapsed, 1), "cut_s": duration, "real_s": real,
                "sales_attempted": poster.count or len(poster.results), "renewals": keeper.renewals,
                "renewal_failures": len(keeper.failures)}
    if sampler:
        samples, cut_index = sampler.snapshot()
        during = [s for s in samples[cut_index:] if s[1] is not None]
        if during:
            progress["memory_bytes"], progress["disk_bytes"] = during[-1][1], during[-1][2]
            progress["memory_bytes_at_cut"], progress["disk_bytes_at_cut"] = during[0][1], during[0][2]
    return progress
