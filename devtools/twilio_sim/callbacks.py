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
    """`sent`, then the outcome. With `callback_reorder_rate`, the outcome's callback is
    posted before `sent`'s (Twilio does not promise order); with
    `callback_duplicate_rate`, a callback is posted twice (Twilio retries)."""
    config = state.config
    reorder = config.callback_reorder_rate > 0 and state.rng.random() < config.callback_reorder_rate
    await asyncio.sleep(config.callback_delay_s)
    message.from_shown = True  # a Messaging Service has picked its sender by now
    message.set_status("sent")
    sent_params = status_callback_params(message)
    if not reorder:
        await notify(state, message, sent_params)
    await asyncio.sleep(config.callback_delay_s)
    message.set_status(scenario.outcome, scenario.outcome_error)
    if scenario.outcome_error is not None:
        message.error_message = ERROR_MESSAGES.get(scenario.outcome_error)
    await notify(state, message, status_callback_params(message))
    if reorder:
        await notify(state, message, sent_params)


def status_callback_params(message: SimMessage) -> dict[str, str]:
    return status_params(
        account_sid=message.account_sid, sid=message.sid, to=message.to, from_=message.from_,
        status=message.status, error_code=message.error_code,
        messaging_service_sid=message.messaging_service_sid,
        done_date=message.date_updated if message.status in ("delivered", "undelivered") else None,
    )


async def notify(state: SimState, message: SimMessage, params: dict[str, str]) -> None:
    config = state.config
    if not config.callbacks_enabled or not message.status_callback or state.session is None:
        return
    times = 2 if config.callback_duplicate_rate > 0 and state.rng.random() < config.callback_duplicate_rate else 1
    for _ in range(times):
        await _post_status(state, message, params)


async def _post_status(state: SimState, message: SimMessage, params: dict[str, str]) -> None:
    config = state.config
    account = state.accounts.by_sid.get(message.account_sid)
    token = account.auth_token if account is not None else config.auth_token
    answer = await post_signed(state.session, message.status_callback, params, token,
                               timeout=config.callback_timeout_s)
    state.store.add_callback({
        "kind": "status",
        "url": message.status_callback,
        "message_sid": message.sid,
        "message_status": params["MessageStatus"],
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
