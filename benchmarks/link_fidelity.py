"""How faithfully does linkd emulate a WAN link?  Prints ONE JSON object on stdout.

    python benchmarks/link_fidelity.py [--duration 10] [--rate 200] [--delays 5,20]
                                       [--bandwidths 8000000,10000000] [--bulk-seconds 3]
                                       [--open-links 1000]

Everything runs on 127.0.0.1: a small TCP server (a child process: echo, sink and source modes),
the real daemon (`python -m conformance.emulation.linkd`, another child) and the probes here.
Each measurement through a link is compared with the same measurement straight to the server,
taken in the same run, so the machine's load is in both:

* latency: open loop at --rate requests/s on a fixed schedule, 64-byte echoes over 16 persistent
  connections per target, latency measured from the *intended* send time (no coordinated
  omission) into HDR histograms in microseconds.  The targets (direct, and one link per delay)
  are probed at the same time, taking turns request by request, so a burst of load from other
  processes hits them all alike (a paired comparison).  Goal for one-way delay d: the added RTT
  (link minus direct) is within 1 ms of 2d at p50 and within 2 ms of 2d at p99. With --open-links N,
  N more links (20 ms, each with a connection open through it) are in linkd during that phase: a
  fleet's worth of links beside the ones measured.
* bandwidth: a bulk upload and a bulk download of --bulk-seconds worth of bytes through a link
  capped at each rate.  Goal: achieved rate within 5 % of the cap.
* throughput: unshaped bulk upload and download for --bulk-seconds, direct and through a link.
  Goal: through the link >= 25 % of direct.

Exit status is 0 even when a goal is missed (the JSON says which); 2 if the run itself failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

import psutil
from hdrh.histogram import HdrHistogram

from conformance.emulation.link import new_event_loop

TIMEOUT = 30.0
MESSAGE = 64  # bytes per echo request
CONNECTIONS = 16
BULK_BUFFER = 1024 * 1024
PERCENTILES = (50, 90, 99, 99.9)
WARMUP_S = 0.5


# ------------------------------------------------------------------------ the server (child)


def _serve() -> None:
    """Thread per connection.  First byte: E = echo, S = sink (reply the count on EOF), D<u64> = send."""

    def handle(conn: socket.socket) -> None:
        conn.settimeout(TIMEOUT)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            mode = conn.recv(1)
            if mode == b"E":
                while data := conn.recv(65536):
                    conn.sendall(data)
            elif mode == b"S":
                buf = bytearray(BULK_BUFFER)
                total = 0
                while n := conn.recv_into(buf):
                    total += n
                conn.sendall(struct.pack(">Q", total))
            elif mode == b"D":
                want = struct.unpack(">Q", _recv_exactly(conn, 8))[0]
                block = memoryview(bytes(BULK_BUFFER))
                while want > 0:
                    want -= conn.send(block[: min(want, BULK_BUFFER)])
        except OSError:
            pass
        finally:
            conn.close()

    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    print(json.dumps({"port": listener.getsockname()[1]}), flush=True)
    parent = os.getppid()

    def watch_parent() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch_parent, daemon=True).start()
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed early")
        data += chunk
    return data


# ------------------------------------------------------------------------------------ helpers


class Child:
    """A child process that prints one JSON line when ready; killed on exit."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(TIMEOUT)
        if not line or not line[0]:
            self.stop()
            raise RuntimeError(f"{args} did not become ready")
        self.ready = json.loads(line[0])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()


