"""Helpers of the consent tests: the real `leadsms optouts` command, the portal views a
lead's consent shows in (picker, thread open, send), and what the simulator received."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import aiohttp

from tests.conftest import last_json_line
from tests.support import ROOT

COMMAND_TIMEOUT_S = 240


def run_optouts(settings: Any, *args: str, timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess:
    """`leadsms optouts …` in a fresh process with only DATABASE_URL set."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_URL": settings.database_url,
           "LOG_FORMAT": "json", "LOG_LEVEL": "WARNING"}
    return subprocess.run([sys.executable, "-m", "shared.cli", "optouts", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def import_summary(settings: Any, path: str, firm_id: int, *args: str) -> dict[str, Any]:
    proc = run_optouts(settings, "import", path, "--firm", str(firm_id), *args)
    assert proc.returncode == 0, proc.stderr
    return last_json_line(proc.stdout)


async def picker(http: aiohttp.ClientSession, firm: Any, q: str) -> list[dict[str, Any]]:
    async with http.get("/v1/leads/sendable", params={"q": q}, headers=firm.headers) as r:
        assert r.status == 200, await r.text()
        return (await r.json())["items"]


async def sim_message_requests(sim: str, to: str | None = None) -> list[dict[str, Any]]:
    """Every Messages create the simulator saw (created and refused), optionally to one phone."""
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{sim}/sim/messages", params={"to": to} if to else {}) as r:
            seen = await r.json()
    return seen["messages"] + seen["attempts"]


async def sim_inbound(sim: str, **payload: str) -> dict[str, Any]:
    """Text us through the simulator's admin endpoint ({from, to, body, opt_out_type?})."""
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{sim}/sim/inbound", json=payload) as r:
            return await r.json()
