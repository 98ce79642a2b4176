"""stack.*: the real components of an edge site judged on their own (docs/stack.md).

* stack.http_cache: the site's HTTP cache (`cache` endpoint): hit ratio over repeated GETs, and the share
  of GETs of expired content answered with the cached copy while the WAN is cut (stale-if-error).
* stack.mqtt_bridge: the site's MQTT broker (`mqtt` endpoint) bridged to central's (`mqtt` on the
  uplink): messages published at QoS 1 during a WAN cut reach central after the heal; lost and
  duplicated ones counted by the id in each payload.

The cut goes through `edge.faults` (the emulator's supervisor; a real target's hooks only with
--allow-faults) and is healed in a finally, also on failure and Ctrl-C. Traffic goes only to the
target's declared endpoints, with a deadline on every request, connection and acknowledgement. A site
without the endpoint is not measured, with the endpoint to declare as the remedy. The checks decide no
status: model/verdict.py judges what they record.
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest

from conformance.measure.httpcache import CACHE_HEADERS, HttpCache
from conformance.measure.mqtt import Mqtt, payload, tally, wait_for
from conformance.measure.outagelength import outage_note
from conformance.measure.pacing import sleep_until
from conformance.model.catalog.stack import CUT_MODES
from conformance.model.errors import MeasurementError

CACHE_REMEDY = ("declare the site's HTTP cache as endpoint `{name}` in the target file (a base URL under which "
                "cacheable content is served, e.g. http://store-7:8080/static/), or name another with the "
                "`endpoint` param")
MQTT_REMEDY = ("declare {whose} MQTT broker as endpoint `{name}` in the target file (mqtt://host:1883), or name "
               "another with the `{param}` param")


def _tag(kind: str) -> str:
    return f"stk-{kind}-{uuid.uuid4().hex[:10]}"


def _put(rec, metrics: list[tuple[str, Any, str]], notes: list[str]) -> None:
    for metric, value, unit in metrics:
        rec.record(metric, value, unit)
    for text in notes:
        rec.note(text)


def _cut_mode(params: dict) -> str:
    mode = params.get("cut_mode") or "drop"
    if mode not in CUT_MODES:
        raise MeasurementError(f"cut_mode: expected one of {', '.join(CUT_MODES)}, got {mode!r}")
    return mode


def _declared(edge, site, name: str, remedy: str) -> str:
    """The URL of `site`'s endpoint `name`; not measured (with `remedy`) when the site declares none."""
    url = site.endpoints.get(name)
    if not url:
        known = ", ".join(sorted(site.endpoints)) or "none"
        if getattr(edge, "emulation", None):  # an emulated site has one only where the docker backend runs it
            remedy = ("run a topology whose sites have `config: {stack: [nginx, mosquitto]}` (emulated:edge-stack) "
                      "with --backend docker: the local backend runs no nginx or mosquitto")
        edge.not_measured(f'site {site.name} declares no endpoint "{name}" (endpoints: {known})', remedy)
    host = urlsplit(url).hostname or ""
    if host not in edge.allowed_hosts:  # pragma: no cover - a declared endpoint's host is allowed
        raise MeasurementError(f"{url}: not a declared endpoint of the target")
    return url


def _fault_log(rec, faults) -> None:
    if faults.kind == "hooks":
        for line in faults.log:
            rec.note(line)


def _scaled(rec, edge, seconds: float) -> None:
    note = outage_note(edge.requirement.unscaled, edge.params, "cut", seconds)
    if note:
        rec.note(note)


# ---------------------------------------------------------------------------------------------
# stack.http_cache


@pytest.mark.edge_check("stack.http_cache")
def test_http_cache(edge):
    edge.shared(_http_cache)


