"""Twilio's side of a webhook outage: texts delivered through the simulator, and the
retry Twilio makes of a webhook that got no 2xx (the simulator itself does not retry)."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.faults.stack import Stack
from tests.security.forgeries import sign


async def text_us(stack: Stack, from_: str, to: str, body: str) -> dict[str, Any]:
    """An inbound text through the simulator; its answer says what our webhook answered."""
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{stack.sim}/sim/inbound", json={"from": from_, "to": to, "body": body}) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


def answered_2xx(record: dict[str, Any]) -> bool:
    status = record.get("answer_status")
    return status is not None and 200 <= status < 300


async def retry_unanswered(stack: Stack) -> dict[str, int]:
    """POST again, signed, every webhook of the simulator that got no 2xx, as Twilio's
    retry would; returns {"retried": n, "accepted": m}."""
    records = (await stack.sim_get("/sim/callbacks"))["callbacks"]
    failed = [r for r in records if not answered_2xx(r)]
    accepted = 0
    async with aiohttp.ClientSession() as s:
        for r in failed:
            headers = {"X-Twilio-Signature": sign(stack.token, r["url"], r["params"])}
            async with s.post(r["url"], data=r["params"], headers=headers) as resp:
                accepted += resp.status < 300
    return {"retried": len(failed), "accepted": accepted}
