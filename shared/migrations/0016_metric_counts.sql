-- The counts /metrics exposes, kept incrementally: a scrape sums a small table instead of
-- counting whole tables (messages by status, by error code, by block reason; phones
-- blocked, opted out, in review; consent changes by kind; auto-blocks).
--
-- Each write to a counted table appends its net change as delta rows (a statement-level
-- trigger over the statement's transition tables: one insert per statement, whatever its
-- row count, and none when nothing counted changed). Appending never contends: no row is
-- shared between writers. The sweeper folds the rows into one per (name, labels)
-- (ops.sweeps.compact_metric_counts). A count is sum(delta) over its rows.
--
-- The triggers and the first sums are made in this migration's transaction; creating a
-- trigger locks out writes to its table until the commit, so none is counted twice or lost.

CREATE TABLE metric_counts (
    id      bigserial PRIMARY KEY,
    name    text NOT NULL,
    labels  text[] NOT NULL DEFAULT '{}',
    delta   bigint NOT NULL
);

-- what one message row counts for
CREATE FUNCTION metric_message_keys(status text, error_code integer, blocked_reason text)
RETURNS TABLE (name text, labels text[]) LANGUAGE sql IMMUTABLE AS $$
    SELECT 'messages', ARRAY[status]
    UNION ALL SELECT 'messages_error', ARRAY[error_code::text, status] WHERE error_code IS NOT NULL
    UNION ALL SELECT 'messages_blocked', ARRAY[coalesce(blocked_reason, '')] WHERE status = 'blocked'
$$;

CREATE FUNCTION metric_phone_flag_keys(blocked boolean, opted_out boolean, review_pending boolean)
RETURNS TABLE (name text, labels text[]) LANGUAGE sql IMMUTABLE AS $$
    SELECT 'phones_blocked', '{}'::text[] WHERE blocked
    UNION ALL SELECT 'phones_opted_out', '{}'::text[] WHERE opted_out
    UNION ALL SELECT 'phones_review_pending', '{}'::text[] WHERE review_pending
$$;

CREATE FUNCTION metric_tally_messages() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO metric_counts (name, labels, delta)
        SELECT k.name, k.labels, count(*) FROM new_rows r,
               LATERAL metric_message_keys(r.status, r.error_code, r.blocked_reason) k GROUP BY 1, 2;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO metric_counts (name, labels, delta)
        SELECT k.name, k.labels, -count(*) FROM old_rows r,
               LATERAL metric_message_keys(r.status, r.error_code, r.blocked_reason) k GROUP BY 1, 2;
    ELSE
        INSERT INTO metric_counts (name, labels, delta)
        SELECT k.name, k.labels, sum(c.d) FROM (
            SELECT n.status, n.error_code, n.blocked_reason, 1 AS d, o.status AS os, o.error_code AS oe,
                   o.blocked_reason AS ob
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE (n.status, n.error_code, n.blocked_reason) IS DISTINCT FROM (o.status, o.error_code, o.blocked_reason)
        ) ch,
        LATERAL (SELECT ch.status, ch.error_code, ch.blocked_reason, 1
                 UNION ALL SELECT ch.os, ch.oe, ch.ob, -1) AS c (status, error_code, blocked_reason, d),
        LATERAL metric_message_keys(c.status, c.error_code, c.blocked_reason) k
        GROUP BY 1, 2 HAVING sum(c.d) <> 0;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION metric_tally_phone_flags() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO metric_counts (name, labels, delta)
        SELECT k.name, k.labels, count(*) FROM new_rows r,
               LATERAL metric_phone_flag_keys(r.blocked, r.opted_out, r.review_pending) k GROUP BY 1, 2;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO metric_counts (name, labels, delta)
        SELECT k.name, k.labels, -count(*) FROM old_rows r,
               LATERAL metric_phone_flag_keys(r.blocked, r.opted_out, r.review_pending) k GROUP BY 1, 2;
    ELSE
        INSERT INTO metric_counts (name, labels, delta)
        SELECT k.name, k.labels, sum(c.d) FROM (
            SELECT n.blocked, n.opted_out, n.review_pending, o.blocked AS ob, o.opted_out AS oo,
                   o.review_pending AS orp
            FROM new_rows n JOIN old_rows o ON o.firm_id = n.firm_id AND o.phone_e164 = n.phone_e164
            WHERE (n.blocked, n.opted_out, n.review_pending) IS DISTINCT FROM (o.blocked, o.opted_out, o.review_pending)
        ) ch,
        LATERAL (SELECT ch.blocked, ch.opted_out, ch.review_pending, 1
                 UNION ALL SELECT ch.ob, ch.oo, ch.orp, -1) AS c (blocked, opted_out, review_pending, d),
        LATERAL metric_phone_flag_keys(c.blocked, c.opted_out, c.review_pending) k
        GROUP BY 1, 2 HAVING sum(c.d) <> 0;
    END IF;
    RETURN NULL;
