-- Retention (the sweeper's prune_inbox and prune_passes): the oldest processed inbox rows
-- and the oldest sweeper passes are found through an index, so each small DELETE batch
-- reads only the rows it removes, and a pass with nothing to prune reads nothing.
--
-- The migration runner applies a file inside one transaction, where CREATE INDEX
-- CONCURRENTLY is not allowed, and a plain build holds off inserts into the table while
-- it runs. On a large twilio_inbox, build the index beforehand, without blocking the
-- webhooks, with the same statement plus CONCURRENTLY; IF NOT EXISTS then skips it here.
CREATE INDEX IF NOT EXISTS twilio_inbox_processed_received
    ON twilio_inbox (received_at) WHERE processed_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS sweeper_passes_started ON sweeper_passes (started_at);
