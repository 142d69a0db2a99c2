"""API keys are never compared as strings an attacker can probe byte by byte.

`firms/auth.py` hashes the presented key (SHA-256) and looks the digest up by index, so
what PostgreSQL compares is a digest the caller cannot steer: a key sharing the real
key's first 40 characters has a digest as unrelated as any other, and timing reveals
nothing about the key. The raw key is stored nowhere (the auth cache is keyed by digest too); the ops token is
compared with `hmac.compare_digest`.
"""

from __future__ import annotations

import ast
import inspect

from firms import auth
from ops import page


def _compares(fn) -> list[str]:
    """Source of every `==`/`!=` comparison in `fn`."""
    tree = ast.parse(inspect.getsource(fn).lstrip())
    return [ast.unparse(node) for node in ast.walk(tree)
            if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops)]


def test_the_key_lookup_hashes_before_it_compares_anything():
    source = inspect.getsource(auth.firm_for_key)
    assert "digest = hash_api_key(key)" in source
    assert "api_key_sha256 = $1\", digest" in source
    assert not [c for c in _compares(auth.firm_for_key) if "key" in c.split("==")[0]], _compares(auth.firm_for_key)
    assert "compare_digest" in inspect.getsource(page.check_ops_token)


async def test_the_raw_key_is_stored_nowhere_only_its_digest(http, firm, pool):
    async with http.get("/v1/conversations", headers=firm.headers) as resp:
        assert resp.status == 200
    key = firm["api_key"]
    row = await pool.fetchrow("SELECT * FROM firms WHERE id = $1", firm.id)
    assert key not in " ".join(str(v) for v in row.values())
    assert row["api_key_sha256"] == auth.hash_api_key(key)
    assert len(key) >= 40, "keys carry 32 random bytes"


async def test_a_key_that_shares_all_but_its_last_character_is_refused(http, firm):
    key = firm["api_key"]
    for near in (key[:-1], key[:-1] + ("A" if key[-1] != "A" else "B"), key + "x", key.upper(), " " + key[1:]):
        async with http.get("/v1/conversations", headers={"Authorization": f"Bearer {near}"}) as resp:
            assert resp.status == 401, near
