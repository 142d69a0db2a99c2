"""The demo firm and its leads: one of every case the inbox can show, made the real way.

Leads arrive through the CRM hook (`POST /v1/leads`), so intake validates them and lookup
asks the simulator for their line types; older leads come in through `leadsms import` and
are never looked up; messages go out through the send pipeline to the simulator, whose
scenario numbers (last four digits, docs/twilio-simulator.md) decide what happens:

| lead | phone | what it shows |
| --- | --- | --- |
| Maria Garcia | (212) 555-2368 | mobile: a delivered text and a reply |
| Sam Lee | 212 555 7788 (3 signups, 3 formats) | one person, one conversation, once in the picker |
| Olivia Stone | (212) 555-3190 | opted out: a real signed STOP through the simulator |
| Blake Carter | (212) 555-0150 | auto-blocked: three sends, three 30007 callbacks |
| Harold Finch | (212) 555-0042 | landline (Lookup at intake): notice, no compose box; his text puts him in the list |
| Ivan Petrov | 555-12 | invalid phone: never in the picker, no conversation |
| Priya Shah, Daniel Kim | (646) 555-4821, 555-9032 | mobiles to start a conversation with |
| Tom Becker | (718) 555-0863 | non-fixed VoIP: sendable |
| Grace Okafor | (718) 555-4417 | imported, never looked up (sendable, line type unknown) |
| Walter Hughes | (212) 555-0077 | imported landline: the lazy lookup finds it at first open |

Seeding runs once: `demo.json` in the data dir records the firm and its key. Every step
is idempotent anyway (leads by external id, conversations by phone, sends skipped when the
thread already has them), so an interrupted seed simply runs again next time.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp

from devtools.waiting import wait_until
from shared.errors import AppError

FIRM_NAME = "Riverside Events"
FIRM_NUMBER = "+16465550123"
SEED_USER = "alex"  # the seeded texts' sender; the page's user ("demo-user") keeps its rate limit
STATE_FILE = "demo.json"
SETTLE_TIMEOUT_S = 30.0


def _ago(days: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(days=days)).replace(microsecond=0).isoformat()


def _lead(external_id: str, name: str, phone: str, event: str, days_ago: float) -> dict[str, Any]:
    email = name.lower().replace(" ", ".") + "@example.com"
    return dict(external_id=external_id, name=name, email=email, phone=phone, event=event,
                signed_up_at=_ago(days_ago))


# Through the CRM hook, in this order: (external_id, name, phone as typed, event, signed up days ago)
HOOK_LEADS: list[dict[str, Any]] = [_lead(*row) for row in (
    ("demo-maria", "Maria Garcia", "(212) 555-2368", "Spring Open House", 6),
    ("demo-sam-1", "Sam Lee", "212 555 7788", "Retirement Workshop", 90),
    ("demo-sam-2", "Samuel Lee", "+1 (212) 555-7788", "Spring Open House", 30),
    ("demo-sam-3", "Sam Lee", "2125557788", "Estate Planning Seminar", 2),
    ("demo-olivia", "Olivia Stone", "+1 212-555-3190", "Spring Open House", 5),
    ("demo-blake", "Blake Carter", "212-555-0150", "Retirement Workshop", 4),
    ("demo-harold", "Harold Finch", "212-555-0042", "Estate Planning Seminar", 3),
    ("demo-ivan", "Ivan Petrov", "555-12", "Retirement Workshop", 3),
    ("demo-priya", "Priya Shah", "(646) 555-4821", "Spring Open House", 1),
    ("demo-daniel", "Daniel Kim", "646-555-9032", "Estate Planning Seminar", 1),
    ("demo-tom", "Tom Becker", "718-555-0863", "Retirement Workshop", 2),
)]

# Through `leadsms import`, never looked up
IMPORTED_LEADS: list[dict[str, Any]] = [_lead(*row) for row in (
    ("import-grace", "Grace Okafor", "(718) 555-4417", "Autumn Gala 2024", 200),
    ("import-walter", "Walter Hughes", "212-555-0077", "Autumn Gala 2024", 210),
)]

# Conversations, seeded in this order (the last one ends on top of the list).
# (external_id, [("out" | "in", body)], what the lead must end as)
SCRIPTS: list[tuple[str, list[tuple[str, str]]]] = [
    # a landline's text (forwarded by the carrier) puts it in the list, which shows a
    # conversation once it has a message
    ("demo-harold", [("in", "Hello, this is Harold. Please call me about the seminar, this is my home phone.")]),
    ("demo-blake", [
        ("out", "Hi Blake, your seat at the Retirement Workshop is confirmed for Tuesday at 6pm."),
        ("out", "Hi Blake, a reminder: the Retirement Workshop starts Tuesday at 6pm."),
        ("out", "Hi Blake, parking is free in the garage on 5th Street."),
    ]),
    ("demo-olivia", [
        ("out", "Hi Olivia, thanks for signing up for the Spring Open House! Doors open at 10am."),
        ("in", "STOP"),
    ]),
    ("demo-sam-3", [
        ("out", "Hi Sam, we saved you a seat at the Estate Planning Seminar on the 18th."),
        ("in", "Great, see you on the 18th! Can my wife come too?"),
    ]),
    ("demo-maria", [
        ("out", "Hi Maria, this is Alex from Riverside Events. Looking forward to seeing you "
                "at the Spring Open House on Saturday!"),
        ("in", "Thanks Alex! Is there parking at the venue?"),
    ]),
]


@dataclass
class Seeded:
    firm_id: int
    firm_number: str
    api_key: str
    example_conversation_id: int | None


# ---- the firm and its key -------------------------------------------------------------------


def _read_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_state(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.chmod(0o600)  # it holds an API key
    tmp.replace(path)


async def ensure_firm(database_url: str, state: dict[str, Any]) -> tuple[int, str]:
    """The demo firm's id and a working key: the stored one when it still matches, else a
    new firm, or a new key for the existing firm (only the key hash is in the database)."""
    from firms.service import ALWAYS_OPEN, add_firm
    from shared.db import connect
    from firms.auth import hash_api_key, new_api_key

    conn = await connect(database_url)
    try:
        row = await conn.fetchrow("SELECT id, api_key_sha256 FROM firms WHERE sms_number = $1", FIRM_NUMBER)
        if row is not None:
            key = state.get("api_key")
            if state.get("firm_id") == row["id"] and isinstance(key, str) and hash_api_key(key) == row["api_key_sha256"]:
                return row["id"], key
            key = new_api_key()
            await conn.execute("UPDATE firms SET api_key_sha256 = $1 WHERE id = $2", hash_api_key(key), row["id"])
            return row["id"], key
    finally:
        await conn.close()
    created = await add_firm(database_url, FIRM_NAME, FIRM_NUMBER, quiet_hours=ALWAYS_OPEN)
    return created["firm_id"], created["api_key"]


async def example_conversation(database_url: str, firm_id: int) -> int | None:
    """Maria's conversation (for the printed curl example), else the newest one."""
    from shared.db import connect

    conn = await connect(database_url)
    try:
        return await conn.fetchval(
            """SELECT id FROM conversations WHERE firm_id = $1
               ORDER BY (phone_e164 = '+12125552368') DESC, COALESCE(last_message_at, created_at) DESC LIMIT 1""",
            firm_id,
        )
    finally:
        await conn.close()


