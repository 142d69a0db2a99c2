"""A batch of status callbacks ends where applying them one by one ends.

Two identical worlds (two firms each, the same messages, the same callbacks in the same
arrival order, replays and reordered statuses included): one is applied a callback at a
time (`service.apply_status`, each its own transaction), the other as one
`apply_status_batch` over both firms. Messages, flags, the block audit, the inbox outcomes
and what the change feed last says of each message must match.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from devtools.twilio_sim.signing import status_params
from tests.webhooks.support import add_outbound
from webhooks import inbox, service, status_batch

P1, P2, P3 = "+16465558101", "+16465558102", "+16465558103"

# (message index, Twilio status, error code): the arrival order. Messages (index: firm, phone,
# status at start, sid stored): see _world.
ARRIVALS: list[tuple[int, str, int | None]] = [
    (2, "undelivered", 30007),   # P1 at firm 0: the third message's failure first
    (0, "sent", None),
    (5, "delivered", None),      # delivered before its sent
    (1, "undelivered", 30007),
    (3, "undelivered", 30007),   # P1 at firm 1: one failure ...
    (0, "undelivered", 30007),   # ... the third of firm 0's: blocked
    (2, "undelivered", 30007),   # replay
    (5, "sent", None),           # late sent: never moves delivered back
    (4, "delivered", None),      # ... then firm 1's reset
    (6, "failed", 30008),
    (9, "sent", None),           # no sid stored yet: found by ?m=
    (7, "undelivered", 30003),
    (5, "delivered", None),      # replay
    (9, "delivered", None),
    (6, "undelivered", 30007),   # a second final status: recorded, not counted
    (8, "sent", None),
    (-1, "delivered", None),     # no message of ours
    (0, "undelivered", 30007),   # replay after the block
]


async def _world(pool: Any, make_firm, tag: str) -> dict[str, Any]:
    firms = [await make_firm(f"Batch {tag} {k}") for k in range(2)]
    spec = [(0, P1, "sent"), (0, P1, "sent"), (0, P1, "sent"),  # 0-2: three filtered
            (1, P1, "sent"), (1, P1, "sent"),                   # 3-4: the same phone at the other firm
            (0, P2, "sent"),                                    # 5: delivered, sent late
            (1, P3, "sent"), (1, P3, "sent"), (1, P3, "sent"),  # 6-8
            (0, P3, "sending")]                                 # 9: sid not stored yet
    messages = []
    for i, (f, phone, status) in enumerate(spec):
        sid = f"SMeq{tag}{i}"
        mid = await add_outbound(pool, firms[f].id, phone, status=status, sid=None if status == "sending" else sid)
        messages.append({"id": mid, "sid": sid, "firm": firms[f], "phone": phone})
    return {"firms": firms, "messages": messages}


async def _store(deps: Any, world: dict[str, Any], tag: str) -> list[int]:
    ids = []
    for n, (i, status, code) in enumerate(ARRIVALS):
        m = world["messages"][i] if i >= 0 else {"id": None, "sid": f"SMeq{tag}nobody", "firm": world["firms"][0],
                                                "phone": P1}
        params = status_params(account_sid=deps.settings.twilio_account_sid, sid=m["sid"], to=m["phone"],
                               from_=m["firm"].number, status=status, error_code=code)
        stored = await inbox.store_webhook(deps, "status", params, m["id"])
        ids.append(stored.inbox_id)
    return ids


async def _state(pool: Any, world: dict[str, Any], inbox_ids: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {"messages": [], "flags": {}, "audit": {}, "feed": []}
    for m in world["messages"]:
        row = await pool.fetchrow("SELECT status, twilio_status, twilio_sid, error_code, error_message, from_number "
                                  "FROM messages WHERE id = $1", m["id"])
        out["messages"].append((row["status"], row["twilio_status"], row["twilio_sid"] == m["sid"],
                                row["error_code"], row["error_message"], row["from_number"] == m["firm"].number))
        last = await pool.fetchval("SELECT data::text FROM events WHERE type = 'message.status' "
                                   "AND (data->>'id')::bigint = $1 ORDER BY id DESC LIMIT 1", m["id"])
        data = json.loads(last) if last else {}
        out["feed"].append((data.get("status"), data.get("twilio_status"), data.get("error_code")))
    for k, f in enumerate(world["firms"]):
        for phone in (P1, P2, P3):
            row = await pool.fetchrow("SELECT consecutive_filter_failures, blocked, blocked_reason FROM phone_flags "
                                      "WHERE firm_id = $1 AND phone_e164 = $2", f.id, phone)
            out["flags"][(k, phone)] = tuple(row) if row else None
            kinds = await pool.fetch("SELECT kind, actor FROM phone_flag_events WHERE firm_id = $1 AND phone_e164 = $2",
                                     f.id, phone)
            out["audit"][(k, phone)] = Counter((r["kind"], r["actor"]) for r in kinds)
    order = list(dict.fromkeys(inbox_ids))
    outcomes = {r["id"]: r["outcome"] for r in await pool.fetch(
        "SELECT id, outcome FROM twilio_inbox WHERE id = ANY($1::bigint[]) AND processed_at IS NOT NULL", order)}
    out["outcomes"] = [outcomes.get(i) for i in order]
    return out


async def test_a_batch_of_replays_reorders_and_30007s_across_firms_ends_as_one_by_one_application(
        deps, pool, make_firm):
    one_world, batch_world = await _world(pool, make_firm, "a"), await _world(pool, make_firm, "b")
    one_ids, batch_ids = await _store(deps, one_world, "a"), await _store(deps, batch_world, "b")

    for inbox_id in one_ids:
        await service.apply_status(deps, inbox_id)
    outcomes = await status_batch.apply_status_batch(deps, batch_ids)

    one, batch = await _state(pool, one_world, one_ids), await _state(pool, batch_world, batch_ids)
    assert set(outcomes) == set(batch_ids)
    assert batch == one
    # and that state is the one the rules ask for
    assert one["flags"][(0, P1)] == (3, True, "carrier_filtered: 3 consecutive failures, last error 30007")
    assert one["flags"][(1, P1)] == (0, False, None)
    assert one["audit"][(1, P1)] == Counter({("filter_failure", None): 1, ("filter_reset", None): 1})
    assert one["flags"][(1, P3)] == (2, False, None)
    assert one["messages"][5][:2] == ("delivered", "sent")  # the late `sent` is Twilio's latest word only
    assert one["messages"][6][:4] == ("failed", "undelivered", True, 30008)
    assert one["messages"][9][:3] == ("delivered", "delivered", True)
    assert one["outcomes"].count("unmatched") == 1


async def test_a_batch_counts_filter_failures_in_the_order_the_messages_were_sent(deps, pool, make_firm):
    """fail, fail, delivered, fail (by creation) arriving backwards: the delivery resets the
    two before it, so the phone ends with one failure and no block, as in creation order."""
    firm = await make_firm("Creation order")
    ids = [await add_outbound(pool, firm.id, P1, status="sent", sid=f"SMco{i}") for i in range(4)]
    outcomes = [("undelivered", 30007), ("undelivered", 30007), ("delivered", None), ("undelivered", 30007)]
    stored = []
    for i in reversed(range(4)):
        params = status_params(account_sid=deps.settings.twilio_account_sid, sid=f"SMco{i}", to=P1,
                               from_=firm.number, status=outcomes[i][0], error_code=outcomes[i][1])
        stored.append((await inbox.store_webhook(deps, "status", params, ids[i])).inbox_id)

    await status_batch.apply_status_batch(deps, stored)

    flags = await pool.fetchrow("SELECT consecutive_filter_failures, blocked FROM phone_flags "
                                "WHERE firm_id = $1 AND phone_e164 = $2", firm.id, P1)
    assert tuple(flags) == (1, False)
    audit = await pool.fetch("SELECT kind, message_id FROM phone_flag_events WHERE firm_id = $1 ORDER BY id", firm.id)
    assert [(r["kind"], r["message_id"]) for r in audit] == [
        ("filter_failure", ids[0]), ("filter_failure", ids[1]), ("filter_reset", ids[2]), ("filter_failure", ids[3])]
