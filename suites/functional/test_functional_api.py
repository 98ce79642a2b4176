"""API checks beyond functional.http: JSON fields, headers and a content digest, and one round trip
through each reference workload (POS, content cache, telemetry; see docs/workloads.md)."""

from __future__ import annotations

import hashlib
import json
import time
import uuid

import pytest

from conformance.measure.jsonfields import mismatches
from conformance.measure.web import fetch, header, header_mismatches
from conformance.model.target import expand_env


def _url(edge, path: str) -> str:
    return edge.endpoint().rstrip("/") + "/" + (path or "/").lstrip("/")


def _json(response, edge) -> object:
    try:
        return response.loads()
    except ValueError:
        edge.note(f"body is not JSON: {response.body[:80]!r}")
        return None


@pytest.mark.edge_check("functional.api")
def test_api(edge):
    p = edge.params
    url = _url(edge, p.get("path") or "/")
    method = (p.get("method") or "GET").upper()
    headers = {k: expand_env(str(v)) for k, v in (p.get("headers") or {}).items()}
    body = p.get("body")
    data = None
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    elif body is not None:
        data = str(body).encode()
    response = fetch(url, method=method, timeout=p["timeout"], headers=headers, body=data,
                     ca_file=edge.ca_file)
    edge.record("status", response.status)
    edge.record("latency", response.elapsed * 1000.0, "ms")
    edge.note(f"{method} {url} -> {response.status} in {response.elapsed * 1000:.1f} ms")
    expected = p.get("json")
    if expected:
        doc = _json(response, edge)
        problems = mismatches(doc, expected) if doc is not None else [f"no JSON to compare {len(expected)} fields"]
        for problem in problems:
            edge.note(problem)
        edge.record("json_mismatches", len(problems) if doc is not None else len(expected))
    else:
        edge.record("json_mismatches", 0)
    problems = header_mismatches(response.headers, p.get("headers_expected") or {})
    for problem in problems:
        edge.note(problem)
    edge.record("header_mismatches", len(problems))
    if p.get("sha256"):
        digest = hashlib.sha256(response.body).hexdigest()
        ok = digest == str(p["sha256"]).strip().lower()
        if not ok:
            edge.note(f"body sha256 {digest}, expected {p['sha256']}")
        edge.record("digest_ok", ok)
    else:
        edge.record("digest_ok", True)


@pytest.mark.edge_check("functional.pos_roundtrip")
def test_pos_roundtrip(edge):
    p = edge.params
    tx_id = f"conformance-{uuid.uuid4().hex[:16]}"
    sale = {"id": tx_id, "amount": p.get("amount", 1.0), "items": [{"sku": "conformance-probe", "qty": 1}]}
    url = _url(edge, "/pos/transactions")
    created = fetch(url, method="POST", timeout=p["timeout"], body=json.dumps(sale).encode(),
                    headers={"Content-Type": "application/json"})
    edge.record("status", created.status)
    edge.record("latency", created.elapsed * 1000.0, "ms")
    edge.note(f"POST {url} -> {created.status} in {created.elapsed * 1000:.1f} ms")
    if created.status not in (200, 201):
        edge.note(f"sale not accepted: {created.body[:200]!r}")
        edge.record("ok", False)
        return
    back = fetch(f"{url}/{tx_id}", timeout=p["timeout"])
    edge.note(f"GET {url}/{tx_id} -> {back.status}")
    doc = _json(back, edge) if back.status == 200 else None
    record = doc.get("record") if isinstance(doc, dict) else None
    ok = isinstance(record, dict) and record.get("id") == tx_id and record.get("amount") == sale["amount"]
    if back.status == 200 and not ok:
        edge.note(f"read back something else: {back.body[:200]!r}")
    edge.record("ok", ok)


@pytest.mark.edge_check("functional.cache_serves")
def test_cache_serves(edge):
    p = edge.params
    key = p.get("key") or f"conformance/{uuid.uuid4().hex[:12]}"
    url = _url(edge, f"/content/{key}")
    name, hit_value = p.get("hit_header") or "X-Cache", (p.get("hit_value") or "HIT").upper()
    first = fetch(url, timeout=p["timeout"])
    second = fetch(url, timeout=p["timeout"])
    for label, r in (("first", first), ("second", second)):
        edge.note(f"{label} GET {url} -> {r.status}, {name}: {header(r.headers, name) or '-'}")
    served = first.status == 200 and second.status == 200 and first.body == second.body
    if first.status == 200 and second.status == 200 and first.body != second.body:
        edge.note("the two answers differ")
    hit = served and (header(second.headers, name) or "").strip().upper() == hit_value
    edge.record("served", served)
    edge.record("hit", hit)


@pytest.mark.edge_check("functional.telemetry_accepted")
def test_telemetry_accepted(edge):
    p = edge.params
    url = _url(edge, "/telemetry")
    reading = {"sensor": p.get("sensor") or "conformance-probe", "value": 1.0, "ts": time.time()}
    r = fetch(url, method="POST", timeout=p["timeout"], body=json.dumps(reading).encode(),
              headers={"Content-Type": "application/json"})
    edge.record("status", r.status)
    edge.record("latency", r.elapsed * 1000.0, "ms")
    edge.note(f"POST {url} -> {r.status} in {r.elapsed * 1000:.1f} ms")
    accepted = 200 <= r.status < 300
    if not accepted:
        edge.note(f"refused: {r.body[:200]!r}")
    edge.record("accepted", accepted)
