-- Quiet hours in the lead's time zone, and scheduled sends (issue 21).

-- A firm's texting hours (local to the lead, 'HH:MM-HH:MM', '24:00' allowed as the end)
-- and its own zone. Existing firms get the default window; a NULL zone means "the zone of
-- the firm number's area code", worked out when read (so it follows the number).
ALTER TABLE firms
    ADD COLUMN quiet_hours text NOT NULL DEFAULT '08:00-21:00'
        CHECK (quiet_hours ~ '^([01][0-9]|2[0-3]):[0-5][0-9]-(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$'),
    ADD COLUMN timezone text CHECK (timezone IS NULL OR length(timezone) BETWEEN 1 AND 64);

-- What the CRM says about where a signup lives: an IANA zone, a postal code (a US ZIP
-- gives zone and state; any other is kept and ignored for the zone).
ALTER TABLE leads
    ADD COLUMN timezone text CHECK (timezone IS NULL OR length(timezone) BETWEEN 1 AND 64),
    ADD COLUMN postal_code text CHECK (postal_code IS NULL OR length(postal_code) BETWEEN 1 AND 20);

-- Scheduled sends: `scheduled` until the sweeper releases them (`queued`) at send_at;
-- `canceled` by staff or by the lead's reply (cancel_on_reply). validity_period_s is the
-- ValidityPeriod the last Twilio call carried.
ALTER TABLE messages DROP CONSTRAINT messages_status_check;
ALTER TABLE messages ADD CONSTRAINT messages_status_check
    CHECK (status IN ('scheduled', 'canceled', 'queued', 'sending', 'sent', 'delivered',
                      'undelivered', 'failed', 'blocked', 'received'));
ALTER TABLE messages
    ADD COLUMN send_at timestamptz,
    ADD COLUMN cancel_on_reply boolean NOT NULL DEFAULT false,
    ADD COLUMN validity_period_s integer CHECK (validity_period_s IS NULL OR validity_period_s BETWEEN 1 AND 36000),
    ADD CONSTRAINT messages_scheduled_has_send_at CHECK (status <> 'scheduled' OR send_at IS NOT NULL);

-- The sweeper's release of due scheduled sends, and a reply's cancellation of its
-- conversation's cancel_on_reply sends: both small partial indexes.
CREATE INDEX messages_scheduled_due ON messages (send_at) WHERE status = 'scheduled';
CREATE INDEX messages_scheduled_by_conversation ON messages (conversation_id)
    WHERE status = 'scheduled' AND cancel_on_reply;
-- The reply grace: the lead's latest text in a conversation.
CREATE INDEX messages_inbound_latest ON messages (conversation_id, received_at DESC) WHERE direction = 'in';
