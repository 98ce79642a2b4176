"""The prober end to end against small servers started in-test on 127.0.0.1:0.

Bounds are deliberately loose (this runs on a shared 2-core machine); each test still fails if the
feature it covers breaks: the bounds are far from what a broken implementation would produce.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import threading
import time

import pytest
from aiohttp import web

from conformance.measure.latency import ProbeConfig, Protocol, calibrate, decode, probe, run_probe, summarize
from conformance.measure.latency.__main__ import main as cli_main
from conformance.measure.latency.loopback import LoopbackServer
from conformance.measure.latency.schedule import arrival_offsets_ns
from conformance.measure.latency.timing import new_probe_loop

# Runs that must come out valid get a tolerant self-check: CI neighbours can delay a send by many ms.
# Still far below the 100-500 ms waits these tests provoke, so a prober that counted waits for a slot
# as its own lateness would fail them.
TOLERANT = {"lag_limit_us": 50_000.0, "max_late_ratio": 0.05}


class ThreadedAiohttp:
    """An aiohttp web app served from its own thread and event loop."""

    def __init__(self, app: web.Application, ssl_context: ssl.SSLContext | None = None):
        self.app, self.ssl_context = app, ssl_context
        self.port = 0
        self._ready = threading.Event()
        self._loop = None

    def __enter__(self):
        threading.Thread(target=self._main, daemon=True).start()
        assert self._ready.wait(10)
        return self

    def _main(self):
        loop = self._loop = new_probe_loop()
        runner = web.AppRunner(self.app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    def __exit__(self, *exc):
        self._loop.call_soon_threadsafe(self._loop.stop)

    def url(self, path="/", scheme="http"):
        return f"{scheme}://127.0.0.1:{self.port}{path}"


class ThreadedRawServer:
    """asyncio.start_server with a custom connection handler, in its own thread."""

    def __init__(self, handler):
        self.handler = handler
        self.port = 0
        self._ready = threading.Event()

    def __enter__(self):
        threading.Thread(target=self._main, daemon=True).start()
        assert self._ready.wait(10)
        return self

    def _main(self):
        loop = self._loop = asyncio.new_event_loop()
        server = loop.run_until_complete(asyncio.start_server(self.handler, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        loop.run_forever()
        server.close()
        loop.close()

    def __exit__(self, *exc):
        self._loop.call_soon_threadsafe(self._loop.stop)


def free_port(kind=socket.SOCK_STREAM) -> int:
    """A port nothing listens on (bound, read, released)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def aiohttp_server():
    async def slow(request):
        await asyncio.sleep(0.020)
        return web.Response(text="slow")

    async def chunked(request):
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b"a" * 100, b"b" * 5000, b"c"):
            await response.write(part)
        await response.write_eof()
        return response

    async def post(request):
        body = await request.read()
        return web.Response(text="ok") if body == b"hello" else web.Response(status=400)

    async def fail(request):
        return web.Response(status=503)

    app = web.Application()
    app.add_routes([web.get("/slow", slow), web.get("/chunked", chunked), web.post("/post", post),
                    web.get("/fail", fail)])
    with ThreadedAiohttp(app) as server:
        yield server


# --- measuring ----------------------------------------------------------------------------------


def test_measures_injected_server_delay(aiohttp_server):
    result = run_probe(ProbeConfig(aiohttp_server.url("/slow"), rate=50, duration=1.0, warmup=0.1))
    assert result.samples == result.scheduled == 50
    assert 19_000 <= result.latency["p50_us"] < 40_000
    assert 19_000 <= result.service["p50_us"] < 40_000
    assert result.latency["min_us"] >= 19_000
    assert result.errors == {} and result.timeouts == 0


def test_coordinated_omission_is_corrected():
    """A 500 ms stall under a 100/s schedule with one request in flight: one request sees the stall as
    service time, but the ~50 scheduled behind it wait too, and latency from the intended send time
    charges them for it; service time alone (what a closed-loop tool reports) hides it."""
    with LoopbackServer(stall_s=0.5, stall_first_s=0.8) as server:
        result = run_probe(ProbeConfig(server.http_url, rate=100, duration=2.5, max_in_flight=1, **TOLERANT))
        assert len(server.stalls_ns) == 1
    assert result.samples == 250 and result.unsent == 0
    assert result.latency["p99_us"] >= 250_000
    assert result.latency["max_us"] >= 400_000
    assert result.service["p99_us"] < 50_000
    assert result.service["max_us"] >= 250_000  # the request that was in flight during the stall
    assert result.send_lag["queued"] >= 30  # the ones that waited for the in-flight slot
    # Backpressure from the target is not the prober falling behind: the run stays valid.
    assert result.valid, result.invalid_reason


