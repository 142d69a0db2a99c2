"""A scripted run at the storage level: rows every feature writes, written directly.

The features that write them are built in parallel; the schema (0001) is the contract
they share, so the figures are scripted here in its terms.
"""

from __future__ import annotations

from typing import Any

# (status, error_code, blocked_reason, count) of outbound messages, plus one inbound.
OUTBOUND = [
    ("queued", None, None, 1),
    ("sending", None, None, 1),
    ("sent", None, None, 2),
    ("delivered", None, None, 3),
    ("undelivered", 30007, None, 2),
    ("undelivered", 30003, None, 1),
    ("failed", 21610, None, 1),
    ("failed", 21614, None, 1),
    ("blocked", None, "opted_out", 1),
    ("blocked", None, "landline", 1),
    ("scheduled", None, None, 1),
    ("canceled", None, None, 1),
]
EXPECTED_STATUS = {"scheduled": 1, "queued": 1, "sending": 1, "sent": 2, "delivered": 3, "undelivered": 3,
                   "failed": 2, "blocked": 2, "canceled": 1, "received": 1}
EXPECTED_ERRORS = {("30007", "undelivered"): 2, ("30003", "undelivered"): 1,
                   ("21610", "failed"): 1, ("21614", "failed"): 1}
SECRET_BODY = "Hi Dana, your seat for the tax seminar is confirmed (private body text)"


async def seed_conversation(conn: Any, firm_id: int, phone: str = "+16465551234") -> int:
    return await conn.fetchval(
        "INSERT INTO conversations (firm_id, phone_e164) VALUES ($1, $2) RETURNING id", firm_id, phone)


async def seed_messages(conn: Any, firm_id: int, conv_id: int) -> None:
    n = 0
    for status, code, reason, count in OUTBOUND:
        for _ in range(count):
            n += 1
            await conn.execute(
                """INSERT INTO messages (firm_id, conversation_id, direction, body, sent_by, status,
                                         error_code, error_message, blocked_reason, claimed_at, twilio_sid, send_at)
                   VALUES ($1, $2, 'out', $3, 'u1', $4, $5, $6, $7,
                           CASE WHEN $4 = 'sending' THEN now() - interval '4 seconds' END, $8,
                           CASE WHEN $4 IN ('scheduled', 'canceled') THEN now() + interval '1 hour' END)""",
                firm_id, conv_id, SECRET_BODY, status, code,
                f"Twilio error {code}" if code else None, reason,
                f"SM{n:032d}" if status not in ("scheduled", "queued", "sending", "blocked", "canceled") else None)
    await conn.execute(
        """INSERT INTO messages (firm_id, conversation_id, direction, body, status, received_at, twilio_sid)
           VALUES ($1, $2, 'in', 'thanks!', 'received', now(), 'SMinbound0000000000000000000000001')""",
        firm_id, conv_id)


async def seed_consent_and_flags(conn: Any, firm_id: int) -> None:
    for i, (kind, source) in enumerate([("opt_out", "keyword:stop"), ("opt_out", "twilio_21610"),
                                        ("opt_out", "staff:u1"), ("opt_in", "keyword:start")]):
        await conn.execute(
            "INSERT INTO consent_events (firm_id, phone_e164, kind, source) VALUES ($1, $2, $3, $4)",
            firm_id, f"+1646555{2000 + i:04d}", kind, source)
    await conn.execute(
        """INSERT INTO phone_flags (firm_id, phone_e164, blocked, blocked_at, blocked_reason)
           VALUES ($1, '+16465553001', true, now(), 'carrier_filtering'),
                  ($1, '+16465553002', true, now(), 'carrier_filtering')""", firm_id)
    await conn.execute(
        """INSERT INTO phone_flags (firm_id, phone_e164, opted_out, opted_out_at, opted_out_source)
           VALUES ($1, '+16465552000', true, now(), 'keyword:stop')""", firm_id)
    await conn.execute(
        """INSERT INTO phone_flags (firm_id, phone_e164, review_pending) VALUES ($1, '+16465554000', true)""",
        firm_id)
    # two auto-blocks ever (one later lifted: the counter still counts it), one unblock
    for kind, phone in [("blocked", "+16465553001"), ("blocked", "+16465553003"), ("unblocked", "+16465553003")]:
        await conn.execute(
            "INSERT INTO phone_flag_events (firm_id, phone_e164, kind, reason) VALUES ($1, $2, $3, 'test')",
            firm_id, phone, kind)


async def seed_inbox_leads_and_sweep(conn: Any, firm_id: int) -> None:
    await conn.execute(
        """INSERT INTO twilio_inbox (kind, message_sid, twilio_status, params, received_at)
           VALUES ('status', 'SMstale', 'delivered', '{}', now() - interval '90 seconds')""")
    await conn.execute(
        """INSERT INTO twilio_inbox (kind, message_sid, twilio_status, params, received_at, processed_at, outcome)
           VALUES ('status', 'SMdone', 'delivered', '{}', now() - interval '1 hour', now(), 'applied')""")
    await conn.execute(
        """INSERT INTO leads (firm_id, external_id, phone_raw, created_at)
           VALUES ($1, 'crm-1', '646 555 7000', now() - interval '20 seconds')""", firm_id)
    await conn.execute(
        """INSERT INTO sweeper_passes (host_pid, started_at, finished_at, summary)
           VALUES ('host-a:41', now() - interval '4 seconds', now() - interval '3 seconds',
                   '{"send_pipeline.requeue_queued": 0}')""")


async def seed_all(conn: Any, firm_id: int) -> int:
    conv = await seed_conversation(conn, firm_id)
    await seed_messages(conn, firm_id, conv)
    await seed_consent_and_flags(conn, firm_id)
    await seed_inbox_leads_and_sweep(conn, firm_id)
    return conv
