"""fleet.*: central management of many sites over the WAN: does central see its fleet alive, and does a
config pushed at central reach every site.

Fleet checks run once per requirement on the central site (`applies_to: [central]`) and look at every site
of the target whose uplink it is (and that matches the `sites` param, edge sites by default). They use the
reference workloads' management API (docs/workloads.md): `GET /registry/sites`, `GET|PUT /config` at
central and `GET /config` at each edge site. Traffic goes only to the sites' declared endpoints, every
request with a timeout.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from conformance.measure.http import Reply, send_json
from conformance.model.errors import MeasurementError

POLL_S = 0.2


def _call(url: str, *, method: str = "GET", body: Any = None, timeout: float = 5.0) -> Reply:
    return send_json(url, method=method, body=body, timeout=timeout, max_body=16 << 20)


def _fleet(edge) -> list:
    """The sites the central site under check manages: its downlinks that match `sites`."""
    selectors = list(edge.params.get("sites") or ["edge"])
    fleet = [s for s in edge.target.sites if s.uplink == edge.site.name and s.matches(selectors)]
    return fleet


def _no_fleet(edge, check: str) -> None:
    """No site of the target names this one as its uplink (among the `sites` selected)."""
    selectors = edge.params.get("sites") or ["edge"]
    reason = f"no site of the target has {edge.site.name} as its uplink (and matches {selectors})"
    if edge.site.role != "central":
        # A site that is not central manages no fleet: a fact of the site, not a gap in the target.
        edge.not_applicable(f"{reason}: {check} runs on a central site (applies_to: [central])")
    # A central site manages its sites; the target file does not say which (or `sites` selects none).
    edge.not_measured(reason, f"name {edge.site.name} as the `uplink` of its sites in the target file, or "
                              "widen the requirement's `sites` param")


def _names(names, limit: int = 8) -> str:
    names = sorted(names)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


# ---------------------------------------------------------------------------------------------
# fleet.registry


@pytest.mark.edge_check("fleet.registry")
def test_registry(edge, request):
    edge.shared(_registry)


def _registry(edge, rec) -> None:
    p = edge.params
    timeout, within = float(p["timeout"]), float(p["within"])
    fleet = {s.name for s in _fleet(edge)}
    min_sites = p.get("min_sites")
    if not fleet and min_sites is None:
        _no_fleet(edge, "fleet.registry")
    need = int(min_sites) if min_sites is not None else len(fleet)
    if need <= 0:
        raise MeasurementError("min_sites must be at least 1")
    url = edge.endpoint(p.get("endpoint") or "api").rstrip("/") + "/registry/sites"

    started = time.monotonic()
    r = _call(url, timeout=timeout)
    doc = r.json()
    if r.status != 200 or not isinstance(doc, dict) or not isinstance(doc.get("sites"), dict):
        raise MeasurementError(f"central's registry: GET {url} -> {r.problem() or 'no {now, sites} document'}")
    since = float(doc.get("now") or 0.0)  # central's clock: a site counts once central records a newer heartbeat
    reached_at, fresh = None, set()
    while True:
        fresh = {name for name, info in doc["sites"].items()
                 if isinstance(info, dict) and float(info.get("last_seen") or 0) > since}
        counted = fresh if min_sites is not None else fresh & fleet
        if len(counted) >= need:
            reached_at = time.monotonic() - started
            break
        if time.monotonic() - started >= within:
            break
        time.sleep(POLL_S)
        r = _call(url, timeout=timeout)
        doc = r.json()
        if r.status != 200 or not isinstance(doc, dict) or not isinstance(doc.get("sites"), dict):
            raise MeasurementError(f"central's registry: GET {url} -> {r.problem() or 'no {now, sites} document'}")
    counted = fresh if min_sites is not None else fresh & fleet
    rec.record("registered", len(counted))
    rec.record("registered_ratio", min(1.0, len(counted) / need))
    rec.record("time_to_register", reached_at if reached_at is not None else within, "s")
    what = f"at least {need} sites" if min_sites is not None else f"{len(fleet)} fleet sites"
    rec.note(f"central saw a fresh heartbeat from {len(counted)} of {what}"
              + (f" within {reached_at:.1f} s" if reached_at is not None else f" in {within:g} s"))
    missing = fleet - fresh
    if missing:
        listed = missing & set(doc["sites"])
        rec.note(f"no heartbeat from {_names(missing)}"
                  + (f" ({len(listed)} of them listed with an old one)" if listed else ""))


# ---------------------------------------------------------------------------------------------
# fleet.config_push


@pytest.mark.edge_check("fleet.config_push")
def test_config_push(edge, request):
    edge.shared(_config_push)


def _config_push(edge, rec) -> None:
    p = edge.params
    timeout, within = float(p["timeout"]), float(p["within"])
    fleet = _fleet(edge)
    if not fleet:
        _no_fleet(edge, "fleet.config_push")
    site_endpoint = p.get("site_endpoint") or "api"
    urls = {}
    for s in fleet:
        try:
            urls[s.name] = s.endpoint(site_endpoint).rstrip("/") + "/config"
        except LookupError as exc:
            raise MeasurementError(str(exc)) from None
    central = edge.endpoint(p.get("endpoint") or "api").rstrip("/") + "/config"

    pushed = p.get("config")
    if pushed is None:
        r = _call(central, timeout=timeout)
        current = r.json()
        if r.status != 200 or not isinstance(current, dict):
            raise MeasurementError(f"central's config: GET {central} -> {r.problem() or 'not a JSON object'}")
        base = current.get("config") if isinstance(current.get("config"), dict) else {}
        pushed = {**base, "conformance_probe": uuid.uuid4().hex[:12]}
    r = _call(central, method="PUT", body=pushed, timeout=timeout)
    answer = r.json()
    if not r.ok:
        raise MeasurementError(f"PUT {central} -> {r.problem()}")
    pushed_at = time.monotonic()
    version = answer.get("version") if isinstance(answer, dict) else None
    if not isinstance(version, int):
        raise MeasurementError(f"PUT {central} answered no config version: {answer!r}")
    rec.note(f"pushed config version {version} at central ({len(pushed)} keys); waiting for {len(fleet)} sites")

    reached: dict[str, float] = {}
    last: dict[str, str] = {}

    def look(name: str) -> tuple[str, bool, str]:
        r = _call(urls[name], timeout=min(timeout, 2.0))
        doc = r.json()
        if r.status != 200 or not isinstance(doc, dict):
            return name, False, r.problem() or "not a JSON object"
        seen = doc.get("version")
        ok = isinstance(seen, int) and seen >= version
        return name, ok, f"applied version {seen}" + (f", saw {doc['central_version_seen']} at central"
                                                      if "central_version_seen" in doc else "")

    with ThreadPoolExecutor(max_workers=min(16, len(fleet)), thread_name_prefix="fleet-config") as pool:
        while True:
            todo = [name for name in urls if name not in reached]
            for name, ok, state in pool.map(look, todo):
                last[name] = state
                if ok:
                    reached[name] = time.monotonic() - pushed_at
            if len(reached) == len(urls) or time.monotonic() - pushed_at >= within:
                break
            time.sleep(POLL_S)
    rec.record("reached", len(reached))
    rec.record("reached_ratio", len(reached) / len(urls))
    complete = len(reached) == len(urls)
    rec.record("propagation_time", max(reached.values()) if complete else within, "s")
    rec.note(f"{len(reached)} of {len(urls)} sites applied version {version}"
              + (f", the last after {max(reached.values()):.1f} s" if complete else f" within {within:g} s"))
    missing = sorted(set(urls) - set(reached))
    for name in missing[:5]:
        rec.note(f"{name}: {last.get(name, 'not read')}")
    if len(missing) > 5:
        rec.note(f"... and {len(missing) - 5} more sites without it")
