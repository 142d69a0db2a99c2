"""The project reaches into dramatiq's Redis broker (shared/async_enqueue.py drives its
`dispatch` Lua script itself): the arguments it passes must stay the ones dramatiq passes.
A dramatiq release that changes them fails here, not in production."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
from dramatiq.brokers.redis import RedisBroker

from shared.async_enqueue import _AsyncDispatch
from tests.support import ROOT


class Recorder:
    """Stands in for dramatiq's registered `dispatch` script and records its call."""

    def __init__(self, script: Any) -> None:
        self.script, self.sha = script.script, script.sha
        self.calls: list[dict[str, Any]] = []

    def __call__(self, keys=None, args=None, client=None):
        self.calls.append({"keys": list(keys or []), "args": list(args or [])})


async def test_our_enqueue_passes_dramatiqs_own_dispatch_arguments(services):
    broker = RedisBroker(url=services.redis_url)
    try:
        broker.maintenance_chance = 0  # the one random argument: off on both sides
        ours = _AsyncDispatch(broker)
        assert (ours.script_text, ours.sha) == (broker.scripts["dispatch"].script, broker.scripts["dispatch"].sha)
        recorder = Recorder(broker.scripts["dispatch"])
        broker.scripts["dispatch"] = recorder
        broker.do_enqueue("send", "rid-1", b"payload")
        [theirs] = recorder.calls
        mine = ours._argv("send", broker._max_unpack_size(), "rid-1", b"payload")
        assert theirs["keys"] == [broker.namespace]  # we pass the namespace as the one key too
        assert len(mine) == len(theirs["args"])
        assert abs(int(mine[1]) - int(theirs["args"][1])) < 5_000  # the timestamp (ms)
        assert [mine[0], *mine[2:]] == [theirs["args"][0], *theirs["args"][2:]]
        await ours.client.aclose()
    finally:
        broker.close()


def _requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"]) + [r for extra in project["optional-dependencies"].values() for r in extra]
    out = {}
    for req in reqs:
        spec = req.split(";", 1)[0].strip()
        name = spec.split("[", 1)[0].split(">", 1)[0].split("<", 1)[0].split("=", 1)[0].strip().lower()
        out[name] = spec
    return out


@pytest.mark.parametrize("name", ["dramatiq", "redis", "twilio", "asyncpg", "aiohttp", "structlog", "phonenumbers",
                                  "uvloop", "hiredis", "zipcodes", "cryptography", "aiohttp-sse", "pytest-timeout"])
def test_every_runtime_dependency_has_a_lower_bound_and_a_capped_major(name):
    spec = _requirements()[name]
    assert ">=" in spec and "<" in spec.replace("<=", ""), f"{spec}: give it a true lower bound and cap the major"


def test_aiohttp_is_new_enough_for_encode_basic_auth():
    """shared/twilio.py calls aiohttp.encode_basic_auth, which appeared in aiohttp 3.14."""
    spec = _requirements()["aiohttp"]
    low = spec.split(">=", 1)[1].split(",", 1)[0]
    assert tuple(int(p) for p in low.split(".")[:2]) >= (3, 14), spec


def test_redis_parses_replies_with_hiredis():
    """hiredis is a dependency only so redis-py parses replies in C (docs/benchmarks.md).
    redis-py passes over a hiredis older than it supports without a word (since redis 6.2:
    hiredis 3.2), so hiredis's lower bound is held to what the newest redis allowed takes."""
    import hiredis
    import redis
    import redis.connection
    import redis.utils

    assert redis.utils.HIREDIS_AVAILABLE, (
        f"redis {redis.__version__} does not use hiredis {hiredis.__version__}: raise hiredis's lower bound")
    assert redis.connection.DefaultParser.__name__ == "_HiredisParser"
