-- Lead lifecycle: signups the CRM updates and deletes; erasure of a person; offboarding.

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

-- Erasure of a person (GDPR/CCPA) and a firm's offboarding.

-- One row per erasure: who asked, when, the keyed hashes of the phones it covered
-- (HMAC(ERASURE_KEY, firm id || phone), never the phone), and when it was done: its
-- database part and every Twilio message record deleted.
CREATE TABLE erasures (
    id            bigserial PRIMARY KEY,
    firm_id       bigint NOT NULL REFERENCES firms (id),
    requested_by  text NOT NULL,
    requested_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- what to erase until the database part is done; cleared then (it names the person)
    subject_phone text,
    subject_lead  bigint,
    phone_hashes  text[] NOT NULL DEFAULT '{}',
    erased_at     timestamptz,
    done_at       timestamptz,
    CHECK (erased_at IS NULL OR (subject_phone IS NULL AND subject_lead IS NULL))
);
CREATE INDEX erasures_firm ON erasures (firm_id);
CREATE INDEX erasures_running ON erasures (requested_at) WHERE done_at IS NULL;

-- The Twilio message records an erasure deletes (Messages DELETE, retried until done).
-- The sid names no person; kept after it is done so a late callback for an erased
-- message is answered and not stored.
CREATE TABLE erased_messages (
    message_sid   text PRIMARY KEY,
    erasure_id    bigint NOT NULL REFERENCES erasures (id),
    firm_id       bigint NOT NULL REFERENCES firms (id),
    account_sid   text,
    deleted_at    timestamptz,
    attempts      integer NOT NULL DEFAULT 0
);
CREATE INDEX erased_messages_pending ON erased_messages (erasure_id) WHERE deleted_at IS NULL;

-- A phone opted out when its person was erased, by hash: a later signup with that phone
-- is opted out again (intake checks it), with the source the opt-out had.
CREATE TABLE erased_suppressions (
    firm_id     bigint NOT NULL REFERENCES firms (id),
    phone_hash  text NOT NULL CHECK (phone_hash ~ '^erased:[0-9a-f]{64}$'),
    source      text NOT NULL,
    erased_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (firm_id, phone_hash)
);

-- The ledgers stay append-only, with one exception: an erasure (which sets
-- leadsms.erasure = 'on' for its transaction) may replace a row's phone by its hash,
-- and change nothing else. A delete stays forbidden: a firm is never deleted now, it is
-- kept as a tombstone, so no cascade reaches the ledger.
CREATE OR REPLACE FUNCTION forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND coalesce(current_setting('leadsms.erasure', true), '') = 'on'
       AND NEW.phone_e164 ~ '^erased:[0-9a-f]{64}$'
       AND OLD.phone_e164 !~ '^erased:'
       AND (to_jsonb(NEW) - 'phone_e164') = (to_jsonb(OLD) - 'phone_e164') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;

-- A firm offboarded by `leadsms firm delete`: the row stays as the hashed ledger's firm.
ALTER TABLE firms ADD COLUMN deleted_at timestamptz;
ALTER TABLE firms
    ALTER COLUMN api_key_sha256 DROP NOT NULL,
    ALTER COLUMN sms_number DROP NOT NULL,
    ADD CONSTRAINT firms_live_have_key_and_number
        CHECK (deleted_at IS NOT NULL OR (api_key_sha256 IS NOT NULL AND sms_number IS NOT NULL));
