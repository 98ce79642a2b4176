"""What of a site's sales central holds: marker values for personal fields that cannot appear at central
by chance, and central's copy of the site's records (`GET /sink/transactions?site=`)."""

from __future__ import annotations

import hashlib
import time
from urllib.parse import quote

from ..model.errors import MeasurementError
from .http import Client


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


def sink_ids(central: Client, site: str) -> tuple[str, set[str]]:
    """Central's copy of the site's records: (the raw JSON text, the record ids)."""
    path = f"/sink/transactions?site={quote(site)}&limit=1000000"
    url = central.base + path
    r = central.call("GET", path)
    if r.status != 200:
        raise MeasurementError(f"central's transactions: GET {url} -> {r.error or f'HTTP {r.status}'}")
    text = r.body.decode("utf-8", "replace")
    try:
        ids = {str(rec.get("id")) for rec in r.loads().get("records", [])}
    except (ValueError, AttributeError):
        raise MeasurementError(f"central's transactions: GET {url} answered something that is not JSON") from None
    return text, ids


def marked_sales(n: int, fields: list[str], tag: str) -> tuple[list[dict], list[dict], list[str]]:
    """n ordinary sales with a marker value in each personal field, n local_only sales, and the markers."""
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
    return ordinary, local, markers


def await_sink(central: Client, site: str, wanted: set[str], wait: float, settle: float) -> tuple[str, set[str]]:
    """Central's copy of the site's records once it holds every `wanted` id (or `wait` s passed), read
    again `settle` s later when any arrived (records sent "a little later" must show too)."""
    deadline = time.monotonic() + wait
    text, ids = sink_ids(central, site)
    while not wanted <= ids and time.monotonic() < deadline:
        time.sleep(0.2)
        text, ids = sink_ids(central, site)
    if wanted & ids:
        time.sleep(settle)
        text, ids = sink_ids(central, site)
    return text, ids
