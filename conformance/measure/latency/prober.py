"""The open-loop prober: send on a fixed schedule, time every request from when it SHOULD have gone.

One sender task walks the arrival schedule. At each intended time it takes a free in-flight slot and
starts the request without waiting for it, so a slow answer never delays the next send (open loop). When all
`max_in_flight` slots are busy the sender waits for one; the requests it sends late still count their
latency from their intended time. This is the coordinated-omission correction of wrk2 and k6's
arrival-rate executors: a target that stalls for 500 ms is charged for every request scheduled during
the stall, not just for the one that happened to be in flight.

Protocols that can (CallbackProtocol: HTTP keep-alive, TCP and UDP echo) are driven without tasks:
the sender writes the request itself and the transport's data_received() stamps the answer, which
removes two event-loop hops from every measurement.

Each request is timed twice, both recorded in HDR histograms (us):
    latency = done - intended      what users on this schedule experience (the checked number)
    service = done - actual send   what the network and server took once the request was out
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import psutil

from .config import ProbeConfig
from .histogram import encode, summarize
from .protocols import CallbackProtocol, Protocol, make_protocol
from .recorder import Recorder
from .result import LatencyResult
from .runloop import run_until_done
from .safety import check_target
from .schedule import arrival_offsets_ns
from .selfcheck import LoopLagTicker, assess, lag_stats
from .timing import (
    Sleeper,
    fine_timer_slack,
    gc_paused,
    loop_kind,
    new_probe_loop,
    now_ns,
    pinned_to_one_cpu,
    realtime_scheduling,
    spin_ns_for,
    timer_resolution_ns,
)

# The schedule starts this long after setup so the first send is not late by construction.
_LEAD_NS = 2_000_000


async def probe(config: ProbeConfig, protocol: Protocol | None = None) -> LatencyResult:
    """Run one probe on the running event loop. `protocol` overrides the one named in the config.

    Raises safety.TargetRefused before sending anything if the target host is not allowed.
    """
    check_target(config.parsed_target.host, config.allow_hosts)
    floor = None
    if config.calibrate:
        from .calibrate import measure_floor  # late: calibrate imports this module

        floor = (await measure_floor(config)).to_dict()
    with (gc_paused(), fine_timer_slack(), pinned_to_one_cpu(config.pin_cpu) as cpu,
          realtime_scheduling(config.realtime) as realtime):
        result = await _ProbeRun(config, protocol or make_protocol(config)).execute()
    result.floor = floor
    result.realtime = realtime
    result.cpu = cpu
    return result


def run_probe(config: ProbeConfig, protocol: Protocol | None = None) -> LatencyResult:
    """Synchronous probe: runs a fresh event loop (microsecond timers) in the calling thread.

    Interrupted (KeyboardInterrupt, or SIGTERM where a handler raises), the probe is cancelled and
    its loop torn down before the interrupt is raised (see runloop.py)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("run_probe() was called inside a running event loop; use `await probe(config)`")
    # run_until_done takes the loop down on every way out; Ctrl-C or SIGTERM cancels the probe, which
    # unwinds through its finally blocks, and the KeyboardInterrupt is raised here afterwards.
    return run_until_done(lambda: new_probe_loop(config.max_in_flight), lambda: probe(config, protocol))


@dataclass
class _Schedule:
    """What the sender did with the schedule."""

    scheduled: int = 0  # measured requests the schedule asked for
    unsent: int = 0
    warmup_sent: int = 0
    first_measured_ns: int = 0  # intended time of the first measured request
    gave_up: str | None = None  # "slots" (all in flight for `timeout`) or "prober" (sender too slow)


