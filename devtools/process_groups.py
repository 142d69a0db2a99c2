"""Process groups of the child processes leadsms starts (demo, benchmarks, tests).

Each child runs in its own session, so its group holds it and whatever it forked
(dramatiq's worker processes): signal the group, ask whether anything is left in it, and
stop it with everything it forked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from typing import Callable

GROUP_GRACE_S = 2.0


def kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _exists(send_zero: Callable[[int, int], None], ident: int) -> bool:
    try:
        send_zero(ident, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pid_alive(pid: int) -> bool:
    return _exists(os.kill, pid)


def group_alive(pgid: int) -> bool:
    """Whether any process (not a zombie) is left in the group."""
    return _exists(os.killpg, pgid) and any(_in_group_not_zombie(pid, pgid) for pid in _pids())


def stop_group(proc: subprocess.Popen, *, sig: int = signal.SIGTERM, timeout: float = 15.0,
               grace: float = GROUP_GRACE_S) -> bool:
    """Stop a child started with `start_new_session=True` and everything it forked.

    Only the leader gets `sig`: `leadsms worker` is dramatiq's main process, which forwards
    it to its worker processes, and a worker process signalled twice (once by us, once
    forwarded) takes it as "die now" mid-shutdown. A leader still running after `timeout`
    is killed with its group; whatever it left in its group gets `grace` seconds, then
    SIGKILL. Blocking (call it through `asyncio.to_thread` from async code). Returns
    whether the leader had to be killed.
    """
    killed = False
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            killed = True
            kill_group(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
    deadline = time.monotonic() + grace
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if group_alive(proc.pid):
        kill_group(proc.pid, signal.SIGKILL)
    return killed


def _pids() -> list[int]:
    try:
        return [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []


def _in_group_not_zombie(pid: int, pgid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[-1].split()
    return len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid
