-- Portal picker and conversation list indexes (issue 7).
--
-- The picker matches name, email or phone digits of any signup, as a prefix or a substring.
-- Prefixes use per-firm btree indexes (text_pattern_ops: byte-wise order, so a prefix is a
-- range); substrings use trigram GIN indexes when pg_trgm is available. Some PostgreSQL
-- builds (the embedded fallback server) ship without pg_trgm: there the migration still
-- succeeds and the picker's substring match still works (plain LIKE, over a bounded scan).
--
-- Phone digits are `substr(phone_e164, 2)`: E.164 is '+' then digits (CHECKed in 0001), so
-- no extra column is needed and nothing has to keep one in step.

CREATE INDEX IF NOT EXISTS leads_firm_name_prefix
    ON leads (firm_id, lower(name) text_pattern_ops);
CREATE INDEX IF NOT EXISTS leads_firm_email_prefix
    ON leads (firm_id, lower(email) text_pattern_ops);
CREATE INDEX IF NOT EXISTS leads_firm_digits_prefix
    ON leads (firm_id, substr(phone_e164, 2) text_pattern_ops)
    WHERE phone_e164 IS NOT NULL;
-- The firm's newest signups: the picker scans them first for substring matches (and only
-- them for a q too short for a trigram). INCLUDE makes that an index-only scan, fast
-- whatever the heap order. Intake caps name (200) and email (320 characters), well
-- under btree's ~2.7 kB per entry.
CREATE INDEX IF NOT EXISTS leads_firm_recent
    ON leads (firm_id, signed_up_at DESC, id DESC) INCLUDE (phone_e164, name, email);

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        RAISE NOTICE 'pg_trgm is not available: picker substring search runs without trigram indexes';
        RETURN;
    END IF;
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE NOTICE 'cannot create pg_trgm (%): picker substring search runs without trigram indexes', SQLERRM;
        RETURN;
    END;
    CREATE INDEX IF NOT EXISTS leads_name_trgm ON leads USING gin (lower(name) gin_trgm_ops);
    CREATE INDEX IF NOT EXISTS leads_email_trgm ON leads USING gin (lower(email) gin_trgm_ops);
    CREATE INDEX IF NOT EXISTS leads_digits_trgm ON leads USING gin (substr(phone_e164, 2) gin_trgm_ops)
        WHERE phone_e164 IS NOT NULL;
END $$;
