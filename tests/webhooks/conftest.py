"""Fixtures of the webhook tests.

`webhook_worker`: one real `leadsms worker` process for this directory's end-to-end
tests, stopped gracefully. (The shared `worker` fixture's stop signals the whole process
group, so dramatiq's worker child gets SIGTERM twice, takes the second as "kill", and
hangs on its threads until SIGKILL 15 s later; signalling the main process alone lets
dramatiq forward one SIGTERM and exit in about a second.)
"""

from __future__ import annotations

import signal
import subprocess

import pytest

from tests.support import stop_process


def stop_gracefully(proc: subprocess.Popen, timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    stop_process(proc)


@pytest.fixture(scope="session")
def webhook_worker(worker_pool, web, sim):
    proc = worker_pool.start()
    yield proc
    stop_gracefully(proc)
