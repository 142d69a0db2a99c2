-- Operations (issue 9): indexes that keep a `/metrics` scrape and the `/ops` page cheap.
--
-- A scrape runs a handful of counts every 15 s or so from every Prometheus; each one
-- here is an index-only scan of a small or partial index instead of a heap scan.

-- messages by status (GROUP BY status): index-only scan of a narrow index
CREATE INDEX IF NOT EXISTS messages_status ON messages (status);
-- messages carrying a Twilio error code, by code and status: errors are a small minority
CREATE INDEX IF NOT EXISTS messages_error_codes
    ON messages (error_code, status) WHERE error_code IS NOT NULL;
-- the ops page's recent failures, newest first
CREATE INDEX IF NOT EXISTS messages_recent_failures
    ON messages (updated_at DESC, id DESC) WHERE status IN ('failed', 'undelivered');
-- phones blocked / opted out / awaiting review now
CREATE INDEX IF NOT EXISTS phone_flags_blocked ON phone_flags (firm_id) WHERE blocked;
CREATE INDEX IF NOT EXISTS phone_flags_opted_out ON phone_flags (firm_id) WHERE opted_out;
CREATE INDEX IF NOT EXISTS phone_flags_review_pending ON phone_flags (firm_id) WHERE review_pending;
-- consent changes and auto-blocks ever made (append-only tables, so counts are counters)
CREATE INDEX IF NOT EXISTS consent_events_kind ON consent_events (kind);
CREATE INDEX IF NOT EXISTS phone_flag_events_blocked ON phone_flag_events (at) WHERE kind = 'blocked';
