-- leadsms: no-transaction
-- Retention (the sweeper's prune_inbox and prune_passes): the oldest processed inbox rows
-- and the oldest sweeper passes are found through an index, so each small DELETE batch
-- reads only the rows it removes, and a pass with nothing to prune reads nothing.
--
-- Built CONCURRENTLY (outside a transaction: the marker on the first line) so a large
-- twilio_inbox keeps taking webhooks while it builds.
CREATE INDEX CONCURRENTLY IF NOT EXISTS twilio_inbox_processed_received
    ON twilio_inbox (received_at) WHERE processed_at IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS sweeper_passes_started ON sweeper_passes (started_at);