def _http_cache(edge, rec) -> None:
    p = edge.params
    name = p.get("endpoint") or "cache"
    base = _declared(edge, edge.site, name, CACHE_REMEDY.format(name=name))
    cut = bool(p.get("cut", True))
    faults = None
    if cut:
        cut_mode = _cut_mode(p)
        faults = edge.faults  # not measured here on a real target without --allow-faults
        faults.require("partition", "heal")
    timeout = float(p["op_timeout"])
    paths = [str(x) for x in p.get("paths") or []] or \
        [f"{_tag('cache')}-{i}" for i in range(max(1, int(p.get("keys") or 1)))]
    cache = HttpCache(base, paths, timeout, hit_header=p.get("hit_header"), ca_file=edge.ca_file)
    cache.prime(int(p["repeats"]))
    if cache.header is None:
        which = p.get("hit_header") or ", ".join(CACHE_HEADERS)
        edge.not_measured(f"the cache's answers carry no cache status header ({which}): whether it answered "
                          "itself cannot be told",
                          "make the cache say so in a header, e.g. nginx: add_header X-Cache "
                          "$upstream_cache_status; or name its header with the `hit_header` param")
    metrics, notes, detail = cache.hit_figures()
    _put(rec, metrics, notes)
    if not cut or faults is None:
        rec.attach("http_cache", detail)
        return

    ttl, duration = float(p["content_ttl"]), float(p["duration"])
    # the longest this cut can last (a real site's dead-man switch removes it after that, plus a margin)
    with faults.partitioned(cut_mode, duration=ttl + duration + 2 * timeout):
        cut_at = time.monotonic()
        sleep_until(cache.expired_at(ttl) + 0.2)
        reads = cache.read_until(time.monotonic() + duration)
    healed_at = time.monotonic()
    _fault_log(rec, faults)
    rec.note(f"WAN cut ({cut_mode}) for {healed_at - cut_at:.1f} s; the copies were read from "
             f"{ttl:g} s after their fetch on")
    _scaled(rec, edge, healed_at - cut_at)
    metrics, notes, evidence = cache.cut_figures(reads)
    _put(rec, metrics, notes)
    for item in evidence:
        rec.evidence(**item)
    detail["cut"] = {"mode": cut_mode, "duration_s": round(healed_at - cut_at, 3),
                     "reads": [f.brief() for f in reads]}
    rec.attach("http_cache", detail)


# ---------------------------------------------------------------------------------------------
# stack.mqtt_bridge


@pytest.mark.edge_check("stack.mqtt_bridge")
def test_mqtt_bridge(edge):
    edge.shared(_mqtt_bridge)


