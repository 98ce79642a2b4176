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

import time
import uuid

import pytest

from conformance.measure.http import Client
from conformance.measure.linkbytes import LinkBytes
from conformance.measure.pressure import PressureWindow, TreeCpu, own_site_pid, record_pressure
from conformance.measure.privacy import await_sink, marked_sales
from conformance.measure.siteapi import central_client, site_client
from conformance.measure.telemetry import await_shipping, post_readings, site_counters, wan_figures
from conformance.model.errors import MeasurementError

MAX_BODY = 64 << 20  # central's whole sink for a site, read as one document


def _central(edge, timeout: float) -> Client:
    """A client of the site's uplink (its central site)."""
    if not edge.site.uplink:
        if edge.site.role == "central":
            # The top of the tree: nothing leaves it for a central site, as a fact of the site.
            edge.not_applicable(f"site {edge.site.name} is the central site: no uplink for data to leave it to")
        # Any other site sends its data somewhere; the target file does not say where.
        edge.not_measured(f"site {edge.site.name} has no uplink: nothing to check what leaves it against",
                          f"name the central site of {edge.site.name} as its `uplink` in the target file")
    return central_client(edge, timeout, max_body=MAX_BODY)[1]


# ---------------------------------------------------------------------------------------------
# data.network_efficiency


@pytest.mark.edge_check("data.network_efficiency")
def test_network_efficiency(edge, request):
    """Requirements with the same params on the same site share one measurement (its notes say so)."""
    edge.shared(_network_efficiency)


def _network_efficiency(edge, rec) -> None:
    p = edge.params
    timeout = float(p["timeout"])
    site = site_client(edge, timeout, max_body=MAX_BODY)
    central = _central(edge, timeout)
    site_name = edge.site.name  # the name the site reports itself under at central
    n, per_post, n_sensors = int(p["readings"]), max(1, int(p["batch"])), max(1, int(p["sensors"]))
    if n <= 0:
        raise MeasurementError("readings must be at least 1")
    tag = uuid.uuid4().hex[:10]
    sensors = [f"conformance-ne-{tag}-{i}" for i in range(n_sensors)]

    before, source = site_counters(site, p["stats_path"])
    link = LinkBytes(edge.emulation["control_url"], site_name) \
        if edge.emulation and p.get("link_check", True) else None
    background = link.background(float(p["baseline"])) if link is not None else None  # B/s it carries anyway
    if link is not None and background is None:
        rec.note(f"the emulator keeps no byte counters for {link.name}: site counters only")
        link = None
    if before is None and link is None:
        raise MeasurementError(f"site {edge.site.name} exposes no telemetry counters ({p['stats_path']} or "
                               "/metrics with raw_bytes_ingested_total and wan_bytes_sent_total{channel="
                               "\"telemetry\"}) and the target is not emulated: cannot tell what crossed the WAN")
    start_link = link.read() if link is not None else None

    window, site_cpu = PressureWindow(), TreeCpu(own_site_pid(edge))  # posting and the shipping window
    raw_bytes = post_readings(site, sensors, n, per_post, time.time())
    posted_at = time.monotonic()
    delivered = await_shipping(site, central, site_name, sensors, n, float(p["wait"]), before, p["stats_path"])
    ship_time = time.monotonic() - posted_at
    # ship_time is a time taken on this machine: the pressure goes to the verdict rule with it
    record_pressure(rec, window.stop(), site_cpu.cores())
    after, _ = site_counters(site, p["stats_path"])
    end_link = link.read() if link is not None else None

    rec.record("raw_bytes", raw_bytes, "B")
    rec.note(f"{n} readings of {n_sensors} sensors in {-(-n // per_post)} POSTs: {raw_bytes} body bytes")
    metrics, notes = wan_figures(raw_bytes, (before, after, source),
                                 (link.name, start_link, end_link, background) if link is not None else None)
    for metric, value, unit in metrics:
        rec.record(metric, value, unit)
    for text in notes:
        rec.note(text)
    if delivered is not None:
        rec.record("delivered_ratio", delivered / n)
        rec.record("ship_time", ship_time, "s")
        rec.note(f"central accounts for {delivered} of {n} readings after {ship_time:.1f} s")
    else:
        rec.note(f"central's GET /telemetry/summary could not be read: delivery not checked "
                 f"(waited {ship_time:.1f} s)")


# ---------------------------------------------------------------------------------------------
# data.privacy


@pytest.mark.edge_check("data.privacy")
def test_privacy(edge):
    p = edge.params
    timeout = float(p["timeout"])
    site = site_client(edge, timeout, max_body=MAX_BODY)
    central = _central(edge, timeout)
    site_name = edge.site.name  # the name the site reports itself under at central
    n, fields = max(1, int(p["records"])), [str(f) for f in (p.get("fields") or [])]
    ordinary, local, markers = marked_sales(n, fields, uuid.uuid4().hex[:12])
    for record in ordinary + local:
        r = site.call("POST", "/pos/transactions", record)
        if r.status not in (200, 201):
            raise MeasurementError(f"POST {site.base}/pos/transactions -> {r.problem()}")
    edge.record("records", len(ordinary) + len(local))
    edge.note(f"posted {n} records with {len(fields)} personal fields each ({', '.join(fields) or 'none'}) "
              f"and {n} local_only records")

    wanted = {r["id"] for r in ordinary}
    started = time.monotonic()
    text, ids = await_sink(central, site_name, wanted, float(p["wait"]), float(p["settle"]))
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
