-- The inbox replay marks what it re-enqueued (as leads and messages are marked), so an
-- unprocessed row is re-enqueued at most once per STALE_AFTER_S, and the rows re-enqueued
-- least recently go first: newer lost rows are reached instead of starving behind the
-- same oldest batch. A nullable column without a default: no table rewrite.
ALTER TABLE twilio_inbox ADD COLUMN IF NOT EXISTS requeued_at timestamptz;
