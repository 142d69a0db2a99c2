"""CPU seconds per process, from process accounting (/proc), not from wall clocks.

Why CPU seconds: on a shared 2-core machine a wall-clock rate moves with whatever else
runs; the CPU a process spent on N messages moves much less, so "CPU seconds per
message" is the figure that compares across runs and against the floor.

A process we start runs in its own process group (the worker's dramatiq parent and its
forked children included), so its CPU is the sum over the group's live processes plus
what reaped children left in the leader's cutime/cstime. PostgreSQL is counted by the
backends serving our database (pg_stat_activity), Redis by its own INFO counters (a
shared server: that figure includes other clients' work). The bench's own load
generator is counted too, because it competes for the same cores.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass, field
from typing import Any, Iterable

TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    # comm may hold spaces and parentheses: split after its closing parenthesis
    return raw.rsplit(")", 1)[-1].split()


def process_cpu(pid: int, *, with_children: bool = False) -> float | None:
    """utime + stime (and the reaped children's, when asked) of one process, in seconds."""
    f = _stat_fields(pid)
    if f is None:
        return None
    # after comm: state(0) ppid(1) pgrp(2) ... utime(11) stime(12) cutime(13) cstime(14)
    ticks = int(f[11]) + int(f[12])
    if with_children:
        ticks += int(f[13]) + int(f[14])
    return ticks / TICK


def group_cpu(pgid: int) -> float:
    """CPU seconds of every process in a process group, plus children it already reaped."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        f = _stat_fields(int(entry))
        if f is None or len(f) < 15 or int(f[2]) != pgid:
            continue
        ticks = int(f[11]) + int(f[12])
        if int(entry) == pgid:
            ticks += int(f[13]) + int(f[14])
        total += ticks / TICK
    return total


def self_cpu() -> float:
    """This process (the load generator), threads included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu() -> float:
    """Children of this process that have exited and been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pids_cpu(pids: Iterable[int]) -> dict[int, float]:
    out: dict[int, float] = {}
    for pid in pids:
        cpu = process_cpu(pid)
        if cpu is not None:
            out[pid] = cpu
    return out


@dataclass
class Snapshot:
    groups: dict[str, float]
    backends: dict[int, float]
    redis: float | None
    client: float


@dataclass
class Meter:
    """Snapshots CPU of named process groups, our database's backends, Redis and ourselves.

    `groups` maps a name (web, worker, twilio-sim, floor...) to a process-group id.
    `backend_pids` is an async callable returning our database's backend pids;
    `redis_cpu` an async callable returning Redis's used_cpu_user + used_cpu_sys.
    """

    groups: dict[str, int]
    backend_pids: Any = None
    redis_cpu: Any = None
    children: bool = False  # count processes this one reaped during the window (a finished import)
    start: Snapshot | None = field(default=None, init=False)
    seen_backends: dict[int, float] = field(default_factory=dict, init=False)
    start_children: float = field(default=0.0, init=False)

    async def snapshot(self) -> Snapshot:
        backends: dict[int, float] = {}
        if self.backend_pids is not None:
            try:
                backends = pids_cpu(await self.backend_pids())
            except Exception:
                backends = {}
        redis = None
        if self.redis_cpu is not None:
            try:
                redis = await self.redis_cpu()
            except Exception:
                redis = None
        return Snapshot(
            groups={name: group_cpu(pgid) for name, pgid in self.groups.items()},
            backends=backends,
            redis=redis,
            client=self_cpu(),
        )

    async def begin(self) -> None:
        self.start = await self.snapshot()
        self.seen_backends = dict(self.start.backends)
        self.start_children = children_cpu()

    async def sample(self) -> None:
        """Remember our backends' CPU now: a connection closed before `end` still counts."""
        if self.backend_pids is not None:
            try:
                self.seen_backends.update(pids_cpu(await self.backend_pids()))
            except Exception:
                pass

    async def end(self) -> dict[str, float]:
        """CPU seconds spent per process since `begin`."""
        assert self.start is not None, "begin() first"
        stop = await self.snapshot()
        start = self.start
        spent = {name: max(0.0, stop.groups.get(name, 0.0) - start.groups.get(name, 0.0))
                 for name in self.groups}
        if self.backend_pids is not None:
            # a backend that appeared during the window counts from zero; one that
            # disappeared is lost (pools keep theirs for the whole run)
            latest = {**self.seen_backends, **stop.backends}
            spent["postgres"] = sum(max(0.0, cpu - start.backends.get(pid, 0.0))
                                    for pid, cpu in latest.items())
        if stop.redis is not None and start.redis is not None:
            spent["redis"] = max(0.0, stop.redis - start.redis)
        spent["bench-client"] = max(0.0, stop.client - start.client)
        if self.children:
            spent["reaped"] = max(0.0, children_cpu() - self.start_children)
        return spent


def per_unit(spent: dict[str, float], units: int) -> dict[str, float]:
    """CPU seconds per message (or per lead, per callback, per query)."""
    if units <= 0:
        return {name: 0.0 for name in spent}
    return {name: cpu / units for name, cpu in spent.items()}


def capacity(per_unit_s: dict[str, float], cores: int | None = None) -> float | None:
    """Units per second the machine's cores could do at these CPU costs, all processes of
    the system together (the load generator excluded): what the rate would be with the
    machine to ourselves and every core busy. A bound, not a measurement."""
    total = sum(v for name, v in per_unit_s.items() if name != "bench-client")
    if total <= 0:
        return None
    return round((cores or os.cpu_count() or 1) / total, 1)
