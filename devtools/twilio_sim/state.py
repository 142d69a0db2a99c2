"""The simulator's run-time state, one per app: config, store, callback session, tasks."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from devtools.twilio_sim.accounts import Accounts
from devtools.twilio_sim.config import SimConfig
from devtools.twilio_sim.store import Store


@dataclass
class SimState:
    config: SimConfig
    store: Store = field(default_factory=Store)
    session: aiohttp.ClientSession | None = None  # one for every webhook POST
    tasks: set[asyncio.Task] = field(default_factory=set)
    rng: random.Random = field(default_factory=random.Random)  # fault draws (faults.py)
    burst_429_left: int = 0  # creates still to answer 429 in the current burst
    accounts: Accounts = field(init=False)

    def __post_init__(self) -> None:
        self.accounts = Accounts(self.config.account_sid, self.config.auth_token)

    def spawn(self, coro) -> asyncio.Task:
        """Run `coro` in the background, remembered so reset and shutdown can cancel it."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def cancel_tasks(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        self.tasks.clear()


SIM_STATE = web.AppKey("sim_state", SimState)
