import subprocess

from tests.conftest import last_json_line
from tests.support import ROOT, leadsms_command


def test_firm_add_prints_json_with_id_and_key(settings):
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": settings.database_url}
    proc = subprocess.run(leadsms_command("firm", "add", "--name", "X", "--number", "+12125550100"),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = last_json_line(proc.stdout)
    assert isinstance(out["firm_id"], int)
    assert out["api_key"].startswith("lsk_") and len(out["api_key"]) > 40


def test_firm_add_refuses_an_invalid_number_in_one_line(settings):
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": settings.database_url}
    proc = subprocess.run(leadsms_command("firm", "add", "--name", "X", "--number", "12"),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "--number" in proc.stderr and "Traceback" not in proc.stderr


async def test_the_api_key_stored_is_a_digest_not_the_key(pool, firm):
    stored = await pool.fetchval("SELECT api_key_sha256 FROM firms WHERE id = $1", firm.id)
    assert firm["api_key"] not in stored and len(stored) == 64


async def test_v1_without_a_key_is_401_json(http):
    async with http.get("/v1/conversations") as resp:
        assert resp.status == 401
        body = await resp.json()
        assert body["code"] == "unauthorized" and body["error"]


async def test_v1_with_a_wrong_key_is_401(http, firm):
    async with http.get("/v1/conversations", headers={"Authorization": "Bearer lsk_wrong"}) as resp:
        assert resp.status == 401