# ---- talking to the running demo --------------------------------------------------------------


class Api:
    def __init__(self, session: aiohttp.ClientSession, web_url: str, sim_url: str, key: str) -> None:
        self.session = session
        self.web_url = web_url
        self.sim_url = sim_url
        self.headers = {"Authorization": f"Bearer {key}"}

    async def call(self, method: str, path: str, body: Any = None, *, user: str | None = None,
                   ok: tuple[int, ...] = (200, 201, 202)) -> Any:
        headers = dict(self.headers)
        if user:
            headers["X-User-Id"] = user
        async with self.session.request(method, self.web_url + path, json=body, headers=headers) as resp:
            data = await resp.json(content_type=None)
            if resp.status not in ok:
                raise AppError(f"demo seed: {method} {path} answered {resp.status}: {data}", code="seed_failed")
            return data

    async def inbound(self, phone: str, body: str) -> None:
        async with self.session.post(f"{self.sim_url}/sim/inbound",
                                     json={"from": phone, "to": FIRM_NUMBER, "body": body}) as resp:
            data = await resp.json(content_type=None)
            status = data.get("answer_status") if isinstance(data, dict) else None
            if resp.status != 200 or not isinstance(status, int) or not 200 <= status < 300:
                raise AppError(f"demo seed: inbound text not accepted: {data}", code="seed_failed")


async def _until(what: str, check: Callable[[], Awaitable[Any]], timeout: float = SETTLE_TIMEOUT_S) -> Any:
    """Poll `check` until it returns something truthy (the worker does the work)."""
    try:
        return await wait_until(check, timeout=timeout, interval=0.05, what=what)
    except TimeoutError as exc:
        raise AppError(f"demo seed: timed out waiting for {what}; is the worker running? "
                       "(see .leadsms/logs/worker.log)", code="seed_timeout") from exc


async def _settled(api: Api, lead_id: int) -> dict[str, Any]:
    """The lead once intake and lookup are done with it."""
    async def check() -> dict[str, Any] | None:
        lead = await api.call("GET", f"/v1/leads/{lead_id}")
        if lead["phone_status"] == "pending":
            return None
        if lead["phone_status"] == "valid" and lead.get("line_type") is None:
            return None
        return lead

    return await _until(f"lead {lead_id} to be validated and looked up", check)


