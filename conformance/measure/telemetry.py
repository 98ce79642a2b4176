"""Telemetry through a site (reference workloads, docs/workloads.md): readings POSTed to the site's
`/telemetry`, the site's own byte counters (`/telemetry/stats`, else Prometheus `/metrics`) and
central's per-sensor counts (`GET /telemetry/summary?site=`). Every request has a timeout."""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import quote

from ..model.errors import MeasurementError
from .http import Client

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


def site_counters(site: Client, stats_path: str) -> tuple[dict[str, float] | None, str]:
    """The site's own telemetry counters, {"raw": bytes ingested, "wan": bytes sent, "sent": readings},
    and where they came from; None when the site exposes neither."""
    r = site.call("GET", stats_path)
    if r.status == 200:
        try:
            doc = r.loads()
            return {"raw": float(doc["raw_bytes_ingested"]), "wan": float(doc["wan_bytes_sent"]),
                    "sent": float(doc.get("readings_sent") or 0)}, stats_path
        except (ValueError, KeyError, TypeError):
            pass
    r = site.call("GET", "/metrics")
    if r.status == 200:
        raw, wan = prometheus_counters(r.body.decode("utf-8", "replace"))
        if raw is not None and wan is not None:
            return {"raw": raw, "wan": wan, "sent": 0.0}, "/metrics"
    return None, ""


def central_readings(central: Client, site: str, sensors: list[str]) -> int | None:
    """How many readings of `sensors` central accounts for from `site` (None: no summary to read)."""
    r = central.call("GET", f"/telemetry/summary?site={quote(site)}")
    if r.status != 200:
        return None
    try:
        per_sensor = r.loads().get("sensors") or {}
        return int(sum((per_sensor.get(s) or {}).get("count", 0) for s in sensors))
    except (ValueError, AttributeError, TypeError):
        return None


def post_readings(site: Client, sensors: list[str], n: int, per_post: int, now: float) -> int:
    """n readings spread over `sensors`, `per_post` a POST; the body bytes sent (MeasurementError when
    the site refuses a batch)."""
    raw_bytes = 0
    for offset in range(0, n, per_post):
        body = [{"sensor": sensors[i % len(sensors)], "value": round(20.0 + (i % 97) * 0.173, 3), "ts": now}
                for i in range(offset, min(n, offset + per_post))]
        data = json.dumps(body).encode()
        r = site.call("POST", "/telemetry", data)
        if not r.ok:
            raise MeasurementError(f"POST {site.base}/telemetry ({len(body)} readings) -> {r.problem()}")
        raw_bytes += len(data)
    return raw_bytes


def await_shipping(site: Client, central: Client, site_name: str, sensors: list[str], n: int, wait: float,
                   before: dict[str, float] | None, stats_path: str) -> int | None:
    """The shipping window after n readings were posted: until central accounts for every one (or `wait`
    s pass). How many central accounts for, or None when central's summary cannot be read: then the
    site's own count of readings shipped ends the wait, else the whole window passes."""
    started = time.monotonic()
    delivered = central_readings(central, site_name, sensors)
    readable = delivered is not None
    while time.monotonic() - started < wait:
        if readable:
            delivered = central_readings(central, site_name, sensors)
            if delivered is not None and delivered >= n:
                break
        else:
            now, _ = site_counters(site, stats_path)
            if before and now and before["sent"] + n <= now["sent"]:
                break
        time.sleep(0.25)
    return (delivered or 0) if readable else None


def wan_figures(raw_bytes: int, counters: tuple[dict | None, dict | None, str],
                link: tuple[str, Any, Any, float | None] | None) -> tuple[list[tuple[str, float, str]], list[str]]:
    """What crossed the WAN for `raw_bytes` posted: by the site's counters (before, after, where from)
    and by the emulated link's (name, start and end (time, bytes), background B/s). The larger ratio is
    `wan_ratio`; (metric, value, unit) and notes; MeasurementError when neither could be read."""
    metrics: list[tuple[str, float, str]] = []
    notes, ratios = [], {}
    before, after, source = counters
    if before is not None and after is not None:
        wan = max(0.0, after["wan"] - before["wan"])
        ratios["reported"] = (wan, wan / raw_bytes)
        metrics.append(("reported_ratio", wan / raw_bytes, ""))
        ingested = after["raw"] - before["raw"]
        notes.append(f"site counters ({source}): {wan:.0f} WAN bytes sent, {ingested:.0f} raw bytes ingested")
        if abs(ingested - raw_bytes) > 0.05 * raw_bytes:
            notes.append(f"the site counted {ingested:.0f} raw bytes ingested, we posted {raw_bytes}")
    elif before is not None:
        notes.append("the site's counters could not be read after shipping")
    if link is not None and link[1] is not None and link[2] is not None:
        name, start, end, background = link
        carried = end[1] - start[1]
        expected_background = (background or 0.0) * (end[0] - start[0])
        wan = max(0.0, carried - expected_background)
        ratios["link"] = (wan, wan / raw_bytes)
        metrics.append(("link_ratio", wan / raw_bytes, ""))
        notes.append(f"WAN link {name}: {carried:.0f} bytes towards central in {end[0] - start[0]:.1f} s, "
                     f"{expected_background:.0f} of them background ({background or 0:.0f} B/s measured before)")
    if not ratios:
        raise MeasurementError("neither the site's counters nor the WAN link's could be read after shipping")
    judged = max(ratios, key=lambda k: ratios[k][1])
    if "reported" in ratios and "link" in ratios and ratios["link"][1] > ratios["reported"][1] + 0.05:
        notes.append(f"the WAN link carried more than the site reports ({ratios['link'][1] * 100:.1f} % vs "
                     f"{ratios['reported'][1] * 100:.1f} %): judged on the link")
    metrics += [("wan_bytes", ratios[judged][0], "B"), ("wan_ratio", ratios[judged][1], "")]
    return metrics, notes
