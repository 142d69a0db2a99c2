"""The quiet-hours decision, pure, with an injected clock: no test here reads the real time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from firms.zones import lead_place
from send_pipeline.quiet_hours import MAX_VALIDITY_S, Window, decide

LA = ZoneInfo("America/Los_Angeles")
DEFAULT = Window.parse("08:00-21:00")
GRACE = timedelta(minutes=60)


def at(zone: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone))


def decide_for_place(now: datetime, place, window: Window = DEFAULT, last_inbound=None, grace=GRACE):
    return decide(now, place.zones, window, place.state, last_inbound, grace)


def test_a_lead_in_los_angeles_at_7_30_is_refused_with_the_sentence_and_8_00_its_time_next():
    now = at("America/Los_Angeles", 2026, 6, 1, 7, 30)
    decision = decide(now, ["America/Los_Angeles"], DEFAULT, "CA", None, GRACE)
    assert not decision.allowed
    assert decision.text == ("It's 7:30 AM for this lead (America/Los_Angeles). Texting hours are "
                             "8:00 AM–9:00 PM; you can schedule this message for 8:00 AM.")
    assert decision.next_allowed_at == at("America/Los_Angeles", 2026, 6, 1, 8, 0)
    assert decision.next_allowed_at.astimezone(timezone.utc) == datetime(2026, 6, 1, 15, 0, tzinfo=timezone.utc)


def test_a_lead_in_los_angeles_at_8_00_is_allowed_until_9_pm_its_time():
    now = at("America/Los_Angeles", 2026, 6, 1, 8, 0)
    decision = decide(now, ["America/Los_Angeles"], DEFAULT, "CA", None, GRACE)
    assert decision.allowed and not decision.exempt
    assert decision.closes_at == at("America/Los_Angeles", 2026, 6, 1, 21, 0)
    assert decision.validity_period_s(now) == MAX_VALIDITY_S  # 13 h left, capped at 10 h
    later = at("America/Los_Angeles", 2026, 6, 1, 20, 0)
    assert decide(later, ["America/Los_Angeles"], DEFAULT, "CA", None, GRACE).validity_period_s(later) == 3600


@pytest.mark.parametrize("month", [1, 7])
def test_an_arizona_zip_keeps_no_dst(month):
    place = lead_place(None, "85001", "+16465550100", None, None)
    assert place.zones == ("America/Phoenix",) and place.state == "AZ" and place.source == "postal_code"
    # 8:00 AM in Phoenix is 15:00 UTC in winter and in summer alike.
    opens = decide_for_place(datetime(2026, month, 15, 14, 59, tzinfo=timezone.utc), place)
    assert not opens.allowed
    assert opens.next_allowed_at.astimezone(timezone.utc) == datetime(2026, month, 15, 15, 0, tzinfo=timezone.utc)
    assert decide_for_place(datetime(2026, month, 15, 15, 0, tzinfo=timezone.utc), place).allowed


def test_a_florida_zip_closes_at_8_pm():
    place = lead_place(None, "33101", "+12125550100", None, None)
    assert place.state == "FL" and place.zones == ("America/New_York",)
    before = decide_for_place(at("America/New_York", 2026, 6, 1, 19, 59), place)
    assert before.allowed and before.closes_at == at("America/New_York", 2026, 6, 1, 20, 0)
    after = decide_for_place(at("America/New_York", 2026, 6, 1, 20, 0), place)
    assert not after.allowed
    assert "Texting hours are 8:00 AM–8:00 PM" in after.text
    assert after.next_allowed_at == at("America/New_York", 2026, 6, 2, 8, 0)


def test_an_area_code_spanning_two_zones_uses_their_overlap():
    place = lead_place(None, None, "+16055550100", None, None)  # South Dakota: Mountain and Central
    assert set(place.zones) == {"America/Denver", "America/North_Dakota/Center"}
    # 8:30 AM Central is 7:30 AM Mountain: closed in one of its zones, so closed.
    early = decide_for_place(at("America/Chicago", 2026, 6, 1, 8, 30), place)
    assert not early.allowed
    assert early.next_allowed_at == at("America/Denver", 2026, 6, 1, 8, 0)
    # 8:30 PM Mountain is 9:30 PM Central: closed too; the overlap ends at 9 PM Central.
    assert decide_for_place(at("America/Denver", 2026, 6, 1, 20, 30), place).allowed is False
    noon = decide_for_place(at("America/Denver", 2026, 6, 1, 12, 0), place)
    assert noon.allowed and noon.closes_at == at("America/Chicago", 2026, 6, 1, 21, 0)


def test_a_reply_10_minutes_after_the_leads_text_at_22_00_is_allowed_for_at_most_an_hour():
    texted = at("America/Los_Angeles", 2026, 6, 1, 22, 0)
    now = texted + timedelta(minutes=10)
    decision = decide(now, ["America/Los_Angeles"], DEFAULT, "CA", texted, GRACE)
    assert decision.allowed and decision.exempt
    assert decision.validity_period_s(now) == 3600
    # ...but not without the grace (a scheduled send), nor 61 minutes later.
    assert not decide(now, ["America/Los_Angeles"], DEFAULT, "CA", texted, None).allowed
    assert not decide(texted + timedelta(minutes=61), ["America/Los_Angeles"], DEFAULT, "CA", texted, GRACE).allowed


def test_dst_transition_days_give_the_right_local_hour():
    # Spring forward (2026-03-08): 8:00 AM PDT is 15:00 UTC, the day before 8:00 AM PST was 16:00 UTC.
    assert decide(datetime(2026, 3, 8, 15, 0, tzinfo=timezone.utc), ["America/Los_Angeles"], DEFAULT, None, None, None).allowed
    assert not decide(datetime(2026, 3, 7, 15, 30, tzinfo=timezone.utc), ["America/Los_Angeles"], DEFAULT, None, None, None).allowed
    # Fall back (2026-11-01): at 15:30 UTC it is 7:30 AM PST, so closed, opening at 16:00 UTC.
    fall = decide(datetime(2026, 11, 1, 15, 30, tzinfo=timezone.utc), ["America/Los_Angeles"], DEFAULT, None, None, None)
    assert not fall.allowed and fall.text.startswith("It's 7:30 AM for this lead")
    assert fall.next_allowed_at.astimezone(timezone.utc) == datetime(2026, 11, 1, 16, 0, tzinfo=timezone.utc)
    # The night spanning the change: 9 PM PDT on Oct 31 to 8 AM PST on Nov 1.
    night = decide(at("America/Los_Angeles", 2026, 10, 31, 21, 0), ["America/Los_Angeles"], DEFAULT, None, None, None)
    assert night.next_allowed_at.astimezone(timezone.utc) == datetime(2026, 11, 1, 16, 0, tzinfo=timezone.utc)


def test_a_half_hour_zone_opens_on_its_own_half_hour():
    # St. John's is UTC-2:30 in summer: 8:00 AM there is 10:30 UTC.
    before = decide(datetime(2026, 6, 1, 10, 29, tzinfo=timezone.utc), ["America/St_Johns"], DEFAULT, None, None, None)
    assert not before.allowed and before.text.startswith("It's 7:59 AM for this lead (America/St_Johns)")
    assert before.next_allowed_at.astimezone(timezone.utc) == datetime(2026, 6, 1, 10, 30, tzinfo=timezone.utc)
    # Kolkata (UTC+5:30, no DST): 9:00 PM there is 15:30 UTC.
    assert decide(datetime(2026, 1, 1, 15, 29, tzinfo=timezone.utc), ["Asia/Kolkata"], DEFAULT, None, None, None).allowed
    assert not decide(datetime(2026, 1, 1, 15, 30, tzinfo=timezone.utc), ["Asia/Kolkata"], DEFAULT, None, None, None).allowed


def test_a_window_ending_at_24_00_is_open_until_midnight_and_00_00_24_00_never_closes():
    late = Window.parse("10:00-24:00")
    now = at("America/Chicago", 2026, 6, 1, 23, 59)
    decision = decide(now, ["America/Chicago"], late, None, None, None)
    assert decision.allowed and decision.closes_at == at("America/Chicago", 2026, 6, 2, 0, 0)
    assert decision.validity_period_s(now) == 60
    closed = decide(at("America/Chicago", 2026, 6, 2, 0, 0), ["America/Chicago"], late, None, None, None)
    assert not closed.allowed and "Texting hours are 10:00 AM–12:00 AM" in closed.text
    always = decide(at("America/Chicago", 2026, 6, 2, 3, 0), ["America/Chicago"], Window.parse("00:00-24:00"), None, None, None)
    assert always.allowed and always.closes_at is None and always.validity_period_s(now) == MAX_VALIDITY_S


def test_the_leads_zone_comes_from_timezone_then_zip_then_area_code_then_the_firm():
    assert lead_place("America/Chicago", "85001", "+12135550100", None, None).zones == ("America/Chicago",)
    assert lead_place(None, "85001", "+12135550100", None, None).zones == ("America/Phoenix",)
    uk = lead_place(None, "SW1A 1AA", "+12135550100", None, None)  # not a US ZIP: ignored for the zone
    assert uk.zones == ("America/Los_Angeles",) and uk.source == "phone"
    assert lead_place(None, None, "+442079460000", "Europe/London", "+16465550100").zones == ("Europe/London",)
    assert lead_place(None, None, None, None, "+12135550100").zones == ("America/Los_Angeles",)


@pytest.mark.parametrize("text", ["8:00-21:00", "21:00-08:00", "08:00-24:01", "24:00-24:00", "08:00", "08:60-09:00"])
def test_malformed_texting_hours_are_refused(text):
    with pytest.raises(ValueError):
        Window.parse(text)
