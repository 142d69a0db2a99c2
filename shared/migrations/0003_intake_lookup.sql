-- Intake and Lookup (issue 4).

-- When the sweeper last re-enqueued a pending lead's validate job: it re-enqueues a lead
-- at most once per STALE_AFTER_S, so a worker outage does not grow the queue every pass.
ALTER TABLE leads ADD COLUMN requeued_at timestamptz;

-- Every signup with a phone, across firms: Lookup `valid: false` marks the phone invalid
-- everywhere, and a later `valid: true` lifts that mark.
CREATE INDEX leads_phone ON leads (phone_e164) WHERE phone_e164 IS NOT NULL;
