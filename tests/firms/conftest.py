"""Fixtures of the firms tests: a sweeper in this process (the send pipeline's sweeps and
the account probe), the simulator's accounts, the `firm` CLI, and a signed webhook."""

from __future__ import annotations

import subprocess
from typing import Any, AsyncIterator

import aiohttp
import pytest_asyncio

from firms.pauses import SWEEPS as FIRM_SWEEPS
from send_pipeline.sweeps import SWEEPS as SEND_SWEEPS
from shared.sweeper import Sweeper
from tests.conftest import last_json_line
from tests.support import ROOT, leadsms_command, sweeping_in_process


@pytest_asyncio.fixture
async def sweeping(deps, broker) -> AsyncIterator[Sweeper]:
    """The send sweeps and the paused-account probe, every 0.3 s while the test runs."""
    tasks = {**{f"send_pipeline.{k}": v for k, v in SEND_SWEEPS.items()},
             **{f"firms.{k}": v for k, v in FIRM_SWEEPS.items()}}
    async with sweeping_in_process(deps, tasks) as sweeper:
        yield sweeper


async def sim_accounts(sim: str, **account: Any) -> dict:
    """Register (or replace) an account at the simulator."""
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{sim}/sim/accounts", json=account) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


def run_firm_cli(settings, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": settings.database_url,
           "CREDENTIALS_KEY": settings.credentials_key or ""}
    return subprocess.run(leadsms_command("firm", *args), cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=60)


def firm_cli(settings, *args: str, stdin: str | None = None) -> dict:
    proc = run_firm_cli(settings, *args, stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    return last_json_line(proc.stdout)
