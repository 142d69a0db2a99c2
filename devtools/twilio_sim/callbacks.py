"""Status callbacks: after a create, `sent` and then the scenario's outcome, as Twilio does.

Each message gets one background task that sleeps `callback_delay_s`, moves the message
to `sent`, sleeps again and moves it to its outcome, POSTing a signed callback at each
step when callbacks are enabled and the message has a StatusCallback. The steps are
sequential, so `sent` is always answered before the outcome is posted. Statuses move on
even with callbacks off, so the Messages list still shows what Twilio would.
"""

from __future__ import annotations

import asyncio

import structlog

from devtools.twilio_sim.scenarios import Scenario
from devtools.twilio_sim.signing import post_signed, status_params
from devtools.twilio_sim.state import SimState
from devtools.twilio_sim.store import SimMessage, now

log = structlog.get_logger(__name__)

LOG_EVERY_NTH_FAILURE = 1000

ERROR_MESSAGES = {
    30003: "Unreachable destination handset",
    30007: "Message filtered",
}


async def progress_message(state: SimState, message: SimMessage, scenario: Scenario) -> None:
    await asyncio.sleep(state.config.callback_delay_s)
    message.from_shown = True  # a Messaging Service has picked its sender by now
    message.set_status("sent")
    await notify(state, message)
    await asyncio.sleep(state.config.callback_delay_s)
    message.set_status(scenario.outcome, scenario.outcome_error)
    if scenario.outcome_error is not None:
        message.error_message = ERROR_MESSAGES.get(scenario.outcome_error)
    await notify(state, message)


async def notify(state: SimState, message: SimMessage) -> None:
    config = state.config
    if not config.callbacks_enabled or not message.status_callback or state.session is None:
        return
    params = status_params(
        account_sid=message.account_sid, sid=message.sid, to=message.to, from_=message.from_,
        status=message.status, error_code=message.error_code,
        messaging_service_sid=message.messaging_service_sid,
        done_date=message.date_updated if message.status in ("delivered", "undelivered") else None,
    )
    account = state.accounts.by_sid.get(message.account_sid)
    token = account.auth_token if account is not None else config.auth_token
    answer = await post_signed(state.session, message.status_callback, params, token,
                               timeout=config.callback_timeout_s)
    state.store.add_callback({
        "kind": "status",
        "url": message.status_callback,
        "message_sid": message.sid,
        "message_status": message.status,
        "params": params,
        "answer_status": answer.status,
        "error": answer.error,
        "at": now().isoformat(),
    })
    if answer.status is None or answer.status >= 400:
        counters = state.store.counters
        counters["status_posts_failed"] += 1
        failures = counters["status_posts_failed"]
        if failures == 1 or failures % LOG_EVERY_NTH_FAILURE == 0:  # a dead webhook must not flood the log
            log.info("sim_status_callback_failed", message_sid=message.sid, status=message.status,
                     answer_status=answer.status, error=answer.error, failures_so_far=failures)
