-- Lead lifecycle (issue 18): signups the CRM updates and deletes.

-- Every phone a signup ever had, kept after the signup changes its phone or is deleted:
-- an erasure of the person covers all of them. Written by a trigger, so the hook, an
-- update and the import cannot forget it. No foreign key to leads on purpose: the row
-- outlives its signup (the erasure removes it).
CREATE TABLE lead_phones (
    firm_id     bigint NOT NULL REFERENCES firms (id) ON DELETE CASCADE,
    lead_id     bigint NOT NULL,
    phone_e164  text NOT NULL CHECK (phone_e164 ~ '^\+[1-9][0-9]{6,14}$'),
    first_seen_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (firm_id, lead_id, phone_e164)
);
CREATE INDEX lead_phones_by_phone ON lead_phones (firm_id, phone_e164);

CREATE FUNCTION remember_lead_phone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.phone_e164 IS NOT NULL THEN
        INSERT INTO lead_phones (firm_id, lead_id, phone_e164)
        VALUES (NEW.firm_id, NEW.id, NEW.phone_e164)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER leads_remember_phone AFTER INSERT OR UPDATE OF phone_e164 ON leads
    FOR EACH ROW EXECUTE FUNCTION remember_lead_phone();

INSERT INTO lead_phones (firm_id, lead_id, phone_e164)
SELECT firm_id, id, phone_e164 FROM leads WHERE phone_e164 IS NOT NULL
ON CONFLICT DO NOTHING;

-- The foreign keys a delete walks (a signup, a firm) are indexed, so a delete does not
-- scan the referencing table. (The runner applies a file in one transaction, where
-- CREATE INDEX CONCURRENTLY cannot run.)
CREATE INDEX IF NOT EXISTS conversations_lead ON conversations (lead_id) WHERE lead_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_firm ON messages (firm_id);
CREATE INDEX IF NOT EXISTS consent_events_firm ON consent_events (firm_id);
CREATE INDEX IF NOT EXISTS phone_flag_events_firm ON phone_flag_events (firm_id);
CREATE INDEX IF NOT EXISTS optout_removals_firm ON optout_removals (firm_id);
CREATE INDEX IF NOT EXISTS help_replies_firm ON help_replies (firm_id);
CREATE INDEX IF NOT EXISTS twilio_inbox_message ON twilio_inbox (message_id) WHERE message_id IS NOT NULL;
