"""`/v1/webhook-endpoints`: create with a secret shown once, list without it, change,
remove, rotate; the SSRF guard's registration check (400 url_not_allowed)."""

from __future__ import annotations

import aiohttp
import pytest

from outbound import queries, whsec
from shared.app import create_app
from shared.deps import Deps
from tests.outbound.support import add_endpoint
from tests.support import serve_app

RECEIVER = "http://127.0.0.1:9/hook"


async def test_an_endpoint_is_created_with_its_secret_shown_once_and_listed_without_it(http, firm):
    made = await add_endpoint(http, firm, RECEIVER, ["consent.changed", "message.received"])
    assert made["secret"].startswith("whsec_") and made["enabled"] is True
    assert made["events"] == ["consent.changed", "message.received"]
    async with http.get("/v1/webhook-endpoints", headers=firm.headers) as r:
        listed = (await r.json())["items"]
    assert [e["id"] for e in listed] == [made["id"]]
    assert "secret" not in listed[0] and made["secret"] not in str(listed)


async def test_the_secret_is_stored_encrypted(http, pool, settings, firm):
    made = await add_endpoint(http, firm, RECEIVER)
    stored = await pool.fetchval("SELECT secret_enc FROM webhook_endpoints WHERE id = $1", made["id"])
    assert stored.startswith("fernet:") and made["secret"] not in stored
    assert whsec.unseal(settings.credentials_key, stored) == made["secret"]


async def test_another_firms_endpoint_is_not_found(http, firm, make_firm):
    other = await make_firm()
    made = await add_endpoint(http, other, RECEIVER)
    async with http.get(f"/v1/webhook-endpoints/{made['id']}", headers=firm.headers) as r:
        assert r.status == 404
    async with http.delete(f"/v1/webhook-endpoints/{made['id']}", headers=firm.headers) as r:
        assert r.status == 404
    async with http.delete(f"/v1/webhook-endpoints/{made['id']}", headers=other.headers) as r:
        assert r.status == 204


@pytest.mark.parametrize("events, code", [([], "invalid_events"), (["lead.exploded"], "invalid_events"),
                                          (["*", "lead.updated"], "invalid_events"), ("*", "invalid_events")])
async def test_events_must_be_known_types_or_star_alone(http, firm, events, code):
    async with http.post("/v1/webhook-endpoints", json={"url": RECEIVER, "events": events}, headers=firm.headers) as r:
        assert r.status == 400 and (await r.json())["code"] == code


async def test_a_second_rotation_drops_the_oldest_secret(http, pool, settings, firm):
    made = await add_endpoint(http, firm, RECEIVER)
    secrets = [made["secret"]]
    for _ in range(2):
        async with http.post(f"/v1/webhook-endpoints/{made['id']}/rotate-secret", headers=firm.headers) as r:
            secrets.append((await r.json())["secret"])
    row = await queries.endpoint_for_delivery(pool, made["id"])
    signing = [whsec.unseal(settings.credentials_key, row["secret_enc"]),
               whsec.unseal(settings.credentials_key, row["previous_enc"])]
    assert signing == [secrets[2], secrets[1]]


@pytest.fixture
async def guarded_http(settings, deps, broker):
    """The web app as production runs it: WEBHOOKS_ALLOW_PRIVATE unset."""
    strict = settings.replace(webhooks_allow_private=False)
    app = create_app(strict, deps=Deps(settings=strict, pool=deps.pool, redis=deps.redis), broker=broker)
    async with serve_app(app) as url, aiohttp.ClientSession(base_url=url) as session:
        yield session


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "http://10.0.0.1/hook",
                                 "http://169.254.169.254/latest/meta-data/", "http://[::1]/hook",
                                 "http://0.0.0.0/hook", "http://localhost:9000/hook", "ftp://crm.example.com/hook",
                                 "file:///etc/passwd", "http://user:pw@crm.example.com/hook"])
async def test_urls_the_guard_refuses_are_400_url_not_allowed_without_the_allow_flag(guarded_http, firm, url):
    async with guarded_http.post("/v1/webhook-endpoints", json={"url": url, "events": ["*"]},
                                 headers=firm.headers) as r:
        body = await r.json()
    assert r.status == 400 and body["code"] == "url_not_allowed", body


async def test_a_patch_to_a_refused_url_is_400_and_changes_nothing(guarded_http, firm):
    made = await add_endpoint(guarded_http, firm, "https://crm.example.com/hook")
    async with guarded_http.patch(f"/v1/webhook-endpoints/{made['id']}", json={"url": "http://10.1.2.3/"},
                                  headers=firm.headers) as r:
        assert r.status == 400 and (await r.json())["code"] == "url_not_allowed"
    async with guarded_http.get(f"/v1/webhook-endpoints/{made['id']}", headers=firm.headers) as r:
        assert (await r.json())["url"] == "https://crm.example.com/hook"
