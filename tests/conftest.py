"""Shared fixtures: real PostgreSQL and Redis, a fresh migrated database per run, the web app
on a real port, the Twilio simulator, worker processes.

Isolation: every test that touches the database or Redis starts from empty tables
(`empty_tables`) and an empty Redis db (FLUSHDB).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp
import asyncpg
import pytest
import pytest_asyncio

from firms.service import ALWAYS_OPEN
from shared import broker as brokers
from shared.config import Settings
from shared.db import migrate
from shared.deps import Deps, close_deps, open_deps
from tests.support import (
    Embedded,
    RabbitVhost,
    create_database,
    drop_database,
    free_port,
    leadsms_command,
    resolve_postgres,
    resolve_redis,
    spawn,
    stop_process,
)

TEST_SID = "ACtest00000000000000000000000000"
TEST_TOKEN = "test-auth-token"
TEST_TOKEN_SECONDARY = "test-auth-token-secondary"
# A fixed Fernet key (32 bytes of 0x01, URL-safe base64): subaccount tokens in tests.
TEST_CREDENTIALS_KEY = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="

# Every table but the migrations ledger is emptied before each test (see empty_tables).
KEPT_TABLES = ("schema_migrations",)

_SERVICE_FIXTURES = {"services", "settings", "deps", "pool", "web", "http", "firm", "make_firm", "worker", "sim"}


class Services:
    def __init__(self, admin_dsn: str, db_name: str, database_url: str, redis_url: str, embedded: Embedded) -> None:
        self.admin_dsn = admin_dsn
        self.db_name = db_name
        self.database_url = database_url
        self.redis_url = redis_url
        self.embedded = embedded
        self.tmp = embedded.data_dir


@pytest_asyncio.fixture(scope="session")
async def services() -> AsyncIterator[Services]:
    embedded = Embedded()
    admin_dsn = await resolve_postgres(embedded)
    redis_url = resolve_redis(embedded)
    name, dsn = await create_database(admin_dsn)
    await migrate(dsn)
    try:
        yield Services(admin_dsn, name, dsn, redis_url, embedded)
    finally:
        try:
            await drop_database(admin_dsn, name)
        finally:
            embedded.stop()


@pytest.fixture(scope="session")
def web_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def sim_port() -> int:
    return free_port()


# Modules whose end-to-end tests run once per broker (Redis and RabbitMQ).
BOTH_BROKERS = ("send_pipeline/test_sending.py", "webhooks/test_end_to_end.py", "intake/test_with_worker.py",
                "platform/test_readiness.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files marked `slow` first (in file order), the rest after: `make test` hands whole
    files to its xdist workers in this order (`--no-loadscope-reorder`), so the longest
    start first and the workers finish together instead of one running a long file alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """A failed test that used the session's worker or sweeper processes shows the end of
    their logs (what they were doing is often the why)."""
    outcome = yield
    report = outcome.get_result()
    pool = getattr(item, "funcargs", {}).get("worker_pool") or getattr(item, "funcargs", {}).get("worker")
    if report.failed and isinstance(pool, WorkerPool):
        for path in sorted([*pool.log_dir.glob("worker-*.log"), *pool.log_dir.glob("sweeper-*.log")]):
            lines = path.read_text(errors="replace").splitlines()[-30:]
            report.sections.append((f"last lines of {path.name}", "\n".join(lines)))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if Path(metafunc.module.__file__).as_posix().endswith(BOTH_BROKERS) and "broker_kind" in metafunc.fixturenames:
        # Redis is the param None: the same cache key as every unparametrized test's, so
        # going between those and these tears nothing down (only RabbitMQ's run does).
        metafunc.parametrize("broker_kind", [None, "rabbitmq"], ids=["redis", "rabbitmq"], indirect=True,
                             scope="session")


@pytest.fixture(scope="session")
def rabbitmq() -> Any:
    """This run's RabbitMQ vhost (made on first use, deleted at the end)."""
    vhost = RabbitVhost().create()
    yield vhost
    vhost.delete()


@pytest.fixture(scope="session")
def broker_kind(request: pytest.FixtureRequest) -> str:
    """Which broker the session's web, worker and enqueues use: Redis unless a module of
    BOTH_BROKERS asks for each. Switching tears the whole session stack down and up."""
    return getattr(request, "param", None) or "redis"


@pytest.fixture(scope="session")
def broker_url(request: pytest.FixtureRequest, broker_kind: str, services: Services) -> str:
    if broker_kind == "redis":
        return services.redis_url
    vhost: RabbitVhost = request.getfixturevalue("rabbitmq")
    if vhost.url is None:
        pytest.skip(f"RabbitMQ tests skipped: {vhost.skip_reason}")
    return vhost.url


