"""The status and error-code table: pure, no database."""

from webhooks.status_codes import advances, effect_of, our_status


def test_twilio_statuses_map_to_ours_and_only_move_forward():
    assert [our_status(s) for s in ("queued", "accepted", "sending", "sent", "delivered", "read",
                                    "undelivered", "partially_delivered", "failed", "canceled", "bogus")] == [
        "sent", "sent", "sent", "sent", "delivered", "delivered",
        "undelivered", "undelivered", "failed", "failed", None]
    assert advances("sending", "sent") and advances("sent", "delivered") and advances("queued", "undelivered")
    assert not advances("delivered", "sent")
    assert not advances("delivered", "undelivered")
    assert not advances("blocked", "delivered")


def test_error_code_table_says_what_each_code_does():
    assert effect_of(30007, "undelivered").filter_failure
    assert effect_of(30003, "failed").filter_failure
    assert effect_of(30008, "undelivered").filter_failure
    assert effect_of(30004, "failed").filter_failure
    assert effect_of(30006, "undelivered").filter_failure and effect_of(30006, "undelivered").refresh_line_type
    assert effect_of(30005, "undelivered").invalid_reason and effect_of(21211, "failed").invalid_reason
    assert effect_of(21610, "failed").opt_out
    assert not effect_of(30007, "delivered").filter_failure
    assert not effect_of(12345, "failed").filter_failure
