"""The `deliveries` queue has a worker of its own: `leadsms worker` alone never consumes
it, and it is refused together with `send`."""

from __future__ import annotations

import os
import subprocess
import sys

from shared.cli import worker_argv
from shared.config import Settings
from tests.support import ROOT


def test_a_worker_without_queues_consumes_every_queue_but_deliveries():
    argv = worker_argv(Settings())
    queues = argv[argv.index("--queues") + 1:]
    assert "deliveries" not in queues and {"send", "intake", "lookup", "status", "inbound", "ops"} <= set(queues)
    named = worker_argv(Settings(), ["deliveries"])
    assert named[named.index("--queues") + 1:] == ["deliveries"]


def test_deliveries_and_send_in_one_worker_are_refused():
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_URL": "postgresql://u@127.0.0.1:1/x",
           "REDIS_URL": "redis://127.0.0.1:1/0", "TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t",
           "TWILIO_BASE_URL": "http://127.0.0.1:1"}
    proc = subprocess.run([sys.executable, "-m", "shared.cli", "worker", "--queues", "send", "deliveries"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--queues" in proc.stderr and "deliveries" in proc.stderr
