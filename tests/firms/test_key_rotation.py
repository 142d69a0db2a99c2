"""API key rotation: the new key works at once, the old one alongside it until the
grace ends, then 401 (the in-process cache never outlives the grace)."""

from __future__ import annotations

import time
from datetime import datetime

from firms import auth, service
from tests.firms.conftest import firm_cli, run_firm_cli
from tests.support import wait_for


async def _status(http, key: str) -> int:
    async with http.get("/v1/conversations", headers={"Authorization": f"Bearer {key}"}) as resp:
        return resp.status


async def test_a_rotated_key_works_alongside_the_old_one_until_the_grace_ends_then_the_old_one_is_401(
        http, settings, firm, monkeypatch):
    # A grace at least as long as the cache's lifetime ends exactly (docs/firms.md): the
    # cache is shortened to 2 s here so a 3 s grace can be waited out.
    monkeypatch.setattr(auth, "AUTH_CACHE_TTL_S", 2.0)
    old = firm["api_key"]
    assert await _status(http, old) == 200  # cached now: the cache must not outlive the grace
    rotated = await service.rotate_key(settings.database_url, firm.id, grace_s=3)
    new = rotated["api_key"]
    until = datetime.fromisoformat(rotated["previous_key_valid_until"])
    assert new != old
    assert await _status(http, new) == 200
    assert await _status(http, old) == 200

    async def old_refused() -> bool:
        return await _status(http, old) == 401

    await wait_for(old_refused, timeout=10, what="the old key refused after its grace")
    assert datetime.now(until.tzinfo) >= until
    assert await _status(http, new) == 200


async def test_rotate_key_cli_prints_the_new_key_and_a_zero_grace_ends_the_old_one_at_once(http, settings, firm):
    started = time.monotonic()
    out = firm_cli(settings, "rotate-key", "--firm", str(firm.id), "--grace", "0")
    assert out["api_key"].startswith("lsk_") and out["firm_id"] == firm.id
    assert await _status(http, out["api_key"]) == 200
    assert await _status(http, firm["api_key"]) == 401
    assert time.monotonic() - started < 30
    bad = run_firm_cli(settings, "rotate-key", "--firm", str(firm.id), "--grace", "soon")
    assert bad.returncode == 1 and "--grace" in bad.stderr and "Traceback" not in bad.stderr
