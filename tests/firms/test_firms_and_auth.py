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


def _leadsms(settings, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": settings.database_url, **extra_env}
    return subprocess.run(leadsms_command(*args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_a_new_firm_gets_quiet_hours_and_its_numbers_zone_and_firm_hours_changes_them(settings, services):
    added = _leadsms(settings, "firm", "add", "--name", "LA Firm", "--number", "+12135550100",
                     QUIET_HOURS="09:00-20:30")
    assert added.returncode == 0, added.stderr
    firm_id = str(last_json_line(added.stdout)["firm_id"])

    shown = _leadsms(settings, "firm", "hours", "--firm", firm_id)
    assert shown.returncode == 0, shown.stderr
    assert last_json_line(shown.stdout) == {"firm_id": int(firm_id), "timezone": "America/Los_Angeles",
                                            "timezone_from": "number", "quiet_hours": "09:00-20:30"}

    changed = _leadsms(settings, "firm", "hours", "--firm", firm_id, "--timezone", "America/Chicago",
                       "--quiet-hours", "10:00-24:00")
    assert changed.returncode == 0, changed.stderr
    assert last_json_line(changed.stdout) == {"firm_id": int(firm_id), "timezone": "America/Chicago",
                                              "timezone_from": "firm", "quiet_hours": "10:00-24:00"}

    for bad in (("--timezone", "Nowhere/Land"), ("--quiet-hours", "21:00-08:00")):
        refused = _leadsms(settings, "firm", "hours", "--firm", firm_id, *bad)
        assert refused.returncode == 1 and bad[0] in refused.stderr and "Traceback" not in refused.stderr


def test_a_malformed_quiet_hours_setting_stops_firm_add_in_one_line(settings):
    proc = _leadsms(settings, "firm", "add", "--name", "X", "--number", "+12125550101", QUIET_HOURS="8-21")
    assert proc.returncode != 0
    assert "QUIET_HOURS" in proc.stderr and "Traceback" not in proc.stderr
