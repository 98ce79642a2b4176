"""data.*: what crosses the WAN. Network efficiency (raw telemetry in, WAN bytes out) and privacy (personal
values and local_only records must not leave the site).

Both feed the site known data through its own API and judge what arrived at its uplink (central), so a site
that only *says* it condenses or anonymises cannot pass:

* network efficiency: readings POSTed to `/telemetry` at the site; central's `GET /telemetry/summary?site=`
  shows when they arrived (per sensor counts: `delivered_ratio`); the WAN bytes are the site's counters
  (`/telemetry/stats` or `/metrics`) and, on an emulated target, the WAN link's own byte counters from the
  emulator's control API with the link's background traffic (heartbeats, config polls) subtracted. The
  larger of the two ratios is `wan_ratio`.
* privacy: sales with marker values in personal fields and `local_only` sales POSTed to
  `/pos/transactions`; central's `GET /sink/transactions?site=` is searched for the marker values and the
  local-only ids.

Traffic goes only to the site's and its uplink's declared endpoints (and the emulator's control API on
loopback), every request with a timeout. The checks decide no status themselves (the one verdict rule,
conformance/model/verdict.py, judges what they record); network efficiency, which times the shipping,
records the pressure on the harness's machine meanwhile as `pressure` evidence.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from typing import Any
from urllib.parse import quote

import pytest

from conformance.measure.http import http_request
from conformance.measure.pressure import PressureWindow, TreeCpu, own_site_pid, record_pressure
from conformance.model.errors import MeasurementError

MAX_BODY = 64 << 20  # central's whole sink for a site, read as one document


# ---------------------------------------------------------------------------------------------
# small tools


def _call(url: str, *, method: str = "GET", body: Any = None, timeout: float = 5.0,
          raw: bytes | None = None) -> tuple[int | None, bytes, str | None]:
    """(status, body, error): every failure is data, never an exception."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    headers = {"Content-Type": "application/json"} if data is not None else {}
    try:
        r = http_request(url, method=method, timeout=timeout, headers=headers, body=data, max_body=MAX_BODY)
    except MeasurementError as exc:
        return None, b"", str(exc)
    return r.status, r.body, None


def _json(url: str, what: str, timeout: float) -> Any:
    status, body, error = _call(url, timeout=timeout)
    if status is None or not 200 <= status < 300:
        raise MeasurementError(f"{what}: GET {url} -> {error or f'HTTP {status}'}")
    try:
        return json.loads(body)
    except ValueError:
        raise MeasurementError(f"{what}: GET {url} answered something that is not JSON: {body[:80]!r}") from None


def _base(edge, name: str) -> str:
    return edge.endpoint(name).rstrip("/")


def _central_base(edge) -> tuple[str, str]:
    """(central site name, its endpoint URL) of the site's uplink."""
    uplink = edge.site.uplink
    if not uplink:
        if edge.site.role == "central":
            # The top of the tree: nothing leaves it for a central site, as a fact of the site.
            edge.not_applicable(f"site {edge.site.name} is the central site: no uplink for data to leave it to")
        # Any other site sends its data somewhere; the target file does not say where.
        edge.not_measured(f"site {edge.site.name} has no uplink: nothing to check what leaves it against",
                          f"name the central site of {edge.site.name} as its `uplink` in the target file")
    try:
        central = edge.target.site(uplink)
        return central.name, central.endpoint(edge.params.get("central_endpoint") or "api").rstrip("/")
    except LookupError as exc:
        raise MeasurementError(str(exc)) from None


# ---------------------------------------------------------------------------------------------
# data.network_efficiency

_PROM = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)')


def prometheus_counters(text: str) -> tuple[float | None, float | None]:
    """(raw bytes ingested, WAN bytes sent for telemetry) from a Prometheus text exposition.

    Names may carry a prefix (the reference workloads' is `workload_`): `*raw_bytes_ingested_total` and
    `*wan_bytes_sent_total{channel="telemetry"}`."""
    raw = wan = None
    for line in text.splitlines():
        m = _PROM.match(line.strip())
        if not m or line.startswith("#"):
            continue
        try:
            value = float(m["value"])
        except ValueError:
            continue
        name, labels = m["name"], m["labels"] or ""
        if name.endswith("raw_bytes_ingested_total"):
            raw = (raw or 0.0) + value
        elif name.endswith("wan_bytes_sent_total") and re.search(r'channel="telemetry"', labels):
            wan = (wan or 0.0) + value
    return raw, wan


