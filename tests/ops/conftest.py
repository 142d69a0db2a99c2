"""Fixtures for the operations tests: the web app with the ops routes mounted, an
in-process dramatiq worker for the test queue, and a runner for `leadsms queues`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from dataclasses import dataclass, replace
from typing import Any, AsyncIterator

import aiohttp
import dramatiq
import pytest
import pytest_asyncio

from shared import broker as brokers
from shared.config import Settings
from shared.deps import Deps
from ops.queues import queue_stats
from shared.broker import DeadLetterErrors
from tests.ops import jobs
from tests.support import ROOT, wait_for
from tests.support import serve_app as serve

OPS_TOKEN = "ops-token-for-tests-0123456789"


@contextlib.asynccontextmanager
async def serve_app(settings: Settings, deps: Deps, broker: Any) -> AsyncIterator[str]:
    """The real app (every package's routes, the ops routes among them) on a free port."""
    from shared.app import create_app

    app = create_app(settings, deps=replace(deps, settings=settings), broker=broker)
    async with serve(app) as url:
        yield url


@pytest_asyncio.fixture(scope="session")
async def ops_web(settings: Settings, deps: Deps, broker) -> AsyncIterator[str]:
    async with serve_app(settings.replace(ops_token=OPS_TOKEN), deps, broker) as url:
        yield url


@pytest_asyncio.fixture
async def ops_http(ops_web: str) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=ops_web) as session:
        yield session


@pytest.fixture
def job_worker(settings: Settings, broker, deps):
    """A real dramatiq Worker, in this process, consuming the test queue on Redis, with the
    DeadLetterErrors middleware the worker broker is meant to carry."""
    jobs.STATE["redis_url"] = settings.redis_url
    wb = brokers.build_broker(settings.broker_url, middleware=[DeadLetterErrors()])
    wb.declare_actor(jobs.ops_flaky_job)
    worker = dramatiq.Worker(wb, queues={jobs.TEST_QUEUE}, worker_timeout=100, worker_threads=2)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop(timeout=5000)
        wb.close()


async def dead_count(broker, queue: str) -> int:
    return (await asyncio.to_thread(queue_stats, broker, [queue]))[0].dead


async def wait_dead(broker, queue: str, n: int) -> None:
    async def reached() -> bool:
        return await dead_count(broker, queue) == n

    await wait_for(reached, timeout=15, what=f"{n} dead letter(s) on {queue}")


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def cli_env(settings: Settings, **overrides: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TWILIO_", "DATABASE_", "REDIS_", "BROKER_", "OPS_"))}
    env.update(settings.to_env())
    env["LOG_FORMAT"] = "json"
    for k, v in overrides.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


async def run_queues(env: dict[str, str], *args: str) -> CliResult:
    """`leadsms queues ARGS…` as a subprocess (stdin not a tty)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shared.cli", "queues", *args, cwd=ROOT, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return CliResult(proc.returncode, out.decode(), err.decode())
