"""The demo's child processes: started in their own process groups, restarted with backoff
when they crash, and stopped group-wide and waited for, so nothing outlives the demo.

A child is a real `leadsms` command (`python -m shared.cli web` ...); its output goes to
a log file, so the terminal shows only the demo's own lines.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from devtools.process_groups import kill_group, stop_group

BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 30.0
HEALTHY_AFTER_S = 30.0  # a child that ran this long starts its backoff afresh
STOP_TIMEOUT_S = 15.0


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None  # overrides of the supervisor's environment
    proc: Any = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


class Supervisor:
    """Starts children in their own process groups, restarts crashed ones with backoff,
    and stops them all (group-wide, waited) at the end."""

    def __init__(self, env: dict[str, str], cwd: Path, say: Callable[[str], None]) -> None:
        self.env = env
        self.cwd = cwd
        self.say = say
        self.children: list[Child] = []
        self.stopping = False

    def add(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> Child:
        child = Child(name, argv, log_path, env)
        self.children.append(child)
        self._spawn(child)
        return child

    def _spawn(self, child: Child) -> None:
        child.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(child.log_path, "ab") as log:
            log.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {child.name}\n".encode())
            log.flush()
            child.proc = subprocess.Popen(child.argv, cwd=self.cwd, env={**self.env, **(child.env or {})},
                                          stdin=subprocess.DEVNULL,
                                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        child.started_at = time.monotonic()
        child.restart_at = None

    def check(self) -> None:
        """Report and schedule the restart of crashed children; restart those due."""
        now = time.monotonic()
        for child in self.children:
            if self.stopping:
                return
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._spawn(child)
                    self.say(f"demo: {child.name} restarted (pid {child.pid})")
                continue
            code = child.proc.poll()
            if code is None:
                continue
            kill_group(child.proc.pid, signal.SIGKILL)  # whatever it left behind in its group
            if now - child.started_at > HEALTHY_AFTER_S:
                child.failures = 0
            child.failures += 1
            delay = min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2 ** (child.failures - 1))
            child.restart_at = now + delay
            self.say(f"demo: {child.name} exited with code {code}; restarting in {delay:.0f} s "
                     f"(log: {child.log_path})")

    def failed_during_start(self) -> Child | None:
        for child in self.children:
            if child.proc.poll() is not None:
                return child
        return None

    async def stop_all(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop every child with its whole group (process_groups.stop_group), all at once."""
        self.stopping = True

        async def stop(child: Child) -> None:
            if await asyncio.to_thread(stop_group, child.proc, timeout=timeout):
                self.say(f"demo: {child.name} did not stop within {timeout:.0f} s; killed it")

        await asyncio.gather(*(stop(child) for child in self.children if child.proc is not None))
