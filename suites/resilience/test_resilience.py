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

import collections
import json
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import quote

import pytest

from conformance.measure.http import http_request
from conformance.measure.pressure import PressureWindow, TreeCpu, own_site_pid, record_pressure
from conformance.model.catalog.resilience import CUT_MODES  # what a WAN cut does to connections
from conformance.model.errors import MeasurementError
from conformance.model.units import UnitError, parse_quantity



# ---------------------------------------------------------------------------------------------
# HTTP: every failure is data (status None + error text), never an exception


@dataclass
class Reply:
    status: int | None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    elapsed: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    def json(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8", "replace"))
        except ValueError:
            return None

    def describe(self) -> str:
        if self.status is None:
            return self.error or "no answer"
        text = self.body[:160].decode("utf-8", "replace").strip()
        return f"HTTP {self.status}" + (f" {text}" if text and not self.ok else "")


class Client:
    def __init__(self, base: str, timeout: float):
        self.base = base.rstrip("/")
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None, headers: dict | None = None,
             timeout: float | None = None) -> Reply:
        data = None if body is None else json.dumps(body).encode()
        send = {"Content-Type": "application/json"} if data is not None else {}
        send.update(headers or {})
        started = time.perf_counter()
        try:
            r = http_request(self.base + path, method=method, timeout=timeout or self.timeout, headers=send,
                             body=data)
        except MeasurementError as exc:
            return Reply(None, elapsed=time.perf_counter() - started, error=str(exc))
        return Reply(r.status, r.body, r.headers, r.elapsed)

    def json(self, method: str, path: str, body: Any = None, what: str = "", **kw) -> Any:
        """A JSON answer, or MeasurementError saying which request failed and how."""
        r = self.call(method, path, body, **kw)
        value = r.json() if r.ok else None
        if value is None:
            raise MeasurementError(f"{what + ': ' if what else ''}{method} {self.base}{path} -> {r.describe()}")
        return value


# ---------------------------------------------------------------------------------------------
# small tools


def _tag(kind: str) -> str:
    return f"res-{kind}-{uuid.uuid4().hex[:10]}"


def _sleep_until(deadline: float) -> None:
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.2))


def _spawn(fn: Callable, *args) -> threading.Thread:
    thread = threading.Thread(target=fn, args=args, daemon=True)  # daemon: Ctrl-C never waits on it
    thread.start()
    return thread


def _site_client(edge) -> Client:
    return Client(edge.endpoint(edge.params.get("endpoint") or "api"), edge.params.get("op_timeout") or 3.0)


def _central_client(edge) -> tuple[Any, Client]:
    uplink = edge.site.uplink
    if not uplink:
        raise MeasurementError(f"site {edge.site.name} has no uplink in target {edge.target.name}: "
                               "cannot reach its central site")
    central = edge.target.site(uplink)
    name = edge.params.get("central_endpoint") or "api"
    try:
        url = central.endpoint(name)
    except LookupError as exc:
        raise MeasurementError(str(exc)) from None
    return central, Client(url, edge.params.get("op_timeout") or 3.0)


def _cut_mode(params: dict, default: str = "drop") -> str:
    """The WAN cut's mode; the catalogue fills in the default, so `default` only serves direct calls."""
    mode = params.get("cut_mode") or default
    if mode not in CUT_MODES:  # the catalogue declares str params without choices: checked here
        raise MeasurementError(f"cut_mode: expected one of {', '.join(CUT_MODES)}, got {mode!r}")
    return mode


def _fault_log(rec, faults) -> None:
    if faults.kind == "hooks":
        for line in faults.log:
            rec.note(line)


def _scaled(rec, params: dict, what: str, seconds: float) -> None:
    if params.get("scaled_from"):
        rec.note(f"scaled down: the {seconds:g} s {what} stands for {params['scaled_from']}")