def test_open_loop_keeps_sending_during_a_stall():
    """With free slots the sends go out on schedule even while the server is stalled."""
    with LoopbackServer(stall_s=0.3, stall_first_s=0.5) as server:
        result = run_probe(ProbeConfig(server.tcp_url, rate=100, duration=1.5, max_in_flight=64, **TOLERANT))
    assert result.samples == 150
    assert result.send_lag["queued"] == 0
    assert result.send_lag["including_queueing"]["p99_us"] < 100_000  # closed loop: ~300 ms
    assert result.service["p90_us"] >= 100_000  # ~20% of requests sat in the stalled server


def test_warmup_requests_are_not_recorded():
    slow_first = {"delay_fn": lambda i: 0.06 if i < 10 else 0.0}
    with LoopbackServer(**slow_first) as server:
        warm = run_probe(ProbeConfig(server.http_url, rate=100, count=20, warmup=0.3, **TOLERANT))
        assert server.requests == 50
    assert warm.warmup_sent == 30 and warm.samples == 20 and warm.sent == 20
    assert warm.latency["max_us"] < 40_000
    with LoopbackServer(**slow_first) as server:  # control: without warm-up the slow ones are recorded
        cold = run_probe(ProbeConfig(server.http_url, rate=100, count=20, **TOLERANT))
    assert cold.warmup_sent == 0
    assert cold.latency["max_us"] >= 55_000


class RecordingProtocol(Protocol):
    """Succeeds at once and notes when each request was started."""

    name = "recording"

    def __init__(self, config):
        super().__init__(config)
        self.calls: list[int] = []

    async def request(self) -> None:
        self.calls.append(time.perf_counter_ns())


def test_poisson_arrivals_are_seeded_and_followed_by_the_sender():
    config = ProbeConfig("tcp://127.0.0.1:9", rate=200, count=60, arrivals="poisson", seed=7)
    recording = RecordingProtocol(config)
    result = run_probe(config, protocol=recording)
    assert result.samples == 60 and result.protocol == "recording"
    sent = [t - result.schedule_start_ns for t in recording.calls]
    seed7 = list(itertools.islice(arrival_offsets_ns(200, "poisson", 7), 60))
    seed8 = list(itertools.islice(arrival_offsets_ns(200, "poisson", 8), 60))
    lags = [s - e for s, e in zip(sent, seed7)]
    assert min(lags) >= 0  # open loop: never before the intended time
    assert statistics.median(lags) < 5_000_000  # and close to it
    assert sum(s < e for s, e in zip(sent, seed8)) >= 5  # another seed's schedule does not fit


def test_poisson_arrivals_reach_the_target_spread_out():
    def server_gaps(arrivals):
        with LoopbackServer(record_arrivals=True) as server:
            result = run_probe(ProbeConfig(server.http_url, rate=100, count=40, arrivals=arrivals, seed=7))
            times = list(server.arrivals_ns)
        assert result.samples == 40 and len(times) == 40
        return [(b - a) / 1e6 for a, b in zip(times, times[1:])]  # ms

    # Medians, not stdev: a busy CI neighbour can delay a few arrivals without changing the verdict.
    assert statistics.median(abs(gap - 10.0) for gap in server_gaps("poisson")) > 4.5  # seed 7: 6.9
    assert statistics.median(abs(gap - 10.0) for gap in server_gaps("fixed")) < 3.0


# --- protocols ----------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["http", "http-newconn", "tcp-connect", "tcp-echo", "udp-echo"])
def test_each_protocol_measures_against_loopback(protocol):
    with LoopbackServer() as server:
        result = run_probe(ProbeConfig(server.url_for(protocol), protocol=protocol, rate=200, count=40,
                                       payload_size=256))
        requests, connections = server.requests, server.connections
    assert result.protocol == protocol
    assert result.samples == 40, result.error_examples
    assert result.errors == {} and result.timeouts == 0
    assert 0 < result.service["p50_us"] <= result.latency["p50_us"] + 1
    if protocol == "tcp-connect":
        assert connections >= 40
    elif protocol in ("http-newconn",):
        assert requests == 40 and connections >= 40
    else:
        assert requests >= 40
        if protocol in ("http", "tcp-echo"):
            assert connections < 20  # kept alive and reused, not one per request


