"""Benchmark data written straight to PostgreSQL: firms with API keys, leads with valid
mobile phones, their conversations, and (for the callbacks scenario) sent messages.

SQL rather than the API because only the measured requests should go through the
system; seeding a thousand conversations over HTTP would only slow the run down.

Phones end in 1000-9999: the simulator treats 0001-0999 as failure scenarios, and a
benchmark measures the path that succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import asyncpg

from firms.auth import hash_api_key, new_api_key
from firms.service import ALWAYS_OPEN


def phones(prefix: str, start: int, count: int) -> Iterator[str]:
    """`count` E.164 numbers `+1<prefix><7 digits>` from `start` on, last four 1000-9999."""
    n = start
    made = 0
    while made < count:
        if n % 10000 >= 1000:
            yield f"+1{prefix}{n:07d}"
            made += 1
        n += 1


@dataclass
class BenchFirm:
    id: int
    number: str
    api_key: str
    users: list[str]
    conversations: list[tuple[int, str]] = field(default_factory=list)  # (id, phone)

    @property
    def auth(self) -> str:
        return f"Bearer {self.api_key}"


async def seed_firms(conn: asyncpg.Connection, *, firms: int, users: int, conversations: int,
                     tag: str = "bench") -> list[BenchFirm]:
    """`firms` firms, each with `users` portal users and `conversations` conversations with
    valid, known-mobile phones."""
    made: list[BenchFirm] = []
    numbers = list(phones("415", 2_000_000, firms))
    lead_phones = iter(phones("212", 3_000_000, firms * conversations))
    for i in range(firms):
        key = new_api_key()
        firm_id = await conn.fetchval(
            "INSERT INTO firms (name, sms_number, api_key_sha256, quiet_hours) VALUES ($1, $2, $3, $4) RETURNING id",
            f"{tag} firm {i + 1}", numbers[i], hash_api_key(key), ALWAYS_OPEN)
        firm = BenchFirm(firm_id, numbers[i], key, [f"{tag}-user-{i + 1}-{u + 1}" for u in range(users)])
        mine = [next(lead_phones) for _ in range(conversations)]
        await conn.copy_records_to_table(
            "leads",
            records=[(firm_id, f"{tag}-{firm_id}-{k}", f"Lead {k} of firm {i + 1}", f"lead{k}@example.com",
                      "Bench Night", p, p, "valid") for k, p in enumerate(mine)],
            columns=("firm_id", "external_id", "name", "email", "event", "phone_raw", "phone_e164", "phone_status"),
        )
        rows = await conn.fetch(
            """INSERT INTO conversations (firm_id, phone_e164, lead_id)
               SELECT firm_id, phone_e164, id FROM leads WHERE firm_id = $1 ORDER BY id
               RETURNING id, phone_e164""", firm_id)
        firm.conversations = [(r["id"], r["phone_e164"]) for r in rows]
        made.append(firm)
    all_phones = [p for f in made for _, p in f.conversations]
    await conn.copy_records_to_table(
        "phone_lines", records=[(p, True, "mobile", "Bench Carrier") for p in all_phones],
        columns=("phone_e164", "valid", "line_type", "carrier"))
    await conn.execute("ANALYZE")
    return made


async def seed_sent_messages(conn: asyncpg.Connection, firms: list[BenchFirm], count: int) -> list[dict]:
    """`count` outbound messages already `sent` (with a sid), spread over the conversations:
    what the callbacks scenario reports on. Returns {id, sid, to, from} per message."""
    pairs = [(f, conv_id, phone) for f in firms for conv_id, phone in f.conversations]
    records = []
    for i in range(count):
        firm, conv_id, phone = pairs[i % len(pairs)]
        records.append((firm.id, conv_id, "out", f"bench callback {i}", f"{firm.id}-bench", "sent", "sent",
                        f"SMbench{i:026d}", 1))
    await conn.copy_records_to_table(
        "messages", records=records,
        columns=("firm_id", "conversation_id", "direction", "body", "sent_by", "status", "twilio_status",
                 "twilio_sid", "segments"))
    rows = await conn.fetch(
        """SELECT m.id, m.twilio_sid, c.phone_e164, f.sms_number FROM messages m
           JOIN conversations c ON c.id = m.conversation_id JOIN firms f ON f.id = m.firm_id
           WHERE m.twilio_sid LIKE 'SMbench%' ORDER BY m.id""")
    return [{"id": r["id"], "sid": r["twilio_sid"], "to": r["phone_e164"], "from": r["sms_number"]} for r in rows]