def api(port: int, method: str, path: str, body: object = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return json.loads(response.read())


def summary(hist: HdrHistogram) -> dict:
    out = {f"p{p:g}_ms": hist.get_value_at_percentile(p) / 1000 for p in PERCENTILES}
    out["max_ms"] = hist.get_max_value() / 1000
    out["count"] = hist.get_total_count()
    return out


# ------------------------------------------------------------------------------------ latency


async def _probe(targets: dict[str, int], rate: float, duration: float) -> tuple[dict[str, dict], int]:
    """Open-loop echo probe of several targets at once, `rate` requests/s each, interleaved.

    The schedule is fixed: the targets take turns request by request (direct, link 1, link 2,
    direct, ...), one request every 1/(rate * targets) s, so each target gets `rate` requests/s on
    a fixed schedule for `duration` s, and every stall of the machine (a shared 2-core box) weighs
    alike on all of them: the comparison is paired.  Latency is taken from the *intended* send time.
    """
    loop = asyncio.get_running_loop()
    names = list(targets)
    hists = {name: HdrHistogram(1, 60_000_000, 3) for name in names}
    errors = dict.fromkeys(names, 0)
    conns: dict[str, list] = {}
    for name, port in targets.items():
        conns[name] = []
        for _ in range(CONNECTIONS):
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
            writer.write(b"E")
            conns[name].append((reader, writer))
    intended: dict[int, tuple[str, float | None]] = {}  # seq -> (target, intended time or None: warm-up)

    async def receive(name: str, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                data = await reader.readexactly(MESSAGE)
                now = time.perf_counter()
                _, sent_at = intended.pop(struct.unpack_from(">Q", data)[0], (name, None))
                if sent_at is not None:
                    hists[name].record_value(max(1, round((now - sent_at) * 1e6)))
        except (asyncio.IncompleteReadError, ConnectionError):
            errors[name] += 1

    receivers = [loop.create_task(receive(n, r)) for n in names for r, _ in conns[n]]
    warmup = int(WARMUP_S * rate) * len(names)  # the first requests are sent but not recorded
    schedule = [(names[i % len(names)], i >= warmup) for i in range(warmup + int(duration * rate) * len(names))]
    interval = 1.0 / (rate * len(names))
    late_sends = 0
    start = time.perf_counter() + 0.05
    for seq, (name, record) in enumerate(schedule):
        due = start + seq * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -1.0 / rate:
            late_sends += 1  # the prober itself was more than one period late: a busy machine
        writer = conns[name][(seq // len(names)) % CONNECTIONS][1]
        if writer.is_closing():
            raise ConnectionError(f"a probe connection to {name} was closed by the other side")
        intended[seq] = (name, due if record else None)
        writer.write(struct.pack(">Q", seq) + b"." * (MESSAGE - 8))
    deadline = time.perf_counter() + 5
    while any(t is not None for _, t in intended.values()) and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    unanswered = dict.fromkeys(names, 0)
    for name, sent_at in intended.values():
        if sent_at is not None:
            unanswered[name] += 1
    for task in receivers:
        task.cancel()
    for name in names:
        for _, writer in conns[name]:
            writer.close()
    await asyncio.gather(*receivers, return_exceptions=True)
    per_target = {name: {"hist": hists[name], "unanswered": unanswered[name], "errors": errors[name]} for name in names}
    return per_target, late_sends


def probe(targets: dict[str, int], rate: float, duration: float) -> tuple[dict[str, dict], int]:
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(_probe(targets, rate, duration))


# --------------------------------------------------------------------------------------- bulk


def upload(port: int, *, seconds: float | None = None, size: int | None = None) -> tuple[int, float]:
    """Send for `seconds` or `size` bytes; returns (bytes the server counted, elapsed seconds)."""
    block = memoryview(bytes(BULK_BUFFER))
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(b"S")
        start = time.perf_counter()
        sent = 0
        while (size is None or sent < size) and (seconds is None or time.perf_counter() - start < seconds):
            part = block if size is None else block[: min(BULK_BUFFER, size - sent)]
            sock.sendall(part)
            sent += len(part)
        sock.shutdown(socket.SHUT_WR)
        counted = struct.unpack(">Q", _recv_exactly(sock, 8))[0]
        return counted, time.perf_counter() - start


def download(port: int, size: int) -> tuple[int, float]:
    buf = bytearray(BULK_BUFFER)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        start = time.perf_counter()
        sock.sendall(b"D" + struct.pack(">Q", size))
        got = 0
        while n := sock.recv_into(buf):
            got += n
        return got, time.perf_counter() - start


# --------------------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per latency phase")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s in latency phases")
    parser.add_argument("--delays", default="5,20", help="one-way delays (ms) to test")
    parser.add_argument("--bandwidths", default="8000000,10000000", help="caps (bit/s) to test")
    parser.add_argument("--bulk-seconds", type=float, default=3.0, help="length of each bulk transfer")
    parser.add_argument("--open-links", type=int, default=0, help="links (each with an open connection) in "
                                                                   "linkd beside the measured ones")
    args = parser.parse_args()
    if args.serve:
        _serve()
        return 0

    server = Child([sys.executable, os.path.abspath(__file__), "--serve"])
    # No --run-id: a benchmark is not a run, and `emulate down --all` (perhaps someone else's, on a
    # shared machine) sweeps every labelled process of ours.
    linkd = Child([sys.executable, "-m", "conformance.emulation.linkd"])
    try:
        result = run(args, server.ready["port"], linkd.ready["control_port"], psutil.Process(linkd.proc.pid))
    finally:
        linkd.stop()
        server.stop()
    print(json.dumps(result, indent=None))
    return 0


def run(args: argparse.Namespace, server_port: int, control: int, linkd: psutil.Process) -> dict:
    upstream = f"127.0.0.1:{server_port}"
    missed: list[str] = []
    result: dict = {
        "benchmark": "link_fidelity",
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "loadavg_1m_at_start": round(os.getloadavg()[0], 2)},
        "config": {
            "rate_rps": args.rate,
            "duration_s": args.duration,
            "connections": CONNECTIONS,
            "message_bytes": MESSAGE,
            "bulk_seconds": args.bulk_seconds,
            "open_links": args.open_links,
        },
    }

    # -- latency: direct and every delay, probed together, interleaved (see _probe)
    delays = [float(d) for d in args.delays.split(",") if d]
    targets = {"direct": server_port}
    for delay in delays:
        link = api(control, "PUT", f"/links/lat{delay:g}", {"upstream": upstream, "delay_ms": delay})
        targets[f"delay_{delay:g}ms"] = link["listen_port"]
    beside = []  # a fleet's links, each with a connection open through it
    for i in range(args.open_links):
        link = api(control, "PUT", f"/links/open{i}", {"upstream": upstream, "delay_ms": 20})
        beside.append(socket.create_connection(("127.0.0.1", link["listen_port"]), timeout=5))
    cpu0 = linkd.cpu_times()
    wall0 = time.perf_counter()
    probed, late_sends = probe(targets, args.rate, args.duration)
    cpu1 = linkd.cpu_times()
    wall = time.perf_counter() - wall0
    for i, sock in enumerate(beside):
        sock.close()
        api(control, "DELETE", f"/links/open{i}")
    for delay in delays:
        api(control, "DELETE", f"/links/lat{delay:g}")
    latency: dict = {}
    for name, outcome in probed.items():
        latency[name] = {**summary(outcome.pop("hist")), **outcome}
    direct = latency["direct"]
    for delay in delays:
        measured = latency[f"delay_{delay:g}ms"]
        added_p50 = measured["p50_ms"] - direct["p50_ms"]
        added_p99 = measured["p99_ms"] - direct["p99_ms"]
        ok = abs(added_p50 - 2 * delay) <= 1.0 and abs(added_p99 - 2 * delay) <= 2.0
        if not ok:
            missed.append(
                f"latency d={delay:g} ms: added p50 {added_p50:.2f} / p99 {added_p99:.2f} ms, expected {2 * delay:g}"
            )
        measured.update({
            "expected_added_ms": 2 * delay,
            "added_p50_ms": round(added_p50, 3),
            "added_p99_ms": round(added_p99, 3),
            "error_p50_ms": round(added_p50 - 2 * delay, 3),
            "error_p99_ms": round(added_p99 - 2 * delay, 3),
            "goal_met": ok,
        })  # fmt: skip
    latency["prober_late_sends"] = late_sends
    latency["linkd_cpu_percent"] = round(100 * (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / wall, 1)
    result["latency"] = latency

    # -- bandwidth caps
    bandwidth = []
    for bps in [int(float(b)) for b in args.bandwidths.split(",") if b]:
        link = api(control, "PUT", f"/links/bw{bps}", {"upstream": upstream, "bandwidth_bps": bps})
        size = int(bps / 8 * args.bulk_seconds)
        port = link["listen_port"]
        for direction in ("up", "down"):
            moved, elapsed = upload(port, size=size) if direction == "up" else download(port, size)
            achieved = moved * 8 / elapsed
            error = (achieved - bps) / bps * 100
            ok = moved == size and abs(error) <= 5.0
            if not ok:
                missed.append(f"bandwidth {bps} {direction}: {achieved:.0f} bit/s ({error:+.1f} %)")
            bandwidth.append({
                "cap_bps": bps, "direction": direction, "bytes": moved, "seconds": round(elapsed, 3),
                "achieved_bps": round(achieved), "error_percent": round(error, 2), "goal_met": ok,
            })  # fmt: skip
        api(control, "DELETE", f"/links/bw{bps}")
    result["bandwidth"] = bandwidth

    # -- unshaped throughput, direct vs through a link
    link = api(control, "PUT", "/links/raw", {"upstream": upstream})
    throughput = {}
    for direction in ("up", "down"):
        rates = {}
        # Size the download from the direct upload rate so it lasts about bulk_seconds direct.
        size = int(throughput["up"]["direct_MBps"] * 1e6 * args.bulk_seconds) if direction == "down" else 0
        for name, port in (("direct", server_port), ("link", link["listen_port"])):
            if direction == "up":
                moved, elapsed = upload(port, seconds=args.bulk_seconds)
            else:
                moved, elapsed = download(port, size)
            rates[name] = moved / elapsed / 1e6
        ratio = rates["link"] / rates["direct"]
        ok = ratio >= 0.25
        if not ok:
            missed.append(f"throughput {direction}: link {ratio:.0%} of direct")
        throughput[direction] = {
            "direct_MBps": round(rates["direct"], 1),
            "link_MBps": round(rates["link"], 1),
            "link_over_direct": round(ratio, 3),
            "goal_met": ok,
        }
    api(control, "DELETE", "/links/raw")
    result["throughput"] = throughput
    result["machine"]["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    result["goals_met"] = not missed
    result["missed"] = missed
    return result


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - one JSON line, never a half-printed result
        print(json.dumps({"benchmark": "link_fidelity", "error": repr(exc)}))
        sys.exit(2)
