import subprocess

import pytest

from shared.config import Settings
from shared.errors import ConfigError
from tests.support import ROOT, leadsms_command


def test_defaults_follow_the_interface_contract():
    s = Settings.from_env({"DATABASE_URL": "postgresql://x@h/db", "REDIS_URL": "redis://h:6379/0"})
    assert s.broker_url == "redis://h:6379/0"
    assert s.public_base_url is None  # real Twilio: no default (the web and worker refuse to start)
    with_sim = Settings.from_env({"TWILIO_BASE_URL": "http://127.0.0.1:9000", "PORT": "8081"})
    assert with_sim.public_base_url == "http://127.0.0.1:8081"
    assert (s.send_rate_limit, s.dedupe_window_ms, s.block_after_filter_failures) == (10, 2000, 3)
    assert (s.sweep_interval_s, s.stale_after_s, s.worker_metrics_port) == (5, 30, 9191)


def test_a_malformed_number_names_its_variable():
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"SEND_RATE_LIMIT": "ten"})
    assert "SEND_RATE_LIMIT" in str(err.value)


def test_a_missing_required_variable_names_it():
    with pytest.raises(ConfigError) as err:
        Settings.for_command("web", {"REDIS_URL": "redis://h/0"})
    assert str(err.value) == "DATABASE_URL is not set"


def test_a_database_url_with_the_wrong_scheme_is_refused():
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        Settings.from_env({"DATABASE_URL": "mysql://x@h/db"})


@pytest.mark.parametrize("command", ["web", "migrate", "worker", "sweeper"])
def test_a_command_without_database_url_prints_one_line_and_exits_non_zero(command):
    env = {"PATH": "/usr/bin:/bin", "REDIS_URL": "redis://127.0.0.1:6379/0",
           "TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t"}
    proc = subprocess.run(leadsms_command(command), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "DATABASE_URL" in lines[0]
    assert "Traceback" not in proc.stderr


def test_inbox_retention_defaults_to_30_days_and_is_read_from_the_environment():
    assert Settings.from_env({}).inbox_retention_days == 30
    assert Settings.from_env({"INBOX_RETENTION_DAYS": "7"}).inbox_retention_days == 7
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"INBOX_RETENTION_DAYS": "0"})
    assert "INBOX_RETENTION_DAYS" in str(err.value)


@pytest.mark.parametrize("command", ["web", "worker"])
def test_real_twilio_without_public_base_url_prints_one_line_and_exits_2(command):
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://x@127.0.0.1:1/db", "REDIS_URL": "redis://127.0.0.1:1/0",
           "TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t"}
    proc = subprocess.run(leadsms_command(command), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "PUBLIC_BASE_URL" in lines[0], proc.stderr
