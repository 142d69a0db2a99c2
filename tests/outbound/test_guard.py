"""The SSRF guard at connect time: a name that resolves to loopback reaches nothing
unless WEBHOOKS_ALLOW_PRIVATE is set (the delivery run in-process, a real receiver)."""

from __future__ import annotations

import pytest

import events
from outbound import client, delivery, endpoints, fanout, lanes
from outbound.guard import address_allowed
from shared.deps import Deps
from tests.outbound.support import Receiver, receiving


@pytest.mark.parametrize("address, allowed", [
    ("127.0.0.1", False), ("10.0.0.1", False), ("172.16.5.4", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("0.0.0.0", False), ("224.0.0.1", False), ("::1", False), ("fe80::1", False),
    ("::ffff:127.0.0.1", False), ("fd00::1", False), ("100.64.0.1", False),
    ("93.184.216.34", True), ("2606:4700:4700::1111", True)])
def test_only_public_unicast_addresses_are_allowed(address, allowed):
    assert address_allowed(address) is allowed


@pytest.fixture
def loopback_name():
    """A name the guard's resolver resolves to 127.0.0.1 (the resolver seam)."""
    from outbound.guard import StaticResolver

    client.base_resolver = StaticResolver({"crm.example.test": "127.0.0.1"})
    yield "crm.example.test"
    client.base_resolver = None


async def _deliver_once(deps: Deps, firm_id: int, url: str) -> int:
    made = await endpoints.create(deps, firm_id, url, ["consent.changed"])
    async with deps.pool.acquire() as conn, conn.transaction():
        await events.record(conn, firm_id, "consent.changed",
                            {"phone": "+16465557001", "kind": "opt_out", "source": "test", "at": None})
    await fanout.fan_out(deps, [firm_id])
    (lane, token), = await lanes.take(deps.redis, made["id"], 30.0, 1)
    await delivery.drain(deps, made["id"], lane, token)
    await client.close_sessions()
    return made["id"]


@pytest.mark.parametrize("allow_private", [False, True])
async def test_a_name_resolving_to_loopback_is_refused_at_connect_time_unless_private_is_allowed(
        deps, pool, firm, loopback_name, allow_private):
    strict = Deps(settings=deps.settings.replace(webhooks_allow_private=allow_private), pool=deps.pool,
                  redis=deps.redis)
    async with receiving(Receiver()) as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        endpoint_id = await _deliver_once(strict, firm.id, f"http://{loopback_name}:{port}/hook")
    outcome = await pool.fetchval("SELECT outcome FROM webhook_attempts WHERE endpoint_id = $1", endpoint_id)
    if allow_private:
        assert outcome == "delivered" and len(receiver.got) == 1
    else:
        assert outcome == "address_not_allowed" and receiver.got == []
