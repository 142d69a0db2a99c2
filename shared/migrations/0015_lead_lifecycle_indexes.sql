-- leadsms: no-transaction
-- The foreign keys a delete walks (a signup, a firm's offboarding) are indexed, so a
-- delete does not scan the referencing table. messages is the biggest table: built
-- CONCURRENTLY, without locking out writes; each pair is safe to re-run.
DROP INDEX CONCURRENTLY IF EXISTS conversations_lead;
CREATE INDEX CONCURRENTLY conversations_lead ON conversations (lead_id) WHERE lead_id IS NOT NULL;
DROP INDEX CONCURRENTLY IF EXISTS messages_firm;
CREATE INDEX CONCURRENTLY messages_firm ON messages (firm_id);
DROP INDEX CONCURRENTLY IF EXISTS consent_events_firm;
CREATE INDEX CONCURRENTLY consent_events_firm ON consent_events (firm_id);
DROP INDEX CONCURRENTLY IF EXISTS phone_flag_events_firm;
CREATE INDEX CONCURRENTLY phone_flag_events_firm ON phone_flag_events (firm_id);
DROP INDEX CONCURRENTLY IF EXISTS optout_removals_firm;
CREATE INDEX CONCURRENTLY optout_removals_firm ON optout_removals (firm_id);
DROP INDEX CONCURRENTLY IF EXISTS help_replies_firm;
CREATE INDEX CONCURRENTLY help_replies_firm ON help_replies (firm_id);
DROP INDEX CONCURRENTLY IF EXISTS twilio_inbox_message;
CREATE INDEX CONCURRENTLY twilio_inbox_message ON twilio_inbox (message_id) WHERE message_id IS NOT NULL;
