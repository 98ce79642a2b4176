"""Privacy: personal fields are pseudonymised before leaving the site; local_only records stay."""

from __future__ import annotations

import json

import pytest

PERSONAL = {"customer_name": "Ada Lovelace", "card_number": "4111111111111111", "email": "ada@example.org"}


@pytest.mark.parametrize("defect", [None, "leak-personal"])
def test_personal_data_never_leaves_the_site(env, defect):
    central = env.shared_central
    edge = env.edge("privacy", central.url, defects=(defect,) if defect else ())
    sales = [
        {"id": "p1", "amount": 10, **PERSONAL},
        {"id": "p2", "amount": 20, "email": PERSONAL["email"],
         "personal": {"loyalty_id": "L-123", "notes": ["prefers receipts by mail"]}},
        {"id": "p3", "amount": 30, "local_only": True, "patient_name": "Local Only"},
    ]
    for record in sales:
        assert edge.post("/pos/transactions", record).status == 201
    env.wait_until(lambda: edge.get("/pos/status").json()["pending"] == 0, what="forwarded")
    received = central.get(f"/sink/transactions?site={edge.name}").json()["records"]
    text = json.dumps(received)
    secrets = [*PERSONAL.values(), "L-123", "prefers receipts by mail", "Local Only"]
    if defect:
        assert "ada@example.org" in text and "p3" in {r["id"] for r in received}
        return
    for secret in secrets:
        assert secret not in text, f"{secret!r} left the site"
    by_id = {r["id"]: r["record"] for r in received}
    assert set(by_id) == {"p1", "p2"}, "local_only records must not be forwarded"
    assert by_id["p1"]["email"].startswith("anon:") and by_id["p1"]["amount"] == 10
    assert by_id["p1"]["email"] == by_id["p2"]["email"], "same person, same pseudonym"
    assert by_id["p2"]["personal"]["loyalty_id"].startswith("anon:")
    kept = edge.get("/pos/transactions/p3").json()
    assert kept["state"] == "local" and kept["record"]["patient_name"] == "Local Only"
    assert edge.get("/pos/status").json()["local_only"] == 1
    assert edge.get("/pos/transactions/p1").json()["record"]["email"] == "ada@example.org"
