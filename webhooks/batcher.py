"""Group commit of status callbacks: many requests, one INSERT, one COMMIT, one enqueue.

Per request, storing a callback was a pool acquire, the account check's query, BEGIN,
INSERT, COMMIT and a Redis round trip: most of the web's CPU per callback. Here the
requests that arrive while a batch is being written wait (a few ms at most) and go
together in the next one: in one transaction, one query for who owns what each names
(and whether a message named by none of ours was erased), then one `INSERT ... SELECT
FROM unnest(...) ON CONFLICT DO NOTHING` of those its account may send; then one
pipelined enqueue of their jobs. Durability is unchanged: a request is answered only
once its batch has committed (and its job's enqueue was tried), so nothing is
acknowledged to Twilio before it is in PostgreSQL.

Failure answers are today's: PostgreSQL unreachable fails every request of the batch with
that error (the route answers 503 to each); a broker failure after the commit is logged
and every request still gets its 2xx (the sweeper re-enqueues); any other error of a
batch (one poisonous row) retries its requests one by one, so each gets its own answer.

Only status callbacks come here. Inbound texts keep the per-request path: a consent
keyword must change in the same transaction as its inbox row.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Mapping

import asyncpg
import structlog

from shared.deps import Deps
from shared.errors import HttpError
from webhooks import accounts, dispatch, inbox, queries

log = structlog.get_logger(__name__)

# Rows per INSERT. Under load a batch holds what arrived during the previous write.
MAX_BATCH = 200
# Batches in flight at once: while one waits for its COMMIT the next is being written, so a
# slow commit (a busy PostgreSQL) does not stall every request behind it. Two, not more:
# each writer more splits a burst into smaller batches, and every batch costs its round
# trips, its commit and its job (`leadsms bench callbacks`, four pairs back to back: 6
# writers 844-976/s and 1.68-1.90 ms CPU per callback, 2 writers 1,098-1,226/s and
# 1.30-1.47 ms, with a lower p99 answer too).
MAX_WRITERS = 2
# Errors that mean "PostgreSQL is not reachable": every request of the batch gets them.
UNAVAILABLE = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


@dataclass
class _Waiting:
    params: dict[str, str]
    message_id: int | None
    sid: str
    twilio_status: str
    future: asyncio.Future = field(repr=False)


class StatusBatcher:
    """One per web app (and event loop). `store` checks the callback's account (the 403
    of `accounts.signer_owns`), stores it like `inbox.store_webhook` for kind `status`
    and enqueues its job: the Stored row once committed and its job sent, or None for a
    callback of an erased message (answered, never stored)."""

    def __init__(self, max_batch: int = MAX_BATCH, max_writers: int = MAX_WRITERS) -> None:
        self.max_batch = max_batch
        self.max_writers = max_writers
        self._waiting: list[_Waiting] = []
        self._writers: set[asyncio.Task] = set()
        self._deps: Deps | None = None

    async def store(self, deps: Deps, params: Mapping[str, str], message_id: int | None) -> inbox.Stored | None:
        loop = asyncio.get_running_loop()
        item = _Waiting(dict(params), message_id, params["MessageSid"], inbox.twilio_status_of("status", params),
                        loop.create_future())
        self._deps = deps
        self._waiting.append(item)
        if len(self._writers) < self.max_writers:
            # Started as a task: it runs after the callbacks already ready in this loop
            # tick, so the requests that arrived together go in one batch.
            writer = loop.create_task(self._write_all())
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)  # also when cancelled before it ran
        return await item.future

    async def _write_all(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:self.max_batch], self._waiting[self.max_batch:]
                assert self._deps is not None
                try:
                    await self._write(self._deps, batch)
                except Exception as exc:  # never leave a request waiting forever
                    log.error("webhook_batch_crashed", rows=len(batch), error=f"{type(exc).__name__}: {exc}")
                    _fail(batch, exc)
        finally:
            # Leave the writer count in the same step that found nothing waiting: a done
            # callback runs a loop tick later, and a request stored in between would see
            # every writer slot taken, start none, and wait for ever.
            self._writers.discard(asyncio.current_task())  # type: ignore[arg-type]

    async def _write(self, deps: Deps, batch: list[_Waiting]) -> None:
        try:
            stored = await _insert(deps, batch)
        except UNAVAILABLE as exc:
            _fail(batch, exc)
            return
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch, exc)
                return
            log.warning("webhook_batch_failed", rows=len(batch), error=f"{type(exc).__name__}: {exc}")
            stored = await _one_by_one(deps, batch)
        pending = sorted({s.inbox_id for s in stored if isinstance(s, inbox.Stored) and s.pending})
        await dispatch.enqueue_many_quietly("status", pending)
        for item, result in zip(batch, stored):
            if item.future.done():  # the client went away meanwhile
                continue
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)


def _fail(batch: list[_Waiting], exc: BaseException) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(exc)


async def _insert(deps: Deps, batch: list[_Waiting]) -> list[inbox.Stored | None | HttpError]:
    """One transaction for the batch; per request, in order: its Stored row, None for a
    callback of an erased message (answered, never stored), or the 403 of a callback its
    signing account may not send (nothing stored)."""
    main = deps.settings.twilio_account_sid
    async with deps.pool.acquire(timeout=inbox.ACQUIRE_TIMEOUT_S) as conn:
        async with conn.transaction():
            owners = await queries.status_callback_owners(conn, [w.message_id for w in batch], [w.sid for w in batch])
            verdicts: list[inbox.Stored | None | HttpError | bool] = []
            for w, owner in zip(batch, owners):
                try:
                    ours = accounts.signer_owns(main, w.params, owner["ours"], owner["twilio_account_sid"])
                except HttpError as refused:
                    verdicts.append(refused)
                    continue
                # An erased message has no row left, so only a callback naming none of
                # ours can be for one (one erased meanwhile is dropped by its job).
                verdicts.append(None if not ours and owner["erased"] else True)
            keep = [w for w, v in zip(batch, verdicts) if v is True]
            inserted = await queries.insert_status_batch(
                conn, [w.sid for w in keep], [w.twilio_status for w in keep], [w.message_id for w in keep],
                [json.dumps(w.params) for w in keep]) if keep else []
            new = {(r["message_sid"], r["twilio_status"]): r["id"] for r in inserted}
            existing = {}
            if len(inserted) < len(keep):
                missing = [(w.sid, w.twilio_status) for w in keep if (w.sid, w.twilio_status) not in new]
                rows = await queries.find_inbox_batch(conn, "status", [m[0] for m in missing], [m[1] for m in missing])
                existing = {(r["message_sid"], r["twilio_status"]): r for r in rows}
    out: list[inbox.Stored | None | HttpError] = []
    for w, verdict in zip(batch, verdicts):
        if verdict is not True:
            if verdict is None:
                log.info("webhook_for_erased_message_dropped", message_sid=w.sid)
            out.append(verdict)
            continue
        key = (w.sid, w.twilio_status)
        if key in new:
            # The first request of a pair is the one that created the row; a twin in the
            # same batch is a replay of it.
            out.append(inbox.Stored(new.pop(key), created=True, pending=True))
            existing[key] = {"id": out[-1].inbox_id, "processed_at": None}
            log.debug("webhook_stored", kind="status", message_sid=w.sid, inbox_id=out[-1].inbox_id,
                      twilio_status=w.twilio_status)
        else:
            row = existing[key]
            out.append(inbox.Stored(row["id"], created=False, pending=row["processed_at"] is None))
            log.info("webhook_replayed", kind="status", message_sid=w.sid, inbox_id=row["id"])
    created = sum(1 for s in out if isinstance(s, inbox.Stored) and s.created)
    log.info("webhook_batch_stored", kind="status", rows=len(batch), created=created)
    return out


async def _one_by_one(deps: Deps, batch: list[_Waiting]) -> list[inbox.Stored | None | BaseException]:
    """For a batch that failed as a whole: each request in a batch of its own, so each gets
    its own answer (the poisonous one its error)."""
    out: list[inbox.Stored | None | BaseException] = []
    for w in batch:
        try:
            out.extend(await _insert(deps, [w]))
        except Exception as exc:
            out.append(exc)
    return out