def test_http_chunked_and_post(aiohttp_server):
    chunked = run_probe(ProbeConfig(aiohttp_server.url("/chunked"), rate=100, count=10, max_in_flight=1))
    assert chunked.samples == 10, chunked.error_examples
    post = run_probe(ProbeConfig(aiohttp_server.url("/post"), method="POST", body=b"hello", rate=100, count=5))
    assert post.samples == 5, post.error_examples
    wrong = run_probe(ProbeConfig(aiohttp_server.url("/post"), method="POST", body=b"bye", rate=100, count=5))
    assert wrong.errors == {"http_400": 5} and wrong.samples == 0


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI needed to make a test certificate")
def test_https_keepalive_and_certificate_checking(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def ok_handler(request):
        return web.Response(text="ok")

    app = web.Application()
    app.add_routes([web.get("/", ok_handler)])
    with ThreadedAiohttp(app, context) as server:
        url = server.url("/", scheme="https")
        ok = run_probe(ProbeConfig(url, verify_tls=False, rate=100, count=10))
        newconn = run_probe(ProbeConfig(url, protocol="http-newconn", verify_tls=False, rate=100, count=5))
        untrusted = run_probe(ProbeConfig(url, rate=100, count=3))
    assert ok.samples == 10, ok.error_examples
    assert newconn.samples == 5, newconn.error_examples
    assert untrusted.errors == {"tls": 3}


# --- failures -----------------------------------------------------------------------------------


def test_refused_connections_are_counted_not_dropped():
    for protocol, url in (("http", f"http://127.0.0.1:{free_port()}/"),
                          ("tcp-connect", f"tcp://127.0.0.1:{free_port()}"),
                          ("udp-echo", f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}")):
        result = run_probe(ProbeConfig(url, protocol=protocol, rate=100, count=5, max_in_flight=1, timeout=0.5))
        assert result.sent == 5
        assert result.errors == {"connection_refused": 5}, (protocol, result.errors, result.timeouts)
        assert result.samples == 0 and result.latency["p50_us"] is None
        assert result.to_dict()["error_ratio"] == 1.0


def test_server_that_closes_without_answering():
    async def close_at_once(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    with ThreadedRawServer(close_at_once) as server:
        result = run_probe(ProbeConfig(f"http://127.0.0.1:{server.port}/", rate=100, count=8))
    assert result.samples == 0 and result.timeouts == 0
    assert sum(result.errors.values()) == 8
    assert set(result.errors) <= {"connection_closed", "connection_reset"}


def test_server_that_never_answers_times_out():
    async def hold(reader, writer):
        await asyncio.sleep(30)

    with ThreadedRawServer(hold) as server:
        start = time.monotonic()
        result = run_probe(ProbeConfig(f"http://127.0.0.1:{server.port}/", rate=50, count=5, timeout=0.2))
        took = time.monotonic() - start
    assert result.timeouts == 5 and result.samples == 0 and result.errors == {}
    assert result.to_dict()["timeout_ratio"] == 1.0
    assert took < 5  # every operation is bounded by the timeout

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # UDP: bound, never replies
    silent.bind(("127.0.0.1", 0))
    with silent:
        lost = run_probe(ProbeConfig(f"udp://127.0.0.1:{silent.getsockname()[1]}", rate=50, count=4, timeout=0.2))
    assert lost.timeouts == 4 and lost.samples == 0


@pytest.mark.parametrize("protocol", ["http", "tcp-echo", "udp-echo"])
def test_a_timed_out_connection_is_not_reused(protocol):
    """The first answer comes after the timeout. Were its connection reused, that late answer would be
    taken for the next request's (wrong timing, or an echo mismatch)."""
    with LoopbackServer(delay_fn=lambda i: 0.3 if i == 0 else 0.0) as server:
        result = run_probe(ProbeConfig(server.url_for(protocol), protocol=protocol, rate=50, count=10,
                                       max_in_flight=1, timeout=0.1))
        time.sleep(0.3)  # let the late answer arrive before the server stops
    assert result.timeouts == 1, (result.timeouts, result.errors)
    assert result.errors == {} and result.samples == 9
    assert result.service["max_us"] < 100_000


def test_http_error_status_is_an_error_not_a_sample(aiohttp_server):
    result = run_probe(ProbeConfig(aiohttp_server.url("/fail"), rate=100, count=6))
    assert result.errors == {"http_503": 6} and result.samples == 0


# --- self-check ---------------------------------------------------------------------------------


def test_falling_behind_makes_the_result_invalid():
    with LoopbackServer(delay_s=0.001) as server:
        result = run_probe(ProbeConfig(server.http_url, rate=50_000, duration=0.5, max_in_flight=1, timeout=0.5))
    assert not result.valid
    assert "fell behind" in result.invalid_reason
    assert "in-flight slots stayed busy" in result.invalid_reason  # the cause is named
    assert result.unsent > result.scheduled // 2
    assert result.sent + result.unsent == result.scheduled


def test_busy_event_loop_makes_the_result_invalid():
    async def main():
        async def hog():  # blocks the prober's own loop, as a CPU-starved prober would be
            while True:
                time.sleep(0.03)
                await asyncio.sleep(0.02)

        with LoopbackServer() as server:
            hog_task = asyncio.get_running_loop().create_task(hog())
            try:
                return await probe(ProbeConfig(server.tcp_url, rate=200, duration=0.8))
            finally:
                hog_task.cancel()

    result = asyncio.run(main())  # also covers probe() on a default (epoll, 1 ms timer) loop
    assert not result.valid
    assert "event loop lagged" in result.invalid_reason
    assert "sends started" in result.invalid_reason
    assert result.loop_lag["p99_us"] >= 20_000


def test_healthy_run_is_valid_and_reports_lag():
    with LoopbackServer() as server:
        result = run_probe(ProbeConfig(server.tcp_url, rate=300, duration=0.5, **TOLERANT))
    assert result.valid and result.invalid_reason is None
    assert gc.isenabled()  # paused during the probe only
    assert result.send_lag["count"] == result.sent == 150
    assert result.loop_lag["count"] > 50
    assert result.send_lag["late"] == 0 or result.send_lag["late_ratio"] <= 0.05


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="SCHED_FIFO needs root")
def test_realtime_scheduling_is_applied_and_restored():
    with LoopbackServer() as server:
        result = run_probe(ProbeConfig(server.tcp_url, rate=200, count=10, realtime=True))
    assert result.realtime is True and result.samples == 10
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the calling thread is back to normal
    assert run_probe(ProbeConfig(f"tcp://127.0.0.1:{free_port()}", count=1)).realtime is False


# --- data out -----------------------------------------------------------------------------------


def test_result_dict_is_json_and_histograms_round_trip():
    with LoopbackServer() as server:
        result = run_probe(ProbeConfig(server.http_url, rate=200, count=30))
    data = json.loads(json.dumps(result.to_dict()))
    for key in ("protocol", "target", "rate", "arrivals", "duration_s", "samples", "errors", "timeouts",
                "latency", "service", "jitter", "histograms", "send_lag", "loop_lag", "valid",
                "invalid_reason", "floor", "timeout_ratio", "error_ratio"):
        assert key in data
    for name in ("latency", "service"):
        histogram = decode(data["histograms"][name])
        assert histogram.get_total_count() == 30
        assert summarize(histogram)["p50_us"] == data[name]["p50_us"]
    assert data["jitter"]["p99_minus_p50_us"] == data["latency"]["p99_us"] - data["latency"]["p50_us"]


def test_calibration_reports_the_floor():
    floor = calibrate("tcp-echo", rate=200, duration=0.5, server="thread")
    assert floor.samples >= 90
    assert 0 < floor.p50_us <= floor.p99_us < 100_000
    assert "measurement floor" in str(floor)
    with LoopbackServer() as server:  # calibrate=True probes a loopback child process first
        result = run_probe(ProbeConfig(server.tcp_url, rate=200, count=20, calibrate=True))
    assert result.floor is not None and result.floor["samples"] >= 100 and result.floor["server"] == "process"


def test_cli_json_and_refusal(capsys):
    with LoopbackServer() as server:
        code = cli_main([server.tcp_url, "--count", "5", "--rate", "100", "--warmup", "0", "--json",
                         "--lag-limit-us", "20000"])
    out = json.loads(capsys.readouterr().out)
    assert code in (0, 3) and out["samples"] == 5 and out["protocol"] == "tcp-echo"
    assert cli_main(["http://192.0.2.1/", "--count", "1"]) == 2
    assert "not loopback" in capsys.readouterr().err