@pytest.fixture(scope="session")
def settings(services: Services, web_port: int, sim_port: int, broker_url: str) -> Settings:
    return Settings(
        database_url=services.database_url,
        redis_url=services.redis_url,
        broker_url=broker_url,
        twilio_account_sid=TEST_SID,
        twilio_auth_token=TEST_TOKEN,
        twilio_auth_token_secondary=TEST_TOKEN_SECONDARY,
        credentials_key=TEST_CREDENTIALS_KEY,
        erasure_key=secrets.token_hex(32),  # generated per run, as the demo does
        twilio_base_url=f"http://127.0.0.1:{sim_port}",
        public_base_url=f"http://127.0.0.1:{web_port}",
        port=web_port,
        worker_metrics_port=0,
        retry_min_backoff_ms=100,
        retry_max_backoff_ms=2000,
        sweep_interval_s=1,
        stale_after_s=2,
        twilio_timeout_s=3,  # so a killed worker's claims are reconciled 5 s later, not 12
        lazy_lookup_wait_ms=3000,
        quiet_hours=ALWAYS_OPEN,  # firms made through the CLI too: no test depends on the hour
        webhook_retry_schedule_s=(1, 1, 1, 1),  # outbound webhook retries within a test
        webhooks_allow_private=True,  # receivers in tests listen on 127.0.0.1
        log_format="json",
    )


@pytest.fixture(scope="session")
def broker(settings: Settings):
    """The real broker (Redis, or RabbitMQ for BOTH_BROKERS), installed for the test process
    (the web app enqueues on it)."""
    b = brokers.install(brokers.build_broker(settings.broker_url))
    yield b
    b.close()


@pytest_asyncio.fixture(scope="session")
async def sim(settings: Settings, sim_port: int) -> AsyncIterator[str]:
    """The Twilio simulator on its port; yields its base URL."""
    from devtools.twilio_sim import SimConfig, run_sim

    config = SimConfig.from_settings(settings)
    async with run_sim(config, host="127.0.0.1", port=sim_port) as url:
        yield url


@pytest_asyncio.fixture(scope="session")
async def deps(settings: Settings, sim: str) -> AsyncIterator[Deps]:
    opened = await open_deps(settings, pool_size=10)
    try:
        yield opened
    finally:
        await close_deps(opened)


@pytest.fixture
def pool(deps: Deps):
    return deps.pool


@pytest_asyncio.fixture(scope="session")
async def web(settings: Settings, deps: Deps, broker, web_port: int) -> AsyncIterator[str]:
    """The real web app on a real port (Twilio's callbacks reach it there)."""
    from aiohttp import web as aioweb

    from shared.app import create_app
    from shared.web import HANDLER_ARGS

    app = create_app(settings, deps=deps, broker=broker)
    runner = aioweb.AppRunner(app, access_log=None, **HANDLER_ARGS)
    await runner.setup()
    site = aioweb.TCPSite(runner, "127.0.0.1", web_port)
    await site.start()
    try:
        yield settings.public_base_url
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture(scope="session")
async def metrics_url(deps: Deps, broker) -> AsyncIterator[str]:
    """`/metrics` on a listener of its own, as `leadsms web` serves it on METRICS_PORT,
    reading the session's deps and broker (no cache: each scrape reads PostgreSQL)."""
    from aiohttp import web as aioweb

    from ops.routes import metrics_app
    from shared.web import BROKER, DEPS
    from tests.support import serve_app

    source = aioweb.Application()
    source[DEPS], source[BROKER] = deps, broker
    async with serve_app(metrics_app(source, cache_ttl_s=0)) as url:
        yield url


@pytest_asyncio.fixture
async def metrics_http(metrics_url: str) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=metrics_url) as session:
        yield session


@pytest_asyncio.fixture
async def http(web: str) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=web) as session:
        yield session


