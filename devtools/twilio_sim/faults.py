"""Fault knobs: Twilio having a bad day, on top of the per-number scenario table.

The scenario table makes one number misbehave in one way, which is what a functional test
needs. A fault run needs the whole API to misbehave at random: a fraction of creates
answered 500 (nothing created), a fraction created and then answered 500 (Twilio has it,
we cannot tell), bursts of 429, slow answers, and answers so late the client times out
after the message was created; a slow or failing Messages list, a failing Lookup. Set them with `POST /sim/config`, e.g.
`{"fail_500_rate": 0.2, "burst_429": 50, "fault_seed": 7}`; all default to off.

Faults are drawn before the scenario's per-number tries are counted, so an injected
fault never uses up a scenario's "first two tries".
"""

from __future__ import annotations

import random
from typing import Literal

from devtools.twilio_sim.config import SimConfig

Fault = Literal["429", "500", "created_500", "hang"]


def pick_create_fault(config: SimConfig, rng: random.Random, burst_left: int) -> Fault | None:
    """The fault for one create, or None. A pending 429 burst comes first."""
    if burst_left > 0:
        return "429"
    draw = rng.random()
    for fault, rate in (("500", config.fail_500_rate), ("created_500", config.created_500_rate),
                        ("hang", config.hang_rate)):
        if draw < rate:
            return fault  # type: ignore[return-value]
        draw -= rate
    return None


def list_fails(config: SimConfig, rng: random.Random) -> bool:
    return config.list_500_rate > 0 and rng.random() < config.list_500_rate


def lookup_fails(config: SimConfig, rng: random.Random) -> bool:
    return config.lookup_500_rate > 0 and rng.random() < config.lookup_500_rate
