"""The retry rules (outbound/retries.py), without a clock."""

from __future__ import annotations

import random

import pytest

from outbound.retries import decide

SCHEDULE = (5, 300, 1800)


def test_a_2xx_is_delivered():
    assert decide("delivered", 204, 1, SCHEDULE, None).status == "delivered"


def test_a_500_retries_after_the_schedules_delay_with_jitter_and_does_not_slow_the_endpoint():
    d = decide("http_error", 500, 2, SCHEDULE, None, rng=random.Random(1))
    assert d.status == "pending" and 270 <= d.next_in_s <= 330 and not d.slow


@pytest.mark.parametrize("status, outcome", [(429, "http_error"), (502, "http_error"), (504, "http_error"),
                                             (None, "timeout"), (None, "connect_error")])
def test_429_502_504_timeouts_and_refused_connections_slow_the_endpoint(status, outcome):
    assert decide(outcome, status, 1, SCHEDULE, None).slow


def test_retry_after_is_honoured_when_longer_than_the_schedule():
    d = decide("http_error", 429, 1, SCHEDULE, 120.0)
    assert d.next_in_s == 120.0 and d.retry_after_s == 120.0


def test_a_410_disables_and_keeps_the_delivery_pending():
    d = decide("http_error", 410, 1, SCHEDULE, None)
    assert d.disable == "gone" and d.status == "pending"


def test_after_the_last_delay_the_delivery_fails():
    assert decide("http_error", 500, len(SCHEDULE) + 1, SCHEDULE, None).status == "failed"