async def empty_tables(conn: asyncpg.Connection) -> None:
    """Every table emptied, as TRUNCATE … CASCADE would, without TRUNCATE's new files.

    TRUNCATE gives each table and index a new file: ~100 per test, which every later
    checkpoint must fsync (60,000 files, 20-45 s, seen under `make test`) and which
    DROP DATABASE waits for. So: the same ACCESS EXCLUSIVE locks (a leftover job's open
    transaction finishes first, and nothing it commits survives), then DELETE, with
    foreign-key and row triggers off (session_replication_role) since every table goes.
    Ids keep counting across tests: a job left over from the last test (the session
    worker may still hold one) then finds no row, instead of a new row with its id.
    The session worker may still be inside a leftover job's transaction, locking tables
    in another order: PostgreSQL then aborts one side of the deadlock. When this is that
    side, take the locks again (the job is retried by dramatiq)."""
    tables = [r["t"] for r in await conn.fetch(
        "SELECT quote_ident(tablename) AS t FROM pg_tables WHERE schemaname = 'public' "
        "AND tablename <> ALL($1::text[]) ORDER BY tablename", list(KEPT_TABLES))]
    for attempt in range(5):
        try:
            async with conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica")
                await conn.execute(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
                for table in tables:
                    await conn.execute(f"DELETE FROM {table}")
            return
        except asyncpg.exceptions.DeadlockDetectedError:
            if attempt == 4:
                raise
            await asyncio.sleep(0.2 * (attempt + 1))


@pytest_asyncio.fixture(autouse=True)
async def clean_state(request: pytest.FixtureRequest) -> None:
    """Empty tables and Redis before every test that uses the services."""
    if not _SERVICE_FIXTURES.intersection(request.fixturenames):
        return
    services: Services = request.getfixturevalue("services")
    settings: Settings = request.getfixturevalue("settings")
    from shared.db import connect
    from shared.deps import redis_client

    if "sim" in request.fixturenames or "deps" in request.fixturenames:
        # Reset the simulator first, so no late callback of the last test lands after the truncate.
        sim_url = request.getfixturevalue("sim")
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{sim_url}/sim/reset") as resp:
                assert resp.status in (200, 204), await resp.text()
    conn = await connect(services.database_url)
    try:
        await empty_tables(conn)
    finally:
        await conn.close()
    r = redis_client(settings.redis_url)
    try:
        await r.flushdb()
    finally:
        await r.aclose()


class Firm(dict):
    @property
    def id(self) -> int:
        return self["firm_id"]

    @property
    def number(self) -> str:
        return self["sms_number"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self['api_key']}"}

    def user(self, user_id: str = "user-1") -> dict[str, str]:
        return {**self.headers, "X-User-Id": user_id}


@pytest.fixture
def make_firm(settings: Settings) -> Callable[..., Awaitable[Firm]]:
    from firms.service import add_firm

    counter = {"n": 0}

    async def make(name: str | None = None, number: str | None = None, quiet_hours: str = ALWAYS_OPEN) -> Firm:
        """A firm whose texting hours never close, unless a quiet-hours test says otherwise."""
        counter["n"] += 1
        n = counter["n"]
        created = await add_firm(settings.database_url, name or f"Firm {n}", number or f"+1646555{1000 + n:04d}",
                                 quiet_hours=quiet_hours)
        return Firm(created)

    return make


@pytest_asyncio.fixture
async def firm(make_firm) -> Firm:
    return await make_firm("Acme Seminars", "+16465550100")


class WorkerPool:
    """`leadsms worker` processes, started on demand, stopped at the end of the session."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []
        self.full: subprocess.Popen | None = None  # the session's worker on every queue but deliveries
        self.deliveries: subprocess.Popen | None = None  # the session's worker on `deliveries`

    def env(self, **extra: Any) -> dict[str, str]:
        env = self.settings.to_env()
        env.update({"WORKER_PROCESSES": "1", "WORKER_THREADS": "4", "WORKER_METRICS_PORT": "0"})
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def start(self, *queues: str, **extra: Any) -> subprocess.Popen:
        args = leadsms_command("worker", *(["--queues", *queues] if queues else []))
        proc = spawn(args, self.env(**extra), self.log_dir / f"worker-{len(self.procs)}.log")
        self.procs.append(proc)
        return proc

    def start_sweeper(self, **extra: Any) -> subprocess.Popen:
        proc = spawn(leadsms_command("sweeper"), self.env(**extra), self.log_dir / f"sweeper-{len(self.procs)}.log")
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            stop_process(proc)
        self.procs.clear()
        self.full = None
        self.deliveries = None


@pytest.fixture(scope="session")
def worker_pool(settings: Settings, services: Services) -> Any:
    pool = WorkerPool(settings, services.tmp)
    yield pool
    pool.stop_all()


@pytest.fixture(scope="session")
def worker(worker_pool: WorkerPool, web: str, sim: str) -> WorkerPool:
    """One real `leadsms worker` process on every queue but `deliveries`, for the whole session."""
    if worker_pool.full is None or worker_pool.full.poll() is not None:
        worker_pool.full = worker_pool.start()
    return worker_pool


@pytest.fixture(scope="session")
def deliveries_worker(worker: WorkerPool) -> WorkerPool:
    """Besides `worker`: a real `leadsms worker --queues deliveries` (outbound webhooks,
    which never share a worker with `send`), for the whole session."""
    if worker.deliveries is None or worker.deliveries.poll() is not None:
        import time

        log_path = worker.log_dir / f"worker-{len(worker.procs)}.log"
        worker.deliveries = worker.start("deliveries")
        # booted once its dispatcher listens for the event writers' wake-ups (the log says
        # so; Redis's subscriber count is server-wide, shared with other runs)
        deadline = time.monotonic() + 60
        while not (log_path.exists() and "webhook_dispatcher_listening" in log_path.read_text(errors="replace")):
            assert worker.deliveries.poll() is None, f"the deliveries worker exited during boot; log {log_path}"
            assert time.monotonic() < deadline, f"the deliveries worker did not boot in 60 s; log {log_path}"
            time.sleep(0.05)
    return worker


def last_json_line(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError(f"no JSON line in output: {text!r}")