class _ProbeRun:
    def __init__(self, config: ProbeConfig, protocol: Protocol):
        self.config = config
        self.protocol = protocol
        self.recorder = Recorder(lag_limit_ns=int(config.lag_limit_us * 1000))
        self.slots = asyncio.Semaphore(config.max_in_flight)
        self.callback_protocol = isinstance(protocol, CallbackProtocol)

    async def execute(self) -> LatencyResult:
        config, recorder = self.config, self.recorder
        loop = asyncio.get_running_loop()
        spin_ns = spin_ns_for(loop, config.rate)
        process = psutil.Process()
        cpu_before, wall_before = process.cpu_times(), time.perf_counter()

        ticker = LoopLagTicker(config.loop_tick_interval)  # never spins: its coarse-timer error is known
        sleeper = Sleeper(loop, spin_ns)
        tasks: set[asyncio.Future] = set()
        try:
            try:
                # connect() only prepares (resolves, picks an address); it must not hang or end the run:
                # an unreachable target shows up as failed requests, counted by kind.
                async with asyncio.timeout(config.timeout + 5.0):
                    await self.protocol.connect()
            except Exception:  # noqa: BLE001 - see above
                pass
            ticker.start()
            start_ns = now_ns() + _LEAD_NS
            schedule = await self._send_all(start_ns, sleeper, tasks)
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)  # each is bounded by the timeout
        finally:
            sleeper.close()
            await self._wind_down(tasks, ticker)

        cpu_after, wall_after = process.cpu_times(), time.perf_counter()
        cpu_s = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
        elapsed_s = (now_ns() - schedule.first_measured_ns) / 1e9 if schedule.first_measured_ns else 0.0

        loop_lag = lag_stats(ticker.lag)
        resolution_us = timer_resolution_ns(loop) / 1000
        invalid_reason = assess(
            scheduled=schedule.scheduled, sent=recorder.sent, unsent=schedule.unsent, late=recorder.late,
            lag_limit_us=config.lag_limit_us, max_late_ratio=config.max_late_ratio,
            loop_lag_p99_us=loop_lag["p99_us"], timer_resolution_us=resolution_us,
            max_in_flight=config.max_in_flight, behind_s=config.timeout, rate=config.rate,
            slots_exhausted=schedule.gave_up == "slots")
        sent = recorder.sent
        return LatencyResult(
            protocol=self.protocol.name,
            target=config.target,
            rate=config.rate,
            arrivals=config.arrivals,
            seed=config.seed,
            duration_s=config.duration,
            count=config.count,
            warmup_s=config.warmup,
            max_in_flight=config.max_in_flight,
            timeout_s=config.timeout,
            elapsed_s=elapsed_s,
            scheduled=schedule.scheduled,
            sent=sent,
            unsent=schedule.unsent,
            samples=recorder.latency.histogram.get_total_count(),
            timeouts=recorder.timeouts,
            errors=dict(recorder.errors),
            error_examples=dict(recorder.error_examples),
            warmup_sent=schedule.warmup_sent,
            latency=summarize(recorder.latency.histogram),
            service=summarize(recorder.service.histogram),
            histograms={"latency": encode(recorder.latency.histogram),
                        "service": encode(recorder.service.histogram)},
            send_lag={
                **lag_stats(recorder.dispatch_lag),
                "limit_us": config.lag_limit_us,
                "late": recorder.late,
                "late_ratio": round(recorder.late / sent, 6) if sent else 0.0,
                "queued": recorder.queued,
                "queued_ratio": round(recorder.queued / sent, 6) if sent else 0.0,
                "including_queueing": lag_stats(recorder.send_lag),
            },
            loop_lag={**loop_lag, "interval_us": config.loop_tick_interval * 1e6,
                      "timer_resolution_us": resolution_us},
            valid=invalid_reason is None,
            invalid_reason=invalid_reason,
            rejected=recorder.rejected,
            prober_cpu_percent=round(100 * cpu_s / max(wall_after - wall_before, 1e-9), 1),
            schedule_start_ns=start_ns,
            loop=loop_kind(loop),
        )

    async def _wind_down(self, tasks: set[asyncio.Future], ticker: LoopLagTicker) -> None:
        """Cancel what is still in flight (only when the probe itself was cancelled or failed), stop the
        ticker and close the connections: each step also when an earlier one was interrupted."""
        try:
            in_flight = list(tasks)
            for task in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
        finally:
            try:
                await ticker.stop()
            finally:
                await self.protocol.close()

    async def _send_all(self, start_ns: int, sleeper: Sleeper, tasks: set) -> _Schedule:
        """Walk the schedule, starting one task per request."""
        config = self.config
        loop = asyncio.get_running_loop()
        warmup_ns = round(config.warmup * 1e9)
        end_ns = warmup_ns + round(config.duration * 1e9) if config.duration is not None else None
        # Being `timeout` behind schedule means every request still to send would already have timed
        # out from its user's point of view: stop sending and count the rest as unsent (invalid run).
        behind_limit_ns = round(config.timeout * 1e9)
        backpressure_until = 0  # end of the most recent wait for a free slot
        out = _Schedule()

        for offset in arrival_offsets_ns(config.rate, config.arrivals, config.seed):
            measured = offset >= warmup_ns
            if measured:
                if end_ns is not None and offset >= end_ns:
                    break
                if config.count is not None and out.scheduled >= config.count:
                    break
                out.scheduled += 1
            intended = start_ns + offset
            if out.gave_up:
                out.unsent += measured
                continue
            if measured and not out.first_measured_ns:
                out.first_measured_ns = intended

            await sleeper.until(intended)
            now = now_ns()
            if now - intended > behind_limit_ns:
                # This far behind on waking: the lateness until the last wait for a slot ended is the
                # target's (its backpressure), the rest the sender's own. Name the larger share.
                target_share = backpressure_until - intended
                out.gave_up = "slots" if target_share > (now - intended) / 2 else "prober"
                out.unsent += measured
                continue
            queued = self.slots.locked()
            if queued:
                # Backpressure from the target: wait for a slot, but not past the behind limit.
                remaining_s = (intended + behind_limit_ns - now_ns()) / 1e9
                try:
                    async with asyncio.timeout(max(remaining_s, 0.0)):
                        await self.slots.acquire()
                except TimeoutError:
                    out.gave_up = "slots"
                    out.unsent += measured
                    continue
                backpressure_until = now_ns()
            else:
                await self.slots.acquire()  # a free slot: returns without suspending
            if now_ns() - intended > behind_limit_ns:
                # Past the limit once a slot was free: the wait for it (the target's backpressure) or,
                # without one, the prober's own slowness since it woke up.
                self.slots.release()
                out.gave_up = "slots" if queued else "prober"
                out.unsent += measured
                continue
            # Lateness up to `ready` is the target's (waiting for a slot); after it, the prober's.
            ready = max(intended, backpressure_until)
            if self.callback_protocol:
                pending = self._start(intended, ready, queued, measured)
            else:
                pending = loop.create_task(self._one(intended, ready, queued, measured))
            tasks.add(pending)
            pending.add_done_callback(tasks.discard)
            if not measured:
                out.warmup_sent += 1
        return out

    def _start(self, intended: int, ready: int, queued: bool, measured: bool) -> asyncio.Future:
        """CallbackProtocol: send right here (no task, no loop hop); a callback records the answer."""
        loop = asyncio.get_running_loop()
        sent_at = now_ns()
        if measured:
            self.recorder.sending(sent_at - intended, sent_at - ready, queued)
        try:
            future = self.protocol.start()
        except Exception as exc:  # noqa: BLE001 - a failure to send is a failed request
            future = loop.create_future()
            future.set_exception(exc)
        timer = loop.call_later(self.config.timeout, _expire, future)

        def finished(f: asyncio.Future) -> None:
            timer.cancel()
            self.slots.release()
            if not measured or f.cancelled():  # cancelled: the probe itself was cancelled
                return
            exc = f.exception()
            if exc is not None:
                self.recorder.failed(exc)
            else:
                done = f.result()  # stamped by data_received(), before any task could run
                self.recorder.succeeded(done - intended, done - sent_at)

        future.add_done_callback(finished)
        return future

    async def _one(self, intended: int, ready: int, queued: bool, measured: bool) -> None:
        recorder = self.recorder
        sent_at = now_ns()
        try:
            if measured:
                recorder.sending(sent_at - intended, sent_at - ready, queued)
            try:
                async with asyncio.timeout(self.config.timeout):
                    done = await self.protocol.request()
            except Exception as exc:  # noqa: BLE001 - every failure is counted by kind; CancelledError propagates
                if measured:
                    recorder.failed(exc)
            else:
                done = done or now_ns()
                if measured:
                    recorder.succeeded(done - intended, done - sent_at)
        finally:
            self.slots.release()


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(TimeoutError("no answer within the timeout"))