class Poster:
    """Sales on an open-loop schedule (one thread per sale, so a slow answer never delays the next)."""

    def __init__(self, site: Client, tag: str, rate: float, timeout: float):
        self.site, self.tag, self.rate, self.timeout = site, tag, rate, timeout
        self.lock = threading.Lock()
        self.results: list[tuple[str, Reply]] = []
        self.threads: list[threading.Thread] = []
        self.stop = threading.Event()
        self.count = 0

    def post_one(self, index: int) -> None:
        sale_id = f"{self.tag}-{index}"
        body = {"id": sale_id, "amount": round(1 + index % 50 * 0.5, 2),
                "items": [{"sku": "resilience-check", "qty": 1 + index % 3}]}
        reply = self.site.call("POST", "/pos/transactions", body, timeout=self.timeout)
        with self.lock:
            self.results.append((sale_id, reply))

    def start(self, until: float) -> Poster:
        self.until = until

        def schedule() -> None:
            t0 = time.monotonic()
            i = 0
            while not self.stop.is_set():
                due = t0 + i / self.rate
                if due >= until:
                    break
                _sleep_until(due)
                if self.stop.is_set():
                    break
                self.threads.append(_spawn(self.post_one, i))
                i += 1
            self.count = i

        self.scheduler = _spawn(schedule)
        return self

    def burst(self, n: int) -> Poster:
        """n sales at once."""
        self.threads = [_spawn(self.post_one, i) for i in range(n)]
        self.count = n
        return self

    def join(self) -> None:
        """Wait for the schedule (until its end, or stop) and for every sale's answer."""
        if hasattr(self, "scheduler"):
            self.scheduler.join(max(0.0, self.until - time.monotonic()) + self.timeout + 5)
        for t in list(self.threads):
            t.join(self.timeout + 2)

    @property
    def accepted(self) -> list[str]:
        with self.lock:
            return [sale_id for sale_id, r in self.results if r.status in (200, 201)]

    def statuses(self) -> dict[str, int]:
        with self.lock:
            return dict(collections.Counter(str(r.status) if r.status else "no answer" for _, r in self.results))

    def first_failure(self) -> str | None:
        with self.lock:
            for _, r in self.results:
                if r.status not in (200, 201):
                    return r.describe()
        return None


def _summaries(site: Client, central: Client, name: str) -> tuple[dict, dict]:
    edge = site.json("GET", "/pos/summary", what="the site's transaction summary")
    hub = central.json("GET", f"/sink/transactions/summary?site={quote(name)}", what="central's summary")
    return edge, hub


def _in_sync(edge: dict, hub: dict) -> bool:
    return edge.get("count") == hub.get("count") and edge.get("digest") == hub.get("digest")


def _wait_in_sync(site: Client, central: Client, name: str, timeout: float) -> tuple[bool, dict, dict]:
    deadline = time.monotonic() + timeout
    while True:
        edge, hub = _summaries(site, central, name)
        diverged = (hub.get("count") or 0) > (edge.get("count") or 0)  # central never forgets: for good
        if _in_sync(edge, hub) or diverged or time.monotonic() >= deadline:
            return _in_sync(edge, hub), edge, hub
        time.sleep(0.2)


def _central_copies(central: Client, name: str, tag: str) -> collections.Counter:
    """How many times central holds each of our sale ids."""
    listing = central.json("GET", f"/sink/transactions?site={quote(name)}&limit=1000000",
                           what="central's transactions")
    return collections.Counter(r.get("id") for r in listing.get("records", [])
                               if str(r.get("id", "")).startswith(tag + "-"))


