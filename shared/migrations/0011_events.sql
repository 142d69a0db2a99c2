-- The change feed (events/): one row per change a portal or a CRM would show, written in
-- the transaction of the change.
--
-- Cursors never skip. A row is inserted with seq NULL; a deferred constraint trigger runs
-- at COMMIT and numbers the transaction's rows from a per-firm counter row. The counter
-- row stays locked until the commit is done, so two transactions of one firm get their
-- numbers in the order they become visible: a reader of `seq > c` can never see n+1
-- before n. Taking the counter last (at commit) keeps its lock short and free of
-- deadlocks (no other lock is taken after it; several firms are taken in firm-id order).
-- Readers never wait: they read committed rows by index and take no locks.

CREATE TABLE events (
    id       bigserial PRIMARY KEY,
    firm_id  bigint NOT NULL REFERENCES firms (id) ON DELETE CASCADE,
    seq      bigint,
    type     text NOT NULL CHECK (type ~ '^[a-z_]+\.[a-z_]+$'),
    data     jsonb NOT NULL,
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- the writing transaction, so its commit finds its own rows by index alone
    txid     bigint NOT NULL DEFAULT txid_current()
);
-- the feed: a firm's events after a cursor
CREATE UNIQUE INDEX events_firm_seq ON events (firm_id, seq);
-- rows still waiting for their number, by transaction: the commit's lookup descends to its
-- own transaction's entries (not through every other row once numbered)
CREATE INDEX events_unnumbered ON events (txid) WHERE seq IS NULL;
-- retention
CREATE INDEX events_at ON events (at);

-- per firm: the last number given out (committed), and the number up to which events
-- have been pruned (a cursor below it gets 410)
CREATE TABLE event_counters (
    firm_id   bigint PRIMARY KEY REFERENCES firms (id) ON DELETE CASCADE,
    last_seq  bigint NOT NULL DEFAULT 0
);
CREATE TABLE event_prune_marks (
    firm_id    bigint PRIMARY KEY REFERENCES firms (id) ON DELETE CASCADE,
    pruned_to  bigint NOT NULL DEFAULT 0
);

CREATE FUNCTION events_number_pending() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    f record;
    top bigint;
    me bigint := txid_current();
BEGIN
    -- The first of the transaction's deferred calls numbers every pending row; the
    -- others find theirs numbered already.
    IF NOT EXISTS (SELECT 1 FROM events WHERE id = NEW.id AND seq IS NULL) THEN
        RETURN NULL;
    END IF;
    FOR f IN SELECT firm_id, count(*) AS n FROM events WHERE txid = me AND seq IS NULL
             GROUP BY firm_id ORDER BY firm_id LOOP
        INSERT INTO event_counters AS c (firm_id, last_seq) VALUES (f.firm_id, f.n)
        ON CONFLICT (firm_id) DO UPDATE SET last_seq = c.last_seq + EXCLUDED.last_seq
        RETURNING last_seq INTO top;
        UPDATE events e SET seq = top - f.n + p.rank
        FROM (SELECT id, row_number() OVER (ORDER BY id) AS rank
              FROM events WHERE txid = me AND seq IS NULL AND firm_id = f.firm_id) p
        WHERE e.id = p.id;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER events_number_at_commit
    AFTER INSERT ON events
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION events_number_pending();

-- a fact about a number (its line type) changes the conversations of every firm that has
-- it: found by phone alone. (The runner applies each migration in a transaction, so this
-- cannot be CONCURRENTLY; conversations is one row per (firm, phone), far from the
-- biggest table.)
CREATE INDEX IF NOT EXISTS conversations_phone ON conversations (phone_e164);