def _site_counters(base: str, stats_path: str, timeout: float) -> tuple[dict[str, float] | None, str]:
    """The site's own telemetry counters, {"raw": bytes ingested, "wan": bytes sent, "sent": readings},
    and where they came from; None when the site exposes neither."""
    status, body, _ = _call(base + stats_path, timeout=timeout)
    if status == 200:
        try:
            doc = json.loads(body)
            return {"raw": float(doc["raw_bytes_ingested"]), "wan": float(doc["wan_bytes_sent"]),
                    "sent": float(doc.get("readings_sent") or 0)}, stats_path
        except (ValueError, KeyError, TypeError):
            pass
    status, body, _ = _call(base + "/metrics", timeout=timeout)
    if status == 200:
        raw, wan = prometheus_counters(body.decode("utf-8", "replace"))
        if raw is not None and wan is not None:
            return {"raw": raw, "wan": wan, "sent": 0.0}, "/metrics"
    return None, ""


class _LinkCounter:
    """Bytes the emulated WAN link of a site carried towards central (bytes_up of `wan:<site>`)."""

    def __init__(self, edge):
        from conformance.faults.emulated import EmulatedFaults

        self.name = f"wan:{edge.site.name}"
        self.faults = EmulatedFaults(edge.emulation["control_url"], timeout=10)

    def read(self) -> tuple[float, float] | None:
        """(time, bytes_up), or None when the emulator keeps no counters for the link."""
        try:
            links = self.faults.status().get("links") or []
        except MeasurementError:
            return None
        for link in links:
            if link.get("name") == self.name and isinstance(link.get("stats"), dict):
                up = link["stats"].get("bytes_up")
                if isinstance(up, (int, float)):
                    return time.monotonic(), float(up)
        return None


def _central_readings(central: str, site: str, sensors: list[str], timeout: float) -> int | None:
    status, body, _ = _call(f"{central}/telemetry/summary?site={quote(site)}", timeout=timeout)
    if status != 200:
        return None
    try:
        per_sensor = json.loads(body).get("sensors") or {}
        return int(sum((per_sensor.get(s) or {}).get("count", 0) for s in sensors))
    except (ValueError, AttributeError, TypeError):
        return None


@pytest.mark.edge_check("data.network_efficiency")
def test_network_efficiency(edge, request):
    """Requirements with the same params on the same site share one measurement (its notes say so)."""
    edge.shared(_network_efficiency)