def _await_resync(rec, site: Client, central: Client, name: str, tag: str, created: list[str],
                  healed_at: float, timeout: float, settle: float, in_sync_before: bool) -> dict[str, Any]:
    """Wait until central holds what the site has; then watch `settle` s more for late duplicates.

    When the two summaries agreed before the fault, "synced" is their digests agreeing again (every
    record the site has is at central exactly once, unaltered). Otherwise (an earlier fault left them
    apart) it is every sale made during this fault having arrived. Central never forgets a record, so
    once it holds more than the site, the digests can never agree again: then only our sales are
    awaited.
    """
    deadline = healed_at + timeout
    synced_at = None
    made = set(created)
    while True:
        edge, hub = _summaries(site, central, name)
        if in_sync_before and _in_sync(edge, hub):
            synced_at = time.monotonic()
            break
        diverged = (hub.get("count") or 0) > (edge.get("count") or 0)
        if not in_sync_before or diverged:
            copies = _central_copies(central, name, tag)
            if all(copies.get(i, 0) > 0 for i in made):
                synced_at = time.monotonic()
                break
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    if synced_at is not None and settle > 0:
        time.sleep(settle)
        edge, hub = _summaries(site, central, name)
    copies = _central_copies(central, name, tag)
    delivered = sum(1 for i in created if copies.get(i, 0) > 0)
    duplicates = sum(max(0, copies.get(i, 0) - 1) for i in created)
    phantoms = sum(c for i, c in copies.items() if i not in made)
    out = {"created": len(created), "delivered": delivered, "duplicates": duplicates, "phantoms": phantoms,
           "digest_match": _in_sync(edge, hub), "synced": synced_at is not None,
           "sync_time": (synced_at or time.monotonic()) - healed_at,
           "site_summary": edge, "central_summary": hub}
    if synced_at is None:
        rec.note(f"not in sync {timeout:g} s after the fault ended: central holds {delivered} of the "
                 f"{len(created)} sales made, {duplicates} extra copies; site count {edge.get('count')}, "
                 f"central count {hub.get('count')}")
    elif not out["digest_match"]:
        rec.note(f"central and the site disagree: site count {edge.get('count')}, central count "
                 f"{hub.get('count')} (digests differ)")
    if phantoms:
        rec.note(f"central holds {phantoms} sale(s) that the site refused (answered with an error)")
    if duplicates:
        rec.note(f"{duplicates} extra copies of the sales are stored at central "
                 f"(duplicates rejected by central: {hub.get('duplicates_rejected')})")
    return out


def _healthy(reply: Reply) -> bool:
    if not reply.ok:
        return False
    body = reply.json()
    return not (isinstance(body, dict) and "status" in body and body["status"] != "ok")


