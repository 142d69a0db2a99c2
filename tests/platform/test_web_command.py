"""`leadsms web` as the Procfile starts it: a subprocess of the real command."""

from __future__ import annotations

import aiohttp
import pytest

from tests.faults.stack import Stack

HANDLER_WARNING = "Failed to create request handler"


@pytest.fixture
async def web_stack(services, tmp_path):
    stack = Stack(services.database_url, services.redis_url, tmp_path)
    try:
        await stack.start_web()
        yield stack
    finally:
        stack.stop_all()


async def test_the_web_command_answers_a_ten_thousand_character_url_with_json_and_logs_no_handler_warning(web_stack):
    """...and serves /metrics on METRICS_PORT only."""
    async with aiohttp.ClientSession() as http:
        for _ in range(3):  # a warning would come once per connection
            async with http.get(f"{web_stack.web}/healthz", headers={"Connection": "close"}) as resp:
                assert resp.status == 200
        async with http.get(f"{web_stack.web}/v1/leads/sendable?q={'a' * 10_000}") as resp:
            assert 400 <= resp.status < 500
            assert resp.content_type == "application/json", await resp.text()
            body = await resp.json()
            assert body["code"] and body["error"]
        async with http.get(f"{web_stack.web}/metrics") as resp:
            assert resp.status == 404  # not on the port Twilio reaches
        async with http.get(f"{web_stack.metrics}/metrics") as resp:
            assert resp.status == 200, await resp.text()
            assert "leadsms_metrics_source_up" in await resp.text()
    web_stack.stop_all()
    logs = web_stack.logs()
    assert "web_listening" in logs
    assert HANDLER_WARNING not in logs, logs[-2000:]