def _network_efficiency(edge, rec) -> None:
    p = edge.params
    timeout = float(p["timeout"])
    base = _base(edge, p.get("endpoint") or "api")
    _, central = _central_base(edge)
    site_name = edge.site.name  # the name the site reports itself under at central
    n, per_post, n_sensors = int(p["readings"]), max(1, int(p["batch"])), max(1, int(p["sensors"]))
    if n <= 0:
        raise MeasurementError("readings must be at least 1")
    tag = uuid.uuid4().hex[:10]
    sensors = [f"conformance-ne-{tag}-{i}" for i in range(n_sensors)]

    before, source = _site_counters(base, p["stats_path"], timeout)
    link = _LinkCounter(edge) if edge.emulation and p.get("link_check", True) else None
    background = None  # bytes per second the link carries anyway
    if link is not None:
        first = link.read()
        if first is None:
            rec.note(f"the emulator keeps no byte counters for {link.name}: site counters only")
            link = None
        else:
            time.sleep(float(p["baseline"]))
            second = link.read()
            background = (second[1] - first[1]) / max(second[0] - first[0], 1e-3) if second else 0.0
    if before is None and link is None:
        raise MeasurementError(f"site {edge.site.name} exposes no telemetry counters ({p['stats_path']} or "
                               "/metrics with raw_bytes_ingested_total and wan_bytes_sent_total{channel="
                               "\"telemetry\"}) and the target is not emulated: cannot tell what crossed the WAN")
    start_link = link.read() if link is not None else None

    window, site_cpu = PressureWindow(), TreeCpu(own_site_pid(edge))  # posting and the shipping window
    raw_bytes = 0
    now = time.time()
    for offset in range(0, n, per_post):
        body = [{"sensor": sensors[i % n_sensors], "value": round(20.0 + (i % 97) * 0.173, 3), "ts": now}
                for i in range(offset, min(n, offset + per_post))]
        data = json.dumps(body).encode()
        status, answer, error = _call(base + "/telemetry", method="POST", raw=data, timeout=timeout)
        if status is None or not 200 <= status < 300:
            raise MeasurementError(f"POST {base}/telemetry ({len(body)} readings) -> "
                                   f"{error or f'HTTP {status} {answer[:120]!r}'}")
        raw_bytes += len(data)
    posted_at = time.monotonic()

    # The shipping window: until central accounts for every reading (or `wait` runs out).
    wait = float(p["wait"])
    delivered = _central_readings(central, site_name, sensors, timeout)
    central_readable = delivered is not None
    while time.monotonic() - posted_at < wait:
        if central_readable:
            delivered = _central_readings(central, site_name, sensors, timeout)
            if delivered is not None and delivered >= n:
                break
        else:  # no central summary: the site's own count of readings shipped, else the whole window
            now_counters, _ = _site_counters(base, p["stats_path"], timeout)
            if before and now_counters and before["sent"] + n <= now_counters["sent"]:
                break
        time.sleep(0.25)
    ship_time = time.monotonic() - posted_at
    # ship_time is a time taken on this machine: the pressure goes to the verdict rule with it
    record_pressure(rec, window.stop(), site_cpu.cores())
    after, _ = _site_counters(base, p["stats_path"], timeout)
    end_link = link.read() if link is not None else None

    rec.record("raw_bytes", raw_bytes, "B")
    rec.note(f"{n} readings of {n_sensors} sensors in {-(-n // per_post)} POSTs: {raw_bytes} body bytes")
    ratios = {}
    if before is not None and after is not None:
        wan = max(0.0, after["wan"] - before["wan"])
        ratios["reported"] = (wan, wan / raw_bytes)
        rec.record("reported_ratio", wan / raw_bytes)
        ingested = after["raw"] - before["raw"]
        rec.note(f"site counters ({source}): {wan:.0f} WAN bytes sent, {ingested:.0f} raw bytes ingested")
        if abs(ingested - raw_bytes) > 0.05 * raw_bytes:
            rec.note(f"the site counted {ingested:.0f} raw bytes ingested, we posted {raw_bytes}")
    elif before is not None:
        rec.note("the site's counters could not be read after shipping")
    if start_link is not None and end_link is not None:
        carried = end_link[1] - start_link[1]
        expected_background = (background or 0.0) * (end_link[0] - start_link[0])
        wan = max(0.0, carried - expected_background)
        ratios["link"] = (wan, wan / raw_bytes)
        rec.record("link_ratio", wan / raw_bytes)
        rec.note(f"WAN link {link.name}: {carried:.0f} bytes towards central in "
                  f"{end_link[0] - start_link[0]:.1f} s, {expected_background:.0f} of them background "
                  f"({background or 0:.0f} B/s measured before)")
    if not ratios:
        raise MeasurementError("neither the site's counters nor the WAN link's could be read after shipping")
    judged = max(ratios, key=lambda k: ratios[k][1])
    if "reported" in ratios and "link" in ratios and ratios["link"][1] > ratios["reported"][1] + 0.05:
        rec.note(f"the WAN link carried more than the site reports ({ratios['link'][1] * 100:.1f} % vs "
                  f"{ratios['reported'][1] * 100:.1f} %): judged on the link")
    rec.record("wan_bytes", ratios[judged][0], "B")
    rec.record("wan_ratio", ratios[judged][1])
    if central_readable:
        rec.record("delivered_ratio", (delivered or 0) / n)
        rec.record("ship_time", ship_time, "s")
        rec.note(f"central accounts for {delivered} of {n} readings after {ship_time:.1f} s")
    else:
        rec.note(f"central's GET /telemetry/summary could not be read: delivery not checked "
                  f"(waited {ship_time:.1f} s)")


# ---------------------------------------------------------------------------------------------
# data.privacy


