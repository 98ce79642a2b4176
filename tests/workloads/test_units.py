"""In-process tests of the small pure parts, and of /health turning 503 when the database breaks."""

from __future__ import annotations

import asyncio

import pytest

from edge_workloads import tokens
from edge_workloads.defects import UnknownDefect, parse_defects
from edge_workloads.digest import payload_digest, summary_digest
from edge_workloads.privacy import anonymise
from edge_workloads.settings import Settings, SettingsError


def test_tokens_round_trip_and_refuse_tampering():
    key = tokens.new_key()
    token, expires = tokens.issue(key, "alice", 60, now=1000.0)
    assert tokens.verify(token, {key["kid"]: key}, now=1001.0)["sub"] == "alice"
    with pytest.raises(tokens.InvalidToken, match="expired"):
        tokens.verify(token, {key["kid"]: key}, now=expires + 1)
    other = {**tokens.new_key(), "kid": key["kid"]}   # same key id, different secret
    with pytest.raises(tokens.InvalidToken, match="bad signature"):
        tokens.verify(token, {key["kid"]: other}, now=1001.0)
    with pytest.raises(tokens.InvalidToken, match="unknown key id"):
        tokens.verify(token, {}, now=1001.0)
    with pytest.raises(tokens.InvalidToken, match="malformed"):
        tokens.verify("v1.x.!!!.???", {"x": key})


def test_anonymise_reaches_every_depth_and_is_stable():
    secret = b"k" * 32
    record = {"amount": 5, "email": "a@b", "customer": {"email": "a@b", "city": "Rome"},
              "personal": {"loyalty": ["L1", "L2"]}, "items": [{"card_number": "4111"}]}
    out = anonymise(record, secret, ["email", "card_number"])
    assert out["amount"] == 5 and out["customer"]["city"] == "Rome"
    assert out["email"] == out["customer"]["email"] != "a@b" and out["email"].startswith("anon:")
    assert all(v.startswith("anon:") for v in out["personal"]["loyalty"])
    assert out["items"][0]["card_number"].startswith("anon:")
    assert anonymise(record, b"x" * 32, ["email"])["email"] != out["email"], "keyed per site"


def test_summary_digest_is_order_free_and_counts_duplicates():
    a, b = ("t1", payload_digest({"id": "t1"})), ("t2", payload_digest({"id": "t2"}))
    assert summary_digest([a, b]) == summary_digest([b, a])
    assert summary_digest([a, b, a]) != summary_digest([a, b])


def test_settings_validate_and_pushed_config_is_forgiving():
    with pytest.raises(SettingsError, match='did you mean "cache_ttl_s"'):
        Settings({"cache_ttl": 1})
    with pytest.raises(SettingsError, match="forward_batch_size"):
        Settings({"forward_batch_size": 0})
    settings = Settings({"cache_ttl_s": 9})
    applied, ignored = settings.apply_pushed({"telemetry_window_s": 2, "bogus": 1, "wan_timeout_s": "x"})
    assert applied == ["telemetry_window_s"] and set(ignored) == {"bogus", "wan_timeout_s"}
    assert settings.telemetry_window_s == 2 and settings.cache_ttl_s == 9


def test_parse_defects():
    assert parse_defects(" slow-path, no-fsync ,") == {"slow-path", "no-fsync"}
    with pytest.raises(UnknownDefect, match='did you mean "no-fsync"'):
        parse_defects("no-fsynk")


def test_health_is_503_when_the_database_breaks(tmp_path):
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from edge_workloads.common import add_basic_routes, make_middleware
    from edge_workloads.context import Site
    from edge_workloads.metrics import Metrics
    from edge_workloads.options import SiteOptions
    from edge_workloads.store import Database

    async def scenario():
        site = Site(SiteOptions(role="edge", name="e", data_dir=str(tmp_path)), Settings(),
                    Database(str(tmp_path / "db.sqlite3")), Metrics("edge", "e", "0", frozenset()))
        await site.db.open("")
        app = web.Application(middlewares=[make_middleware(site)])
        add_basic_routes(app, site)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            assert (await client.get("/health")).status == 200
            await site.db.run(lambda conn: conn.close())
            broken = await client.get("/health")
            assert broken.status == 503
            body = await broken.json()
            assert body["status"] == "broken" and "database" in body["problems"][0]
        await site.db.close()

    asyncio.run(scenario())
