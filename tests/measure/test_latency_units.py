"""Pure parts of the latency prober: config, target safety, schedule, histograms, error kinds."""

from __future__ import annotations

import asyncio
import json
import statistics

import pytest

from conformance.measure.latency import (
    ProbeConfig,
    TargetRefused,
    check_target,
    decode,
    encode,
    is_loopback_host,
    merge_encoded,
    new_histogram,
    run_probe,
    summarize,
)
from conformance.measure.failures import HTTPStatusError, classify
from conformance.measure.latency.schedule import arrival_offsets_ns
from conformance.model.errors import ConfigError


def take(iterator, n):
    return [next(iterator) for _ in range(n)]


# --- safety -------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.5.6.7", "::1", "[::1]", "localhost", "LOCALHOST",
                                  "::ffff:127.0.0.1"])
def test_loopback_hosts_are_allowed(host):
    assert is_loopback_host(host)
    check_target(host)  # does not raise


@pytest.mark.parametrize("host", ["192.0.2.1", "10.0.0.1", "0.0.0.0", "example.com", "::ffff:10.0.0.1",
                                  "localhost.example.com", "::"])
def test_non_loopback_hosts_are_refused_without_allow_hosts(host):
    assert not is_loopback_host(host)
    with pytest.raises(TargetRefused):
        check_target(host)
    check_target(host, allow_hosts={host.upper()})  # explicitly allowed: passes


def test_probe_refuses_non_loopback_target_before_sending():
    config = ProbeConfig("http://192.0.2.1:80/", count=1, timeout=0.2)  # TEST-NET-1: must never be hit
    with pytest.raises(TargetRefused, match="not loopback"):
        run_probe(config)
    with pytest.raises(TargetRefused):
        run_probe(ProbeConfig("http://edge.example.com/", count=1, allow_hosts={"other.example.com"}))


# --- config -------------------------------------------------------------------------------------


def test_config_defaults_and_protocol_from_scheme():
    assert ProbeConfig("http://127.0.0.1:1/").protocol == "http"
    assert ProbeConfig("https://127.0.0.1/").parsed_target.port == 443
    assert ProbeConfig("tcp://127.0.0.1:7").protocol == "tcp-echo"
    assert ProbeConfig("udp://127.0.0.1:7").protocol == "udp-echo"
    counted = ProbeConfig("tcp://127.0.0.1:7", count=10)
    assert counted.count == 10 and counted.duration is None


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"rate": 0}, "rate"), ({"rate": float("nan")}, "rate"), ({"protocol": "htp"}, "protocol"),
    ({"duration": None}, "duration"), ({"timeout": -1}, "timeout"), ({"arrivals": "burst"}, "arrivals"),
    ({"max_in_flight": 0}, "max_in_flight"), ({"warmup": -1}, "warmup"), ({"count": 0}, "count"),
])
def test_config_errors_name_the_field(kwargs, field):
    with pytest.raises(ConfigError) as info:
        ProbeConfig("http://127.0.0.1:1/", **kwargs)
    assert info.value.field == field


def test_config_suggests_close_protocol_names():
    with pytest.raises(ConfigError, match='did you mean "tcp-echo"'):
        ProbeConfig("tcp://127.0.0.1:7", protocol="tcp-ecoh")


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/", "tcp://127.0.0.1", "http://:80/"])
def test_bad_target_urls(url):
    with pytest.raises(ConfigError):
        ProbeConfig(url)


# --- schedule -----------------------------------------------------------------------------------


def test_fixed_schedule_is_exact_and_does_not_drift():
    offsets = take(arrival_offsets_ns(300.0), 3001)
    assert offsets[:3] == [0, 3_333_333, 6_666_667]
    assert offsets[3000] == 10_000_000_000  # computed from the index: no accumulated rounding


def test_poisson_schedule_is_seeded_and_exponential():
    a = take(arrival_offsets_ns(1000.0, "poisson", seed=7), 5000)
    b = take(arrival_offsets_ns(1000.0, "poisson", seed=7), 5000)
    c = take(arrival_offsets_ns(1000.0, "poisson", seed=8), 5000)
    assert a == b
    assert a != c
    gaps = [y - x for x, y in zip(a, a[1:])]
    mean = statistics.fmean(gaps)
    assert 0.9e6 < mean < 1.1e6  # mean gap 1/rate
    assert 0.9 < statistics.pstdev(gaps) / mean < 1.1  # exponential: coefficient of variation 1
    fixed = take(arrival_offsets_ns(1000.0, "fixed"), 100)
    assert statistics.pstdev([y - x for x, y in zip(fixed, fixed[1:])]) < 1


# --- histograms ---------------------------------------------------------------------------------


def test_merged_histograms_give_the_true_percentile_not_the_average():
    a, b = new_histogram(), new_histogram()
    for i in range(1000):  # worker A: 1.0 .. 2.0 ms, p50 1.5 ms
        a.record_value(1000 + i)
    for i in range(200):  # worker B: 50.0 .. 51.0 ms, p50 50.5 ms
        b.record_value(50_000 + 5 * i)
    pa, pb = summarize(a)["p50_us"], summarize(b)["p50_us"]
    merged = summarize(merge_encoded([encode(a), encode(b)]))
    assert merged["count"] == 1200
    assert 1550 <= merged["p50_us"] <= 1650  # the 600th of 1200 values lies in A's range
    assert abs(merged["p50_us"] - (pa + pb) / 2) > 20_000  # averaging p50s would give ~26 ms
    assert 50_000 <= merged["p99_us"] <= 51_100
    assert merged["max_us"] >= 50_995
    round_trip = summarize(decode(encode(a)))
    assert round_trip == summarize(a)