def marker_value(field: str, tag: str, index: int) -> str:
    """A value for a personal field that cannot appear at central by chance (it contains the run's tag)."""
    digits = str(int(hashlib.sha256(f"{tag}-{index}".encode()).hexdigest()[:12], 16)).zfill(12)[-12:]
    if field == "card_number":
        return "4000" + digits
    if field == "email":
        return f"privacy-{tag}-{index}@example.invalid"
    if field == "customer_name":
        return f"Conformance Person {tag} {index}"
    if field in ("phone",):
        return "+999" + digits
    return f"conformance-{field}-{tag}-{index}"


def _sink_ids(central: str, site: str, timeout: float) -> tuple[str, set[str]]:
    """Central's copy of the site's records: (the raw JSON text, the record ids)."""
    url = f"{central}/sink/transactions?site={quote(site)}&limit=1000000"
    status, body, error = _call(url, timeout=timeout)
    if status is None or status != 200:
        raise MeasurementError(f"central's transactions: GET {url} -> {error or f'HTTP {status}'}")
    text = body.decode("utf-8", "replace")
    try:
        ids = {str(r.get("id")) for r in json.loads(text).get("records", [])}
    except (ValueError, AttributeError):
        raise MeasurementError(f"central's transactions: GET {url} answered something that is not JSON") from None
    return text, ids


@pytest.mark.edge_check("data.privacy")
def test_privacy(edge):
    p = edge.params
    timeout = float(p["timeout"])
    base = _base(edge, p.get("endpoint") or "api")
    _, central = _central_base(edge)
    site_name = edge.site.name  # the name the site reports itself under at central
    n, fields = max(1, int(p["records"])), [str(f) for f in (p.get("fields") or [])]
    tag = uuid.uuid4().hex[:12]
    ordinary, local, markers = [], [], []
    for i in range(n):
        record = {"id": f"conformance-privacy-{tag}-{i}", "amount": 1.0,
                  "items": [{"sku": "privacy-probe", "qty": 1}]}
        for f in fields:
            record[f] = marker_value(f, tag, i)
            markers.append(record[f])
        ordinary.append(record)
        local.append({"id": f"conformance-local-{tag}-{i}", "amount": 1.0, "local_only": True,
                      "note": f"local-only record {tag}"})
    for record in ordinary + local:
        status, answer, error = _call(base + "/pos/transactions", method="POST", body=record, timeout=timeout)
        if status is None or status not in (200, 201):
            raise MeasurementError(f"POST {base}/pos/transactions -> {error or f'HTTP {status} {answer[:120]!r}'}")
    edge.record("records", len(ordinary) + len(local))
    edge.note(f"posted {n} records with {len(fields)} personal fields each ({', '.join(fields) or 'none'}) "
              f"and {n} local_only records")

    wanted = {r["id"] for r in ordinary}
    deadline = time.monotonic() + float(p["wait"])
    started = time.monotonic()
    text, ids = _sink_ids(central, site_name, timeout)
    while not wanted <= ids and time.monotonic() < deadline:
        time.sleep(0.2)
        text, ids = _sink_ids(central, site_name, timeout)
    arrived = len(wanted & ids)
    if arrived:
        time.sleep(float(p["settle"]))  # local-only records sent "a little later" must show too
        text, ids = _sink_ids(central, site_name, timeout)
        arrived = len(wanted & ids)
    leaked_values = [m for m in markers if m in text]
    leaked_local = sorted({r["id"] for r in local} & ids)
    edge.record("forwarded_ratio", arrived / n)
    edge.record("leaked_fields", len(leaked_values))
    edge.record("leaked_local", len(leaked_local))
    edge.note(f"central holds {arrived} of {n} ordinary records after {time.monotonic() - started:.1f} s")
    if leaked_values:
        edge.note(f"personal values in clear at central: {', '.join(leaked_values[:3])}"
                  + (" ..." if len(leaked_values) > 3 else ""))
    if leaked_local:
        edge.note(f"local_only records at central: {', '.join(leaked_local[:3])}")
    if not arrived and not leaked_values and not leaked_local:
        edge.inconclusive(f"none of the {n} ordinary records reached central within {p['wait']:g} s: "
                          "cannot tell whether personal data would leave the site")