END
$$;

-- the two audit tables are append-only (rows leave only with an erasure or a firm)
CREATE FUNCTION metric_tally_consent_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO metric_counts (name, labels, delta)
        SELECT 'consent', ARRAY[kind], count(*) FROM new_rows GROUP BY kind;
    ELSE
        INSERT INTO metric_counts (name, labels, delta)
        SELECT 'consent', ARRAY[kind], -count(*) FROM old_rows GROUP BY kind;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION metric_tally_phone_flag_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO metric_counts (name, labels, delta)
        SELECT 'auto_blocks', '{}', count(*) FROM new_rows WHERE kind = 'blocked' HAVING count(*) > 0;
    ELSE
        INSERT INTO metric_counts (name, labels, delta)
        SELECT 'auto_blocks', '{}', -count(*) FROM old_rows WHERE kind = 'blocked' HAVING count(*) > 0;
    END IF;
    RETURN NULL;
END
$$;

-- transition tables allow one event per trigger
CREATE TRIGGER metric_messages_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION metric_tally_messages();
CREATE TRIGGER metric_messages_update AFTER UPDATE ON messages
    REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION metric_tally_messages();
CREATE TRIGGER metric_messages_delete AFTER DELETE ON messages
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION metric_tally_messages();

CREATE TRIGGER metric_phone_flags_insert AFTER INSERT ON phone_flags
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION metric_tally_phone_flags();
CREATE TRIGGER metric_phone_flags_update AFTER UPDATE ON phone_flags
    REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION metric_tally_phone_flags();
CREATE TRIGGER metric_phone_flags_delete AFTER DELETE ON phone_flags
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION metric_tally_phone_flags();

CREATE TRIGGER metric_consent_events_insert AFTER INSERT ON consent_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION metric_tally_consent_events();
CREATE TRIGGER metric_consent_events_delete AFTER DELETE ON consent_events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION metric_tally_consent_events();

CREATE TRIGGER metric_phone_flag_events_insert AFTER INSERT ON phone_flag_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION metric_tally_phone_flag_events();
CREATE TRIGGER metric_phone_flag_events_delete AFTER DELETE ON phone_flag_events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION metric_tally_phone_flag_events();

-- the counts so far
INSERT INTO metric_counts (name, labels, delta)
SELECT k.name, k.labels, count(*) FROM messages r,
       LATERAL metric_message_keys(r.status, r.error_code, r.blocked_reason) k GROUP BY 1, 2;
INSERT INTO metric_counts (name, labels, delta)
SELECT k.name, k.labels, count(*) FROM phone_flags r,
       LATERAL metric_phone_flag_keys(r.blocked, r.opted_out, r.review_pending) k GROUP BY 1, 2;
INSERT INTO metric_counts (name, labels, delta)
SELECT 'consent', ARRAY[kind], count(*) FROM consent_events GROUP BY kind;
INSERT INTO metric_counts (name, labels, delta)
SELECT 'auto_blocks', '{}', count(*) FROM phone_flag_events WHERE kind = 'blocked' HAVING count(*) > 0;
