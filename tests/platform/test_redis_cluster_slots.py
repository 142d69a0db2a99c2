"""Redis Cluster runs a script only when every key it touches lives in one hash slot.

The slot is computed here as Redis Cluster does (CRC16/XMODEM of the hash tag, or of the
whole key, modulo 16384), so the test needs no cluster. Scripts on `REDIS_URL` (our own
figures) must pass; the dead-letter scripts of ops/queues.py and shared/broker.py run on
dramatiq's Redis broker, whose own dispatch script builds key names inside Lua and so
needs a single Redis anyway (docs/operations.md).
"""

from __future__ import annotations

import re

from send_pipeline import limits
from tests.support import ROOT

# Files holding a Lua script, and whether it runs on REDIS_URL (must be cluster-safe).
SCRIPT_FILES = {
    "send_pipeline/limits.py": "redis_url",
    "lookup/service.py": "redis_url",
    "events/service.py": "redis_url",  # the stream-slot script: one key (KEYS[1])
    "outbound/lanes.py": "redis_url",  # a lane's release and renew: one key (KEYS[1])
    "ops/queues.py": "broker",
    "shared/broker.py": "broker",
    "shared/async_enqueue.py": "broker",
}


def crc16_xmodem(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key: str) -> int:
    raw = key.encode("utf-8")
    start = raw.find(b"{")
    if start != -1:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1:end]
    return crc16_xmodem(raw) % 16384


def test_the_slot_function_matches_redis_clusters_published_values():
    assert crc16_xmodem(b"123456789") == 0x31C3  # the CRC16 check value the cluster spec gives
    assert key_slot("foo") == 12182 and key_slot("{user1000}.following") == key_slot("{user1000}.followers")
    assert key_slot("foo{}{bar}") == crc16_xmodem(b"foo{}{bar}") % 16384  # an empty tag: the whole key


def test_the_send_gate_keys_of_one_user_hash_to_one_slot():
    cases = [(firm, user, conv, body) for firm in (1, 7, 123456789) for user in ("u1", "dana@example.com", "ü-用户", "{x}")
             for conv in (1, 99) for body in ("Hi", "Are you coming?", "{}")]
    for firm, user, conv, body in cases:
        keys = [limits.dedupe_key(firm, user, conv, body), limits.rate_key(firm, user)]
        assert len({key_slot(k) for k in keys}) == 1, keys


def test_every_multi_key_script_is_accounted_for():
    """A new script with more than one key must be added above (and made cluster-safe)."""
    found = set()
    for path in sorted(ROOT.glob("*/**/*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(("tests/", ".venv/")) or "/site-packages/" in rel:
            continue
        text = path.read_text(encoding="utf-8")
        if re.search(r"KEYS\[2\]|register_script\(|\.eval\(|evalsha\(", text):
            found.add(rel)
    assert found <= set(SCRIPT_FILES), f"scripts not checked for Redis Cluster: {sorted(found - set(SCRIPT_FILES))}"
    multi_key_on_redis_url = [f for f in found if SCRIPT_FILES[f] == "redis_url" and "KEYS[2]" in (ROOT / f).read_text()]
    assert multi_key_on_redis_url == ["send_pipeline/limits.py"]
