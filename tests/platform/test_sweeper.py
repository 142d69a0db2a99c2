import asyncio

from shared.deps import Deps
from shared.sweeper import Sweeper
from tests.support import wait_for


async def test_two_sweepers_never_run_a_pass_at_the_same_time(deps: Deps):
    running = 0
    overlaps = 0
    passes = 0

    async def slow_task(_deps):
        nonlocal running, overlaps, passes
        running += 1
        overlaps += running > 1
        await asyncio.sleep(0.05)
        running -= 1
        passes += 1

    a = Sweeper(deps, {"probe": slow_task}, name="a")
    b = Sweeper(deps, {"probe": slow_task}, name="b")
    results = await asyncio.gather(*(s.run_pass() for s in (a, b, a, b, a, b)))
    assert overlaps == 0
    assert passes >= 1
    assert any(r is None for r in results), "with one lock, some concurrent passes must be skipped"


async def test_a_failing_task_does_not_stop_the_others(deps: Deps):
    seen = []

    async def broken(_deps):
        raise RuntimeError("boom")

    async def fine(_deps):
        seen.append(1)
        return 1

    summary = await Sweeper(deps, {"broken": broken, "fine": fine}).run_pass()
    assert summary == {"broken": {"error": "RuntimeError"}, "fine": 1}
    assert seen == [1]


async def test_two_sweeper_processes_record_passes_that_never_overlap(worker_pool, pool, sim):
    first = worker_pool.start_sweeper(SWEEP_INTERVAL_S=1)
    second = worker_pool.start_sweeper(SWEEP_INTERVAL_S=1)
    try:
        await wait_for(lambda: pool.fetchval("SELECT count(DISTINCT host_pid) >= 2 AND count(*) >= 6 FROM sweeper_passes"),
                       timeout=30, what="passes from both sweepers")
        rows = await pool.fetch("SELECT started_at, finished_at FROM sweeper_passes ORDER BY started_at")
        for earlier, later in zip(rows, rows[1:]):
            assert earlier["finished_at"] <= later["started_at"]
    finally:
        for proc in (first, second):
            proc.terminate()


async def test_passes_start_an_interval_apart_however_long_their_tasks_take(deps: Deps):
    """The interval counts from a pass's start, not its end: a pass of 0.6 s at an interval
    of 1 s is followed 1 s after it started, so what it does is never due two intervals late."""
    starts: list[float] = []
    loop = asyncio.get_running_loop()

    async def slow(_deps):
        starts.append(loop.time())
        await asyncio.sleep(0.6)

    stop = asyncio.Event()
    runner = asyncio.create_task(Sweeper(deps, {"slow": slow}).run_forever(1.0, stop))

    async def three_passes():
        return len(starts) >= 3

    await wait_for(three_passes, timeout=10, what="three passes")
    stop.set()
    await asyncio.wait_for(runner, 5)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert all(0.95 <= gap < 1.5 for gap in gaps), gaps  # the old loop: 1.6 s and more