def _mqtt_bridge(edge, rec) -> None:
    p = edge.params
    site = edge.site
    name, central_name = p.get("endpoint") or "mqtt", p.get("central_endpoint") or "mqtt"
    site_url = _declared(edge, site, name, MQTT_REMEDY.format(whose=f"site {site.name}'s", name=name,
                                                              param="endpoint"))
    if not site.uplink:
        edge.not_measured(f"site {site.name} has no uplink in the target: there is no central broker to "
                          "bridge to", f"name the site's central site as `uplink` of {site.name}")
    try:
        central = edge.target.site(site.uplink)
    except LookupError as exc:
        raise MeasurementError(str(exc)) from None
    central_url = _declared(edge, central, central_name,
                            MQTT_REMEDY.format(whose=f"the uplink {central.name}'s", name=central_name,
                                               param="central_endpoint"))
    cut_mode = _cut_mode(p)
    faults = edge.faults
    faults.require("partition", "heal")
    timeout, wait, settle = float(p["op_timeout"]), float(p["timeout"]), float(p["settle"])
    duration, count = float(p["duration"]), max(1, int(p["messages"]))
    tag = _tag("mqtt")
    fill = {"tag": tag, "site": site.name}
    topic = str(p["topic"]).format(**fill)
    central_filter = str(p["central_topic"]).format(topic=topic, **fill)

    with Mqtt(central_url, timeout, ca_file=central.ca_file, name="edge-conformance-central") as sub, \
            Mqtt(site_url, timeout, ca_file=edge.ca_file, name="edge-conformance-site") as pub:
        sub.connect()
        seen = sub.collect(central_filter, tag)
        pub.connect()
        # The bridge works before the cut: one message through (it also tells `central_topic` is right).
        problem = pub.publish(topic, payload(tag, "before"))
        if problem:
            raise MeasurementError(f"before the cut, the site's broker {site_url} did not take a QoS 1 message "
                                   f"on {topic!r}: {problem}")
        if not wait_for(lambda: seen.has("before"), min(wait, 10.0)):
            raise MeasurementError(f"before the cut, a message published on {topic!r} at {site_url} did not "
                                   f"reach central's {central_url} ({central_filter!r}) within "
                                   f"{min(wait, 10.0):g} s: is that topic bridged, and does central_topic "
                                   "match where the bridge delivers it?")

        acked: list[int] = []
        refused: list[str] = []
        # the longest this cut can last: every publish waiting its whole timeout for the broker's ack
        with faults.partitioned(cut_mode, duration=duration + count * timeout):
            cut_at = time.monotonic()
            for i in range(count):
                sleep_until(cut_at + 0.8 * duration * i / count)
                problem = pub.publish(topic, payload(tag, i, at=time.time()))
                if problem:
                    refused.append(f"message {i}: {problem}")
                else:
                    acked.append(i)
            sleep_until(cut_at + duration)
            during, _ = seen.snapshot()
        healed_at = time.monotonic()
        _fault_log(rec, faults)
        rec.note(f"WAN cut ({cut_mode}) for {healed_at - cut_at:.1f} s; {len(acked)} of {count} messages "
                 f"published at QoS 1 on {topic!r} were acknowledged by the site's broker")
        _scaled(rec, edge, healed_at - cut_at)
        if refused:
            rec.note(f"{len(refused)} messages were not acknowledged by the site's broker, e.g. {refused[0]}; "
                     "only acknowledged ones must reach central")
        if not acked:
            raise MeasurementError(f"the site's broker acknowledged no message during the cut ({refused[0]})")
        wanted = set(acked)
        crossed = sum(1 for i in during if i in wanted)
        if crossed:
            rec.note(f"{crossed} messages reached central during the cut: the cut did not cut the bridge")

        done = wait_for(lambda: wanted <= set(seen.snapshot()[0]), wait, 0.1)
        last = time.monotonic()
        sleep_until(last + settle)  # late duplicates
        ids, times = seen.snapshot()
        if sub.disconnects:
            raise MeasurementError(f"the harness's subscription at central was disconnected "
                                   f"({sub.disconnects[0]}): what central delivered is not known")

    counted = [i for i in ids if i != "before"]
    t = tally(counted, acked)
    arrivals = [at for i, at in zip(ids, times) if i in wanted]
    rec.record("published", t.published)
    rec.record("delivered_ratio", t.delivered_ratio, "ratio")
    rec.record("lost", t.lost)
    rec.record("duplicates", t.duplicates)
    if t.delivered:
        rec.record("sync_time", max(0.0, max(arrivals) - healed_at), "s")
    rec.note(f"at central ({central_filter!r}): {t.delivered} of {t.published} delivered, {t.lost} lost, "
             f"{t.duplicates} duplicates" + ("" if done else f" after waiting {wait:g} s from the heal"))
    if t.unexpected:
        rec.note(f"{t.unexpected} messages of this run arrived that the site's broker never acknowledged")
    missing = sorted(wanted - set(counted))
    rec.attach("mqtt_bridge", {"topic": topic, "central_topic": central_filter, "cut_mode": cut_mode,
                               "duration_s": round(healed_at - cut_at, 3), "published": len(acked),
                               "refused": refused[:10], "lost_ids": missing[:50],
                               "arrivals": len(counted), "crossed_during_cut": crossed})