FINAL = {"delivered", "undelivered", "failed", "blocked"}


async def _send(api: Api, conversation_id: int, body: str) -> dict[str, Any]:
    sent = await api.call("POST", f"/v1/conversations/{conversation_id}/messages", {"body": body}, user=SEED_USER)

    async def final() -> dict[str, Any] | None:
        message = await api.call("GET", f"/v1/messages/{sent['id']}")
        return message if message["status"] in FINAL else None

    return await _until(f"message {sent['id']} to reach a final status", final)


async def _thread_len(api: Api, conversation_id: int) -> int:
    page = await api.call("GET", f"/v1/conversations/{conversation_id}/messages?limit=200")
    return len(page["items"])


async def _reply(api: Api, conv_id: int, lead: dict[str, Any], body: str) -> None:
    """The lead texts `body` (signed, through the simulator); wait until it is in the thread."""
    before = await _thread_len(api, conv_id)
    await api.inbound(lead["phone"], body)

    async def arrived() -> bool:
        return await _thread_len(api, conv_id) > before

    await _until(f"the reply in conversation {conv_id}", arrived)


async def _import(env: dict[str, str], firm_id: int, data_dir: Path) -> None:
    path = data_dir / "demo-import.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["external_id", "name", "email", "phone", "event", "signed_up_at"])
        writer.writeheader()
        writer.writerows(IMPORTED_LEADS)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shared.cli", "import", str(path), "--firm", str(firm_id), "--no-progress",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise AppError(f"demo seed: leadsms import failed:\n{out.decode(errors='replace')[-2000:]}", code="seed_failed")


def _first(error: BaseException) -> BaseException:
    """The first failure inside (nested) task groups: the seed reports one error."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


async def _play(api: Api, lead: dict[str, Any], script: list[tuple[str, str]]) -> None:
    """One conversation's script, in order."""
    conv = await api.call("POST", "/v1/conversations", {"lead_id": lead["lead_id"]})
    conv_id = conv["conversation_id"]
    if await _thread_len(api, conv_id) > 0:
        return  # seeded by an earlier, interrupted run
    for direction, body in script:
        if direction == "out":
            await _send(api, conv_id, body)
        else:
            await _reply(api, conv_id, lead, body)


async def seed_demo_data(api: Api, firm_id: int, env: dict[str, str], data_dir: Path, say: Callable[[str], None]) -> None:
    say("demo: seeding the demo firm's leads and conversations...")
    lead_ids: dict[str, int] = {}
    for fields in HOOK_LEADS:  # in order: the picker keeps each phone's newest signup
        answer = await api.call("POST", "/v1/leads", fields)
        lead_ids[fields["external_id"]] = answer["lead_id"]
    try:
        async with asyncio.TaskGroup() as group:
            # the import (a process of its own) runs while the worker settles the hook's leads
            group.create_task(_import(env, firm_id, data_dir))
            settled = await asyncio.gather(*(_settled(api, lead_id) for lead_id in lead_ids.values()))
            leads = dict(zip(lead_ids, settled))
            # every conversation but the last at once (each script in its own order), then
            # the last, so that it ends on top of the list
            *others, (last_id, last_script) = SCRIPTS
            async with asyncio.TaskGroup() as conversations:
                for external_id, script in others:
                    conversations.create_task(_play(api, leads[external_id], script))
            await _play(api, leads[last_id], last_script)
    except BaseExceptionGroup as failed:
        raise _first(failed) from None

    async def blocked() -> bool:
        lead = await api.call("GET", f"/v1/leads/{lead_ids['demo-blake']}")
        return lead.get("code") == "blocked"

    await _until("Blake Carter's number to be auto-blocked", blocked)


async def ensure_demo(*, database_url: str, web_url: str, sim_url: str, data_dir: Path, seed: bool,
                      env: dict[str, str], say: Callable[[str], None]) -> Seeded:
    """The demo firm (created and seeded once) and its key, for the banner."""
    state_path = data_dir / STATE_FILE
    state = _read_state(state_path)
    firm_id, key = await ensure_firm(database_url, state)
    seeded = bool(state.get("seeded")) and state.get("firm_id") == firm_id
    if state.get("api_key") != key or state.get("firm_id") != firm_id:
        state = {"firm_id": firm_id, "api_key": key, "seeded": seeded}
        _write_state(state_path, state)
    if seed and not seeded:
        started = time.monotonic()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            await seed_demo_data(Api(session, web_url, sim_url, key), firm_id, env, data_dir, say)
        state["seeded"] = True
        state["seeded_at"] = datetime.now(timezone.utc).isoformat()
        _write_state(state_path, state)
        say(f"demo: seeded in {time.monotonic() - started:.1f} s")
    return Seeded(firm_id=firm_id, firm_number=FIRM_NUMBER, api_key=key,
                  example_conversation_id=await example_conversation(database_url, firm_id))

