"""Status callbacks duplicated, replayed and out of order: every message ends in the
state its final callback says, and a repeated failure is counted once.

The simulator's own callbacks are off; the test plays Twilio: for each message it posts
`queued`, `sent` and the outcome (delivered / undelivered 30007 / failed 30008), each
two or three times, all shuffled and concurrent, plus a late `sent` after the outcome.
Some callbacks arrive before the sid is stored (the message still `sending`): the `?m=`
of the callback URL finds the message anyway.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import aiohttp
import pytest

from devtools.twilio_sim.signing import new_sid, status_params
from tests.faults.conftest import record
from tests.faults.sends import add_conversations, make_firm, post_sends, wait_settled
from tests.faults.stack import SID, connect, private_stack
from tests.security.forgeries import sign

MESSAGES = 300
OUTCOMES = [("delivered", None), ("undelivered", 30007), ("failed", 30008)]
FILTERED_PHONE = "+13135558200"  # two messages, each filtered, each callback tripled


@pytest.mark.faults
async def test_duplicated_replayed_and_out_of_order_callbacks_leave_the_right_final_states(fault_dir):
    async with private_stack(fault_dir) as (stack, pg, rd):
        firm = await make_firm(stack)
        conn = await connect(stack)
        try:
            phones = [f"+1212555{8000 + i:04d}" for i in range(30)]  # valid numbers: the simulator refuses others (21211)
            convs = await add_conversations(conn, firm.id, phones + [FILTERED_PHONE])
            await stack.sim_config(callbacks_enabled=False)
            stack.start_worker(WORKER_THREADS=8)
            stack.start_sweeper()
            plan = [(convs[phones[i % len(phones)]], f"Callback note {i}") for i in range(MESSAGES - 2)]
            plan += [(convs[FILTERED_PHONE], f"Filtered note {k}") for k in range(2)]
            posted = await post_sends(stack, firm, plan)
            await wait_settled(conn, timeout=120)
            rows = await conn.fetch("SELECT m.id, m.twilio_sid, c.phone_e164 FROM messages m "
                                    "JOIN conversations c ON c.id = m.conversation_id WHERE m.status = 'sent'")
            assert len(rows) == len(posted.accepted) == MESSAGES

            # A few messages whose sid is not stored yet: claimed, Twilio has them, row still `sending`.
            early = await conn.fetch(
                """INSERT INTO messages (firm_id, conversation_id, direction, body, sent_by, status, segments, claimed_at)
                   SELECT $1, $2, 'out', 'Early bird ' || g, 'user-x', 'sending', 1, now()
                   FROM generate_series(1, 10) g RETURNING id""", firm.id, convs[phones[0]])
            rng = random.Random(21)
            expected: dict[int, tuple[str, int | None]] = {}
            posts: list[tuple[int, dict[str, str]]] = []
            targets = [(r["id"], r["twilio_sid"], r["phone_e164"]) for r in rows]
            targets += [(r["id"], new_sid(), phones[0]) for r in early]
            for mid, sid, phone in targets:
                status, code = (("undelivered", 30007) if phone == FILTERED_PHONE else rng.choice(OUTCOMES))
                expected[mid] = (status, code)
                seq = ["queued", "sent", status]
                for word in seq:
                    params = status_params(account_sid=SID, sid=sid, to=phone, from_=firm.number,
                                           status=word, error_code=code)
                    for _ in range(rng.choice((2, 3))):
                        posts.append((mid, params))
                posts.append((mid, status_params(account_sid=SID, sid=sid, to=phone, from_=firm.number, status="sent")))
            rng.shuffle(posts)
            answers: Counter[int] = Counter()
            gate = asyncio.Semaphore(24)

            async def post(session: aiohttp.ClientSession, mid: int, params: dict[str, str]) -> None:
                path = f"/twilio/status?m={mid}"
                headers = {"X-Twilio-Signature": sign(stack.token, stack.web + path, params)}
                async with gate, session.post(path, data=params, headers=headers) as resp:
                    answers[resp.status] += 1

            async with aiohttp.ClientSession(base_url=stack.web) as session:
                await asyncio.gather(*(post(session, mid, p) for mid, p in posts))
            # Replays of everything, once more, after the fact.
            async with aiohttp.ClientSession(base_url=stack.web) as session:
                await asyncio.gather(*(post(session, mid, p) for mid, p in posts[: len(posts) // 3]))

            deadline = asyncio.get_running_loop().time() + 60
            while await conn.fetchval("SELECT count(*) FROM twilio_inbox WHERE processed_at IS NULL"):
                assert asyncio.get_running_loop().time() < deadline, "inbox not drained"
                await asyncio.sleep(0.3)
            final = {r["id"]: (r["status"], r["error_code"], r["twilio_sid"]) for r in await conn.fetch(
                "SELECT id, status, error_code, twilio_sid FROM messages WHERE id = ANY($1::bigint[])", list(expected))}
            wrong = {mid: (final[mid][:2], exp) for mid, exp in expected.items() if final[mid][:2] != exp}
            early_ids = {r["id"] for r in early}
            early_sids_stored = sum(1 for mid in early_ids if final[mid][2] is not None)
            filtered = await conn.fetchrow("SELECT consecutive_filter_failures, blocked FROM phone_flags "
                                           "WHERE phone_e164 = $1", FILTERED_PHONE)
            inbox_rows = await conn.fetchval("SELECT count(*) FROM twilio_inbox WHERE kind = 'status'")
            record("callback_disorder", messages=len(expected), callbacks_posted=sum(answers.values()),
                   answers=dict(answers), inbox_rows=inbox_rows, wrong_final_states=len(wrong),
                   early_callbacks_found_their_message=early_sids_stored,
                   filter_failures_counted=filtered["consecutive_filter_failures"] if filtered else 0,
                   final_states=dict(Counter(s for s, _, _ in final.values())))
            assert set(answers) == {204}, answers
            assert wrong == {}, list(wrong.items())[:5]
            assert early_sids_stored == len(early_ids)
            assert inbox_rows == len({(mid, p["MessageStatus"]) for mid, p in posts}), "one row per (sid, status)"
            assert filtered["consecutive_filter_failures"] == 2 and filtered["blocked"] is False
        finally:
            await conn.close()
