"""Process groups of the child processes leadsms starts (demo, benchmarks, tests).

Each child runs in its own session, so its group holds it and whatever it forked
(dramatiq's worker processes): signal the group, and ask whether anything is left in it.
"""

from __future__ import annotations

import contextlib
import os


def kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    """Whether any process (not a zombie) is left in the group."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return any(_in_group_not_zombie(pid, pgid) for pid in _pids())


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
