"""Fixtures of the webhook tests.

`webhook_worker`: one real `leadsms worker` process for this directory's end-to-end
tests, stopped gracefully: SIGTERM to the main process alone (dramatiq forwards one to
its worker child, which takes a second one as "kill" and hangs on its threads), then
whatever is left in its group (`stop_process`).
"""

from __future__ import annotations

import subprocess

import pytest

from tests.support import stop_process


def stop_gracefully(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, `timeout` seconds to finish its jobs, then the group is killed."""
    stop_process(proc, timeout=timeout)


@pytest.fixture(scope="session")
def webhook_worker(worker_pool, web, sim):
    proc = worker_pool.start()
    yield proc
    stop_gracefully(proc)