def test_summary_of_empty_histogram_is_none_not_zero():
    s = summarize(new_histogram())
    assert s["count"] == 0 and s["p50_us"] is None and s["max_us"] is None


def test_summary_mean_stdev_and_jitter():
    h = new_histogram()
    for v in (100, 200, 300, 400):
        h.record_value(v)
    s = summarize(h)
    assert s["mean_us"] == pytest.approx(250, abs=1)
    assert s["stdev_us"] == pytest.approx(111.8, abs=1)
    assert s["jitter_us"] == s["p99_us"] - s["p50_us"]
    json.dumps(s)


def test_mean_and_stdev_are_hdrh_own_over_wide_ranges():
    """moments() visits only non-empty buckets, through hdrh's public API: it must still be hdrh's figure
    where buckets are wide (values of seconds, in µs)."""
    import random

    from conformance.measure.latency.histogram import moments

    h, rnd = new_histogram(), random.Random(7)
    for _ in range(5000):
        h.record_value(rnd.choice((rnd.randint(1, 900), rnd.randint(10_000, 3_000_000_000))))
    mean, stdev = moments(h)
    assert mean == pytest.approx(h.get_mean_value(), rel=1e-12)
    assert stdev == pytest.approx(h.get_stddev(), rel=1e-12)


# --- error kinds --------------------------------------------------------------------------------


@pytest.mark.parametrize(("exc", "kind"), [
    (TimeoutError(), "timeout"), (TimeoutError(), "timeout"),
    (ConnectionRefusedError(), "connection_refused"), (ConnectionResetError(), "connection_reset"),
    (asyncio.IncompleteReadError(b"", 10), "connection_closed"), (HTTPStatusError(503), "http_503"),
    (OSError(113, "No route to host"), "os_ehostunreach"), (ValueError("x"), "unexpected_ValueError"),
])
def test_error_kinds(exc, kind):
    assert classify(exc) == kind


# --- HTTP response parser -----------------------------------------------------------------------

from conformance.measure.failures import ProtocolViolation  # noqa: E402
from conformance.measure.latency.protocols.http1 import (  # noqa: E402
    FastResponseParser,
    ResponseParser,
    make_response_parser,
)

CHUNKED = (b"HTTP/1.1 100 Continue\r\n\r\n"
           b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;ext=1\r\nhello\r\n1a\r\n" + b"x" * 26 + b"\r\n0\r\nTrailer: t\r\n\r\n")
PARSERS = [ResponseParser, FastResponseParser]


@pytest.mark.parametrize("parser_class", PARSERS)
@pytest.mark.parametrize("step", [1, 3, 7, len(CHUNKED)])
def test_parser_completes_exactly_at_the_end_whatever_the_packet_boundaries(step, parser_class):
    parser = parser_class("GET")
    pieces = [CHUNKED[i:i + step] for i in range(0, len(CHUNKED), step)]
    done = [parser.feed(piece) for piece in pieces]
    assert done[-1] is True and not any(done[:-1])
    assert parser.status == 200 and parser.reusable


@pytest.mark.parametrize("parser_class", PARSERS)
def test_parser_content_length_head_and_close_delimited(parser_class):
    parser = parser_class("GET")
    assert not parser.feed(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\nConnection: close\r\n\r\nab")
    assert parser.feed(b"cd") and parser.status == 404 and not parser.reusable
    head = make_response_parser("HEAD")
    assert head.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n")
    until_close = parser_class("GET")
    assert not until_close.feed(b"HTTP/1.0 200 OK\r\n\r\nsome body")
    assert until_close.eof() and not until_close.reusable
    keep = parser_class("GET")
    assert keep.feed(b"HTTP/1.0 204 No Content\r\nConnection: keep-alive\r\n\r\n") and keep.reusable
    with pytest.raises(ProtocolViolation):
        parser_class("GET").feed(b"SSH-2.0-OpenSSH\r\n\r\n")


@pytest.mark.parametrize("parser_class", PARSERS)
def test_parser_is_reused_across_keep_alive_answers_and_refuses_reuse_after_unasked_bytes(parser_class):
    parser = parser_class("GET")
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    for _ in range(3):
        parser.reset()
        assert parser.feed(answer) and parser.status == 200 and parser.reusable
    parser.reset()
    assert parser.feed(answer + b"HTTP/1.1 200 OK\r\n") and not parser.reusable
    incomplete = parser_class("GET")
    assert not incomplete.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort")
    assert not incomplete.eof()  # the body was framed: a close before its end is no answer


def test_the_prober_parses_with_httptools_except_for_head():
    assert isinstance(make_response_parser("GET"), FastResponseParser)
    assert isinstance(make_response_parser("POST"), FastResponseParser)
    assert isinstance(make_response_parser("HEAD"), ResponseParser)


@pytest.mark.parametrize("parser_class", PARSERS)
@pytest.mark.parametrize("tail", [b"garbage that is no response", b"HTTP/1.1 200 OK\r\n"])
def test_bytes_after_a_complete_answer_leave_it_complete_but_not_reusable(parser_class, tail):
    parser = parser_class("GET")
    assert parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + tail)
    assert parser.status == 200 and not parser.reusable


@pytest.mark.parametrize("parser_class", PARSERS)
def test_an_interim_answer_then_a_close_is_no_answer(parser_class):
    parser = parser_class("GET")
    assert not parser.feed(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert not parser.eof()  # the real answer never came: connection_closed, not a success


@pytest.mark.parametrize("parser_class", PARSERS)
def test_transfer_encoding_identity_runs_until_close(parser_class):
    parser = parser_class("GET")
    assert not parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nbody")
    assert parser.eof() and not parser.reusable


def test_switching_protocols_is_an_answer_never_reused():
    parser = FastResponseParser("GET")
    assert parser.feed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    assert parser.status == 101 and not parser.reusable