def _wait_healthy(site: Client, path: str, timeout: float) -> float | None:
    """Seconds until the site answers healthy (None: not within timeout)."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        if _healthy(site.call("GET", path, timeout=max(0.2, min(1.0, left)))):
            return time.monotonic() - started
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# resilience.partition


class SteadyProbe:
    """The open-loop latency prober (HDR histograms, from the intended send time) in a thread.

    Under SCHED_FIFO where permitted (root or CAP_SYS_NICE), as the latency suite's: its sends stay on
    schedule beside busy neighbours, so a busy runner does not turn its self-check invalid."""

    def __init__(self, edge, url: str, rate: float, duration: float, timeout: float):
        from conformance.measure.latency import ProbeConfig

        self.config = ProbeConfig(url, rate=rate, duration=duration, timeout=timeout, max_in_flight=64,
                                  lag_limit_us=50_000, max_late_ratio=0.05, realtime=True,
                                  allow_hosts=frozenset(edge.allowed_hosts))
        self.result = None
        self.error: BaseException | None = None

    def start(self) -> SteadyProbe:
        def run() -> None:
            from conformance.measure.latency import run_probe

            try:
                self.result = run_probe(self.config)
            except BaseException as exc:  # handed to the check
                self.error = exc

        self.thread = _spawn(run)
        return self

    def join(self) -> Any:
        self.thread.join(self.config.duration + self.config.timeout + 10)
        if self.error is not None:
            raise MeasurementError(f"steady probe of {self.config.target}: {self.error}")
        if self.result is None:
            raise MeasurementError(f"steady probe of {self.config.target} did not finish")
        return self.result


# What the steady probe measured: a probe whose own self-check failed leaves these undecided.
PROBE_METRICS = frozenset({"availability", "p99", "probes"})


@pytest.mark.edge_check("resilience.partition")
def test_partition(edge, request):
    edge.shared(_partition)


def _partition(edge, rec) -> None:
    p = edge.params
    workloads = list(p.get("workloads") or [])
    unknown = sorted(set(workloads) - {"pos", "content", "auth"})
    if unknown:
        raise MeasurementError(f"workloads: unknown {', '.join(unknown)} (known: pos, content, auth)")
    cut_mode = _cut_mode(p)
    faults = edge.faults  # SKIP here on a real target without --allow-faults
    faults.require("partition", "heal")
    site = _site_client(edge)
    duration, op_timeout = float(p["duration"]), float(p["op_timeout"])
    tag = _tag("cut")
    content_key, content_body, fetched_at = f"{tag}-content", None, None
    token = None

    # Before the cut: a content key in the cache, a token from central that the site accepts.
    if "content" in workloads:
        r = site.call("GET", f"/content/{content_key}")
        if r.status != 200:
            raise MeasurementError(f"before the cut, GET /content/{content_key} -> {r.describe()}")
        content_body, fetched_at = r.body, time.monotonic()
    if "auth" in workloads:
        _, central = _central_client(edge)
        issued = central.json("POST", "/auth/token", {"subject": tag, "ttl_s": 3600}, what="a token from central")
        token = issued.get("token")
        if not token:
            raise MeasurementError(f"central issued no token: {issued}")
        r = site.call("GET", "/auth/check", headers={"Authorization": f"Bearer {token}"})
        if r.status != 200:
            raise MeasurementError(f"before the cut the site already rejects central's fresh token: {r.describe()}")

    # The content is read halfway through the cut, once the cached copy has expired.
    ttl = float(p["content_ttl"])
    if fetched_at is not None:
        _sleep_until(fetched_at + ttl + 0.3 - duration / 2)
    window, site_cpu = PressureWindow(), TreeCpu(own_site_pid(edge))  # the cut's timings: see record_pressure
    probe = SteadyProbe(edge, site.base + "/" + (p["path"] or "/").lstrip("/"), float(p["rate"]), duration,
                        float(p["probe_timeout"]))
    poster = Poster(site, f"{tag}-sale", max(float(p["pos_rate"]), 1.0 / duration), op_timeout)
    checks: dict[str, Reply] = {}

    def read_content() -> None:
        checks["content"] = site.call("GET", f"/content/{content_key}", timeout=op_timeout)
        checks["content_done"] = time.monotonic()

    def check_token() -> None:
        checks["auth"] = site.call("GET", "/auth/check", headers={"Authorization": f"Bearer {token}"},
                                   timeout=op_timeout)

    with faults.partitioned(cut_mode):
        cut_at = time.monotonic()
        probe.start()
        if "pos" in workloads:
            poster.start(until=cut_at + duration)
        _sleep_until(cut_at + duration / 2)
        readers = []
        if "content" in workloads:
            readers.append(_spawn(read_content))
        if "auth" in workloads:
            readers.append(_spawn(check_token))
        for t in readers:
            t.join(op_timeout + 2)
        _sleep_until(cut_at + duration)
        poster.stop.set()
    healed_at = time.monotonic()
    _fault_log(rec, faults)
    rec.note(f"WAN cut ({cut_mode}) for {healed_at - cut_at:.1f} s")
    _scaled(rec, p, "cut", duration)

    result = probe.join()
    record_pressure(rec, window.stop(), site_cpu.cores())
    if result.sent == 0:
        raise MeasurementError("the steady probe sent nothing during the cut")
    rec.record("availability", result.samples / result.sent, "ratio")
    rec.record("probes", result.sent)
    if result.samples:
        # the median too: the verdict rule excuses a p99 stretched by a starved machine only while the
        # median is within the same bound
        rec.record("p50", result.latency["p50_us"] / 1000.0, "ms")
        rec.record("p99", result.latency["p99_us"] / 1000.0, "ms")
    else:
        rec.record("p50", float(p["probe_timeout"]) * 1000.0, "ms")
        rec.record("p99", float(p["probe_timeout"]) * 1000.0, "ms")
        rec.note("no probe succeeded during the cut: p50 and p99 recorded as the probe timeout")
    if result.samples < result.sent:
        failures = dict(result.errors, **({"timeout": result.timeouts} if result.timeouts else {}))
        rec.note(f"steady probe: {result.sent - result.samples} of {result.sent} requests failed {failures}")
    if not result.valid:
        # The shared experiment also measured sales, cache and tokens, which an invalid probe does not
        # touch: the evidence names what the probe measured, and the verdict rule leaves only a
        # requirement judging one of those undecided.
        rec.evidence("invalid", reason=f"steady probe self-check: {result.invalid_reason}",
                     metrics=sorted(PROBE_METRICS))
    rec.attach("latency", {"histogram": result.histograms.get("latency"),
                           "service_histogram": result.histograms.get("service"), "unit": "us"})
    detail: dict[str, Any] = {"duration_s": round(healed_at - cut_at, 3), "probe": result.summary_line(),
                              "probe_valid": result.valid, "probe_invalid_reason": result.invalid_reason}

    if "pos" in workloads:
        poster.join()
        attempted = len(poster.results)
        accepted = len(poster.accepted)
        if attempted == 0:
            raise MeasurementError("no sale was attempted during the cut")
        rec.record("pos_accepted", accepted / attempted, "ratio")
        detail["pos"] = {"attempted": attempted, "accepted": accepted, "statuses": poster.statuses()}
        if accepted < attempted:
            rec.note(f"sales during the cut: {accepted} of {attempted} accepted; e.g. {poster.first_failure()}")
    if "content" in workloads:
        r = checks.get("content") or Reply(None, error="not read")
        served = r.status == 200 and r.body == content_body
        cache = r.header("X-Cache")
        rec.record("cache_served", served)
        detail["content"] = {"status": r.status, "x_cache": cache, "elapsed_s": round(r.elapsed, 3)}
        if checks.get("content_done", 0) > healed_at:
            rec.note("the content answer came after the WAN healed: make the cut longer")
        if not served:
            rec.note(f"cached content during the cut: {r.describe()}"
                     + (" (body differs from the cached copy)" if r.status == 200 else ""))
        elif cache and cache.upper() == "HIT":
            rec.note("the cached copy was still fresh (X-Cache: HIT): serving a stale copy was not exercised; "
                     "raise content_ttl to the site's cache TTL")
    if "auth" in workloads:
        r = checks.get("auth") or Reply(None, error="not checked")
        body = r.json() if r.status == 200 else None
        ok = isinstance(body, dict) and body.get("valid") is True
        rec.record("auth_ok", ok)
        detail["auth"] = {"status": r.status, "elapsed_s": round(r.elapsed, 3)}
        if not ok:
            rec.note(f"token check during the cut: {r.describe()}")
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
    central_site, central = _central_client(edge)
    if outage == "partition":
        cut_mode = _cut_mode(p)
        faults.require("partition", "heal")
        injector, fault = faults, lambda: faults.partitioned(cut_mode)
        what = f"WAN cut ({cut_mode})"
    else:
        injector = faults.for_site(central_site)
        injector.require("stop", "start")
        fault = injector.stopped
        what = f"{central_site.name} down"
    site = _site_client(edge)
    duration, timeout = float(p["duration"]), float(p["timeout"])
    name = edge.site.name

    in_sync, s_edge, s_hub = _wait_in_sync(site, central, name, min(timeout, 10.0))
    if not in_sync:
        rec.note(f"the site was not in sync with central before the outage (site count {s_edge.get('count')}, "
                 f"central count {s_hub.get('count')})")
    tag = _tag("sync")
    records = max(1, int(p["records"]))
    poster = Poster(site, tag, records / (duration * 0.9), float(p["op_timeout"]))
    window, site_cpu = PressureWindow(), TreeCpu(own_site_pid(edge))  # the outage and the resync wait
    with fault():
        began = time.monotonic()
        poster.start(until=began + duration * 0.9)
        poster.join()  # all of them, even if the schedule ran late
        _sleep_until(began + duration)
    healed_at = time.monotonic()
    _fault_log(rec, injector)
    rec.note(f"{what} for {healed_at - began:.1f} s")
    _scaled(rec, p, "outage", duration)

    created = poster.accepted
    rec.record("created", len(created))
    if not created:
        raise MeasurementError(f"no sale was accepted during the outage ({poster.statuses()}; e.g. "
                               f"{poster.first_failure()}): nothing to resync")
    if len(created) < len(poster.results):
        rec.note(f"{len(poster.results) - len(created)} of {len(poster.results)} sales were refused during the "
                 f"outage (e.g. {poster.first_failure()}); only accepted ones must reach central")
    out = _await_resync(rec, site, central, name, tag, created, healed_at, timeout, float(p["settle"]),
                        in_sync)
    record_pressure(rec, window.stop(), site_cpu.cores())
    rec.record("delivered_ratio", out["delivered"] / len(created), "ratio")
    rec.record("duplicates", out["duplicates"])
    rec.record("digest_match", out["digest_match"])
    rec.record("sync_time", out["sync_time"], "s")
    rec.attach("resync", {k: v for k, v in out.items()})


# ---------------------------------------------------------------------------------------------
# resilience.degraded


def _parse_list(name: str, values: Any, dimension: str, bare_unit: str) -> list[float]:
    """Profile values -> base units (s for time, fraction for ratio, bit/s); a bare number is `bare_unit`."""
    if values is None:
        return []
    if not isinstance(values, list):
        raise MeasurementError(f"{name}: expected a list, got {values!r}")
    out = []
    for v in values:  # profiles are validated on load (catalog QuantityItems); this guards custom callers
        try:
            out.append(parse_quantity(v, dimension, bare_unit))
        except (ValueError, UnitError) as exc:
            raise MeasurementError(f"{name}: {v!r} is not valid ({exc})") from None
    return out


def _pos_op(site: Client, sale_id: str, timeout: float) -> tuple[bool, float, str]:
    """A sale until central has acknowledged it (the site reports it forwarded)."""
    started = time.monotonic()
    deadline = started + timeout
    r = site.call("POST", "/pos/transactions", {"id": sale_id, "amount": 2.5}, timeout=timeout)
    if r.status not in (200, 201):
        return False, time.monotonic() - started, f"sale refused: {r.describe()}"
    path = f"/pos/transactions/{quote(sale_id, safe='')}"
    while time.monotonic() < deadline:
        state = site.call("GET", path, timeout=max(0.2, min(2.0, deadline - time.monotonic())))
        body = state.json() if state.ok else None
        if isinstance(body, dict) and body.get("state") == "forwarded":
            return True, time.monotonic() - started, ""
        time.sleep(0.05)
    return False, time.monotonic() - started, f"not at central within {timeout:g} s"


def _content_op(site: Client, key: str, size: int, timeout: float) -> tuple[bool, float, str]:
    """A content miss: the site fetches it from central while the user waits."""
    r = site.call("GET", f"/content/{key}?size={size}", timeout=timeout)
    if r.status == 200 and len(r.body) == size:
        return True, r.elapsed, ""
    return False, r.elapsed, f"content miss: {r.describe()}"


@pytest.mark.edge_check("resilience.degraded")
def test_degraded(edge, request):
    edge.shared(_degraded)


def _degraded(edge, rec) -> None:
    p = edge.params
    sweeps = [
        ("delay_ms", "ms", "delay_ms", [v * 1000.0 for v in _parse_list("delays_ms", p.get("delays_ms"), "time", "ms")]),
        ("loss", "%", "loss", _parse_list("losses", p.get("losses"), "ratio", "")),
        ("bandwidth", "kbit/s", "bandwidth_bps",
         [int(v) for v in _parse_list("bandwidths", p.get("bandwidths"), "bitrate", "bit/s")]),
    ]
    sweeps = [s for s in sweeps if s[3]]
    if not sweeps:
        raise MeasurementError("nothing to sweep: delays_ms, losses and bandwidths are all empty")
    ops = list(p.get("operations") or [])
    unknown = sorted(set(ops) - {"pos", "content"})
    if unknown or not ops:
        raise MeasurementError(f"operations: expected pos and/or content, got {ops!r}")
    faults = edge.faults
    faults.require("degrade", "reset")
    site = _site_client(edge)
    per_step, timeout, size = max(1, int(p["ops_per_step"])), float(p["op_timeout"]), int(p["content_size"])
    tag = _tag("wan")
    tables, worst, longest, steps, counter = [], 1.0, 0.0, 0, 0
    window, site_cpu = PressureWindow(), TreeCpu(own_site_pid(edge))  # the whole sweep
    first_failure = None
    for label, unit, field_name, values in sweeps:
        rows = []
        for value in values:
            outcomes: list[tuple[bool, float, str]] = []
            lock = threading.Lock()

            def run(op: str, n: int) -> None:
                if op == "pos":
                    out = _pos_op(site, f"{tag}-{n}", timeout)
                else:
                    out = _content_op(site, f"{tag}-{n}", size, timeout)
                with lock:
                    outcomes.append(out)

            with faults.degraded(**{field_name: value}):
                threads = []
                for op in ops:
                    for _ in range(per_step):
                        counter += 1
                        threads.append(_spawn(run, op, counter))
                for t in threads:
                    t.join(timeout + 5)
            ok = [d for good, d, _ in outcomes if good]
            ratio = len(ok) / max(1, len(threads))
            worst = min(worst, ratio)
            longest = max([longest] + ok)
            steps += 1
            shown = {"delay_ms": value, "loss": value * 100.0, "bandwidth": value / 1000.0}[label]
            rows.append({"value": round(shown, 6), "success_ratio": round(ratio, 4),
                         "duration_s": round(statistics.mean(ok), 4) if ok else None,
                         "max_s": round(max(ok), 4) if ok else None, "operations": len(threads)})
            failures = [why for good, _, why in outcomes if not good]
            if failures and first_failure is None:
                first_failure = f"{label} {shown:g} {unit}: {failures[0]}"
        tables.append({"param": label, "unit": unit, "rows": rows})
    record_pressure(rec, window.stop(), site_cpu.cores())
    _fault_log(rec, faults)
    rec.attach("sweep", tables[0])
    rec.attach("sweeps", tables)
    rec.record("min_success_ratio", worst, "ratio")
    rec.record("steps", steps)
    if longest > 0:
        rec.record("max_duration", longest, "s")
    else:
        rec.record("max_duration", timeout, "s")
        rec.note("no operation succeeded: max_duration recorded as the operation timeout")
    if first_failure:
        rec.note(f"first failed operation: {first_failure}")
    for t in tables:
        rec.note(f"{t['param']} ({t['unit']}): " + ", ".join(
            f"{r['value']:g} -> {r['success_ratio'] * 100:.0f} %"
            + (f" {r['duration_s']:.2f} s" if r["duration_s"] is not None else "") for r in t["rows"]))


# ---------------------------------------------------------------------------------------------
# resilience.recovery


@pytest.mark.edge_check("resilience.recovery")
def test_recovery(edge, request):
    edge.shared(_recovery)


def _missing_sales(site: Client, ids: list[str], timeout: float) -> list[str]:
    return [i for i in ids
            if site.call("GET", f"/pos/transactions/{quote(i, safe='')}", timeout=timeout).status != 200]


def _recovery(edge, rec) -> None:
    p = edge.params
    if not p["kill"] and not p["pause"]:
        raise MeasurementError("kill and pause are both off: nothing to do")
    faults = edge.faults
    faults.require(*(["kill"] if p["kill"] else []), *(["pause", "resume"] if p["pause"] else []))
    site = _site_client(edge)
    path, timeout, op_timeout = p["path"] or "/health", float(p["timeout"]), float(p["op_timeout"])
    if _wait_healthy(site, path, min(timeout, 10.0)) is None:
        raise MeasurementError(f"the site is not healthy before the faults (GET {path})")

    window, site_cpu = PressureWindow(), TreeCpu(own_site_pid(edge))  # the crash and the hang
    if p["kill"]:
        poster = Poster(site, _tag("crash"), 1.0, op_timeout).burst(max(1, int(p["records"])))
        poster.join()
        acked = poster.accepted
        if not acked:
            raise MeasurementError(f"no sale was acknowledged before the crash: {poster.first_failure()}")
        killed_at = time.monotonic()
        faults.kill()
        back = _wait_healthy(site, path, timeout)
        if back is None:
            rec.record("recovery_time", time.monotonic() - killed_at, "s")
            rec.record("data_survived", False)
            rec.note(f"not healthy again within {timeout:g} s of the crash: data could not be checked")
            if faults.supports("restart"):
                faults.restart()
                rec.note("restarted it (restart hook) to leave it running")
        else:
            rec.record("recovery_time", time.monotonic() - killed_at, "s")
            missing = _missing_sales(site, acked, op_timeout)
            rec.record("data_survived", not missing)
            if missing:
                rec.note(f"{len(missing)} of {len(acked)} sales acknowledged before the crash are gone "
                         f"after it (e.g. {missing[0]})")
        rec.attach("crash", {"acknowledged": len(acked), "recovered": back is not None})

    if p["pause"]:
        poster = Poster(site, _tag("hang"), 1.0, op_timeout).burst(3)
        poster.join()
        acked = poster.accepted
        hang_timeout = float(p["hang_timeout"])
        answers: list[Reply] = []
        with faults.paused():
            paused_at = time.monotonic()
            for _ in range(2):
                answers.append(site.call("GET", path, timeout=hang_timeout))
            _sleep_until(paused_at + float(p["pause_for"]))
        detected = all(r.status is None for r in answers)  # no answer within the timeout, not an error page
        rec.record("hang_detected", detected)
        if not detected:
            rec.note(f"the frozen site still answered GET {path} ({'; '.join(r.describe() for r in answers)}): "
                     "the pause did not take effect, or something else answered for it")
        back = _wait_healthy(site, path, timeout)
        missing = _missing_sales(site, acked, op_timeout) if back is not None else acked
        fresh = site.call("POST", "/pos/transactions", {"id": _tag("after-hang"), "amount": 1.0}) \
            if back is not None else Reply(None, error="not healthy")
        resumed = back is not None and not missing and fresh.status in (200, 201)
        rec.record("resumed_ok", resumed)
        if back is None:
            rec.note(f"not healthy within {timeout:g} s of resuming")
        elif missing:
            rec.note(f"{len(missing)} sales acknowledged before the freeze are gone after it")
        elif fresh.status not in (200, 201):
            rec.note(f"a sale after the freeze was refused: {fresh.describe()}")
        rec.attach("hang", {"answers_while_frozen": [r.describe() for r in answers],
                            "healthy_after_s": back})
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
    _, central = _central_client(edge)
    site = _site_client(edge)
    period, cycles, timeout = float(p["period"]), max(1, int(p["cycles"])), float(p["timeout"])
    cut = float(p["cut"]) if p.get("cut") is not None else period / 2
    if not 0 < cut < period:
        raise MeasurementError(f"cut ({cut:g} s) must be shorter than the period ({period:g} s)")
    name = edge.site.name
    in_sync, s_edge, s_hub = _wait_in_sync(site, central, name, min(timeout, 10.0))
    if not in_sync:
        rec.note(f"the site was not in sync with central before the flapping (site count "
                 f"{s_edge.get('count')}, central count {s_hub.get('count')})")
    tag = _tag("flap")
    window, site_cpu = PressureWindow(), TreeCpu(own_site_pid(edge))  # the flapping and the resync wait
    began = time.monotonic()
    poster = Poster(site, tag, float(p["rate"]), float(p["op_timeout"])).start(until=began + period * cycles)
    try:
        for c in range(cycles):
            start = began + c * period
            _sleep_until(start)
            with faults.partitioned(cut_mode):
                _sleep_until(start + cut)
        _sleep_until(began + period * cycles)
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
    out = _await_resync(rec, site, central, name, tag, created, healed_at, timeout, float(p["settle"]),
                        in_sync)
    record_pressure(rec, window.stop(), site_cpu.cores())
    rec.record("lost", out["created"] - out["delivered"])
    rec.record("duplicates", out["duplicates"])
    rec.record("sync_time", out["sync_time"], "s")
    health = None
    for _ in range(3):
        health = site.call("GET", "/health", timeout=float(p["op_timeout"]))
        if _healthy(health):
            break
        time.sleep(0.5)
    rec.record("healthy", _healthy(health))
    if not _healthy(health):
        rec.note(f"after the flapping GET /health -> {health.describe()}")
    rec.attach("flap", {k: v for k, v in out.items()})
